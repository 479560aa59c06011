/*
 * router.c - one event in, every matching subscriber's output out.
 *
 * For each event: take the topic's next sequence, collect the matching
 * subscribers of both tries into a scratch vector (so the walk never sees a
 * trie changed under it: a delivery may close a slow consumer, which
 * unsubscribes it), encode each wire form once into a refcounted frame and
 * hand every target a reference:
 *   - links: one MSG per link however many of its patterns match;
 *   - RESP SUBSCRIBE: one `message` (the same bytes for every client);
 *   - RESP PSUBSCRIBE: one `pmessage` per matching pattern, encoded once
 *     per pattern node and shared by that node's subscribers.
 * Frames are encoded lazily, only when some target needs that form. The
 * router holds its own reference until the loop ends.
 * Rejected: delivering from inside the trie callback (a close would modify
 * the trie mid-walk), and encoding per subscriber (the cost this project
 * exists to avoid).
 */
#include "broker/router.h"

#include <stdio.h>
#include <string.h>

#include <msgpack.h>

#include "broker/broker.h"
#include "broker/link.h"
#include "broker/resp.h"
#include "broker/seq_map.h"
#include "common/frame.h"
#include "common/link_codec.h"
#include "common/mem.h"
#include "common/net.h"
#include "common/topic.h"
#include "common/trie.h"

struct match {
    struct sub_target *target;
    const struct trie_node *node;
};

/* The broker is one thread: one scratch vector, grown as needed, reused. */
static struct match *matches;
static size_t matches_len, matches_cap;
static msgpack_sbuffer sbuf;

static int collect(void *sub, const struct trie_node *node, void *arg)
{
    (void)arg;
    if (matches_len == matches_cap) {
        matches_cap = matches_cap ? matches_cap * 2 : 256;
        matches = mem_realloc(matches, matches_cap * sizeof(*matches));
    }
    matches[matches_len].target = sub;
    matches[matches_len].node = node;
    matches_len++;
    return 0;
}

static struct frame *encode_msg(const char *topic, size_t tlen, uint64_t seq, const void *payload,
                                size_t plen)
{
    struct frame *f;

    msgpack_sbuffer_clear(&sbuf);
    link_encode_msg(&sbuf, topic, tlen, seq, payload, plen);
    f = frame_from(sbuf.data, sbuf.size);
    return f;
}

/* Appends "$<len>\r\n<bytes>\r\n". */
static char *put_bulk(char *p, const void *s, size_t len)
{
    p += sprintf(p, "$%zu\r\n", len);
    memcpy(p, s, len);
    p += len;
    memcpy(p, "\r\n", 2);
    return p + 2;
}

/* `*3 message topic payload`, or `*4 pmessage pattern topic payload` when pattern. */
static struct frame *encode_resp(const char *pattern, size_t patlen, const char *topic, size_t tlen,
                                 const void *payload, size_t plen)
{
    size_t cap = 4 * 32 + patlen + tlen + plen + 16;
    struct frame *f = frame_new(cap);
    char *p = f->data;

    if (pattern) {
        memcpy(p, "*4\r\n$8\r\npmessage\r\n", 18);
        p = put_bulk(p + 18, pattern, patlen);
    } else {
        memcpy(p, "*3\r\n$7\r\nmessage\r\n", 17);
        p += 17;
    }
    p = put_bulk(p, topic, tlen);
    p = put_bulk(p, payload, plen);
    f->len = (uint32_t)(p - f->data);
    return f;
}

static uint64_t deliver_links(struct broker *b, const char *topic, size_t tlen, uint64_t seq,
                              const void *payload, size_t plen)
{
    struct frame *f = NULL;
    uint64_t n = 0;

    matches_len = 0;
    trie_match(b->link_trie, topic, tlen, collect, NULL);
    for (size_t i = 0; i < matches_len; i++) {
        struct sub_target *t = matches[i].target;

        if (t->closed)
            continue;
        if (!f)
            f = encode_msg(topic, tlen, seq, payload, plen);
        n++;
        link_deliver((struct link_conn *)t, f);
    }
    frame_unref(&f);
    return n;
}

static uint64_t deliver_resp(struct broker *b, const char *topic, size_t tlen, const void *payload,
                             size_t plen)
{
    struct frame *message = NULL, *pmessage = NULL;
    const struct trie_node *pnode = NULL;
    uint64_t n = 0;

    matches_len = 0;
    trie_match_each(b->resp_trie, topic, tlen, collect, NULL);
    for (size_t i = 0; i < matches_len; i++) {
        struct sub_target *t = matches[i].target;

        if (t->closed)
            continue;
        n++;
        if (t->kind == SUB_RESP_CHANNEL) {
            if (!message)
                message = encode_resp(NULL, 0, topic, tlen, payload, plen);
            resp_deliver(t, message);
            continue;
        }
        if (matches[i].node != pnode) {
            char pat[TOPIC_MAX_LEN + 1];
            size_t patlen = trie_node_pattern(matches[i].node, pat, sizeof(pat));

            frame_unref(&pmessage);
            pmessage = encode_resp(pat, patlen, topic, tlen, payload, plen);
            pnode = matches[i].node;
        }
        resp_deliver(t, pmessage);
    }
    frame_unref(&message);
    frame_unref(&pmessage);
    return n;
}

void router_publish(struct broker *b, const char *topic, size_t tlen, const void *payload,
                    size_t plen, struct router_result *out)
{
    uint64_t seq = seq_map_next(b->seqs, topic, tlen, net_now_ms());
    uint64_t n;

    if (!sbuf.data)
        msgpack_sbuffer_init(&sbuf);
    n = deliver_links(b, topic, tlen, seq, payload, plen);
    n += deliver_resp(b, topic, tlen, payload, plen);
    b->stats.published++;
    b->stats.delivered += n;
    out->receivers = n;
    out->seq = seq;
}

void router_cleanup(void)
{
    mem_free(matches);
    matches = NULL;
    matches_len = matches_cap = 0;
    msgpack_sbuffer_destroy(&sbuf);
    memset(&sbuf, 0, sizeof(sbuf));
}

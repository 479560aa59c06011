/*
 * router.c - one event in, every matching subscriber's output out.
 *
 * For each event: take the topic's next sequence, then publish it through
 * the fan-out (common/fanout.c) to both tries, with the encoders of their
 * wire forms:
 *   - links: one MSG per link however many of its patterns match;
 *   - RESP SUBSCRIBE: one `message` (the same bytes for every client);
 *   - RESP PSUBSCRIBE: one `pmessage` per matching pattern, encoded once
 *     per pattern node and shared by that node's subscribers.
 * With history on for the topic (broker/history.c), the link MSG is encoded
 * before the fan-out, handed to every link by reference and then retained
 * by the history store: one frame for both, never a copy.
 * The endpoints' subscribers are struct sink; each endpoint registers the
 * ops of its trie's subscribers in struct core (struct broker_subs), so
 * the router knows no endpoint.
 */
#include "broker/router.h"

#include <stdio.h>
#include <string.h>

#include <msgpack.h>

#include "broker/core.h"
#include "broker/history.h"
#include "broker/seq_map.h"
#include "common/fanout.h"
#include "common/frame.h"
#include "common/link_codec.h"
#include "common/net.h"
#include "common/sink.h"
#include "common/topic.h"
#include "common/trie.h"

/* The broker is one thread: one target vector, one encode buffer, reused. */
static struct fanout fanout;
static msgpack_sbuffer sbuf;

struct pub_event {
    const char *topic;
    size_t tlen;
    uint64_t seq;
    const void *payload;
    size_t plen;
    struct frame *msg; /* the link MSG made before the fan-out (history on), or NULL */
};

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

static struct frame *encode_link(void *arg, uint8_t form, const struct trie_node *node)
{
    const struct pub_event *ev = arg;

    (void)form;
    (void)node;
    if (ev->msg)
        return frame_ref(ev->msg);
    return encode_msg(ev->topic, ev->tlen, ev->seq, ev->payload, ev->plen);
}

static struct frame *encode_resp_form(void *arg, uint8_t form, const struct trie_node *node)
{
    const struct pub_event *ev = arg;
    char pat[TOPIC_MAX_LEN + 1];
    size_t patlen;

    if (form == SUB_FORM_MESSAGE)
        return encode_resp(NULL, 0, ev->topic, ev->tlen, ev->payload, ev->plen);
    patlen = trie_node_pattern(node, pat, sizeof(pat));
    return encode_resp(pat, patlen, ev->topic, ev->tlen, ev->payload, ev->plen);
}

void router_publish(struct core *core, const char *topic, size_t tlen, const void *payload,
                    size_t plen, struct router_result *out)
{
    uint64_t now = net_now_ms();
    struct pub_event ev = {topic,   tlen, seq_map_next(core->seqs, topic, tlen, now),
                           payload, plen, NULL};
    uint64_t n = 0;

    if (!sbuf.data)
        msgpack_sbuffer_init(&sbuf);
    if (core->history && history_size_for(core->history, topic, tlen) > 0)
        ev.msg = encode_msg(topic, tlen, ev.seq, payload, plen);
    if (core->link_subs.ops)
        n += fanout_publish(&fanout, core->link_subs.trie, topic, tlen, false, core->link_subs.ops,
                            0, encode_link, &ev);
    if (core->resp_subs.ops)
        n += fanout_publish(&fanout, core->resp_subs.trie, topic, tlen, true, core->resp_subs.ops,
                            1u << SUB_FORM_PMESSAGE, encode_resp_form, &ev);
    if (ev.msg) {
        history_add(core->history, topic, tlen, ev.seq, ev.msg, now);
        frame_unref(&ev.msg);
    }
    core->stats.published++;
    core->stats.delivered += n;
    out->receivers = n;
    out->seq = ev.seq;
}

void router_cleanup(void)
{
    fanout_free(&fanout);
    msgpack_sbuffer_destroy(&sbuf);
    memset(&sbuf, 0, sizeof(sbuf));
}

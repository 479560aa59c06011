/*
 * The router (broker/router.h) over a struct core built by hand: both tries,
 * the sequence map and test sink_ops registered for the links and for the
 * RESP handles, whose deliver records every delivery (the sink, a copy of
 * the frame's bytes, the frame pointer) and keeps a reference to the frame
 * as an output queue does, until the test lets go. What it checks:
 *   - per-topic sequences from 1, returned in router_result.seq and carried
 *     in the link MSG (decoded with the link codec: topic, seq, payload);
 *   - a link once however many of its patterns match; a RESP client's
 *     `message` and one `pmessage` per matching pattern, byte for byte,
 *     each naming the pattern that matched; receivers = links + RESP
 *     deliveries; the core's published and delivered counters advance;
 *   - encode once: one MSG frame for every link, one `message` frame for
 *     every channel subscriber, one `pmessage` frame per pattern node, and
 *     no reference kept by the router;
 *   - closed sinks and endpoints not started (ops NULL) get nothing and are
 *     not counted;
 *   - a slow consumer closed and unsubscribed by its own delivery in the
 *     middle of the walk (pruning nodes still in the target vector), every
 *     one in turn, with the others still served;
 *   - binary, empty and 1 MiB payloads and a pattern of TOPIC_MAX_LEN bytes
 *     arrive intact; frames are never changed once handed over; every frame
 *     is freed once the sinks let go and router_cleanup has run (each test
 *     ends with finish()), and the router works again after a cleanup.
 * Named check_router so that it links the broker library.
 */
#include <check.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "broker/core.h"
#include "broker/router.h"
#include "broker/seq_map.h"
#include "common/frame.h"
#include "common/link_codec.h"
#include "common/sink.h"
#include "common/topic.h"
#include "common/trie.h"
#include "tests/support/check_main.h"

#define MAX_SINKS   64
#define MAX_PATS    12
#define MAX_LOG     512
#define BIG_PAYLOAD (1024u * 1024u)
#define DECODER_MAX (4u * 1024u * 1024u)

/* The endpoint (trie and ops) a test sink belongs to. */
enum via {
    VIA_LINK,
    VIA_RESP,
};

/* A test subscriber: struct sink first, as in every real one. */
struct tsink {
    struct sink sink;
    enum via via;
    const char *name;
    const char *pats[MAX_PATS]; /* its patterns */
    unsigned npats;
    bool slow;             /* a delivery to it closes it (and partner) as a slow consumer */
    bool ignore;           /* check_event leaves it to the test */
    struct tsink *partner; /* the other handle of the same RESP client */
    unsigned got;          /* deliveries */
};

/* A RESP client: its SUBSCRIBE and PSUBSCRIBE handles. */
struct client {
    struct tsink *channel;
    struct tsink *pattern;
};

struct delivery {
    struct tsink *ts;
    struct frame *f; /* the frame handed over; a reference when held */
    bool held;
    char *bytes; /* a copy of f's bytes at delivery */
    size_t len;
};

/* Expected wire bytes. */
struct buf {
    char *p;
    size_t len, cap;
};

static struct core core;
static struct tsink sinks[MAX_SINKS];
static unsigned nsinks;
static struct delivery dlog[MAX_LOG];
static size_t ndlog;
static bool hold; /* deliveries keep a reference to their frame */
static uint64_t live_base;

/* ------------------------------------------------------------ sinks */

static struct trie *trie_of(const struct tsink *ts)
{
    return ts->via == VIA_LINK ? core.link_subs.trie : core.resp_subs.trie;
}

/* What a slow consumer's close does: flag it first, then leave the trie. */
static void close_sink(struct tsink *ts)
{
    if (sink_closed(&ts->sink))
        return;
    ts->sink.flags |= SINK_CLOSED;
    for (unsigned i = 0; i < ts->npats; i++)
        ck_assert_int_eq(
            trie_unsubscribe(trie_of(ts), ts->pats[i], strlen(ts->pats[i]), &ts->sink, NULL), 0);
}

static int record(struct sink *s, struct frame *f, enum via via)
{
    struct tsink *ts = (struct tsink *)s;
    struct delivery *d;

    ck_assert_msg(!sink_closed(s), "delivery to closed sink %s", ts->name);
    ck_assert_msg(ts->via == via, "%s got a delivery through the other endpoint's ops", ts->name);
    ck_assert_uint_ge(f->refs, 1);
    ck_assert_uint_lt(ndlog, MAX_LOG);
    d = &dlog[ndlog++];
    d->ts = ts;
    d->f = f;
    d->held = false;
    d->len = f->len;
    d->bytes = malloc(f->len ? f->len : 1);
    ck_assert_ptr_nonnull(d->bytes);
    memcpy(d->bytes, f->data, f->len);
    ts->got++;
    if (ts->slow) {
        /* Over its output limit: closed, nothing queued. */
        close_sink(ts);
        if (ts->partner)
            close_sink(ts->partner);
        return -1;
    }
    if (hold) {
        d->f = frame_ref(f);
        d->held = true;
    }
    return 0;
}

static int link_deliver(struct sink *s, struct frame *f)
{
    return record(s, f, VIA_LINK);
}

static int resp_deliver(struct sink *s, struct frame *f)
{
    return record(s, f, VIA_RESP);
}

static int never_flush(struct sink *s)
{
    (void)s;
    ck_abort_msg("the router never flushes");
    return 0;
}

static const struct sink_ops link_ops = {link_deliver, never_flush};
static const struct sink_ops resp_ops = {resp_deliver, never_flush};

static struct tsink *new_sink(enum via via, uint8_t form, const char *name)
{
    struct tsink *ts;

    ck_assert_uint_lt(nsinks, MAX_SINKS);
    ts = &sinks[nsinks++];
    ts->via = via;
    ts->sink.form = form;
    ts->name = name;
    return ts;
}

static struct tsink *mk_link(const char *name)
{
    return new_sink(VIA_LINK, SUB_FORM_MSG, name);
}

static struct client mk_client(const char *name)
{
    struct client c;

    c.channel = new_sink(VIA_RESP, SUB_FORM_MESSAGE, name);
    c.pattern = new_sink(VIA_RESP, SUB_FORM_PMESSAGE, name);
    c.channel->partner = c.pattern;
    c.pattern->partner = c.channel;
    return c;
}

static void sub(struct tsink *ts, const char *pattern)
{
    bool first, added;

    ck_assert_uint_lt(ts->npats, MAX_PATS);
    ck_assert_ptr_nonnull(
        trie_subscribe(trie_of(ts), pattern, strlen(pattern), &ts->sink, &first, &added));
    ck_assert(added);
    ts->pats[ts->npats++] = pattern;
}

/* ------------------------------------------------------------ core, log */

static void core_init(void)
{
    memset(&core, 0, sizeof(core));
    core.link_subs.trie = trie_new();
    core.resp_subs.trie = trie_new();
    core.link_subs.ops = &link_ops;
    core.resp_subs.ops = &resp_ops;
    core.seqs = seq_map_new(1024, 0);
    memset(sinks, 0, sizeof(sinks));
    nsinks = 0;
    ndlog = 0;
    hold = true;
}

/* Drops the references the deliveries hold, checking the frames did not change meanwhile. */
static void drop_all(void)
{
    for (size_t i = 0; i < ndlog; i++) {
        struct delivery *d = &dlog[i];

        if (d->held) {
            ck_assert_uint_eq(d->f->len, d->len);
            ck_assert_msg(memcmp(d->f->data, d->bytes, d->len) == 0,
                          "a frame changed after it was handed to %s", d->ts->name);
            frame_unref(&d->f);
            d->held = false;
        }
        free(d->bytes);
        d->bytes = NULL;
    }
}

/* Forgets the deliveries so far (dropping their references). */
static void reset_log(void)
{
    drop_all();
    ndlog = 0;
    for (unsigned i = 0; i < nsinks; i++)
        sinks[i].got = 0;
}

static void core_fini(void)
{
    drop_all();
    ndlog = 0;
    router_cleanup();
    trie_free(core.link_subs.trie);
    trie_free(core.resp_subs.trie);
    seq_map_free(core.seqs);
    memset(&core, 0, sizeof(core));
}

static void setup(void)
{
    live_base = frame_live();
    core_init();
}

static void teardown(void)
{
    core_fini();
}

/* The end of every test: the sinks let go, the router cleans up, no frame is left. */
static void finish(void)
{
    drop_all();
    ndlog = 0;
    router_cleanup();
    ck_assert_uint_eq(frame_live(), live_base);
}

static struct router_result pub(const char *topic, const void *payload, size_t plen)
{
    struct router_result r = {UINT64_MAX, UINT64_MAX};

    router_publish(&core, topic, strlen(topic), payload, plen, &r);
    return r;
}

static struct router_result pubs(const char *topic, const char *payload)
{
    return pub(topic, payload, strlen(payload));
}

/* The one delivery to ts since mark. */
static const struct delivery *only(const struct tsink *ts, size_t mark)
{
    const struct delivery *found = NULL;

    for (size_t i = mark; i < ndlog; i++) {
        if (dlog[i].ts != ts)
            continue;
        ck_assert_msg(!found, "%s got more than one delivery", ts->name);
        found = &dlog[i];
    }
    ck_assert_msg(found != NULL, "%s got nothing", ts->name);
    return found;
}

/* ------------------------------------------------------------ wire forms */

static void buf_put(struct buf *b, const void *s, size_t n)
{
    if (b->len + n > b->cap) {
        b->cap = (b->len + n) * 2;
        b->p = realloc(b->p, b->cap);
        ck_assert_ptr_nonnull(b->p);
    }
    if (n > 0)
        memcpy(b->p + b->len, s, n);
    b->len += n;
}

static void buf_bulk(struct buf *b, const void *s, size_t n)
{
    char hdr[32];
    int k = snprintf(hdr, sizeof(hdr), "$%zu\r\n", n);

    ck_assert(k > 0 && (size_t)k < sizeof(hdr));
    buf_put(b, hdr, (size_t)k);
    buf_put(b, s, n);
    buf_put(b, "\r\n", 2);
}

static void want_message(struct buf *b, const char *topic, const void *payload, size_t plen)
{
    b->len = 0;
    buf_put(b, "*3\r\n$7\r\nmessage\r\n", 17);
    buf_bulk(b, topic, strlen(topic));
    buf_bulk(b, payload, plen);
}

static void want_pmessage(struct buf *b, const char *pattern, size_t patlen, const char *topic,
                          const void *payload, size_t plen)
{
    b->len = 0;
    buf_put(b, "*4\r\n$8\r\npmessage\r\n", 18);
    buf_bulk(b, pattern, patlen);
    buf_bulk(b, topic, strlen(topic));
    buf_bulk(b, payload, plen);
}

static void assert_bytes(const struct delivery *d, const void *want, size_t len)
{
    ck_assert_msg(d->len == len, "%s got %zu bytes, want %zu", d->ts->name, d->len, len);
    ck_assert_msg(memcmp(d->bytes, want, len) == 0, "%s got other bytes", d->ts->name);
}

/* The delivery is one link MSG of topic, seq, payload, and nothing else. */
static void assert_msg(const struct delivery *d, const char *topic, uint64_t seq,
                       const void *payload, size_t plen)
{
    struct link_decoder *dec = link_decoder_new(DECODER_MAX);
    struct link_frame f;
    const char *err = NULL;

    ck_assert_int_eq(link_decoder_feed(dec, d->bytes, d->len, &err), 0);
    ck_assert_msg(link_decoder_next(dec, &f, &err) == 1, "%s: no MSG (%s)", d->ts->name,
                  err ? err : "incomplete");
    ck_assert_int_eq(f.type, LINK_MSG);
    ck_assert_uint_eq(f.topic.len, strlen(topic));
    ck_assert(memcmp(f.topic.ptr, topic, f.topic.len) == 0);
    ck_assert_uint_eq(f.seq, seq);
    ck_assert_uint_eq(f.payload.len, plen);
    if (plen > 0)
        ck_assert_msg(memcmp(f.payload.ptr, payload, plen) == 0, "%s: payload differs",
                      d->ts->name);
    ck_assert_int_eq(link_decoder_next(dec, &f, &err), 0);
    ck_assert_uint_eq(link_decoder_pending(dec), 0);
    link_decoder_free(dec);
}

/* The pattern a `pmessage` names: a view into d's bytes. */
static const char *pm_pattern(const struct delivery *d, size_t *len)
{
    static const char head[] = "*4\r\n$8\r\npmessage\r\n$";
    size_t i = sizeof(head) - 1, n = 0;

    ck_assert_uint_gt(d->len, i);
    ck_assert_msg(memcmp(d->bytes, head, i) == 0, "%s: not a pmessage", d->ts->name);
    for (; i < d->len && d->bytes[i] >= '0' && d->bytes[i] <= '9'; i++)
        n = n * 10 + (size_t)(d->bytes[i] - '0');
    ck_assert_uint_le(i + 2 + n, d->len);
    ck_assert(d->bytes[i] == '\r' && d->bytes[i + 1] == '\n');
    *len = n;
    return d->bytes + i + 2;
}

/* Index of the pattern of ts that pattern[0..len) is, or -1. */
static int pattern_index(const struct tsink *ts, const char *pattern, size_t len)
{
    for (unsigned i = 0; i < ts->npats; i++) {
        if (strlen(ts->pats[i]) == len && memcmp(ts->pats[i], pattern, len) == 0)
            return (int)i;
    }
    return -1;
}

static unsigned matching(const struct tsink *ts, const char *topic)
{
    unsigned m = 0;

    for (unsigned i = 0; i < ts->npats; i++)
        m += topic_matches(ts->pats[i], strlen(ts->pats[i]), topic, strlen(topic));
    return m;
}

/* What ts should get of an event on topic: links once, RESP handles once per match. */
static unsigned want_got(const struct tsink *ts, const char *topic)
{
    unsigned m;

    if (sink_closed(&ts->sink))
        return 0;
    m = matching(ts, topic);
    return ts->via == VIA_LINK ? m > 0 : m;
}

/*
 * Checks one delivery of an event: a link's is one MSG carrying seq, a
 * channel handle's the `message`, a pattern handle's a `pmessage` naming
 * one of its patterns that matches topic. Returns the index of that
 * pattern (0 for the others).
 */
static unsigned check_delivery(const struct delivery *d, struct buf *b, const char *topic,
                               const void *payload, size_t plen, uint64_t seq)
{
    const struct tsink *ts = d->ts;
    const char *pat;
    size_t patlen;
    int idx;

    if (ts->via == VIA_LINK) {
        assert_msg(d, topic, seq, payload, plen);
        return 0;
    }
    if (ts->sink.form == SUB_FORM_MESSAGE) {
        want_message(b, topic, payload, plen);
        assert_bytes(d, b->p, b->len);
        return 0;
    }
    pat = pm_pattern(d, &patlen);
    idx = pattern_index(ts, pat, patlen);
    ck_assert_msg(idx >= 0, "%s: a pmessage names a pattern it has not", ts->name);
    ck_assert(topic_matches(ts->pats[idx], patlen, topic, strlen(topic)));
    want_pmessage(b, ts->pats[idx], patlen, topic, payload, plen);
    assert_bytes(d, b->p, b->len);
    return (unsigned)idx;
}

/*
 * Checks the deliveries logged since mark, of one event, against the
 * subscriptions of the test sinks (topic_matches is the reference): each
 * open sink got what it should (check_delivery) and nothing else - a link
 * one MSG, a channel handle one `message`, a pattern handle one `pmessage`
 * per matching pattern - and closed sinks nothing. Sinks marked ignore are
 * left to the caller. Returns the receivers expected.
 */
static uint64_t check_event(size_t mark, const char *topic, const void *payload, size_t plen,
                            uint64_t seq)
{
    struct buf b = {NULL, 0, 0};
    uint64_t want = 0;
    size_t ignored = 0;

    for (unsigned i = 0; i < nsinks; i++) {
        struct tsink *ts = &sinks[i];
        unsigned expect = want_got(ts, topic), got = 0;
        bool seen[MAX_PATS] = {false};

        for (size_t k = mark; k < ndlog; k++) {
            unsigned idx;

            if (dlog[k].ts != ts)
                continue;
            got++;
            if (ts->ignore)
                continue;
            idx = check_delivery(&dlog[k], &b, topic, payload, plen, seq);
            if (ts->via == VIA_RESP && ts->sink.form == SUB_FORM_PMESSAGE) {
                ck_assert_msg(!seen[idx], "%s: two pmessages for %s", ts->name, ts->pats[idx]);
                seen[idx] = true;
            }
        }
        if (ts->ignore) {
            ignored += got;
            continue;
        }
        ck_assert_msg(got == expect, "%s got %u deliveries, want %u", ts->name, got, expect);
        want += expect;
    }
    ck_assert_uint_eq(ndlog - mark, want + ignored);
    free(b.p);
    return want;
}

/* Publishes, checks the deliveries and the result, and returns the receivers. */
static uint64_t pub_check(const char *topic, const void *payload, size_t plen, uint64_t seq)
{
    size_t mark = ndlog;
    struct router_result r = pub(topic, payload, plen);

    ck_assert_uint_eq(r.seq, seq);
    ck_assert_uint_eq(r.receivers, check_event(mark, topic, payload, plen, seq));
    return r.receivers;
}

/* ------------------------------------------------------------ sequences */

START_TEST(test_seq_per_topic)
{
    static const struct {
        const char *topic;
        uint64_t seq;
    } steps[] = {{"a", 1}, {"b", 1}, {"a", 2}, {"a", 3}, {"b", 2}, {"a.b", 1}, {"b", 3}, {"a", 4}};
    struct tsink *all = mk_link("all");
    struct tsink *only_a = mk_link("only_a");
    struct client c = mk_client("c");

    sub(all, ">");
    sub(only_a, "a");
    sub(c.channel, "a");
    sub(c.pattern, "*");
    for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
        size_t mark = ndlog;
        char payload[16];
        int n = snprintf(payload, sizeof(payload), "p%zu", i);
        struct router_result r;

        ck_assert(n > 0 && (size_t)n < sizeof(payload));
        r = pub(steps[i].topic, payload, (size_t)n);
        ck_assert_uint_eq(r.seq, steps[i].seq);
        assert_msg(only(all, mark), steps[i].topic, steps[i].seq, payload, (size_t)n);
        ck_assert_uint_eq(r.receivers,
                          check_event(mark, steps[i].topic, payload, (size_t)n, steps[i].seq));
        reset_log();
    }
    ck_assert_uint_eq(seq_map_last(core.seqs, "a", 1), 4);
    ck_assert_uint_eq(seq_map_last(core.seqs, "b", 1), 3);
    ck_assert_uint_eq(seq_map_last(core.seqs, "a.b", 3), 1);
    /* A topic nobody subscribes to counts too. */
    ck_assert_int_eq(trie_unsubscribe(core.link_subs.trie, ">", 1, &all->sink, NULL), 0);
    all->npats = 0;
    ck_assert_uint_eq(pub_check("no.body", "x", 1, 1), 0);
    ck_assert_uint_eq(pub_check("no.body", "x", 1, 2), 0);
    ck_assert_uint_eq(seq_map_last(core.seqs, "no.body", 7), 2);
    finish();
}

END_TEST

/* ------------------------------------------------------------ receivers */

/* Patterns matching "t.x.y": more than the trie's dedup-by-probe limit (8). */
static const char *const tpats[] = {"t.x.y", "t.x.*", "t.*.y", "*.x.y", "t.>", "t.x.>",
                                    "*.*.y", "*.x.*", "t.*.*", "*.*.*", ">",   "*.>"};
#define NTPATS (sizeof(tpats) / sizeof(tpats[0]))

START_TEST(test_link_once_through_patterns)
{
    struct tsink *three = mk_link("three");
    struct tsink *one = mk_link("one");
    struct tsink *none = mk_link("none");
    struct tsink *every = mk_link("every");
    size_t mark;
    struct router_result r;

    sub(three, "a.b");
    sub(three, "a.*");
    sub(three, "a.>");
    sub(one, ">");
    sub(none, "a.c");
    sub(none, "b.>");
    mark = ndlog;
    r = pubs("a.b", "x");
    ck_assert_uint_eq(r.receivers, 2);
    ck_assert_uint_eq(three->got, 1);
    ck_assert_uint_eq(one->got, 1);
    ck_assert_uint_eq(none->got, 0);
    assert_msg(only(three, mark), "a.b", 1, "x", 1);
    ck_assert_uint_eq(r.receivers, check_event(mark, "a.b", "x", 1, 1));
    reset_log();

    /* Twelve matching patterns (the trie's sorted dedup): still once. */
    for (unsigned i = 0; i < NTPATS; i++)
        sub(every, tpats[i]);
    ck_assert_uint_eq(pub_check("t.x.y", "y", 1, 1), 2);
    ck_assert_uint_eq(every->got, 1);
    ck_assert_uint_eq(one->got, 1);
    finish();
}

END_TEST

START_TEST(test_resp_message_and_pmessage)
{
    static const char msg[] = "*3\r\n$7\r\nmessage\r\n$10\r\nnews.sport\r\n$5\r\ngoal!\r\n";
    static const char pm_star[] =
        "*4\r\n$8\r\npmessage\r\n$6\r\nnews.*\r\n$10\r\nnews.sport\r\n$5\r\ngoal!\r\n";
    static const char pm_gt[] =
        "*4\r\n$8\r\npmessage\r\n$6\r\nnews.>\r\n$10\r\nnews.sport\r\n$5\r\ngoal!\r\n";
    static const char pm_d[] =
        "*4\r\n$8\r\npmessage\r\n$7\r\n*.sport\r\n$10\r\nnews.sport\r\n$5\r\ngoal!\r\n";
    struct client c = mk_client("c");
    struct client d = mk_client("d");
    struct client e = mk_client("e");
    bool star = false, gt = false;
    struct router_result r;

    sub(c.channel, "news.sport");
    sub(c.pattern, "news.*");
    sub(c.pattern, "news.>");
    sub(c.pattern, "weather.*");
    sub(d.pattern, "*.sport");
    sub(e.channel, "news.tennis");
    sub(e.pattern, "news.*.*");
    r = pubs("news.sport", "goal!");
    ck_assert_uint_eq(r.seq, 1);
    ck_assert_uint_eq(r.receivers, 4);
    ck_assert_uint_eq(ndlog, 4);
    assert_bytes(only(c.channel, 0), msg, sizeof(msg) - 1);
    assert_bytes(only(d.pattern, 0), pm_d, sizeof(pm_d) - 1);
    ck_assert_uint_eq(c.pattern->got, 2);
    for (size_t i = 0; i < ndlog; i++) {
        if (dlog[i].ts != c.pattern)
            continue;
        if (dlog[i].len == sizeof(pm_star) - 1 && memcmp(dlog[i].bytes, pm_star, dlog[i].len) == 0)
            star = true;
        else if (dlog[i].len == sizeof(pm_gt) - 1 && memcmp(dlog[i].bytes, pm_gt, dlog[i].len) == 0)
            gt = true;
    }
    ck_assert_msg(star && gt, "c's pmessages: news.* %d, news.> %d", star, gt);
    ck_assert_uint_eq(e.channel->got + e.pattern->got, 0);
    ck_assert_uint_eq(r.receivers, check_event(0, "news.sport", "goal!", 5, 1));
    ck_assert_uint_eq(core.stats.published, 1);
    ck_assert_uint_eq(core.stats.delivered, 4);
    finish();
}

END_TEST

START_TEST(test_receivers_and_stats)
{
    struct tsink *l1 = mk_link("l1");
    struct tsink *l2 = mk_link("l2");
    struct client c = mk_client("c");
    struct client d = mk_client("d");

    /* Counters advance from where they are. */
    core.stats.published = 10;
    core.stats.delivered = 100;
    sub(l1, "s.t");
    sub(l1, "s.*");
    sub(l1, ">");
    sub(l2, "s.>");
    sub(c.channel, "s.t");
    sub(c.pattern, "s.*");
    sub(c.pattern, "*.t");
    sub(d.channel, "s.u");
    sub(d.pattern, "s.>");

    /* 2 links + c's message and 2 pmessages + d's pmessage. */
    ck_assert_uint_eq(pub_check("s.t", "1", 1, 1), 6);
    ck_assert_uint_eq(core.stats.published, 11);
    ck_assert_uint_eq(core.stats.delivered, 106);
    reset_log();
    /* Only l1's ">" matches. */
    ck_assert_uint_eq(pub_check("zzz.t.q", "2", 1, 1), 1);
    ck_assert_uint_eq(core.stats.published, 12);
    ck_assert_uint_eq(core.stats.delivered, 107);
    reset_log();
    /* 2 links + d's message + c's pmessage (s.*) + d's pmessage. */
    ck_assert_uint_eq(pub_check("s.u", "3", 1, 1), 5);
    ck_assert_uint_eq(core.stats.published, 13);
    ck_assert_uint_eq(core.stats.delivered, 112);
    reset_log();
    /* RESP only. */
    ck_assert_int_eq(trie_unsubscribe(core.link_subs.trie, ">", 1, &l1->sink, NULL), 0);
    l1->npats--;
    ck_assert_uint_eq(pub_check("x.t", "4", 1, 1), 1); /* c's "*.t" */
    ck_assert_uint_eq(core.stats.published, 14);
    ck_assert_uint_eq(core.stats.delivered, 113);
    reset_log();
    ck_assert_uint_eq(pub_check("y", "5", 1, 1), 0);
    ck_assert_uint_eq(core.stats.published, 15);
    ck_assert_uint_eq(core.stats.delivered, 113);
    finish();
}

END_TEST

/* ------------------------------------------------------------ encode once */

START_TEST(test_encode_once_links)
{
    static const char *const pats[] = {"e.f", "e.*", "e.>", ">", "*.f"};
    struct tsink *multi = mk_link("multi");
    struct frame *f;

    for (unsigned i = 0; i < 5; i++)
        sub(mk_link(pats[i]), pats[i]);
    sub(multi, "e.f");
    sub(multi, "e.*");
    sub(multi, "e.>");
    ck_assert_uint_eq(pub_check("e.f", "one", 3, 1), 6);
    f = dlog[0].f;
    for (size_t i = 0; i < ndlog; i++)
        ck_assert_msg(dlog[i].f == f, "%s got another MSG frame", dlog[i].ts->name);
    /* Held by the six links only: the router kept no reference and no other frame. */
    ck_assert_uint_eq(f->refs, 6);
    ck_assert_uint_eq(frame_live(), live_base + 1);
    finish();
}

END_TEST

/* The delivered frames of all deliveries, distinct, into v; returns how many. */
static size_t distinct_frames(struct frame **v, size_t cap)
{
    size_t n = 0;

    for (size_t i = 0; i < ndlog; i++) {
        size_t k = 0;

        while (k < n && v[k] != dlog[i].f)
            k++;
        if (k == n) {
            ck_assert_uint_lt(n, cap);
            v[n++] = dlog[i].f;
        }
    }
    return n;
}

START_TEST(test_encode_once_resp)
{
    static const char *const names[] = {"p0", "p1", "p2", "p3", "p4", "p5", "p6"};
    struct client ch[4], p[7];
    struct tsink *l1 = mk_link("l1");
    struct tsink *l2 = mk_link("l2");
    struct frame *message = NULL, *msg = NULL, *by_pat[3] = {NULL};
    static const char *const pnode[] = {"t.*", "t.>", "*.x"};
    struct frame *v[16];

    for (unsigned i = 0; i < 4; i++) {
        ch[i] = mk_client("ch");
        sub(ch[i].channel, "t.x");
    }
    for (unsigned i = 0; i < 7; i++)
        p[i] = mk_client(names[i]);
    sub(p[0].pattern, "t.*");
    sub(p[1].pattern, "t.*");
    sub(p[2].pattern, "t.*");
    sub(p[3].pattern, "t.>");
    sub(p[4].pattern, "t.>");
    sub(p[5].pattern, "t.*");
    sub(p[5].pattern, "t.>");
    sub(p[5].pattern, "*.x");
    sub(p[6].pattern, "*.x");
    sub(p[6].channel, "t.x");
    sub(l1, "t.x");
    sub(l2, "t.*");
    sub(l2, "*.x");

    /* 5 messages + 4 (t.*) + 3 (t.>) + 2 (*.x) pmessages + 2 links. */
    ck_assert_uint_eq(pub_check("t.x", "pay", 3, 1), 16);
    for (size_t i = 0; i < ndlog; i++) {
        const struct delivery *d = &dlog[i];
        struct frame **slot;

        if (d->ts->via == VIA_LINK) {
            slot = &msg;
        } else if (d->ts->sink.form == SUB_FORM_MESSAGE) {
            slot = &message;
        } else {
            size_t patlen;
            const char *pat = pm_pattern(d, &patlen);
            unsigned k = 0;

            while (k < 3 && !(strlen(pnode[k]) == patlen && memcmp(pnode[k], pat, patlen) == 0))
                k++;
            ck_assert_uint_lt(k, 3);
            slot = &by_pat[k];
        }
        if (!*slot)
            *slot = d->f;
        ck_assert_msg(*slot == d->f, "%s: another frame of the same form and pattern", d->ts->name);
    }
    /* One frame per form and pattern node: 1 MSG, 1 message, 3 pmessage. */
    ck_assert_uint_eq(distinct_frames(v, 16), 5);
    ck_assert_uint_eq(frame_live(), live_base + 5);
    ck_assert_uint_eq(msg->refs, 2);
    ck_assert_uint_eq(message->refs, 5);
    ck_assert_uint_eq(by_pat[0]->refs, 4);
    ck_assert_uint_eq(by_pat[1]->refs, 3);
    ck_assert_uint_eq(by_pat[2]->refs, 2);
    finish();
}

END_TEST

/* ------------------------------------------------------------ skipped */

START_TEST(test_closed_skipped)
{
    struct tsink *l_closed = mk_link("l_closed");
    struct tsink *l_open = mk_link("l_open");
    struct tsink *l_dirty = mk_link("l_dirty");
    struct client c1 = mk_client("c1");
    struct client c2 = mk_client("c2");
    struct client c3 = mk_client("c3");

    sub(l_closed, "k.>");
    sub(l_open, "k.>");
    sub(l_dirty, "k.v");
    sub(c1.channel, "k.v");
    sub(c1.pattern, "k.*");
    sub(c1.pattern, ">");
    sub(c2.channel, "k.v");
    sub(c2.pattern, "k.*");
    sub(c3.pattern, "k.*"); /* a pattern node of closed subscribers only */
    l_closed->sink.flags |= SINK_CLOSED;
    l_dirty->sink.flags |= SINK_CLOSED | SINK_DIRTY;
    c1.channel->sink.flags |= SINK_CLOSED;
    c2.pattern->sink.flags |= SINK_CLOSED;
    c3.pattern->sink.flags |= SINK_CLOSED;
    /* l_open + c1's two pmessages + c2's message. */
    ck_assert_uint_eq(pub_check("k.v", "v", 1, 1), 4);
    ck_assert_uint_eq(l_closed->got + l_dirty->got + c1.channel->got + c2.pattern->got, 0);
    ck_assert_uint_eq(c3.pattern->got, 0);
    ck_assert_uint_eq(core.stats.delivered, 4);
    reset_log();

    /* All closed: nothing delivered, counted or encoded. */
    for (unsigned i = 0; i < nsinks; i++)
        sinks[i].sink.flags |= SINK_CLOSED;
    ck_assert_uint_eq(pub_check("k.v", "v", 1, 2), 0);
    ck_assert_uint_eq(frame_live(), live_base);
    ck_assert_uint_eq(core.stats.delivered, 4);
    ck_assert_uint_eq(core.stats.published, 2);
    finish();
}

END_TEST

START_TEST(test_endpoint_not_started)
{
    struct tsink *l = mk_link("l");
    struct client c = mk_client("c");
    size_t mark;
    struct router_result r;

    sub(l, "n.>");
    sub(c.channel, "n.o");
    sub(c.pattern, "n.*");

    /* Links not started: the RESP handles only, the sequence still counts. */
    core.link_subs.ops = NULL;
    r = pubs("n.o", "1");
    ck_assert_uint_eq(r.seq, 1);
    ck_assert_uint_eq(r.receivers, 2);
    ck_assert_uint_eq(l->got, 0);
    ck_assert_uint_eq(c.channel->got + c.pattern->got, 2);
    reset_log();

    /* RESP not started. */
    core.link_subs.ops = &link_ops;
    core.resp_subs.ops = NULL;
    mark = ndlog;
    r = pubs("n.o", "2");
    ck_assert_uint_eq(r.seq, 2);
    ck_assert_uint_eq(r.receivers, 1);
    assert_msg(only(l, mark), "n.o", 2, "2", 1);
    ck_assert_uint_eq(c.channel->got + c.pattern->got, 0);
    reset_log();

    /* Neither. */
    core.link_subs.ops = NULL;
    r = pubs("n.o", "3");
    ck_assert_uint_eq(r.seq, 3);
    ck_assert_uint_eq(r.receivers, 0);
    ck_assert_uint_eq(ndlog, 0);
    ck_assert_uint_eq(core.stats.published, 3);
    ck_assert_uint_eq(core.stats.delivered, 3);
    ck_assert_uint_eq(frame_live(), live_base);
    finish();
}

END_TEST

/* ------------------------------------------------------------ slow consumers */

/*
 * nlinks links on two patterns of tpats each (unique, so a link leaving
 * prunes its nodes); link victim is a slow consumer.
 */
static void slow_link(unsigned nlinks, unsigned victim)
{
    static const char *const names[] = {"l0", "l1", "l2", "l3", "l4", "l5"};
    struct tsink *v;
    size_t subs;
    uint64_t r;

    for (unsigned i = 0; i < nlinks; i++) {
        struct tsink *l = mk_link(names[i]);

        sub(l, tpats[2 * i]);
        sub(l, tpats[2 * i + 1]);
        l->slow = i == victim;
    }
    v = &sinks[victim];
    subs = trie_subscription_count(core.link_subs.trie);

    r = pubs("t.x.y", "slow").receivers;
    /* The victim got its one delivery, closed and left the trie, pruning its nodes. */
    ck_assert_uint_eq(v->got, 1);
    ck_assert(sink_closed(&v->sink));
    ck_assert_uint_eq(trie_subscription_count(core.link_subs.trie), subs - 2);
    ck_assert_ptr_null(trie_find(core.link_subs.trie, v->pats[0], strlen(v->pats[0])));
    ck_assert_ptr_null(trie_find(core.link_subs.trie, v->pats[1], strlen(v->pats[1])));
    /* Every other link still got the event; every delivery counted. */
    for (unsigned i = 0; i < nlinks; i++) {
        if (i != victim)
            assert_msg(only(&sinks[i], 0), "t.x.y", 1, "slow", 4);
    }
    ck_assert_uint_eq(ndlog, nlinks);
    ck_assert_uint_eq(r, nlinks);
    reset_log();

    /* The next event reaches only the others. */
    ck_assert_uint_eq(pub_check("t.x.y", "next", 4, 2), nlinks - 1);
    ck_assert_uint_eq(v->got, 0);
}

START_TEST(test_slow_link_during_walk)
{
    /* 3 links: 6 matching nodes; 6 links: 12, past the trie's dedup-by-probe limit. */
    for (unsigned nlinks = 3; nlinks <= NTPATS / 2; nlinks += 3) {
        for (unsigned victim = 0; victim < nlinks; victim++) {
            slow_link(nlinks, victim);
            finish();
            core_fini();
            core_init();
        }
    }
}

END_TEST

/*
 * nclients RESP clients: each one's channel handle on "t.x.y" and its
 * pattern handle on two patterns of tpats of its own (pruned when it
 * leaves, but for the literal "t.x.y" the channels share). One handle of
 * client victim (the channel handle when by_channel, else the pattern
 * handle) is a slow consumer: its delivery closes both handles.
 */
static void slow_client(unsigned nclients, unsigned victim, bool by_channel)
{
    static const char *const names[] = {"c0", "c1", "c2", "c3", "c4", "c5"};
    struct client v = {NULL, NULL};
    struct tsink *slow;
    struct buf b = {NULL, 0, 0};
    size_t subs;
    struct router_result r;

    for (unsigned i = 0; i < nclients; i++) {
        struct client c = mk_client(names[i]);

        sub(c.channel, "t.x.y");
        sub(c.pattern, tpats[2 * i]);
        sub(c.pattern, tpats[2 * i + 1]);
        if (i == victim)
            v = c;
    }
    slow = by_channel ? v.channel : v.pattern;
    slow->slow = true;
    v.channel->ignore = true;
    v.pattern->ignore = true;
    subs = trie_subscription_count(core.resp_subs.trie);

    r = pubs("t.x.y", "slow");
    ck_assert_uint_eq(r.seq, 1);
    /* The slow handle got one delivery and closed its client: both handles left the trie. */
    ck_assert_uint_eq(slow->got, 1);
    ck_assert(sink_closed(&v.channel->sink) && sink_closed(&v.pattern->sink));
    ck_assert_uint_eq(trie_subscription_count(core.resp_subs.trie), subs - 3);
    for (unsigned k = 0; k < v.pattern->npats; k++) {
        const char *p = v.pattern->pats[k];

        if (strcmp(p, "t.x.y") != 0)
            ck_assert_ptr_null(trie_find(core.resp_subs.trie, p, strlen(p)));
    }
    /* What the victim got before it closed is right, and no more than its share. */
    for (size_t k = 0; k < ndlog; k++) {
        if (dlog[k].ts == v.channel || dlog[k].ts == v.pattern)
            check_delivery(&dlog[k], &b, "t.x.y", "slow", 4, 1);
    }
    free(b.p);
    ck_assert_uint_le(slow->partner->got, slow->partner == v.channel ? 1 : 2);
    /* The other clients got the event: a message and two pmessages each. */
    ck_assert_uint_eq(check_event(0, "t.x.y", "slow", 4, 1), 3 * (nclients - 1));
    /* Every deliver call counts, the one that closed the slow consumer too. */
    ck_assert_uint_eq(r.receivers, ndlog);
    reset_log();

    /* The next event reaches only the others. */
    ck_assert_uint_eq(pub_check("t.x.y", "next", 4, 2), 3 * (nclients - 1));
    ck_assert_uint_eq(v.channel->got + v.pattern->got, 0);
}

START_TEST(test_slow_client_during_walk)
{
    /* Every client in turn, by either handle, so the closed handles fall at
     * different places in the target vector. */
    for (unsigned nclients = 3; nclients <= NTPATS / 2; nclients += 3) {
        for (unsigned victim = 0; victim < nclients; victim++) {
            for (int by_channel = 0; by_channel < 2; by_channel++) {
                slow_client(nclients, victim, by_channel);
                finish();
                core_fini();
                core_init();
            }
        }
    }
}

END_TEST

/* ------------------------------------------------------------ payloads */

START_TEST(test_binary_payload)
{
    static const char bin[] = "\0bin\0\xff\r\n\0";
    static const char msg[] = "*3\r\n$7\r\nmessage\r\n$5\r\nbin.t\r\n$9\r\n\0bin\0\xff\r\n\0\r\n";
    static const char empty[] = "*3\r\n$7\r\nmessage\r\n$5\r\nbin.t\r\n$0\r\n\r\n";
    static const char tricky[] = "*1\r\n$1\r\nx\r\n\x93\x07\xc4";
    struct tsink *l = mk_link("l");
    struct client c = mk_client("c");

    sub(l, "bin.>");
    sub(c.channel, "bin.t");
    sub(c.pattern, "bin.*");
    ck_assert_uint_eq(pub_check("bin.t", bin, sizeof(bin) - 1, 1), 3);
    assert_bytes(only(c.channel, 0), msg, sizeof(msg) - 1);
    assert_msg(only(l, 0), "bin.t", 1, bin, 9);
    reset_log();

    ck_assert_uint_eq(pub_check("bin.t", "", 0, 2), 3);
    assert_bytes(only(c.channel, 0), empty, sizeof(empty) - 1);
    reset_log();

    /* Bytes that look like RESP and msgpack are only bytes. */
    ck_assert_uint_eq(pub_check("bin.t", tricky, sizeof(tricky) - 1, 3), 3);
    finish();
}

END_TEST

START_TEST(test_large_payload)
{
    char *big = malloc(BIG_PAYLOAD);
    struct tsink *l = mk_link("l");
    struct client c = mk_client("c");
    struct client d = mk_client("d");
    size_t nuls = 0;

    ck_assert_ptr_nonnull(big);
    for (size_t i = 0; i < BIG_PAYLOAD; i++) {
        big[i] = (char)(i * 131 + 7 + i / 256);
        nuls += big[i] == '\0';
    }
    ck_assert_uint_gt(nuls, 0);
    sub(l, "big.>");
    sub(c.channel, "big.t");
    sub(c.pattern, "big.*");
    sub(c.pattern, ">");
    sub(d.pattern, ">");
    ck_assert_uint_eq(pub_check("big.t", big, BIG_PAYLOAD, 1), 5);
    reset_log();
    /* Again, changed: the encode buffer holds nothing of the last event. */
    big[0] ^= 1;
    big[BIG_PAYLOAD - 1] ^= 1;
    ck_assert_uint_eq(pub_check("big.t", big, BIG_PAYLOAD, 2), 5);
    reset_log();
    ck_assert_uint_eq(pub_check("big.t", "s", 1, 3), 5);
    free(big);
    finish();
}

END_TEST

START_TEST(test_long_pattern)
{
    /* A pattern and a topic of TOPIC_MAX_LEN bytes: the pmessage names all of it. */
    static char pattern[TOPIC_MAX_LEN + 1], topic[TOPIC_MAX_LEN + 1];
    struct tsink *l = mk_link("l");
    struct client c = mk_client("c");
    size_t patlen;

    memset(pattern, 'a', TOPIC_MAX_LEN - 2);
    memcpy(pattern + TOPIC_MAX_LEN - 2, ".>", 3);
    memcpy(topic, pattern, TOPIC_MAX_LEN - 1);
    topic[TOPIC_MAX_LEN - 1] = 'z';
    ck_assert_uint_eq(strlen(pattern), TOPIC_MAX_LEN);
    ck_assert_uint_eq(strlen(topic), TOPIC_MAX_LEN);
    sub(l, pattern);
    sub(c.channel, topic);
    sub(c.pattern, pattern);
    ck_assert_uint_eq(pub_check(topic, "p", 1, 1), 3);
    ck_assert_ptr_nonnull(pm_pattern(only(c.pattern, 0), &patlen));
    ck_assert_uint_eq(patlen, TOPIC_MAX_LEN);
    finish();
}

END_TEST

/* ------------------------------------------------------------ frames */

START_TEST(test_frames_released)
{
    struct tsink *l1 = mk_link("l1");
    struct tsink *l2 = mk_link("l2");
    struct client c = mk_client("c");
    struct client d = mk_client("d");
    struct frame *v[16];
    size_t nf;

    sub(l1, ">");
    sub(l2, "f.*");
    sub(c.channel, "f.g");
    sub(c.pattern, "f.*");
    sub(c.pattern, ">");
    sub(d.pattern, "f.*");

    /* Held: each frame lives while sinks hold it, by their references only. */
    ck_assert_uint_eq(pub_check("f.g", "held", 4, 1), 6);
    nf = distinct_frames(v, 16);
    ck_assert_uint_eq(nf, 4); /* MSG, message, pmessage f.*, pmessage > */
    ck_assert_uint_eq(frame_live(), live_base + nf);
    for (size_t k = 0; k < nf; k++) {
        uint32_t holders = 0;

        for (size_t i = 0; i < ndlog; i++)
            holders += dlog[i].f == v[k];
        ck_assert_uint_eq(v[k]->refs, holders);
    }
    reset_log();
    ck_assert_uint_eq(frame_live(), live_base);

    /* Not held: freed by the time router_publish returns. */
    hold = false;
    ck_assert_uint_eq(pub_check("f.g", "loose", 5, 2), 6);
    ck_assert_uint_eq(frame_live(), live_base);
    reset_log();

    /* After router_cleanup the router starts afresh. */
    router_cleanup();
    hold = true;
    ck_assert_uint_eq(pub_check("f.g", "again", 5, 3), 6);
    ck_assert_uint_eq(frame_live(), live_base + 4);
    finish();
}

END_TEST

/* Seconds per test: generous, as the machine may be shared with load tests. */
#define TCASE_TIMEOUT 60

static Suite *router_suite(void)
{
    Suite *s = suite_create("router");
    TCase *tc = tcase_create("route");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_seq_per_topic);
    tcase_add_test(tc, test_link_once_through_patterns);
    tcase_add_test(tc, test_resp_message_and_pmessage);
    tcase_add_test(tc, test_receivers_and_stats);
    tcase_set_timeout(tc, TCASE_TIMEOUT);
    suite_add_tcase(s, tc);

    tc = tcase_create("encode");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_encode_once_links);
    tcase_add_test(tc, test_encode_once_resp);
    tcase_add_test(tc, test_frames_released);
    tcase_set_timeout(tc, TCASE_TIMEOUT);
    suite_add_tcase(s, tc);

    tc = tcase_create("skipped");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_closed_skipped);
    tcase_add_test(tc, test_endpoint_not_started);
    tcase_add_test(tc, test_slow_link_during_walk);
    tcase_add_test(tc, test_slow_client_during_walk);
    tcase_set_timeout(tc, TCASE_TIMEOUT);
    suite_add_tcase(s, tc);

    tc = tcase_create("payload");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_binary_payload);
    tcase_add_test(tc, test_large_payload);
    tcase_add_test(tc, test_long_pattern);
    tcase_set_timeout(tc, TCASE_TIMEOUT);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return check_run_suite(router_suite());
}

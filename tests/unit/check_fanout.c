/*
 * The fan-out (common/fanout.h), driven through a real trie with test
 * subscribers whose deliver op records every delivery and keeps a reference
 * to its frame (as a real output queue does) until the test drops them.
 * What it checks: once per subscriber against once per matching pattern;
 * each form encoded once per event, lazily, and the same frame handed to
 * every target of that form; per-node forms encoded once per matching node
 * and given that node; closed subscribers skipped and not counted; a
 * delivery that closes subscribers and unsubscribes them mid-fan-out (the
 * trie then prunes nodes still named in the target vector); every frame
 * released once the subscribers let go; the returned count; nothing encoded
 * when nothing matches; fanout_collect_node.
 */
#include <check.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "common/fanout.h"
#include "common/frame.h"
#include "common/sink.h"
#include "common/trie.h"
#include "tests/support/check_main.h"

#define MAX_SINKS 1200
#define MAX_PATS  4
#define MAX_LOG   4096
#define PAT_CAP   64 /* the test patterns are short */

/* A test subscriber: struct sink first, as in every real one. */
struct tsink {
    struct sink sink;
    unsigned got;               /* deliveries */
    const char *pats[MAX_PATS]; /* its patterns */
    unsigned npats;
    bool subscribed;       /* still in the trie */
    bool closer;           /* a delivery to it closes it and its partner */
    struct tsink *partner; /* closed with it (another handle of one client) */
};

struct delivery {
    struct tsink *ts;
    struct frame *f;
    bool held; /* the test holds a reference to f */
};

struct encode_call {
    uint8_t form;
    const struct trie_node *node;
    char pattern[PAT_CAP]; /* trie_node_pattern(node) when encoded */
    struct frame *f;       /* not a reference */
};

static struct trie *trie;
static struct fanout fo;
static struct tsink sinks[MAX_SINKS];
static struct delivery dlog[MAX_LOG];
static size_t ndlog;
static struct encode_call calls[MAX_LOG];
static size_t ncalls;
static bool hold;             /* deliveries take a reference to their frame */
static bool close_on_deliver; /* deliveries to closers close them (see close_client) */
static char event[] = "ev";

static void setup(void)
{
    trie = trie_new();
    memset(&fo, 0, sizeof(fo));
    memset(sinks, 0, sizeof(sinks));
    ndlog = 0;
    ncalls = 0;
    hold = true;
    close_on_deliver = false;
}

/* Drops the references the deliveries hold. */
static void drop_all(void)
{
    for (size_t i = 0; i < ndlog; i++) {
        if (dlog[i].held)
            frame_unref(&dlog[i].f);
        dlog[i].held = false;
    }
}

/* Forgets the deliveries and encodes recorded so far (dropping references). */
static void reset_log(void)
{
    drop_all();
    ndlog = 0;
    ncalls = 0;
    for (size_t i = 0; i < MAX_SINKS; i++)
        sinks[i].got = 0;
}

static void teardown(void)
{
    drop_all();
    fanout_free(&fo);
    trie_free(trie);
    trie = NULL;
}

static void unsub_all(struct tsink *ts)
{
    if (!ts->subscribed)
        return;
    for (unsigned i = 0; i < ts->npats; i++)
        ck_assert_int_eq(trie_unsubscribe(trie, ts->pats[i], strlen(ts->pats[i]), &ts->sink, NULL),
                         0);
    ts->subscribed = false;
}

/* What a slow consumer's close does: flag it, leave the trie. */
static void close_sink(struct tsink *ts)
{
    ts->sink.flags |= SINK_CLOSED;
    unsub_all(ts);
}

static void close_client(struct tsink *ts)
{
    close_sink(ts);
    if (ts->partner)
        close_sink(ts->partner);
}

static int t_deliver(struct sink *s, struct frame *f)
{
    struct tsink *ts = (struct tsink *)s;

    ck_assert_msg(!sink_closed(s), "delivery to a closed sink");
    ck_assert_uint_lt(ndlog, MAX_LOG);
    ck_assert_uint_ge(f->refs, 1);
    dlog[ndlog].ts = ts;
    dlog[ndlog].f = hold ? frame_ref(f) : f;
    dlog[ndlog].held = hold;
    ndlog++;
    ts->got++;
    if (close_on_deliver && ts->closer) {
        close_client(ts);
        return -1;
    }
    return 0;
}

static int t_flush(struct sink *s)
{
    (void)s;
    ck_abort_msg("the fan-out never flushes");
    return 0;
}

static const struct sink_ops ops = {t_deliver, t_flush};

/* Frames read "<event>|<form>|<pattern of the node given>". */
static struct frame *t_encode(void *ev, uint8_t form, const struct trie_node *node)
{
    struct encode_call *c;
    char buf[128];
    size_t plen;
    int len;

    ck_assert_uint_lt(ncalls, MAX_LOG);
    ck_assert_ptr_nonnull(node);
    c = &calls[ncalls++];
    c->form = form;
    c->node = node;
    plen = trie_node_pattern(node, c->pattern, sizeof(c->pattern));
    ck_assert_uint_lt(plen, sizeof(c->pattern));
    len = snprintf(buf, sizeof(buf), "%s|%u|%s", (const char *)ev, (unsigned)form, c->pattern);
    ck_assert(len > 0 && (size_t)len < sizeof(buf));
    c->f = frame_from(buf, (size_t)len);
    return c->f;
}

static struct tsink *mk(unsigned id, uint8_t form)
{
    ck_assert_uint_lt(id, MAX_SINKS);
    sinks[id].sink.form = form;
    return &sinks[id];
}

static void sub(struct tsink *ts, const char *pattern)
{
    bool first, added;

    ck_assert_uint_lt(ts->npats, MAX_PATS);
    ck_assert_ptr_nonnull(
        trie_subscribe(trie, pattern, strlen(pattern), &ts->sink, &first, &added));
    ck_assert(added);
    ts->pats[ts->npats++] = pattern;
    ts->subscribed = true;
}

static uint64_t publish(const char *topic, bool per_pattern, uint8_t per_node)
{
    return fanout_publish(&fo, trie, topic, strlen(topic), per_pattern, &ops, per_node, t_encode,
                          event);
}

static size_t encodes_of(uint8_t form)
{
    size_t n = 0;

    for (size_t i = 0; i < ncalls; i++)
        n += calls[i].form == form;
    return n;
}

/* The pattern a per-node frame names ("ev|1|a.*" -> "a.*"), as a NUL-terminated copy. */
static void frame_pattern(const struct frame *f, char *out, size_t cap)
{
    const char *bar = memchr(f->data, '|', f->len);
    const char *bar2;
    size_t n;

    ck_assert_ptr_nonnull(bar);
    bar2 = memchr(bar + 1, '|', f->len - (size_t)(bar + 1 - f->data));
    ck_assert_ptr_nonnull(bar2);
    n = f->len - (size_t)(bar2 + 1 - f->data);
    ck_assert_uint_lt(n, cap);
    memcpy(out, bar2 + 1, n);
    out[n] = '\0';
}

/* The frame's form field. */
static unsigned frame_form(const struct frame *f)
{
    ck_assert_uint_ge(f->len, 5);
    ck_assert_mem_eq(f->data, "ev|", 3);
    return (unsigned)(f->data[3] - '0');
}

static bool has_pattern(const struct tsink *ts, const char *pattern)
{
    for (unsigned i = 0; i < ts->npats; i++) {
        if (strcmp(ts->pats[i], pattern) == 0)
            return true;
    }
    return false;
}

/* ------------------------------------------------------ per subscriber */

START_TEST(test_once_per_subscriber)
{
    struct tsink *s = mk(0, 0);
    struct tsink *t = mk(1, 0);

    sub(s, "a.*");
    sub(s, "a.>");
    sub(t, "a.>");
    ck_assert_uint_eq(publish("a.b", false, 0), 2);
    ck_assert_uint_eq(s->got, 1);
    ck_assert_uint_eq(t->got, 1);
    ck_assert_uint_eq(ndlog, 2);
    ck_assert_uint_eq(ncalls, 1);
}

END_TEST

START_TEST(test_once_per_pattern)
{
    struct tsink *s = mk(0, 0);
    struct tsink *t = mk(1, 0);

    sub(s, "a.*");
    sub(s, "a.>");
    sub(t, "a.>");
    ck_assert_uint_eq(publish("a.b", true, 0), 3);
    ck_assert_uint_eq(s->got, 2);
    ck_assert_uint_eq(t->got, 1);
    /* Form 0 is not per node: one frame for all three deliveries. */
    ck_assert_uint_eq(ncalls, 1);
    for (size_t i = 0; i < ndlog; i++)
        ck_assert_ptr_eq(dlog[i].f, calls[0].f);
    /* "a.b.c" matches only "a.>". */
    reset_log();
    ck_assert_uint_eq(publish("a.b.c", true, 0), 2);
    ck_assert_uint_eq(s->got, 1);
    ck_assert_uint_eq(t->got, 1);
}

END_TEST

/* Patterns matching "t.x.y": more than the trie's dedup-by-probe limit. */
static const char *const tpats[] = {"t.x.y", "t.x.*", "t.*.y", "*.x.y", "t.>", "t.x.>",
                                    "*.*.y", "*.x.*", "t.*.*", "*.*.*", ">",   "*.>"};
#define NTPATS (sizeof(tpats) / sizeof(tpats[0]))

START_TEST(test_many_patterns)
{
    struct tsink *spread = mk(0, 0);
    struct tsink *few[3];
    uint64_t want = 0;

    /* few[k]: four consecutive patterns each; spread: every third one. */
    for (unsigned k = 0; k < 3; k++)
        few[k] = mk(1 + k, 0);
    for (unsigned i = 0; i < NTPATS; i++)
        sub(few[i / 4], tpats[i]);
    for (unsigned i = 0; i < 4; i++)
        sub(spread, tpats[i * 3]);
    ck_assert_uint_eq(publish("t.x.y", false, 0), 4);
    for (unsigned k = 0; k < 3; k++)
        ck_assert_uint_eq(few[k]->got, 1);
    ck_assert_uint_eq(spread->got, 1);
    ck_assert_uint_eq(ncalls, 1);

    reset_log();
    for (unsigned k = 0; k < 3; k++)
        want += few[k]->npats;
    want += spread->npats;
    ck_assert_uint_eq(publish("t.x.y", true, 0), want);
    for (unsigned k = 0; k < 3; k++)
        ck_assert_uint_eq(few[k]->got, 4);
    ck_assert_uint_eq(spread->got, 4);
    ck_assert_uint_eq(ncalls, 1);
}

END_TEST

/* ------------------------------------------------------ encode once */

static void encode_once_per_form(bool per_pattern)
{
    static const char *const pats[] = {"q.r", "q.*", "q.>", ">"};
    unsigned id = 0;
    struct frame *by_form[FANOUT_FORMS] = {NULL};

    /* Forms 0, 1, 3 on matching patterns; form 2 only on patterns that do not match. */
    for (unsigned i = 0; i < 12; i++) {
        struct tsink *ts = mk(id++, (uint8_t)(i % 3 == 2 ? 3 : i % 3));

        sub(ts, pats[i % 4]);
        if (i % 2)
            sub(ts, pats[(i + 1) % 4]);
    }
    for (unsigned i = 0; i < 3; i++)
        sub(mk(id++, 2), i ? "q.s" : "z.>");
    ck_assert_uint_gt(publish("q.r", per_pattern, 0), 0);
    ck_assert_uint_eq(ncalls, 3);
    ck_assert_uint_eq(encodes_of(0), 1);
    ck_assert_uint_eq(encodes_of(1), 1);
    ck_assert_uint_eq(encodes_of(2), 0);
    ck_assert_uint_eq(encodes_of(3), 1);
    for (size_t i = 0; i < ncalls; i++)
        by_form[calls[i].form] = calls[i].f;
    /* Every target of a form got that form's one frame. */
    for (size_t i = 0; i < ndlog; i++) {
        uint8_t form = dlog[i].ts->sink.form;

        ck_assert_ptr_eq(dlog[i].f, by_form[form]);
        ck_assert_uint_eq(frame_form(dlog[i].f), form);
    }
    for (unsigned i = 12; i < 15; i++)
        ck_assert_uint_eq(sinks[i].got, 0);
}

START_TEST(test_encode_once_per_form)
{
    encode_once_per_form(false);
}

END_TEST

START_TEST(test_encode_once_per_form_per_pattern)
{
    encode_once_per_form(true);
}

END_TEST

START_TEST(test_same_frame_many_targets)
{
    /* Past the target vector's first capacity: one encode, one frame for all. */
    for (unsigned i = 0; i < 1000; i++)
        sub(mk(i, 0), i % 2 ? "big.topic" : "big.*");
    ck_assert_uint_eq(publish("big.topic", false, 0), 1000);
    ck_assert_uint_eq(ncalls, 1);
    ck_assert_uint_eq(ndlog, 1000);
    for (unsigned i = 0; i < 1000; i++)
        ck_assert_uint_eq(sinks[i].got, 1);
    for (size_t i = 0; i < ndlog; i++)
        ck_assert_ptr_eq(dlog[i].f, calls[0].f);
    /* The frame is held by the 1000 deliveries only. */
    ck_assert_uint_eq(calls[0].f->refs, 1000);
    /* The vector is reused by the next event. */
    reset_log();
    ck_assert_uint_eq(publish("big.topic", false, 0), 1000);
    ck_assert_uint_eq(ncalls, 1);
}

END_TEST

/* ------------------------------------------------------ per-node forms */

START_TEST(test_per_node_once_per_node)
{
    static const char *const pats[] = {"a.b.c", "a.*.c", "a.>", "*.b.*", ">"};
    const uint8_t per_node = 1u << 1;
    unsigned id = 0;
    struct tsink *both;
    char pat[PAT_CAP];

    for (unsigned p = 0; p < 5; p++) {
        for (unsigned k = 0; k < 3; k++)
            sub(mk(id++, 1), pats[p]);
        sub(mk(id++, 0), pats[p]);
    }
    both = mk(id++, 1);
    sub(both, "a.b.c");
    sub(both, "a.>");
    sub(mk(id++, 1), "a.b.d"); /* does not match */

    ck_assert_uint_eq(publish("a.b.c", true, per_node), 5 * 4 + 2);
    /* Form 1: once per matching node, given that node; form 0: once. */
    ck_assert_uint_eq(encodes_of(0), 1);
    ck_assert_uint_eq(encodes_of(1), 5);
    ck_assert_uint_eq(ncalls, 6);
    for (unsigned p = 0; p < 5; p++) {
        const struct trie_node *node = trie_find(trie, pats[p], strlen(pats[p]));
        size_t found = 0;

        for (size_t i = 0; i < ncalls; i++) {
            if (calls[i].form != 1 || strcmp(calls[i].pattern, pats[p]) != 0)
                continue;
            found++;
            ck_assert_ptr_eq(calls[i].node, node);
        }
        ck_assert_uint_eq(found, 1);
    }
    /* Each form-1 delivery names a pattern of its sink, and that node's one frame. */
    for (size_t i = 0; i < ndlog; i++) {
        if (dlog[i].ts->sink.form != 1)
            continue;
        frame_pattern(dlog[i].f, pat, sizeof(pat));
        ck_assert_msg(has_pattern(dlog[i].ts, pat), "sink got the frame of %s", pat);
        for (size_t c = 0; c < ncalls; c++) {
            if (calls[c].form == 1 && strcmp(calls[c].pattern, pat) == 0)
                ck_assert_ptr_eq(dlog[i].f, calls[c].f);
        }
    }
    /* The sink of two matching patterns got both frames. */
    ck_assert_uint_eq(both->got, 2);
    {
        char p0[PAT_CAP] = "", p1[PAT_CAP] = "";
        unsigned k = 0;

        for (size_t i = 0; i < ndlog; i++) {
            if (dlog[i].ts == both)
                frame_pattern(dlog[i].f, k++ ? p1 : p0, PAT_CAP);
        }
        ck_assert_str_ne(p0, p1);
        ck_assert(has_pattern(both, p0) && has_pattern(both, p1));
    }
    ck_assert_uint_eq(sinks[id - 1].got, 0);
}

END_TEST

START_TEST(test_per_node_per_subscriber)
{
    const uint8_t per_node = 1u << 2;
    struct tsink *x = mk(0, 2);
    struct tsink *y = mk(1, 2);
    struct tsink *z = mk(2, 0);
    char pat[PAT_CAP];

    /* per_pattern false: one delivery each, naming a pattern that matched. */
    sub(x, "a.*");
    sub(x, "a.>");
    sub(y, "a.>");
    sub(z, "a.*");
    sub(z, "a.b");
    ck_assert_uint_eq(publish("a.b", false, per_node), 3);
    ck_assert_uint_eq(x->got, 1);
    ck_assert_uint_eq(y->got, 1);
    ck_assert_uint_eq(z->got, 1);
    ck_assert_uint_eq(encodes_of(0), 1);
    ck_assert_uint_ge(encodes_of(2), 1);
    ck_assert_uint_le(encodes_of(2), 2);
    for (size_t i = 0; i < ncalls; i++)
        ck_assert_ptr_eq(calls[i].node,
                         trie_find(trie, calls[i].pattern, strlen(calls[i].pattern)));
    for (size_t i = 0; i < ndlog; i++) {
        if (dlog[i].ts->sink.form != 2)
            continue;
        frame_pattern(dlog[i].f, pat, sizeof(pat));
        ck_assert_msg(has_pattern(dlog[i].ts, pat), "sink got the frame of %s", pat);
    }
}

END_TEST

/* ------------------------------------------------------ closed sinks */

START_TEST(test_closed_skipped)
{
    struct tsink *lone;

    for (unsigned i = 0; i < 6; i++) {
        sub(mk(i, 0), "x.>");
        sub(&sinks[i], "x.y");
    }
    sinks[1].sink.flags |= SINK_CLOSED;
    sinks[3].sink.flags |= SINK_CLOSED | SINK_DIRTY;
    /* The only form-1 subscriber is closed: form 1 is never encoded. */
    lone = mk(6, 1);
    sub(lone, "x.y");
    lone->sink.flags |= SINK_CLOSED;

    ck_assert_uint_eq(publish("x.y", false, 0), 4);
    ck_assert_uint_eq(ndlog, 4);
    ck_assert_uint_eq(encodes_of(1), 0);
    ck_assert_uint_eq(ncalls, 1);
    for (unsigned i = 0; i < 7; i++)
        ck_assert_uint_eq(sinks[i].got, (i == 1 || i == 3 || i == 6) ? 0 : 1);

    reset_log();
    ck_assert_uint_eq(publish("x.y", true, 1u << 1), 8);
    ck_assert_uint_eq(ndlog, 8);
    ck_assert_uint_eq(encodes_of(1), 0);
    for (unsigned i = 0; i < 7; i++)
        ck_assert_uint_eq(sinks[i].got, (i == 1 || i == 3 || i == 6) ? 0 : 2);

    /* Everything closed: nothing delivered, nothing encoded. */
    reset_log();
    for (unsigned i = 0; i < 7; i++)
        sinks[i].sink.flags |= SINK_CLOSED;
    ck_assert_uint_eq(publish("x.y", true, 0), 0);
    ck_assert_uint_eq(ndlog, 0);
    ck_assert_uint_eq(ncalls, 0);
}

END_TEST

/*
 * nclients clients of two handles (sinks 2k and 2k+1, forms 0 and 1), each
 * handle on a pattern of its own (pruned when it leaves) and on the shared
 * "t.>"; the handles of client `victim` close their client on delivery.
 */
static void build_clients(unsigned nclients, unsigned victim)
{
    for (unsigned i = 0; i < 2 * nclients; i++) {
        struct tsink *ts = mk(i, (uint8_t)(i % 2));

        ts->partner = &sinks[i ^ 1];
        ts->closer = i / 2 == victim;
        sub(ts, tpats[i]);
        if (strcmp(tpats[i], "t.>") != 0)
            sub(ts, "t.>");
    }
}

/*
 * Every client in turn is the victim, so the closed handles' targets fall at
 * different places in the target vector; with 3 clients (6 matching nodes)
 * and with 6 (12 nodes, past the trie's dedup-by-probe limit).
 */
static void close_during_walk(bool per_pattern, unsigned nclients)
{
    uint64_t base = frame_live();

    for (unsigned victim = 0; victim < nclients; victim++) {
        struct tsink *a, *b, *first;
        size_t subs_before, victim_subs, others = 0;
        uint64_t n;

        teardown(); /* a fresh trie and fan-out per victim */
        setup();
        build_clients(nclients, victim);
        a = &sinks[2 * victim];
        b = &sinks[2 * victim + 1];
        close_on_deliver = true;
        subs_before = trie_subscription_count(trie);
        victim_subs = a->npats + b->npats;
        for (unsigned i = 0; i < 2 * nclients; i++) {
            if (i / 2 != victim)
                others += per_pattern ? sinks[i].npats : 1;
        }

        n = publish("t.x.y", per_pattern, 1u << 1);
        ck_assert_uint_eq(n, ndlog);
        /* The victim's first delivered handle got one event and closed both
         * handles (leaving the trie); the other handle got nothing. */
        first = a->got ? a : b;
        ck_assert_uint_eq(first->got, 1);
        ck_assert_uint_eq(first->partner->got, 0);
        ck_assert(sink_closed(&a->sink) && sink_closed(&b->sink));
        ck_assert_uint_eq(trie_subscription_count(trie), subs_before - victim_subs);
        for (unsigned i = 2 * victim; i < 2 * victim + 2; i++) {
            if (strcmp(tpats[i], "t.>") != 0)
                ck_assert_ptr_null(trie_find(trie, tpats[i], strlen(tpats[i])));
        }
        /* Every other handle still got the event, once or once per pattern. */
        for (unsigned i = 0; i < 2 * nclients; i++) {
            if (i / 2 != victim)
                ck_assert_uint_eq(sinks[i].got, per_pattern ? sinks[i].npats : 1);
        }
        ck_assert_uint_eq(ndlog, 1 + others);
        /* The nodes handed to the encoder were alive (trie_node_pattern read
         * them); per-node frames name a pattern of their sink. */
        for (size_t i = 0; i < ndlog; i++) {
            char pat[PAT_CAP];

            if (dlog[i].ts->sink.form != 1)
                continue;
            frame_pattern(dlog[i].f, pat, sizeof(pat));
            ck_assert(has_pattern(dlog[i].ts, pat));
        }

        /* The next event reaches only the others. */
        reset_log();
        n = publish("t.x.y", per_pattern, 1u << 1);
        ck_assert_uint_eq(n, ndlog);
        ck_assert_uint_eq(ndlog, others);
        ck_assert_uint_eq(a->got + b->got, 0);
        drop_all();
        ck_assert_uint_eq(frame_live(), base);
    }
}

START_TEST(test_close_during_walk)
{
    close_during_walk(false, 3);
    close_during_walk(false, NTPATS / 2);
}

END_TEST

START_TEST(test_close_during_walk_per_pattern)
{
    close_during_walk(true, 3);
    close_during_walk(true, NTPATS / 2);
}

END_TEST

/* ------------------------------------------------------ frames, count */

START_TEST(test_frames_released)
{
    static const char *const pats[] = {"m.n", "m.*", "*.n", ">"};
    const uint8_t per_node = 1u << 2;
    uint64_t base = frame_live();
    unsigned id = 0;

    for (unsigned p = 0; p < 4; p++) {
        for (uint8_t form = 0; form < 3; form++) {
            sub(mk(id++, form), pats[p]);
            sub(mk(id++, form), pats[p]);
        }
    }
    /* Held: each frame lives while some delivery holds it, by those references only. */
    ck_assert_uint_eq(publish("m.n", true, per_node), 24);
    ck_assert_uint_eq(ncalls, 1 + 1 + 4);
    ck_assert_uint_eq(frame_live(), base + ncalls);
    for (size_t c = 0; c < ncalls; c++) {
        uint32_t holders = 0;

        for (size_t i = 0; i < ndlog; i++)
            holders += dlog[i].f == calls[c].f;
        ck_assert_uint_eq(calls[c].f->refs, holders);
    }
    drop_all();
    ck_assert_uint_eq(frame_live(), base);

    /* Not held: gone when the call returns, the replaced per-node ones too. */
    reset_log();
    hold = false;
    ck_assert_uint_eq(publish("m.n", true, per_node), 24);
    ck_assert_uint_eq(ncalls, 6);
    ck_assert_uint_eq(frame_live(), base);
    ck_assert_uint_eq(publish("m.n", false, per_node), 24);
    ck_assert_uint_eq(frame_live(), base);
}

END_TEST

START_TEST(test_count_and_nothing_matches)
{
    /* Empty trie. */
    ck_assert_uint_eq(publish("a", false, 0), 0);
    ck_assert_uint_eq(publish("a.b", true, 0xff), 0);
    ck_assert_uint_eq(ncalls, 0);

    sub(mk(0, 0), "a.b");
    sub(mk(1, 1), "a.*");
    sub(&sinks[1], "b.>");
    sub(mk(2, 3), "c");
    ck_assert_uint_eq(publish("a.b", true, 0xff), 2);
    ck_assert_uint_eq(fo.n, 2);
    /* No match: the targets of the last event are not reused; nothing encoded. */
    reset_log();
    ck_assert_uint_eq(publish("a.c.d", true, 0xff), 0);
    ck_assert_uint_eq(publish("b", false, 0xff), 0);
    ck_assert_uint_eq(publish("d", false, 0), 0);
    ck_assert_uint_eq(fo.n, 0);
    ck_assert_uint_eq(ncalls, 0);
    ck_assert_uint_eq(ndlog, 0);
    /* The count is the deliveries made. */
    ck_assert_uint_eq(publish("b.x.y", false, 0), 1);
    ck_assert_uint_eq(publish("c", true, 0), 1);
    ck_assert_uint_eq(publish("a.x", true, 0), 1);
    ck_assert_uint_eq(ndlog, 3);
    ck_assert_uint_eq(sinks[1].got, 2);
    ck_assert_uint_eq(sinks[2].got, 1);
}

END_TEST

/* ------------------------------------------------------ collect_node */

START_TEST(test_collect_node)
{
    struct trie_node *node;
    bool seen[5] = {false};

    for (unsigned i = 0; i < 5; i++)
        sub(mk(i, 0), "a.b");
    sub(mk(5, 0), "a.*");
    sub(mk(6, 0), "a.b.c");
    sub(mk(7, 0), "a.>");
    sub(&sinks[0], "a.>");
    /* Leave other targets in the vector first. */
    ck_assert_uint_eq(publish("a.b", true, 0), 8);
    reset_log();

    node = trie_find(trie, "a.b", 3);
    ck_assert_ptr_nonnull(node);
    ck_assert_uint_eq(fanout_collect_node(&fo, node), 5);
    ck_assert_uint_eq(fo.n, 5);
    for (size_t i = 0; i < fo.n; i++) {
        struct tsink *ts = (struct tsink *)fo.v[i].sink;
        size_t k = (size_t)(ts - sinks);

        ck_assert_ptr_eq(fo.v[i].node, node);
        ck_assert_uint_lt(k, 5);
        ck_assert(!seen[k]);
        seen[k] = true;
    }
    ck_assert_uint_eq(ndlog, 0);
    ck_assert_uint_eq(ncalls, 0);
    /* The caller may unsubscribe each; the last prunes the node. */
    for (size_t i = 0; i < fo.n; i++)
        ck_assert_int_eq(trie_unsubscribe_node(trie, node, fo.v[i].sink, NULL), 0);
    ck_assert_ptr_null(trie_find(trie, "a.b", 3));
    ck_assert_uint_eq(publish("a.b", false, 0), 3);
    ck_assert_uint_eq(fanout_collect_node(&fo, trie_find(trie, "a.>", 3)), 2);
}

END_TEST

/* Seconds per test: generous, as the machine may be shared with load tests. */
#define TCASE_TIMEOUT 60

static Suite *fanout_suite(void)
{
    Suite *s = suite_create("fanout");
    TCase *tc = tcase_create("match");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_once_per_subscriber);
    tcase_add_test(tc, test_once_per_pattern);
    tcase_add_test(tc, test_many_patterns);
    tcase_add_test(tc, test_count_and_nothing_matches);
    tcase_add_test(tc, test_collect_node);
    tcase_set_timeout(tc, TCASE_TIMEOUT);
    suite_add_tcase(s, tc);

    tc = tcase_create("encode");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_encode_once_per_form);
    tcase_add_test(tc, test_encode_once_per_form_per_pattern);
    tcase_add_test(tc, test_same_frame_many_targets);
    tcase_add_test(tc, test_per_node_once_per_node);
    tcase_add_test(tc, test_per_node_per_subscriber);
    tcase_add_test(tc, test_frames_released);
    tcase_set_timeout(tc, TCASE_TIMEOUT);
    suite_add_tcase(s, tc);

    tc = tcase_create("closed");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_closed_skipped);
    tcase_add_test(tc, test_close_during_walk);
    tcase_add_test(tc, test_close_during_walk_per_pattern);
    tcase_set_timeout(tc, TCASE_TIMEOUT);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return check_run_suite(fanout_suite());
}

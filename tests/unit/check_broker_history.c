/*
 * The broker's history store (broker/history.c): ranges (exact, empty,
 * beyond the head, evicted), size per topic and per-prefix rules (the most
 * specific wins), ttl (by range and by the tick), the memory cap (soonest
 * expiry first, bytes within the cap), a sequence that starts again, the
 * frames shared by reference (never copied) and all released at free, and
 * the measured heap cost of 100,000 retained events. Named check_broker_*
 * so that it links the broker library.
 */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "broker/history.h"
#include "common/frame.h"
#include "tests/support/check_main.h"
#include "tests/support/heap.h"

#define TTL 10000

static struct history *store(size_t size, size_t max_bytes)
{
    struct history_conf c = {size, TTL, max_bytes, NULL, 0};

    return history_new(&c);
}

/* Adds event seq of topic as a frame holding "<seq>"; the store's reference only. */
static struct frame *add(struct history *h, const char *topic, uint64_t seq, uint64_t now)
{
    char buf[32];
    int n = snprintf(buf, sizeof(buf), "%llu", (unsigned long long)seq);
    struct frame *f = frame_from(buf, (size_t)n);
    struct frame *kept = f;

    history_add(h, topic, strlen(topic), seq, f, now);
    frame_unref(&f);
    return kept;
}

struct got {
    uint64_t seqs[64];
    size_t n;
};

static void collect(void *arg, struct frame *f)
{
    struct got *g = arg;
    char buf[32];

    ck_assert_uint_lt(f->len, sizeof(buf));
    memcpy(buf, f->data, f->len);
    buf[f->len] = '\0';
    g->seqs[g->n++] = strtoull(buf, NULL, 10);
}

/* The range (after, head] of topic: -1 when not covered, else the seqs in g. */
static int range(struct history *h, const char *topic, uint64_t after, uint64_t head, uint64_t now,
                 struct got *g)
{
    memset(g, 0, sizeof(*g));
    return history_range(h, topic, strlen(topic), after, head, now, collect, g) ? 0 : -1;
}

static void assert_seqs(const struct got *g, uint64_t from, uint64_t to)
{
    ck_assert_uint_eq(g->n, to - from + 1);
    for (size_t i = 0; i < g->n; i++)
        ck_assert_uint_eq(g->seqs[i], from + i);
}

static struct history_stats stats(const struct history *h)
{
    struct history_stats st;

    history_stats(h, &st);
    return st;
}

/* ---------------------------------------------------------------- ranges */

START_TEST(test_last_n_kept)
{
    uint64_t live = frame_live();
    struct history *h = store(3, SIZE_MAX);
    struct got g;

    for (uint64_t s = 1; s <= 5; s++)
        add(h, "a.b", s, 0);
    ck_assert_int_eq(range(h, "a.b", 2, 5, 1, &g), 0);
    assert_seqs(&g, 3, 5);
    ck_assert_int_eq(range(h, "a.b", 3, 5, 1, &g), 0);
    assert_seqs(&g, 4, 5);
    ck_assert_int_eq(range(h, "a.b", 1, 5, 1, &g), -1);
    ck_assert_uint_eq(g.n, 0);
    ck_assert_int_eq(range(h, "a.b", 0, 5, 1, &g), -1);
    ck_assert_uint_eq(stats(h).events, 3);
    ck_assert_uint_eq(stats(h).topics, 1);
    ck_assert_uint_eq(stats(h).evicted[HISTORY_EVICT_SIZE], 2);
    ck_assert_uint_eq(frame_live(), live + 3);
    history_free(h);
    ck_assert_uint_eq(frame_live(), live);
}

END_TEST

START_TEST(test_empty_and_beyond_head)
{
    struct history *h = store(8, SIZE_MAX);
    struct got g;

    add(h, "a", 1, 0);
    add(h, "a", 2, 0);
    /* after == head: nothing missed, covered whatever is kept. */
    ck_assert_int_eq(range(h, "a", 2, 2, 0, &g), 0);
    ck_assert_uint_eq(g.n, 0);
    ck_assert_int_eq(range(h, "never", 7, 7, 0, &g), 0);
    ck_assert_int_eq(range(h, "never", 0, 0, 0, &g), 0);
    /* after > head: the position is from a sequence the broker forgot. */
    ck_assert_int_eq(range(h, "a", 3, 2, 0, &g), -1);
    /* A topic never kept with events missed. */
    ck_assert_int_eq(range(h, "never", 0, 3, 0, &g), -1);
    ck_assert_int_eq(range(h, "a", 0, 2, 0, &g), 0);
    assert_seqs(&g, 1, 2);
    history_free(h);
}

END_TEST

START_TEST(test_topics_independent)
{
    struct history *h = store(4, SIZE_MAX);
    struct got g;
    char t[16];

    for (uint64_t s = 1; s <= 6; s++) {
        for (int i = 0; i < 50; i++) {
            snprintf(t, sizeof(t), "t.%d", i);
            add(h, t, s, 0);
        }
    }
    ck_assert_uint_eq(stats(h).topics, 50);
    ck_assert_uint_eq(stats(h).events, 200);
    for (int i = 0; i < 50; i++) {
        snprintf(t, sizeof(t), "t.%d", i);
        ck_assert_int_eq(range(h, t, 2, 6, 0, &g), 0);
        assert_seqs(&g, 3, 6);
    }
    history_free(h);
}

END_TEST

START_TEST(test_size_one)
{
    struct history *h = store(1, SIZE_MAX);
    struct got g;

    for (uint64_t s = 1; s <= 3; s++)
        add(h, "x", s, 0);
    ck_assert_int_eq(range(h, "x", 2, 3, 0, &g), 0);
    assert_seqs(&g, 3, 3);
    ck_assert_int_eq(range(h, "x", 1, 3, 0, &g), -1);
    ck_assert_uint_eq(stats(h).events, 1);
    history_free(h);
}

END_TEST

START_TEST(test_off_keeps_nothing)
{
    uint64_t live = frame_live();
    struct history *h = store(0, SIZE_MAX);
    struct got g;

    add(h, "a", 1, 0);
    ck_assert_uint_eq(frame_live(), live);
    ck_assert_uint_eq(stats(h).events, 0);
    ck_assert_uint_eq(stats(h).topics, 0);
    ck_assert_int_eq(range(h, "a", 0, 1, 0, &g), -1);
    history_free(h);
}

END_TEST

/* The store keeps the caller's frame itself: one more reference, no copy. */
START_TEST(test_frame_shared_not_copied)
{
    struct history *h = store(2, SIZE_MAX);
    struct frame *f = frame_from("hello", 5);

    history_add(h, "a", 1, 1, f, 0);
    ck_assert_uint_eq(f->refs, 2);
    history_free(h);
    ck_assert_uint_eq(f->refs, 1);
    frame_unref(&f);
}

END_TEST

/* ----------------------------------------------------------------- rules */

START_TEST(test_rules_most_specific_wins)
{
    static const struct history_rule rules[] = {
        {"mail.>", 6, 2, TTL},  {"mail.user.>", 11, 5, TTL}, {"mail.*.inbox", 12, 3, TTL},
        {"noise.>", 7, 0, TTL}, {"mail.user.>", 11, 7, TTL}, /* the same specificity again: the
                                                                later wins */
    };
    struct history_conf c = {1, TTL, SIZE_MAX, rules, sizeof(rules) / sizeof(rules[0])};
    struct history *h = history_new(&c);
    struct got g;

    ck_assert_uint_eq(history_size_for(h, "mail.x", 6), 2);
    ck_assert_uint_eq(history_size_for(h, "mail.user.42", 12), 7);
    ck_assert_uint_eq(history_size_for(h, "mail.user.inbox", 15), 7);
    ck_assert_uint_eq(history_size_for(h, "mail.team.inbox", 15), 3);
    ck_assert_uint_eq(history_size_for(h, "noise.a", 7), 0);
    ck_assert_uint_eq(history_size_for(h, "other", 5), 1);
    for (uint64_t s = 1; s <= 10; s++) {
        add(h, "mail.x", s, 0);
        add(h, "noise.a", s, 0);
        add(h, "other", s, 0);
    }
    ck_assert_int_eq(range(h, "mail.x", 8, 10, 0, &g), 0);
    ck_assert_int_eq(range(h, "mail.x", 7, 10, 0, &g), -1);
    ck_assert_int_eq(range(h, "noise.a", 9, 10, 0, &g), -1);
    ck_assert_int_eq(range(h, "other", 9, 10, 0, &g), 0);
    ck_assert_uint_eq(stats(h).events, 3);
    history_free(h);
}

END_TEST

START_TEST(test_rule_ttl)
{
    static const struct history_rule rules[] = {{"short.>", 7, 10, 100}};
    struct history_conf c = {10, TTL, SIZE_MAX, rules, 1};
    struct history *h = history_new(&c);
    struct got g;

    add(h, "short.a", 1, 0);
    add(h, "long", 1, 0);
    ck_assert_int_eq(range(h, "short.a", 0, 1, 99, &g), 0);
    ck_assert_int_eq(range(h, "short.a", 0, 1, 100, &g), -1);
    ck_assert_int_eq(range(h, "long", 0, 1, 100, &g), 0);
    history_free(h);
}

END_TEST

/* ------------------------------------------------------------------- ttl */

START_TEST(test_ttl_by_range_and_tick)
{
    uint64_t live = frame_live();
    struct history *h = store(10, SIZE_MAX);
    struct got g;

    add(h, "a", 1, 0);
    add(h, "a", 2, 5000);
    add(h, "b", 1, 7000);
    ck_assert_int_eq(range(h, "a", 0, 2, TTL - 1, &g), 0);
    assert_seqs(&g, 1, 2);
    /* seq 1 expired: (0, 2] is no longer covered, (1, 2] is. */
    ck_assert_int_eq(range(h, "a", 0, 2, TTL, &g), -1);
    ck_assert_int_eq(range(h, "a", 1, 2, TTL, &g), 0);
    assert_seqs(&g, 2, 2);
    ck_assert_uint_eq(stats(h).evicted[HISTORY_EVICT_TTL], 1);
    ck_assert_uint_eq(history_expire(h, 5000 + TTL), 1);
    ck_assert_uint_eq(stats(h).topics, 1);
    ck_assert_uint_eq(history_expire(h, 7000 + TTL), 1);
    ck_assert_uint_eq(stats(h).topics, 0);
    ck_assert_uint_eq(stats(h).events, 0);
    ck_assert_uint_eq(history_expire(h, UINT32_MAX), 0);
    ck_assert_uint_eq(frame_live(), live);
    history_free(h);
}

END_TEST

/* ---------------------------------------------------------------- memory */

START_TEST(test_memory_cap_evicts_soonest_expiry)
{
    struct history *h = store(1000, 8 * 1024);
    struct history_stats st;
    struct got g;
    char t[16];

    for (uint64_t s = 1; s <= 200; s++) {
        snprintf(t, sizeof(t), "t.%llu", (unsigned long long)(s % 5));
        add(h, t, s / 5 + 1, s);
    }
    st = stats(h);
    ck_assert_uint_le(st.bytes, 8 * 1024);
    ck_assert_uint_gt(st.evicted[HISTORY_EVICT_MEMORY], 0);
    ck_assert_uint_eq(st.evicted[HISTORY_EVICT_SIZE], 0);
    ck_assert_uint_gt(st.events, 0);
    /* The newest events stay: each topic still covers its last one. */
    ck_assert_int_eq(range(h, "t.0", 40, 41, 300, &g), 0);
    /* The first ones went. */
    ck_assert_int_eq(range(h, "t.1", 0, 41, 300, &g), -1);
    history_free(h);
}

END_TEST

/* Freeing everything returns the store's bytes to the start. */
START_TEST(test_bytes_back_to_zero)
{
    struct history *h = store(4, SIZE_MAX);
    size_t empty;

    /* The first event sizes the heap array, which stays. */
    add(h, "first", 1, 0);
    ck_assert_uint_eq(history_expire(h, TTL), 1);
    empty = stats(h).bytes;
    for (uint64_t s = 1; s <= 100; s++)
        add(h, s % 2 ? "odd" : "even", (s + 1) / 2, 0);
    ck_assert_uint_gt(stats(h).bytes, empty);
    ck_assert_uint_eq(history_expire(h, TTL), 8);
    ck_assert_uint_eq(stats(h).topics, 0);
    ck_assert_uint_eq(stats(h).bytes, empty);
    history_free(h);
}

END_TEST

/* ----------------------------------------------------------------- reset */

START_TEST(test_sequence_restart_drops_older)
{
    struct history *h = store(10, SIZE_MAX);
    struct got g;

    for (uint64_t s = 1; s <= 4; s++)
        add(h, "a", s, 0);
    add(h, "a", 1, 0);
    ck_assert_uint_eq(stats(h).evicted[HISTORY_EVICT_RESET], 4);
    ck_assert_uint_eq(stats(h).events, 1);
    ck_assert_int_eq(range(h, "a", 0, 1, 0, &g), 0);
    assert_seqs(&g, 1, 1);
    /* A gap in the sequence (history turned on mid-way is not possible, but a
     * skipped seq must not make a range look contiguous). */
    add(h, "a", 5, 0);
    ck_assert_int_eq(range(h, "a", 0, 5, 0, &g), -1);
    ck_assert_int_eq(range(h, "a", 4, 5, 0, &g), 0);
    history_free(h);
}

END_TEST

/* --------------------------------------------------------------- measure */

/*
 * 100,000 retained events: 1,000 topics of 24 bytes keeping 100 events each,
 * payloads of 100 bytes in link MSG frames as the router makes them
 * (1 + 2 + 24 + 1-9 + 2 + 100 bytes). Prints the heap bytes per event over
 * the frames' own bytes, the number docs/architecture.md section 4 quotes.
 */
START_TEST(test_measure_bytes_per_event)
{
    enum { TOPICS = 1000, PER = 100, PAYLOAD = 100 };
    struct history *h = store(PER, SIZE_MAX);
    size_t before = heap_bytes(), held, frames = 0;
    char topic[32], msg[160];

    memset(msg, 'p', sizeof(msg));
    for (uint64_t s = 1; s <= PER; s++) {
        for (int i = 0; i < TOPICS; i++) {
            /* [7, topic, seq, bin payload]: 1+1+24+1+(s<128?0:2)+2+100 */
            size_t len = 1 + 1 + 24 + 1 + 2 + PAYLOAD;
            struct frame *f = frame_from(msg, len);

            snprintf(topic, sizeof(topic), "mail.user.%06d.inbox__", i);
            history_add(h, topic, 24, s, f, 0);
            frames += len;
            frame_unref(&f);
        }
    }
    held = heap_bytes() - before;
    ck_assert_uint_eq(stats(h).events, (uint64_t)TOPICS * PER);
    fprintf(stderr,
            "history: %d events, %zu heap bytes, %.1f per event (frame bytes %.1f, "
            "store overhead %.1f); store counts %.1f per event\n",
            TOPICS * PER, held, (double)held / (TOPICS * PER), (double)frames / (TOPICS * PER),
            (double)(held - frames) / (TOPICS * PER), (double)stats(h).bytes / (TOPICS * PER));
    /* The count /metrics shows is within 10% of what the heap says (ASan's count has
     * no malloc overhead; glibc's adds up to 16 bytes a chunk). */
    ck_assert_uint_le(stats(h).bytes, held + held / 10);
    ck_assert_uint_le(held - frames, (size_t)TOPICS * PER * 64);
    history_free(h);
    ck_assert_uint_le(heap_bytes(), before);
}

END_TEST

static Suite *history_suite(void)
{
    Suite *s = suite_create("broker_history");
    TCase *tc = tcase_create("ranges");

    tcase_add_test(tc, test_last_n_kept);
    tcase_add_test(tc, test_empty_and_beyond_head);
    tcase_add_test(tc, test_topics_independent);
    tcase_add_test(tc, test_size_one);
    tcase_add_test(tc, test_off_keeps_nothing);
    tcase_add_test(tc, test_frame_shared_not_copied);
    suite_add_tcase(s, tc);

    tc = tcase_create("rules");
    tcase_add_test(tc, test_rules_most_specific_wins);
    tcase_add_test(tc, test_rule_ttl);
    suite_add_tcase(s, tc);

    tc = tcase_create("bounds");
    tcase_add_test(tc, test_ttl_by_range_and_tick);
    tcase_add_test(tc, test_memory_cap_evicts_soonest_expiry);
    tcase_add_test(tc, test_bytes_back_to_zero);
    tcase_add_test(tc, test_sequence_restart_drops_older);
    suite_add_tcase(s, tc);

    tc = tcase_create("measure");
    tcase_add_test(tc, test_measure_bytes_per_event);
    tcase_set_timeout(tc, 60);
    suite_add_tcase(s, tc);
    return s;
}

int main(int argc, char **argv)
{
    (void)argc;
    heap_init(argv);
    return check_run_suite(history_suite());
}

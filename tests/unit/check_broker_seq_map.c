/*
 * Per-topic sequence numbers (broker/seq_map.c): next starts at 1 for each
 * topic and counts up, topics are independent, last reads without storing,
 * count, growth through many resizes (100,000 topics), and keys chosen to
 * share their slot index (the low bits of the hash) so that probing, the
 * wrap-around at the end of the table and rehashing on growth are all
 * exercised; the bounds: max_topics forgets the least recently published
 * topic, the ttl forgets idle ones (and the table shrinks), and a forgotten
 * topic starts again at 1. Named check_broker_* so that it links the
 * broker library.
 */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "broker/seq_map.h"
#include "tests/support/check_main.h"

static uint64_t next_s(struct seq_map *m, const char *topic)
{
    return seq_map_next(m, topic, strlen(topic), 0);
}

static uint64_t last_s(const struct seq_map *m, const char *topic)
{
    return seq_map_last(m, topic, strlen(topic));
}

/* ---------------------------------------------------------------- basics */

START_TEST(test_empty)
{
    struct seq_map *m = seq_map_new(SIZE_MAX, 0);

    ck_assert_uint_eq(seq_map_count(m), 0);
    ck_assert_uint_eq(last_s(m, "a"), 0);
    ck_assert_uint_eq(last_s(m, ""), 0);
    ck_assert_uint_eq(seq_map_count(m), 0);
    seq_map_free(m);
    seq_map_free(NULL);
}

END_TEST

START_TEST(test_next_counts_from_one)
{
    struct seq_map *m = seq_map_new(SIZE_MAX, 0);

    ck_assert_uint_eq(next_s(m, "user.42.mail"), 1);
    ck_assert_uint_eq(last_s(m, "user.42.mail"), 1);
    ck_assert_uint_eq(next_s(m, "user.42.mail"), 2);
    ck_assert_uint_eq(next_s(m, "user.42.mail"), 3);
    ck_assert_uint_eq(last_s(m, "user.42.mail"), 3);
    ck_assert_uint_eq(seq_map_count(m), 1);
    seq_map_free(m);
}

END_TEST

START_TEST(test_independent_topics)
{
    struct seq_map *m = seq_map_new(SIZE_MAX, 0);

    ck_assert_uint_eq(next_s(m, "a"), 1);
    ck_assert_uint_eq(next_s(m, "b"), 1);
    ck_assert_uint_eq(next_s(m, "a"), 2);
    ck_assert_uint_eq(next_s(m, "a"), 3);
    ck_assert_uint_eq(next_s(m, "ab"), 1);
    ck_assert_uint_eq(next_s(m, "b"), 2);
    ck_assert_uint_eq(last_s(m, "a"), 3);
    ck_assert_uint_eq(last_s(m, "b"), 2);
    ck_assert_uint_eq(last_s(m, "ab"), 1);
    ck_assert_uint_eq(last_s(m, "ba"), 0);
    ck_assert_uint_eq(seq_map_count(m), 3);
    seq_map_free(m);
}

END_TEST

START_TEST(test_last_does_not_store)
{
    struct seq_map *m = seq_map_new(SIZE_MAX, 0);

    ck_assert_uint_eq(next_s(m, "x"), 1);
    for (int i = 0; i < 10; i++)
        ck_assert_uint_eq(last_s(m, "never"), 0);
    ck_assert_uint_eq(seq_map_count(m), 1);
    ck_assert_uint_eq(next_s(m, "never"), 1);
    ck_assert_uint_eq(seq_map_count(m), 2);
    seq_map_free(m);
}

END_TEST

START_TEST(test_key_is_len_bytes)
{
    /* Only len bytes are the key: "abc" cut to 2 is "ab"; bytes may be any. */
    struct seq_map *m = seq_map_new(SIZE_MAX, 0);
    char buf[8] = "abc";

    ck_assert_uint_eq(seq_map_next(m, "abc", 2, 0), 1);
    ck_assert_uint_eq(last_s(m, "ab"), 1);
    ck_assert_uint_eq(last_s(m, "abc"), 0);
    ck_assert_uint_eq(seq_map_next(m, "a\0b", 3, 0), 1);
    ck_assert_uint_eq(seq_map_next(m, "a\0c", 3, 0), 1);
    ck_assert_uint_eq(seq_map_last(m, "a\0b", 3), 1);
    ck_assert_uint_eq(seq_map_last(m, "a", 1), 0);
    ck_assert_uint_eq(seq_map_next(m, "", 0, 0), 1);
    ck_assert_uint_eq(seq_map_next(m, "", 0, 0), 2);
    ck_assert_uint_eq(seq_map_count(m), 4);
    /* The map copied the key: changing the caller's buffer changes nothing. */
    ck_assert_uint_eq(seq_map_next(m, buf, 3, 0), 1);
    buf[0] = 'z';
    ck_assert_uint_eq(last_s(m, "abc"), 1);
    ck_assert_uint_eq(last_s(m, "zbc"), 0);
    seq_map_free(m);
}

END_TEST

START_TEST(test_long_keys_differ_at_end)
{
    struct seq_map *m = seq_map_new(SIZE_MAX, 0);
    char a[1000], b[1000];

    memset(a, 'k', sizeof(a));
    memcpy(b, a, sizeof(b));
    b[sizeof(b) - 1] = 'K';
    ck_assert_uint_eq(seq_map_next(m, a, sizeof(a), 0), 1);
    ck_assert_uint_eq(seq_map_next(m, b, sizeof(b), 0), 1);
    ck_assert_uint_eq(seq_map_next(m, a, sizeof(a), 0), 2);
    ck_assert_uint_eq(seq_map_next(m, a, sizeof(a) - 1, 0), 1);
    ck_assert_uint_eq(seq_map_last(m, b, sizeof(b)), 1);
    ck_assert_uint_eq(seq_map_count(m), 3);
    seq_map_free(m);
}

END_TEST

/* ---------------------------------------------------------------- growth */

#define MANY_TOPICS 100000

START_TEST(test_many_topics)
{
    struct seq_map *m = seq_map_new(SIZE_MAX, 0);
    char key[32];

    /* Topic i is published (i % 3) + 1 times, interleaved across passes so
     * growth happens while earlier topics already have sequences > 1. */
    for (int pass = 0; pass < 3; pass++) {
        for (int i = 0; i < MANY_TOPICS; i++) {
            if (pass > i % 3)
                continue;
            snprintf(key, sizeof(key), "user.%d.mail", i);
            ck_assert_uint_eq(next_s(m, key), (uint64_t)pass + 1);
        }
        ck_assert_uint_eq(seq_map_count(m), MANY_TOPICS);
    }
    for (int i = 0; i < MANY_TOPICS; i++) {
        snprintf(key, sizeof(key), "user.%d.mail", i);
        ck_assert_uint_eq(last_s(m, key), (uint64_t)(i % 3) + 1);
    }
    ck_assert_uint_eq(last_s(m, "user.100000.mail"), 0);
    ck_assert_uint_eq(last_s(m, "user.-1.mail"), 0);
    ck_assert_uint_eq(seq_map_count(m), MANY_TOPICS);
    seq_map_free(m);
}

END_TEST

START_TEST(test_growth_keeps_sequences)
{
    /* A topic at a high sequence survives every resize unchanged. */
    struct seq_map *m = seq_map_new(SIZE_MAX, 0);
    char key[32];

    for (int i = 0; i < 1000; i++)
        ck_assert_uint_eq(next_s(m, "hot"), (uint64_t)i + 1);
    for (int i = 0; i < 5000; i++) {
        snprintf(key, sizeof(key), "t%d", i);
        next_s(m, key);
        ck_assert_uint_eq(last_s(m, "hot"), 1000);
    }
    ck_assert_uint_eq(next_s(m, "hot"), 1001);
    ck_assert_uint_eq(seq_map_count(m), 5001);
    seq_map_free(m);
}

END_TEST

/* ---------------------------------------------------------------- collisions */

/* The map's hash (FNV-1a, 32-bit), used here only to choose keys that land
 * in the same slots; the assertions do not depend on it. */
static uint64_t fnv1a(const char *s, size_t len)
{
    uint32_t h = 2166136261u;

    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)s[i];
        h *= 16777619u;
    }
    return h;
}

#define COLLIDE_KEYS 60
#define COLLIDE_BITS 12

/* Fills keys with COLLIDE_KEYS distinct topics whose hashes agree in the low
 * COLLIDE_BITS bits, all equal to want: one slot index for every table size
 * up to 4096 slots. */
static void colliding_keys(char keys[][24], uint64_t want)
{
    const uint64_t mask = (1u << COLLIDE_BITS) - 1;
    int n = 0;

    for (unsigned i = 0; n < COLLIDE_KEYS; i++) {
        int len = snprintf(keys[n], 24, "topic.%u", i);

        if ((fnv1a(keys[n], (size_t)len) & mask) == (want & mask))
            n++;
    }
}

START_TEST(test_same_slot_keys)
{
    static char keys[COLLIDE_KEYS][24];
    /* _i = 0: the first slot; 1: the last slot of a 64-slot table, so that
     * probing wraps to slot 0. */
    const uint64_t want = _i == 0 ? 0 : (1u << COLLIDE_BITS) - 1;
    struct seq_map *m = seq_map_new(SIZE_MAX, 0);

    colliding_keys(keys, want);
    for (int k = 0; k < COLLIDE_KEYS; k++) {
        for (int j = 0; j <= k % 4; j++)
            ck_assert_uint_eq(next_s(m, keys[k]), (uint64_t)j + 1);
        /* Every key inserted so far is still found behind the others. */
        for (int e = 0; e <= k; e++)
            ck_assert_uint_eq(last_s(m, keys[e]), (uint64_t)(e % 4) + 1);
    }
    ck_assert_uint_eq(seq_map_count(m), COLLIDE_KEYS);
    ck_assert_uint_eq(last_s(m, "topic.not-there"), 0);
    seq_map_free(m);
}

END_TEST

START_TEST(test_same_slot_mixed_with_others)
{
    /* Colliding keys and ordinary ones, inserted alternately across
     * several resizes. */
    static char keys[COLLIDE_KEYS][24];
    struct seq_map *m = seq_map_new(SIZE_MAX, 0);
    char key[32];

    colliding_keys(keys, 5);
    for (int k = 0; k < COLLIDE_KEYS; k++) {
        ck_assert_uint_eq(next_s(m, keys[k]), 1);
        for (int j = 0; j < 10; j++) {
            snprintf(key, sizeof(key), "other.%d.%d", k, j);
            ck_assert_uint_eq(next_s(m, key), 1);
        }
    }
    for (int k = 0; k < COLLIDE_KEYS; k++) {
        ck_assert_uint_eq(next_s(m, keys[k]), 2);
        snprintf(key, sizeof(key), "other.%d.9", k);
        ck_assert_uint_eq(last_s(m, key), 1);
    }
    ck_assert_uint_eq(seq_map_count(m), COLLIDE_KEYS * 11);
    seq_map_free(m);
}

END_TEST

/* ---------------------------------------------------------------- bounds */

static uint64_t next_at(struct seq_map *m, const char *topic, uint64_t now)
{
    return seq_map_next(m, topic, strlen(topic), now);
}

START_TEST(test_max_topics_forgets_least_recent)
{
    struct seq_map *m = seq_map_new(3, 0);

    ck_assert_uint_eq(next_at(m, "a", 1), 1);
    ck_assert_uint_eq(next_at(m, "b", 2), 1);
    ck_assert_uint_eq(next_at(m, "c", 3), 1);
    ck_assert_uint_eq(next_at(m, "a", 4), 2); /* a is now the most recent */
    ck_assert_uint_eq(next_at(m, "d", 5), 1); /* forgets b */
    ck_assert_uint_eq(seq_map_count(m), 3);
    ck_assert_uint_eq(seq_map_forgotten(m), 1);
    ck_assert_uint_eq(last_s(m, "b"), 0);
    ck_assert_uint_eq(last_s(m, "a"), 2);
    ck_assert_uint_eq(next_at(m, "b", 6), 1); /* starts again at 1; forgets c */
    ck_assert_uint_eq(last_s(m, "c"), 0);
    ck_assert_uint_eq(seq_map_forgotten(m), 2);
    seq_map_free(m);
}

END_TEST

START_TEST(test_ttl_forgets_idle_topics)
{
    struct seq_map *m = seq_map_new(SIZE_MAX, 1000);

    next_at(m, "a", 0);
    next_at(m, "b", 500);
    next_at(m, "a", 900);
    ck_assert_uint_eq(seq_map_expire(m, 1499), 0);
    ck_assert_uint_eq(seq_map_expire(m, 1500), 1); /* b: idle for exactly the ttl */
    ck_assert_uint_eq(last_s(m, "b"), 0);
    ck_assert_uint_eq(last_s(m, "a"), 2);
    ck_assert_uint_eq(seq_map_expire(m, 1900), 1);
    ck_assert_uint_eq(seq_map_count(m), 0);
    ck_assert_uint_eq(next_at(m, "a", 2000), 1);
    ck_assert_uint_eq(seq_map_forgotten(m), 2);
    seq_map_free(m);
}

END_TEST

START_TEST(test_ttl_zero_never_expires)
{
    struct seq_map *m = seq_map_new(SIZE_MAX, 0);

    next_at(m, "a", 0);
    ck_assert_uint_eq(seq_map_expire(m, UINT64_MAX), 0);
    ck_assert_uint_eq(last_s(m, "a"), 1);
    seq_map_free(m);
}

END_TEST

/* The table shrinks as topics are forgotten, and what stays is still found. */
START_TEST(test_forget_many_then_reuse)
{
    struct seq_map *m = seq_map_new(SIZE_MAX, 10);
    char key[32];

    size_t empty = seq_map_bytes(m), full;
    for (int i = 0; i < 20000; i++) {
        snprintf(key, sizeof(key), "user.%d", i);
        next_at(m, key, i < 19990 ? 0 : 100);
    }
    full = seq_map_bytes(m);
    ck_assert_uint_gt(full, empty + 20000 * 8);
    ck_assert_uint_eq(seq_map_expire(m, 105), 19990);
    ck_assert_uint_eq(seq_map_count(m), 10);
    /* The slot table of 20,000 topics shrank with them: what is left is near empty. */
    ck_assert_uint_lt(seq_map_bytes(m), empty + (full - empty) / 100);
    for (int i = 19990; i < 20000; i++) {
        snprintf(key, sizeof(key), "user.%d", i);
        ck_assert_uint_eq(last_s(m, key), 1);
    }
    for (int i = 0; i < 1000; i++) {
        snprintf(key, sizeof(key), "user.%d", i);
        ck_assert_uint_eq(next_at(m, key, 200), 1);
    }
    ck_assert_uint_eq(seq_map_count(m), 1010);
    seq_map_free(m);
}

END_TEST

/* Seconds per test: generous, as the machine may be shared with load tests. */
#define TCASE_TIMEOUT 60

static Suite *seq_map_suite(void)
{
    Suite *s = suite_create("seq_map");
    TCase *tc = tcase_create("basics");
    tcase_add_test(tc, test_empty);
    tcase_add_test(tc, test_next_counts_from_one);
    tcase_add_test(tc, test_independent_topics);
    tcase_add_test(tc, test_last_does_not_store);
    tcase_add_test(tc, test_key_is_len_bytes);
    tcase_add_test(tc, test_long_keys_differ_at_end);
    tcase_set_timeout(tc, TCASE_TIMEOUT);
    suite_add_tcase(s, tc);

    tc = tcase_create("growth");
    tcase_add_test(tc, test_many_topics);
    tcase_add_test(tc, test_growth_keeps_sequences);
    tcase_set_timeout(tc, TCASE_TIMEOUT);
    suite_add_tcase(s, tc);

    tc = tcase_create("bounds");
    tcase_add_test(tc, test_max_topics_forgets_least_recent);
    tcase_add_test(tc, test_ttl_forgets_idle_topics);
    tcase_add_test(tc, test_ttl_zero_never_expires);
    tcase_add_test(tc, test_forget_many_then_reuse);
    tcase_set_timeout(tc, TCASE_TIMEOUT);
    suite_add_tcase(s, tc);

    tc = tcase_create("collisions");
    tcase_add_loop_test(tc, test_same_slot_keys, 0, 2);
    tcase_add_test(tc, test_same_slot_mixed_with_others);
    tcase_set_timeout(tc, TCASE_TIMEOUT);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return check_run_suite(seq_map_suite());
}

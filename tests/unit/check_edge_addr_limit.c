/*
 * check_edge_addr_limit.c - edge/addr_limit.c: the keys (IPv4 by address,
 * IPv4-mapped IPv6 as IPv4, IPv6 by /64, other families unlimited), the
 * per-address count, the token bucket on a test clock (burst, refill,
 * refusals that take no token), the cap on addresses, expiry of idle
 * entries, the table against a brute-force model through random
 * acquire/release (backward-shift deletion), growth and shrinking, and
 * four threads sharing one address.
 */
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "edge/addr_limit.h"
#include "tests/support/check_main.h"

static uint64_t key4(const char *ip)
{
    struct sockaddr_in in = {.sin_family = AF_INET};

    ck_assert_int_eq(inet_pton(AF_INET, ip, &in.sin_addr), 1);
    return addr_limit_key((struct sockaddr *)&in, sizeof(in));
}

static uint64_t key6(const char *ip)
{
    struct sockaddr_in6 in = {.sin6_family = AF_INET6};

    ck_assert_int_eq(inet_pton(AF_INET6, ip, &in.sin6_addr), 1);
    return addr_limit_key((struct sockaddr *)&in, sizeof(in));
}

/* ---------- keys ---------- */

START_TEST(test_keys)
{
    struct sockaddr_un un = {.sun_family = AF_UNIX};
    struct sockaddr_in short_in = {.sin_family = AF_INET};

    ck_assert_uint_eq(key4("192.0.2.7"), 0xff000000c0000207ull);
    ck_assert_uint_ne(key4("192.0.2.7"), key4("192.0.2.8"));
    ck_assert_uint_eq(key6("::ffff:192.0.2.7"), key4("192.0.2.7"));
    /* One /64 is one host. */
    ck_assert_uint_eq(key6("2001:db8:1:2::1"), key6("2001:db8:1:2:ffff:ffff:ffff:ffff"));
    ck_assert_uint_eq(key6("2001:db8:1:2::1"), 0x20010db800010002ull);
    ck_assert_uint_ne(key6("2001:db8:1:2::1"), key6("2001:db8:1:3::1"));
    ck_assert_uint_eq(key6("::1"), 0);
    ck_assert_uint_ne(key6("::1"), ADDR_KEY_NONE);
    ck_assert_uint_eq(addr_limit_key((struct sockaddr *)&un, sizeof(un)), ADDR_KEY_NONE);
    ck_assert_uint_eq(addr_limit_key((struct sockaddr *)&short_in, 4), ADDR_KEY_NONE);
}

END_TEST

START_TEST(test_not_ip_is_unlimited)
{
    struct addr_limit *a = addr_limit_new(1, 1, 1);

    for (int i = 0; i < 10; i++)
        ck_assert_int_eq(addr_limit_acquire(a, ADDR_KEY_NONE, 0), ADDR_OK);
    ck_assert_uint_eq(addr_limit_entries(a), 0);
    addr_limit_release(a, ADDR_KEY_NONE, 0);
    addr_limit_free(a);
}

END_TEST

/* ---------- the count ---------- */

START_TEST(test_count_limit)
{
    struct addr_limit *a = addr_limit_new(2, 0, 100);
    uint64_t k = key4("198.51.100.1"), other = key6("2001:db8::1");

    ck_assert_int_eq(addr_limit_acquire(a, k, 0), ADDR_OK);
    ck_assert_int_eq(addr_limit_acquire(a, k, 0), ADDR_OK);
    ck_assert_int_eq(addr_limit_acquire(a, k, 0), ADDR_TOO_MANY);
    ck_assert_int_eq(addr_limit_acquire(a, other, 0), ADDR_OK);
    ck_assert_uint_eq(addr_limit_entries(a), 2);
    addr_limit_release(a, k, 0);
    ck_assert_int_eq(addr_limit_acquire(a, k, 0), ADDR_OK);
    addr_limit_release(a, k, 0);
    addr_limit_release(a, k, 0);
    /* No rate: an address with no connection is forgotten at once. */
    ck_assert_uint_eq(addr_limit_entries(a), 1);
    addr_limit_release(a, other, 0);
    ck_assert_uint_eq(addr_limit_entries(a), 0);
    addr_limit_release(a, other, 0); /* more releases than acquires change nothing */
    ck_assert_uint_eq(addr_limit_entries(a), 0);
    addr_limit_free(a);
}

END_TEST

/* ---------- the bucket ---------- */

START_TEST(test_rate_burst_and_refill)
{
    struct addr_limit *a = addr_limit_new(0, 3, 100);
    uint64_t k = key4("203.0.113.9"), t = 1000;

    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(addr_limit_acquire(a, k, t), ADDR_OK);
    ck_assert_int_eq(addr_limit_acquire(a, k, t), ADDR_TOO_FAST);
    /* 3 per second: a token every 333.3 ms. */
    ck_assert_int_eq(addr_limit_acquire(a, k, t + 333), ADDR_TOO_FAST);
    ck_assert_int_eq(addr_limit_acquire(a, k, t + 334), ADDR_OK);
    ck_assert_int_eq(addr_limit_acquire(a, k, t + 334), ADDR_TOO_FAST);
    /* A long pause refills up to the burst, never beyond it. */
    t += 60000;
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(addr_limit_acquire(a, k, t), ADDR_OK);
    ck_assert_int_eq(addr_limit_acquire(a, k, t), ADDR_TOO_FAST);
    addr_limit_free(a);
}

END_TEST

/* A refused handshake takes no token: a client retrying fast is admitted once the bucket allows. */
START_TEST(test_refusal_takes_no_token)
{
    struct addr_limit *a = addr_limit_new(1, 10, 100);
    uint64_t k = key4("203.0.113.10");

    ck_assert_int_eq(addr_limit_acquire(a, k, 0), ADDR_OK);
    for (int i = 0; i < 100; i++)
        ck_assert_int_eq(addr_limit_acquire(a, k, 0), ADDR_TOO_MANY);
    addr_limit_release(a, k, 0);
    for (int i = 0; i < 9; i++) {
        ck_assert_int_eq(addr_limit_acquire(a, k, 0), ADDR_OK);
        addr_limit_release(a, k, 0);
    }
    ck_assert_int_eq(addr_limit_acquire(a, k, 0), ADDR_TOO_FAST);
    addr_limit_free(a);
}

END_TEST

/* ---------- bounds and expiry ---------- */

START_TEST(test_table_full)
{
    struct addr_limit *a = addr_limit_new(5, 0, 2);

    ck_assert_int_eq(addr_limit_acquire(a, key4("10.0.0.1"), 0), ADDR_OK);
    ck_assert_int_eq(addr_limit_acquire(a, key4("10.0.0.2"), 0), ADDR_OK);
    ck_assert_int_eq(addr_limit_acquire(a, key4("10.0.0.3"), 0), ADDR_TABLE_FULL);
    ck_assert_int_eq(addr_limit_acquire(a, key4("10.0.0.1"), 0), ADDR_OK); /* known: fine */
    ck_assert_uint_eq(addr_limit_entries(a), 2);
    addr_limit_release(a, key4("10.0.0.2"), 0);
    ck_assert_int_eq(addr_limit_acquire(a, key4("10.0.0.3"), 0), ADDR_OK);
    addr_limit_free(a);
}

END_TEST

START_TEST(test_expire_waits_for_full_bucket)
{
    struct addr_limit *a = addr_limit_new(0, 2, 100);
    uint64_t k = key4("10.1.1.1");

    ck_assert_int_eq(addr_limit_acquire(a, k, 0), ADDR_OK);
    ck_assert_int_eq(addr_limit_acquire(a, k, 0), ADDR_OK);
    addr_limit_release(a, k, 0);
    addr_limit_release(a, k, 0);
    /* Forgetting it now would hand the address a fresh burst. */
    ck_assert_uint_eq(addr_limit_entries(a), 1);
    ck_assert_uint_eq(addr_limit_expire(a, 999), 0);
    ck_assert_uint_eq(addr_limit_entries(a), 1);
    ck_assert_uint_eq(addr_limit_expire(a, 1000), 1);
    ck_assert_uint_eq(addr_limit_entries(a), 0);
    addr_limit_free(a);
}

END_TEST

START_TEST(test_expire_keeps_open_addresses)
{
    struct addr_limit *a = addr_limit_new(0, 1, 10000);

    for (uint32_t i = 0; i < 1000; i++) {
        ck_assert_int_eq(addr_limit_acquire(a, 0xff00000000000000ull | i, 0), ADDR_OK);
        if (i % 2)
            addr_limit_release(a, 0xff00000000000000ull | i, 0);
    }
    ck_assert_uint_eq(addr_limit_entries(a), 1000);
    ck_assert_uint_eq(addr_limit_expire(a, 5000), 500);
    ck_assert_uint_eq(addr_limit_entries(a), 500);
    for (uint32_t i = 0; i < 1000; i += 2)
        ck_assert_int_eq(addr_limit_acquire(a, 0xff00000000000000ull | i, 5000), ADDR_OK);
    addr_limit_free(a);
}

END_TEST

/* Many addresses come and go: the table grows, then gives its memory back. */
START_TEST(test_grow_and_shrink)
{
    struct addr_limit *a = addr_limit_new(0, 0, 1000000);
    size_t empty = addr_limit_bytes(a);

    for (uint64_t i = 0; i < 50000; i++)
        ck_assert_int_eq(addr_limit_acquire(a, i << 20, 0), ADDR_OK);
    ck_assert_uint_eq(addr_limit_entries(a), 50000);
    ck_assert_uint_gt(addr_limit_bytes(a), 50000 * 24);
    for (uint64_t i = 0; i < 50000; i++)
        addr_limit_release(a, i << 20, 0);
    ck_assert_uint_eq(addr_limit_entries(a), 0);
    ck_assert_uint_eq(addr_limit_bytes(a), empty);
    addr_limit_free(a);
}

END_TEST

/* Random acquire/release against a model: every address keeps its own count. */
START_TEST(test_random_against_model)
{
    enum { KEYS = 300, STEPS = 200000, MAX = 3 };

    static uint32_t model[KEYS];
    struct addr_limit *a = addr_limit_new(MAX, 0, KEYS);
    unsigned seed = 12345;
    size_t live = 0;

    memset(model, 0, sizeof(model));
    for (int step = 0; step < STEPS; step++) {
        uint32_t i = (uint32_t)rand_r(&seed) % KEYS;
        /* Keys that share low bits and probe runs: the hash sees few distinct ones. */
        uint64_t k = (uint64_t)(i % 7) << 56 | (uint64_t)i << 3;

        if (rand_r(&seed) % 2) {
            enum addr_verdict v = addr_limit_acquire(a, k, 0);

            ck_assert_int_eq(v, model[i] < MAX ? ADDR_OK : ADDR_TOO_MANY);
            if (v == ADDR_OK && model[i]++ == 0)
                live++;
        } else {
            addr_limit_release(a, k, 0);
            if (model[i] > 0 && --model[i] == 0)
                live--;
        }
        if (step % 1000 == 0)
            ck_assert_uint_eq(addr_limit_entries(a), live);
    }
    addr_limit_free(a);
}

END_TEST

struct hammer {
    struct addr_limit *a;
    int refused;
};

static void *hammer_run(void *arg)
{
    struct hammer *h = arg;
    uint64_t k = 0x20010db8000000aaull;

    for (int i = 0; i < 20000; i++) {
        if (addr_limit_acquire(h->a, k, 0) != ADDR_OK) {
            h->refused++;
            continue;
        }
        addr_limit_release(h->a, k, 0);
    }
    return NULL;
}

/* Four workers on one address: the count never goes past the limit nor leaks. */
START_TEST(test_threads)
{
    struct hammer hs[4];
    pthread_t th[4];
    struct addr_limit *a = addr_limit_new(4, 0, 10);

    for (int i = 0; i < 4; i++) {
        hs[i] = (struct hammer){a, 0};
        ck_assert_int_eq(pthread_create(&th[i], NULL, hammer_run, &hs[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        ck_assert_int_eq(hs[i].refused, 0); /* at most 4 at once: never over */
    }
    ck_assert_uint_eq(addr_limit_entries(a), 0);
    addr_limit_free(a);
}

END_TEST

static Suite *edge_addr_limit_suite(void)
{
    Suite *s = suite_create("edge_addr_limit");
    TCase *t;

    t = tcase_create("keys");
    tcase_add_test(t, test_keys);
    tcase_add_test(t, test_not_ip_is_unlimited);
    suite_add_tcase(s, t);

    t = tcase_create("limits");
    tcase_add_test(t, test_count_limit);
    tcase_add_test(t, test_rate_burst_and_refill);
    tcase_add_test(t, test_refusal_takes_no_token);
    tcase_add_test(t, test_table_full);
    suite_add_tcase(s, t);

    t = tcase_create("table");
    tcase_add_test(t, test_expire_waits_for_full_bucket);
    tcase_add_test(t, test_expire_keeps_open_addresses);
    tcase_add_test(t, test_grow_and_shrink);
    tcase_add_test(t, test_random_against_model);
    tcase_add_test(t, test_threads);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    return check_run_suite(edge_addr_limit_suite());
}

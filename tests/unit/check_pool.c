/*
 * Tests for edge/pool.c: class selection at every boundary, reuse from the
 * free lists, the per-class cache cap, oversize chunks, pool_grow keeping
 * contents, accounting back at baseline after partial-frame sequences,
 * pooled evbuffers draining (running reference cleanups exactly once) and
 * their count cap, pool_free giving every cached item back, and (without
 * NDEBUG) its assertion that nothing is borrowed.
 */
#include "edge/pool.h"
#include "tests/support/check_main.h"
#include "tests/support/heap.h"

#include <check.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#define BIG_CACHE (1u << 20)

static struct pool *pool;

static void setup(void)
{
    pool = pool_new(BIG_CACHE);
}

static void teardown(void)
{
    struct pool_stats st;

    pool_get_stats(pool, &st);
    ck_assert_uint_eq(st.chunks_in_use, 0);
    ck_assert_uint_eq(st.chunk_bytes_in_use, 0);
    ck_assert_uint_eq(st.evbuffers_in_use, 0);
    pool_free(pool);
    pool = NULL;
}

static struct pool_stats stats(struct pool *p)
{
    struct pool_stats st;

    pool_get_stats(p, &st);
    return st;
}

/* ---------- classes ---------- */

static const struct {
    size_t size;
    uint8_t cls;
    uint32_t cap;
} boundaries[] = {
    {0, 0, 512},
    {1, 0, 512},
    {512, 0, 512},
    {513, 1, 2048},
    {2048, 1, 2048},
    {2049, 2, 8192},
    {32769, 4, 131072},
    {128 * 1024, 4, 131072},
    {128 * 1024 + 1, POOL_OVERSIZE, 128 * 1024 + 1},
};

START_TEST(test_class_boundaries)
{
    struct chunk *c = pool_get(pool, boundaries[_i].size);
    struct pool_stats st = stats(pool);

    ck_assert_uint_eq(c->cls, boundaries[_i].cls);
    ck_assert_uint_eq(c->cap, boundaries[_i].cap);
    ck_assert_uint_eq(c->len, 0);
    ck_assert_uint_eq(st.chunks_in_use, 1);
    ck_assert_uint_eq(st.chunk_bytes_in_use, boundaries[_i].cap);
    ck_assert_uint_eq(st.gets, 1);
    memset(c->data, 0x5A, c->cap); /* ASan: the whole cap is ours */
    pool_put(pool, &c);
    ck_assert_ptr_null(c);
    st = stats(pool);
    ck_assert_uint_eq(st.chunks_in_use, 0);
    ck_assert_uint_eq(st.chunk_bytes_in_use, 0);
    /* Oversize chunks are freed on put, never cached. */
    ck_assert_uint_eq(st.chunks_cached, boundaries[_i].cls == POOL_OVERSIZE ? 0 : 1);
}

END_TEST

START_TEST(test_reuse_same_class)
{
    struct chunk *a = pool_get(pool, 600);
    struct chunk *first = a;
    struct chunk *b;

    pool_put(pool, &a);
    b = pool_get(pool, 2000);
    ck_assert_ptr_eq(b, first);
    ck_assert_uint_eq(b->len, 0);
    ck_assert_uint_eq(stats(pool).chunks_cached, 0);
    /* A different class does not take it. */
    pool_put(pool, &b);
    a = pool_get(pool, 100);
    ck_assert_ptr_ne(a, first);
    ck_assert_uint_eq(stats(pool).chunks_cached, 1);
    pool_put(pool, &a);
    ck_assert_uint_eq(stats(pool).chunks_cached, 2);
}

END_TEST

START_TEST(test_put_null)
{
    struct chunk *c = NULL;

    pool_put(pool, &c);
    ck_assert_ptr_null(c);
    ck_assert_uint_eq(stats(pool).chunks_cached, 0);
}

END_TEST

/* ---------- cache cap ---------- */

START_TEST(test_cache_cap)
{
    /* 2 KiB per class: four 512 B chunks, one 2 KiB chunk, no larger ones. */
    struct pool *p = pool_new(2048);
    struct chunk *small[6];
    struct chunk *mid[2];
    struct chunk *big;

    for (int i = 0; i < 6; i++)
        small[i] = pool_get(p, 10);
    for (int i = 0; i < 2; i++)
        mid[i] = pool_get(p, 1000);
    big = pool_get(p, 100000);
    ck_assert_uint_eq(stats(p).chunks_in_use, 9);
    ck_assert_uint_eq(stats(p).chunk_bytes_in_use, 6 * 512 + 2 * 2048 + 131072);
    for (int i = 0; i < 6; i++)
        pool_put(p, &small[i]);
    ck_assert_uint_eq(stats(p).chunks_cached, 4);
    for (int i = 0; i < 2; i++)
        pool_put(p, &mid[i]);
    ck_assert_uint_eq(stats(p).chunks_cached, 5);
    pool_put(p, &big);
    ck_assert_uint_eq(stats(p).chunks_cached, 5);
    ck_assert_uint_eq(stats(p).chunks_in_use, 0);
    ck_assert_uint_eq(stats(p).chunk_bytes_in_use, 0);
    pool_free(p);
}

END_TEST

START_TEST(test_cache_zero)
{
    struct pool *p = pool_new(0);
    struct chunk *c = pool_get(p, 1);

    pool_put(p, &c);
    ck_assert_uint_eq(stats(p).chunks_cached, 0);
    pool_free(p);
}

END_TEST

/* ---------- grow ---------- */

static void fill(struct chunk *c, size_t n)
{
    for (size_t i = 0; i < n; i++)
        c->data[i] = (uint8_t)(i * 7 + 3);
    c->len = (uint32_t)n;
}

static void assert_filled(const struct chunk *c, size_t n)
{
    ck_assert_uint_eq(c->len, n);
    for (size_t i = 0; i < n; i++)
        ck_assert_uint_eq(c->data[i], (uint8_t)(i * 7 + 3));
}

START_TEST(test_grow_preserves_contents)
{
    struct chunk *c = pool_get(pool, 100);
    struct chunk *before;

    fill(c, 500);
    pool_grow(pool, &c, 1000);
    ck_assert_uint_eq(c->cls, 1);
    assert_filled(c, 500);
    fill(c, 2048);
    pool_grow(pool, &c, 200000);
    ck_assert_uint_eq(c->cls, POOL_OVERSIZE);
    ck_assert_uint_eq(c->cap, 200000);
    assert_filled(c, 2048);
    /* Big enough already: the same chunk stays. */
    before = c;
    pool_grow(pool, &c, 150000);
    ck_assert_ptr_eq(c, before);
    assert_filled(c, 2048);
    ck_assert_uint_eq(stats(pool).chunks_in_use, 1);
    ck_assert_uint_eq(stats(pool).chunk_bytes_in_use, 200000);
    ck_assert_uint_eq(stats(pool).gets, 3);
    pool_put(pool, &c);
}

END_TEST

START_TEST(test_grow_from_null)
{
    struct chunk *c = NULL;

    pool_grow(pool, &c, 3000);
    ck_assert_ptr_nonnull(c);
    ck_assert_uint_eq(c->cls, 2);
    ck_assert_uint_eq(c->len, 0);
    pool_put(pool, &c);
}

END_TEST

/* A connection reading a frame in pieces: get, grow, grow, put; repeated. */
START_TEST(test_partial_frames_return_to_baseline)
{
    struct pool_stats base = stats(pool);

    for (int round = 0; round < 50; round++) {
        struct chunk *c = pool_get(pool, 14);
        fill(c, 14);
        pool_grow(pool, &c, 4000);
        fill(c, 4000);
        pool_grow(pool, &c, 140000 + (size_t)round);
        assert_filled(c, 4000);
        pool_put(pool, &c);
        ck_assert_uint_eq(stats(pool).chunks_in_use, base.chunks_in_use);
        ck_assert_uint_eq(stats(pool).chunk_bytes_in_use, base.chunk_bytes_in_use);
    }
    ck_assert_uint_eq(stats(pool).gets, base.gets + 150);
    /* The 512 B and 8 KiB chunks were reused every round. */
    ck_assert_uint_eq(stats(pool).chunks_cached, 2);
}

END_TEST

/* ---------- evbuffers ---------- */

static int cleanups;

static void count_cleanup(const void *data, size_t len, void *arg)
{
    (void)data;
    (void)len;
    ck_assert_ptr_eq(arg, &cleanups);
    cleanups++;
}

START_TEST(test_evbuffer_put_runs_cleanup_once)
{
    static const char ref[] = "referenced bytes";
    struct evbuffer *b = pool_get_evbuffer(pool);
    struct evbuffer *first = b;

    cleanups = 0;
    ck_assert_uint_eq(evbuffer_get_length(b), 0);
    ck_assert_int_eq(evbuffer_add(b, "copied", 6), 0);
    ck_assert_int_eq(evbuffer_add_reference(b, ref, sizeof(ref) - 1, count_cleanup, &cleanups), 0);
    ck_assert_uint_eq(stats(pool).evbuffers_in_use, 1);
    ck_assert_int_eq(cleanups, 0);
    pool_put_evbuffer(pool, &b);
    ck_assert_ptr_null(b);
    ck_assert_int_eq(cleanups, 1);
    ck_assert_uint_eq(stats(pool).evbuffers_in_use, 0);
    ck_assert_uint_eq(stats(pool).evbuffers_cached, 1);
    /* Reused, empty, and the cleanup does not run again. */
    b = pool_get_evbuffer(pool);
    ck_assert_ptr_eq(b, first);
    ck_assert_uint_eq(evbuffer_get_length(b), 0);
    ck_assert_uint_eq(stats(pool).evbuffers_cached, 0);
    pool_put_evbuffer(pool, &b);
    ck_assert_int_eq(cleanups, 1);
    ck_assert_uint_eq(stats(pool).gets, 2);
}

END_TEST

START_TEST(test_evbuffer_partially_drained_reference)
{
    static const char ref[] = "0123456789";
    struct evbuffer *b = pool_get_evbuffer(pool);

    cleanups = 0;
    ck_assert_int_eq(evbuffer_add_reference(b, ref, 10, count_cleanup, &cleanups), 0);
    ck_assert_int_eq(evbuffer_drain(b, 4), 0);
    ck_assert_int_eq(cleanups, 0);
    pool_put_evbuffer(pool, &b);
    ck_assert_int_eq(cleanups, 1);
}

END_TEST

START_TEST(test_evbuffer_cache_cap)
{
    enum { N = 1030 };
    struct evbuffer **bufs = calloc(N, sizeof(*bufs));

    ck_assert_ptr_nonnull(bufs);
    for (int i = 0; i < N; i++)
        bufs[i] = pool_get_evbuffer(pool);
    ck_assert_uint_eq(stats(pool).evbuffers_in_use, N);
    for (int i = 0; i < N; i++)
        pool_put_evbuffer(pool, &bufs[i]);
    ck_assert_uint_eq(stats(pool).evbuffers_in_use, 0);
    ck_assert_uint_eq(stats(pool).evbuffers_cached, 1024);
    free(bufs);
}

END_TEST

START_TEST(test_evbuffer_put_null)
{
    struct evbuffer *b = NULL;

    pool_put_evbuffer(pool, &b);
    ck_assert_uint_eq(stats(pool).evbuffers_cached, 0);
}

END_TEST

/* ---------- pool_free ---------- */

/* pool_free gives back the pool, its cached chunks of every class and its cached evbuffers. */
START_TEST(test_free_with_cached_items)
{
    size_t base = heap_bytes();
    struct pool *p = pool_new(BIG_CACHE);
    struct chunk *c[POOL_CLASSES];
    struct evbuffer *b[3];

    for (int i = 0; i < POOL_CLASSES; i++)
        c[i] = pool_get(p, (size_t)400 << (2 * i)); /* 400 B .. 100 KiB: one per class */
    for (int i = 0; i < 3; i++) {
        b[i] = pool_get_evbuffer(p);
        ck_assert_int_eq(evbuffer_add(b[i], "x", 1), 0);
    }
    for (int i = 0; i < POOL_CLASSES; i++)
        pool_put(p, &c[i]);
    for (int i = 0; i < 3; i++)
        pool_put_evbuffer(p, &b[i]);
    ck_assert_uint_eq(stats(p).chunks_cached, POOL_CLASSES);
    ck_assert_uint_eq(stats(p).evbuffers_cached, 3);
    ck_assert_uint_gt(heap_bytes(), base + 400 + 1600 + 6400 + 25600 + 102400);
    pool_free(p);
    ck_assert_uint_eq(heap_bytes(), base);
}

END_TEST

/*
 * pool_free's assert() that nothing is borrowed (edge/pool.c) exists only
 * in builds without NDEBUG, so this test does too: Release has no such
 * check to test. make test runs it in its sanitized Debug build.
 */
#ifndef NDEBUG
START_TEST(test_free_with_chunk_in_use_aborts)
{
    struct pool *p = pool_new(BIG_CACHE);

    (void)pool_get(p, 10);
    ck_assert_uint_eq(stats(p).chunks_in_use, 1);
    pool_free(p);
}

END_TEST
#endif

static Suite *pool_suite(void)
{
    Suite *s = suite_create("pool");
    TCase *tc;

    tc = tcase_create("classes");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_loop_test(tc, test_class_boundaries, 0,
                        (int)(sizeof(boundaries) / sizeof(boundaries[0])));
    tcase_add_test(tc, test_reuse_same_class);
    tcase_add_test(tc, test_put_null);
    suite_add_tcase(s, tc);

    tc = tcase_create("cache_cap");
    tcase_add_test(tc, test_cache_cap);
    tcase_add_test(tc, test_cache_zero);
    suite_add_tcase(s, tc);

    tc = tcase_create("grow");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_grow_preserves_contents);
    tcase_add_test(tc, test_grow_from_null);
    tcase_add_test(tc, test_partial_frames_return_to_baseline);
    suite_add_tcase(s, tc);

    tc = tcase_create("evbuffers");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_evbuffer_put_runs_cleanup_once);
    tcase_add_test(tc, test_evbuffer_partially_drained_reference);
    tcase_add_test(tc, test_evbuffer_cache_cap);
    tcase_add_test(tc, test_evbuffer_put_null);
    suite_add_tcase(s, tc);

    tc = tcase_create("free");
    tcase_add_test(tc, test_free_with_cached_items);
#ifndef NDEBUG
    tcase_add_test_raise_signal(tc, test_free_with_chunk_in_use_aborts, SIGABRT);
#endif
    suite_add_tcase(s, tc);
    return s;
}

int main(int argc, char **argv)
{
    (void)argc;
    heap_init(argv);
    return check_run_suite(pool_suite());
}

/*
 * Frames and output buffers: a frame's reference count from birth to free
 * (frame_ref, frame_unref clearing the slot, frame_cleanup dropping exactly
 * one), the per-thread live count, frame_from copying; and outq_append,
 * which copies frames up to OUTQ_COPY_MAX into an evbuffer and adds larger
 * ones by reference, the evbuffer then holding one reference until libevent
 * releases the chain (drain or free).
 */
#include <check.h>
#include <event2/buffer.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/frame.h"
#include "common/outq.h"
#include "tests/support/check_main.h"

/* ---------------------------------------------------------------- frames */

START_TEST(test_born_with_one)
{
    uint64_t base = frame_live();
    struct frame *f = frame_new(10);

    ck_assert_uint_eq(f->refs, 1);
    ck_assert_uint_eq(f->len, 10);
    ck_assert_uint_eq(frame_live(), base + 1);
    frame_unref(&f);
    ck_assert_ptr_null(f);
    ck_assert_uint_eq(frame_live(), base);
}

END_TEST

START_TEST(test_empty_frame)
{
    uint64_t base = frame_live();
    struct frame *f = frame_from(NULL, 0);

    ck_assert_uint_eq(f->refs, 1);
    ck_assert_uint_eq(f->len, 0);
    ck_assert_uint_eq(frame_live(), base + 1);
    frame_unref(&f);
    ck_assert_uint_eq(frame_live(), base);
}

END_TEST

START_TEST(test_ref_unref)
{
    uint64_t base = frame_live();
    struct frame *f = frame_new(4);
    struct frame *g = frame_ref(f);
    struct frame *h = frame_ref(f);

    ck_assert_ptr_eq(g, f);
    ck_assert_ptr_eq(h, f);
    ck_assert_uint_eq(f->refs, 3);
    ck_assert_uint_eq(frame_live(), base + 1);

    frame_unref(&g);
    ck_assert_ptr_null(g);
    ck_assert_uint_eq(f->refs, 2);
    frame_unref(&h);
    ck_assert_ptr_null(h);
    ck_assert_uint_eq(f->refs, 1);
    ck_assert_uint_eq(frame_live(), base + 1);
    frame_unref(&f);
    ck_assert_ptr_null(f);
    ck_assert_uint_eq(frame_live(), base);
}

END_TEST

START_TEST(test_unref_null_slot)
{
    uint64_t base = frame_live();
    struct frame *f = NULL;

    frame_unref(&f);
    ck_assert_ptr_null(f);
    ck_assert_uint_eq(frame_live(), base);
}

END_TEST

START_TEST(test_cleanup_drops_one)
{
    uint64_t base = frame_live();
    struct frame *f = frame_from("abc", 3);

    frame_ref(f);
    frame_ref(f);
    ck_assert_uint_eq(f->refs, 3);
    frame_cleanup(f->data, f->len, f);
    ck_assert_uint_eq(f->refs, 2);
    frame_cleanup(f->data, f->len, f);
    ck_assert_uint_eq(f->refs, 1);
    ck_assert_uint_eq(frame_live(), base + 1);
    /* The last reference through the cleanup frees it. */
    frame_cleanup(f->data, f->len, f);
    ck_assert_uint_eq(frame_live(), base);
}

END_TEST

START_TEST(test_from_copies)
{
    char src[64];
    struct frame *f;

    for (size_t i = 0; i < sizeof(src); i++)
        src[i] = (char)('A' + i % 26);
    f = frame_from(src, sizeof(src));
    ck_assert_uint_eq(f->len, sizeof(src));
    ck_assert_mem_eq(f->data, src, sizeof(src));
    ck_assert_ptr_ne(f->data, src);
    /* Changing the source afterwards leaves the frame as it was. */
    memset(src, 'z', sizeof(src));
    ck_assert_int_eq(f->data[0], 'A');
    ck_assert_int_eq(f->data[63], 'A' + 63 % 26);
    frame_unref(&f);
}

END_TEST

START_TEST(test_live_counts_many)
{
    uint64_t base = frame_live();
    struct frame *fs[100];

    for (size_t i = 0; i < 100; i++)
        fs[i] = frame_new(i);
    ck_assert_uint_eq(frame_live(), base + 100);
    for (size_t i = 0; i < 100; i += 2)
        frame_unref(&fs[i]);
    ck_assert_uint_eq(frame_live(), base + 50);
    for (size_t i = 1; i < 100; i += 2)
        frame_unref(&fs[i]);
    ck_assert_uint_eq(frame_live(), base);
}

END_TEST

struct thread_result {
    uint64_t start, during, end;
};

static void *thread_frames(void *arg)
{
    struct thread_result *r = arg;
    struct frame *fs[3];

    r->start = frame_live();
    for (size_t i = 0; i < 3; i++)
        fs[i] = frame_from("x", 1);
    r->during = frame_live();
    for (size_t i = 0; i < 3; i++)
        frame_unref(&fs[i]);
    r->end = frame_live();
    return NULL;
}

START_TEST(test_live_per_thread)
{
    struct frame *mine = frame_new(1);
    uint64_t base = frame_live();
    struct thread_result r = {99, 99, 99};
    pthread_t t;

    ck_assert_int_eq(pthread_create(&t, NULL, thread_frames, &r), 0);
    ck_assert_int_eq(pthread_join(t, NULL), 0);
    /* The other thread counted only its own frames, from zero. */
    ck_assert_uint_eq(r.start, 0);
    ck_assert_uint_eq(r.during, 3);
    ck_assert_uint_eq(r.end, 0);
    ck_assert_uint_eq(frame_live(), base);
    frame_unref(&mine);
    ck_assert_uint_eq(frame_live(), base - 1);
}

END_TEST

/* ---------------------------------------------------------------- outbuf */

static struct frame *pattern_frame(size_t len, unsigned seed)
{
    struct frame *f = frame_new(len);

    for (size_t i = 0; i < len; i++)
        f->data[i] = (char)((i * 7 + seed) & 0xff);
    return f;
}

/* Compares b's bytes with want[0..len) without changing b: evbuffer_pullup
 * would copy a multi-chain buffer into one chain and so release the frames. */
static void assert_contents(struct evbuffer *b, const void *want, size_t len)
{
    char *got = malloc(len + 1);

    ck_assert_uint_eq(evbuffer_get_length(b), len);
    ck_assert_int_eq(evbuffer_copyout(b, got, len), (ssize_t)len);
    ck_assert_mem_eq(got, want, len);
    free(got);
}

START_TEST(test_copy_at_max)
{
    uint64_t base = frame_live();
    struct evbuffer *b = evbuffer_new();
    struct frame *f = pattern_frame(OUTQ_COPY_MAX, 1);
    char want[OUTQ_COPY_MAX];

    memcpy(want, f->data, sizeof(want));
    ck_assert_int_eq(outq_append(b, f, 0), 0);
    ck_assert_uint_eq(f->refs, 1);
    ck_assert_uint_eq(frame_live(), base + 1);
    frame_unref(&f);
    /* The buffer holds a copy: the frame is gone, the bytes are not. */
    ck_assert_uint_eq(frame_live(), base);
    assert_contents(b, want, sizeof(want));
    evbuffer_free(b);
    ck_assert_uint_eq(frame_live(), base);
}

END_TEST

START_TEST(test_reference_above_max)
{
    uint64_t base = frame_live();
    struct evbuffer *b = evbuffer_new();
    struct frame *f = pattern_frame(OUTQ_COPY_MAX + 1, 2);
    struct evbuffer_iovec v;

    ck_assert_int_eq(outq_append(b, f, 0), 0);
    ck_assert_uint_eq(f->refs, 2);
    ck_assert_uint_eq(frame_live(), base + 1);
    assert_contents(b, f->data, OUTQ_COPY_MAX + 1);
    /* Referenced, not copied: the chain points at the frame's own bytes. */
    ck_assert_int_eq(evbuffer_peek(b, -1, NULL, &v, 1), 1);
    ck_assert_ptr_eq(v.iov_base, f->data);
    ck_assert_uint_eq(v.iov_len, OUTQ_COPY_MAX + 1);

    /* A partial drain keeps the chain and so the reference. */
    ck_assert_int_eq(evbuffer_drain(b, 100), 0);
    ck_assert_uint_eq(f->refs, 2);
    ck_assert_int_eq(evbuffer_drain(b, OUTQ_COPY_MAX + 1 - 100), 0);
    ck_assert_uint_eq(evbuffer_get_length(b), 0);
    ck_assert_uint_eq(f->refs, 1);
    ck_assert_uint_eq(frame_live(), base + 1);
    frame_unref(&f);
    ck_assert_uint_eq(frame_live(), base);
    evbuffer_free(b);
    ck_assert_uint_eq(frame_live(), base);
}

END_TEST

START_TEST(test_reference_released_by_free)
{
    uint64_t base = frame_live();
    struct evbuffer *b = evbuffer_new();
    struct evbuffer *b2 = evbuffer_new();
    struct frame *f = pattern_frame(4096, 3);
    struct frame *keep = frame_ref(f);

    ck_assert_int_eq(outq_append(b, f, 0), 0);
    ck_assert_int_eq(outq_append(b2, f, 0), 0);
    ck_assert_uint_eq(f->refs, 4);
    /* The creator lets go first: the buffers and `keep` hold it. */
    frame_unref(&f);
    ck_assert_uint_eq(keep->refs, 3);
    evbuffer_free(b);
    ck_assert_uint_eq(keep->refs, 2);
    assert_contents(b2, keep->data, 4096);
    evbuffer_free(b2);
    ck_assert_uint_eq(keep->refs, 1);
    ck_assert_uint_eq(frame_live(), base + 1);
    frame_unref(&keep);
    ck_assert_uint_eq(frame_live(), base);
}

END_TEST

START_TEST(test_last_reference_in_buffer)
{
    uint64_t base = frame_live();
    struct evbuffer *b = evbuffer_new();
    struct frame *f = pattern_frame(OUTQ_COPY_MAX + 1, 4);

    ck_assert_int_eq(outq_append(b, f, 0), 0);
    frame_unref(&f);
    /* Only the buffer holds it now; freeing the buffer frees the frame. */
    ck_assert_uint_eq(frame_live(), base + 1);
    evbuffer_free(b);
    ck_assert_uint_eq(frame_live(), base);
}

END_TEST

START_TEST(test_empty_frame_added)
{
    struct evbuffer *b = evbuffer_new();
    struct frame *f = frame_new(0);

    ck_assert_int_eq(outq_append(b, f, 0), 0);
    ck_assert_uint_eq(evbuffer_get_length(b), 0);
    ck_assert_uint_eq(f->refs, 1);
    frame_unref(&f);
    evbuffer_free(b);
}

END_TEST

#define MANY 300

/* Sizes cycling through small, boundary and large frames. */
static size_t many_size(size_t i)
{
    static const size_t sizes[] = {
        1, 60, OUTQ_COPY_MAX - 1, OUTQ_COPY_MAX, OUTQ_COPY_MAX + 1, 2000, 0, 9000};

    return sizes[i % (sizeof(sizes) / sizeof(sizes[0]))];
}

START_TEST(test_many_interleaved)
{
    uint64_t base = frame_live();
    struct evbuffer *out[2] = {evbuffer_new(), evbuffer_new()};
    struct frame *fs[MANY];
    size_t total = 0, large = 0, off[2] = {0, 0};
    unsigned char *want[2];

    for (size_t i = 0; i < MANY; i++) {
        fs[i] = pattern_frame(many_size(i), (unsigned)i);
        total += fs[i]->len;
        large += fs[i]->len > OUTQ_COPY_MAX;
    }
    want[0] = malloc(total + 1);
    want[1] = malloc(total + 1);
    /* Every frame goes to both buffers, in opposite orders. */
    for (size_t i = 0; i < MANY; i++) {
        struct frame *a = fs[i], *z = fs[MANY - 1 - i];

        ck_assert_int_eq(outq_append(out[0], a, 0), 0);
        ck_assert_int_eq(outq_append(out[1], z, 0), 0);
        memcpy(want[0] + off[0], a->data, a->len);
        off[0] += a->len;
        memcpy(want[1] + off[1], z->data, z->len);
        off[1] += z->len;
    }
    for (size_t i = 0; i < MANY; i++)
        ck_assert_uint_eq(fs[i]->refs, fs[i]->len > OUTQ_COPY_MAX ? 3 : 1);
    for (size_t i = 0; i < MANY; i++)
        frame_unref(&fs[i]);
    ck_assert_uint_eq(frame_live(), base + large);
    assert_contents(out[0], want[0], total);
    assert_contents(out[1], want[1], total);
    evbuffer_free(out[0]);
    ck_assert_uint_eq(frame_live(), base + large);
    evbuffer_free(out[1]);
    ck_assert_uint_eq(frame_live(), base);
    free(want[0]);
    free(want[1]);
}

END_TEST

/* Seconds per test: generous, as the machine may be shared with load tests. */
#define TCASE_TIMEOUT 60

static Suite *frame_suite(void)
{
    Suite *s = suite_create("frame");
    TCase *tc = tcase_create("refcount");
    tcase_add_test(tc, test_born_with_one);
    tcase_add_test(tc, test_empty_frame);
    tcase_add_test(tc, test_ref_unref);
    tcase_add_test(tc, test_unref_null_slot);
    tcase_add_test(tc, test_cleanup_drops_one);
    tcase_add_test(tc, test_from_copies);
    tcase_add_test(tc, test_live_counts_many);
    tcase_add_test(tc, test_live_per_thread);
    tcase_set_timeout(tc, TCASE_TIMEOUT);
    suite_add_tcase(s, tc);

    tc = tcase_create("outbuf");
    tcase_add_test(tc, test_copy_at_max);
    tcase_add_test(tc, test_reference_above_max);
    tcase_add_test(tc, test_reference_released_by_free);
    tcase_add_test(tc, test_last_reference_in_buffer);
    tcase_add_test(tc, test_empty_frame_added);
    tcase_add_test(tc, test_many_interleaved);
    tcase_set_timeout(tc, TCASE_TIMEOUT);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return check_run_suite(frame_suite());
}

/*
 * Output queues (common/outq.h): the output limit outq_fits at its
 * boundaries and near SIZE_MAX; outq_append copying up to OUTQ_COPY_MAX
 * appended bytes and referencing above (told apart by the frame's reference
 * count while the evbuffer holds it, by where the chain points, and by
 * frame_live once the evbuffer is freed), its skip offset; and the dirty
 * list: one entry per sink (SINK_DIRTY), consume keeping the rest in order,
 * prune dropping closed sinks and their flag, free.
 */
#include <check.h>
#include <event2/buffer.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/frame.h"
#include "common/outq.h"
#include "common/sink.h"
#include "tests/support/check_main.h"

/* ------------------------------------------------------------- outq_fits */

START_TEST(test_fits_boundary)
{
    /* queued + len == limit fits; one byte more does not. */
    ck_assert(outq_fits(90, 10, 100));
    ck_assert(!outq_fits(91, 10, 100));
    ck_assert(!outq_fits(90, 11, 100));
    ck_assert(outq_fits(0, 100, 100));
    ck_assert(outq_fits(100, 0, 100));
    ck_assert(!outq_fits(101, 0, 100));
    ck_assert(outq_fits(0, 0, 0));
    ck_assert(!outq_fits(0, 1, 0));
    ck_assert(!outq_fits(1, 0, 0));
}

END_TEST

START_TEST(test_fits_len_over_limit)
{
    /* A frame larger than the limit never fits, even into an empty queue
     * (limit - len must not wrap into a huge allowance). */
    ck_assert(!outq_fits(0, 101, 100));
    ck_assert(!outq_fits(0, SIZE_MAX, 100));
    ck_assert(!outq_fits(0, SIZE_MAX, SIZE_MAX - 1));
    ck_assert(outq_fits(0, SIZE_MAX, SIZE_MAX));
}

END_TEST

START_TEST(test_fits_no_overflow)
{
    /* queued + len would wrap past SIZE_MAX to a small sum within the limit. */
    ck_assert(!outq_fits(SIZE_MAX - 5, 10, SIZE_MAX));
    ck_assert(!outq_fits(SIZE_MAX, 1, 100));
    ck_assert(!outq_fits(SIZE_MAX, SIZE_MAX, SIZE_MAX));
    ck_assert(!outq_fits(10, SIZE_MAX - 5, SIZE_MAX));
    /* Exactly at SIZE_MAX still fits. */
    ck_assert(outq_fits(SIZE_MAX - 10, 10, SIZE_MAX));
    ck_assert(outq_fits(SIZE_MAX, 0, SIZE_MAX));
}

END_TEST

/* ----------------------------------------------------------- outq_append */

static struct frame *pattern_frame(size_t len, unsigned seed)
{
    struct frame *f = frame_new(len);

    for (size_t i = 0; i < len; i++)
        f->data[i] = (char)((i * 13 + seed) & 0xff);
    return f;
}

/* Compares b's bytes with want[0..len) without changing b. */
static void assert_contents(struct evbuffer *b, const void *want, size_t len)
{
    char *got = malloc(len + 1);

    ck_assert_uint_eq(evbuffer_get_length(b), len);
    ck_assert_int_eq(evbuffer_copyout(b, got, len), (ssize_t)len);
    ck_assert_mem_eq(got, want, len);
    free(got);
}

/* Where b's first chain starts (NULL when b is empty). */
static const void *first_chain(struct evbuffer *b)
{
    struct evbuffer_iovec v;

    if (evbuffer_peek(b, -1, NULL, &v, 1) < 1)
        return NULL;
    return v.iov_base;
}

START_TEST(test_append_copies_at_max)
{
    uint64_t base = frame_live();
    struct evbuffer *b = evbuffer_new();
    struct frame *f = pattern_frame(OUTQ_COPY_MAX, 1);
    char want[OUTQ_COPY_MAX];

    memcpy(want, f->data, sizeof(want));
    ck_assert_int_eq(outq_append(b, f, 0), 0);
    /* A copy: the buffer took no reference and does not point at the frame. */
    ck_assert_uint_eq(f->refs, 1);
    ck_assert_ptr_ne(first_chain(b), f->data);
    assert_contents(b, want, sizeof(want));
    frame_unref(&f);
    ck_assert_uint_eq(frame_live(), base);
    assert_contents(b, want, sizeof(want));
    evbuffer_free(b);
    ck_assert_uint_eq(frame_live(), base);
}

END_TEST

START_TEST(test_append_references_above_max)
{
    uint64_t base = frame_live();
    struct evbuffer *b = evbuffer_new();
    struct frame *f = pattern_frame(OUTQ_COPY_MAX + 1, 2);

    ck_assert_int_eq(outq_append(b, f, 0), 0);
    /* A reference: the buffer holds one and points at the frame's bytes. */
    ck_assert_uint_eq(f->refs, 2);
    ck_assert_ptr_eq(first_chain(b), f->data);
    assert_contents(b, f->data, OUTQ_COPY_MAX + 1);
    frame_unref(&f);
    /* The buffer's reference keeps the frame alive until the buffer goes. */
    ck_assert_uint_eq(frame_live(), base + 1);
    evbuffer_free(b);
    ck_assert_uint_eq(frame_live(), base);
}

END_TEST

START_TEST(test_append_after_existing)
{
    struct evbuffer *b = evbuffer_new();
    struct frame *small = frame_from("head", 4);
    struct frame *big = pattern_frame(OUTQ_COPY_MAX + 10, 3);
    char *want = malloc(4 + 4 + big->len);

    ck_assert_int_eq(outq_append(b, small, 0), 0);
    ck_assert_int_eq(outq_append(b, big, 0), 0);
    ck_assert_int_eq(outq_append(b, small, 0), 0);
    memcpy(want, "head", 4);
    memcpy(want + 4, big->data, big->len);
    memcpy(want + 4 + big->len, "head", 4);
    assert_contents(b, want, 8 + big->len);
    free(want);
    evbuffer_free(b);
    ck_assert_uint_eq(big->refs, 1);
    frame_unref(&small);
    frame_unref(&big);
}

END_TEST

START_TEST(test_append_skip_copy)
{
    struct evbuffer *b = evbuffer_new();
    struct frame *f = pattern_frame(100, 4);

    ck_assert_int_eq(outq_append(b, f, 30), 0);
    assert_contents(b, f->data + 30, 70);
    ck_assert_uint_eq(f->refs, 1);
    evbuffer_free(b);
    frame_unref(&f);
}

END_TEST

START_TEST(test_append_skip_reference)
{
    uint64_t base = frame_live();
    struct evbuffer *b = evbuffer_new();
    struct frame *f = pattern_frame(OUTQ_COPY_MAX + 100, 5);

    /* OUTQ_COPY_MAX + 1 bytes remain after the skip: referenced from data[99]. */
    ck_assert_int_eq(outq_append(b, f, 99), 0);
    ck_assert_uint_eq(f->refs, 2);
    ck_assert_ptr_eq(first_chain(b), f->data + 99);
    assert_contents(b, f->data + 99, OUTQ_COPY_MAX + 1);
    frame_unref(&f);
    evbuffer_free(b);
    ck_assert_uint_eq(frame_live(), base);
}

END_TEST

START_TEST(test_append_threshold_after_skip)
{
    uint64_t base = frame_live();
    struct evbuffer *b = evbuffer_new();
    struct frame *f = pattern_frame(OUTQ_COPY_MAX + 1, 6);

    /* The threshold is on the bytes appended: OUTQ_COPY_MAX of them are copied. */
    ck_assert_int_eq(outq_append(b, f, 1), 0);
    ck_assert_uint_eq(f->refs, 1);
    ck_assert_ptr_ne(first_chain(b), f->data + 1);
    assert_contents(b, f->data + 1, OUTQ_COPY_MAX);
    frame_unref(&f);
    ck_assert_uint_eq(frame_live(), base);
    evbuffer_free(b);
}

END_TEST

START_TEST(test_append_skip_to_end)
{
    struct evbuffer *b = evbuffer_new();
    struct frame *small = pattern_frame(10, 7);
    struct frame *big = pattern_frame(OUTQ_COPY_MAX + 50, 8);
    struct frame *empty = frame_new(0);

    /* skip >= len: nothing appended, no reference taken. */
    ck_assert_int_eq(outq_append(b, small, 10), 0);
    ck_assert_int_eq(outq_append(b, small, 11), 0);
    ck_assert_int_eq(outq_append(b, small, SIZE_MAX), 0);
    ck_assert_int_eq(outq_append(b, big, big->len), 0);
    ck_assert_int_eq(outq_append(b, big, big->len + 1), 0);
    ck_assert_int_eq(outq_append(b, empty, 0), 0);
    ck_assert_int_eq(outq_append(b, empty, 5), 0);
    ck_assert_uint_eq(evbuffer_get_length(b), 0);
    ck_assert_uint_eq(small->refs, 1);
    ck_assert_uint_eq(big->refs, 1);
    ck_assert_uint_eq(empty->refs, 1);
    /* One byte short of the end appends that byte. */
    ck_assert_int_eq(outq_append(b, small, 9), 0);
    assert_contents(b, small->data + 9, 1);
    evbuffer_free(b);
    frame_unref(&small);
    frame_unref(&big);
    frame_unref(&empty);
}

END_TEST

/* ------------------------------------------------------------ dirty list */

#define NSINKS 1000

static struct sink sinks[NSINKS];

static void dirty_setup(void)
{
    for (size_t i = 0; i < NSINKS; i++)
        sinks[i] = (struct sink){.form = (uint8_t)(i % 4), .flags = 0};
}

/* d holds exactly the sinks of idx[0..n), in that order. */
static void assert_list(const struct dirty_list *d, const size_t *idx, uint32_t n)
{
    ck_assert_uint_eq(d->n, n);
    for (uint32_t i = 0; i < n; i++)
        ck_assert_ptr_eq(d->v[i], &sinks[idx[i]]);
}

START_TEST(test_dirty_add_once)
{
    struct dirty_list d = {0};
    static const size_t want[] = {3, 1, 2};

    dirty_add(&d, &sinks[3]);
    dirty_add(&d, &sinks[1]);
    dirty_add(&d, &sinks[3]);
    dirty_add(&d, &sinks[2]);
    dirty_add(&d, &sinks[1]);
    assert_list(&d, want, 3);
    for (size_t i = 1; i <= 3; i++) {
        ck_assert_uint_eq(sinks[i].flags, SINK_DIRTY);
        ck_assert_uint_eq(sinks[i].form, i % 4);
    }
    ck_assert_uint_eq(sinks[0].flags, 0);
    ck_assert_uint_eq(sinks[4].flags, 0);
    dirty_free(&d);
}

END_TEST

START_TEST(test_dirty_add_keeps_other_flags)
{
    struct dirty_list d = {0};

    /* A closed sink may be added (its owner prunes it later); the flag stays. */
    sinks[0].flags = SINK_CLOSED;
    dirty_add(&d, &sinks[0]);
    ck_assert_uint_eq(d.n, 1);
    ck_assert_uint_eq(sinks[0].flags, SINK_CLOSED | SINK_DIRTY);
    dirty_free(&d);
}

END_TEST

START_TEST(test_dirty_add_again_after_flush)
{
    struct dirty_list d = {0};
    static const size_t want[] = {5, 6, 5};

    dirty_add(&d, &sinks[5]);
    dirty_add(&d, &sinks[6]);
    /* A flush writes the sink and clears its flag: it may come back. */
    sinks[5].flags &= (uint8_t)~SINK_DIRTY;
    dirty_add(&d, &sinks[5]);
    assert_list(&d, want, 3);
    dirty_free(&d);
}

END_TEST

START_TEST(test_dirty_add_many)
{
    struct dirty_list d = {0};

    for (size_t r = 0; r < 2; r++) {
        for (size_t i = 0; i < NSINKS; i++)
            dirty_add(&d, &sinks[i]);
    }
    ck_assert_uint_eq(d.n, NSINKS);
    ck_assert_uint_ge(d.cap, NSINKS);
    for (size_t i = 0; i < NSINKS; i++) {
        ck_assert_ptr_eq(d.v[i], &sinks[i]);
        ck_assert_uint_eq(sinks[i].flags, SINK_DIRTY);
    }
    dirty_free(&d);
}

END_TEST

static void add_range(struct dirty_list *d, size_t from, size_t to)
{
    for (size_t i = from; i < to; i++)
        dirty_add(d, &sinks[i]);
}

START_TEST(test_dirty_consume)
{
    struct dirty_list d = {0};
    static const size_t rest[] = {2, 3, 4, 5, 6, 7, 8, 9};
    static const size_t rest2[] = {5, 6, 7, 8, 9, 0};

    add_range(&d, 0, 10);
    dirty_consume(&d, 0);
    ck_assert_uint_eq(d.n, 10);
    dirty_consume(&d, 2);
    assert_list(&d, rest, 8);
    /* The rest are still on the list, flagged as such. */
    for (size_t i = 2; i < 10; i++)
        ck_assert_uint_eq(sinks[i].flags & SINK_DIRTY, SINK_DIRTY);
    dirty_consume(&d, 3);
    /* The writer cleared sink 0's flag: it is appended after the rest. */
    sinks[0].flags = 0;
    dirty_add(&d, &sinks[0]);
    assert_list(&d, rest2, 6);
    dirty_consume(&d, 5);
    ck_assert_uint_eq(d.n, 1);
    ck_assert_ptr_eq(d.v[0], &sinks[0]);
    dirty_free(&d);
}

END_TEST

START_TEST(test_dirty_consume_all)
{
    struct dirty_list d = {0};

    add_range(&d, 0, 4);
    dirty_consume(&d, 4);
    ck_assert_uint_eq(d.n, 0);
    add_range(&d, 10, 14);
    dirty_consume(&d, 100);
    ck_assert_uint_eq(d.n, 0);
    dirty_consume(&d, 1);
    ck_assert_uint_eq(d.n, 0);
    dirty_free(&d);
}

END_TEST

START_TEST(test_dirty_prune)
{
    struct dirty_list d = {0};
    static const size_t kept[] = {1, 3, 4, 7};

    add_range(&d, 0, 9);
    for (size_t i = 0; i < 9; i++) {
        if (i != 1 && i != 3 && i != 4 && i != 7)
            sinks[i].flags |= SINK_CLOSED;
    }
    dirty_prune(&d);
    assert_list(&d, kept, 4);
    for (size_t i = 0; i < 9; i++) {
        if (i == 1 || i == 3 || i == 4 || i == 7)
            ck_assert_uint_eq(sinks[i].flags, SINK_DIRTY);
        else
            ck_assert_uint_eq(sinks[i].flags, SINK_CLOSED);
    }
    /* Nothing closed: nothing changes. */
    dirty_prune(&d);
    assert_list(&d, kept, 4);
    /* Everything closed: empty. */
    for (size_t i = 0; i < 4; i++)
        sinks[kept[i]].flags |= SINK_CLOSED;
    dirty_prune(&d);
    ck_assert_uint_eq(d.n, 0);
    for (size_t i = 0; i < 9; i++)
        ck_assert_uint_eq(sinks[i].flags, SINK_CLOSED);
    dirty_free(&d);
}

END_TEST

START_TEST(test_dirty_prune_empty)
{
    struct dirty_list d = {0};

    dirty_prune(&d);
    ck_assert_uint_eq(d.n, 0);
    dirty_consume(&d, 3);
    ck_assert_uint_eq(d.n, 0);
    dirty_free(&d);
}

END_TEST

START_TEST(test_dirty_free)
{
    struct dirty_list d = {0};

    add_range(&d, 0, 100);
    dirty_free(&d);
    ck_assert_ptr_null(d.v);
    ck_assert_uint_eq(d.n, 0);
    ck_assert_uint_eq(d.cap, 0);
    /* Freed is empty and usable again (the flags are the owner's business). */
    sinks[0].flags = 0;
    dirty_add(&d, &sinks[0]);
    ck_assert_uint_eq(d.n, 1);
    ck_assert_ptr_eq(d.v[0], &sinks[0]);
    dirty_free(&d);
    dirty_free(&d);
    ck_assert_ptr_null(d.v);
}

END_TEST

/* Seconds per test: generous, as the machine may be shared with load tests. */
#define TCASE_TIMEOUT 60

static Suite *outq_suite(void)
{
    Suite *s = suite_create("outq");
    TCase *tc = tcase_create("fits");
    tcase_add_test(tc, test_fits_boundary);
    tcase_add_test(tc, test_fits_len_over_limit);
    tcase_add_test(tc, test_fits_no_overflow);
    tcase_set_timeout(tc, TCASE_TIMEOUT);
    suite_add_tcase(s, tc);

    tc = tcase_create("append");
    tcase_add_test(tc, test_append_copies_at_max);
    tcase_add_test(tc, test_append_references_above_max);
    tcase_add_test(tc, test_append_after_existing);
    tcase_add_test(tc, test_append_skip_copy);
    tcase_add_test(tc, test_append_skip_reference);
    tcase_add_test(tc, test_append_threshold_after_skip);
    tcase_add_test(tc, test_append_skip_to_end);
    tcase_set_timeout(tc, TCASE_TIMEOUT);
    suite_add_tcase(s, tc);

    tc = tcase_create("dirty");
    tcase_add_checked_fixture(tc, dirty_setup, NULL);
    tcase_add_test(tc, test_dirty_add_once);
    tcase_add_test(tc, test_dirty_add_keeps_other_flags);
    tcase_add_test(tc, test_dirty_add_again_after_flush);
    tcase_add_test(tc, test_dirty_add_many);
    tcase_add_test(tc, test_dirty_consume);
    tcase_add_test(tc, test_dirty_consume_all);
    tcase_add_test(tc, test_dirty_prune);
    tcase_add_test(tc, test_dirty_prune_empty);
    tcase_add_test(tc, test_dirty_free);
    tcase_set_timeout(tc, TCASE_TIMEOUT);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return check_run_suite(outq_suite());
}

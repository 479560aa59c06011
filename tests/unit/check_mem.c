/*
 * Allocation helpers (common/mem.c): copies, zeroed arrays and the trim
 * trigger - mem_trim_after_peak gives memory back once per drop from a
 * peak, not on every sweep while the level stays low.
 */
#include <check.h>
#include <string.h>

#include "common/mem.h"
#include "tests/support/check_main.h"

START_TEST(test_copies_and_zeroed)
{
    char *s = mem_strndup("abcdef", 3);
    unsigned char *z = mem_calloc(16, 4);

    ck_assert_str_eq(s, "abc");
    for (size_t i = 0; i < 64; i++) {
        ck_assert_uint_eq(z[i], 0);
        z[i] = (unsigned char)(i + 1);
    }
    z = mem_realloc(z, 128); /* keeps the first 64 bytes */
    for (size_t i = 0; i < 64; i++)
        ck_assert_uint_eq(z[i], i + 1);
    memset(z + 64, 0xee, 64); /* the new 64 are ours (ASan) */
    mem_free(s);
    mem_free(z);
    mem_free(NULL);
}

END_TEST

START_TEST(test_trim_once_per_drop_from_peak)
{
    size_t peak = 0;

    ck_assert(!mem_trim_after_peak(100, &peak, 50)); /* rising: the peak follows */
    ck_assert(!mem_trim_after_peak(400, &peak, 50));
    ck_assert_uint_eq(peak, 400);
    ck_assert(!mem_trim_after_peak(360, &peak, 50)); /* 40 below: not yet */
    ck_assert(mem_trim_after_peak(350, &peak, 50));  /* 50 below: trims */
    ck_assert_uint_eq(peak, 350);
    ck_assert(!mem_trim_after_peak(340, &peak, 50)); /* the level stays low: no more */
    ck_assert(!mem_trim_after_peak(310, &peak, 50));
    ck_assert(mem_trim_after_peak(300, &peak, 50)); /* a second drop */
    ck_assert(!mem_trim_after_peak(900, &peak, 50));
    ck_assert(mem_trim_after_peak(0, &peak, 50));
}

END_TEST

static Suite *mem_suite(void)
{
    Suite *s = suite_create("mem");
    TCase *tc = tcase_create("mem");

    tcase_add_test(tc, test_copies_and_zeroed);
    tcase_add_test(tc, test_trim_once_per_drop_from_peak);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return check_run_suite(mem_suite());
}

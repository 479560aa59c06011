#ifndef HERALD_TESTS_SUPPORT_CHECK_MAIN_H
#define HERALD_TESTS_SUPPORT_CHECK_MAIN_H

#include <check.h>

/*
 * Shared body of every unit suite's main(): each tests/unit/check_<module>.c
 * builds its Suite and ends with `return check_run_suite(<module>_suite());`.
 * A main() that needs more (environment, timeouts) does that work first and
 * then calls this for the common part.
 */

/*
 * Takes s (the runner owns and frees it). Runs every case with Check's default
 * fork mode (each test in its own process; CK_FORK=no in the environment turns
 * it off for debugging), prints a CK_NORMAL summary, and returns the process
 * exit status: 0 when every test passed, 1 otherwise.
 */
static inline int check_run_suite(Suite *s)
{
    SRunner *sr = srunner_create(s);
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed != 0;
}

#endif

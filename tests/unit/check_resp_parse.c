/*
 * check_resp_parse.c - unit tests for the pure RESP2 request parser.
 *
 * Every parse runs on an exact-size heap copy of the input, so ASan flags
 * any read past the end; the guard-page case checks the same against an
 * unmapped page without a sanitizer. Cases are tables run with
 * tcase_add_loop_test: valid commands (also cut at every split point),
 * malformed inputs with their exact error, and limit checks.
 */
#include "broker/resp_parse.h"
#include "tests/support/check_main.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define STR(s) s, sizeof(s) - 1

#define MAX_TEST_ARGS 8

static const struct resp_limits default_limits = {
    .max_args = MAX_TEST_ARGS,
    .max_bulk = 64,
    .max_inline = 128,
};

struct expected_arg {
    const char *ptr;
    size_t len;
};

struct valid_case {
    const char *in;
    size_t in_len;
    size_t argc;
    struct expected_arg args[4];
};

/* Each input is exactly one command, so it is consumed whole. */
static const struct valid_case valid_cases[] = {
    {STR("*1\r\n$4\r\nPING\r\n"), 1, {{STR("PING")}}},
    {STR("*3\r\n$7\r\nPUBLISH\r\n$3\r\na.b\r\n$5\r\nhello\r\n"),
     3,
     {{STR("PUBLISH")}, {STR("a.b")}, {STR("hello")}}},
    /* Binary data holding CRLF, NUL and a lone LF. */
    {STR("*2\r\n$4\r\nECHO\r\n$6\r\na\r\n\0\nb\r\n"), 2, {{STR("ECHO")}, {STR("a\r\n\0\nb")}}},
    {STR("*2\r\n$4\r\nECHO\r\n$0\r\n\r\n"), 2, {{STR("ECHO")}, {STR("")}}},
    {STR("*0\r\n"), 0, {{NULL, 0}}},
    {STR("*-1\r\n"), 0, {{NULL, 0}}},
    {STR("PING\r\n"), 1, {{STR("PING")}}},
    {STR("PING\n"), 1, {{STR("PING")}}},
    {STR("\r\n"), 0, {{NULL, 0}}},
    {STR("\n"), 0, {{NULL, 0}}},
    {STR("  \t \r\n"), 0, {{NULL, 0}}},
    {STR("  PUBLISH \t a.b  hello  \r\n"), 3, {{STR("PUBLISH")}, {STR("a.b")}, {STR("hello")}}},
    {STR("SET \"a b\" 'c d'\r\n"), 3, {{STR("SET")}, {STR("a b")}, {STR("c d")}}},
    {STR("ECHO \"\\\"q\\\\ \\n\\r\\t\\b\\a\\x41\\x7a\\xZZ\\q\"\r\n"),
     2,
     {{STR("ECHO")}, {STR("\"q\\ \n\r\t\b\aAzxZZq")}}},
    {STR("SET k \"\\x00\\xfF\"\n"), 3, {{STR("SET")}, {STR("k")}, {STR("\0\xff")}}},
    {STR("ECHO 'it\\'s \\n \"x\"'\n"), 2, {{STR("ECHO")}, {STR("it's \\n \"x\"")}}},
    {STR("ECHO \"\" ''\n"), 3, {{STR("ECHO")}, {STR("")}, {STR("")}}},
    /* sdssplitargs: a quote inside a word opens a quoted part of it. */
    {STR("ECHO foo\"bar baz\" x\n"), 3, {{STR("ECHO")}, {STR("foobar baz")}, {STR("x")}}},
    /* The last "\r" ends the line; an earlier one is a blank. */
    {STR("PING\r\r\n"), 1, {{STR("PING")}}},
};

#define N_VALID (sizeof(valid_cases) / sizeof(valid_cases[0]))

/* Returns a new exact-size copy of in[0..len) (at least one byte allocated). */
static char *copy_input(const char *in, size_t len)
{
    char *buf = malloc(len > 0 ? len : 1);

    ck_assert_ptr_nonnull(buf);
    memcpy(buf, in, len);
    return buf;
}

static void assert_args(const struct valid_case *vc, const char *buf, struct resp_arg *argv,
                        size_t argc)
{
    ck_assert_uint_eq(argc, vc->argc);
    for (size_t k = 0; k < argc; k++) {
        ck_assert_uint_eq(argv[k].len, vc->args[k].len);
        ck_assert_mem_eq(argv[k].ptr, vc->args[k].ptr, vc->args[k].len);
        ck_assert(argv[k].ptr >= buf && argv[k].ptr + argv[k].len <= buf + vc->in_len);
    }
}

/* ---- valid commands ---------------------------------------------------- */

START_TEST(test_valid)
{
    const struct valid_case *vc = &valid_cases[_i];
    struct resp_arg argv[MAX_TEST_ARGS];
    size_t argc = 99;
    const char *err = NULL;
    char *buf = copy_input(vc->in, vc->in_len);
    ssize_t r = resp_parse_command(buf, vc->in_len, &default_limits, argv, &argc, &err);

    ck_assert_int_eq(r, (ssize_t)vc->in_len);
    ck_assert_ptr_null(err);
    assert_args(vc, buf, argv, argc);
    if (vc->in[0] == '*')
        ck_assert_mem_eq(buf, vc->in, vc->in_len);
    free(buf);
}

END_TEST

/* Every proper prefix is incomplete, and parsing it writes nothing. */
START_TEST(test_split_points)
{
    const struct valid_case *vc = &valid_cases[_i];

    for (size_t cut = 0; cut < vc->in_len; cut++) {
        struct resp_arg argv[MAX_TEST_ARGS];
        size_t argc = 99;
        const char *err = NULL;
        char *buf = copy_input(vc->in, cut);
        ssize_t r = resp_parse_command(buf, cut, &default_limits, argv, &argc, &err);

        ck_assert_msg(r == -2, "case %d cut %zu: got %zd (%s)", _i, cut, r, err ? err : "");
        ck_assert_uint_eq(argc, 0);
        ck_assert_mem_eq(buf, vc->in, cut);
        free(buf);
    }
}

END_TEST

START_TEST(test_pipelined)
{
    static const char in[] = "*1\r\n$4\r\nPING\r\n"
                             "ECHO \"a b\"\r\n"
                             "*0\r\n"
                             "*2\r\n$4\r\nECHO\r\n$1\r\nx\r\n"
                             "\n"
                             "PING\n"
                             "*1\r\n$4\r\nPI";

    static const struct {
        ssize_t consumed;
        size_t argc;
        const char *last;
    } steps[] = {{14, 1, "PING"}, {12, 2, "a b"}, {4, 0, NULL}, {21, 2, "x"},
                 {1, 0, NULL},    {5, 1, "PING"}, {-2, 0, NULL}};

    size_t len = sizeof(in) - 1, pos = 0;
    char *buf = copy_input(in, len);

    for (size_t s = 0; s < sizeof(steps) / sizeof(steps[0]); s++) {
        struct resp_arg argv[MAX_TEST_ARGS];
        size_t argc;
        const char *err = NULL;
        ssize_t r = resp_parse_command(buf + pos, len - pos, &default_limits, argv, &argc, &err);

        ck_assert_int_eq(r, steps[s].consumed);
        ck_assert_uint_eq(argc, steps[s].argc);
        if (steps[s].last != NULL) {
            ck_assert_uint_eq(argv[argc - 1].len, strlen(steps[s].last));
            ck_assert_mem_eq(argv[argc - 1].ptr, steps[s].last, strlen(steps[s].last));
        }
        if (r > 0)
            pos += (size_t)r;
    }
    ck_assert_uint_eq(pos, len - 10);
    free(buf);
}

END_TEST

/* ---- malformed input --------------------------------------------------- */

struct bad_case {
    const char *in;
    size_t in_len;
    const char *err;
};

#define E_MBULK  "Protocol error: invalid multibulk length"
#define E_BULK   "Protocol error: invalid bulk length"
#define E_QUOTES "Protocol error: unbalanced quotes in request"

static const struct bad_case bad_cases[] = {
    {STR("*x\r\n"), E_MBULK},
    {STR("*+1\r\n"), E_MBULK},
    {STR("*01\r\n"), E_MBULK},
    {STR("*\r\n"), E_MBULK},
    {STR("*-\r\n"), E_MBULK},
    {STR("*-2\r\n"), E_MBULK},
    {STR("*-0\r\n"), E_MBULK},
    {STR("*1 \r\n"), E_MBULK},
    {STR("*1\rX"), E_MBULK},
    {STR("*1\n"), E_MBULK},
    {STR("*99999999999999999999\r\n"), E_MBULK},
    /* No CRLF yet, but already too long to be a number line. */
    {STR("*111111111111111111111111111111111"), E_MBULK},
    {STR("*1\r\nX"), "Protocol error: expected '$', got 'X'"},
    {STR("*1\r\n\r\n"), "Protocol error: expected '$', got '?'"},
    {STR("*1\r\n\xff"), "Protocol error: expected '$', got '?'"},
    {STR("*2\r\n$1\r\na\r\n*"), "Protocol error: expected '$', got '*'"},
    {STR("*1\r\n$x\r\n"), E_BULK},
    {STR("*1\r\n$\r\n"), E_BULK},
    {STR("*1\r\n$-1\r\n"), E_BULK},
    {STR("*1\r\n$+1\r\n"), E_BULK},
    {STR("*1\r\n$01\r\n"), E_BULK},
    {STR("*1\r\n$1\rx"), E_BULK},
    {STR("*1\r\n$99999999999999999999\r\n"), E_BULK},
    {STR("*1\r\n$9999999999999999999999999999999999"), E_BULK},
    /* Bulk data not followed by CRLF. */
    {STR("*1\r\n$1\r\nab\r\n"), E_BULK},
    {STR("*1\r\n$1\r\na\rX"), E_BULK},
    {STR("*1\r\n$1\r\na\n"), E_BULK},
    {STR("ECHO \"abc\n"), E_QUOTES},
    {STR("ECHO 'abc\r\n"), E_QUOTES},
    {STR("ECHO \"abc\\\"\n"), E_QUOTES},
    {STR("ECHO 'abc\\'\n"), E_QUOTES},
    {STR("ECHO \"abc\\\n"), E_QUOTES},
    {STR("ECHO \"abc\"def\n"), E_QUOTES},
    {STR("ECHO 'a'b\n"), E_QUOTES},
    {STR("ECHO x\"a\"\"b\"\n"), E_QUOTES},
};

#define N_BAD (sizeof(bad_cases) / sizeof(bad_cases[0]))

START_TEST(test_malformed)
{
    const struct bad_case *bc = &bad_cases[_i];
    struct resp_arg argv[MAX_TEST_ARGS];
    size_t argc = 99;
    const char *err = NULL;
    char *buf = copy_input(bc->in, bc->in_len);
    ssize_t r = resp_parse_command(buf, bc->in_len, &default_limits, argv, &argc, &err);

    ck_assert_int_eq(r, -1);
    ck_assert_ptr_nonnull(err);
    ck_assert_str_eq(err, bc->err);
    ck_assert_uint_eq(argc, 0);
    free(buf);
}

END_TEST

/* ---- limits ------------------------------------------------------------ */

static const struct resp_limits small_limits = {.max_args = 4, .max_bulk = 8, .max_inline = 16};

struct limit_case {
    const char *in;
    size_t in_len;
    ssize_t ret;
    size_t argc;
    const char *err;
};

#define E_TOO_MANY "Protocol error: too many arguments"
#define E_INLINE   "Protocol error: too big inline request"

static const struct limit_case limit_cases[] = {
    /* Counts and lengths are judged when their line completes. */
    {STR("*5\r\n"), -1, 0, E_TOO_MANY},
    {STR("*4\r\n"), -2, 0, NULL},
    {STR("*4\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n$1\r\nd\r\n"), 32, 4, NULL},
    {STR("*1\r\n$9\r\n"), -1, 0, E_BULK},
    {STR("*1\r\n$8\r\n"), -2, 0, NULL},
    {STR("*1\r\n$8\r\n12345678\r\n"), 18, 1, NULL},
    {STR("a b c d\n"), 8, 4, NULL},
    {STR("a b c d e\n"), -1, 0, E_TOO_MANY},
    {STR("0123456789abcdef\r\n"), 18, 1, NULL},
    {STR("0123456789abcdef\n"), 17, 1, NULL},
    {STR("0123456789abcdef"), -2, 0, NULL},
    {STR("0123456789abcdef\r"), -2, 0, NULL},
    {STR("0123456789abcdefg"), -1, 0, E_INLINE},
    {STR("0123456789abcdefg\n"), -1, 0, E_INLINE},
    {STR("0123456789abcdef\r\r\n"), -1, 0, E_INLINE},
    {STR("0123456789abcdef\rx"), -1, 0, E_INLINE},
};

#define N_LIMIT (sizeof(limit_cases) / sizeof(limit_cases[0]))

START_TEST(test_limits)
{
    const struct limit_case *lc = &limit_cases[_i];
    struct resp_arg argv[4];
    size_t argc = 99;
    const char *err = NULL;
    char *buf = copy_input(lc->in, lc->in_len);
    ssize_t r = resp_parse_command(buf, lc->in_len, &small_limits, argv, &argc, &err);

    ck_assert_int_eq(r, lc->ret);
    ck_assert_uint_eq(argc, lc->argc);
    if (lc->err != NULL)
        ck_assert_str_eq(err, lc->err);
    else
        ck_assert_ptr_null(err);
    free(buf);
}

END_TEST

/* ---- guard page -------------------------------------------------------- */

/*
 * Each valid command, and each of its prefixes, is placed so that its last
 * byte is the last one before a PROT_NONE page: one byte too far faults.
 */
START_TEST(test_guard_page)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    char *map = mmap(NULL, 2 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

    ck_assert_ptr_ne(map, MAP_FAILED);
    ck_assert_int_eq(mprotect(map + page, page, PROT_NONE), 0);
    for (size_t c = 0; c < N_VALID; c++) {
        const struct valid_case *vc = &valid_cases[c];

        for (size_t cut = 0; cut <= vc->in_len; cut++) {
            struct resp_arg argv[MAX_TEST_ARGS];
            size_t argc;
            const char *err = NULL;
            char *buf = map + page - cut;
            ssize_t r;

            memcpy(buf, vc->in, cut);
            r = resp_parse_command(buf, cut, &default_limits, argv, &argc, &err);
            ck_assert_int_eq(r, cut == vc->in_len ? (ssize_t)cut : -2);
            if (cut == vc->in_len)
                assert_args(vc, buf, argv, argc);
        }
    }
    ck_assert_int_eq(munmap(map, 2 * page), 0);
}

END_TEST

static Suite *resp_parse_suite(void)
{
    Suite *s = suite_create("resp_parse");
    TCase *tc_valid = tcase_create("valid");
    TCase *tc_bad = tcase_create("malformed");
    TCase *tc_limits = tcase_create("limits");
    TCase *tc_guard = tcase_create("guard_page");

    tcase_add_loop_test(tc_valid, test_valid, 0, (int)N_VALID);
    tcase_add_loop_test(tc_valid, test_split_points, 0, (int)N_VALID);
    tcase_add_test(tc_valid, test_pipelined);
    suite_add_tcase(s, tc_valid);
    tcase_add_loop_test(tc_bad, test_malformed, 0, (int)N_BAD);
    suite_add_tcase(s, tc_bad);
    tcase_add_loop_test(tc_limits, test_limits, 0, (int)N_LIMIT);
    suite_add_tcase(s, tc_limits);
    tcase_add_test(tc_guard, test_guard_page);
    suite_add_tcase(s, tc_guard);
    return s;
}

int main(void)
{
    return check_run_suite(resp_parse_suite());
}

/*
 * key=value logging (common/log.c): the exact shape of a line, worker=N,
 * level filtering (a suppressed line's arguments are not evaluated),
 * log_level_parse, and lines longer than the buffer cut to end in "...\n".
 *
 * stderr is captured by putting one end of a SOCK_SEQPACKET socket pair on
 * fd 2 for the duration of a call: every write(2) arrives as one message,
 * so the tests also see that each line is written exactly once.
 */
#include <check.h>
#include <regex.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "tests/support/check_main.h"

#define CAP_MAX 8
#define MSG_MAX 8192

struct capture {
    int saved, sv[2];
    int n;                      /* writes seen */
    char msg[CAP_MAX][MSG_MAX]; /* each write, NUL-terminated */
    size_t len[CAP_MAX];
};

static struct capture cap;

static void capture_start(void)
{
    memset(&cap, 0, sizeof(cap));
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, cap.sv), 0);
    cap.saved = dup(STDERR_FILENO);
    ck_assert_int_ge(cap.saved, 0);
    ck_assert_int_eq(dup2(cap.sv[1], STDERR_FILENO), STDERR_FILENO);
}

/* Restores stderr and collects the writes made since capture_start. */
static void capture_end(void)
{
    ssize_t r;

    ck_assert_int_eq(dup2(cap.saved, STDERR_FILENO), STDERR_FILENO);
    close(cap.saved);
    close(cap.sv[1]);
    while ((r = recv(cap.sv[0], cap.msg[cap.n], MSG_MAX - 1, MSG_DONTWAIT)) > 0) {
        cap.msg[cap.n][r] = '\0';
        cap.len[cap.n] = (size_t)r;
        if (++cap.n == CAP_MAX)
            break;
    }
    close(cap.sv[0]);
}

static bool matches(const char *re, const char *s)
{
    regex_t rx;
    int rc;

    ck_assert_int_eq(regcomp(&rx, re, REG_EXTENDED | REG_NOSUB), 0);
    rc = regexec(&rx, s, 0, NULL, 0);
    regfree(&rx);
    return rc == 0;
}

#define TS_RE "^ts=[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z "

static void setup(void)
{
    log_init("test", LOG_LEVEL_INFO);
    log_set_worker(-1);
}

/* ---------------------------------------------------------------- shape */

START_TEST(test_line_shape)
{
    capture_start();
    log_warn("x", "a=%d", 1);
    capture_end();
    ck_assert_int_eq(cap.n, 1);
    ck_assert_msg(matches(TS_RE "level=warn proc=test event=x a=1\n$", cap.msg[0]), "got '%s'",
                  cap.msg[0]);
    /* The fixed-width prefix: "ts=" and 24 characters of time. */
    ck_assert_uint_eq(cap.len[0], strlen("ts=2026-11-22T02:16:09.123Z level=warn proc=test "
                                         "event=x a=1\n"));
}

END_TEST

START_TEST(test_timestamp_is_now_utc)
{
    struct tm tm = {0};
    time_t before = time(NULL), after, logged;
    const char *end;

    capture_start();
    log_error("t", "");
    capture_end();
    after = time(NULL);
    ck_assert_int_eq(cap.n, 1);
    end = strptime(cap.msg[0], "ts=%Y-%m-%dT%H:%M:%S", &tm);
    ck_assert_ptr_nonnull(end);
    ck_assert_int_eq(end[0], '.');
    logged = timegm(&tm);
    ck_assert_int_ge(logged, before);
    ck_assert_int_le(logged, after);
}

END_TEST

START_TEST(test_empty_fmt_no_trailing_space)
{
    capture_start();
    log_info("ready", "");
    capture_end();
    ck_assert_int_eq(cap.n, 1);
    ck_assert_msg(matches(TS_RE "level=info proc=test event=ready\n$", cap.msg[0]), "got '%s'",
                  cap.msg[0]);
}

END_TEST

START_TEST(test_several_pairs)
{
    capture_start();
    log_error("slow_consumer", "conn=%u queued=%zu peer=%s", 811u, (size_t)1048576, "1.2.3.4:5");
    capture_end();
    ck_assert_int_eq(cap.n, 1);
    ck_assert_msg(matches(TS_RE "level=error proc=test event=slow_consumer conn=811 "
                                "queued=1048576 peer=1\\.2\\.3\\.4:5\n$",
                          cap.msg[0]),
                  "got '%s'", cap.msg[0]);
}

END_TEST

START_TEST(test_worker_id)
{
    capture_start();
    log_set_worker(2);
    log_warn("x", "a=%d", 1);
    log_set_worker(0);
    log_warn("y", "b=2");
    log_set_worker(-1);
    log_warn("z", "c=3");
    capture_end();
    ck_assert_int_eq(cap.n, 3);
    ck_assert_msg(matches(TS_RE "level=warn proc=test worker=2 event=x a=1\n$", cap.msg[0]),
                  "got '%s'", cap.msg[0]);
    ck_assert_msg(matches(TS_RE "level=warn proc=test worker=0 event=y b=2\n$", cap.msg[1]),
                  "got '%s'", cap.msg[1]);
    ck_assert_msg(matches(TS_RE "level=warn proc=test event=z c=3\n$", cap.msg[2]), "got '%s'",
                  cap.msg[2]);
}

END_TEST

START_TEST(test_proc_name)
{
    log_init("edge", LOG_LEVEL_DEBUG);
    capture_start();
    log_debug("d", "k=v");
    capture_end();
    ck_assert_int_eq(cap.n, 1);
    ck_assert_msg(matches(TS_RE "level=debug proc=edge event=d k=v\n$", cap.msg[0]), "got '%s'",
                  cap.msg[0]);
}

END_TEST

/* ---------------------------------------------------------------- levels */

START_TEST(test_filter_skips_arguments)
{
    int evaluated = 0;

    capture_start();
    log_debug("d", "n=%d", ++evaluated);
    log_info("i", "n=%d", ++evaluated);
    capture_end();
    /* The debug line's argument was never evaluated. */
    ck_assert_int_eq(evaluated, 1);
    ck_assert_int_eq(cap.n, 1);
    ck_assert_msg(matches(TS_RE "level=info proc=test event=i n=1\n$", cap.msg[0]), "got '%s'",
                  cap.msg[0]);
}

END_TEST

START_TEST(test_set_level)
{
    int evaluated = 0;

    log_set_level(LOG_LEVEL_ERROR);
    capture_start();
    log_debug("a", "n=%d", ++evaluated);
    log_info("b", "n=%d", ++evaluated);
    log_warn("c", "n=%d", ++evaluated);
    log_error("e", "n=%d", ++evaluated);
    log_set_level(LOG_LEVEL_DEBUG);
    log_debug("f", "n=%d", ++evaluated);
    capture_end();
    ck_assert_int_eq(evaluated, 2);
    ck_assert_int_eq(cap.n, 2);
    ck_assert_msg(matches(TS_RE "level=error proc=test event=e n=1\n$", cap.msg[0]), "got '%s'",
                  cap.msg[0]);
    ck_assert_msg(matches(TS_RE "level=debug proc=test event=f n=2\n$", cap.msg[1]), "got '%s'",
                  cap.msg[1]);
}

END_TEST

/* log_enabled(level) for each threshold: row = threshold, column = level. */
static const bool enabled_table[4][4] = {
    {true, true, true, true},
    {false, true, true, true},
    {false, false, true, true},
    {false, false, false, true},
};

START_TEST(test_enabled_table)
{
    log_set_level((enum log_level)_i);
    for (int l = LOG_LEVEL_DEBUG; l <= LOG_LEVEL_ERROR; l++)
        ck_assert_msg(log_enabled((enum log_level)l) == enabled_table[_i][l],
                      "threshold %d level %d", _i, l);
}

END_TEST

struct parse_case {
    const char *name;
    int rc;
    enum log_level level;
};

static const struct parse_case parse_cases[] = {
    {"debug", 0, LOG_LEVEL_DEBUG},
    {"info", 0, LOG_LEVEL_INFO},
    {"warn", 0, LOG_LEVEL_WARN},
    {"error", 0, LOG_LEVEL_ERROR},
    {"WARN", 0, LOG_LEVEL_WARN},
    {"Error", 0, LOG_LEVEL_ERROR},
    {"warning", -1, 0},
    {"fatal", -1, 0},
    {"inf", -1, 0},
    {"", -1, 0},
    {" info", -1, 0},
    {"info ", -1, 0},
    {"3", -1, 0},
};

START_TEST(test_level_parse)
{
    const struct parse_case *c = &parse_cases[_i];
    enum log_level out = (enum log_level)77;

    ck_assert_int_eq(log_level_parse(c->name, &out), c->rc);
    if (c->rc == 0)
        ck_assert_int_eq(out, c->level);
    else
        ck_assert_int_eq(out, 77); /* untouched on failure */
}

END_TEST

/* ---------------------------------------------------------------- long lines */

#define LINE_MAX_BYTES 2048 /* LOG_LINE_MAX in log.c */

/* Length of the line "... event=x" + " v=" without value or newline. */
static size_t prefix_len(void)
{
    capture_start();
    log_warn("x", "v=");
    capture_end();
    ck_assert_int_eq(cap.n, 1);
    return cap.len[0] - 1;
}

static void log_value_of(size_t n)
{
    char *v = malloc(n + 1);

    memset(v, 'v', n);
    v[n] = '\0';
    capture_start();
    log_warn("x", "v=%s", v);
    capture_end();
    free(v);
    ck_assert_int_eq(cap.n, 1);
}

START_TEST(test_longest_uncut_line)
{
    /* The longest line kept whole: buffer size less the NUL, newline added. */
    size_t n = LINE_MAX_BYTES - 2 - prefix_len();

    log_value_of(n);
    ck_assert_uint_eq(cap.len[0], LINE_MAX_BYTES - 1);
    ck_assert_int_eq(cap.msg[0][cap.len[0] - 2], 'v');
    ck_assert_int_eq(cap.msg[0][cap.len[0] - 1], '\n');
    ck_assert_ptr_null(strstr(cap.msg[0], "..."));
}

END_TEST

START_TEST(test_cut_line)
{
    /* One byte more, and far more: cut, one write, "...\n" at the end. */
    size_t sizes[] = {LINE_MAX_BYTES - 1 - prefix_len(), 3000, 100000};

    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        log_value_of(sizes[i]);
        ck_assert_uint_eq(cap.len[0], LINE_MAX_BYTES - 1);
        ck_assert_str_eq(cap.msg[0] + cap.len[0] - 6, "vv...\n");
        ck_assert(matches(TS_RE "level=warn proc=test event=x v=v+\\.\\.\\.\n$", cap.msg[0]));
    }
}

END_TEST

START_TEST(test_cut_long_event)
{
    /* An event name longer than the buffer cuts the prefix itself. */
    char event[3000];

    memset(event, 'e', sizeof(event) - 1);
    event[sizeof(event) - 1] = '\0';
    capture_start();
    log_warn(event, "a=%d", 1);
    capture_end();
    ck_assert_int_eq(cap.n, 1);
    ck_assert_uint_eq(cap.len[0], LINE_MAX_BYTES - 1);
    ck_assert_str_eq(cap.msg[0] + cap.len[0] - 7, "eee...\n");
    ck_assert(matches(TS_RE "level=warn proc=test event=e+\\.\\.\\.\n$", cap.msg[0]));
}

END_TEST

/* Seconds per test: generous, as the machine may be shared with load tests. */
#define TCASE_TIMEOUT 60

/* A peer-triggered line is written once per interval, with the count since the last one. */
START_TEST(test_rate_counts_between_lines)
{
    struct log_rate r;

    memset(&r, 0, sizeof(r));
    ck_assert_uint_eq(log_rate_tick(&r, 1000, 1000), 1); /* the first one: at once */
    for (int i = 0; i < 500; i++)
        ck_assert_uint_eq(log_rate_tick(&r, 1000 + (uint64_t)i, 1000), 0);
    ck_assert_uint_eq(log_rate_tick(&r, 1999, 1000), 0);
    ck_assert_uint_eq(log_rate_tick(&r, 2000, 1000), 502); /* 501 counted + this one */
    ck_assert_uint_eq(log_rate_tick(&r, 2500, 1000), 0);
    ck_assert_uint_eq(log_rate_tick(&r, 9000, 1000), 2);
}

END_TEST

static Suite *log_suite(void)
{
    Suite *s = suite_create("log");
    TCase *tc = tcase_create("shape");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_test(tc, test_line_shape);
    tcase_add_test(tc, test_timestamp_is_now_utc);
    tcase_add_test(tc, test_empty_fmt_no_trailing_space);
    tcase_add_test(tc, test_several_pairs);
    tcase_add_test(tc, test_worker_id);
    tcase_add_test(tc, test_proc_name);
    tcase_set_timeout(tc, TCASE_TIMEOUT);
    suite_add_tcase(s, tc);

    tc = tcase_create("levels");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_test(tc, test_filter_skips_arguments);
    tcase_add_test(tc, test_set_level);
    tcase_add_loop_test(tc, test_enabled_table, LOG_LEVEL_DEBUG, LOG_LEVEL_ERROR + 1);
    tcase_add_loop_test(tc, test_level_parse, 0, sizeof(parse_cases) / sizeof(parse_cases[0]));
    tcase_set_timeout(tc, TCASE_TIMEOUT);
    suite_add_tcase(s, tc);

    tc = tcase_create("rate");
    tcase_add_test(tc, test_rate_counts_between_lines);
    suite_add_tcase(s, tc);

    tc = tcase_create("long");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_test(tc, test_longest_uncut_line);
    tcase_add_test(tc, test_cut_line);
    tcase_add_test(tc, test_cut_long_event);
    tcase_set_timeout(tc, TCASE_TIMEOUT);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return check_run_suite(log_suite());
}

#include <check.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/conf.h"
#include "common/log.h"
#include "tests/support/check_main.h"

/*
 * conf.c: defaults, the file syntax, units, bounds, validators, command-line
 * overrides and the exact error messages operators see. A test table with
 * one field of every type stands in for the broker and edge tables.
 */

struct test_conf {
    int64_t port;
    size_t buf;
    int64_t timeout;
    bool flag;
    char *name;
    enum log_level level;
    int64_t even;
    char *secret;
    size_t small;
    int64_t wait;
    char *rule; /* CONF_LIST */
};

static int validate_even(const void *field, const char **err)
{
    if (*(const int64_t *)field % 2 != 0) {
        *err = "must be even";
        return -1;
    }
    return 0;
}

/* A rule must not start with "bad". */
static int validate_rule(const void *field, const char **err)
{
    if (strncmp(*(char *const *)field, "bad", 3) == 0) {
        *err = "starts with bad";
        return -1;
    }
    return 0;
}

#define F(field) offsetof(struct test_conf, field)

static const struct conf_directive table[] = {
    {"port", CONF_INT, F(port), "7400", 0, 65535, NULL, "TCP port"},
    {"buf", CONF_SIZE, F(buf), "64kb", 0, 0, NULL, "buffer size"},
    {"timeout", CONF_TIME_MS, F(timeout), "5s", 0, 0, NULL, "idle timeout"},
    {"flag", CONF_BOOL, F(flag), "no", 0, 0, NULL, "a switch"},
    {"name", CONF_STRING, F(name), "herald", 0, 0, NULL, "a name"},
    {"level", CONF_LOGLEVEL, F(level), "info", 0, 0, NULL, "log level"},
    {"even", CONF_INT, F(even), "2", 0, 100, validate_even, "an even number"},
    {"secret", CONF_STRING, F(secret), NULL, 0, 0, NULL, "a secret"},
    {"small", CONF_SIZE, F(small), "1kb", 512, 4096, NULL, "bounded size"},
    {"wait", CONF_TIME_MS, F(wait), "100ms", 10, 1000, NULL, "bounded time"},
    {"rule", CONF_LIST, F(rule), NULL, 0, 0, validate_rule, "repeatable"},
    {NULL, 0, 0, NULL, 0, 0, NULL, NULL},
};

static struct test_conf cfg;
static char err[512];
static char path[64];

static void setup(void)
{
    memset(&cfg, 0, sizeof(cfg));
    err[0] = '\0';
    path[0] = '\0';
}

static void teardown(void)
{
    conf_free(table, &cfg);
    if (path[0] != '\0')
        unlink(path);
}

/* Writes text to a new temporary file whose name goes into path. */
static void write_file(const char *text)
{
    int fd;
    size_t len = strlen(text);

    snprintf(path, sizeof(path), "/tmp/check_conf_XXXXXX");
    fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, text, len), (ssize_t)len);
    ck_assert_int_eq(close(fd), 0);
}

/* conf_load with a NULL-terminated argument list. */
static int load_args(char **argv)
{
    int argc = 0;

    while (argv[argc] != NULL)
        argc++;
    return conf_load(table, &cfg, argc, argv, err, sizeof(err));
}

static int load_file(const char *text)
{
    char *argv[] = {path, NULL};

    write_file(text);
    return load_args(argv);
}

/* ------------------------------------------------------------ defaults */

START_TEST(test_defaults)
{
    memset(&cfg, 0xa5, sizeof(cfg)); /* conf_load must not read old fields */
    ck_assert_int_eq(conf_load(table, &cfg, 0, NULL, err, sizeof(err)), 0);
    ck_assert_str_eq(err, "");
    ck_assert_int_eq(cfg.port, 7400);
    ck_assert_uint_eq(cfg.buf, 65536);
    ck_assert_int_eq(cfg.timeout, 5000);
    ck_assert(!cfg.flag);
    ck_assert_str_eq(cfg.name, "herald");
    ck_assert_int_eq(cfg.level, LOG_LEVEL_INFO);
    ck_assert_int_eq(cfg.even, 2);
    ck_assert_ptr_null(cfg.secret);
    ck_assert_uint_eq(cfg.small, 1024);
    ck_assert_int_eq(cfg.wait, 100);
}

END_TEST

START_TEST(test_find)
{
    ck_assert_ptr_eq(conf_find(table, "buf"), &table[1]);
    ck_assert_ptr_null(conf_find(table, "bu"));
    ck_assert_ptr_null(conf_find(table, ""));
}

END_TEST

START_TEST(test_usage)
{
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);

    ck_assert_ptr_nonnull(out);
    conf_usage(table, out);
    ck_assert_int_eq(fclose(out), 0);
    ck_assert_ptr_nonnull(strstr(text, "  --port N         TCP port (default: 7400)\n"));
    ck_assert_ptr_nonnull(strstr(text, "  --flag yes|no    a switch (default: no)\n"));
    ck_assert_ptr_nonnull(strstr(text, "  --secret STRING  a secret\n"));
    free(text);
}

END_TEST

/* ---------------------------------------------------------- file syntax */

START_TEST(test_file_syntax)
{
    ck_assert_int_eq(load_file("# a comment\r\n"
                               "\r\n"
                               "   \t\r\n"
                               "  port 6390   # trailing comment\r\n"
                               "name \"two words # not a comment\"\r\n"
                               "secret \"say \\\"hi\\\" \\\\o/\"   \r\n"
                               "flag yes\r\n"
                               "level debug\r\n"
                               "timeout 2s\n"
                               "buf 1mb"),
                     0);
    ck_assert_str_eq(err, "");
    ck_assert_int_eq(cfg.port, 6390);
    ck_assert_str_eq(cfg.name, "two words # not a comment");
    ck_assert_str_eq(cfg.secret, "say \"hi\" \\o/");
    ck_assert(cfg.flag);
    ck_assert_int_eq(cfg.level, LOG_LEVEL_DEBUG);
    ck_assert_int_eq(cfg.timeout, 2000);
    ck_assert_uint_eq(cfg.buf, 1048576);
    ck_assert_int_eq(cfg.even, 2); /* untouched directives keep defaults */
}

END_TEST

START_TEST(test_file_empty_quoted)
{
    ck_assert_int_eq(load_file("name \"\"\n"), 0);
    ck_assert_str_eq(cfg.name, "");
}

END_TEST

START_TEST(test_file_duplicate_last_wins)
{
    ck_assert_int_eq(load_file("name first\nport 1\nname second\nport 2\n"), 0);
    ck_assert_str_eq(cfg.name, "second");
    ck_assert_int_eq(cfg.port, 2);
}

END_TEST

START_TEST(test_file_unknown_directive)
{
    char want[256];

    ck_assert_int_eq(load_file("port 1\n\nbogus 1\n"), -1);
    snprintf(want, sizeof(want), "%s:3: unknown directive 'bogus'", path);
    ck_assert_str_eq(err, want);
}

END_TEST

START_TEST(test_file_bad_value)
{
    char want[256];

    ck_assert_int_eq(load_file("# ports\nport x\n"), -1);
    snprintf(want, sizeof(want), "%s:2: port: expected an integer in [0, 65535], got 'x'", path);
    ck_assert_str_eq(err, want);
}

END_TEST

START_TEST(test_file_missing_value)
{
    char want[256];

    ck_assert_int_eq(load_file("port   # nothing\n"), -1);
    snprintf(want, sizeof(want), "%s:1: port: missing value", path);
    ck_assert_str_eq(err, want);
}

END_TEST

START_TEST(test_file_extra_tokens)
{
    char want[256];

    ck_assert_int_eq(load_file("name\ttwo words\n"), -1);
    snprintf(want, sizeof(want),
             "%s:1: name: unexpected text after the value (quote a value that holds spaces)", path);
    ck_assert_str_eq(err, want);
}

END_TEST

START_TEST(test_file_bad_quotes)
{
    char want[256];

    ck_assert_int_eq(load_file("name \"open\n"), -1);
    snprintf(want, sizeof(want), "%s:1: name: unterminated quoted value", path);
    ck_assert_str_eq(err, want);
    unlink(path);
    conf_free(table, &cfg);
    ck_assert_int_eq(load_file("name \"a\"b\n"), -1);
    snprintf(want, sizeof(want), "%s:1: name: unexpected text after the closing quote", path);
    ck_assert_str_eq(err, want);
}

END_TEST

START_TEST(test_file_cannot_open)
{
    char *argv[] = {"/nonexistent/herald.conf", NULL};

    ck_assert_int_eq(load_args(argv), -1);
    ck_assert_str_eq(err, "cannot open /nonexistent/herald.conf: No such file or directory");
    ck_assert_str_eq(cfg.name, "herald"); /* defaults applied: conf_free is safe */
}

END_TEST

/* --------------------------------------------------------------- units */

struct size_case {
    const char *text;
    int rc;
    size_t value;
};

static const struct size_case size_cases[] = {
    {"1kb", 0, 1024},
    {"2MB", 0, 2 * 1024 * 1024},
    {"1g", 0, 1024UL * 1024 * 1024},
    {"3Gb", 0, 3UL * 1024 * 1024 * 1024},
    {"4k", 0, 4096},
    {"7m", 0, 7 * 1024 * 1024},
    {"0", 0, 0},
    {"512", 0, 512},
    {"9b", 0, 9},
    {"18446744073709551615", 0, SIZE_MAX},
    {"12xb", -1, 0},
    {"-1", -1, 0},
    {"+1", -1, 0},
    {"", -1, 0},
    {"kb", -1, 0},
    {"1 kb", -1, 0},
    {"1.5kb", -1, 0},
    {"18446744073709551616", -1, 0},
    {"17179869184gb", -1, 0},
    {"18014398509481984kb", -1, 0},
};

START_TEST(test_size)
{
    const struct size_case *c = &size_cases[_i];
    size_t v = 12345;

    ck_assert_msg(conf_parse_size(c->text, &v) == c->rc, "'%s'", c->text);
    ck_assert_uint_eq(v, c->rc == 0 ? c->value : 12345);
}

END_TEST

struct time_case {
    const char *text;
    int rc;
    int64_t value;
};

static const struct time_case time_cases[] = {
    {"250ms", 0, 250},
    {"2s", 0, 2000},
    {"1m", 0, 60000},
    {"1h", 0, 3600000},
    {"30", 0, 30},
    {"0", 0, 0},
    {"5S", 0, 5000},
    {"9223372036854775807", 0, INT64_MAX},
    {"5x", -1, 0},
    {"1.5s", -1, 0},
    {"-1s", -1, 0},
    {"", -1, 0},
    {"ms", -1, 0},
    {"2 s", -1, 0},
    {"9223372036854775808", -1, 0},
    {"2562047788015216h", -1, 0},
};

START_TEST(test_time)
{
    const struct time_case *c = &time_cases[_i];
    int64_t v = 12345;

    ck_assert_msg(conf_parse_time_ms(c->text, &v) == c->rc, "'%s'", c->text);
    ck_assert_int_eq(v, c->rc == 0 ? c->value : 12345);
}

END_TEST

struct bool_case {
    const char *text;
    int rc;
    bool value;
};

static const struct bool_case bool_cases[] = {
    {"yes", 0, true}, {"no", 0, false},    {"true", 0, true},    {"false", 0, false},
    {"on", 0, true},  {"off", 0, false},   {"1", 0, true},       {"0", 0, false},
    {"YES", 0, true}, {"Off", 0, false},   {"maybe", -1, false}, {"2", -1, false},
    {"", -1, false},  {"yess", -1, false},
};

START_TEST(test_bool)
{
    const struct bool_case *c = &bool_cases[_i];
    char *argv[] = {"--flag", (char *)c->text, NULL};
    char want[256];

    ck_assert_int_eq(load_args(argv), c->rc);
    if (c->rc == 0) {
        ck_assert_int_eq(cfg.flag, c->value);
        return;
    }
    snprintf(want, sizeof(want),
             "command line: --flag: expected yes/no, true/false, on/off or 1/0, got '%s'", c->text);
    ck_assert_str_eq(err, want);
}

END_TEST

START_TEST(test_size_via_conf)
{
    char *argv[] = {"--buf", "2MB", "--small", "4kb", NULL};

    ck_assert_int_eq(load_args(argv), 0);
    ck_assert_uint_eq(cfg.buf, 2 * 1024 * 1024);
    ck_assert_uint_eq(cfg.small, 4096);
}

END_TEST

START_TEST(test_bad_size_message)
{
    char *argv[] = {"--buf", "12xb", NULL};

    ck_assert_int_eq(load_args(argv), -1);
    ck_assert_str_eq(err, "command line: --buf: expected a size in bytes (suffix b/kb/mb/gb), "
                          "got '12xb'");
}

END_TEST

START_TEST(test_loglevel)
{
    char *ok[] = {"--level", "error", NULL};
    char *bad[] = {"--level", "loud", NULL};

    ck_assert_int_eq(load_args(ok), 0);
    ck_assert_int_eq(cfg.level, LOG_LEVEL_ERROR);
    conf_free(table, &cfg);
    ck_assert_int_eq(load_args(bad), -1);
    ck_assert_str_eq(err, "command line: --level: expected debug, info, warn or error, got 'loud'");
}

END_TEST

/* -------------------------------------------------------------- bounds */

struct bound_case {
    const char *name;
    const char *text;
    const char *error; /* NULL: accepted */
};

static const struct bound_case bound_cases[] = {
    {"--port", "0", NULL},
    {"--port", "65535", NULL},
    {"--port", "65536", "command line: --port: expected an integer in [0, 65535], got '65536'"},
    {"--port", "-1", "command line: --port: expected an integer in [0, 65535], got '-1'"},
    {"--port", " 1", "command line: --port: expected an integer in [0, 65535], got ' 1'"},
    {"--small", "512", NULL},
    {"--small", "4kb", NULL},
    {"--small", "511",
     "command line: --small: expected a size in bytes in [512, 4096] "
     "(suffix b/kb/mb/gb), got '511'"},
    {"--small", "5kb",
     "command line: --small: expected a size in bytes in [512, 4096] "
     "(suffix b/kb/mb/gb), got '5kb'"},
    {"--wait", "10ms", NULL},
    {"--wait", "1s", NULL},
    {"--wait", "2s",
     "command line: --wait: expected a time in milliseconds in [10, 1000] "
     "(suffix ms/s/m/h), got '2s'"},
    {"--wait", "9",
     "command line: --wait: expected a time in milliseconds in [10, 1000] "
     "(suffix ms/s/m/h), got '9'"},
    {"--timeout", "1h", NULL},
    {"--timeout", "x",
     "command line: --timeout: expected a time in milliseconds "
     "(suffix ms/s/m/h), got 'x'"},
};

START_TEST(test_bounds)
{
    const struct bound_case *c = &bound_cases[_i];
    char *argv[] = {(char *)c->name, (char *)c->text, NULL};

    ck_assert_int_eq(load_args(argv), c->error == NULL ? 0 : -1);
    ck_assert_str_eq(err, c->error == NULL ? "" : c->error);
}

END_TEST

START_TEST(test_validator)
{
    char *ok[] = {"--even", "4", NULL};
    char *bad[] = {"--even", "3", NULL};

    ck_assert_int_eq(load_args(ok), 0);
    ck_assert_int_eq(cfg.even, 4);
    conf_free(table, &cfg);
    ck_assert_int_eq(load_args(bad), -1);
    ck_assert_str_eq(err, "command line: --even: must be even, got '3'");
    ck_assert_int_eq(cfg.even, 2); /* the rejected value never reached the field */
}

END_TEST

/* -------------------------------------------------------- command line */

START_TEST(test_override_beats_file)
{
    char *argv[] = {path, "--port", "6390", "--name", "cli", "--secret", "--dashes", NULL};

    write_file("port 1000\nname file\n");
    ck_assert_int_eq(load_args(argv), 0);
    ck_assert_int_eq(cfg.port, 6390);
    ck_assert_str_eq(cfg.name, "cli");
    ck_assert_str_eq(cfg.secret, "--dashes");
}

END_TEST

START_TEST(test_args_duplicate_last_wins)
{
    char *argv[] = {"--name", "a", "--name", "b", NULL};

    ck_assert_int_eq(load_args(argv), 0);
    ck_assert_str_eq(cfg.name, "b");
}

END_TEST

/* A CONF_LIST directive repeats: file lines (unquoted: the rest of the line) then arguments. */
START_TEST(test_list_repeats)
{
    char *argv[] = {path, "--rule", "c.> 3 1s", NULL};

    write_file("rule a.> 32 10m   # a comment\nname x\nrule \"b.* 1 #5s\"\n");
    ck_assert_int_eq(load_args(argv), 0);
    ck_assert_str_eq(cfg.rule, "a.> 32 10m\nb.* 1 #5s\nc.> 3 1s");
}

END_TEST

START_TEST(test_list_default_and_validator)
{
    char *argv[] = {"--rule", "ok", "--rule", "bad one", NULL};

    ck_assert_int_eq(load_args(argv + 4), 0);
    ck_assert_ptr_null(cfg.rule);
    conf_free(table, &cfg);
    ck_assert_int_eq(load_args(argv), -1);
    ck_assert_ptr_nonnull(strstr(err, "rule: starts with bad, got 'bad one'"));
}

END_TEST

START_TEST(test_args_missing_value)
{
    char *argv[] = {"--port", "1", "--port", NULL};

    ck_assert_int_eq(load_args(argv), -1);
    ck_assert_str_eq(err, "command line: --port: missing value");
}

END_TEST

START_TEST(test_args_unexpected)
{
    char *argv[] = {path, "port", "1", NULL};

    write_file("port 1\n");
    ck_assert_int_eq(load_args(argv), -1);
    ck_assert_str_eq(err, "command line: unexpected argument 'port'");
}

END_TEST

START_TEST(test_args_unknown)
{
    char *argv[] = {"--bogus", "1", NULL};

    ck_assert_int_eq(load_args(argv), -1);
    ck_assert_str_eq(err, "command line: unknown directive '--bogus'");
}

END_TEST

START_TEST(test_help)
{
    char *help[] = {"--port", "1", "--help", NULL};
    char *h[] = {"/nonexistent/herald.conf", "-h", NULL};

    ck_assert_int_eq(load_args(help), 1);
    ck_assert_int_eq(cfg.port, 7400); /* nothing but the defaults applied */
    conf_free(table, &cfg);
    ck_assert_int_eq(load_args(h), 1);
    ck_assert_str_eq(err, "");
}

END_TEST

static Suite *conf_suite(void)
{
    Suite *s = suite_create("conf");
    TCase *tc;

    tc = tcase_create("defaults");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_defaults);
    tcase_add_test(tc, test_find);
    tcase_add_test(tc, test_usage);
    suite_add_tcase(s, tc);

    tc = tcase_create("file");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_file_syntax);
    tcase_add_test(tc, test_file_empty_quoted);
    tcase_add_test(tc, test_file_duplicate_last_wins);
    tcase_add_test(tc, test_file_unknown_directive);
    tcase_add_test(tc, test_file_bad_value);
    tcase_add_test(tc, test_file_missing_value);
    tcase_add_test(tc, test_file_extra_tokens);
    tcase_add_test(tc, test_file_bad_quotes);
    tcase_add_test(tc, test_file_cannot_open);
    suite_add_tcase(s, tc);

    tc = tcase_create("units");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_loop_test(tc, test_size, 0, sizeof(size_cases) / sizeof(size_cases[0]));
    tcase_add_loop_test(tc, test_time, 0, sizeof(time_cases) / sizeof(time_cases[0]));
    tcase_add_loop_test(tc, test_bool, 0, sizeof(bool_cases) / sizeof(bool_cases[0]));
    tcase_add_test(tc, test_size_via_conf);
    tcase_add_test(tc, test_bad_size_message);
    tcase_add_test(tc, test_loglevel);
    suite_add_tcase(s, tc);

    tc = tcase_create("bounds");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_loop_test(tc, test_bounds, 0, sizeof(bound_cases) / sizeof(bound_cases[0]));
    tcase_add_test(tc, test_validator);
    suite_add_tcase(s, tc);

    tc = tcase_create("command_line");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_override_beats_file);
    tcase_add_test(tc, test_args_duplicate_last_wins);
    tcase_add_test(tc, test_list_repeats);
    tcase_add_test(tc, test_list_default_and_validator);
    tcase_add_test(tc, test_args_missing_value);
    tcase_add_test(tc, test_args_unexpected);
    tcase_add_test(tc, test_args_unknown);
    tcase_add_test(tc, test_help);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return check_run_suite(conf_suite());
}

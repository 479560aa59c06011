/*
 * Topic syntax: the pattern/topic match table (also driven through the trie
 * by check_trie.c, which includes this file with CHECK_TOPIC_TABLE_ONLY so
 * both suites share one table), validation of topics and patterns,
 * topic_is_pattern.
 */
#include <stdbool.h>
#include <stddef.h>

struct match_case {
    const char *pattern;
    const char *topic;
    bool match;
};

static const struct match_case match_cases[] = {
    {"a", "a", true},
    {"a", "b", false},
    {"a", "a.b", false},
    {"a.b", "a", false},
    {"a.b", "a.b", true},
    {"a.b", "a.c", false},
    {"a.b.c", "a.b.c", true},
    {"a.b.c", "a.b.cd", false},
    {"a.b.c", "a.bb.c", false},
    {"ab", "a", false},
    {"a", "ab", false},
    {">", "a", true},
    {">", "a.b", true},
    {">", "a.b.c.d.e", true},
    {"*", "a", true},
    {"*", "a.b", false},
    {"*", "abc", true},
    {"a.>", "a", false},
    {"a.>", "a.b", true},
    {"a.>", "a.b.c", true},
    {"a.>", "b.c", false},
    {"a.>", "ab.c", false},
    {"a.*", "a.b", true},
    {"a.*", "a.b.c", false},
    {"a.*", "a", false},
    {"*.*", "a.b", true},
    {"*.*", "a", false},
    {"*.*", "a.b.c", false},
    {"*.b", "a.b", true},
    {"*.b", "a.c", false},
    {"a.*.c", "a.b.c", true},
    {"a.*.c", "a.b.d", false},
    {"a.*.c", "a.c", false},
    {"*.>", "a", false},
    {"*.>", "a.b", true},
    {"*.*.>", "a.b.c", true},
    {"*.*.>", "a.b", false},
    {"a.*.>", "a.b.c.d", true},
    {"mail.user.*.inbox", "mail.user.42.inbox", true},
    {"mail.user.*.inbox", "mail.user.42.outbox", false},
    {"mail.user.42.>", "mail.user.42.inbox", true},
    {"mail.user.42.>", "mail.user.43.inbox", false},
    {"user.42", "user.42", true},
    {"user.42", "user.420", false},
    {"A", "a", false},
    {"a-b_c:d", "a-b_c:d", true},
};

#define MATCH_CASES (sizeof(match_cases) / sizeof(match_cases[0]))

#ifndef CHECK_TOPIC_TABLE_ONLY

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "common/topic.h"
#include "tests/support/check_main.h"

static const struct topic_limits lim = {.max_len = 32, .max_tokens = 4};

START_TEST(test_match_table)
{
    const struct match_case *c = &match_cases[_i];
    ck_assert_msg(topic_matches(c->pattern, strlen(c->pattern), c->topic, strlen(c->topic)) ==
                      c->match,
                  "pattern %s topic %s expected %d", c->pattern, c->topic, c->match);
}

END_TEST

START_TEST(test_match_table_is_valid)
{
    /* Every table entry must itself be a valid pattern and topic. */
    const struct match_case *c = &match_cases[_i];
    const char *err = NULL;
    ck_assert_msg(topic_pattern_valid(c->pattern, strlen(c->pattern), NULL, &err), "%s: %s",
                  c->pattern, err);
    ck_assert_msg(topic_valid(c->topic, strlen(c->topic), NULL, &err), "%s: %s", c->topic, err);
}

END_TEST

struct valid_case {
    const char *s;
    bool topic_ok;
    bool pattern_ok;
    const char *err; /* expected reason for the pattern check, or NULL */
};

/* Limits for this table: lim above (32 bytes, 4 tokens). */
static const struct valid_case valid_cases[] = {
    {"a", true, true, NULL},
    {"a.b.c.d", true, true, NULL},
    {"user.42.mail", true, true, NULL},
    {"a.*", false, true, NULL},
    {"*", false, true, NULL},
    {">", false, true, NULL},
    {"a.>", false, true, NULL},
    {"*.*.*.>", false, true, NULL},
    {"", false, false, "empty topic"},
    {".", false, false, "empty token in topic"},
    {".a", false, false, "empty token in topic"},
    {"a.", false, false, "empty token in topic"},
    {"a..b", false, false, "empty token in topic"},
    {"a.>.b", false, false, "'>' must be the last token"},
    {">.a", false, false, "'>' must be the last token"},
    {"a*", false, false, "wildcard inside a token"},
    {"*a", false, false, "wildcard inside a token"},
    {"b>", false, false, "wildcard inside a token"},
    {"a.**", false, false, "wildcard inside a token"},
    {"a b", false, false, "topic has a space or non-printable byte"},
    {"a.\tb", false, false, "topic has a space or non-printable byte"},
    {"a\x7f", false, false, "topic has a space or non-printable byte"},
    {"a\x80", false, false, "topic has a space or non-printable byte"},
    {"a.b.c.d.e", false, false, "too many tokens in topic"},
    {"*.*.*.*.>", false, false, "too many tokens in topic"},
    {"0123456789012345678901234567890", true, true, NULL},
    {"01234567890123456789012345678901", true, true, NULL},
    {"012345678901234567890123456789012", false, false, "topic too long"},
};

START_TEST(test_valid_table)
{
    const struct valid_case *c = &valid_cases[_i];
    size_t len = strlen(c->s);
    const char *err = NULL;
    ck_assert_msg(topic_valid(c->s, len, &lim, &err) == c->topic_ok, "topic %s", c->s);
    if (!c->topic_ok)
        ck_assert_ptr_nonnull(err);
    err = NULL;
    ck_assert_msg(topic_pattern_valid(c->s, len, &lim, &err) == c->pattern_ok, "pattern %s", c->s);
    if (c->err)
        ck_assert_str_eq(err, c->err);
}

END_TEST

START_TEST(test_wildcard_in_topic_reason)
{
    const char *err = NULL;
    ck_assert(!topic_valid("a.*", 3, &lim, &err));
    ck_assert_str_eq(err, "wildcard in a publish topic");
    err = NULL;
    ck_assert(!topic_valid(">", 1, &lim, &err));
    ck_assert_str_eq(err, "wildcard in a publish topic");
}

END_TEST

START_TEST(test_nul_byte_rejected)
{
    const char *err = NULL;
    ck_assert(!topic_valid("a\0b", 3, &lim, &err));
    ck_assert_str_eq(err, "topic has a space or non-printable byte");
}

END_TEST

START_TEST(test_unterminated_view)
{
    /* Validation reads only len bytes: the dot after them is not seen. */
    const char *err = NULL;
    ck_assert(topic_valid("a.b.", 3, &lim, &err));
    ck_assert(topic_matches("a.*.", 3, "a.b.", 3));
}

END_TEST

START_TEST(test_default_limits)
{
    char buf[TOPIC_DEFAULT_MAX_LEN + 2];
    struct topic_limits def = {TOPIC_DEFAULT_MAX_LEN, TOPIC_DEFAULT_MAX_TOKENS};
    const char *err = NULL;
    memset(buf, 'x', sizeof(buf));
    ck_assert(topic_valid(buf, TOPIC_DEFAULT_MAX_LEN, &def, &err));
    ck_assert(!topic_valid(buf, TOPIC_DEFAULT_MAX_LEN + 1, &def, &err));
    ck_assert_str_eq(err, "topic too long");
    ck_assert(topic_valid(buf, TOPIC_DEFAULT_MAX_LEN, NULL, &err));
    ck_assert(!topic_valid(buf, TOPIC_DEFAULT_MAX_LEN + 1, NULL, &err));
}

END_TEST

START_TEST(test_very_long_topic)
{
    size_t len = 1 << 20;
    char *buf = malloc(len);
    const char *err = NULL;
    memset(buf, 'x', len);
    ck_assert(!topic_valid(buf, len, NULL, &err));
    ck_assert_str_eq(err, "topic too long");
    free(buf);
}

END_TEST

START_TEST(test_token_count_limit)
{
    /* 16 one-byte tokens pass the default limit, 17 do not. */
    const char *sixteen = "a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p";
    const char *seventeen = "a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p.q";
    const char *err = NULL;
    ck_assert(topic_valid(sixteen, strlen(sixteen), NULL, &err));
    ck_assert(!topic_valid(seventeen, strlen(seventeen), NULL, &err));
    ck_assert_str_eq(err, "too many tokens in topic");
    ck_assert(!topic_pattern_valid(seventeen, strlen(seventeen), NULL, &err));
}

END_TEST

START_TEST(test_err_may_be_null)
{
    ck_assert(!topic_valid("a..b", 4, &lim, NULL));
    ck_assert(topic_pattern_valid("a.*", 3, &lim, NULL));
}

END_TEST

struct pattern_case {
    const char *s;
    bool is_pattern;
};

static const struct pattern_case pattern_cases[] = {
    {"a", false},  {"a.b.c", false}, {"*", true},   {">", true},
    {"a.*", true}, {"a.>", true},    {"*.b", true}, {"user.42", false},
};

START_TEST(test_is_pattern)
{
    const struct pattern_case *c = &pattern_cases[_i];
    ck_assert_int_eq(topic_is_pattern(c->s, strlen(c->s)), c->is_pattern);
}

END_TEST

static Suite *topic_suite(void)
{
    Suite *s = suite_create("topic");
    TCase *tc = tcase_create("match");
    tcase_add_loop_test(tc, test_match_table, 0, MATCH_CASES);
    tcase_add_loop_test(tc, test_match_table_is_valid, 0, MATCH_CASES);
    tcase_add_test(tc, test_unterminated_view);
    suite_add_tcase(s, tc);

    tc = tcase_create("validate");
    tcase_add_loop_test(tc, test_valid_table, 0, sizeof(valid_cases) / sizeof(valid_cases[0]));
    tcase_add_test(tc, test_wildcard_in_topic_reason);
    tcase_add_test(tc, test_nul_byte_rejected);
    tcase_add_test(tc, test_default_limits);
    tcase_add_test(tc, test_very_long_topic);
    tcase_add_test(tc, test_token_count_limit);
    tcase_add_test(tc, test_err_may_be_null);
    suite_add_tcase(s, tc);

    tc = tcase_create("is_pattern");
    tcase_add_loop_test(tc, test_is_pattern, 0, sizeof(pattern_cases) / sizeof(pattern_cases[0]));
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return check_run_suite(topic_suite());
}

#endif

/*
 * Coverage of a pattern by allowed patterns (common/topic_cover.h): a table
 * of named cases (the example, exact matches, '*' and '>', unions,
 * lengths), the bounds (empty set, TOPIC_COVER_MAX_ALLOWED, the budget),
 * and a randomized cross-check against a brute force: every topic over a
 * small alphabet (the patterns' literals plus one they never name) up to
 * one token longer than the longest pattern, matched with topic_matches.
 * Past that length every pattern behaves the same, so the brute force is
 * exact and the two must agree both ways.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/topic.h"
#include "common/topic_cover.h"
#include "tests/support/check_main.h"

#define MAX_A 8

static bool covered(const char *p, const char *const *a, size_t n)
{
    size_t lens[TOPIC_COVER_MAX_ALLOWED + 1];

    for (size_t i = 0; i < n; i++)
        lens[i] = strlen(a[i]);
    return topic_covered(p, strlen(p), a, lens, n);
}

/* ---- the table ------------------------------------------------------------ */

struct cover_case {
    const char *pattern;
    const char *allowed[MAX_A]; /* NULL-terminated */
    bool want;
};

static const struct cover_case cover_cases[] = {
    /* the example and its neighbours */
    {"mail.user.*.inbox", {"mail.user.42.>"}, false},
    {"mail.>", {"mail.user.42.>"}, false},
    {">", {"mail.user.42.>"}, false},
    {"mail.user.42.inbox", {"mail.user.42.>"}, true},
    {"mail.user.42.*", {"mail.user.42.>"}, true},
    {"mail.user.42.>", {"mail.user.42.>"}, true},
    {"mail.user.42.*.>", {"mail.user.42.>"}, true},
    {"mail.user.42", {"mail.user.42.>"}, false},
    {"mail.user.43.inbox", {"mail.user.42.>"}, false},
    {"mail.user.420.inbox", {"mail.user.42.>"}, false},
    {"mail.user.4.inbox", {"mail.user.42.>"}, false},
    /* exact */
    {"a", {"a"}, true},
    {"a.b.c", {"a.b.c"}, true},
    {"a", {"b"}, false},
    {"a.b", {"a.c"}, false},
    {"A", {"a"}, false},
    /* '*' against literals */
    {"a.b", {"a.*"}, true},
    {"a.*", {"a.b"}, false},
    {"a.*", {"a.*"}, true},
    {"*", {"*"}, true},
    {"*", {"a"}, false},
    {"*.b", {"a.b"}, false},
    {"*.b", {"*.*"}, true},
    {"*.*", {"*.b"}, false},
    /* '>' against '*' and literals */
    {"a.>", {"a.*"}, false},
    {"a.*", {"a.>"}, true},
    {"a.*.*", {"a.>"}, true},
    {"a.>", {"a.>"}, true},
    {"a.>", {"a.*.>"}, false},
    {"a.*.>", {"a.>"}, true},
    {"a.>", {"*.>"}, true},
    {"*.>", {"a.>"}, false},
    {">", {">"}, true},
    {">", {"*"}, false},
    {">", {"*.>"}, false},
    {"*", {">"}, true},
    {"a.b.c.d.e.f", {">"}, true},
    {"a", {"a.>"}, false},
    /* unions */
    {"a.>", {"a.*", "a.*.>"}, true},
    {"a.>", {"a.*.>", "a.*"}, true},
    {">", {"*", "*.>"}, true},
    {">", {"*", "*.*", "*.*.>"}, true},
    {">", {"*", "*.*", "*.*.*"}, false},
    {"a.*", {"a.b", "a.*"}, true},
    {"a.*", {"a.b", "a.c"}, false},
    {"a.*", {"a.b", "a.c", "a.d"}, false},
    {"a.*.c", {"a.b.*", "a.*.c"}, true},
    {"a.*.c", {"a.b.c", "a.x.c"}, false},
    {"*.*", {"a.*", "*.b"}, false},
    {"*.*", {"a.*", "*.*"}, true},
    {"a.>", {"a.b.>", "a.*"}, false},
    {"a.>", {"a.b.>", "a.*", "a.*.*", "a.*.*.>"}, true},
    {"a.*.>", {"a.*.b", "a.*.*.>", "a.*.c"}, false},
    {"a.*.>", {"a.*.*", "a.*.*.>"}, true},
    {"x.*.y", {"x.a.y", "x.*.z", "x.>"}, true},
    {"x.*.y", {"x.a.y", "x.*.z"}, false},
    /* lengths */
    {"a.b", {"a.b.c"}, false},
    {"a.b.c", {"a.b"}, false},
    {"a.b.c.d", {"a.b.>"}, true},
    {"a.b", {"a.b.>"}, false},
    {"a.*.*.*.*.*.*.*", {"a.>"}, true},
    {"a.*.*.*.*.*.*.*", {"a.*.*.*.*.*.*"}, false},
    /* a literal of P no allowed pattern names is still a token '*' matches */
    {"zz.q", {"*.q", "a.b"}, true},
    {"zz.q", {"a.q", "b.q"}, false},
    /* tokens that differ only in length or a prefix */
    {"ab", {"a"}, false},
    {"a", {"ab"}, false},
    {"ab.c", {"a.*", "ab.*"}, true},
    /* the empty set */
    {"a", {NULL}, false},
    {">", {NULL}, false},
};

START_TEST(test_cover_table)
{
    const struct cover_case *cc = &cover_cases[_i];
    size_t n = 0;

    while (n < MAX_A && cc->allowed[n] != NULL)
        n++;
    ck_assert_msg(covered(cc->pattern, cc->allowed, n) == cc->want, "%s by %s%s: want %d",
                  cc->pattern, n ? cc->allowed[0] : "{}", n > 1 ? ",..." : "", cc->want);
}

END_TEST

/* Only len bytes are read: the views need not end in NUL. */
START_TEST(test_views)
{
    const char *allowed[] = {"a.b.>.zzz", "c.d"};
    size_t lens[] = {5, 1};

    ck_assert(topic_covered("a.b.c.d", 5, allowed, lens, 1));
    ck_assert(!topic_covered("a.b.c.d", 3, allowed, lens, 1));
    ck_assert(topic_covered("c.d", 1, allowed, lens, 2));
    ck_assert(!topic_covered("", 0, allowed, lens, 2));
}

END_TEST

/* ---- bounds --------------------------------------------------------------- */

START_TEST(test_max_allowed)
{
    static char text[TOPIC_COVER_MAX_ALLOWED + 1][16];
    const char *allowed[TOPIC_COVER_MAX_ALLOWED + 1];

    /* a.t0 .. a.t63, then a.*: the last one is what covers a.* */
    for (size_t i = 0; i < TOPIC_COVER_MAX_ALLOWED; i++) {
        snprintf(text[i], sizeof(text[i]), "a.t%zu", i);
        allowed[i] = text[i];
    }
    allowed[TOPIC_COVER_MAX_ALLOWED - 1] = "a.*";
    ck_assert(covered("a.*", allowed, TOPIC_COVER_MAX_ALLOWED));
    ck_assert(covered("a.t5", allowed, TOPIC_COVER_MAX_ALLOWED));
    ck_assert(!covered("b.*", allowed, TOPIC_COVER_MAX_ALLOWED));
    ck_assert(!covered("a.*", allowed, TOPIC_COVER_MAX_ALLOWED - 1));
    ck_assert(covered("a.t62", allowed, TOPIC_COVER_MAX_ALLOWED - 1));
    /* One more than the bound: refused, whatever they allow. */
    allowed[TOPIC_COVER_MAX_ALLOWED] = ">";
    ck_assert(!covered("a.t5", allowed, TOPIC_COVER_MAX_ALLOWED + 1));
}

END_TEST

/*
 * The family {>} plus k patterns of k tokens, pattern j "u" at token j and
 * '*' elsewhere, asked about k stars: covered (">" covers everything), but
 * each star either names "u" (all alive) or not (pattern j drops out), so
 * the search meets 2^k distinct states. k = 10 fits the budget, k = 20
 * does not, and then the answer is "not covered".
 */
static bool budget_family(size_t k)
{
    static char text[32][64];
    const char *allowed[32];
    char p[64] = "";

    allowed[0] = ">";
    for (size_t j = 0; j < k; j++) {
        text[j][0] = '\0';
        for (size_t t = 0; t < k; t++)
            strcat(text[j], t == j ? (t ? ".u" : "u") : (t ? ".*" : "*"));
        allowed[j + 1] = text[j];
        strcat(p, j ? ".*" : "*");
    }
    return covered(p, allowed, k + 1);
}

START_TEST(test_budget)
{
    ck_assert(budget_family(10));
    ck_assert(!budget_family(20));
}

END_TEST

/* Patterns at TOPIC_MAX_TOKENS tokens are fine; one more is refused. */
START_TEST(test_max_tokens)
{
    char p[2 * TOPIC_MAX_TOKENS + 4];
    const char *allowed[1] = {p};
    size_t n = 0;

    for (size_t i = 0; i < TOPIC_MAX_TOKENS; i++) {
        p[n++] = 'a';
        p[n++] = '.';
    }
    p[n - 1] = '\0';
    ck_assert(covered(p, allowed, 1));
    strcat(p, ".a");
    ck_assert(!covered(p, allowed, 1));
    ck_assert(!covered("a", allowed, 1));
}

END_TEST

/* ---- against a brute force ------------------------------------------------ */

static uint64_t rng_state;

static uint32_t rnd(uint32_t n)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state % n);
}

/* A random pattern of 1..max_tokens tokens over the first nlit literals, '*' and '>'. */
static void random_pattern(char *out, size_t max_tokens, size_t nlit)
{
    static const char *const lit[] = {"x", "y", "zz", "w"};
    size_t tokens = 1 + rnd((uint32_t)max_tokens);

    out[0] = '\0';
    for (size_t t = 0; t < tokens; t++) {
        uint32_t r = rnd((uint32_t)nlit + 2);
        const char *tok = r < nlit ? lit[r] : "*";

        if (t == tokens - 1 && r == nlit + 1)
            tok = ">";
        if (t)
            strcat(out, ".");
        strcat(out, tok);
    }
}

struct brute {
    const char *p;
    const char *const *a;
    size_t n;
    const char *const *alpha;
    size_t nalpha;
};

/* True when every topic of depth more tokens after prefix that p matches is matched by some a. */
static bool brute_from(const struct brute *b, char *topic, size_t len, size_t depth)
{
    if (len > 0 && topic_matches(b->p, strlen(b->p), topic, len)) {
        bool hit = false;

        for (size_t i = 0; i < b->n && !hit; i++)
            hit = topic_matches(b->a[i], strlen(b->a[i]), topic, len);
        if (!hit)
            return false;
    }
    if (depth == 0)
        return true;
    for (size_t s = 0; s < b->nalpha; s++) {
        size_t n = len;

        if (len)
            topic[n++] = '.';
        memcpy(topic + n, b->alpha[s], strlen(b->alpha[s]));
        n += strlen(b->alpha[s]);
        if (!brute_from(b, topic, n, depth - 1))
            return false;
    }
    return true;
}

static size_t count_tokens(const char *s)
{
    size_t n = 1;

    for (; *s; s++)
        n += *s == '.';
    return n;
}

static void cross_check(unsigned seed, size_t cases, size_t max_tokens, size_t nlit, size_t max_a)
{
    static const char *const lit[] = {"x", "y", "zz", "w"};
    const char *alpha[5];
    char p[64], text[MAX_A][64], topic[128];
    const char *a[MAX_A];
    size_t lens[MAX_A];
    size_t yes = 0;

    /* The patterns' literals plus one token none of them names. */
    for (size_t i = 0; i < nlit; i++)
        alpha[i] = lit[i];
    alpha[nlit] = "other";
    rng_state = 0x9e3779b97f4a7c15ULL ^ seed;
    for (size_t c = 0; c < cases; c++) {
        size_t n = rnd((uint32_t)max_a + 1), depth;
        struct brute b = {p, a, n, alpha, nlit + 1};
        bool want, got;

        random_pattern(p, max_tokens, nlit);
        depth = count_tokens(p);
        for (size_t i = 0; i < n; i++) {
            random_pattern(text[i], max_tokens, nlit);
            a[i] = text[i];
            lens[i] = strlen(a[i]);
            if (count_tokens(a[i]) > depth)
                depth = count_tokens(a[i]);
        }
        want = brute_from(&b, topic, 0, depth + 1);
        got = topic_covered(p, strlen(p), a, lens, n);
        yes += want;
        ck_assert_msg(got == want, "seed %u case %zu: %s by %zu pattern(s) (%s%s): want %d", seed,
                      c, p, n, n ? a[0] : "", n > 1 ? ", ..." : "", want);
    }
    /* The generator must produce both answers, or the check proves little. */
    ck_assert_uint_gt(yes, cases / 50);
    ck_assert_uint_lt(yes, cases - cases / 50);
}

START_TEST(test_cross_small)
{
    cross_check(1, 20000, 3, 2, 4);
}

END_TEST

START_TEST(test_cross_wide)
{
    cross_check(2, 3000, 4, 3, 8);
}

END_TEST

static Suite *topic_cover_suite(void)
{
    Suite *s = suite_create("topic_cover");
    TCase *tc = tcase_create("cases");

    tcase_add_loop_test(tc, test_cover_table, 0, sizeof(cover_cases) / sizeof(cover_cases[0]));
    tcase_add_test(tc, test_views);
    suite_add_tcase(s, tc);

    tc = tcase_create("bounds");
    tcase_add_test(tc, test_max_allowed);
    tcase_add_test(tc, test_budget);
    tcase_add_test(tc, test_max_tokens);
    suite_add_tcase(s, tc);

    tc = tcase_create("brute_force");
    tcase_add_test(tc, test_cross_small);
    tcase_add_test(tc, test_cross_wide);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return check_run_suite(topic_cover_suite());
}

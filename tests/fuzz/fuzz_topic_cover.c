/*
 * fuzz_topic_cover.c - libFuzzer target for common/topic_cover.c, the check
 * that a subscription pattern is covered by the patterns a token allows.
 * make test runs it for a few seconds (CTest fuzz_topic_cover); longer, by
 * hand:
 *
 *   tests/fuzz/run.sh topic_cover 600
 *
 * or build it yourself from the repository root:
 *
 *   clang -std=gnu11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined \
 *       -fno-sanitize-recover=undefined -I. tests/fuzz/fuzz_topic_cover.c \
 *       common/topic_cover.c common/topic.c -o fuzz_topic_cover
 *   ./fuzz_topic_cover -max_total_time=60 tests/fuzz/corpus/topic_cover
 *
 * Input: lines. The first is the pattern P, the others the allowed
 * patterns A (at most TOPIC_COVER_MAX_ALLOWED of them); lines that are not
 * valid patterns (small limits) are skipped, and an invalid P ends the
 * run. Every string handed over is an exact-size heap copy.
 *
 * The reference is a brute force: every topic P matches over the alphabet
 * of the input (each literal token of P and A, plus one token none of them
 * is), up to one token longer than the longest pattern (past that, every
 * pattern behaves the same), each checked against every allowed pattern
 * with topic_matches. When it finds a topic of P no allowed pattern
 * matches, topic_covered must say no. When it finds none, and it visited
 * fewer topics than TOPIC_COVER_BUDGET (topic_covered's search visits at
 * most one state per topic prefix, so its budget cannot have run out),
 * topic_covered must say yes. A brute force that would visit more than
 * BRUTE_MAX topics gives up and only the first direction is checked, when
 * it found a counterexample before giving up.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/topic.h"
#include "common/topic_cover.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_TOKENS 8
#define MAX_ALPHA  (MAX_TOKENS * (TOPIC_COVER_MAX_ALLOWED + 1) + 1)
#define BRUTE_MAX  4000

static const struct topic_limits small = {.max_len = 64, .max_tokens = MAX_TOKENS};

/* Aborts naming the failed check, so libFuzzer reports the input. */
#define CHECK(cond) ((cond) ? (void)0 : check_failed(#cond, __LINE__))

static void __attribute__((noreturn)) check_failed(const char *what, int line)
{
    fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, line, what);
    abort();
}

struct text {
    const char *s;
    size_t n;
};

struct brute {
    struct text p;
    struct text ptok[MAX_TOKENS];
    size_t np;
    const char *const *a;
    const size_t *alen;
    size_t na;
    struct text alpha[MAX_ALPHA];
    size_t nalpha;
    size_t depth;   /* longest pattern's tokens + 1 */
    size_t visited; /* topics built */
    bool gave_up;
};

static size_t split(const char *s, size_t n, struct text *tok)
{
    size_t k = 0, start = 0;

    for (size_t i = 0; i <= n; i++) {
        if (i < n && s[i] != '.')
            continue;
        tok[k++] = (struct text){s + start, i - start};
        start = i + 1;
    }
    return k;
}

static bool is_wild(struct text t)
{
    return t.n == 1 && (t.s[0] == '*' || t.s[0] == '>');
}

static void add_literals(struct brute *b, const char *s, size_t n)
{
    struct text tok[MAX_TOKENS];
    size_t k = split(s, n, tok);

    for (size_t i = 0; i < k; i++) {
        bool seen = is_wild(tok[i]);

        for (size_t j = 0; j < b->nalpha && !seen; j++)
            seen = b->alpha[j].n == tok[i].n && memcmp(b->alpha[j].s, tok[i].s, tok[i].n) == 0;
        if (!seen)
            b->alpha[b->nalpha++] = tok[i];
    }
    if (k + 1 > b->depth)
        b->depth = k + 1;
}

/* A token no pattern names: '~' repeated one more time than the longest run of them. */
static void add_fresh(struct brute *b, char *buf)
{
    size_t longest = 0;

    for (size_t i = 0; i < b->nalpha; i++)
        longest = b->alpha[i].n > longest ? b->alpha[i].n : longest;
    memset(buf, '~', longest + 1);
    b->alpha[b->nalpha++] = (struct text){buf, longest + 1};
}

/* False when topic[0..len) (which P matches) is matched by no allowed pattern. */
static bool allowed(struct brute *b, const char *topic, size_t len)
{
    CHECK(topic_matches(b->p.s, b->p.n, topic, len));
    for (size_t i = 0; i < b->na; i++) {
        if (topic_matches(b->a[i], b->alen[i], topic, len))
            return true;
    }
    return false;
}

static size_t append(char *topic, size_t len, struct text t)
{
    if (len)
        topic[len++] = '.';
    memcpy(topic + len, t.s, t.n);
    return len + t.n;
}

/*
 * Builds every topic of P from its token k on, after topic[0..len) of
 * `tokens` tokens. Returns false at the first topic no allowed pattern
 * matches.
 */
static bool enumerate(struct brute *b, char *topic, size_t len, size_t k, size_t tokens)
{
    bool tail = k == b->np - 1 && b->ptok[k].n == 1 && b->ptok[k].s[0] == '>';

    if (++b->visited > BRUTE_MAX) {
        b->gave_up = true;
        return true;
    }
    if (k == b->np)
        return allowed(b, topic, len);
    /* '>' takes one token or more: a topic once the tail has one. */
    if (tail && tokens >= b->np && !allowed(b, topic, len))
        return false;
    if (tail && tokens >= b->depth)
        return true;
    if (!tail && !(b->ptok[k].n == 1 && b->ptok[k].s[0] == '*'))
        return enumerate(b, topic, append(topic, len, b->ptok[k]), k + 1, tokens + 1);
    for (size_t s = 0; s < b->nalpha && !b->gave_up; s++) {
        if (!enumerate(b, topic, append(topic, len, b->alpha[s]), tail ? k : k + 1, tokens + 1))
            return false;
    }
    return true;
}

static char *copy(const uint8_t *s, size_t n)
{
    char *c = malloc(n ? n : 1);

    memcpy(c, s, n);
    return c;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct brute b;
    static char topic[(MAX_TOKENS + 1) * 80];
    char *lines[TOPIC_COVER_MAX_ALLOWED + 1];
    size_t lens[TOPIC_COVER_MAX_ALLOWED + 1];
    char fresh[80];
    size_t n = 0;
    const uint8_t *end = data + size;
    bool want, got;

    while (data <= end && n <= TOPIC_COVER_MAX_ALLOWED) {
        const uint8_t *nl = memchr(data, '\n', (size_t)(end - data));
        size_t len = (size_t)((nl ? nl : end) - data);

        if (topic_pattern_valid((const char *)data, len, &small, NULL)) {
            lines[n] = copy(data, len);
            lens[n++] = len;
        } else if (n == 0) {
            return 0;
        }
        data += len + 1;
    }
    memset(&b, 0, sizeof(b));
    b.p = (struct text){lines[0], lens[0]};
    b.np = split(lines[0], lens[0], b.ptok);
    b.a = (const char *const *)lines + 1;
    b.alen = lens + 1;
    b.na = n - 1;
    for (size_t i = 0; i < n; i++)
        add_literals(&b, lines[i], lens[i]);
    add_fresh(&b, fresh);
    got = topic_covered(lines[0], lens[0], (const char *const *)lines + 1, lens + 1, n - 1);
    want = enumerate(&b, topic, 0, 0, 0);
    if (!want)
        CHECK(!got);
    else if (!b.gave_up)
        CHECK(got);
    for (size_t i = 0; i < n; i++)
        free(lines[i]);
    return 0;
}

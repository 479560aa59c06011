/*
 * fuzz_topic.c - libFuzzer target for common/topic.c and common/trie.c.
 * make test runs it for a few seconds (CTest fuzz_topic); longer, by hand:
 *
 *   tests/fuzz/run.sh topic 600
 *
 * or build it yourself from the repository root (run.sh prints the exact
 * command, with whatever trie.c includes today):
 *
 *   clang -std=gnu11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined \
 *       -fno-sanitize-recover=undefined -I. tests/fuzz/fuzz_topic.c common/topic.c \
 *       common/trie.c common/oaslots.c common/ptrset.c common/mem.c common/log.c \
 *       -o fuzz_topic
 *   ./fuzz_topic -max_total_time=60 tests/fuzz/corpus/topic
 *
 * Input: lines. "+<s><pattern>" subscribes subscriber <s> (the byte modulo
 * 16: '0'..'9' are 0..9) to the pattern, "-<s><pattern>" unsubscribes it,
 * any other line is a topic to publish. Every line's text, valid or not, is
 * checked against an independent restatement of the syntax (with small
 * limits and with the defaults), and every valid (pattern, topic) pair
 * against an independent matcher, so topic_matches() can serve as the
 * reference for the trie.
 *
 * The trie is checked against a model (the live (pattern, subscriber)
 * pairs): trie_subscribe's first/added flags and node (one node per pattern
 * text), trie_unsubscribe's result and last flag, and both counts after
 * every operation. Once the lines are applied, each valid topic is matched:
 * trie_match must call back each matching subscriber exactly once (with one
 * of its matching nodes), trie_match_each each matching (subscriber,
 * pattern) pair exactly once, and both must stop when asked. Then every
 * pair is unsubscribed, half first, with another round of matches between,
 * and the trie must end empty; unless a line "!" ended the input: then the
 * trie is freed full (LeakSanitizer checks it frees everything). Every
 * string handed to topic.c or the trie is an exact-size heap copy, so ASan
 * catches a read past its end.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/topic.h"
#include "common/trie.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_LINES  64
#define MAX_TOKENS 5 /* = small.max_tokens */
#define NSUBS      16

static const struct topic_limits small = {.max_len = 40, .max_tokens = MAX_TOKENS};

/* Subscribers: addresses the trie never dereferences; subs[NSUBS] never subscribes. */
static char subs[NSUBS + 1];

struct text {
    char *s; /* exact-size copy, not NUL-terminated */
    size_t len;
};

struct entry {
    struct text pat;
    int sub;
    struct trie_node *node;
    bool live;
};

struct model {
    struct entry e[MAX_LINES];
    size_t n;
    size_t pairs;    /* live entries */
    size_t patterns; /* distinct patterns among them */
};

/* Aborts naming the failed check, so libFuzzer reports the input. */
#define CHECK(cond) ((cond) ? (void)0 : check_failed(#cond, __LINE__))

static void __attribute__((noreturn)) check_failed(const char *what, int line)
{
    fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, line, what);
    abort();
}

static bool same(struct text a, struct text b)
{
    return a.len == b.len && memcmp(a.s, b.s, a.len) == 0;
}

/* ------------------------------------------------- reference syntax */

static bool ref_token_ok(const char *s, size_t n, bool wild, bool last)
{
    if (n == 1 && (s[0] == '*' || s[0] == '>'))
        return wild && (s[0] == '*' || last);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x21 || c > 0x7e || c == '*' || c == '>')
            return false;
    }
    return n > 0;
}

/* common/topic.h's syntax, restated: tokens split at every '.', each one valid. */
static bool ref_valid(struct text t, size_t max_len, size_t max_tokens, bool wild)
{
    size_t start = 0;
    size_t tokens = 0;

    if (t.len == 0 || t.len > max_len)
        return false;
    for (size_t i = 0; i <= t.len; i++) {
        if (i < t.len && t.s[i] != '.')
            continue;
        if (++tokens > max_tokens || !ref_token_ok(t.s + start, i - start, wild, i == t.len))
            return false;
        start = i + 1;
    }
    return true;
}

/* Tokens of a valid topic or pattern (small limits). */
struct tokens {
    struct text t[MAX_TOKENS];
    size_t n;
};

static void split(struct text s, struct tokens *tok)
{
    size_t start = 0;

    tok->n = 0;
    for (size_t i = 0; i <= s.len; i++) {
        if (i < s.len && s.s[i] != '.')
            continue;
        CHECK(tok->n < MAX_TOKENS);
        tok->t[tok->n++] = (struct text){s.s + start, i - start};
        start = i + 1;
    }
}

static bool ref_matches(const struct tokens *p, const struct tokens *t)
{
    for (size_t i = 0; i < p->n; i++) {
        struct text pi = p->t[i];
        if (pi.len == 1 && pi.s[0] == '>')
            return t->n > i;
        if (i >= t->n || (!(pi.len == 1 && pi.s[0] == '*') && !same(pi, t->t[i])))
            return false;
    }
    return p->n == t->n;
}

/* Checks topic.c's two validators on t; sets *topic / *pattern (small limits). */
static void check_syntax(struct text t, bool *topic, bool *pattern)
{
    const char *err = NULL;
    bool def_topic, def_pattern;

    *topic = topic_valid(t.s, t.len, &small, &err);
    CHECK(*topic || (err != NULL && err[0] != '\0'));
    err = NULL;
    *pattern = topic_pattern_valid(t.s, t.len, &small, &err);
    CHECK(*pattern || (err != NULL && err[0] != '\0'));
    CHECK(*topic == ref_valid(t, small.max_len, small.max_tokens, false));
    CHECK(*pattern == ref_valid(t, small.max_len, small.max_tokens, true));
    def_topic = topic_valid(t.s, t.len, NULL, NULL);
    def_pattern = topic_pattern_valid(t.s, t.len, NULL, NULL);
    CHECK(def_topic == ref_valid(t, TOPIC_DEFAULT_MAX_LEN, TOPIC_DEFAULT_MAX_TOKENS, false));
    CHECK(def_pattern == ref_valid(t, TOPIC_DEFAULT_MAX_LEN, TOPIC_DEFAULT_MAX_TOKENS, true));
    if (def_pattern)
        CHECK(def_topic == !topic_is_pattern(t.s, t.len));
}

/* --------------------------------------------------------- the model */

static int find(const struct model *m, struct text pat, int sub)
{
    for (size_t i = 0; i < m->n; i++) {
        if (m->e[i].live && m->e[i].sub == sub && same(m->e[i].pat, pat))
            return (int)i;
    }
    return -1;
}

/* A live entry of this pattern (any subscriber), or NULL. */
static const struct entry *find_pattern(const struct model *m, struct text pat)
{
    for (size_t i = 0; i < m->n; i++) {
        if (m->e[i].live && same(m->e[i].pat, pat))
            return &m->e[i];
    }
    return NULL;
}

static void check_counts(const struct trie *t, const struct model *m)
{
    CHECK(trie_subscription_count(t) == m->pairs);
    CHECK(trie_pattern_count(t) == m->patterns);
}

static void subscribe(struct trie *t, struct model *m, struct text pat, int sub)
{
    const struct entry *other = find_pattern(m, pat);
    bool present = find(m, pat, sub) >= 0;
    bool first = false, added = false;
    struct trie_node *node = trie_subscribe(t, pat.s, pat.len, &subs[sub], &first, &added);

    CHECK(node != NULL);
    CHECK(first == (other == NULL) && added == !present);
    CHECK(other == NULL || node == other->node);
    if (!present) {
        CHECK(m->n < MAX_LINES);
        m->e[m->n++] = (struct entry){pat, sub, node, true};
        m->pairs++;
        m->patterns += other == NULL;
    }
}

static void unsubscribe(struct trie *t, struct model *m, struct text pat, int sub)
{
    int i = find(m, pat, sub);
    bool last = false;
    int rc = trie_unsubscribe(t, pat.s, pat.len, &subs[sub], &last);

    if (i < 0) {
        CHECK(rc == -1);
        return;
    }
    CHECK(rc == 0);
    m->e[i].live = false;
    m->pairs--;
    CHECK(last == (find_pattern(m, pat) == NULL));
    m->patterns -= last;
}

/* ------------------------------------------------------------ matching */

struct calls {
    size_t n;
    size_t stop_at; /* return nonzero at this call; 0: never */
    int sub[MAX_LINES];
    const struct trie_node *node[MAX_LINES];
};

static int on_match(void *sub, const struct trie_node *node, void *arg)
{
    struct calls *c = arg;
    ptrdiff_t s = (char *)sub - subs;

    CHECK(s >= 0 && s < NSUBS && c->n < MAX_LINES);
    c->sub[c->n] = (int)s;
    c->node[c->n] = node;
    c->n++;
    return c->stop_at != 0 && c->n >= c->stop_at;
}

/* Index of the live entry matching topic for (sub, node), or -1. */
/* True when a live entry that matches (match[i]) is (sub, node). */
static bool expected(const struct model *m, const bool *match, int sub,
                     const struct trie_node *node)
{
    for (size_t i = 0; i < m->n; i++) {
        if (match[i] && m->e[i].sub == sub && m->e[i].node == node)
            return true;
    }
    return false;
}

static void check_match(struct trie *t, const struct model *m, struct text topic)
{
    struct calls c = {0};
    size_t pairs = 0, subs_hit = 0;
    bool hit[NSUBS] = {false};
    bool match[MAX_LINES];

    for (size_t i = 0; i < m->n; i++) {
        const struct entry *e = &m->e[i];
        match[i] = e->live && topic_matches(e->pat.s, e->pat.len, topic.s, topic.len);
        if (match[i]) {
            pairs++;
            subs_hit += !hit[e->sub];
            hit[e->sub] = true;
        }
    }
    /* Each matching pair once: distinct pairs, each a live matching entry. */
    CHECK(trie_match_each(t, topic.s, topic.len, on_match, &c) == pairs && c.n == pairs);
    for (size_t i = 0; i < c.n; i++) {
        CHECK(expected(m, match, c.sub[i], c.node[i]));
        for (size_t j = 0; j < i; j++)
            CHECK(c.sub[j] != c.sub[i] || c.node[j] != c.node[i]);
    }
    /* Each matching subscriber once, through one of its matching nodes. */
    c.n = 0;
    CHECK(trie_match(t, topic.s, topic.len, on_match, &c) == subs_hit && c.n == subs_hit);
    for (size_t i = 0; i < c.n; i++) {
        CHECK(hit[c.sub[i]] && expected(m, match, c.sub[i], c.node[i]));
        for (size_t j = 0; j < i; j++)
            CHECK(c.sub[j] != c.sub[i]);
    }
    /* Stopping at the first call. */
    c = (struct calls){.stop_at = 1};
    CHECK(trie_match(t, topic.s, topic.len, on_match, &c) == (size_t)(pairs > 0) &&
          c.n == (size_t)(pairs > 0));
    c = (struct calls){.stop_at = 1};
    CHECK(trie_match_each(t, topic.s, topic.len, on_match, &c) == (size_t)(pairs > 0));
}

/* ------------------------------------------------------------- driver */

struct input {
    struct text line[MAX_LINES]; /* the text after any "+s" / "-s" */
    char op[MAX_LINES];          /* '+', '-' or 0 for a topic */
    int sub[MAX_LINES];
    bool topic[MAX_LINES], pattern[MAX_LINES];
    struct tokens tok[MAX_LINES]; /* of valid patterns */
    size_t n;
    bool free_full; /* a "!" line ended the input */
};

static void read_lines(const uint8_t *data, size_t size, struct input *in)
{
    const uint8_t *end = data + size;

    while (data < end && in->n < MAX_LINES) {
        const uint8_t *nl = memchr(data, '\n', (size_t)(end - data));
        size_t len = (size_t)((nl != NULL ? nl : end) - data);
        size_t i = in->n;
        size_t skip = 0;

        if (len == 1 && data[0] == '!') {
            in->free_full = true;
            return;
        }
        in->n++;
        if (len >= 2 && (data[0] == '+' || data[0] == '-')) {
            in->op[i] = (char)data[0];
            in->sub[i] = data[1] % NSUBS;
            skip = 2;
        }
        in->line[i].len = len - skip;
        in->line[i].s = malloc(len > skip ? len - skip : 1);
        CHECK(in->line[i].s != NULL);
        memcpy(in->line[i].s, data + skip, len - skip);
        check_syntax(in->line[i], &in->topic[i], &in->pattern[i]);
        if (in->pattern[i])
            split(in->line[i], &in->tok[i]);
        data += len + 1;
    }
}

static void match_all(struct trie *t, const struct model *m, const struct input *in)
{
    for (size_t i = 0; i < in->n; i++) {
        if (in->op[i] == 0 && in->topic[i])
            check_match(t, m, in->line[i]);
    }
}

/* The reference matcher against the restated one, on every valid pair. */
static void check_matcher(const struct input *in)
{
    for (size_t i = 0; i < in->n; i++) {
        for (size_t j = 0; j < in->n && in->pattern[i]; j++) {
            struct text p = in->line[i], t = in->line[j];
            if (in->topic[j])
                CHECK(topic_matches(p.s, p.len, t.s, t.len) ==
                      ref_matches(&in->tok[i], &in->tok[j]));
        }
    }
}

/* Unsubscribes everything, half first, matching in between; the trie ends empty. */
static void unsubscribe_all(struct trie *t, struct model *m, const struct input *in)
{
    /* Nobody else holds these: every valid line unsubscribes as -1. */
    for (size_t i = 0; i < in->n; i++) {
        bool last = false;
        if (in->pattern[i])
            CHECK(trie_unsubscribe(t, in->line[i].s, in->line[i].len, &subs[NSUBS], &last) == -1);
    }
    check_counts(t, m);
    for (size_t half = 0; half < 2; half++) {
        for (size_t i = half; i < m->n; i += 2) {
            if (m->e[i].live)
                unsubscribe(t, m, m->e[i].pat, m->e[i].sub);
            check_counts(t, m);
        }
        match_all(t, m, in);
    }
    CHECK(trie_pattern_count(t) == 0 && trie_subscription_count(t) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct input in;
    static struct model m;
    struct trie *t = trie_new();

    memset(&in, 0, sizeof(in));
    memset(&m, 0, sizeof(m));
    read_lines(data, size, &in);
    check_matcher(&in);
    for (size_t i = 0; i < in.n; i++) {
        if (in.op[i] == 0 || !in.pattern[i])
            continue;
        if (in.op[i] == '+')
            subscribe(t, &m, in.line[i], in.sub[i]);
        else
            unsubscribe(t, &m, in.line[i], in.sub[i]);
        check_counts(t, &m);
    }
    match_all(t, &m, &in);
    if (!in.free_full)
        unsubscribe_all(t, &m, &in);
    trie_free(t);
    for (size_t i = 0; i < in.n; i++)
        free(in.line[i].s);
    return 0;
}

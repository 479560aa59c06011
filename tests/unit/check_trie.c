/*
 * Topic trie: the shared match table through the trie, subscribe and
 * unsubscribe flags, dedup (trie_match) against pmessage (trie_match_each),
 * pruning and memory release, a random model cross-check against
 * topic_matches, big nodes (a hash set of subscribers) and a million topics.
 */
#define CHECK_TOPIC_TABLE_ONLY
#include "check_topic.c"

#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/topic.h"
#include "common/trie.h"
#include "tests/support/check_main.h"
#include "tests/support/heap.h"

/* Fake subscribers: the trie never dereferences them. */
static char subs_storage[64];
#define SUB(i) ((void *)&subs_storage[i])

static struct trie *trie;

static void setup(void)
{
    trie = trie_new();
}

static void teardown(void)
{
    trie_free(trie);
    trie = NULL;
}

static struct trie_node *sub(const char *pattern, void *s, bool *first, bool *added)
{
    return trie_subscribe(trie, pattern, strlen(pattern), s, first, added);
}

static int unsub(const char *pattern, void *s, bool *last)
{
    return trie_unsubscribe(trie, pattern, strlen(pattern), s, last);
}

/* Records calls: per-subscriber counts over SUB(0..63). */
struct rec {
    size_t calls;
    size_t per_sub[64];
    size_t stop_after; /* 0: never stop */
};

static int record(void *s, const struct trie_node *node, void *arg)
{
    struct rec *r = arg;
    ck_assert_ptr_nonnull(node);
    ck_assert_uint_gt(trie_node_count(node), 0);
    r->calls++;
    r->per_sub[(char *)s - subs_storage]++;
    return r->stop_after && r->calls >= r->stop_after;
}

static size_t match(const char *topic, struct rec *r)
{
    memset(r, 0, sizeof(*r));
    return trie_match(trie, topic, strlen(topic), record, r);
}

static size_t match_each(const char *topic, struct rec *r)
{
    memset(r, 0, sizeof(*r));
    return trie_match_each(trie, topic, strlen(topic), record, r);
}

/* Counts calls on a byte array of N clients: each must be delivered once. */
struct seen {
    const char *base;
    unsigned char *hits;
};

static int mark(void *s, const struct trie_node *node, void *arg)
{
    struct seen *sn = arg;
    (void)node;
    sn->hits[(char *)s - sn->base]++;
    return 0;
}

/* ------------------------------------------------------------ match table */

START_TEST(test_table_through_trie)
{
    const struct match_case *c = &match_cases[_i];
    struct rec r;
    sub(c->pattern, SUB(1), NULL, NULL);
    /* A decoy that never matches the table's topics. */
    sub("zz.decoy", SUB(2), NULL, NULL);
    ck_assert_uint_eq(match(c->topic, &r), c->match ? 1 : 0);
    ck_assert_uint_eq(r.per_sub[1], c->match ? 1 : 0);
    ck_assert_uint_eq(match_each(c->topic, &r), c->match ? 1 : 0);
}

END_TEST

START_TEST(test_table_all_at_once)
{
    /* Every table pattern subscribed at once, one subscriber per entry. */
    ck_assert_uint_le(MATCH_CASES, 64);
    for (size_t i = 0; i < MATCH_CASES; i++)
        sub(match_cases[i].pattern, SUB(i), NULL, NULL);
    for (size_t i = 0; i < MATCH_CASES; i++) {
        const char *topic = match_cases[i].topic;
        struct rec r;
        match_each(topic, &r);
        for (size_t j = 0; j < MATCH_CASES; j++) {
            const char *p = match_cases[j].pattern;
            bool m = topic_matches(p, strlen(p), topic, strlen(topic));
            /* Table patterns repeat: SUB(j) counts its one pattern. */
            ck_assert_msg(r.per_sub[j] == (m ? 1u : 0u), "topic %s pattern %s", topic, p);
        }
    }
}

END_TEST

/* --------------------------------------------------- subscribe/unsubscribe */

START_TEST(test_first_and_added)
{
    bool first = false;
    bool added = false;
    struct trie_node *n1 = sub("a.b", SUB(1), &first, &added);
    ck_assert(first);
    ck_assert(added);
    struct trie_node *n2 = sub("a.b", SUB(2), &first, &added);
    ck_assert_ptr_eq(n1, n2);
    ck_assert(!first);
    ck_assert(added);
    ck_assert_uint_eq(trie_node_count(n1), 2);
    ck_assert_uint_eq(trie_pattern_count(trie), 1);
    ck_assert_uint_eq(trie_subscription_count(trie), 2);
    char buf[16];
    ck_assert_uint_eq(trie_node_pattern(n1, buf, sizeof(buf)), 3);
    ck_assert_str_eq(buf, "a.b");
    /* Too small: the length is still returned, nothing but "" written. */
    ck_assert_uint_eq(trie_node_pattern(n1, buf, 3), 3);
    ck_assert_str_eq(buf, "");
}

END_TEST

START_TEST(test_duplicate_subscribe)
{
    bool first = true;
    bool added = true;
    struct trie_node *n1 = sub("a.*", SUB(1), NULL, NULL);
    struct trie_node *n2 = sub("a.*", SUB(1), &first, &added);
    ck_assert_ptr_eq(n1, n2);
    ck_assert(!first);
    ck_assert(!added);
    ck_assert_uint_eq(trie_node_count(n1), 1);
    ck_assert_uint_eq(trie_subscription_count(trie), 1);
    bool last = false;
    ck_assert_int_eq(unsub("a.*", SUB(1), &last), 0);
    ck_assert(last);
    ck_assert_int_eq(unsub("a.*", SUB(1), &last), -1);
    ck_assert(!last);
}

END_TEST

START_TEST(test_last_flag)
{
    bool last = true;
    sub("x.y", SUB(1), NULL, NULL);
    sub("x.y", SUB(2), NULL, NULL);
    ck_assert_int_eq(unsub("x.y", SUB(1), &last), 0);
    ck_assert(!last);
    ck_assert_int_eq(unsub("x.y", SUB(2), &last), 0);
    ck_assert(last);
    ck_assert_uint_eq(trie_pattern_count(trie), 0);
    ck_assert_uint_eq(trie_subscription_count(trie), 0);
}

END_TEST

START_TEST(test_unsubscribe_unknown)
{
    bool last = true;
    sub("a.b", SUB(1), NULL, NULL);
    ck_assert_int_eq(unsub("a.b", SUB(2), &last), -1);
    ck_assert(!last);
    ck_assert_int_eq(unsub("a", SUB(1), &last), -1);
    ck_assert_int_eq(unsub("a.b.c", SUB(1), &last), -1);
    ck_assert_int_eq(unsub("a.*", SUB(1), &last), -1);
    ck_assert_int_eq(unsub("q", SUB(1), NULL), -1);
    ck_assert_uint_eq(trie_subscription_count(trie), 1);
}

END_TEST

START_TEST(test_unsubscribe_node)
{
    bool last = true;
    struct trie_node *n = sub("a.>", SUB(1), NULL, NULL);
    sub("a.>", SUB(2), NULL, NULL);
    ck_assert_int_eq(trie_unsubscribe_node(trie, n, SUB(1), &last), 0);
    ck_assert(!last);
    ck_assert_int_eq(trie_unsubscribe_node(trie, n, SUB(1), &last), -1);
    ck_assert_int_eq(trie_unsubscribe_node(trie, n, SUB(2), &last), 0);
    ck_assert(last);
    ck_assert_uint_eq(trie_pattern_count(trie), 0);
    struct rec r;
    ck_assert_uint_eq(match("a.b", &r), 0);
}

END_TEST

START_TEST(test_inner_node_keeps_children)
{
    /* Emptying an inner node must not prune its subscribed descendants. */
    bool last = false;
    sub("a", SUB(1), NULL, NULL);
    sub("a.b.c", SUB(2), NULL, NULL);
    ck_assert_int_eq(unsub("a", SUB(1), &last), 0);
    ck_assert(last);
    struct rec r;
    ck_assert_uint_eq(match("a.b.c", &r), 1);
    ck_assert_uint_eq(r.per_sub[2], 1);
    ck_assert_uint_eq(match("a", &r), 0);
    /* And emptying the leaf prunes up to the root. */
    ck_assert_int_eq(unsub("a.b.c", SUB(2), &last), 0);
    ck_assert_uint_eq(trie_pattern_count(trie), 0);
    sub("a", SUB(3), NULL, NULL);
    ck_assert_uint_eq(match("a", &r), 1);
    ck_assert_uint_eq(match("a.b.c", &r), 0);
}

END_TEST

/* ----------------------------------------------------------- dedup, each */

static const char *const overlap[] = {"a.b", "a.*", "a.>", ">", "*.b", "*.*"};
#define NOVERLAP (sizeof(overlap) / sizeof(overlap[0]))

START_TEST(test_overlap_dedup)
{
    for (size_t i = 0; i < NOVERLAP; i++)
        sub(overlap[i], SUB(1), NULL, NULL);
    sub("a.b", SUB(2), NULL, NULL);
    sub("a.c", SUB(3), NULL, NULL);
    struct rec r;
    ck_assert_uint_eq(match("a.b", &r), 2);
    ck_assert_uint_eq(r.per_sub[1], 1);
    ck_assert_uint_eq(r.per_sub[2], 1);
    ck_assert_uint_eq(r.per_sub[3], 0);
    ck_assert_uint_eq(match_each("a.b", &r), NOVERLAP + 1);
    ck_assert_uint_eq(r.per_sub[1], NOVERLAP);
    ck_assert_uint_eq(match_each("a.b.c", &r), 2); /* a.> and > */
    ck_assert_uint_eq(match("a.b.c", &r), 1);
}

END_TEST

START_TEST(test_many_hits_dedup)
{
    /* 16 patterns matching a.b.c.d (each token literal or '*'): the sort path. */
    char p[16];
    for (unsigned mask = 0; mask < 16; mask++) {
        snprintf(p, sizeof(p), "%s.%s.%s.%s", mask & 1 ? "*" : "a", mask & 2 ? "*" : "b",
                 mask & 4 ? "*" : "c", mask & 8 ? "*" : "d");
        sub(p, SUB(1), NULL, NULL);
        sub(p, SUB(2 + mask), NULL, NULL);
    }
    struct rec r;
    ck_assert_uint_eq(match("a.b.c.d", &r), 17);
    for (size_t i = 1; i < 18; i++)
        ck_assert_uint_eq(r.per_sub[i], 1);
    ck_assert_uint_eq(match_each("a.b.c.d", &r), 32);
    ck_assert_uint_eq(r.per_sub[1], 16);
    ck_assert_uint_eq(match("x.b.c.d", &r), 9);
    ck_assert_uint_eq(r.per_sub[1], 1);
}

END_TEST

START_TEST(test_big_node_dedup)
{
    /* 40 subscribers on "news" (a set), a few also on "*" and ">". */
    for (size_t i = 0; i < 40; i++)
        sub("news", SUB(i), NULL, NULL);
    sub("*", SUB(3), NULL, NULL);
    sub("*", SUB(50), NULL, NULL);
    sub(">", SUB(3), NULL, NULL);
    sub(">", SUB(39), NULL, NULL);
    struct rec r;
    ck_assert_uint_eq(match("news", &r), 41);
    for (size_t i = 0; i < 40; i++)
        ck_assert_uint_eq(r.per_sub[i], 1);
    ck_assert_uint_eq(r.per_sub[50], 1);
    ck_assert_uint_eq(match_each("news", &r), 44);
    ck_assert_uint_eq(r.per_sub[3], 3);
}

END_TEST

START_TEST(test_stop_early)
{
    for (size_t i = 0; i < 10; i++)
        sub("a", SUB(i), NULL, NULL);
    sub("*", SUB(20), NULL, NULL);
    struct rec r;
    memset(&r, 0, sizeof(r));
    r.stop_after = 3;
    ck_assert_uint_eq(trie_match(trie, "a", 1, record, &r), 3);
    memset(&r, 0, sizeof(r));
    r.stop_after = 1;
    ck_assert_uint_eq(trie_match_each(trie, "a", 1, record, &r), 1);
}

END_TEST

/* ---------------------------------------------------------- pruning, mem */

START_TEST(test_prune_releases_memory)
{
    struct rec r;
    sub("warm", SUB(0), NULL, NULL);
    match("warm", &r); /* allocates the match scratch */
    unsub("warm", SUB(0), NULL);
    size_t base = heap_bytes();
    size_t tbase = trie_bytes(trie);
    char p[64];
    for (size_t i = 0; i < 2000; i++) {
        snprintf(p, sizeof(p), "t.%zu.%s.%zu", i % 37, i % 3 ? "*" : "x", i);
        sub(p, SUB(i % 64), NULL, NULL);
        sub(p, SUB((i + 1) % 64), NULL, NULL);
        sub(i % 5 ? "t.>" : "*.*", SUB(i % 64), NULL, NULL);
    }
    for (size_t i = 0; i < 20; i++)
        sub("big", SUB(i), NULL, NULL);
    /* No match ran since base: everything the heap gained, the trie holds. */
    size_t counted = trie_bytes(trie) - tbase;
    size_t held = heap_bytes() - base;
    ck_assert_uint_gt(counted, 2000 * 40);
#ifdef HEAP_ASAN
    /* The sanitizer counts requests: trie_bytes must name every one. */
    ck_assert_uint_eq(held, counted);
#else
    /*
     * glibc counts chunks: a request r plus 8 to 24 bytes, 32 at least,
     * which is more than r and, as the trie asks for 16 bytes or more, at
     * most 2r. Only the sanitizer's count can be exact.
     */
    ck_assert_uint_gt(held, counted);
    ck_assert_uint_le(held, 2 * counted);
#endif
    for (size_t i = 0; i < 2000; i++) {
        snprintf(p, sizeof(p), "t.%zu.%s.%zu", i % 37, i % 3 ? "*" : "x", i);
        ck_assert_int_eq(unsub(p, SUB(i % 64), NULL), 0);
        ck_assert_int_eq(unsub(p, SUB((i + 1) % 64), NULL), 0);
        unsub(i % 5 ? "t.>" : "*.*", SUB(i % 64), NULL);
    }
    for (size_t i = 0; i < 20; i++)
        ck_assert_int_eq(unsub("big", SUB(i), NULL), 0);
    ck_assert_uint_eq(trie_pattern_count(trie), 0);
    ck_assert_uint_eq(trie_subscription_count(trie), 0);
    ck_assert_uint_eq(heap_bytes(), base);
    ck_assert_uint_eq(trie_bytes(trie), tbase);
    ck_assert_uint_eq(match("t.1.x.1", &r), 0);
    ck_assert_uint_eq(match("big", &r), 0);
}

END_TEST

/*
 * Issue 10: nodes hold only their own token. 64 distinct 16-token patterns
 * of ~250 bytes (what one browser may subscribe to with default limits)
 * cost under 1.5 KB each: one node per token (40 bytes + the token) and a
 * child table per level. With the whole prefix in every node they cost
 * ~4 KB each.
 */
START_TEST(test_issue10_long_patterns_cost_one_token_per_node)
{
    size_t base = trie_bytes(trie);
    char p[300];
    for (size_t i = 0; i < 64; i++) {
        size_t n = 0;
        for (size_t t = 0; t < 16; t++)
            n += (size_t)snprintf(p + n, sizeof(p) - n, "%s%c%02zu-%012zu", t ? "." : "",
                                  (char)('a' + t), i, t);
        ck_assert_uint_ge(n, 250);
        struct trie_node *node = sub(p, SUB(i), NULL, NULL);
        char back[300];
        ck_assert_uint_eq(trie_node_pattern(node, back, sizeof(back)), n);
        ck_assert_str_eq(back, p);
        ck_assert_ptr_eq(trie_find(trie, p, n), node);
        ck_assert_ptr_eq(trie_find_sub(trie, p, n, SUB(i)), node);
        ck_assert_ptr_null(trie_find_sub(trie, p, n, SUB(i + 1)));
    }
    size_t per_pattern = (trie_bytes(trie) - base) / 64;
    ck_assert_msg(per_pattern < 1500, "%zu bytes per 16-token pattern", per_pattern);
    ck_assert_ptr_null(trie_find(trie, "a00-000000000000", 16)); /* a prefix: no subscriber */
    ck_assert_ptr_null(trie_find(trie, "nope", 4));
}

END_TEST

/* ------------------------------------------------------------ big nodes */

START_TEST(test_big_subscriber_set)
{
    /* The edge puts 18,000 clients on one node. */
    enum { N = 18000 };

    char *clients = malloc(N);
    struct seen sn = {clients, calloc(N, 1)};
    bool first;
    bool added;
    bool last;
    for (size_t i = 0; i < N; i++) {
        sub("broadcast", clients + i, &first, &added);
        ck_assert(first == (i == 0));
        ck_assert(added);
    }
    for (size_t i = 0; i < N; i += 7) {
        sub("broadcast", clients + i, &first, &added);
        ck_assert(!added);
    }
    ck_assert_uint_eq(trie_subscription_count(trie), N);
    ck_assert_uint_eq(trie_match(trie, "broadcast", 9, mark, &sn), N);
    for (size_t i = 0; i < N; i++)
        ck_assert_uint_eq(sn.hits[i], 1);
    for (size_t i = 0; i < N; i += 2)
        ck_assert_int_eq(unsub("broadcast", clients + i, &last), 0);
    memset(sn.hits, 0, N);
    ck_assert_uint_eq(trie_match(trie, "broadcast", 9, mark, &sn), N / 2);
    for (size_t i = 0; i < N; i++)
        ck_assert_uint_eq(sn.hits[i], i % 2);
    for (size_t i = 1; i < N; i += 2) {
        ck_assert_int_eq(unsub("broadcast", clients + i, &last), 0);
        ck_assert(last == (i == N - 1));
    }
    ck_assert_uint_eq(trie_pattern_count(trie), 0);
    free(sn.hits);
    free(clients);
}

END_TEST

START_TEST(test_million_topics)
{
    /* user.<i> for a million i: one node each, modest memory, all released. */
    enum { N = 1000000 };

    char *clients = malloc(N);
    struct seen sn = {clients, calloc(N, 1)};
    char p[32];
    /* A first hit allocates the trie's match scratch: not counted below. */
    trie_subscribe(trie, "warm", 4, clients, NULL, NULL);
    trie_match(trie, "warm", 4, mark, &sn);
    trie_unsubscribe(trie, "warm", 4, clients, NULL);
    size_t base = heap_bytes();
    size_t tbase = trie_bytes(trie);
    for (size_t i = 0; i < N; i++) {
        int n = snprintf(p, sizeof(p), "user.%zu", i);
        trie_subscribe(trie, p, (size_t)n, clients + i, NULL, NULL);
    }
    size_t counted = trie_bytes(trie) - tbase;
    size_t held = heap_bytes() - base;
    ck_assert_msg(counted / N <= 96, "trie_bytes: %zu bytes per topic", counted / N);
    ck_assert_msg(held / N <= 96, "heap: %zu bytes per topic", held / N);
    ck_assert_uint_eq(trie_pattern_count(trie), N);
    ck_assert_uint_eq(trie_match(trie, "user.424242", 11, mark, &sn), 1);
    ck_assert_uint_eq(sn.hits[424242], 1);
    ck_assert_uint_eq(trie_match(trie, "user.1000000", 12, mark, &sn), 0);
    held = heap_bytes() - base; /* the match scratch may have grown */
    /* Dropping 99% must shrink the big child table, not just free leaves. */
    for (size_t i = 0; i < N; i++) {
        int n = snprintf(p, sizeof(p), "user.%zu", i);
        if (i % 100)
            ck_assert_int_eq(trie_unsubscribe(trie, p, (size_t)n, clients + i, NULL), 0);
    }
    ck_assert_uint_le(trie_bytes(trie) - tbase, counted / 20);
    ck_assert_uint_le(heap_bytes() - base, held / 20);
    for (size_t i = 0; i < N; i += 100) {
        int n = snprintf(p, sizeof(p), "user.%zu", i);
        ck_assert_int_eq(trie_unsubscribe(trie, p, (size_t)n, clients + i, NULL), 0);
    }
    ck_assert_uint_eq(trie_pattern_count(trie), 0);
    ck_assert_uint_eq(trie_bytes(trie), tbase);
    ck_assert_uint_eq(heap_bytes(), base);
    free(sn.hits);
    free(clients);
}

END_TEST

/* ---------------------------------------------------------- random model */

/*
 * Every pattern of 1..3 tokens over {a, b, *} plus a trailing {a, b, *, >}
 * would be large; 1..3 tokens over {a, b, *} with '>' allowed last gives a
 * universe small enough for an exact model: sub_of[pattern][sub].
 */
#define MODEL_SUBS 12
#define MODEL_MAX  256

struct model {
    char patterns[MODEL_MAX][8];
    size_t npatterns;
    bool sub_of[MODEL_MAX][MODEL_SUBS];
    size_t pairs;
    size_t live_patterns;
};

static void model_gen(struct model *m, char *prefix, size_t depth)
{
    static const char *const toks[] = {"a", "b", "*", ">"};
    for (size_t t = 0; t < 4; t++) {
        char buf[8];
        int n = snprintf(buf, sizeof(buf), "%s%s%s", prefix, *prefix ? "." : "", toks[t]);
        ck_assert_int_lt(n, (int)sizeof(buf));
        ck_assert_uint_lt(m->npatterns, MODEL_MAX);
        strcpy(m->patterns[m->npatterns++], buf);
        if (depth < 3 && t < 3)
            model_gen(m, buf, depth + 1);
    }
}

static size_t model_live(const struct model *m, size_t p)
{
    size_t n = 0;
    for (size_t s = 0; s < MODEL_SUBS; s++)
        n += m->sub_of[p][s];
    return n;
}

static void model_op(struct model *m)
{
    size_t p = (size_t)rand() % m->npatterns;
    size_t s = (size_t)rand() % MODEL_SUBS;
    const char *pat = m->patterns[p];
    size_t before = model_live(m, p);
    if (rand() % 2) {
        bool first;
        bool added;
        struct trie_node *node = sub(pat, SUB(s), &first, &added);
        ck_assert(added == !m->sub_of[p][s]);
        ck_assert(first == (before == 0));
        m->pairs += added;
        m->live_patterns += first;
        m->sub_of[p][s] = true;
        char text[64];
        ck_assert_uint_eq(trie_node_pattern(node, text, sizeof(text)), strlen(pat));
        ck_assert_str_eq(text, pat);
        ck_assert_ptr_eq(trie_find(trie, pat, strlen(pat)), node);
        ck_assert_ptr_eq(trie_find_sub(trie, pat, strlen(pat), SUB(s)), node);
        ck_assert_uint_eq(trie_node_count(node), model_live(m, p));
    } else {
        bool last;
        int rc = unsub(pat, SUB(s), &last);
        ck_assert_int_eq(rc, m->sub_of[p][s] ? 0 : -1);
        ck_assert(last == (rc == 0 && before == 1));
        m->pairs -= rc == 0;
        m->live_patterns -= last;
        m->sub_of[p][s] = false;
    }
    ck_assert_uint_eq(trie_subscription_count(trie), m->pairs);
    ck_assert_uint_eq(trie_pattern_count(trie), m->live_patterns);
}

static void model_check_match(const struct model *m)
{
    static const char *const toks[] = {"a", "b", "c"};
    char topic[16] = "";
    size_t ntok = 1 + (size_t)rand() % 4;
    for (size_t i = 0; i < ntok; i++) {
        strcat(topic, toks[rand() % 3]);
        if (i + 1 < ntok)
            strcat(topic, ".");
    }
    size_t want_each = 0;
    size_t want_distinct = 0;
    size_t want[MODEL_SUBS] = {0};
    for (size_t p = 0; p < m->npatterns; p++) {
        const char *pat = m->patterns[p];
        if (!topic_matches(pat, strlen(pat), topic, strlen(topic)))
            continue;
        for (size_t s = 0; s < MODEL_SUBS; s++) {
            want[s] += m->sub_of[p][s];
            want_each += m->sub_of[p][s];
        }
    }
    struct rec r;
    ck_assert_uint_eq(match_each(topic, &r), want_each);
    for (size_t s = 0; s < MODEL_SUBS; s++)
        ck_assert_uint_eq(r.per_sub[s], want[s]);
    for (size_t s = 0; s < MODEL_SUBS; s++)
        want_distinct += want[s] > 0;
    ck_assert_msg(match(topic, &r) == want_distinct, "topic %s", topic);
    for (size_t s = 0; s < MODEL_SUBS; s++)
        ck_assert_uint_eq(r.per_sub[s], want[s] > 0);
}

START_TEST(test_random_model)
{
    struct model *m = calloc(1, sizeof(*m));
    char empty[1] = "";
    model_gen(m, empty, 1);
    srand(12345);
    for (size_t i = 0; i < 100000; i++) {
        model_op(m);
        if (i % 10 == 0)
            model_check_match(m);
    }
    for (size_t p = 0; p < m->npatterns; p++) {
        for (size_t s = 0; s < MODEL_SUBS; s++) {
            if (m->sub_of[p][s])
                ck_assert_int_eq(unsub(m->patterns[p], SUB(s), NULL), 0);
        }
    }
    ck_assert_uint_eq(trie_pattern_count(trie), 0);
    ck_assert_uint_eq(trie_subscription_count(trie), 0);
    free(m);
}

END_TEST

/* ---------------------------------------------------------------- foreach */

struct fe {
    size_t calls;
    size_t stop_after;
    char seen[64][16];
};

static int foreach_rec(void *s, const struct trie_node *node, void *arg)
{
    struct fe *f = arg;
    char p[sizeof(f->seen[0])];
    size_t len = trie_node_pattern(node, p, sizeof(p));
    ck_assert_uint_eq(len, strlen(p));
    snprintf(f->seen[(char *)s - subs_storage], sizeof(f->seen[0]), "%s", p);
    f->calls++;
    return f->stop_after && f->calls >= f->stop_after;
}

START_TEST(test_foreach)
{
    struct fe f;
    memset(&f, 0, sizeof(f));
    trie_foreach(trie, foreach_rec, &f);
    ck_assert_uint_eq(f.calls, 0);
    sub("a.b", SUB(1), NULL, NULL);
    sub("a.*", SUB(2), NULL, NULL);
    sub("a.>", SUB(3), NULL, NULL);
    sub(">", SUB(4), NULL, NULL);
    sub("a", SUB(5), NULL, NULL);
    for (size_t i = 10; i < 30; i++)
        sub("many", SUB(i), NULL, NULL);
    trie_foreach(trie, foreach_rec, &f);
    ck_assert_uint_eq(f.calls, 25);
    ck_assert_str_eq(f.seen[1], "a.b");
    ck_assert_str_eq(f.seen[2], "a.*");
    ck_assert_str_eq(f.seen[3], "a.>");
    ck_assert_str_eq(f.seen[4], ">");
    ck_assert_str_eq(f.seen[5], "a");
    for (size_t i = 10; i < 30; i++)
        ck_assert_str_eq(f.seen[i], "many");
    memset(&f, 0, sizeof(f));
    f.stop_after = 2;
    trie_foreach(trie, foreach_rec, &f);
    ck_assert_uint_eq(f.calls, 2);
}

END_TEST

/* trie_free gives back everything: nodes, child tables, subscriber sets, match scratch. */
START_TEST(test_free_null_and_populated)
{
    trie_free(NULL);
    size_t base = heap_bytes();
    struct trie *t = trie_new();
    trie_subscribe(t, "a.b.c", 5, SUB(1), NULL, NULL);
    trie_subscribe(t, "a.*", 3, SUB(1), NULL, NULL);
    for (size_t i = 0; i < 30; i++)
        trie_subscribe(t, ">", 1, SUB(i), NULL, NULL);
    char p[16];
    for (size_t i = 0; i < 40; i++) {
        snprintf(p, sizeof(p), "a.k%zu", i);
        trie_subscribe(t, p, strlen(p), SUB(i), NULL, NULL);
    }
    /* Both scratch arrays: the hit list and, for more than a few hits, the pairs. */
    trie_subscribe(t, "a.*.c", 5, SUB(2), NULL, NULL);
    trie_subscribe(t, "*.b.c", 5, SUB(3), NULL, NULL);
    trie_subscribe(t, "*.*.c", 5, SUB(4), NULL, NULL);
    trie_subscribe(t, "*.b.*", 5, SUB(5), NULL, NULL);
    trie_subscribe(t, "a.*.*", 5, SUB(6), NULL, NULL);
    trie_subscribe(t, "*.*.*", 5, SUB(7), NULL, NULL);
    trie_subscribe(t, "a.b.*", 5, SUB(8), NULL, NULL);
    trie_subscribe(t, "a.>", 3, SUB(9), NULL, NULL);
    trie_subscribe(t, "a.b.>", 5, SUB(10), NULL, NULL);
    struct rec r;
    memset(&r, 0, sizeof(r));
    ck_assert_uint_eq(trie_match(t, "a.b.c", 5, record, &r), 30);
    ck_assert_uint_gt(heap_bytes(), base + trie_bytes(t));
    trie_free(t);
    ck_assert_uint_eq(heap_bytes(), base);
}

END_TEST

static Suite *trie_suite(void)
{
    Suite *s = suite_create("trie");
    TCase *tc = tcase_create("table");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_loop_test(tc, test_table_through_trie, 0, MATCH_CASES);
    tcase_add_test(tc, test_table_all_at_once);
    suite_add_tcase(s, tc);

    tc = tcase_create("subscribe");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_first_and_added);
    tcase_add_test(tc, test_duplicate_subscribe);
    tcase_add_test(tc, test_last_flag);
    tcase_add_test(tc, test_unsubscribe_unknown);
    tcase_add_test(tc, test_unsubscribe_node);
    tcase_add_test(tc, test_inner_node_keeps_children);
    tcase_add_test(tc, test_foreach);
    tcase_add_test(tc, test_free_null_and_populated);
    suite_add_tcase(s, tc);

    tc = tcase_create("dedup");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_overlap_dedup);
    tcase_add_test(tc, test_many_hits_dedup);
    tcase_add_test(tc, test_big_node_dedup);
    tcase_add_test(tc, test_stop_early);
    suite_add_tcase(s, tc);

    tc = tcase_create("scale");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_prune_releases_memory);
    tcase_add_test(tc, test_issue10_long_patterns_cost_one_token_per_node);
    tcase_add_test(tc, test_big_subscriber_set);
    tcase_add_test(tc, test_million_topics);
    tcase_add_test(tc, test_random_model);
    suite_add_tcase(s, tc);
    return s;
}

int main(int argc, char **argv)
{
    (void)argc;
    heap_init(argv);
    return check_run_suite(trie_suite());
}

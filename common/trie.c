#include "common/trie.h"

#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/hash.h"
#include "common/mem.h"
#include "common/oaslots.h"
#include "common/ptrset.h"

/*
 * Topic trie: pattern -> set of opaque subscriber pointers.
 *
 * Data structure. One node per pattern prefix, holding only its own token
 * (flexible array, not NUL-terminated): a node costs 40 bytes plus its
 * token, whatever its depth. An earlier version stored the whole prefix in
 * every node, so one 16-token, 250-byte pattern cost ~4 KB of node text;
 * 64 such patterns per connection cost a browser's connection 270 KB on the
 * edge and again on the broker. trie_node_pattern() now rebuilds the text
 * by walking up the parents (at most max-topic-tokens of them), which only
 * cold paths need: an UNSUB to the broker, a resend after reconnect, the
 * pattern of a RESP pmessage.
 *   - children live in a separate `struct kids`, allocated only for inner
 *     nodes: the `*` and `>` children apart, literal children in an
 *     open-addressing table (oaslots.c; starting at 4 slots, grown at 3/4
 *     load, shrunk at 1/8) keyed by token bytes, with the token's FNV-1a
 *     hash cached in the child node - except a single literal child, kept
 *     inline without a table (most inner nodes of long patterns have one);
 *   - subscribers are a struct ptrset (ptrset.c): one pointer inline, a
 *     small array, or a pointer table, so subscribe/unsubscribe stay O(1)
 *     with 18,000 clients on one node.
 *
 * Invariants. Every node but the root has a subscriber or a child; a node's
 * `kids` is NULL when it has no child at all (so that is the prune test);
 * a `>` node never has children. t->patterns counts nodes with subscribers,
 * t->subscriptions the (pattern, sub) pairs, t->bytes the heap bytes the
 * trie allocated (nodes, child tables, subscriber sets): the number the
 * processes show in /metrics, since every byte a peer can make us hold is
 * counted.
 *
 * Matching walks the topic token by token: at most the `>` child (a hit),
 * the `*` child and one literal child per level. Matched nodes are collected
 * in t->hits (scratch reused across calls). One hit (the common broadcast and
 * unicast cases) is delivered without any dedup. A few hits dedup by asking
 * the earlier, bigger hits whether they hold the subscriber (O(1) for big
 * nodes, their set); many hits fall back to sorting (sub, node) pairs in
 * t->pairs.
 *
 * Rejected: a global hash of full patterns (no wildcard walk), sorted child
 * arrays (O(n) inserts under a million siblings), the full prefix in every
 * node (see above), path compression (a million `user.<i>` leaves share
 * one parent, so it saves nothing where the memory is, and splits cost on
 * every subscribe), and a per-match "seen" hash set (costs on every
 * multi-hit match even when the big node makes membership checks free).
 */

#define KIDS_MIN_SLOTS 4 /* first literal-child table */
#define DEDUP_PROBE    8 /* up to this many hits dedup by membership probes */

struct trie_node {
    struct trie_node *parent;
    struct kids *kids;
    struct ptrset subs;
    uint32_t tlen; /* bytes of token[] */
    uint32_t hash; /* FNV-1a of token[] */
    char token[];  /* the node's own token (not NUL-terminated) */
};

struct kids {
    struct trie_node *star;
    struct trie_node *gt;

    union {
        struct trie_node *one;    /* cap == 0: the only literal child, or NULL */
        struct trie_node **slots; /* cap > 0: literal children, open addressing */
    } u;

    uint32_t cap;
    uint32_t n;
};

struct pair {
    void *sub;
    const struct trie_node *node;
};

struct trie {
    struct trie_node *root;
    size_t patterns;
    size_t subscriptions;
    size_t bytes;            /* heap bytes of nodes, kids and subscriber sets */
    struct trie_node **hits; /* match scratch */
    size_t nhits;
    size_t hits_cap;
    struct pair *pairs; /* dedup scratch for many hits */
    size_t pairs_cap;
};

/* ---------------------------------------------------------------- hashing */

static uint32_t node_slot_hash(const void *entry)
{
    return ((const struct trie_node *)entry)->hash;
}

/* ------------------------------------------------------------------ nodes */

static size_t node_size(size_t tlen)
{
    return sizeof(struct trie_node) + tlen;
}

/* Returns a new node for token tok[0..n). */
static struct trie_node *node_new(struct trie *t, struct trie_node *parent, const char *tok,
                                  size_t n)
{
    assert(n < UINT32_MAX);
    struct trie_node *node = mem_alloc(node_size(n));
    node->parent = parent;
    node->kids = NULL;
    memset(&node->subs, 0, sizeof(node->subs));
    node->tlen = (uint32_t)n;
    node->hash = hash_fnv1a(tok, n);
    memcpy(node->token, tok, n);
    t->bytes += node_size(n);
    return node;
}

/* Frees node's own memory (not its children), keeping t->bytes. */
static void node_release(struct trie *t, struct trie_node *node)
{
    t->bytes -= node_size(node->tlen) + ptrset_heap_bytes(&node->subs);
    ptrset_clear(&node->subs);
    mem_free(node);
}

/* True when node's own token is tok[0..n). */
static bool node_token_is(const struct trie_node *node, const char *tok, size_t n, uint32_t h)
{
    return node->hash == h && node->tlen == n && memcmp(node->token, tok, n) == 0;
}

static struct trie_node *kids_find(const struct kids *k, const char *tok, size_t n, uint32_t h)
{
    if (!k)
        return NULL;
    if (k->cap == 0)
        return k->u.one && node_token_is(k->u.one, tok, n, h) ? k->u.one : NULL;
    uint32_t mask = k->cap - 1;
    for (uint32_t i = h & mask; k->u.slots[i]; i = (i + 1) & mask) {
        if (node_token_is(k->u.slots[i], tok, n, h))
            return k->u.slots[i];
    }
    return NULL;
}

/* The literal children to scan: *n entries, some NULL (holes of a table). */
static struct trie_node *const *kids_view(const struct kids *k, uint32_t *n)
{
    if (k->cap == 0) {
        *n = k->u.one ? 1 : 0;
        return &k->u.one;
    }
    *n = k->cap;
    return k->u.slots;
}

/* Moves k's literal children into a table of cap slots (cap 0: the one child inline). */
static void kids_resize(struct trie *t, struct kids *k, uint32_t cap)
{
    struct trie_node *one = NULL;

    t->bytes += (size_t)cap * sizeof(*k->u.slots);
    t->bytes -= (size_t)k->cap * sizeof(*k->u.slots);
    if (k->cap == 0) {
        one = k->u.one;
        k->u.slots = mem_calloc(cap, sizeof(*k->u.slots));
        if (one)
            oaslots_put((void **)k->u.slots, cap, one, node_slot_hash);
    } else if (cap == 0) {
        for (uint32_t i = 0; i < k->cap && !one; i++)
            one = k->u.slots[i];
        mem_free(k->u.slots);
        k->u.one = one;
    } else {
        k->u.slots =
            (struct trie_node **)oaslots_rehash((void **)k->u.slots, k->cap, cap, node_slot_hash);
    }
    k->cap = cap;
}

static void kids_add_literal(struct trie *t, struct kids *k, struct trie_node *child)
{
    if (k->n == 0) {
        k->u.one = child;
        k->n = 1;
        return;
    }
    if (k->cap == 0 || (k->n + 1) * 4 > k->cap * 3)
        kids_resize(t, k, k->cap ? k->cap * 2 : KIDS_MIN_SLOTS);
    oaslots_put((void **)k->u.slots, k->cap, child, node_slot_hash);
    k->n++;
}

static void kids_remove_literal(struct trie *t, struct kids *k, const struct trie_node *child)
{
    if (k->cap == 0) {
        assert(k->u.one == child);
        k->u.one = NULL;
        k->n = 0;
        return;
    }
    uint32_t mask = k->cap - 1;
    uint32_t i = child->hash & mask;
    while (k->u.slots[i] != child) {
        assert(k->u.slots[i] != NULL);
        i = (i + 1) & mask;
    }
    oaslots_delete((void **)k->u.slots, k->cap, i, node_slot_hash);
    k->n--;
    if (k->n <= 1)
        kids_resize(t, k, 0);
    else if (k->cap > KIDS_MIN_SLOTS && k->n * 8 < k->cap)
        kids_resize(t, k, k->cap / 2);
}

/* Returns the child of node for token s[0..n), creating it when create is set. */
static struct trie_node *child_get(struct trie *t, struct trie_node *node, const char *s, size_t n,
                                   bool create)
{
    bool star = n == 1 && s[0] == '*';
    bool gt = n == 1 && s[0] == '>';
    uint32_t h = hash_fnv1a(s, n);
    struct kids *k = node->kids;
    struct trie_node *child = NULL;
    if (k)
        child = star ? k->star : gt ? k->gt : kids_find(k, s, n, h);
    if (child || !create)
        return child;
    if (!k) {
        k = node->kids = mem_calloc(1, sizeof(*k));
        t->bytes += sizeof(*k);
    }
    child = node_new(t, node, s, n);
    if (star)
        k->star = child;
    else if (gt)
        k->gt = child;
    else
        kids_add_literal(t, k, child);
    return child;
}

/* Walks (or builds) the path of a pattern; NULL when absent and !create. */
static struct trie_node *path(struct trie *t, const char *pattern, size_t len, bool create)
{
    struct trie_node *node = t->root;
    size_t i = 0;
    while (node && i <= len) {
        const char *dot = memchr(pattern + i, '.', len - i);
        size_t end = dot ? (size_t)(dot - pattern) : len;
        node = child_get(t, node, pattern + i, end - i, create);
        i = end + 1;
    }
    return node;
}

/* Unlinks node from its parent and frees it; it has no subscriber and no child. */
static void node_detach_free(struct trie *t, struct trie_node *node)
{
    struct kids *k = node->parent->kids;
    if (k->star == node)
        k->star = NULL;
    else if (k->gt == node)
        k->gt = NULL;
    else
        kids_remove_literal(t, k, node);
    if (!k->star && !k->gt && k->n == 0) {
        mem_free(k);
        t->bytes -= sizeof(*k);
        node->parent->kids = NULL;
    }
    node_release(t, node);
}

/* Frees empty nodes from node up towards the root. */
static void prune(struct trie *t, struct trie_node *node)
{
    while (node->parent && node->subs.n == 0 && !node->kids) {
        struct trie_node *parent = node->parent;
        node_detach_free(t, node);
        node = parent;
    }
}

static void node_free_tree(struct trie *t, struct trie_node *node)
{
    struct kids *k = node->kids;
    if (k) {
        if (k->star)
            node_free_tree(t, k->star);
        if (k->gt)
            node_free_tree(t, k->gt);
        uint32_t n;
        struct trie_node *const *kids = kids_view(k, &n);
        for (uint32_t i = 0; i < n; i++) {
            if (kids[i])
                node_free_tree(t, kids[i]);
        }
        if (k->cap) {
            t->bytes -= (size_t)k->cap * sizeof(*k->u.slots);
            mem_free(k->u.slots);
        }
        mem_free(k);
        t->bytes -= sizeof(*k);
    }
    node_release(t, node);
}

/* ------------------------------------------------------------- public API */

struct trie *trie_new(void)
{
    struct trie *t = mem_calloc(1, sizeof(*t));
    t->root = node_new(t, NULL, "", 0);
    return t;
}

void trie_free(struct trie *t)
{
    if (!t)
        return;
    node_free_tree(t, t->root);
    mem_free(t->hits);
    mem_free(t->pairs);
    mem_free(t);
}

struct trie_node *trie_subscribe(struct trie *t, const char *pattern, size_t len, void *sub,
                                 bool *first, bool *added)
{
    assert(sub != NULL && len > 0);
    struct trie_node *node = path(t, pattern, len, true);
    bool was_empty = node->subs.n == 0;
    size_t before = ptrset_heap_bytes(&node->subs);
    bool add = ptrset_add(&node->subs, sub);
    t->bytes += ptrset_heap_bytes(&node->subs) - before;
    if (add) {
        t->subscriptions++;
        if (was_empty)
            t->patterns++;
    }
    if (first)
        *first = add && was_empty;
    if (added)
        *added = add;
    return node;
}

int trie_unsubscribe_node(struct trie *t, struct trie_node *node, void *sub, bool *last)
{
    if (last)
        *last = false;
    size_t before = ptrset_heap_bytes(&node->subs);
    if (!ptrset_remove(&node->subs, sub))
        return -1;
    t->bytes -= before - ptrset_heap_bytes(&node->subs);
    t->subscriptions--;
    if (node->subs.n == 0) {
        t->patterns--;
        if (last)
            *last = true;
        prune(t, node);
    }
    return 0;
}

int trie_unsubscribe(struct trie *t, const char *pattern, size_t len, void *sub, bool *last)
{
    if (last)
        *last = false;
    struct trie_node *node = len ? path(t, pattern, len, false) : NULL;
    if (!node)
        return -1;
    return trie_unsubscribe_node(t, node, sub, last);
}

struct trie_node *trie_find(struct trie *t, const char *pattern, size_t len)
{
    struct trie_node *node = len ? path(t, pattern, len, false) : NULL;
    return node && node->subs.n ? node : NULL;
}

struct trie_node *trie_find_sub(struct trie *t, const char *pattern, size_t len, const void *sub)
{
    struct trie_node *node = trie_find(t, pattern, len);
    return node && ptrset_has(&node->subs, sub) ? node : NULL;
}

size_t trie_node_pattern(const struct trie_node *node, char *buf, size_t cap)
{
    size_t len = 0;
    for (const struct trie_node *n = node; n->parent; n = n->parent)
        len += n->tlen + (n->parent->parent ? 1 : 0);
    if (len >= cap) {
        if (cap > 0)
            buf[0] = '\0';
        return len;
    }
    size_t end = len;
    buf[len] = '\0';
    for (const struct trie_node *n = node; n->parent; n = n->parent) {
        end -= n->tlen;
        memcpy(buf + end, n->token, n->tlen);
        if (n->parent->parent)
            buf[--end] = '.';
    }
    return len;
}

size_t trie_node_count(const struct trie_node *node)
{
    return node->subs.n;
}

size_t trie_pattern_count(const struct trie *t)
{
    return t->patterns;
}

size_t trie_subscription_count(const struct trie *t)
{
    return t->subscriptions;
}

size_t trie_bytes(const struct trie *t)
{
    return t->bytes;
}

/* --------------------------------------------------------------- matching */

static void hit(struct trie *t, struct trie_node *node)
{
    if (t->nhits == t->hits_cap) {
        t->hits_cap = t->hits_cap ? t->hits_cap * 2 : 16;
        t->hits = mem_realloc(t->hits, t->hits_cap * sizeof(*t->hits));
    }
    t->hits[t->nhits++] = node;
}

/* Collects the nodes matching the topic rest [p, end); p == NULL: no token left. */
static void walk(struct trie *t, struct trie_node *node, const char *p, const char *end)
{
    if (!p) {
        if (node->subs.n)
            hit(t, node);
        return;
    }
    const struct kids *k = node->kids;
    if (!k)
        return;
    const char *dot = memchr(p, '.', (size_t)(end - p));
    size_t n = dot ? (size_t)(dot - p) : (size_t)(end - p);
    const char *next = dot ? dot + 1 : NULL;
    /* `>` takes this token and all after it: one or more. */
    if (k->gt && k->gt->subs.n)
        hit(t, k->gt);
    if (k->star)
        walk(t, k->star, next, end);
    struct trie_node *lit = kids_find(k, p, n, hash_fnv1a(p, n));
    if (lit)
        walk(t, lit, next, end);
}

static size_t collect(struct trie *t, const char *topic, size_t len)
{
    t->nhits = 0;
    if (len > 0)
        walk(t, t->root, topic, topic + len);
    return t->nhits;
}

/*
 * Calls fn for every sub of hit idx; with dedup, skips subs that an earlier hit
 * holds (those were already delivered).
 */
static size_t emit_node(struct trie *t, size_t idx, bool dedup, trie_match_fn *fn, void *arg,
                        bool *stop)
{
    const struct trie_node *node = t->hits[idx];
    uint32_t nslots;
    void *const *slots = ptrset_slots(&node->subs, &nslots);
    void *const *end = slots + nslots;
    size_t calls = 0;
    /* A pointer walk with the stop flag kept in a register: this loop runs
     * once per slot of a broadcast topic's subscriber table, per event. */
    for (void *const *p = slots; p < end; p++) {
        void *sub = *p;
        if (!sub)
            continue;
        bool seen = false;
        for (size_t j = 0; dedup && j < idx && !seen; j++)
            seen = ptrset_has(&t->hits[j]->subs, sub);
        if (seen)
            continue;
        calls++;
        if (fn(sub, node, arg)) {
            *stop = true;
            break;
        }
    }
    return calls;
}

static int by_count_desc(const void *a, const void *b)
{
    uint32_t na = (*(struct trie_node *const *)a)->subs.n;
    uint32_t nb = (*(struct trie_node *const *)b)->subs.n;
    return na < nb ? 1 : na > nb ? -1 : 0;
}

static int by_sub(const void *a, const void *b)
{
    uintptr_t pa = (uintptr_t)((const struct pair *)a)->sub;
    uintptr_t pb = (uintptr_t)((const struct pair *)b)->sub;
    return pa < pb ? -1 : pa > pb ? 1 : 0;
}

/* Many hits: sort every (sub, node) pair by sub and deliver the first of each run. */
static size_t emit_sorted(struct trie *t, trie_match_fn *fn, void *arg)
{
    size_t total = 0;
    for (size_t i = 0; i < t->nhits; i++)
        total += t->hits[i]->subs.n;
    if (total > t->pairs_cap) {
        t->pairs_cap = total;
        t->pairs = mem_realloc(t->pairs, total * sizeof(*t->pairs));
    }
    size_t k = 0;
    for (size_t i = 0; i < t->nhits; i++) {
        uint32_t nslots;
        void *const *slots = ptrset_slots(&t->hits[i]->subs, &nslots);
        for (uint32_t j = 0; j < nslots; j++) {
            if (slots[j])
                t->pairs[k++] = (struct pair){slots[j], t->hits[i]};
        }
    }
    qsort(t->pairs, k, sizeof(*t->pairs), by_sub);
    size_t calls = 0;
    for (size_t i = 0; i < k; i++) {
        if (i > 0 && t->pairs[i].sub == t->pairs[i - 1].sub)
            continue;
        calls++;
        if (fn(t->pairs[i].sub, t->pairs[i].node, arg))
            break;
    }
    return calls;
}

size_t trie_match(struct trie *t, const char *topic, size_t len, trie_match_fn *fn, void *arg)
{
    size_t nhits = collect(t, topic, len);
    if (nhits > DEDUP_PROBE)
        return emit_sorted(t, fn, arg);
    /* Biggest node first: its subscribers go out unchecked, the rest probe it. */
    if (nhits > 1)
        qsort(t->hits, nhits, sizeof(*t->hits), by_count_desc);
    size_t calls = 0;
    bool stop = false;
    for (size_t i = 0; i < nhits && !stop; i++)
        calls += emit_node(t, i, nhits > 1, fn, arg, &stop);
    return calls;
}

size_t trie_match_each(struct trie *t, const char *topic, size_t len, trie_match_fn *fn, void *arg)
{
    size_t nhits = collect(t, topic, len);
    size_t calls = 0;
    bool stop = false;
    for (size_t i = 0; i < nhits && !stop; i++)
        calls += emit_node(t, i, false, fn, arg, &stop);
    return calls;
}

/* ---------------------------------------------------------------- foreach */

/* Returns nonzero when fn asked to stop. */
static int foreach_node(struct trie_node *node, trie_match_fn *fn, void *arg)
{
    uint32_t nslots;
    void *const *slots = ptrset_slots(&node->subs, &nslots);
    for (uint32_t i = 0; i < nslots; i++) {
        if (slots[i] && fn(slots[i], node, arg))
            return 1;
    }
    struct kids *k = node->kids;
    if (!k)
        return 0;
    if (k->star && foreach_node(k->star, fn, arg))
        return 1;
    if (k->gt && foreach_node(k->gt, fn, arg))
        return 1;
    uint32_t n;
    struct trie_node *const *kids = kids_view(k, &n);
    for (uint32_t i = 0; i < n; i++) {
        if (kids[i] && foreach_node(kids[i], fn, arg))
            return 1;
    }
    return 0;
}

size_t trie_node_foreach(const struct trie_node *node, trie_match_fn *fn, void *arg)
{
    uint32_t nslots;
    void *const *slots = ptrset_slots(&node->subs, &nslots);
    size_t calls = 0;
    for (uint32_t i = 0; i < nslots; i++) {
        if (slots[i]) {
            calls++;
            if (fn(slots[i], node, arg))
                break;
        }
    }
    return calls;
}

void trie_foreach(struct trie *t, trie_match_fn *fn, void *arg)
{
    foreach_node(t->root, fn, arg);
}

#include "common/trie.h"

#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/mem.h"

/*
 * Topic trie: pattern -> set of opaque subscriber pointers.
 *
 * Data structure. One node per pattern prefix. A node is small (40 bytes
 * plus its pattern text) because the edge holds a million `user.<i>` leaves:
 *   - the full pattern prefix up to and including the node's token is stored
 *     inline (flexible array, NUL-terminated), so trie_node_pattern is free
 *     and the node's own token is the tail of that text;
 *   - children live in a separate `struct kids`, allocated only for inner
 *     nodes: the `*` and `>` children apart, literal children in an
 *     open-addressing table (linear probing, power-of-two size, starting at
 *     4 slots, grown at 3/4 load, shrunk at 1/8) keyed by token bytes, with
 *     the token's FNV-1a hash cached in the child node;
 *   - subscribers are a `struct subs` whose representation follows its
 *     capacity: one pointer inline (cap 1), a small array scanned linearly
 *     (cap 2..SUBS_LINEAR), or an open-addressing pointer set (larger caps),
 *     so subscribe/unsubscribe stay O(1) with 18,000 clients on one node.
 *   Both tables delete by backward shift, so there are no tombstones.
 *
 * Invariants. Every node but the root has a subscriber or a child; a node's
 * `kids` is NULL when it has no child at all (so that is the prune test);
 * a `>` node never has children. t->patterns counts nodes with subscribers,
 * t->subscriptions the (pattern, sub) pairs.
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
 * arrays (O(n) inserts under a million siblings), storing only the token per
 * node (every caller of trie_node_pattern would rebuild the text), and a
 * per-match "seen" hash set (costs on every multi-hit match even when the
 * big node makes membership checks free).
 */

#define SUBS_LINEAR    8 /* largest subscriber array scanned linearly */
#define KIDS_MIN_SLOTS 4 /* first literal-child table */
#define DEDUP_PROBE    8 /* up to this many hits dedup by membership probes */

struct subs {
    union {
        void *one;  /* cap == 1 */
        void **arr; /* cap 2..SUBS_LINEAR: array; larger: pointer set */
    } u;

    uint32_t n;
    uint32_t cap;
};

struct trie_node {
    struct trie_node *parent;
    struct kids *kids;
    struct subs subs;
    uint32_t plen;  /* bytes of pattern[] without the NUL */
    uint32_t hash;  /* FNV-1a of the node's own (last) token */
    char pattern[]; /* full pattern prefix, NUL-terminated */
};

struct kids {
    struct trie_node *star;
    struct trie_node *gt;
    struct trie_node **slots; /* literal children, NULL when cap == 0 */
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
    struct trie_node **hits; /* match scratch */
    size_t nhits;
    size_t hits_cap;
    struct pair *pairs; /* dedup scratch for many hits */
    size_t pairs_cap;
};

/* ---------------------------------------------------------------- hashing */

static uint32_t token_hash(const char *s, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 16777619u;
    }
    return h;
}

static uint32_t ptr_hash(const void *p)
{
    /* murmur3 fmix64: pointers differ mostly in middle bits. */
    uint64_t x = (uint64_t)(uintptr_t)p;
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return (uint32_t)x;
}

/* ------------------------------------------- open addressing, shared part */

typedef uint32_t slot_hash_fn(const void *entry);

static uint32_t node_slot_hash(const void *entry)
{
    return ((const struct trie_node *)entry)->hash;
}

/* Puts e in a table known to have room and not to hold e. */
static void slots_put(void **slots, uint32_t cap, void *e, slot_hash_fn *hf)
{
    uint32_t mask = cap - 1;
    uint32_t i = hf(e) & mask;
    while (slots[i])
        i = (i + 1) & mask;
    slots[i] = e;
}

/* Empties slot i and shifts later entries of its probe run back (no tombstones). */
static void slots_delete(void **slots, uint32_t cap, uint32_t i, slot_hash_fn *hf)
{
    uint32_t mask = cap - 1;
    uint32_t hole = i;
    for (uint32_t j = (i + 1) & mask; slots[j]; j = (j + 1) & mask) {
        uint32_t home = hf(slots[j]) & mask;
        /* Move j into the hole unless its home lies cyclically in (hole, j]. */
        if (((j - home) & mask) >= ((j - hole) & mask)) {
            slots[hole] = slots[j];
            hole = j;
        }
    }
    slots[hole] = NULL;
}

/* Takes old (cap old_cap, may be 0), returns a new table of new_cap slots. */
static void **slots_rehash(void **old, uint32_t old_cap, uint32_t new_cap, slot_hash_fn *hf)
{
    void **slots = mem_calloc(new_cap, sizeof(*slots));
    for (uint32_t i = 0; i < old_cap; i++) {
        if (old[i])
            slots_put(slots, new_cap, old[i], hf);
    }
    mem_free(old);
    return slots;
}

/* ------------------------------------------------------------ subscribers */

static uint32_t sub_slot_hash(const void *entry)
{
    return ptr_hash(entry);
}

static bool subs_is_set(const struct subs *s)
{
    return s->cap > SUBS_LINEAR;
}

/* Index of p in the array or set, or -1. */
static int64_t subs_find(const struct subs *s, const void *p)
{
    if (s->cap <= 1)
        return s->n == 1 && s->u.one == p ? 0 : -1;
    if (!subs_is_set(s)) {
        for (uint32_t i = 0; i < s->n; i++) {
            if (s->u.arr[i] == p)
                return i;
        }
        return -1;
    }
    uint32_t mask = s->cap - 1;
    for (uint32_t i = ptr_hash(p) & mask; s->u.arr[i]; i = (i + 1) & mask) {
        if (s->u.arr[i] == p)
            return i;
    }
    return -1;
}

/* The slots to scan for subscribers (NULL entries are holes), and their number. */
static void *const *subs_view(const struct subs *s, uint32_t *nslots)
{
    if (s->cap <= 1) {
        *nslots = s->n;
        return &s->u.one;
    }
    *nslots = subs_is_set(s) ? s->cap : s->n;
    return s->u.arr;
}

/* Adds p (not present, not NULL). */
static void subs_add(struct subs *s, void *p)
{
    if (s->n == 0) {
        s->u.one = p;
        s->cap = 1;
    } else if (s->cap == 1) {
        void **arr = mem_alloc(2 * sizeof(*arr));
        arr[0] = s->u.one;
        arr[1] = p;
        s->u.arr = arr;
        s->cap = 2;
    } else if (!subs_is_set(s) && s->n < s->cap) {
        s->u.arr[s->n] = p;
    } else if (!subs_is_set(s) && s->cap < SUBS_LINEAR) {
        s->cap *= 2;
        s->u.arr = mem_realloc(s->u.arr, s->cap * sizeof(void *));
        s->u.arr[s->n] = p;
    } else {
        /* A full array of SUBS_LINEAR becomes a set; a set grows at 3/4 load. */
        uint32_t used = subs_is_set(s) ? s->cap : s->n;
        if ((s->n + 1) * 4 > s->cap * 3 || !subs_is_set(s)) {
            s->u.arr = slots_rehash(s->u.arr, used, s->cap * 2, sub_slot_hash);
            s->cap *= 2;
        }
        slots_put(s->u.arr, s->cap, p, sub_slot_hash);
    }
    s->n++;
}

/* Turns a set that became small back into an array of SUBS_LINEAR. */
static void subs_set_to_array(struct subs *s)
{
    void **arr = mem_alloc(SUBS_LINEAR * sizeof(*arr));
    uint32_t k = 0;
    for (uint32_t i = 0; i < s->cap; i++) {
        if (s->u.arr[i])
            arr[k++] = s->u.arr[i];
    }
    mem_free(s->u.arr);
    s->u.arr = arr;
    s->cap = SUBS_LINEAR;
}

/* Removes the entry at index i (from subs_find). */
static void subs_remove_at(struct subs *s, uint32_t i)
{
    s->n--;
    if (s->cap == 1) {
        s->u.one = NULL;
        s->cap = 0;
    } else if (!subs_is_set(s)) {
        s->u.arr[i] = s->u.arr[s->n];
        if (s->n == 1) {
            void *last = s->u.arr[0];
            mem_free(s->u.arr);
            s->u.one = last;
            s->cap = 1;
        }
    } else {
        slots_delete(s->u.arr, s->cap, i, sub_slot_hash);
        if (s->n <= SUBS_LINEAR / 2) {
            subs_set_to_array(s);
        } else if (s->n * 8 < s->cap) {
            s->u.arr = slots_rehash(s->u.arr, s->cap, s->cap / 2, sub_slot_hash);
            s->cap /= 2;
        }
    }
}

static void subs_release(struct subs *s)
{
    if (s->cap > 1)
        mem_free(s->u.arr);
    memset(s, 0, sizeof(*s));
}

/* ------------------------------------------------------------------ nodes */

/* Returns a new node for pattern[0..plen), whose last token starts at tok. */
static struct trie_node *node_new(struct trie_node *parent, const char *pattern, size_t plen,
                                  size_t tok)
{
    assert(plen < UINT32_MAX);
    struct trie_node *n = mem_alloc(sizeof(*n) + plen + 1);
    n->parent = parent;
    n->kids = NULL;
    memset(&n->subs, 0, sizeof(n->subs));
    n->plen = (uint32_t)plen;
    n->hash = token_hash(pattern + tok, plen - tok);
    memcpy(n->pattern, pattern, plen);
    n->pattern[plen] = '\0';
    return n;
}

/* True when node's own token is tok[0..n). */
static bool node_token_is(const struct trie_node *node, const char *tok, size_t n, uint32_t h)
{
    if (node->hash != h || node->plen < n)
        return false;
    size_t start = node->plen - n;
    if (start > 0 && node->pattern[start - 1] != '.')
        return false;
    return memcmp(node->pattern + start, tok, n) == 0;
}

static struct trie_node *kids_find(const struct kids *k, const char *tok, size_t n, uint32_t h)
{
    if (!k || k->cap == 0)
        return NULL;
    uint32_t mask = k->cap - 1;
    for (uint32_t i = h & mask; k->slots[i]; i = (i + 1) & mask) {
        if (node_token_is(k->slots[i], tok, n, h))
            return k->slots[i];
    }
    return NULL;
}

static void kids_add_literal(struct kids *k, struct trie_node *child)
{
    if ((k->n + 1) * 4 > k->cap * 3) {
        uint32_t cap = k->cap ? k->cap * 2 : KIDS_MIN_SLOTS;
        k->slots =
            (struct trie_node **)slots_rehash((void **)k->slots, k->cap, cap, node_slot_hash);
        k->cap = cap;
    }
    slots_put((void **)k->slots, k->cap, child, node_slot_hash);
    k->n++;
}

static void kids_remove_literal(struct kids *k, const struct trie_node *child)
{
    uint32_t mask = k->cap - 1;
    uint32_t i = child->hash & mask;
    while (k->slots[i] != child) {
        assert(k->slots[i] != NULL);
        i = (i + 1) & mask;
    }
    slots_delete((void **)k->slots, k->cap, i, node_slot_hash);
    k->n--;
    if (k->n == 0) {
        mem_free(k->slots);
        k->slots = NULL;
        k->cap = 0;
    } else if (k->cap > KIDS_MIN_SLOTS && k->n * 8 < k->cap) {
        k->slots = (struct trie_node **)slots_rehash((void **)k->slots, k->cap, k->cap / 2,
                                                     node_slot_hash);
        k->cap /= 2;
    }
}

/* Returns the child of node for token pattern[tok..end), creating it when create is set. */
static struct trie_node *child_get(struct trie_node *node, const char *pattern, size_t tok,
                                   size_t end, bool create)
{
    const char *s = pattern + tok;
    size_t n = end - tok;
    bool star = n == 1 && s[0] == '*';
    bool gt = n == 1 && s[0] == '>';
    uint32_t h = token_hash(s, n);
    struct kids *k = node->kids;
    struct trie_node *child = NULL;
    if (k)
        child = star ? k->star : gt ? k->gt : kids_find(k, s, n, h);
    if (child || !create)
        return child;
    if (!k)
        k = node->kids = mem_calloc(1, sizeof(*k));
    child = node_new(node, pattern, end, tok);
    if (star)
        k->star = child;
    else if (gt)
        k->gt = child;
    else
        kids_add_literal(k, child);
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
        node = child_get(node, pattern, i, end, create);
        i = end + 1;
    }
    return node;
}

/* Unlinks node from its parent and frees it; it has no subscriber and no child. */
static void node_detach_free(struct trie_node *node)
{
    struct kids *k = node->parent->kids;
    if (k->star == node)
        k->star = NULL;
    else if (k->gt == node)
        k->gt = NULL;
    else
        kids_remove_literal(k, node);
    if (!k->star && !k->gt && k->n == 0) {
        mem_free(k);
        node->parent->kids = NULL;
    }
    subs_release(&node->subs);
    mem_free(node);
}

/* Frees empty nodes from node up towards the root. */
static void prune(struct trie_node *node)
{
    while (node->parent && node->subs.n == 0 && !node->kids) {
        struct trie_node *parent = node->parent;
        node_detach_free(node);
        node = parent;
    }
}

static void node_free_tree(struct trie_node *node)
{
    struct kids *k = node->kids;
    if (k) {
        if (k->star)
            node_free_tree(k->star);
        if (k->gt)
            node_free_tree(k->gt);
        for (uint32_t i = 0; i < k->cap; i++) {
            if (k->slots[i])
                node_free_tree(k->slots[i]);
        }
        mem_free(k->slots);
        mem_free(k);
    }
    subs_release(&node->subs);
    mem_free(node);
}

/* ------------------------------------------------------------- public API */

struct trie *trie_new(void)
{
    struct trie *t = mem_calloc(1, sizeof(*t));
    t->root = node_new(NULL, "", 0, 0);
    return t;
}

void trie_free(struct trie *t)
{
    if (!t)
        return;
    node_free_tree(t->root);
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
    bool add = subs_find(&node->subs, sub) < 0;
    if (add) {
        subs_add(&node->subs, sub);
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
    int64_t i = subs_find(&node->subs, sub);
    if (i < 0)
        return -1;
    subs_remove_at(&node->subs, (uint32_t)i);
    t->subscriptions--;
    if (node->subs.n == 0) {
        t->patterns--;
        if (last)
            *last = true;
        prune(node);
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

const char *trie_node_pattern(const struct trie_node *node, size_t *len)
{
    if (len)
        *len = node->plen;
    return node->pattern;
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
    struct trie_node *lit = kids_find(k, p, n, token_hash(p, n));
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
    void *const *slots = subs_view(&node->subs, &nslots);
    size_t calls = 0;
    for (uint32_t i = 0; i < nslots && !*stop; i++) {
        void *sub = slots[i];
        if (!sub)
            continue;
        bool seen = false;
        for (size_t j = 0; dedup && j < idx && !seen; j++)
            seen = subs_find(&t->hits[j]->subs, sub) >= 0;
        if (seen)
            continue;
        calls++;
        if (fn(sub, node, arg))
            *stop = true;
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
        void *const *slots = subs_view(&t->hits[i]->subs, &nslots);
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
    void *const *slots = subs_view(&node->subs, &nslots);
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
    for (uint32_t i = 0; i < k->cap; i++) {
        if (k->slots[i] && foreach_node(k->slots[i], fn, arg))
            return 1;
    }
    return 0;
}

void trie_foreach(struct trie *t, trie_match_fn *fn, void *arg)
{
    foreach_node(t->root, fn, arg);
}

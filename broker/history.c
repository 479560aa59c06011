/*
 * history.c - the last events of each topic, for HISTORY (docs/protocol.md
 * section 1.2 and 2.3).
 *
 * Data structure:
 *  - one struct hist_topic per topic with at least one retained event, in
 *    an open-addressing table (oaslots.c) keyed by the topic (FNV-1a, as
 *    seq_map.c); the topic's bytes live in the same allocation;
 *  - per topic a ring of struct hist_entry {frame, expiry}, grown by
 *    doubling up to the topic's size. The ring holds consecutive seqs
 *    (every event of a topic passes here, in order), so only the first
 *    seq is stored;
 *  - a binary min-heap of the topics keyed by the expiry of each topic's
 *    oldest event. The tick pops expired events from its top, and the
 *    memory cap evicts from its top too.
 *
 * An event is the link MSG frame the router made (`[7, topic, seq,
 * payload]`), shared with the fan-out by reference: storing it costs a
 * ring slot (16 bytes), and a HISTORY reply queues those same bytes.
 *
 * Accounting: bytes counts the topic structs with their keys, the rings'
 * capacity, the frames' allocations (header and bytes: once the fan-out
 * has written them, the store is usually their only holder), the slot
 * table and the heap. history-max-memory bounds that sum.
 *
 * Invariants: a topic in the table has count >= 1 and is in the heap at
 * heap_idx; ring[(start + i) % cap] holds seq first_seq + i; expiries
 * within a topic never decrease (same ttl, time never goes back).
 *
 * Rejected: copying payloads into a separate store (twice the memory for
 * an event in flight, and a reply would need encoding); a global list of
 * events in publish order for "oldest first" (two more pointers per
 * event); eviction under memory pressure by publish time rather than by
 * expiry: with one ttl they are the same order, and with per-prefix ttls
 * the event evicted is the one that would have gone soonest anyway.
 */
#include "broker/history.h"

#include <assert.h>
#include <string.h>

#include "common/frame.h"
#include "common/hash.h"
#include "common/mem.h"
#include "common/oaslots.h"
#include "common/topic.h"

#define MIN_SLOTS 64
#define MIN_RING  4

struct hist_entry {
    struct frame *f;
    uint64_t expires_ms;
};

struct hist_topic {
    struct hist_entry *ring;
    uint64_t first_seq; /* seq of ring[start] */
    uint64_t ttl_ms;
    uint32_t cap, start, count;
    uint32_t size; /* most events kept */
    uint32_t heap_idx;
    uint32_t hash;
    uint32_t len;
    char key[];
};

struct history {
    struct history_conf conf;
    struct hist_topic **slots;
    uint32_t cap;
    struct hist_topic **heap;
    size_t nheap, heap_cap;
    struct history_stats st;
    size_t topic_bytes; /* structs, keys, rings */
    size_t frame_bytes;
};

static uint32_t topic_hash(const void *e)
{
    return ((const struct hist_topic *)e)->hash;
}

/* ---------------------------------------------------------------------------
 * The heap of topics by the expiry of their oldest event.
 */

static uint64_t key_of(const struct hist_topic *t)
{
    return t->ring[t->start].expires_ms;
}

static void heap_set(struct history *h, size_t i, struct hist_topic *t)
{
    h->heap[i] = t;
    t->heap_idx = (uint32_t)i;
}

static void sift_up(struct history *h, size_t i)
{
    struct hist_topic *t = h->heap[i];

    while (i > 0 && key_of(h->heap[(i - 1) / 2]) > key_of(t)) {
        heap_set(h, i, h->heap[(i - 1) / 2]);
        i = (i - 1) / 2;
    }
    heap_set(h, i, t);
}

static void sift_down(struct history *h, size_t i)
{
    struct hist_topic *t = h->heap[i];

    for (;;) {
        size_t c = 2 * i + 1;

        if (c >= h->nheap)
            break;
        if (c + 1 < h->nheap && key_of(h->heap[c + 1]) < key_of(h->heap[c]))
            c++;
        if (key_of(h->heap[c]) >= key_of(t))
            break;
        heap_set(h, i, h->heap[c]);
        i = c;
    }
    heap_set(h, i, t);
}

static void heap_push(struct history *h, struct hist_topic *t)
{
    if (h->nheap == h->heap_cap) {
        h->heap_cap = h->heap_cap ? h->heap_cap * 2 : 64;
        h->heap = mem_realloc(h->heap, h->heap_cap * sizeof(*h->heap));
    }
    heap_set(h, h->nheap++, t);
    sift_up(h, h->nheap - 1);
}

static void heap_remove(struct history *h, struct hist_topic *t)
{
    size_t i = t->heap_idx;
    struct hist_topic *last = h->heap[--h->nheap];

    if (last == t)
        return;
    heap_set(h, i, last);
    sift_up(h, i);
    sift_down(h, last->heap_idx);
}

/* ---------------------------------------------------------------------------
 * The table of topics.
 */

static uint32_t find(const struct history *h, uint32_t hash, const char *topic, size_t len)
{
    uint32_t mask = h->cap - 1;
    uint32_t i = hash & mask;

    for (;;) {
        struct hist_topic *t = h->slots[i];

        if (!t || (t->hash == hash && t->len == len && memcmp(t->key, topic, len) == 0))
            return i;
        i = (i + 1) & mask;
    }
}

static struct hist_topic *lookup(const struct history *h, const char *topic, size_t len)
{
    return h->slots[find(h, hash_fnv1a(topic, len), topic, len)];
}

static void resize(struct history *h, uint32_t cap)
{
    h->slots = (struct hist_topic **)oaslots_rehash((void **)h->slots, h->cap, cap, topic_hash);
    h->cap = cap;
}

static size_t topic_bytes(const struct hist_topic *t)
{
    return sizeof(*t) + t->len + (size_t)t->cap * sizeof(struct hist_entry);
}

static struct hist_topic *topic_new(struct history *h, const char *topic, size_t len, size_t size,
                                    uint64_t ttl_ms)
{
    struct hist_topic *t = mem_calloc(1, sizeof(*t) + len);

    t->hash = hash_fnv1a(topic, len);
    t->len = (uint32_t)len;
    memcpy(t->key, topic, len);
    t->size = (uint32_t)size;
    t->ttl_ms = ttl_ms;
    t->cap = size < MIN_RING ? (uint32_t)size : MIN_RING;
    t->ring = mem_alloc((size_t)t->cap * sizeof(*t->ring));
    if ((h->st.topics + 1) * 10 > (uint64_t)h->cap * 7)
        resize(h, h->cap * 2);
    h->slots[find(h, t->hash, topic, len)] = t;
    h->st.topics++;
    h->topic_bytes += topic_bytes(t);
    return t;
}

/* t is empty: out of the table and freed (it is not in the heap). */
static void topic_free(struct history *h, struct hist_topic *t)
{
    assert(t->count == 0);
    oaslots_delete((void **)h->slots, h->cap, find(h, t->hash, t->key, t->len), topic_hash);
    h->topic_bytes -= topic_bytes(t);
    h->st.topics--;
    mem_free(t->ring);
    mem_free(t);
    if (h->cap > MIN_SLOTS && (size_t)h->st.topics * 8 < h->cap)
        resize(h, h->cap / 2);
}

/* ---------------------------------------------------------------------------
 * Events.
 */

static size_t frame_bytes(const struct frame *f)
{
    return sizeof(*f) + f->len;
}

/* Takes t's oldest event out for reason r; the caller fixes t's heap place. */
static void pop_front(struct history *h, struct hist_topic *t, enum history_evict r)
{
    struct hist_entry *e = &t->ring[t->start];

    h->frame_bytes -= frame_bytes(e->f);
    frame_unref(&e->f);
    t->start = (t->start + 1) % t->cap;
    t->first_seq++;
    t->count--;
    h->st.events--;
    h->st.evicted[r]++;
}

/*
 * Drops t's oldest event for reason r. Returns false when that emptied t,
 * which then left the heap and was freed; otherwise t's heap place follows
 * its new oldest event.
 */
static bool drop_oldest(struct history *h, struct hist_topic *t, enum history_evict r)
{
    pop_front(h, t, r);
    if (t->count == 0) {
        heap_remove(h, t);
        topic_free(h, t);
        return false;
    }
    sift_down(h, t->heap_idx);
    return true;
}

/* Doubles t's ring (up to its size), keeping the order. */
static void ring_grow(struct history *h, struct hist_topic *t)
{
    uint32_t cap = t->cap * 2 > t->size ? t->size : t->cap * 2;
    struct hist_entry *ring = mem_alloc((size_t)cap * sizeof(*ring));

    for (uint32_t i = 0; i < t->count; i++)
        ring[i] = t->ring[(t->start + i) % t->cap];
    mem_free(t->ring);
    h->topic_bytes += (size_t)(cap - t->cap) * sizeof(*ring);
    t->ring = ring;
    t->cap = cap;
    t->start = 0;
}

static size_t bytes_now(const struct history *h)
{
    return h->topic_bytes + h->frame_bytes + (size_t)h->cap * sizeof(*h->slots) +
           h->heap_cap * sizeof(*h->heap);
}

static void evict_memory(struct history *h)
{
    while (h->nheap > 0 && bytes_now(h) > h->conf.max_bytes)
        drop_oldest(h, h->heap[0], HISTORY_EVICT_MEMORY);
}

/* Drops t's events expired at now_ms; returns false when t is gone. */
static bool expire_topic(struct history *h, struct hist_topic *t, uint64_t now_ms)
{
    while (t->ring[t->start].expires_ms <= now_ms) {
        if (!drop_oldest(h, t, HISTORY_EVICT_TTL))
            return false;
    }
    return true;
}

/* Drops every event of t (its sequence started again); t is freed. */
static void drop_all(struct history *h, struct hist_topic *t, enum history_evict r)
{
    while (drop_oldest(h, t, r))
        ;
}

/* ---------------------------------------------------------------------------
 * API.
 */

struct history *history_new(const struct history_conf *c)
{
    struct history *h = mem_calloc(1, sizeof(*h));

    h->conf = *c;
    h->cap = MIN_SLOTS;
    h->slots = mem_calloc(h->cap, sizeof(*h->slots));
    return h;
}

void history_free(struct history *h)
{
    if (!h)
        return;
    while (h->nheap > 0)
        drop_all(h, h->heap[0], HISTORY_EVICT_SIZE);
    mem_free(h->slots);
    mem_free(h->heap);
    mem_free(h);
}

/* The literal bytes before a pattern's first wildcard token: its specificity. */
static size_t literal_prefix(const char *p, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if ((p[i] == '*' || p[i] == '>') && (i == 0 || p[i - 1] == '.'))
            return i;
    }
    return len;
}

/* The most specific rule matching topic, or NULL (the last given wins a tie). */
static const struct history_rule *rule_for(const struct history *h, const char *topic, size_t len)
{
    const struct history_rule *best = NULL;
    size_t best_len = 0;

    for (size_t i = 0; i < h->conf.nrules; i++) {
        const struct history_rule *r = &h->conf.rules[i];
        size_t lit = literal_prefix(r->pattern, r->plen);

        if ((best == NULL || lit >= best_len) && topic_matches(r->pattern, r->plen, topic, len)) {
            best = r;
            best_len = lit;
        }
    }
    return best;
}

size_t history_size_for(const struct history *h, const char *topic, size_t len)
{
    const struct history_rule *r = rule_for(h, topic, len);

    return r ? r->size : h->conf.size;
}

/* The topic's struct for a new event seq, or NULL when the topic keeps no history. */
static struct hist_topic *topic_for_add(struct history *h, const char *topic, size_t len,
                                        uint64_t seq)
{
    struct hist_topic *t = lookup(h, topic, len);
    const struct history_rule *r;
    size_t size;

    if (t && seq == t->first_seq + t->count)
        return t;
    if (t)
        drop_all(h, t, HISTORY_EVICT_RESET);
    r = rule_for(h, topic, len);
    size = r ? r->size : h->conf.size;
    if (size == 0)
        return NULL;
    t = topic_new(h, topic, len, size, r ? r->ttl_ms : h->conf.ttl_ms);
    t->first_seq = seq;
    return t;
}

void history_add(struct history *h, const char *topic, size_t len, uint64_t seq, struct frame *f,
                 uint64_t now_ms)
{
    struct hist_topic *t = topic_for_add(h, topic, len, seq);
    struct hist_entry *e;
    bool in_heap;

    if (!t)
        return;
    in_heap = t->count > 0;
    if (t->count == t->size)
        pop_front(h, t, HISTORY_EVICT_SIZE);
    else if (t->count == t->cap)
        ring_grow(h, t);
    e = &t->ring[(t->start + t->count) % t->cap];
    e->f = frame_ref(f);
    e->expires_ms = now_ms + t->ttl_ms;
    h->frame_bytes += frame_bytes(f);
    h->st.events++;
    t->count++;
    if (in_heap)
        sift_down(h, t->heap_idx);
    else
        heap_push(h, t);
    evict_memory(h);
}

bool history_range(struct history *h, const char *topic, size_t len, uint64_t after, uint64_t head,
                   uint64_t now_ms, history_each_fn *fn, void *arg)
{
    struct hist_topic *t;

    if (after > head)
        return false;
    if (after == head)
        return true;
    t = lookup(h, topic, len);
    if (!t || !expire_topic(h, t, now_ms))
        return false;
    /* Retained: [first_seq, first_seq + count); needed: (after, head]. */
    if (after + 1 < t->first_seq || head > t->first_seq + t->count - 1)
        return false;
    for (uint64_t s = after + 1; fn && s <= head; s++)
        fn(arg, t->ring[(t->start + (s - t->first_seq)) % t->cap].f);
    return true;
}

size_t history_expire(struct history *h, uint64_t now_ms)
{
    uint64_t before = h->st.evicted[HISTORY_EVICT_TTL];

    while (h->nheap > 0 && key_of(h->heap[0]) <= now_ms)
        drop_oldest(h, h->heap[0], HISTORY_EVICT_TTL);
    return (size_t)(h->st.evicted[HISTORY_EVICT_TTL] - before);
}

void history_stats(const struct history *h, struct history_stats *out)
{
    *out = h->st;
    out->bytes = bytes_now(h);
}

const char *history_evict_name(enum history_evict r)
{
    static const char *const names[] = {"size", "ttl", "memory", "reset"};

    return r < HISTORY_EVICT_COUNT ? names[r] : "unknown";
}

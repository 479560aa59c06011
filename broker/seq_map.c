/*
 * seq_map.c - topic -> last sequence: a hash table in recency order.
 *
 * Every topic ever published used to stay here for the life of the
 * broker: 300,000 PUBLISH to distinct topics held 126 MB for good. Now the
 * entries are also on a list in order of their last publish (most recent at
 * the tail), which makes both bounds O(1) per topic: at max_topics the head
 * (least recently published) is forgotten to make room, and the expiry
 * sweep pops heads while they are older than the ttl.
 *
 * Table: open addressing (oaslots.c), a pointer per slot, grown at 70%
 * load and shrunk at 1/8 (never below 64 slots); each entry is one
 * allocation holding its key, with the key's hash cached so a lookup
 * compares hashes before bytes. About 40 bytes plus the topic per entry,
 * plus ~11 bytes of slots. The hash is FNV-1a (common/hash.h), unkeyed:
 * topics are short and this is not exposed to hash flooding beyond what
 * publishers (trusted storage services) can do.
 *
 * Semantics a client sees: a topic's seq counts up by one per event while
 * the broker remembers the topic; once forgotten, it starts again at 1.
 * Rejected: never forgetting (unbounded memory for a publisher's typo
 * loop), and keeping sequences in trie nodes (published topics need not
 * have subscribers, and the trie prunes empty nodes).
 */
#include "broker/seq_map.h"

#include <string.h>

#include "common/hash.h"
#include "common/mem.h"
#include "common/oaslots.h"

#define MIN_SLOTS 64

struct seq_entry {
    struct seq_entry *older, *newer; /* recency list */
    uint64_t seq;
    uint64_t last_ms; /* last publish */
    uint32_t hash;
    uint32_t len;
    char key[];
};

struct seq_map {
    struct seq_entry **slots;
    uint32_t cap; /* power of two */
    size_t count;
    size_t max_topics;
    uint64_t ttl_ms;
    uint64_t forgotten;
    size_t entry_bytes; /* of the entries (keys included), not the slot table */
    struct seq_entry *oldest, *newest;
};

static uint32_t entry_hash(const void *e)
{
    return ((const struct seq_entry *)e)->hash;
}

struct seq_map *seq_map_new(size_t max_topics, uint64_t ttl_ms)
{
    struct seq_map *m = mem_calloc(1, sizeof(*m));

    m->cap = MIN_SLOTS;
    m->slots = mem_calloc(m->cap, sizeof(*m->slots));
    m->max_topics = max_topics > 0 ? max_topics : 1;
    m->ttl_ms = ttl_ms;
    return m;
}

void seq_map_free(struct seq_map *m)
{
    if (!m)
        return;
    for (uint32_t i = 0; i < m->cap; i++)
        mem_free(m->slots[i]);
    mem_free(m->slots);
    mem_free(m);
}

/* The slot holding topic, or the empty slot where it would go. */
static uint32_t find(const struct seq_map *m, uint32_t h, const char *topic, size_t len)
{
    uint32_t mask = m->cap - 1;
    uint32_t i = h & mask;

    for (;;) {
        struct seq_entry *e = m->slots[i];

        if (!e || (e->hash == h && e->len == len && memcmp(e->key, topic, len) == 0))
            return i;
        i = (i + 1) & mask;
    }
}

static void resize(struct seq_map *m, uint32_t cap)
{
    m->slots = (struct seq_entry **)oaslots_rehash((void **)m->slots, m->cap, cap, entry_hash);
    m->cap = cap;
}

static void list_unlink(struct seq_map *m, struct seq_entry *e)
{
    if (e->older)
        e->older->newer = e->newer;
    else
        m->oldest = e->newer;
    if (e->newer)
        e->newer->older = e->older;
    else
        m->newest = e->older;
    e->older = e->newer = NULL;
}

static void list_append(struct seq_map *m, struct seq_entry *e)
{
    e->older = m->newest;
    e->newer = NULL;
    if (m->newest)
        m->newest->newer = e;
    else
        m->oldest = e;
    m->newest = e;
}

/* Forgets e: out of the list and the table, freed. */
static void forget(struct seq_map *m, struct seq_entry *e)
{
    uint32_t i = find(m, e->hash, e->key, e->len);

    list_unlink(m, e);
    oaslots_delete((void **)m->slots, m->cap, i, entry_hash);
    m->entry_bytes -= sizeof(*e) + e->len;
    mem_free(e);
    m->count--;
    m->forgotten++;
    if (m->cap > MIN_SLOTS && (size_t)m->count * 8 < m->cap)
        resize(m, m->cap / 2);
}

uint64_t seq_map_next(struct seq_map *m, const char *topic, size_t len, uint64_t now_ms)
{
    uint32_t h = hash_fnv1a(topic, len);
    uint32_t i = find(m, h, topic, len);
    struct seq_entry *e = m->slots[i];

    if (e) {
        if (e == m->newest) { /* a busy topic: already last */
            e->last_ms = now_ms;
            return ++e->seq;
        }
        list_unlink(m, e);
    } else {
        if (m->count >= m->max_topics)
            forget(m, m->oldest);
        if ((m->count + 1) * 10 > (size_t)m->cap * 7)
            resize(m, m->cap * 2);
        e = mem_alloc(sizeof(*e) + len);
        m->entry_bytes += sizeof(*e) + len;
        e->seq = 0;
        e->hash = h;
        e->len = (uint32_t)len;
        memcpy(e->key, topic, len);
        m->slots[find(m, h, topic, len)] = e;
        m->count++;
    }
    e->last_ms = now_ms;
    list_append(m, e);
    return ++e->seq;
}

uint64_t seq_map_last(const struct seq_map *m, const char *topic, size_t len)
{
    struct seq_entry *e = m->slots[find(m, hash_fnv1a(topic, len), topic, len)];

    return e ? e->seq : 0;
}

size_t seq_map_expire(struct seq_map *m, uint64_t now_ms)
{
    size_t n = 0;

    if (m->ttl_ms == 0)
        return 0;
    while (m->oldest && now_ms >= m->oldest->last_ms && now_ms - m->oldest->last_ms >= m->ttl_ms) {
        forget(m, m->oldest);
        n++;
    }
    return n;
}

size_t seq_map_count(const struct seq_map *m)
{
    return m->count;
}

size_t seq_map_bytes(const struct seq_map *m)
{
    return m->entry_bytes + (size_t)m->cap * sizeof(*m->slots);
}

uint64_t seq_map_forgotten(const struct seq_map *m)
{
    return m->forgotten;
}

/*
 * seq_map.c - topic -> last sequence, an open-addressing hash table.
 *
 * Keys are copied into one allocation with their entry's hash cached, so a
 * lookup compares hashes before bytes. Linear probing, grown at 70% load;
 * entries are never removed (a topic's sequence must not restart while the
 * broker runs, or a resuming client would see positions repeat). Memory is
 * one pointer per slot plus one small allocation per topic.
 * Rejected: storing sequences in trie nodes (published topics need not
 * have subscribers, and the trie prunes empty nodes).
 */
#include "broker/seq_map.h"

#include <string.h>

#include "common/mem.h"

struct seq_entry {
    uint64_t hash;
    uint64_t seq;
    size_t len;
    char key[];
};

struct seq_map {
    struct seq_entry **slots;
    size_t cap; /* power of two */
    size_t count;
};

/* FNV-1a, 64-bit: topics are short and this is not exposed to hash flooding
 * beyond what publishers (trusted storage services) can do. */
static uint64_t hash_bytes(const char *s, size_t len)
{
    uint64_t h = 1469598103934665603ull;

    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ull;
    }
    return h;
}

struct seq_map *seq_map_new(void)
{
    struct seq_map *m = mem_calloc(1, sizeof(*m));

    m->cap = 64;
    m->slots = mem_calloc(m->cap, sizeof(*m->slots));
    return m;
}

void seq_map_free(struct seq_map *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->cap; i++)
        mem_free(m->slots[i]);
    mem_free(m->slots);
    mem_free(m);
}

static struct seq_entry **find(const struct seq_map *m, uint64_t h, const char *topic, size_t len)
{
    size_t i = (size_t)h & (m->cap - 1);

    for (;;) {
        struct seq_entry *e = m->slots[i];

        if (!e || (e->hash == h && e->len == len && memcmp(e->key, topic, len) == 0))
            return &m->slots[i];
        i = (i + 1) & (m->cap - 1);
    }
}

static void grow(struct seq_map *m)
{
    struct seq_entry **old = m->slots;
    size_t oldcap = m->cap;

    m->cap *= 2;
    m->slots = mem_calloc(m->cap, sizeof(*m->slots));
    for (size_t i = 0; i < oldcap; i++) {
        if (old[i])
            *find(m, old[i]->hash, old[i]->key, old[i]->len) = old[i];
    }
    mem_free(old);
}

uint64_t seq_map_next(struct seq_map *m, const char *topic, size_t len)
{
    uint64_t h = hash_bytes(topic, len);
    struct seq_entry **slot = find(m, h, topic, len);
    struct seq_entry *e = *slot;

    if (!e) {
        if ((m->count + 1) * 10 > m->cap * 7) {
            grow(m);
            slot = find(m, h, topic, len);
        }
        e = mem_alloc(sizeof(*e) + len);
        e->hash = h;
        e->seq = 0;
        e->len = len;
        memcpy(e->key, topic, len);
        *slot = e;
        m->count++;
    }
    return ++e->seq;
}

uint64_t seq_map_last(const struct seq_map *m, const char *topic, size_t len)
{
    struct seq_entry *e = *find(m, hash_bytes(topic, len), topic, len);

    return e ? e->seq : 0;
}

size_t seq_map_count(const struct seq_map *m)
{
    return m->count;
}

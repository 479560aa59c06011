#ifndef HERALD_COMMON_PTRSET_H
#define HERALD_COMMON_PTRSET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * A set of non-NULL pointers, 16 bytes when it holds at most one: the
 * subscribers of a trie node, and the trie nodes a connection holds (its
 * subscriptions). The representation follows the capacity:
 *   cap 0        empty;
 *   cap 1        the one pointer inline (no allocation);
 *   cap 2..8     a small array, scanned linearly;
 *   cap > 8      an open-addressing set (linear probing, power-of-two size,
 *                grown at 3/4 load, shrunk at 1/8, deletion by backward
 *                shift so there are no tombstones).
 * So add, remove and membership are O(1) at any size, and the usual cases
 * (one subscriber, one subscription) cost no allocation at all.
 * Zero-initialised is empty. Pure code; not thread-safe.
 */
struct ptrset {
    union {
        void *one;  /* cap == 1 */
        void **arr; /* cap 2..PTRSET_LINEAR: array; larger: open-addressing slots */
    } u;

    uint32_t n;   /* pointers held */
    uint32_t cap; /* 0, 1, array length or table size */
};

#define PTRSET_LINEAR 8 /* largest array scanned linearly */

/* True when p is in s. */
bool ptrset_has(const struct ptrset *s, const void *p);

/* Adds p (not NULL). Returns true when added, false when it was already there. */
bool ptrset_add(struct ptrset *s, void *p);

/* Removes p. Returns true when removed, false when it was not there. */
bool ptrset_remove(struct ptrset *s, const void *p);

/* Frees what s allocated and empties it. */
void ptrset_clear(struct ptrset *s);

/* Number of pointers held. */
static inline uint32_t ptrset_count(const struct ptrset *s)
{
    return s->n;
}

/*
 * The slots to scan to visit every pointer: *nslots entries, some of them
 * NULL (holes in a table). Borrowed until s next changes; do not add to or
 * remove from s while scanning them. Inline: the fan-out scans a topic's
 * subscribers through it for every event.
 */
static inline void *const *ptrset_slots(const struct ptrset *s, uint32_t *nslots)
{
    if (s->cap <= 1) {
        *nslots = s->n;
        return &s->u.one;
    }
    *nslots = s->cap > PTRSET_LINEAR ? s->cap : s->n;
    return s->u.arr;
}

/* Heap bytes s holds (0 when empty or holding one pointer). */
size_t ptrset_heap_bytes(const struct ptrset *s);

#endif

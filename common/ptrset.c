/*
 * ptrset.c - a set of pointers that is free when small and O(1) when large.
 *
 * One structure serves two sides of every subscription: a trie node's
 * subscribers (one connection on a user's topic, 18,000 on a broadcast
 * topic) and a connection's subscriptions (one pattern for most browser
 * tabs, 100,000 for a RESP client that PSUBSCRIBEs in bulk). Both must
 * answer "is p in here?" and "remove p" in O(1) at any size - a linear
 * scan of a client's 100,000 patterns per PUNSUBSCRIBE argument stalled the
 * broker for a minute - and cost nothing extra in the common case, where
 * an idle connection's whole state is counted in bytes (docs/architecture.md
 * §4.4).
 *
 * Representation by capacity (see ptrset.h). An array of up to
 * PTRSET_LINEAR pointers is scanned (one cache line); past that the same
 * memory becomes an open-addressing table (oaslots.c). A table that falls
 * to PTRSET_LINEAR / 2 entries becomes an array again, and one holding a
 * single pointer gives its memory back.
 *
 * Rejected: a sorted array (O(n) inserts), a chained hash (an allocation
 * per entry), and a separate index map next to a plain array (twice the
 * memory for the large case, and a second structure to keep in sync).
 */
#include "common/ptrset.h"

#include <string.h>

#include "common/mem.h"
#include "common/oaslots.h"

static uint32_t entry_hash(const void *entry)
{
    return oaslots_ptr_hash(entry);
}

static bool is_table(const struct ptrset *s)
{
    return s->cap > PTRSET_LINEAR;
}

/* Index of p in the array or table, or -1. */
static int64_t find(const struct ptrset *s, const void *p)
{
    uint32_t mask;

    if (s->cap <= 1)
        return s->n == 1 && s->u.one == p ? 0 : -1;
    if (!is_table(s)) {
        for (uint32_t i = 0; i < s->n; i++) {
            if (s->u.arr[i] == p)
                return i;
        }
        return -1;
    }
    mask = s->cap - 1;
    for (uint32_t i = oaslots_ptr_hash(p) & mask; s->u.arr[i]; i = (i + 1) & mask) {
        if (s->u.arr[i] == p)
            return i;
    }
    return -1;
}

bool ptrset_has(const struct ptrset *s, const void *p)
{
    return find(s, p) >= 0;
}

/* Adds p, known to be absent. */
static void add_new(struct ptrset *s, void *p)
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
    } else if (!is_table(s) && s->n < s->cap) {
        s->u.arr[s->n] = p;
    } else if (!is_table(s) && s->cap < PTRSET_LINEAR) {
        s->cap *= 2;
        s->u.arr = mem_realloc(s->u.arr, s->cap * sizeof(void *));
        s->u.arr[s->n] = p;
    } else {
        /* A full array of PTRSET_LINEAR becomes a table; a table grows at 3/4. */
        uint32_t used = is_table(s) ? s->cap : s->n;

        if (!is_table(s) || (s->n + 1) * 4 > s->cap * 3) {
            s->u.arr = oaslots_rehash(s->u.arr, used, s->cap * 2, entry_hash);
            s->cap *= 2;
        }
        oaslots_put(s->u.arr, s->cap, p, entry_hash);
    }
    s->n++;
}

bool ptrset_add(struct ptrset *s, void *p)
{
    if (find(s, p) >= 0)
        return false;
    add_new(s, p);
    return true;
}

/* Turns a table that became small back into an array of PTRSET_LINEAR. */
static void table_to_array(struct ptrset *s)
{
    void **arr = mem_alloc(PTRSET_LINEAR * sizeof(*arr));
    uint32_t k = 0;

    for (uint32_t i = 0; i < s->cap; i++) {
        if (s->u.arr[i])
            arr[k++] = s->u.arr[i];
    }
    mem_free(s->u.arr);
    s->u.arr = arr;
    s->cap = PTRSET_LINEAR;
}

static void remove_at(struct ptrset *s, uint32_t i)
{
    s->n--;
    if (s->cap == 1) {
        s->u.one = NULL;
        s->cap = 0;
    } else if (!is_table(s)) {
        s->u.arr[i] = s->u.arr[s->n];
        if (s->n == 1) {
            void *last = s->u.arr[0];

            mem_free(s->u.arr);
            s->u.one = last;
            s->cap = 1;
        }
    } else {
        oaslots_delete(s->u.arr, s->cap, i, entry_hash);
        if (s->n <= PTRSET_LINEAR / 2) {
            table_to_array(s);
        } else if (s->n * 8 < s->cap) {
            s->u.arr = oaslots_rehash(s->u.arr, s->cap, s->cap / 2, entry_hash);
            s->cap /= 2;
        }
    }
}

bool ptrset_remove(struct ptrset *s, const void *p)
{
    int64_t i = find(s, p);

    if (i < 0)
        return false;
    remove_at(s, (uint32_t)i);
    return true;
}

void ptrset_clear(struct ptrset *s)
{
    if (s->cap > 1)
        mem_free(s->u.arr);
    memset(s, 0, sizeof(*s));
}

size_t ptrset_heap_bytes(const struct ptrset *s)
{
    return s->cap > 1 ? (size_t)s->cap * sizeof(void *) : 0;
}

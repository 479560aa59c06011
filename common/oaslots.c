/*
 * oaslots.c - the open-addressing primitives ptrset.c and trie.c share.
 *
 * Backward-shift deletion keeps every probe run contiguous, so a lookup
 * stops at the first NULL and there is no tombstone to sweep: a table that
 * sees millions of adds and removes (subscribers of a broadcast topic
 * coming and going) never degrades.
 */
#include "common/oaslots.h"

#include <stddef.h>

#include "common/mem.h"

void oaslots_put(void **slots, uint32_t cap, void *e, oaslots_hash_fn *hf)
{
    uint32_t mask = cap - 1;
    uint32_t i = hf(e) & mask;

    while (slots[i])
        i = (i + 1) & mask;
    slots[i] = e;
}

void oaslots_delete(void **slots, uint32_t cap, uint32_t i, oaslots_hash_fn *hf)
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

void **oaslots_rehash(void **old, uint32_t old_cap, uint32_t new_cap, oaslots_hash_fn *hf)
{
    void **slots = mem_calloc(new_cap, sizeof(*slots));

    for (uint32_t i = 0; i < old_cap; i++) {
        if (old[i])
            oaslots_put(slots, new_cap, old[i], hf);
    }
    mem_free(old);
    return slots;
}

uint32_t oaslots_ptr_hash(const void *p)
{
    uint64_t x = (uint64_t)(uintptr_t)p;

    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return (uint32_t)x;
}

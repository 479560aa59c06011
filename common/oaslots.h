#ifndef HERALD_COMMON_OASLOTS_H
#define HERALD_COMMON_OASLOTS_H

#include <stdint.h>

/*
 * Open-addressing tables of non-NULL pointers: linear probing over a
 * power-of-two array, NULL marking an empty slot, deletion by backward
 * shift (no tombstones). The caller keeps the size and count and decides
 * when to grow; these helpers only place, remove and rehash. Used by
 * ptrset.c (pointer sets, hashed by address) and trie.c (literal children,
 * hashed by token). Pure code.
 */

/* The home hash of a stored entry. */
typedef uint32_t oaslots_hash_fn(const void *entry);

/* Puts e into a table of cap slots known to have room and not to hold e. */
void oaslots_put(void **slots, uint32_t cap, void *e, oaslots_hash_fn *hf);

/* Empties slot i and shifts later entries of its probe run back. */
void oaslots_delete(void **slots, uint32_t cap, uint32_t i, oaslots_hash_fn *hf);

/*
 * Takes old (old_cap slots, may be NULL when old_cap is 0) and returns a new
 * table of new_cap slots holding the same entries; old is freed.
 */
void **oaslots_rehash(void **old, uint32_t old_cap, uint32_t new_cap, oaslots_hash_fn *hf);

/* The murmur3 fmix64 of a pointer: addresses differ mostly in middle bits. */
uint32_t oaslots_ptr_hash(const void *p);

#endif

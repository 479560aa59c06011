#ifndef HERALD_COMMON_HASH_H
#define HERALD_COMMON_HASH_H

#include <stddef.h>
#include <stdint.h>

/*
 * FNV-1a, 32-bit: the hash of the trie's child tables (one topic token,
 * common/trie.c) and of the broker's sequence map (one topic,
 * broker/seq_map.c). Keys are short, so a byte-at-a-time hash with no
 * setup does; inline because the trie runs it once per token of every
 * match. Unkeyed (no per-process seed).
 */
static inline uint32_t hash_fnv1a(const void *p, size_t n)
{
    const unsigned char *s = p;
    uint32_t h = 2166136261u;

    for (size_t i = 0; i < n; i++) {
        h ^= s[i];
        h *= 16777619u;
    }
    return h;
}

#endif

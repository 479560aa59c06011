#ifndef HERALD_EDGE_POOL_H
#define HERALD_EDGE_POOL_H

#include <stddef.h>
#include <stdint.h>

/*
 * Per-worker buffer pool (docs/architecture.md §4.1, §6.3). A connection borrows a
 * chunk only while it holds an incomplete frame, message or handshake, and
 * an output evbuffer only while the kernel refuses bytes; both go back the
 * moment they drain. Size classes 512 B, 2 KiB, 8 KiB, 32 KiB, 128 KiB;
 * larger requests are plain mem_alloc'd (and still counted). Free chunks are
 * cached per class up to a byte cap, beyond which they are freed. Never
 * crosses workers: no locking.
 */

struct evbuffer;
struct pool;

/* A borrowed byte buffer: data[0..len) used, cap bytes available. */
struct chunk {
    uint32_t len;
    uint32_t cap;
    uint8_t cls; /* size class, or POOL_OVERSIZE */
    uint8_t data[];
};

#define POOL_CLASSES  5
#define POOL_OVERSIZE 0xff

struct pool_stats {
    uint64_t chunks_in_use; /* borrowed and not returned */
    uint64_t chunk_bytes_in_use;
    uint64_t chunks_cached; /* free, kept for reuse */
    uint64_t evbuffers_in_use;
    uint64_t evbuffers_cached;
    uint64_t gets; /* total chunk + evbuffer borrows */
};

/* Returns a new pool that keeps at most cache_bytes of free chunks per class. */
struct pool *pool_new(size_t cache_bytes);

/* Frees the pool and its cached chunks/evbuffers. Everything must have been returned (asserted). */
void pool_free(struct pool *p);

/* Returns a chunk with cap >= size and len 0; the caller owns it until pool_put. */
struct chunk *pool_get(struct pool *p, size_t size);

/*
 * Returns a chunk with cap >= size holding the contents of *c (if any),
 * and releases the old one: *c is replaced. Used to grow a partial buffer.
 */
void pool_grow(struct pool *p, struct chunk **c, size_t size);

/* Takes the chunk in *c back (NULL is fine) and clears *c. */
void pool_put(struct pool *p, struct chunk **c);

/* Returns an empty evbuffer the caller owns until pool_put_evbuffer. */
struct evbuffer *pool_get_evbuffer(struct pool *p);

/* Takes *b back, draining it (which runs reference cleanups), and clears *b. */
void pool_put_evbuffer(struct pool *p, struct evbuffer **b);

/* Current accounting. */
void pool_get_stats(const struct pool *p, struct pool_stats *out);

#endif

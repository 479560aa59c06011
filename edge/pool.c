/*
 * pool.c - a per-worker size-class chunk pool and a cache of evbuffers.
 *
 * Owns: one free list per size class (512 B, 2 KiB, 8 KiB, 32 KiB,
 * 128 KiB) and a stack of empty evbuffers. A chunk is one allocation,
 * header then cap bytes; a free chunk keeps its class in the header and
 * links to the next free chunk through its first data bytes (copied with
 * memcpy: data[] is not pointer-aligned), so the free lists cost nothing
 * beyond the chunks themselves.
 *
 * Invariants:
 *  - Each class caches at most cache_bytes of free chunks; a chunk put back
 *    beyond that is freed at once, so idle memory per worker is bounded by
 *    POOL_CLASSES * cache_bytes (docs/architecture.md §4.1, §4.9).
 *  - Requests above the largest class are mem_alloc'd with cls
 *    POOL_OVERSIZE, counted while borrowed and freed when put back.
 *  - stats.chunks_in_use / chunk_bytes_in_use (sum of cap) and
 *    evbuffers_in_use change exactly once per get and per put; pool_free
 *    asserts they are back to zero.
 *  - A cached evbuffer is empty: pool_put_evbuffer drains it first, which
 *    frees reference chains and so runs their cleanups (frame_cleanup drops
 *    the frame) before the buffer is cached or freed.
 *
 * Rejected: a general slab allocator (five classes cover every frame and
 * handshake the limits allow), and keeping whole bufferevents (binding a
 * bufferevent to a new fd is more state than an evbuffer pair is worth;
 * the connection code owns that choice). Never shared across workers, so
 * no locking.
 */
#include "edge/pool.h"

#include <assert.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "common/log.h"
#include "common/mem.h"

/* Empty evbuffers kept for reuse; beyond this they are freed. */
#define POOL_EVBUFFER_CACHE 1024

static const size_t class_size[POOL_CLASSES] = {512, 2048, 8192, 32768, 131072};

struct pool {
    size_t cache_bytes;
    struct chunk *free_list[POOL_CLASSES];
    size_t free_count[POOL_CLASSES];
    struct evbuffer **evbufs; /* cached empty evbuffers, a stack */
    size_t evbuf_count;
    size_t evbuf_alloc;
    struct pool_stats stats;
};

static struct chunk *next_free(const struct chunk *c)
{
    struct chunk *next;

    memcpy(&next, c->data, sizeof(next));
    return next;
}

static void set_next_free(struct chunk *c, struct chunk *next)
{
    memcpy(c->data, &next, sizeof(next));
}

/* The smallest class holding size bytes, or POOL_OVERSIZE. */
static uint8_t class_of(size_t size)
{
    for (uint8_t i = 0; i < POOL_CLASSES; i++) {
        if (size <= class_size[i])
            return i;
    }
    return POOL_OVERSIZE;
}

static struct chunk *chunk_alloc(uint8_t cls, size_t cap)
{
    struct chunk *c;

    assert(cap <= UINT32_MAX);
    c = mem_alloc(sizeof(*c) + cap);
    c->cls = cls;
    c->cap = (uint32_t)cap;
    return c;
}

struct pool *pool_new(size_t cache_bytes)
{
    struct pool *p = mem_calloc(1, sizeof(*p));

    p->cache_bytes = cache_bytes;
    return p;
}

void pool_free(struct pool *p)
{
    if (p == NULL)
        return;
    assert(p->stats.chunks_in_use == 0);
    assert(p->stats.evbuffers_in_use == 0);
    for (int i = 0; i < POOL_CLASSES; i++) {
        struct chunk *c = p->free_list[i];
        while (c != NULL) {
            struct chunk *next = next_free(c);
            mem_free(c);
            c = next;
        }
    }
    for (size_t i = 0; i < p->evbuf_count; i++)
        evbuffer_free(p->evbufs[i]);
    mem_free(p->evbufs);
    mem_free(p);
}

struct chunk *pool_get(struct pool *p, size_t size)
{
    uint8_t cls = class_of(size);
    struct chunk *c;

    if (cls == POOL_OVERSIZE) {
        c = chunk_alloc(cls, size);
    } else if (p->free_list[cls] != NULL) {
        c = p->free_list[cls];
        p->free_list[cls] = next_free(c);
        p->free_count[cls]--;
        p->stats.chunks_cached--;
    } else {
        c = chunk_alloc(cls, class_size[cls]);
    }
    c->len = 0;
    p->stats.chunks_in_use++;
    p->stats.chunk_bytes_in_use += c->cap;
    p->stats.gets++;
    return c;
}

void pool_grow(struct pool *p, struct chunk **c, size_t size)
{
    struct chunk *old = *c;
    struct chunk *bigger;

    if (old != NULL && old->cap >= size)
        return;
    bigger = pool_get(p, size);
    if (old != NULL) {
        memcpy(bigger->data, old->data, old->len);
        bigger->len = old->len;
        pool_put(p, &old);
    }
    *c = bigger;
}

void pool_put(struct pool *p, struct chunk **cp)
{
    struct chunk *c = *cp;
    bool keep;

    if (c == NULL)
        return;
    *cp = NULL;
    assert(p->stats.chunks_in_use > 0 && p->stats.chunk_bytes_in_use >= c->cap);
    p->stats.chunks_in_use--;
    p->stats.chunk_bytes_in_use -= c->cap;
    keep = c->cls != POOL_OVERSIZE &&
           (p->free_count[c->cls] + 1) * class_size[c->cls] <= p->cache_bytes;
    if (!keep) {
        mem_free(c);
        return;
    }
    set_next_free(c, p->free_list[c->cls]);
    p->free_list[c->cls] = c;
    p->free_count[c->cls]++;
    p->stats.chunks_cached++;
}

struct evbuffer *pool_get_evbuffer(struct pool *p)
{
    struct evbuffer *b;

    if (p->evbuf_count > 0) {
        b = p->evbufs[--p->evbuf_count];
        p->stats.evbuffers_cached--;
    } else {
        b = evbuffer_new();
        if (b == NULL) {
            /* Same policy as mem.c: allocation failure is not recoverable. */
            log_error("oom", "what=evbuffer");
            abort();
        }
    }
    p->stats.evbuffers_in_use++;
    p->stats.gets++;
    return b;
}

void pool_put_evbuffer(struct pool *p, struct evbuffer **bp)
{
    struct evbuffer *b = *bp;

    if (b == NULL)
        return;
    *bp = NULL;
    assert(p->stats.evbuffers_in_use > 0);
    p->stats.evbuffers_in_use--;
    /* A frozen or otherwise undrainable buffer is not reusable: free it. */
    if (evbuffer_drain(b, evbuffer_get_length(b)) < 0 || evbuffer_get_length(b) != 0 ||
        p->evbuf_count >= POOL_EVBUFFER_CACHE) {
        evbuffer_free(b);
        return;
    }
    if (p->evbuf_count == p->evbuf_alloc) {
        p->evbuf_alloc = p->evbuf_alloc ? p->evbuf_alloc * 2 : 16;
        p->evbufs = mem_realloc(p->evbufs, p->evbuf_alloc * sizeof(*p->evbufs));
    }
    p->evbufs[p->evbuf_count++] = b;
    p->stats.evbuffers_cached++;
}

void pool_get_stats(const struct pool *p, struct pool_stats *out)
{
    *out = p->stats;
}

#ifndef HERALD_COMMON_OUTQ_H
#define HERALD_COMMON_OUTQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct evbuffer;
struct frame;
struct sink;

/*
 * Output queues of subscribers (docs/architecture.md §5.3): how a shared
 * frame enters a connection's output, the output limit, and the dirty list
 * of connections to write once a fan-out ends. Used by the broker's link
 * and RESP connections and the edge's WebSocket clients alike.
 */

/*
 * Frames of at most this many bytes are copied into an output evbuffer;
 * larger ones are added by reference. libevent 2.1 gives every
 * evbuffer_add_reference a chain of its own (~1040 heap bytes whatever the
 * frame's size), while copies pack into the buffer's shared chains.
 * Measured (bench/copy_threshold.sh, bench/results/copy-threshold-2026-12-07.md):
 * copying is cheaper in memory and in time up to 1 KiB for a backlog, and a
 * lone copied frame fits the first chain up to 976 bytes (above, it takes a
 * 2 KiB chain where a reference takes ~1 KiB). 768 is the largest measured
 * size on the right side of both; the broker used 512 and the edge 1024.
 */
#define OUTQ_COPY_MAX 768

/*
 * Appends f->data[skip..f->len) to out: a copy up to OUTQ_COPY_MAX bytes,
 * else a reference (out takes one reference to f, dropped by frame_cleanup
 * when libevent releases the chain, possibly after the connection is gone).
 * Borrows f. Returns 0, or -1 when libevent fails to allocate.
 */
int outq_append(struct evbuffer *out, struct frame *f, size_t skip);

/*
 * The output limit, one rule for every subscriber: a frame of len bytes is
 * queued only while queued + len stays within limit; otherwise the
 * subscriber is a slow consumer and is closed.
 */
static inline bool outq_fits(size_t queued, size_t len, size_t limit)
{
    return len <= limit && queued <= limit - len;
}

/*
 * Subscribers with output queued by a fan-out, written when it ends (one
 * write per subscriber per burst of events, not one per event). A sink is
 * on the list at most once (SINK_DIRTY). The list never frees a sink; a
 * closed one may stay on it until dirty_prune, which its owner runs before
 * freeing closed sinks.
 */
struct dirty_list {
    struct sink **v;
    uint32_t n, cap;
};

/* Puts s on d unless it is already there. */
void dirty_add(struct dirty_list *d, struct sink *s);

/* Takes the first n entries off d (they were written), keeping the rest in order. */
void dirty_consume(struct dirty_list *d, uint32_t n);

/* Removes closed sinks from d (clearing their SINK_DIRTY); O(length). */
void dirty_prune(struct dirty_list *d);

/* Frees d's vector. */
void dirty_free(struct dirty_list *d);

#endif

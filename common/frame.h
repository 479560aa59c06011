#ifndef HERALD_COMMON_FRAME_H
#define HERALD_COMMON_FRAME_H

#include <stddef.h>
#include <stdint.h>

/*
 * A reference-counted immutable byte frame: one encoded event shared by
 * every subscriber's output. Born with refcount 1, owned by its creator,
 * immutable once shared. Each holder owns one reference; each
 * evbuffer_add_reference() of frame bytes passes frame_cleanup as the
 * cleanup and the frame itself as its argument (never a connection).
 * Counts are per thread (frames never cross workers), so no atomics.
 */
struct frame {
    uint32_t refs;
    uint32_t len;
    char data[];
};

/* Returns a new frame of len bytes (contents uninitialised), refcount 1. */
struct frame *frame_new(size_t len);

/* Returns a new frame holding a copy of data[0..len), refcount 1. */
struct frame *frame_from(const void *data, size_t len);

/* Returns f with one more reference (the caller owns it). Asserts refs > 0. */
struct frame *frame_ref(struct frame *f);

/* Drops the reference in *fp and sets *fp to NULL; frees at zero. */
void frame_unref(struct frame **fp);

/* evbuffer_ref_cleanup_cb-compatible: drops the reference passed as arg. */
void frame_cleanup(const void *data, size_t len, void *arg);

/* Frames alive on this thread (created and not yet freed). */
uint64_t frame_live(void);

#endif

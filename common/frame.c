/*
 * frame.c - reference-counted immutable byte frames.
 *
 * A frame is one allocation: header (refcount, length) followed by the
 * bytes. The fan-out loop creates a frame per event and encoding, and each
 * output queue that holds it owns one reference; the last unref frees it.
 * Frames never leave the thread that created them (one per broker, one per
 * edge worker), so the count is a plain integer and the live-frame counter
 * is thread-local; both are checked in tests after the loop drains.
 * Rejected: atomics (no frame is shared across threads), a free list
 * (malloc's own size classes do as well for these sizes).
 */
#include "common/frame.h"

#include <assert.h>
#include <string.h>

#include "common/mem.h"

static _Thread_local uint64_t live;

struct frame *frame_new(size_t len)
{
    struct frame *f;

    assert(len <= UINT32_MAX);
    f = mem_alloc(sizeof(*f) + len);
    f->refs = 1;
    f->len = (uint32_t)len;
    live++;
    return f;
}

struct frame *frame_from(const void *data, size_t len)
{
    struct frame *f = frame_new(len);

    if (len)
        memcpy(f->data, data, len);
    return f;
}

struct frame *frame_ref(struct frame *f)
{
    assert(f->refs > 0);
    f->refs++;
    return f;
}

void frame_unref(struct frame **fp)
{
    struct frame *f = *fp;

    if (!f)
        return;
    *fp = NULL;
    assert(f->refs > 0);
    if (--f->refs == 0) {
        live--;
        mem_free(f);
    }
}

void frame_cleanup(const void *data, size_t len, void *arg)
{
    struct frame *f = arg;

    (void)data;
    (void)len;
    frame_unref(&f);
}

uint64_t frame_live(void)
{
    return live;
}

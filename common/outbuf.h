#ifndef HERALD_COMMON_OUTBUF_H
#define HERALD_COMMON_OUTBUF_H

#include <stddef.h>

struct evbuffer;
struct frame;

/*
 * Frames at or below this size are copied into an output evbuffer rather
 * than referenced: a reference chain costs a malloc and ~100 bytes of its
 * own, more than the bytes it would point to, while a copy lands in the
 * space left in the buffer's last chain.
 */
#define OUTBUF_COPY_MAX 512

/*
 * Appends frame f to out. Small frames are copied; larger ones are added
 * by reference, out taking one new reference to f that frame_cleanup drops
 * when libevent releases the chain (possibly after the connection is
 * gone). Borrows f. Returns 0, or -1 when libevent fails to allocate.
 */
int outbuf_add_frame(struct evbuffer *out, struct frame *f);

#endif

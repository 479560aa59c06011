/*
 * outbuf.c - putting shared frames into per-connection output evbuffers.
 *
 * Encode once, share many (DESIGN.md memory rule 2) is about the encoding
 * and about large payloads. For a 60-byte RESP `message` or link MSG, the
 * reference itself is the expensive part: evbuffer_add_reference allocates
 * a chain per delivery, and profiling the broker with 50 subscribers under
 * pipelined PUBLISH showed half its time in page faults of those chains.
 * So frames up to OUTBUF_COPY_MAX are copied into the buffer's current
 * chain, and larger ones are referenced. Either way the frame is encoded
 * once per event.
 */
#include "common/outbuf.h"

#include <event2/buffer.h>

#include "common/frame.h"

int outbuf_add_frame(struct evbuffer *out, struct frame *f)
{
    if (f->len <= OUTBUF_COPY_MAX)
        return evbuffer_add(out, f->data, f->len);
    frame_ref(f);
    if (evbuffer_add_reference(out, f->data, f->len, frame_cleanup, f) < 0) {
        frame_unref(&f);
        return -1;
    }
    return 0;
}

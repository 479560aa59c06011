/*
 * ws_out.c - server frames as shared, reference-counted frames.
 *
 * One allocation per frame: the header is encoded first and copied in
 * front of the payload's room, so a fan-out writes its encoded event
 * straight after the header and every subscriber's queue shares the
 * result. Kept apart from ws_frame.c so the framing code stays pure
 * (it allocates nothing and links nothing but the UTF-8 validator).
 */
#include "common/ws/ws_out.h"

#include <string.h>

#include "common/frame.h"
#include "common/ws/ws_frame.h"

struct frame *ws_frame_alloc(uint8_t opcode, size_t len, char **payload)
{
    uint8_t hdr[WS_MAX_HEADER];
    size_t hlen = ws_frame_header_encode(hdr, opcode, true, len);
    struct frame *f = frame_new(hlen + len);

    memcpy(f->data, hdr, hlen);
    *payload = f->data + hlen;
    return f;
}

struct frame *ws_frame_new(uint8_t opcode, const void *payload, size_t len)
{
    char *dst;
    struct frame *f = ws_frame_alloc(opcode, len, &dst);

    if (len > 0)
        memcpy(dst, payload, len);
    return f;
}

struct frame *ws_close_frame_new(uint16_t code, const char *reason)
{
    uint8_t p[WS_CTRL_MAX];
    size_t n = ws_close_payload_encode(p, code, reason);

    return ws_frame_new(WS_OP_CLOSE, p, n);
}

#ifndef HERALD_COMMON_WS_WS_OUT_H
#define HERALD_COMMON_WS_WS_OUT_H

#include <stddef.h>
#include <stdint.h>

struct frame;

/*
 * Complete server frames (final, unmasked) in reference-counted frames
 * (common/frame.h), ready to be queued to any number of connections.
 */

/*
 * Returns a new frame (refcount 1) holding a frame header for opcode and
 * room for len payload bytes, uninitialised; *payload points at them.
 */
struct frame *ws_frame_alloc(uint8_t opcode, size_t len, char **payload);

/* Returns a new frame (refcount 1) of one frame carrying a copy of payload[0..len). */
struct frame *ws_frame_new(uint8_t opcode, const void *payload, size_t len);

/* Returns a new close frame (refcount 1) with the payload ws_close_payload_encode writes. */
struct frame *ws_close_frame_new(uint16_t code, const char *reason);

#endif

#ifndef HERALD_COMMON_WS_WS_FRAME_H
#define HERALD_COMMON_WS_WS_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/*
 * RFC 6455 framing, pure code, for both ends: a server parses client
 * frames (which must be masked) and encodes server frames (never masked);
 * a client (herald watch, herald-loadgen) parses server frames and
 * encodes masked ones.
 */

enum ws_opcode {
    WS_OP_CONT = 0x0,
    WS_OP_TEXT = 0x1,
    WS_OP_BINARY = 0x2,
    WS_OP_CLOSE = 0x8,
    WS_OP_PING = 0x9,
    WS_OP_PONG = 0xA,
};

/* Close codes used by the edge and the tools. */
#define WS_CLOSE_NORMAL       1000
#define WS_CLOSE_GOING_AWAY   1001
#define WS_CLOSE_PROTOCOL     1002
#define WS_CLOSE_UNSUPPORTED  1003
#define WS_CLOSE_NO_STATUS    1005
#define WS_CLOSE_INVALID_DATA 1007
#define WS_CLOSE_POLICY       1008
#define WS_CLOSE_TOO_BIG      1009
#define WS_CLOSE_INTERNAL     1011
#define WS_CLOSE_RESTART      1012 /* "service restart": reconnect now (RFC 6455 §11.7) */

#define WS_MAX_HEADER 14  /* 2 + 8 (64-bit length) + 4 (mask) */
#define WS_CTRL_MAX   125 /* payload bytes a control frame may carry */

struct ws_frame_header {
    bool fin;
    uint8_t opcode; /* enum ws_opcode */
    bool masked;
    uint8_t mask[4];
    uint64_t payload_len;
    size_t header_len; /* bytes of header, payload starts there */
};

/*
 * Parses one client frame header from buf[0..len). Returns the header
 * length (> 0) and fills *h; -2 when more bytes are needed; -1 with
 * *close_code and *err (static) on a protocol violation:
 *   1002: RSV bits set (no extension negotiated), reserved opcode,
 *         unmasked frame, control frame with payload > 125 or FIN clear,
 *         64-bit length with the top bit set, non-minimal length encoding
 *         is allowed (RFC does not forbid reading it)
 *   1009: payload_len > max_payload
 */
ssize_t ws_frame_parse_header(const uint8_t *buf, size_t len, uint64_t max_payload,
                              struct ws_frame_header *h, uint16_t *close_code, const char **err);

/*
 * The same for one server frame header, read by a client: the same checks
 * and returns, except that the frame must not be masked (1002 when it is)
 * and has no masking key (h->masked false, h->mask zero).
 */
ssize_t ws_frame_parse_server_header(const uint8_t *buf, size_t len, uint64_t max_payload,
                                     struct ws_frame_header *h, uint16_t *close_code,
                                     const char **err);

/*
 * XORs data[0..len) in place with mask, where data starts at byte `offset`
 * of the frame's payload (so a payload can be unmasked in pieces).
 */
void ws_unmask(uint8_t *data, size_t len, const uint8_t mask[4], uint64_t offset);

/* Writes an unmasked server frame header into out; returns its length (2, 4 or 10). */
size_t ws_frame_header_encode(uint8_t out[WS_MAX_HEADER], uint8_t opcode, bool fin,
                              uint64_t payload_len);

/*
 * Writes one final client frame carrying payload[0..len), masked with
 * mask, into out[0..cap); returns its length, 0 when it does not fit.
 */
size_t ws_frame_encode_masked(uint8_t *out, size_t cap, uint8_t opcode, const void *payload,
                              size_t len, const uint8_t mask[4]);

/*
 * Checks a received close payload (RFC 6455 5.5.1, 7.4). Empty is fine
 * (*code = 1005, "no status"); otherwise *code is the peer's code. Returns
 * 0 when the payload is valid, else the code to fail the connection with:
 *   1002  one byte (a code needs two), or a code a peer may not send: valid
 *         are 1000-1003, 1007-1014 (1012-1014 are in the IANA registry the
 *         RFC set up) and 3000-4999; never 0-999, 1004-1006, 1015-2999,
 *         5000 and up;
 *   1007  a valid code with a reason that is not UTF-8 (RFC 6455 8.1: the
 *         reason is text, and invalid text data fails with 1007).
 * *code may be NULL.
 */
uint16_t ws_close_payload_check(const uint8_t *p, size_t len, uint16_t *code);

/*
 * Writes a close payload into out: the code (big-endian), then as much of
 * reason (NULL: none) as fits the 125 bytes of a control frame, cut
 * before a UTF-8 continuation byte so a valid reason stays valid.
 * Returns its length (2..125).
 */
size_t ws_close_payload_encode(uint8_t out[WS_CTRL_MAX], uint16_t code, const char *reason);

#endif

#include "common/ws/ws_frame.h"

#include <string.h>

#include "common/utf8.h"

/*
 * RFC 6455 section 5 framing, both directions, pure code: no buffers are
 * owned and nothing is allocated. The parsers borrow the caller's bytes
 * and return header length / -2 / -1 like every Herald parser, so the
 * caller can keep a partial header where it already is and call again
 * with more. The edge parses client frames; herald watch and
 * herald-loadgen parse server frames with the same code, which differs
 * only in the mask bit the frame must carry and whether a masking key
 * follows the length.
 *
 * Header layout (all big-endian):
 *   byte 0: FIN, RSV1..3, opcode       byte 1: MASK, 7-bit length
 *   126 -> 16-bit length follows;  127 -> 64-bit length (top bit clear)
 *   then the 4-byte masking key (present exactly when MASK is set: always
 *   from a client, never from a server)
 *
 * Violations are reported as early as the bytes allow (RSV, opcode and
 * mask from the first two bytes, the length before the masking key), so a
 * hostile peer never makes us wait for bytes of a frame we will refuse.
 * Non-minimal length encodings are accepted: the RFC forbids sending them
 * but does not require receivers to fail, and rejecting them buys nothing.
 *
 * Unmasking is offset-aware so a payload arriving in several reads can be
 * unmasked in place piece by piece; it XORs eight bytes at a time with the
 * mask rotated to the piece's offset. Masking is the same XOR, so the
 * client-side encoder copies the payload and unmasks the copy.
 */

static ssize_t fail(uint16_t *close_code, const char **err, uint16_t code, const char *why)
{
    *close_code = code;
    *err = why;
    return -1;
}

static bool opcode_known(uint8_t op)
{
    return op <= WS_OP_BINARY || (op >= WS_OP_CLOSE && op <= WS_OP_PONG);
}

/* Checks what the first two bytes alone can tell. Returns 0 or -1. */
static ssize_t check_first_bytes(uint8_t b0, uint8_t b1, bool from_client, uint16_t *close_code,
                                 const char **err)
{
    if (b0 & 0x70) {
        return fail(close_code, err, WS_CLOSE_PROTOCOL, "reserved bits set");
    }
    uint8_t op = b0 & 0x0F;
    if (!opcode_known(op)) {
        return fail(close_code, err, WS_CLOSE_PROTOCOL, "reserved opcode");
    }
    if ((op & 0x08) && !(b0 & 0x80)) {
        return fail(close_code, err, WS_CLOSE_PROTOCOL, "fragmented control frame");
    }
    if (from_client && !(b1 & 0x80)) {
        return fail(close_code, err, WS_CLOSE_PROTOCOL, "unmasked client frame");
    }
    if (!from_client && (b1 & 0x80)) {
        return fail(close_code, err, WS_CLOSE_PROTOCOL, "masked server frame");
    }
    return 0;
}

/* One frame header from a client (masked) or from a server (unmasked). */
static ssize_t parse_header(const uint8_t *buf, size_t len, uint64_t max_payload, bool from_client,
                            struct ws_frame_header *h, uint16_t *close_code, const char **err)
{
    if (len < 2) {
        return -2;
    }
    if (check_first_bytes(buf[0], buf[1], from_client, close_code, err) < 0) {
        return -1;
    }
    uint8_t len7 = buf[1] & 0x7F;
    size_t ext = len7 == 127 ? 8 : len7 == 126 ? 2 : 0;
    if (len < 2 + ext) {
        return -2;
    }
    uint64_t plen = len7;
    if (ext > 0) {
        plen = 0;
        for (size_t i = 0; i < ext; i++) {
            plen = (plen << 8) | buf[2 + i];
        }
    }
    if (plen >> 63) {
        return fail(close_code, err, WS_CLOSE_PROTOCOL, "64-bit length with top bit set");
    }
    if ((buf[0] & 0x08) && plen > WS_CTRL_MAX) {
        return fail(close_code, err, WS_CLOSE_PROTOCOL, "control frame payload over 125");
    }
    if (plen > max_payload) {
        return fail(close_code, err, WS_CLOSE_TOO_BIG, "frame payload too big");
    }
    size_t hlen = 2 + ext + (from_client ? 4 : 0);
    if (len < hlen) {
        return -2;
    }
    h->fin = (buf[0] & 0x80) != 0;
    h->opcode = buf[0] & 0x0F;
    h->masked = from_client;
    if (from_client) {
        memcpy(h->mask, buf + 2 + ext, 4);
    } else {
        memset(h->mask, 0, sizeof(h->mask));
    }
    h->payload_len = plen;
    h->header_len = hlen;
    return (ssize_t)hlen;
}

ssize_t ws_frame_parse_header(const uint8_t *buf, size_t len, uint64_t max_payload,
                              struct ws_frame_header *h, uint16_t *close_code, const char **err)
{
    return parse_header(buf, len, max_payload, true, h, close_code, err);
}

ssize_t ws_frame_parse_server_header(const uint8_t *buf, size_t len, uint64_t max_payload,
                                     struct ws_frame_header *h, uint16_t *close_code,
                                     const char **err)
{
    return parse_header(buf, len, max_payload, false, h, close_code, err);
}

void ws_unmask(uint8_t *data, size_t len, const uint8_t mask[4], uint64_t offset)
{
    uint8_t rot[8];
    for (size_t i = 0; i < sizeof(rot); i++) {
        rot[i] = mask[(offset + i) & 3];
    }
    uint64_t m;
    memcpy(&m, rot, sizeof(m));
    size_t i = 0;
    for (; len - i >= sizeof(m); i += sizeof(m)) {
        uint64_t w;
        memcpy(&w, data + i, sizeof(w));
        w ^= m;
        memcpy(data + i, &w, sizeof(w));
    }
    /* rot repeats every 4 bytes and i is a multiple of 8: the tail starts at rot[0]. */
    for (size_t j = 0; i < len; i++, j++) {
        data[i] ^= rot[j];
    }
}

size_t ws_frame_header_encode(uint8_t out[WS_MAX_HEADER], uint8_t opcode, bool fin,
                              uint64_t payload_len)
{
    out[0] = (uint8_t)((fin ? 0x80 : 0) | (opcode & 0x0F));
    if (payload_len <= 125) {
        out[1] = (uint8_t)payload_len;
        return 2;
    }
    if (payload_len <= 0xFFFF) {
        out[1] = 126;
        out[2] = (uint8_t)(payload_len >> 8);
        out[3] = (uint8_t)payload_len;
        return 4;
    }
    out[1] = 127;
    for (int i = 0; i < 8; i++) {
        out[2 + i] = (uint8_t)(payload_len >> (56 - 8 * i));
    }
    return 10;
}

size_t ws_frame_encode_masked(uint8_t *out, size_t cap, uint8_t opcode, const void *payload,
                              size_t len, const uint8_t mask[4])
{
    uint8_t hdr[WS_MAX_HEADER];
    size_t hl = ws_frame_header_encode(hdr, opcode, true, len);

    if (cap < hl + 4 || cap - hl - 4 < len) {
        return 0;
    }
    hdr[1] |= 0x80;
    memcpy(out, hdr, hl);
    memcpy(out + hl, mask, 4);
    if (len > 0) {
        memcpy(out + hl + 4, payload, len);
        ws_unmask(out + hl + 4, len, mask, 0);
    }
    return hl + 4 + len;
}

/* Close codes a peer may put on the wire (RFC 6455 7.4.1, 7.4.2, and the IANA registry). */
static bool close_code_sendable(uint16_t code)
{
    if (code >= 1000 && code <= 1003) {
        return true;
    }
    /* 1012-1014 (service restart, try again later, bad gateway) were
     * registered after the RFC; 1015 (TLS failure) must never be sent. */
    if (code >= 1007 && code <= 1014) {
        return true;
    }
    return code >= 3000 && code <= 4999;
}

uint16_t ws_close_payload_check(const uint8_t *p, size_t len, uint16_t *code)
{
    if (len == 0) {
        if (code) {
            *code = WS_CLOSE_NO_STATUS;
        }
        return 0;
    }
    if (len == 1) {
        return WS_CLOSE_PROTOCOL;
    }
    uint16_t c = (uint16_t)((p[0] << 8) | p[1]);
    if (code) {
        *code = c;
    }
    if (!close_code_sendable(c)) {
        return WS_CLOSE_PROTOCOL;
    }
    return utf8_valid(p + 2, len - 2) ? 0 : WS_CLOSE_INVALID_DATA;
}

size_t ws_close_payload_encode(uint8_t out[WS_CTRL_MAX], uint16_t code, const char *reason)
{
    /* A control frame's payload is at most 125 bytes: 2 for the code. */
    size_t rlen = reason != NULL ? strnlen(reason, WS_CTRL_MAX - 1) : 0;

    if (rlen > WS_CTRL_MAX - 2) {
        rlen = WS_CTRL_MAX - 2;
    }
    /* Do not cut inside a UTF-8 character: the reason must stay valid. */
    while (rlen > 0 && reason[rlen] != '\0' && ((uint8_t)reason[rlen] & 0xC0) == 0x80) {
        rlen--;
    }
    out[0] = (uint8_t)(code >> 8);
    out[1] = (uint8_t)(code & 0xff);
    if (rlen > 0) {
        memcpy(out + 2, reason, rlen);
    }
    return 2 + rlen;
}

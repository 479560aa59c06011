/*
 * loadgen_ws.c - herald-loadgen's WebSocket client side, shared by the
 * adapters that subscribe over WebSocket (herald, nchan, mqtt).
 *
 * The framing and the handshake's keys are the edge's own codec
 * (common/ws/); what is here is what only a load generator needs: masks
 * from a cheap generator, a fixed-size send of control frames straight to
 * the connection (plain or TLS, loadgen_tls.c), and the upgrade request and
 * the check of its answer over the raw bytes of one read. The driver
 * (loadgen.c) owns the connections and calls these per frame.
 */
#include "tools/loadgen.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "common/ws/ws_frame.h"
#include "common/ws/ws_key.h"

/*
 * Writes one masked client frame around payload into out; returns its length
 * (0 when it does not fit). The masks come from a xorshift generator: they
 * only have to vary, and RAND_bytes per frame would cost more than the frame.
 */
size_t loadgen_ws_frame(uint8_t opcode, const uint8_t *payload, size_t len, uint8_t *out,
                        size_t cap)
{
    static uint32_t mask_state = 0x2545f491u;
    uint8_t mask[4];

    mask_state ^= mask_state << 13, mask_state ^= mask_state >> 17, mask_state ^= mask_state << 5;
    memcpy(mask, &mask_state, sizeof(mask));
    return ws_frame_encode_masked(out, cap, opcode, payload, len, mask);
}

/* Sends one masked client frame (payload <= 125 bytes); -1 when it was refused or short. */
int loadgen_ws_send(int fd, SSL *ssl, uint8_t opcode, const uint8_t *payload, size_t len)
{
    uint8_t frame[2 + 4 + WS_CTRL_MAX];
    size_t n =
        len <= WS_CTRL_MAX ? loadgen_ws_frame(opcode, payload, len, frame, sizeof(frame)) : 0;

    return n ? loadgen_send(fd, ssl, frame, n) : -1;
}

/*
 * One server frame: returns bytes consumed, -2 when incomplete, -1 on a
 * violation (common/ws/ws_frame.h: masked, RSV bits, a reserved opcode, a
 * bad control frame, over MAX_FRAME). Fills opcode and the payload view.
 */
ssize_t loadgen_ws_next(const uint8_t *p, size_t len, uint8_t *opcode, const uint8_t **payload,
                        size_t *plen)
{
    struct ws_frame_header h;
    const char *err;
    uint16_t code;
    ssize_t hl = ws_frame_parse_server_header(p, len, MAX_FRAME, &h, &code, &err);

    if (hl < 0)
        return hl;
    if (len - (size_t)hl < h.payload_len)
        return -2;
    *opcode = h.opcode;
    *payload = p + hl;
    *plen = (size_t)h.payload_len;
    return hl + (ssize_t)h.payload_len;
}

int loadgen_ws_request(char *buf, size_t cap, const char *target, const char *host, int port,
                       const char *key, const char *headers)
{
    int n =
        snprintf(buf, cap,
                 "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n%s\r\n",
                 target, host, port, key, headers);

    return n >= 0 && (size_t)n < cap ? n : -1;
}

bool loadgen_ws_head_accepts(const uint8_t *buf, size_t len, const char *key,
                             const char *subprotocol)
{
    char head[MAX_HEAD + 1], want[WS_ACCEPT_LEN + 1];
    const char *v;

    memcpy(head, buf, len);
    head[len] = '\0';
    if (strncmp(head, "HTTP/1.1 101", 12) != 0)
        return false;
    v = strcasestr(head, "\r\nSec-WebSocket-Accept:");
    if (!v)
        return false;
    v += strlen("\r\nSec-WebSocket-Accept:");
    v += strspn(v, " \t");
    ws_accept_key(key, strlen(key), want);
    if (strncmp(v, want, WS_ACCEPT_LEN) != 0)
        return false;
    if (!subprotocol)
        return true;
    /* mosquitto answers 101 without it too, then never answers CONNECT */
    v = strcasestr(head, "\r\nSec-WebSocket-Protocol:");
    if (!v)
        return false;
    v += strlen("\r\nSec-WebSocket-Protocol:");
    v += strspn(v, " \t");
    return strncasecmp(v, subprotocol, strlen(subprotocol)) == 0;
}

#ifndef HERALD_EDGE_WS_HANDSHAKE_H
#define HERALD_EDGE_WS_HANDSHAKE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/*
 * The HTTP/1.1 side of the edge port, pure code over libhttp-parser
 * (Debian's libhttp-parser-dev): parse one request head, classify it
 * (WebSocket upgrade, echo upgrade, /healthz, /metrics, other), validate
 * the upgrade and compute Sec-WebSocket-Accept (common/ws/ws_key.h).
 */

enum ws_request_kind {
    WS_REQ_UPGRADE, /* valid GET /ws upgrade: answer 101 */
    WS_REQ_ECHO,    /* valid upgrade on the echo path (docs/protocol.md §3.11): answer 101 */
    WS_REQ_HEALTHZ, /* GET /healthz */
    WS_REQ_METRICS, /* GET /metrics */
    WS_REQ_ERROR,   /* answer with status/err (400, 403, 404, 405, 426, 431) */
};

#define WS_HS_MAX_TOPICS 64

/*
 * What the edge's configuration tells the parser; borrowed for the call.
 * A NULL policy means any origin and no echo path.
 */
struct ws_hs_policy {
    const char *allowed_origins; /* NULL/"": any origin; else comma-separated exact values */
    const char *echo_path;       /* NULL: none; else the exact path answered WS_REQ_ECHO */
};

struct ws_request {
    enum ws_request_kind kind;
    int status;       /* for WS_REQ_ERROR: 400 bad request, 403 origin, 404, 405, 426, 431 */
    const char *err;  /* static reason for WS_REQ_ERROR */
    char accept[29];  /* Sec-WebSocket-Accept, NUL-terminated, for UPGRADE and ECHO */
    bool subprotocol; /* client offered herald.v1: echo it */
    bool raw;         /* ?format=raw */
    /* ?topic= values, percent-decoded, NUL-terminated, copied into topic_buf */
    size_t ntopics;
    const char *topics[WS_HS_MAX_TOPICS];
    size_t topic_lens[WS_HS_MAX_TOPICS];
    char topic_buf[4096];
    bool too_many_topics; /* more ?topic= than WS_HS_MAX_TOPICS or topic_buf holds */
};

/*
 * Parses the request head in buf[0..len). Returns:
 *   > 0  the head is complete (its length through the blank line) and
 *        *req is filled: kind UPGRADE/ECHO/HEALTHZ/METRICS, or ERROR with a
 *        status (400 missing/duplicate/bad Host on HTTP/1.1 - RFC 7230
 *        5.4, any path -, missing/bad key or headers; 403 origin not
 *        allowed, 404 other path, 405 not GET, 426 Sec-WebSocket-Version
 *        not 13);
 *   -2   incomplete, and len <= max_header: read more;
 *   -1   req->status and req->err set: 431 when more than max_header bytes
 *        hold no complete head, 400 when the bytes are not HTTP/1.x.
 * On policy->echo_path the upgrade is checked like /ws (origin included)
 * but the query string is ignored: an echo connection has no topics.
 * The 101 answer is the caller's (ws_handshake_response).
 */
ssize_t ws_handshake_parse(const char *buf, size_t len, size_t max_header,
                           const struct ws_hs_policy *policy, struct ws_request *req);

/*
 * Writes the complete 101 Switching Protocols response for req into out
 * (at least 256 bytes); returns its length.
 */
size_t ws_handshake_response(const struct ws_request *req, char *out, size_t outlen);

#endif

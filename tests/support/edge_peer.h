#ifndef HERALD_TESTS_SUPPORT_EDGE_PEER_H
#define HERALD_TESTS_SUPPORT_EDGE_PEER_H

#include <check.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

#include "common/frame.h"
#include "common/ws/ws_frame.h"
#include "edge/client.h"
#include "edge/edge_conf.h"
#include "edge/pool.h"
#include "edge/worker.h"

/*
 * One edge worker and one of its connections, for unit suites that drive
 * the edge as a browser would (check_edge_client.c, check_edge_auth.c,
 * check_edge_tls.c): a real worker (event_base, pool, trie, no uplink)
 * whose client holds one end of a socketpair, and the test's end, where it
 * writes masked frames and reads the server's. Everything runs in the
 * test's one thread: every send and read pumps the worker's loop
 * non-blocking, so both ends make progress.
 *
 *   static struct edge_peer ep;
 *   edge_peer_open(&ep, argc, argv);      the fixture: load, start, connect
 *   edge_peer_handshake(&ep, "/ws", "");  101, the connection is open
 *   edge_peer_send_text(&ep, "{\"op\":\"ping\"}");
 *   edge_peer_expect_text(&ep, "{\"op\":\"pong\"}");
 *   edge_peer_close(&ep);                 teardown: no frame left alive
 *
 * A suite that needs more around the worker (auth_conf_resolve, a TLS
 * server) calls the three steps of edge_peer_open itself and does its part
 * between them. A suite that wraps the test's end (TLS) sets p->send and
 * p->fill after edge_peer_connect; everything else reads and writes through
 * them.
 *
 * State kept: the configuration (owned, freed by edge_peer_close), the
 * worker (owned), the client under test (the worker's), the test's socket
 * (owned, -1 once dropped) and what was read from it and not yet consumed
 * (p->rbuf, p->rlen; a frame or response is taken out as it is read).
 * Times are milliseconds.
 */

struct edge_peer;

/* Writes all of buf to the worker, pumping its loop while the socket is full. */
typedef void edge_peer_send_fn(struct edge_peer *p, const void *buf, size_t len);

/*
 * Appends what the worker has written to p->rbuf, leaving its last byte
 * free (edge_peer_read_http NUL-terminates there); false once the stream
 * has ended.
 */
typedef bool edge_peer_fill_fn(struct edge_peer *p);

struct edge_peer {
    struct edge_conf conf;
    struct worker *w;        /* one worker, all its peers this one */
    struct client *cl;       /* the connection under test */
    int fd;                  /* the test's end of the socketpair, or -1 */
    edge_peer_send_fn *send; /* plain writes unless the suite wraps fd */
    edge_peer_fill_fn *fill; /* plain reads unless the suite wraps fd */
    size_t rlen;             /* bytes read and not consumed, at the start of rbuf */
    uint8_t rbuf[1 << 20];
};

/* ---------- the loop ---------- */

/* Runs the worker's ready events, a few passes, without blocking. */
static inline void edge_peer_pump(struct edge_peer *p)
{
    for (int i = 0; i < 4; i++)
        event_base_loop(p->w->h.base, EVLOOP_NONBLOCK);
}

/* Runs the loop for ms milliseconds (the 1 s sweep fires meanwhile). */
static inline void edge_peer_run(struct edge_peer *p, int ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};

    event_base_loopexit(p->w->h.base, &tv);
    event_base_dispatch(p->w->h.base);
}

/* ---------- bytes ---------- */

static inline void edge_peer_send_plain(struct edge_peer *p, const void *buf, size_t len)
{
    const uint8_t *b = buf;

    while (len > 0) {
        ssize_t n = write(p->fd, b, len);

        if (n < 0 && errno == EAGAIN) {
            edge_peer_pump(p);
            continue;
        }
        ck_assert_int_gt(n, 0);
        b += n;
        len -= (size_t)n;
    }
    edge_peer_pump(p);
}

/* Reads whatever the worker has written (waiting up to ~100 ms); false at EOF. */
static inline bool edge_peer_fill_plain(struct edge_peer *p)
{
    for (int tries = 0; tries < 50; tries++) {
        ssize_t n;

        edge_peer_pump(p);
        /* One byte short: edge_peer_read_http NUL-terminates what it holds. */
        n = read(p->fd, p->rbuf + p->rlen, sizeof(p->rbuf) - 1 - p->rlen);
        if (n > 0) {
            p->rlen += (size_t)n;
            return true;
        }
        if (n == 0)
            return false;
        poll(NULL, 0, 2);
    }
    return true;
}

/* Sends raw bytes (a split frame, a partial request) through p->send. */
static inline void edge_peer_send(struct edge_peer *p, const void *buf, size_t len)
{
    p->send(p, buf, len);
}

static inline void edge_peer_consume(struct edge_peer *p, size_t n)
{
    memmove(p->rbuf, p->rbuf + n, p->rlen - n);
    p->rlen -= n;
}

/* ---------- the fixture ---------- */

/* Loads the edge's configuration from argv into p->conf (the rest of p is cleared). */
static inline void edge_peer_load(struct edge_peer *p, int argc, char **argv)
{
    char err[512];

    signal(SIGPIPE, SIG_IGN);
    memset(p, 0, sizeof(*p));
    p->fd = -1;
    ck_assert_int_eq(conf_load(edge_conf_table, &p->conf, argc, argv, err, sizeof(err)), 0);
}

/* Makes the worker from p->conf (worker 0 of 1, no listener port). */
static inline void edge_peer_start(struct edge_peer *p)
{
    const char *e = "";

    p->w = worker_new(0, &p->conf, 0, &e);
    ck_assert_msg(p->w != NULL, "worker_new: %s", e);
    worker_set_all(&p->w, 1);
}

/* Gives the worker one connection over a socketpair: p->cl its end, p->fd the test's. */
static inline void edge_peer_connect(struct edge_peer *p)
{
    int sv[2];

    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    p->cl = client_new(&p->w->h, sv[0]);
    ck_assert_ptr_nonnull(p->cl);
    p->fd = sv[1];
    p->rlen = 0;
    p->send = edge_peer_send_plain;
    p->fill = edge_peer_fill_plain;
}

/* The whole fixture for a plain port: load, start, connect. */
static inline void edge_peer_open(struct edge_peer *p, int argc, char **argv)
{
    edge_peer_load(p, argc, argv);
    edge_peer_start(p);
    edge_peer_connect(p);
}

/* Teardown: closes the test's end, frees the worker, checks no frame is left alive. */
static inline void edge_peer_close(struct edge_peer *p)
{
    if (p->fd >= 0)
        close(p->fd);
    p->fd = -1;
    worker_free(p->w);
    p->w = NULL;
    ck_assert_uint_eq(frame_live(), 0);
    conf_free(edge_conf_table, &p->conf);
}

/*
 * After the server's close and EOF the browser closes too: the test's end
 * goes, and with it the lingering server side.
 */
static inline void edge_peer_drop(struct edge_peer *p)
{
    close(p->fd);
    p->fd = -1;
    edge_peer_pump(p);
}

/* ---------- WebSocket frames ---------- */

/*
 * Writes a client frame (masked, as a browser's) into buf, which has room
 * for len + 14 bytes; returns its length.
 */
static inline size_t edge_peer_frame_bytes(uint8_t opcode, bool fin, const void *payload,
                                           size_t len, uint8_t *buf)
{
    const uint8_t mask[4] = {0x37, 0xfa, 0x21, 0x3d};
    size_t h = 0;

    buf[h++] = (uint8_t)((fin ? 0x80 : 0) | opcode);
    if (len < 126) {
        buf[h++] = (uint8_t)(0x80 | len);
    } else if (len < 65536) {
        buf[h++] = 0x80 | 126;
        buf[h++] = (uint8_t)(len >> 8);
        buf[h++] = (uint8_t)len;
    } else {
        buf[h++] = 0x80 | 127;
        for (int i = 7; i >= 0; i--)
            buf[h++] = (uint8_t)((uint64_t)len >> (8 * i));
    }
    memcpy(buf + h, mask, 4);
    h += 4;
    for (size_t i = 0; i < len; i++)
        buf[h + i] = ((const uint8_t *)payload)[i] ^ mask[i % 4];
    return h + len;
}

/* Sends one frame of up to 80,000 bytes of payload. */
static inline void edge_peer_send_frame(struct edge_peer *p, uint8_t opcode, bool fin,
                                        const void *payload, size_t len)
{
    static uint8_t buf[16 + 80000];

    ck_assert_uint_le(len, 80000);
    edge_peer_send(p, buf, edge_peer_frame_bytes(opcode, fin, payload, len, buf));
}

static inline void edge_peer_send_text(struct edge_peer *p, const char *s)
{
    edge_peer_send_frame(p, WS_OP_TEXT, true, s, strlen(s));
}

/*
 * Reads one server frame (payload under 64 KiB, NUL-terminated into out,
 * its length in *plen when plen is not NULL). Returns the opcode, -1 when
 * the stream ended first.
 */
static inline int edge_peer_read_frame(struct edge_peer *p, char *out, size_t cap, size_t *plen)
{
    for (;;) {
        if (p->rlen >= 2) {
            size_t h = 2, len = p->rbuf[1] & 0x7f;

            ck_assert_int_eq(p->rbuf[1] & 0x80, 0); /* server frames are never masked */
            if (len == 126) {
                len = p->rlen >= 4 ? ((size_t)p->rbuf[2] << 8) | p->rbuf[3] : SIZE_MAX;
                h = 4;
            }
            if (len != SIZE_MAX && p->rlen >= h + len) {
                int op = p->rbuf[0] & 0x0f;

                ck_assert_uint_lt(len, cap);
                memcpy(out, p->rbuf + h, len);
                out[len] = '\0';
                if (plen)
                    *plen = len;
                edge_peer_consume(p, h + len);
                return op;
            }
        }
        if (!p->fill(p))
            return -1;
    }
}

/* The next frame is text, exactly want. */
static inline void edge_peer_expect_text(struct edge_peer *p, const char *want)
{
    static char buf[70000];

    ck_assert_int_eq(edge_peer_read_frame(p, buf, sizeof(buf), NULL), WS_OP_TEXT);
    ck_assert_str_eq(buf, want);
}

/* The next frame is a close with this status code, and this reason unless reason is NULL. */
static inline void edge_peer_expect_close(struct edge_peer *p, uint16_t code, const char *reason)
{
    char buf[256];
    size_t n = 0;

    ck_assert_int_eq(edge_peer_read_frame(p, buf, sizeof(buf), &n), WS_OP_CLOSE);
    ck_assert_uint_ge(n, 2);
    ck_assert_uint_eq(((uint8_t)buf[0] << 8) | (uint8_t)buf[1], code);
    if (reason)
        ck_assert_str_eq(buf + 2, reason);
}

/* The stream ends before another frame. */
static inline void edge_peer_expect_eof(struct edge_peer *p)
{
    char buf[4096];

    ck_assert_int_eq(edge_peer_read_frame(p, buf, sizeof(buf), NULL), -1);
}

/* ---------- HTTP ---------- */

#define EDGE_PEER_KEY    "dGhlIHNhbXBsZSBub25jZQ==" /* RFC 6455's sample nonce */
#define EDGE_PEER_ACCEPT "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

/* Reads an HTTP response through its blank line (and the body to the end when to_eof). */
static inline void edge_peer_read_http(struct edge_peer *p, char *out, size_t cap, bool to_eof)
{
    for (;;) {
        char *end;

        p->rbuf[p->rlen] = '\0';
        end = strstr((char *)p->rbuf, "\r\n\r\n");
        if (end && !to_eof) {
            size_t n = (size_t)(end + 4 - (char *)p->rbuf);

            ck_assert_uint_lt(n, cap);
            memcpy(out, p->rbuf, n);
            out[n] = '\0';
            edge_peer_consume(p, n);
            return;
        }
        if (!p->fill(p) && to_eof) {
            ck_assert_uint_lt(p->rlen, cap);
            memcpy(out, p->rbuf, p->rlen);
            out[p->rlen] = '\0';
            p->rlen = 0;
            return;
        }
    }
}

/*
 * Sends an upgrade request for target with EDGE_PEER_KEY, then the header
 * lines in headers (each ending in \r\n: the version, a token), then the
 * blank line.
 */
static inline void edge_peer_send_request(struct edge_peer *p, const char *target,
                                          const char *headers)
{
    static char req[8192];
    int n = snprintf(req, sizeof(req),
                     "GET %s HTTP/1.1\r\nHost: edge\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Key: " EDGE_PEER_KEY "\r\n%s\r\n",
                     target, headers);

    ck_assert_int_lt(n, (int)sizeof(req));
    edge_peer_send(p, req, (size_t)n);
}

/* Sends a version-13 upgrade request for target with the header lines in extra ("" for none). */
static inline void edge_peer_send_upgrade(struct edge_peer *p, const char *target,
                                          const char *extra)
{
    static char headers[6144];
    int n = snprintf(headers, sizeof(headers), "Sec-WebSocket-Version: 13\r\n%s", extra);

    ck_assert_int_lt(n, (int)sizeof(headers));
    edge_peer_send_request(p, target, headers);
}

/* The upgrade succeeds: 101 with the right Accept, and the connection is open. */
static inline void edge_peer_handshake(struct edge_peer *p, const char *target, const char *extra)
{
    char head[1024];

    edge_peer_send_upgrade(p, target, extra);
    edge_peer_read_http(p, head, sizeof(head), false);
    ck_assert_msg(strncmp(head, "HTTP/1.1 101 ", 13) == 0, "got: %s", head);
    ck_assert_ptr_nonnull(strstr(head, "Sec-WebSocket-Accept: " EDGE_PEER_ACCEPT "\r\n"));
    ck_assert_int_eq(p->cl->state, CLIENT_OPEN);
}

/* An idle connection holds no buffer of the pool (docs/architecture.md §4.1). */
static inline void edge_peer_assert_idle(struct edge_peer *p)
{
    struct pool_stats ps;

    ck_assert_ptr_null(p->cl->in);
    ck_assert_ptr_null(p->cl->msg);
    ck_assert_ptr_null(p->cl->out);
    ck_assert_ptr_null(p->cl->pending);
    pool_get_stats(p->w->h.pool, &ps);
    ck_assert_uint_eq(ps.chunks_in_use, 0);
    ck_assert_uint_eq(ps.evbuffers_in_use, 0);
}

#endif

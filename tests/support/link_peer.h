#ifndef HERALD_TESTS_SUPPORT_LINK_PEER_H
#define HERALD_TESTS_SUPPORT_LINK_PEER_H

#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>
#include <msgpack.h>

#include "common/link_codec.h"
#include "common/net.h"

/*
 * The broker's end of the link, for unit suites that drive the edge's
 * uplink (edge/uplink.c) over real TCP: a listening socket on 127.0.0.1 that
 * the test accepts on and speaks the link protocol to with
 * common/link_codec. Everything runs in the test's one thread: while the
 * peer waits for a connection or a frame it runs the uplink's event_base
 * without blocking, a millisecond at a time, so both ends make progress.
 *
 *   struct link_peer p;
 *   link_peer_open(&p, base);          p.addr is the uplink's "host:port"
 *   link_peer_accept(&p, 2000);        the uplink connected
 *   link_peer_expect(&p, LINK_HELLO);  p.f is the frame
 *   link_encode_welcome(&p.sb, "b", 1, 0);
 *   link_peer_flush(&p);               writes what p.sb holds
 *
 * To know the uplink has handled what was sent to it, or has sent all it
 * was going to, link_peer_sync() sends a PING and reads up to its PONG: one
 * TCP stream keeps the order, so no quiet period has to be waited out (the
 * uplink's socket has Nagle's algorithm on, so its small frames may lag
 * behind a delayed ACK by tens of milliseconds). The peer's own socket has
 * TCP_NODELAY.
 *
 * p.f's views are borrowed until the next read. Times are milliseconds.
 */

struct link_peer {
    struct event_base *base; /* the uplink's: run while waiting */
    int lfd;                 /* listening socket */
    int fd;                  /* the accepted link, or -1 */
    char addr[32];           /* "127.0.0.1:<port>" */
    struct link_decoder *dec;
    struct link_frame f;  /* the last frame read */
    msgpack_sbuffer sb;   /* frames to send: encode into it, then link_peer_flush */
    uint64_t accepted_ms; /* net_now_ms() at the last accept */
    uint64_t token;       /* of the last PING link_peer_ping sent */
};

/* Runs base's ready events and due timers, then waits up to 1 ms for fd (or just 1 ms). */
static inline void link_peer_step(struct link_peer *p, int fd)
{
    struct pollfd pfd = {.fd = fd, .events = POLLIN};

    event_base_loop(p->base, EVLOOP_NONBLOCK);
    poll(&pfd, fd >= 0 ? 1 : 0, 1);
    event_base_loop(p->base, EVLOOP_NONBLOCK);
}

/* Runs base for ms milliseconds, reading nothing. */
static inline void link_peer_run(struct link_peer *p, int ms)
{
    uint64_t end = net_now_ms() + (uint64_t)ms;

    while (net_now_ms() < end)
        link_peer_step(p, -1);
}

static inline void link_peer_open(struct link_peer *p, struct event_base *base)
{
    const char *err = "";

    memset(p, 0, sizeof(*p));
    p->base = base;
    p->fd = -1;
    p->lfd = net_listen("127.0.0.1", 0, false, 16, &err);
    ck_assert_msg(p->lfd >= 0, "net_listen: %s", err);
    snprintf(p->addr, sizeof(p->addr), "127.0.0.1:%d", net_local_port(p->lfd));
    msgpack_sbuffer_init(&p->sb);
}

/* Closes the accepted link (the uplink sees EOF); the listener stays. */
static inline void link_peer_drop(struct link_peer *p)
{
    if (p->fd >= 0)
        close(p->fd);
    p->fd = -1;
    link_decoder_free(p->dec);
    p->dec = NULL;
}

static inline void link_peer_close(struct link_peer *p)
{
    link_peer_drop(p);
    if (p->lfd >= 0)
        close(p->lfd);
    p->lfd = -1;
    msgpack_sbuffer_destroy(&p->sb);
}

/*
 * Waits up to ms for the uplink to connect; returns true with the link in
 * p->fd (an earlier one is dropped first) and its time in p->accepted_ms.
 */
static inline bool link_peer_accept(struct link_peer *p, int ms)
{
    uint64_t end = net_now_ms() + (uint64_t)ms;

    link_peer_drop(p);
    do {
        int fd = accept4(p->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

        if (fd >= 0) {
            int one = 1;

            ck_assert_int_eq(setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)), 0);
            p->fd = fd;
            p->accepted_ms = net_now_ms();
            p->dec = link_decoder_new(1u << 20);
            return true;
        }
        ck_assert_msg(errno == EAGAIN || errno == EWOULDBLOCK, "accept: %s", strerror(errno));
        link_peer_step(p, p->lfd);
    } while (net_now_ms() < end);
    return false;
}

/*
 * Waits up to ms for the uplink's next frame. Returns 1 with it in p->f, 0
 * when none came in time, -1 when the uplink closed the link (EOF or reset).
 */
static inline int link_peer_read(struct link_peer *p, int ms)
{
    uint64_t end = net_now_ms() + (uint64_t)ms;
    const char *err = "";

    ck_assert_int_ge(p->fd, 0);
    for (;;) {
        char buf[4096];
        ssize_t n;
        int rc = link_decoder_next(p->dec, &p->f, &err);

        ck_assert_msg(rc >= 0, "the uplink sent a malformed frame: %s", err);
        if (rc == 1)
            return 1;
        n = read(p->fd, buf, sizeof(buf));
        if (n > 0) {
            ck_assert_int_eq(link_decoder_feed(p->dec, buf, (size_t)n, &err), 0);
            continue;
        }
        if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK))
            return -1;
        if (net_now_ms() >= end)
            return 0;
        link_peer_step(p, p->fd);
    }
}

/* Reads the next frame into p->f, failing when none comes within 2 s or the link closes. */
static inline void link_peer_next(struct link_peer *p)
{
    int rc = link_peer_read(p, 2000);

    ck_assert_msg(rc == 1, "waiting for a frame: %s",
                  rc == 0 ? "nothing came" : "the uplink closed the link");
}

/* Reads the next frame and checks its type. */
static inline void link_peer_expect(struct link_peer *p, enum link_type type)
{
    int rc = link_peer_read(p, 2000);

    ck_assert_msg(rc == 1, "waiting for %s: %s", link_type_name(type),
                  rc == 0 ? "nothing came" : "the uplink closed the link");
    ck_assert_msg(p->f.type == type, "got %s, want %s", link_type_name(p->f.type),
                  link_type_name(type));
}

/* Reads the next frame: a SUB or UNSUB (type) of exactly pattern. */
static inline void link_peer_expect_pattern(struct link_peer *p, enum link_type type,
                                            const char *pattern)
{
    link_peer_expect(p, type);
    ck_assert_msg(
        p->f.topic.len == strlen(pattern) && memcmp(p->f.topic.ptr, pattern, p->f.topic.len) == 0,
        "%s '%.*s', want '%s'", link_type_name(type), (int)p->f.topic.len, p->f.topic.ptr, pattern);
}

/* Waits up to ms for the uplink to close the link; frames before that are skipped. */
static inline bool link_peer_wait_eof(struct link_peer *p, int ms)
{
    uint64_t end = net_now_ms() + (uint64_t)ms;

    for (;;) {
        uint64_t now = net_now_ms();
        int rc = link_peer_read(p, now < end ? (int)(end - now) : 0);

        if (rc != 1)
            return rc < 0;
    }
}

/* Writes what p->sb holds to the uplink and clears it. */
static inline void link_peer_flush(struct link_peer *p)
{
    size_t off = 0;

    ck_assert_int_ge(p->fd, 0);
    while (off < p->sb.size) {
        ssize_t n = write(p->fd, p->sb.data + off, p->sb.size - off);

        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            link_peer_step(p, -1);
            continue;
        }
        ck_assert_msg(n > 0, "write to the uplink: %s", strerror(errno));
        off += (size_t)n;
    }
    msgpack_sbuffer_clear(&p->sb);
}

/* Writes raw bytes (a malformed frame, say). */
static inline void link_peer_write_raw(struct link_peer *p, const void *data, size_t len)
{
    msgpack_sbuffer_write(&p->sb, data, len);
    link_peer_flush(p);
}

/* Sends a PING with a new token (p->token); the uplink answers any PING with a PONG. */
static inline void link_peer_ping(struct link_peer *p)
{
    link_encode_ping(&p->sb, ++p->token);
    link_peer_flush(p);
}

/*
 * Sends a PING and checks that the next frame is its PONG: the uplink has
 * then handled everything sent before, and sent nothing else meanwhile.
 */
static inline void link_peer_sync(struct link_peer *p)
{
    link_peer_ping(p);
    link_peer_expect(p, LINK_PONG);
    ck_assert_uint_eq(p->f.token, p->token);
}

/* Accepts, checks the HELLO, answers WELCOME with this pattern limit (0: no limit). */
static inline void link_peer_welcome(struct link_peer *p, uint64_t max_subscriptions)
{
    ck_assert_msg(link_peer_accept(p, 5000), "the uplink did not connect");
    link_peer_expect(p, LINK_HELLO);
    link_encode_welcome(&p->sb, "test-broker", 1, max_subscriptions);
    link_peer_flush(p);
}

#endif

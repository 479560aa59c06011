/*
 * client_tls.c - TLS under one edge client connection (wss).
 *
 * Owns the SSL object of a connection on a TLS port (client_ssl) and the
 * calls that replace the plain port's read(), send(), evbuffer_write() and
 * shutdown() in client.c's syscall layer. Everything above that layer -
 * the request head, frames, ops, output queue, limits and deadlines - is
 * the plain port's, on plaintext.
 *
 * Where it lives. Not in struct client: a pointer there cost every
 * connection, plain ones included, a larger struct (224 bytes instead of
 * 216, a 240-byte malloc chunk instead of 224; bench/edge.sh, 15,000 idle
 * plain connections: 460 B each against 446 B). It sits in the hub's
 * per-slot array h->ssls, allocated only on a TLS port, like a token's
 * grant (client_auth.c): hub_retire_client moves it with its client when
 * the O(1) swap gives the client a new slot. It is freed once, by
 * client_abort (client_tls_detach), before the fd is closed and the slot
 * passes to another client. Nothing above the syscall layer touches it,
 * and a closed client reads as having none (client_ssl), so a caller still
 * up the stack with the closed struct never reaches another client's
 * object.
 *
 * Memory (docs/architecture.md §4.10). The SSL object reads and writes the
 * socket through OpenSSL's socket BIO, with no read-ahead, so it never
 * holds more than the record in progress; its contexts carry
 * SSL_MODE_RELEASE_BUFFERS (common/tls.c), so its ~17 KiB read and write
 * record buffers exist only while a record is partly read or partly
 * written. Plaintext goes straight into the worker's scratch, and output is
 * written from the connection's own queue (its pending frame or borrowed
 * evbuffer): a record's bytes that span several chains are gathered into a
 * 16 KiB staging area per thread, not per connection. An idle TLS
 * connection is struct client plus its SSL object (the session, the
 * record ciphers' keys, the BIO) and the 8-byte slot pointing to it,
 * measured in the README's "TLS" section.
 *
 * Reads. One SSL_read per readable event, then whatever plaintext OpenSSL
 * already decrypted (SSL_pending): no socket event would announce that.
 * The handshake is driven by these reads (SSL_set_accept_state), so
 * handshake-timeout bounds it like a slow request head. A read may need to
 * write (the handshake's own messages, a KeyUpdate's answer): then
 * client_tls_wants_write() is true, and client.c waits for EV_WRITE alone
 * (the peer's unread bytes would otherwise wake the loop in a spin) and
 * retries the read when the socket drains.
 *
 * The ClientHello guard. OpenSSL allocates a buffer for the length a
 * ClientHello declares (up to 131,396 bytes, a third more with BUF_MEM's
 * growth) as soon as it has read the 9 bytes that declare it, and keeps it
 * for the handshake: 9 bytes made a connection hold 210,352 bytes until
 * handshake-timeout (measured with glibc). So before OpenSSL reads a
 * ClientHello (the first bytes of a connection, and the second ClientHello
 * after a HelloRetryRequest) the socket is peeked: a handshake record whose
 * first segment holds the record header and the ClientHello header,
 * declaring at most TLS_HELLO_MAX (common/tls.h) bytes (the 16 KiB OpenSSL's
 * handshake buffer starts with), or the connection is refused. With it a
 * stalled handshake holds ~72 KB until the timeout. Real clients write their
 * ClientHello at once (1 to 2 KiB today, post-quantum key shares
 * included); a peer that trickles it out byte by byte is refused at once
 * instead of being held. TLS 1.3's dummy ChangeCipherSpec before the
 * second ClientHello carries nothing and is consumed here.
 *
 * Writes. SSL_MODE_ENABLE_PARTIAL_WRITE: each SSL_write takes one record.
 * After a full socket OpenSSL keeps that record (encrypted) and must be
 * offered the same bytes again, at least as many: the callers offer
 * min(queued, CLIENT_TLS_RECORD) bytes from the head of a queue that only
 * grows until a write reports bytes taken, so that holds
 * (SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER lets the address change).
 *
 * Errors. Nothing here closes the connection: -1 tells client.c it is
 * over, after the reason was counted (tls_handshake_failures before the
 * handshake completed, tls_errors after it for real TLS errors; a
 * close_notify, an EOF or a reset after the handshake is an ordinary end)
 * and logged. OpenSSL's error queue is per thread and must be empty before
 * each call for SSL_get_error to be right: it is cleared before each one.
 *
 * Rejected: a bufferevent_openssl per connection (a bufferevent and its
 * two evbuffers per connection, what §9.1 removed), a memory BIO pair (two
 * more buffers and a copy of every byte), SSL_read into a per-connection
 * buffer (the scratch serves every connection of the worker).
 */
#include "edge/client_tls.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "common/log.h"
#include "common/net.h"
#include "common/tls.h"
#include "edge/client.h"
#include "edge/hub.h"

#define REC_CCS       20 /* TLS record content types */
#define REC_HANDSHAKE 22
#define PEER_MAX      64

/* Gathers a record's bytes that span evbuffer chains (one per worker thread). */
static _Thread_local uint8_t stage[CLIENT_TLS_RECORD];

static int fd_of(const struct client *c)
{
    return (int)event_get_fd(&c->ev);
}

struct ssl_st *client_ssl(const struct client *c)
{
    const struct hub *h = c->h;

    /* A closed client's index names another client's slot now (hub_retire_client). */
    return h->ssls && c->state != CLIENT_CLOSED ? h->ssls[c->index] : NULL;
}

SSL *client_tls_new(const struct client *c, int fd)
{
    SSL_CTX *ctx = tls_server_ctx(c->h->tls);
    char why[256];
    SSL *ssl;

    ERR_clear_error();
    ssl = SSL_new(ctx);
    SSL_CTX_free(ctx); /* the SSL object holds its own reference */
    if (ssl && SSL_set_fd(ssl, fd) == 1) {
        SSL_set_accept_state(ssl);
        return ssl;
    }
    tls_error_text(why, sizeof(why));
    log_error("tls_setup_failed", "conn=%u reason=\"%s\"", c->id, why);
    SSL_free(ssl);
    return NULL;
}

void client_tls_attach(struct client *c, SSL *ssl)
{
    struct hub *h = c->h;

    assert(h->ssls && !h->ssls[c->index]); /* the array exists whenever h->tls is set */
    h->ssls[c->index] = ssl;
}

void client_tls_detach(struct client *c)
{
    struct hub *h = c->h;

    if (!h->ssls)
        return;
    SSL_free(h->ssls[c->index]);
    h->ssls[c->index] = NULL;
}

bool client_tls_wants_write(const struct client *c)
{
    SSL *ssl = client_ssl(c);

    return ssl && SSL_want_write(ssl);
}

/*
 * True once the handshake completed: both Finished messages exchanged.
 * Not SSL_is_init_finished(), which a fatal error (and a KeyUpdate in
 * progress) turns false again: an error right after the handshake must
 * count as an error, and a KeyUpdate is no second handshake.
 */
static bool handshake_done(const SSL *ssl)
{
    uint8_t md[1];

    return SSL_get_finished(ssl, md, sizeof(md)) > 0 &&
           SSL_get_peer_finished(ssl, md, sizeof(md)) > 0;
}

/* ---------- ends ---------- */

/* The handshake failed before it completed: count and log. Returns -1. */
static ssize_t handshake_failed(struct client *c, const char *why)
{
    c->h->stats.tls_handshake_failures++;
    if (log_enabled(LOG_LEVEL_DEBUG)) {
        char peer[PEER_MAX];

        net_peer_name(fd_of(c), peer, sizeof(peer));
        log_debug("tls_handshake_failed", "conn=%u peer=%s reason=\"%s\"", c->id, peer, why);
    }
    return -1;
}

/*
 * An SSL call ended the connection (err: SSL_get_error, sys: errno right
 * after it): count, log, clear OpenSSL's queue. Returns -1.
 */
static ssize_t tls_over(struct client *c, int err, int sys)
{
    SSL *ssl = client_ssl(c);
    unsigned long e = ERR_peek_error();
    bool eof = err == SSL_ERROR_ZERO_RETURN || err == SSL_ERROR_SYSCALL ||
               (err == SSL_ERROR_SSL && ERR_GET_REASON(e) == SSL_R_UNEXPECTED_EOF_WHILE_READING);
    char why[256];

    if (err == SSL_ERROR_SSL)
        tls_error_text(why, sizeof(why));
    else if (err == SSL_ERROR_SYSCALL && sys != 0)
        snprintf(why, sizeof(why), "%s", strerror(sys));
    else
        snprintf(why, sizeof(why), "%s", err == SSL_ERROR_ZERO_RETURN ? "close_notify" : "EOF");
    ERR_clear_error();
    if (!handshake_done(ssl)) {
        /* A connection that closes before sending a byte (a port probe) is no handshake. */
        if (eof && BIO_number_read(SSL_get_rbio(ssl)) == 0)
            return -1;
        return handshake_failed(c, why);
    }
    if (eof) {
        log_debug("tls_closed", "conn=%u reason=\"%s\"", c->id, why);
        return -1;
    }
    c->h->stats.tls_errors++;
    if (log_enabled(LOG_LEVEL_INFO)) {
        char peer[PEER_MAX];

        net_peer_name(fd_of(c), peer, sizeof(peer));
        log_info("tls_error", "conn=%u peer=%s reason=\"%s\"", c->id, peer, why);
    }
    return -1;
}

/* ---------- the ClientHello guard (see the design note) ---------- */

/* Judges the first record peeked (b[0..n)): NULL when OpenSSL may read it, else why not. */
static const char *judge_record(const uint8_t *b, size_t n, bool first)
{
    if (n < 5)
        return "TLS record header split across segments";
    if (b[0] != REC_HANDSHAKE)
        return first ? "not a TLS handshake" : NULL; /* later: encrypted records, alerts */
    if (n < 9)
        return "ClientHello header split across segments";
    return tls_hello_check(b);
}

/*
 * Before OpenSSL reads a ClientHello: 1 to let it read, 0 when nothing has
 * arrived, -1 when the connection was refused (counted, logged).
 */
static int hello_guard(struct client *c)
{
    static const uint8_t ccs[6] = {REC_CCS, 3, 3, 0, 1, 1};
    OSSL_HANDSHAKE_STATE st = SSL_get_state(client_ssl(c));
    bool skipped = false;
    const char *why;
    uint8_t b[9];

    /* TLS_ST_EARLY_DATA: after a HelloRetryRequest (a second ClientHello
     * may come) or after our Finished (encrypted records come). */
    if (st != TLS_ST_BEFORE && st != TLS_ST_EARLY_DATA)
        return 1;
    for (;;) {
        ssize_t n = recv(fd_of(c), b, sizeof(b), MSG_PEEK | MSG_DONTWAIT);

        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
            return 0;
        if (n <= 0)
            return 1; /* EOF or a reset: SSL_read reports it */
        if (st == TLS_ST_EARLY_DATA && !skipped && (size_t)n >= sizeof(ccs) &&
            memcmp(b, ccs, sizeof(ccs)) == 0) {
            /* TLS 1.3's dummy ChangeCipherSpec: nothing for OpenSSL to see. */
            if (recv(fd_of(c), b, sizeof(ccs), MSG_DONTWAIT) != (ssize_t)sizeof(ccs)) {
                handshake_failed(c, "short read of a peeked record");
                return -1;
            }
            skipped = true;
            continue;
        }
        why = judge_record(b, (size_t)n, st == TLS_ST_BEFORE);
        if (!why)
            return 1;
        handshake_failed(c, why);
        return -1;
    }
}

/* ---------- reading ---------- */

ssize_t client_tls_read(struct client *c, uint8_t *buf, size_t room)
{
    SSL *ssl = client_ssl(c);
    bool was_up = handshake_done(ssl);
    size_t got = 0, n = 0;
    int err, sys, g;

    if (!was_up && (g = hello_guard(c)) <= 0)
        return g;
    ERR_clear_error();
    errno = 0;
    if (SSL_read_ex(ssl, buf, room, &n) != 1) {
        sys = errno;
        err = SSL_get_error(ssl, 0);
        if (!was_up && handshake_done(ssl))
            c->h->stats.tls_handshakes++; /* done, with no application data yet */
        if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE)
            return 0;
        return tls_over(c, err, sys);
    }
    if (!was_up)
        c->h->stats.tls_handshakes++;
    got = n;
    /* Plaintext OpenSSL holds already (a record larger than room) wakes no event. */
    while (got < room && SSL_pending(ssl) > 0 && SSL_read_ex(ssl, buf + got, room - got, &n))
        got += n;
    return (ssize_t)got;
}

/* ---------- writing ---------- */

ssize_t client_tls_write(struct client *c, const void *buf, size_t len)
{
    SSL *ssl = client_ssl(c);
    size_t n = 0;
    int err, sys;

    if (len > CLIENT_TLS_RECORD)
        len = CLIENT_TLS_RECORD;
    ERR_clear_error();
    errno = 0;
    if (SSL_write_ex(ssl, buf, len, &n) == 1)
        return (ssize_t)n;
    sys = errno;
    err = SSL_get_error(ssl, 0);
    if (err == SSL_ERROR_WANT_WRITE)
        return 0;
    if (err == SSL_ERROR_WANT_READ) {
        /* Only a peer that left a handshake message half sent (TLS 1.3
         * post-handshake) makes a write wait for input: waiting for EV_WRITE
         * would spin, so it ends here. */
        ERR_clear_error();
        c->h->stats.tls_errors++;
        log_info("tls_error", "conn=%u reason=\"write waits for a half-sent handshake message\"",
                 c->id);
        return -1;
    }
    return tls_over(c, err, sys);
}

ssize_t client_tls_write_evbuffer(struct client *c, struct evbuffer *out)
{
    size_t total = 0;

    for (;;) {
        size_t len = evbuffer_get_length(out);
        size_t want = len < CLIENT_TLS_RECORD ? len : CLIENT_TLS_RECORD;
        struct evbuffer_iovec v;
        const void *p = stage;
        ssize_t n;

        if (want == 0)
            return (ssize_t)total;
        if (evbuffer_peek(out, (ev_ssize_t)want, NULL, &v, 1) >= 1 && v.iov_len >= want)
            p = v.iov_base; /* one chain holds the record: no copy */
        else if (evbuffer_copyout(out, stage, want) != (ev_ssize_t)want)
            return -1;
        n = client_tls_write(c, p, want);
        if (n < 0)
            return -1;
        if (n == 0)
            return (ssize_t)total;
        evbuffer_drain(out, (size_t)n);
        total += (size_t)n;
    }
}

int client_tls_close_notify(struct client *c)
{
    SSL *ssl = client_ssl(c);
    int rc, err, sys;

    ERR_clear_error();
    errno = 0;
    rc = SSL_shutdown(ssl);
    if (rc >= 0)
        return 1; /* 0: sent, the peer's not seen yet (it need not be) */
    sys = errno;
    err = SSL_get_error(ssl, rc);
    if (err == SSL_ERROR_WANT_WRITE)
        return 0;
    if (err == SSL_ERROR_WANT_READ) {
        ERR_clear_error();
        return 1; /* ours went out; only the peer's is missing */
    }
    tls_over(c, err, sys);
    return -1;
}

#ifndef HERALD_EDGE_CLIENT_TLS_H
#define HERALD_EDGE_CLIENT_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/*
 * TLS under one edge client connection (wss, docs/architecture.md §4.10):
 * the calls client.c's syscall layer makes instead of read(), send(),
 * evbuffer_write() and shutdown() when c has an SSL object (client_ssl,
 * client.h: its hub's per-slot array holds it). They never close c:
 * -1 means the connection is over (counted and logged here), and the caller
 * aborts it. None of them keeps a buffer of its own: plaintext is read into
 * the caller's buffer (the worker's scratch) and written from the caller's
 * queue, and OpenSSL releases its record buffers whenever they are empty
 * (SSL_MODE_RELEASE_BUFFERS, common/tls.h).
 */

struct client;
struct evbuffer;
struct ssl_st;

/*
 * Returns a new SSL object for c's socket fd (borrowed: c closes it), from
 * the certificate c's hub's tls_server holds now, in accept state; the
 * caller owns it until client_tls_attach takes it. c need not be in its
 * hub's array yet (client_new makes it before hub_add_client). NULL (logged)
 * when OpenSSL cannot allocate it.
 */
struct ssl_st *client_tls_new(const struct client *c, int fd);

/* Takes ssl as c's SSL object, into c's slot of its hub (c registered by hub_add_client). */
void client_tls_attach(struct client *c, struct ssl_st *ssl);

/*
 * Frees c's SSL object without a close_notify (c is being aborted, before
 * its fd is closed and its slot is given to another client) and clears its
 * slot. Nothing to do on a plain port.
 */
void client_tls_detach(struct client *c);

/*
 * Reads plaintext into buf[0..room): what one SSL_read takes from the
 * socket (one record at most; the TLS handshake first) plus any plaintext
 * OpenSSL already holds, which no socket event would announce. Before
 * OpenSSL reads the connection's first byte, the first 9 bytes are checked
 * without consuming them: a TLS handshake record holding a ClientHello of
 * at most TLS_HELLO_MAX (common/tls.h) bytes, its header whole in the first
 * segment (OpenSSL would allocate what a ClientHello declares, up to
 * 128 KiB and a third more, as soon as it reads those bytes).
 * Returns the bytes read; 0 when nothing is readable yet (then, when
 * client_tls_wants_write(c), the handshake waits for the socket to become
 * writable); -1 when the connection is over: close_notify, EOF, or a TLS
 * error (counted in c's hub, logged).
 */
ssize_t client_tls_read(struct client *c, uint8_t *buf, size_t room);

/*
 * Writes the first bytes of buf[0..len) as one record (at most
 * CLIENT_TLS_RECORD bytes). After a 0, the next call must start with the
 * same bytes and at least as many of them, up to CLIENT_TLS_RECORD (OpenSSL
 * has encrypted them already): callers pass min(queued, CLIENT_TLS_RECORD)
 * from the head of a queue that only grows until bytes are reported taken.
 * Returns the bytes taken, 0 when the socket is full, -1 on an error
 * (counted, logged).
 */
ssize_t client_tls_write(struct client *c, const void *buf, size_t len);

/*
 * Writes out's head record by record (client_tls_write's rule), draining
 * what is taken, until out is empty or the socket is full. A record whose
 * bytes span several chains is gathered into a per-thread 16 KiB staging
 * area. Returns the bytes taken (0 or more) or -1 on an error.
 */
ssize_t client_tls_write_evbuffer(struct client *c, struct evbuffer *out);

/* Sends close_notify. Returns 1 once it is sent, 0 when the socket is full, -1 on an error. */
int client_tls_close_notify(struct client *c);

/* True when c's last TLS call is waiting for the socket to become writable. */
bool client_tls_wants_write(const struct client *c);

#define CLIENT_TLS_RECORD 16384 /* largest TLS plaintext record */

#endif

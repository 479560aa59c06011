#ifndef HERALD_COMMON_TLS_H
#define HERALD_COMMON_TLS_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

/*
 * TLS contexts (OpenSSL from Debian), shared by the edge's WebSocket port,
 * the broker's link listener and the edge's link client.
 *
 * Memory (docs/architecture.md §4.1): every context is made with
 * SSL_MODE_RELEASE_BUFFERS, so an idle TLS connection holds no record
 * buffers (OpenSSL frees them whenever they are empty), with
 * SSL_MODE_ENABLE_PARTIAL_WRITE and SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER
 * (callers retry a write from a queue that may have moved), no server-side
 * session cache (stateless tickets only: a cache would grow with every
 * client), renegotiation off, TLS 1.2 at least.
 *
 * A server context is reloadable: struct tls_server holds the current
 * SSL_CTX behind a mutex; tls_server_ctx() hands out a new reference for
 * one connection, tls_server_reload() (SIGHUP) builds a new context from
 * the same files and swaps it in only when it loads, so a bad file keeps
 * the old certificate serving. Connections keep the context they started
 * with (SSL_new takes its own reference).
 */

struct tls_server {
    pthread_mutex_t lock;
    SSL_CTX *ctx; /* current context, under lock */
    char *cert_file;
    char *key_file;
    uint64_t reloads;         /* successful reloads */
    uint64_t reload_failures; /* reloads that kept the old context */
};

/*
 * Loads cert_file (a PEM chain, leaf first) and key_file into a new server
 * context. Returns 0, or -1 with a message in err naming the file and
 * OpenSSL's reason.
 */
int tls_server_init(struct tls_server *t, const char *cert_file, const char *key_file, char *err,
                    size_t errlen);

/* Re-reads the files; on failure keeps the current context. Returns 0 or -1 with err. */
int tls_server_reload(struct tls_server *t, char *err, size_t errlen);

/* A new reference to the current context (release with SSL_CTX_free). */
SSL_CTX *tls_server_ctx(struct tls_server *t);

/* Frees the holder (connections keep their own references). Safe on a zeroed struct. */
void tls_server_free(struct tls_server *t);

/*
 * A client context that verifies the peer: against ca_file (PEM) when
 * given, else the system's default trust store. Returns NULL with err.
 */
SSL_CTX *tls_client_ctx_new(const char *ca_file, char *err, size_t errlen);

/*
 * Makes a client SSL verify that the peer's certificate names name (borrowed):
 * an IP address literal (v4 or v6) must be one of its IP subjectAltNames and
 * is not sent as SNI (RFC 6066 §3 forbids addresses there); anything else is
 * a DNS name, matched without partial wildcards, and sent as SNI. Call
 * before the handshake. Returns 0, or -1 (the name is not usable).
 */
int tls_client_set_name(SSL *ssl, const char *name);

/* The largest ClientHello a server here lets OpenSSL read: one record's 16 KiB less its header. */
#define TLS_HELLO_MAX 16380

/*
 * Judges the first 9 bytes of a client's plaintext handshake record: a
 * record header (type 22, version 3.x, at least 4 bytes long) and the
 * handshake header of a ClientHello declaring at most TLS_HELLO_MAX bytes.
 * OpenSSL allocates what a ClientHello declares as soon as it has read
 * these bytes (~210 KB for 131,396), so the edge and the broker's link ask
 * this first. Returns NULL when OpenSSL may read on, else why not (static).
 */
const char *tls_hello_check(const uint8_t h[9]);

/* Writes OpenSSL's queued errors (and clears the queue) as one line into buf. */
void tls_error_text(char *buf, size_t len);

#endif

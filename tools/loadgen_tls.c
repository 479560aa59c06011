/*
 * loadgen_tls.c - herald-loadgen's transport: a subscriber connection's
 * bytes go to the plain socket or, with --tls (wss://), through an OpenSSL
 * client object over the same non-blocking socket.
 *
 * One client context per run (common/tls.c: SSL_MODE_RELEASE_BUFFERS, so
 * an idle connection of the load generator holds no record buffers either,
 * and the generator can hold as many TLS connections as plain ones). With
 * --ca the server's chain is verified against that file and its
 * certificate must name the URL's host (an IP address or a DNS name);
 * without it nothing is verified: a benchmark measures the server, and the
 * load side need not prove who it talks to.
 *
 * The driver (loadgen.c) owns the socket, the event and the SSL object's
 * lifetime; this file only makes the OpenSSL calls and turns their results
 * into the driver's conventions. OpenSSL's error queue is per thread and
 * shared by every connection, so it is cleared before each call whose
 * result is read with SSL_get_error.
 *
 * Measured with bench/tls_mem.c: an idle client end holds about 17 KB in
 * OpenSSL (the SSL object 7.6 KB, the server's certificate as parsed, the
 * session, cipher contexts), after the read buffer is handed back below.
 *
 * Rejected: a memory BIO pair per connection (two more buffers to hold per
 * idle connection, and a copy); OpenSSL's socket BIO reads the socket
 * directly, one record at a time.
 */
#include "tools/loadgen.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "common/tls.h"

SSL_CTX *loadgen_tls_ctx(const char *ca_file, char *err, size_t errlen)
{
    SSL_CTX *ctx = tls_client_ctx_new(ca_file ? ca_file : "", err, errlen);

    if (ctx && !ca_file)
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    return ctx;
}

/* An IP literal is checked against the certificate's IP SANs, a name against its DNS names. */
static bool is_ip_literal(const char *host)
{
    struct in6_addr a6;
    struct in_addr a4;

    return inet_pton(AF_INET, host, &a4) == 1 || inet_pton(AF_INET6, host, &a6) == 1;
}

SSL *loadgen_tls_new(SSL_CTX *ctx, int fd, const char *host)
{
    SSL *ssl = SSL_new(ctx);
    bool ip = is_ip_literal(host);

    if (!ssl)
        return NULL;
    if (SSL_set_fd(ssl, fd) != 1)
        goto fail;
    /* RFC 6066 §3: no SNI for an address */
    if (!ip && SSL_set_tlsext_host_name(ssl, host) != 1)
        goto fail;
    if (SSL_get_verify_mode(ssl) & SSL_VERIFY_PEER) {
        if (ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host) != 1
               : SSL_set1_host(ssl, host) != 1)
            goto fail;
    }
    SSL_set_connect_state(ssl);
    return ssl;
fail:
    SSL_free(ssl);
    return NULL;
}

int loadgen_tls_handshake(SSL *ssl, bool *want_write, char *detail, size_t dlen)
{
    long verify;
    int r;

    ERR_clear_error();
    r = SSL_do_handshake(ssl);
    if (r == 1)
        return 1;
    switch (SSL_get_error(ssl, r)) {
    case SSL_ERROR_WANT_READ:
        *want_write = false;
        return 0;
    case SSL_ERROR_WANT_WRITE:
        *want_write = true;
        return 0;
    case SSL_ERROR_SYSCALL:
        if (ERR_peek_error() == 0) {
            snprintf(detail, dlen, "%s", errno ? strerror(errno) : "connection closed by the peer");
            return -1;
        }
        break;
    default:
        break;
    }
    verify = SSL_get_verify_result(ssl);
    if (verify != X509_V_OK) {
        ERR_clear_error();
        snprintf(detail, dlen, "certificate verification: %s",
                 X509_verify_cert_error_string(verify));
        return -2;
    }
    tls_error_text(detail, dlen);
    return -1;
}

ssize_t loadgen_tls_read(SSL *ssl, void *buf, size_t len)
{
    size_t got = 0;
    ssize_t r;

    ERR_clear_error();
    if (SSL_read_ex(ssl, buf, len, &got) == 1) {
        /* OpenSSL 3.0 keeps the read buffer (16.5 KB) after it has processed a post-handshake
         * message (the session tickets every TLS 1.3 server sends) despite
         * SSL_MODE_RELEASE_BUFFERS: give it back when it holds nothing */
        if (!SSL_has_pending(ssl))
            SSL_free_buffers(ssl);
        return (ssize_t)got;
    }
    switch (SSL_get_error(ssl, 0)) {
    case SSL_ERROR_WANT_READ:
        SSL_free_buffers(ssl); /* as above; a no-op while a partial record is held */
        return -2;
    case SSL_ERROR_WANT_WRITE: /* a key update being answered: retried at the next event */
        return -2;
    case SSL_ERROR_ZERO_RETURN: /* close_notify */
        return 0;
    case SSL_ERROR_SYSCALL:
        ERR_clear_error();
        return errno == 0 ? 0 : -1;
    default:
        /* OpenSSL 3 reports EOF without close_notify this way: the peer went away all the same */
        r = ERR_GET_REASON(ERR_peek_error()) == SSL_R_UNEXPECTED_EOF_WHILE_READING ? 0 : -1;
        ERR_clear_error();
        return r;
    }
}

int loadgen_send(int fd, SSL *ssl, const void *buf, size_t len)
{
    size_t done = 0;

    if (!ssl)
        return send(fd, buf, len, MSG_NOSIGNAL) == (ssize_t)len ? 0 : -1;
    /* a short write leaves the rest of a frame unsent: the connection is of no further use, as
     * with a short send() above */
    ERR_clear_error();
    if (SSL_write_ex(ssl, buf, len, &done) == 1 && done == len)
        return 0;
    ERR_clear_error();
    return -1;
}

void loadgen_tls_free(SSL *ssl)
{
    if (!ssl)
        return;
    /* close_notify when the handshake is done and the socket takes it; no wait for the answer */
    ERR_clear_error();
    if (SSL_is_init_finished(ssl))
        SSL_shutdown(ssl);
    ERR_clear_error();
    SSL_free(ssl);
}

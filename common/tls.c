/*
 * tls.c - OpenSSL contexts with the project's memory rules (common/tls.h).
 *
 * Rejected: a server-side session cache (OpenSSL's default keeps up to
 * 20,480 sessions, a few hundred bytes each, per context: memory that grows
 * with the number of clients rather than with what they do), and reading
 * the files on a worker thread (reload runs where the signal is handled;
 * workers only take a reference under the mutex).
 */
#include "common/tls.h"

#include <stdio.h>
#include <string.h>

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "common/mem.h"

void tls_error_text(char *buf, size_t len)
{
    unsigned long e;
    size_t off = 0;

    if (len == 0)
        return;
    buf[0] = '\0';
    while ((e = ERR_get_error()) != 0) {
        char one[256];
        int n;

        ERR_error_string_n(e, one, sizeof(one));
        n = snprintf(buf + off, len - off, "%s%s", off ? "; " : "", one);
        if (n < 0 || (size_t)n >= len - off)
            off = len - 1;
        else
            off += (size_t)n;
    }
    if (off == 0)
        snprintf(buf, len, "unknown TLS error");
}

/* The options every context shares (see the header). */
static void common_options(SSL_CTX *ctx)
{
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE |
                              SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
}

static SSL_CTX *server_ctx_load(const char *cert_file, const char *key_file, char *err,
                                size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    char why[512];

    ERR_clear_error();
    if (!ctx) {
        tls_error_text(why, sizeof(why));
        snprintf(err, errlen, "SSL_CTX_new: %s", why);
        return NULL;
    }
    common_options(ctx);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
        tls_error_text(why, sizeof(why));
        snprintf(err, errlen, "tls-cert-file %s: %s", cert_file, why);
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1) {
        tls_error_text(why, sizeof(why));
        snprintf(err, errlen, "tls-key-file %s: %s", key_file, why);
        goto fail;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        tls_error_text(why, sizeof(why));
        snprintf(err, errlen, "tls-key-file %s does not match tls-cert-file %s: %s", key_file,
                 cert_file, why);
        goto fail;
    }
    return ctx;
fail:
    SSL_CTX_free(ctx);
    return NULL;
}

int tls_server_init(struct tls_server *t, const char *cert_file, const char *key_file, char *err,
                    size_t errlen)
{
    memset(t, 0, sizeof(*t));
    t->ctx = server_ctx_load(cert_file, key_file, err, errlen);
    if (!t->ctx)
        return -1;
    pthread_mutex_init(&t->lock, NULL);
    t->cert_file = mem_strdup(cert_file);
    t->key_file = mem_strdup(key_file);
    return 0;
}

int tls_server_reload(struct tls_server *t, char *err, size_t errlen)
{
    SSL_CTX *fresh = server_ctx_load(t->cert_file, t->key_file, err, errlen), *old;

    pthread_mutex_lock(&t->lock);
    if (!fresh) {
        t->reload_failures++;
        pthread_mutex_unlock(&t->lock);
        return -1;
    }
    old = t->ctx;
    t->ctx = fresh;
    t->reloads++;
    pthread_mutex_unlock(&t->lock);
    SSL_CTX_free(old); /* connections made from it hold their own references */
    return 0;
}

SSL_CTX *tls_server_ctx(struct tls_server *t)
{
    SSL_CTX *ctx;

    pthread_mutex_lock(&t->lock);
    ctx = t->ctx;
    SSL_CTX_up_ref(ctx);
    pthread_mutex_unlock(&t->lock);
    return ctx;
}

void tls_server_free(struct tls_server *t)
{
    if (!t->ctx)
        return;
    SSL_CTX_free(t->ctx);
    t->ctx = NULL;
    pthread_mutex_destroy(&t->lock);
    mem_free(t->cert_file);
    mem_free(t->key_file);
    t->cert_file = t->key_file = NULL;
}

int tls_client_set_name(SSL *ssl, const char *name)
{
    unsigned char addr[16];

    if (!name || !*name)
        return -1;
    if (inet_pton(AF_INET, name, addr) == 1 || inet_pton(AF_INET6, name, addr) == 1)
        return X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name) == 1 ? 0 : -1;
    SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    if (SSL_set1_host(ssl, name) != 1 || SSL_set_tlsext_host_name(ssl, name) != 1)
        return -1;
    return 0;
}

SSL_CTX *tls_client_ctx_new(const char *ca_file, char *err, size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    char why[512];
    int ok;

    ERR_clear_error();
    if (!ctx) {
        tls_error_text(why, sizeof(why));
        snprintf(err, errlen, "SSL_CTX_new: %s", why);
        return NULL;
    }
    common_options(ctx);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    ok = ca_file && *ca_file ? SSL_CTX_load_verify_locations(ctx, ca_file, NULL)
                             : SSL_CTX_set_default_verify_paths(ctx);
    if (ok != 1) {
        tls_error_text(why, sizeof(why));
        snprintf(err, errlen, "CA file %s: %s", ca_file && *ca_file ? ca_file : "(system default)",
                 why);
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

const char *tls_hello_check(const uint8_t h[9])
{
    size_t rec_len = (size_t)h[3] << 8 | h[4];
    size_t hello_len = (size_t)h[6] << 16 | (size_t)h[7] << 8 | h[8];

    if (h[0] != 22 || h[1] != 3 || h[5] != 1 || rec_len < 4)
        return "not a TLS ClientHello";
    if (hello_len > TLS_HELLO_MAX)
        return "ClientHello larger than 16380 bytes";
    return NULL;
}

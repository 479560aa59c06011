/*
 * check_tls.c - common/tls: server contexts (options, loading, errors,
 * reload), client contexts (verification against a CA file), and the
 * memory rule they exist for: with SSL_MODE_RELEASE_BUFFERS a connection
 * holds OpenSSL's record buffers only while a record is partly read or
 * partly written (docs/architecture.md §4.10). Certificates are made by
 * the test with the OpenSSL API (tests/support/tls_cert.h); handshakes run
 * over non-blocking socketpairs in this process.
 */
#include "common/tls.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>

#include "tests/support/check_main.h"
#include "tests/support/heap.h"
#include "tests/support/tls_cert.h"

static struct test_cert cert;
static struct tls_server srv;
static char err[1024];

static void setup(void)
{
    signal(SIGPIPE, SIG_IGN);
    ck_assert(test_cert_init(&cert));
    memset(&srv, 0, sizeof(srv));
    err[0] = '\0';
}

static void teardown(void)
{
    tls_server_free(&srv);
    test_cert_remove(&cert);
}

/* ---------- a connection over a socketpair ---------- */

struct pair {
    SSL *s, *c; /* server and client ends */
    int fd[2];  /* [0] the server's socket, [1] the client's */
};

static void pair_open(struct pair *p, SSL_CTX *sctx, SSL_CTX *cctx)
{
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, p->fd), 0);
    p->s = SSL_new(sctx);
    p->c = SSL_new(cctx);
    ck_assert(p->s && p->c);
    SSL_set_fd(p->s, p->fd[0]);
    SSL_set_fd(p->c, p->fd[1]);
    SSL_set_accept_state(p->s);
    SSL_set_connect_state(p->c);
    SSL_set_tlsext_host_name(p->c, "localhost");
    SSL_set1_host(p->c, "localhost");
}

static void pair_close(struct pair *p)
{
    SSL_free(p->s);
    SSL_free(p->c);
    close(p->fd[0]);
    close(p->fd[1]);
}

static bool retry(SSL *s, int rc)
{
    int e = SSL_get_error(s, rc);

    return e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE;
}

/* Runs both handshakes; returns true when both completed. */
static bool pair_handshake(struct pair *p)
{
    bool sdone = false, cdone = false;

    for (int i = 0; i < 200 && !(sdone && cdone); i++) {
        int rc;

        if (!cdone) {
            rc = SSL_do_handshake(p->c);
            if (rc == 1)
                cdone = true;
            else if (!retry(p->c, rc))
                return false;
        }
        if (!sdone) {
            rc = SSL_do_handshake(p->s);
            if (rc == 1)
                sdone = true;
            else if (!retry(p->s, rc))
                return false;
        }
    }
    return sdone && cdone;
}

/* Reads exactly n bytes on ssl (the peer wrote them already). */
static void read_exact(SSL *ssl, char *buf, size_t n)
{
    size_t got = 0;

    for (int i = 0; i < 100 && got < n; i++) {
        size_t k = 0;

        if (SSL_read_ex(ssl, buf + got, n - got, &k) == 1)
            got += k;
        else
            ck_assert(retry(ssl, 0));
    }
    ck_assert_uint_eq(got, n);
}

/* A round trip each way, so the client has read the server's session tickets. */
static void pair_settle(struct pair *p)
{
    char b[4];
    size_t n;

    ck_assert_int_eq(SSL_write_ex(p->s, "ping", 4, &n), 1);
    read_exact(p->c, b, 4);
    ck_assert_int_eq(SSL_write_ex(p->c, "pong", 4, &n), 1);
    read_exact(p->s, b, 4);
    ck_assert_int_eq(memcmp(b, "pong", 4), 0);
}

static SSL_CTX *client_ctx(const char *ca)
{
    SSL_CTX *c = tls_client_ctx_new(ca, err, sizeof(err));

    ck_assert_msg(c != NULL, "tls_client_ctx_new: %s", err);
    return c;
}

/* ---------- contexts ---------- */

START_TEST(test_server_options)
{
    SSL_CTX *ctx;
    long mode;

    ck_assert_int_eq(tls_server_init(&srv, cert.cert, cert.key, err, sizeof(err)), 0);
    ctx = tls_server_ctx(&srv);
    mode = SSL_CTX_get_mode(ctx);
    ck_assert(mode & SSL_MODE_RELEASE_BUFFERS);
    ck_assert(mode & SSL_MODE_ENABLE_PARTIAL_WRITE);
    ck_assert(mode & SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    ck_assert_int_eq(SSL_CTX_get_session_cache_mode(ctx), SSL_SESS_CACHE_OFF);
    ck_assert_int_eq(SSL_CTX_get_min_proto_version(ctx), TLS1_2_VERSION);
    ck_assert(SSL_CTX_get_options(ctx) & SSL_OP_NO_RENEGOTIATION);
    ck_assert(SSL_CTX_get_options(ctx) & SSL_OP_NO_COMPRESSION);
    ck_assert_int_eq(test_cert_serial_of(SSL_CTX_get0_certificate(ctx)), 1);
    ck_assert_int_eq(SSL_CTX_get_read_ahead(ctx), 0); /* never more than the record in progress */
    SSL_CTX_free(ctx);
}

END_TEST

START_TEST(test_free_zeroed_is_safe)
{
    struct tls_server z;

    memset(&z, 0, sizeof(z));
    tls_server_free(&z);
    tls_server_free(&z);
}

END_TEST

/* Each bad file: init fails, err names the directive and the file. */
static const struct {
    const char *cert_text, *key_text; /* NULL: keep the good file; "": remove it */
    const char *want;                 /* in err */
} bad_files[] = {
    {"", NULL, "tls-cert-file"},
    {NULL, "", "tls-key-file"},
    {"not a certificate\n", NULL, "tls-cert-file"},
    {NULL, "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", "tls-key-file"},
    {"mismatch", NULL, "mismatch"},
};

START_TEST(test_init_errors)
{
    const char *cert_text = bad_files[_i].cert_text, *key_text = bad_files[_i].key_text;
    char path[128];

    if (cert_text && strcmp(cert_text, "mismatch") == 0) {
        /* The key of another certificate (its certificate is overwritten by its key). */
        struct test_cert other = cert;

        snprintf(other.cert, sizeof(other.cert), "%s/other.pem", cert.dir);
        memcpy(other.key, other.cert, sizeof(other.key));
        memcpy(path, other.cert, sizeof(other.cert));
        ck_assert(test_cert_make(&other, 9));
        ck_assert_int_lt(tls_server_init(&srv, cert.cert, path, err, sizeof(err)), 0);
    } else {
        if (cert_text)
            ck_assert(*cert_text ? test_file_write(cert.cert, cert_text) : unlink(cert.cert) == 0);
        if (key_text)
            ck_assert(*key_text ? test_file_write(cert.key, key_text) : unlink(cert.key) == 0);
        ck_assert_int_lt(tls_server_init(&srv, cert.cert, cert.key, err, sizeof(err)), 0);
    }
    ck_assert_msg(strstr(err, bad_files[_i].want) != NULL, "err: %s", err);
    ck_assert_ptr_null(srv.ctx);
    ck_assert_uint_eq(ERR_peek_error(), 0); /* the reason was taken off OpenSSL's queue */
}

END_TEST

START_TEST(test_client_ctx_errors)
{
    char path[128];

    snprintf(path, sizeof(path), "%s/missing.pem", cert.dir);
    ck_assert_ptr_null(tls_client_ctx_new(path, err, sizeof(err)));
    ck_assert_msg(strstr(err, path) != NULL, "err: %s", err);
}

END_TEST

/* ---------- handshakes ---------- */

START_TEST(test_handshake_verifies_against_ca)
{
    SSL_CTX *sctx, *cctx = client_ctx(cert.cert);
    struct pair p;

    ck_assert_int_eq(tls_server_init(&srv, cert.cert, cert.key, err, sizeof(err)), 0);
    sctx = tls_server_ctx(&srv);
    pair_open(&p, sctx, cctx);
    ck_assert(pair_handshake(&p));
    ck_assert_int_eq(SSL_get_verify_result(p.c), X509_V_OK);
    ck_assert_int_ge(SSL_version(p.s), TLS1_2_VERSION);
    pair_settle(&p);
    pair_close(&p);
    SSL_CTX_free(sctx);
    SSL_CTX_free(cctx);
}

END_TEST

START_TEST(test_handshake_refused_by_other_ca)
{
    struct test_cert other;
    SSL_CTX *sctx, *cctx;
    struct pair p;

    ck_assert_int_eq(tls_server_init(&srv, cert.cert, cert.key, err, sizeof(err)), 0);
    ck_assert(test_cert_init(&other));
    cctx = client_ctx(other.cert);
    sctx = tls_server_ctx(&srv);
    pair_open(&p, sctx, cctx);
    ck_assert(!pair_handshake(&p));
    ck_assert_int_ne(SSL_get_verify_result(p.c), X509_V_OK);
    ERR_clear_error();
    pair_close(&p);
    SSL_CTX_free(sctx);
    SSL_CTX_free(cctx);
    test_cert_remove(&other);
}

END_TEST

/* ---------- reload ---------- */

START_TEST(test_reload_swaps_and_old_refs_stay_valid)
{
    SSL_CTX *old, *fresh, *cctx = client_ctx(cert.cert);
    struct pair p;

    ck_assert_int_eq(tls_server_init(&srv, cert.cert, cert.key, err, sizeof(err)), 0);
    old = tls_server_ctx(&srv);
    ck_assert(test_cert_make(&cert, 2));
    ck_assert_int_eq(tls_server_reload(&srv, err, sizeof(err)), 0);
    ck_assert_uint_eq(srv.reloads, 1);
    ck_assert_uint_eq(srv.reload_failures, 0);
    fresh = tls_server_ctx(&srv);
    ck_assert_ptr_ne(fresh, old);
    ck_assert_int_eq(test_cert_serial_of(SSL_CTX_get0_certificate(fresh)), 2);
    /* A connection made from the context taken before still works (serial 1). */
    ck_assert_int_eq(test_cert_serial_of(SSL_CTX_get0_certificate(old)), 1);
    SSL_CTX_free(cctx);
    cctx = tls_client_ctx_new(NULL, err, sizeof(err));
    ck_assert_ptr_nonnull(cctx);
    SSL_CTX_set_verify(cctx, SSL_VERIFY_NONE, NULL);
    pair_open(&p, old, cctx);
    ck_assert(pair_handshake(&p));
    ck_assert_int_eq(test_cert_serial_of(SSL_get0_peer_certificate(p.c)), 1);
    pair_close(&p);
    pair_open(&p, fresh, cctx);
    ck_assert(pair_handshake(&p));
    ck_assert_int_eq(test_cert_serial_of(SSL_get0_peer_certificate(p.c)), 2);
    pair_close(&p);
    SSL_CTX_free(old);
    SSL_CTX_free(fresh);
    SSL_CTX_free(cctx);
}

END_TEST

START_TEST(test_reload_failure_keeps_old)
{
    SSL_CTX *before, *after;

    ck_assert_int_eq(tls_server_init(&srv, cert.cert, cert.key, err, sizeof(err)), 0);
    before = tls_server_ctx(&srv);
    ck_assert(test_file_write(cert.cert, "-----BEGIN CERTIFICATE-----\nbroken\n"));
    ck_assert_int_lt(tls_server_reload(&srv, err, sizeof(err)), 0);
    ck_assert_msg(strstr(err, cert.cert) != NULL, "err: %s", err);
    ck_assert_uint_eq(srv.reloads, 0);
    ck_assert_uint_eq(srv.reload_failures, 1);
    after = tls_server_ctx(&srv);
    ck_assert_ptr_eq(after, before);
    ck_assert_int_eq(test_cert_serial_of(SSL_CTX_get0_certificate(after)), 1);
    SSL_CTX_free(before);
    SSL_CTX_free(after);
}

END_TEST

/* ---------- memory: record buffers only while a record is in flight ---------- */

/* Encrypts text with the client end into bytes[] (returned length) without sending them. */
static size_t client_record(struct pair *p, const char *text, uint8_t *bytes, size_t cap)
{
    BIO *mem = BIO_new(BIO_s_mem()), *sock;
    size_t n = 0;
    int len;

    sock = SSL_get_wbio(p->c);
    BIO_up_ref(sock);
    SSL_set0_wbio(p->c, mem);
    ck_assert_int_eq(SSL_write_ex(p->c, text, strlen(text), &n), 1);
    len = BIO_read(mem, bytes, (int)cap);
    ck_assert_int_gt(len, 5);
    SSL_set0_wbio(p->c, sock); /* frees mem */
    return (size_t)len;
}

START_TEST(test_read_buffer_released_when_idle)
{
    SSL_CTX *sctx, *cctx = client_ctx(cert.cert);
    uint8_t rec[256];
    char got[32];
    size_t len, idle, partial, n = 0;
    struct pair p;

    ck_assert_int_eq(tls_server_init(&srv, cert.cert, cert.key, err, sizeof(err)), 0);
    sctx = tls_server_ctx(&srv);
    pair_open(&p, sctx, cctx);
    ck_assert(pair_handshake(&p));
    pair_settle(&p);
    len = client_record(&p, "hello", rec, sizeof(rec));
    ck_assert_int_eq(SSL_read_ex(p.s, got, sizeof(got), &n), 0); /* nothing yet: idle */
    idle = heap_bytes();
    ck_assert_int_eq(write(p.fd[1], rec, 3), 3);
    ck_assert_int_eq(SSL_read_ex(p.s, got, sizeof(got), &n), 0);
    ck_assert(retry(p.s, 0));
    partial = heap_bytes();
    ck_assert_int_eq(write(p.fd[1], rec + 3, len - 3), (ssize_t)(len - 3));
    ck_assert_int_eq(SSL_read_ex(p.s, got, sizeof(got), &n), 1);
    ck_assert_uint_eq(n, 5);
    /* A partly read record holds a ~16 KiB buffer; a completed one gives it back. */
    ck_assert_msg(partial >= idle + 16384, "idle %zu partial %zu", idle, partial);
    ck_assert_msg(heap_bytes() <= idle, "idle %zu after %zu", idle, heap_bytes());
    pair_close(&p);
    SSL_CTX_free(sctx);
    SSL_CTX_free(cctx);
}

END_TEST

START_TEST(test_write_buffer_released_when_drained)
{
    SSL_CTX *sctx, *cctx = client_ctx(cert.cert);
    static char big[16384], sink[16384];
    size_t idle, blocked, n = 0, total = 0;
    int small = 4096;
    struct pair p;

    ck_assert_int_eq(tls_server_init(&srv, cert.cert, cert.key, err, sizeof(err)), 0);
    sctx = tls_server_ctx(&srv);
    pair_open(&p, sctx, cctx);
    ck_assert(pair_handshake(&p));
    pair_settle(&p);
    setsockopt(p.fd[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
    memset(big, 'b', sizeof(big));
    idle = heap_bytes();
    /* Write records until the socket is full: OpenSSL keeps the refused one. */
    while (SSL_write_ex(p.s, big, sizeof(big), &n) == 1)
        total += n;
    ck_assert(SSL_get_error(p.s, 0) == SSL_ERROR_WANT_WRITE);
    blocked = heap_bytes();
    ck_assert_msg(blocked >= idle + 16384, "idle %zu blocked %zu", idle, blocked);
    /* The reader drains; the same bytes are offered again until they go. */
    for (int i = 0; i < 1000; i++) {
        size_t k;

        while (SSL_read_ex(p.c, sink, sizeof(sink), &k) == 1)
            ;
        if (SSL_write_ex(p.s, big, sizeof(big), &n) == 1)
            break;
        ck_assert(SSL_get_error(p.s, 0) == SSL_ERROR_WANT_WRITE);
    }
    ck_assert_uint_eq(n, sizeof(big));
    while (SSL_read_ex(p.c, sink, sizeof(sink), &n) == 1) /* the reader's partial record too */
        ;
    ck_assert_msg(heap_bytes() <= idle, "idle %zu after %zu", idle, heap_bytes());
    pair_close(&p);
    SSL_CTX_free(sctx);
    SSL_CTX_free(cctx);
}

END_TEST

/* ---------- tls_error_text ---------- */

START_TEST(test_error_text)
{
    char buf[512], tiny[8];

    ERR_clear_error();
    tls_error_text(buf, sizeof(buf));
    ck_assert_str_eq(buf, "unknown TLS error");
    ERR_raise(ERR_LIB_SSL, SSL_R_BAD_LENGTH);
    ERR_raise(ERR_LIB_SSL, SSL_R_HTTP_REQUEST);
    tls_error_text(buf, sizeof(buf));
    ck_assert_msg(strstr(buf, ":0A00009C:") && strstr(buf, "; ") && strstr(buf, ":0A00010F:"),
                  "got: %s", buf);
    ck_assert_uint_eq(ERR_peek_error(), 0);
    ERR_raise(ERR_LIB_SSL, SSL_R_BAD_LENGTH);
    tls_error_text(tiny, sizeof(tiny));
    ck_assert_uint_eq(strlen(tiny), sizeof(tiny) - 1);
    tls_error_text(tiny, 0); /* nothing written, nothing read */
}

END_TEST

static Suite *tls_suite(void)
{
    Suite *s = suite_create("tls");
    TCase *t;

    t = tcase_create("contexts");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_add_test(t, test_server_options);
    tcase_add_test(t, test_free_zeroed_is_safe);
    tcase_add_loop_test(t, test_init_errors, 0, sizeof(bad_files) / sizeof(bad_files[0]));
    tcase_add_test(t, test_client_ctx_errors);
    tcase_add_test(t, test_error_text);
    suite_add_tcase(s, t);

    t = tcase_create("handshakes");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_add_test(t, test_handshake_verifies_against_ca);
    tcase_add_test(t, test_handshake_refused_by_other_ca);
    tcase_add_test(t, test_reload_swaps_and_old_refs_stay_valid);
    tcase_add_test(t, test_reload_failure_keeps_old);
    suite_add_tcase(s, t);

    t = tcase_create("memory");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_add_test(t, test_read_buffer_released_when_idle);
    tcase_add_test(t, test_write_buffer_released_when_drained);
    suite_add_tcase(s, t);
    return s;
}

int main(int argc, char **argv)
{
    (void)argc;
    heap_init(argv);
    return check_run_suite(tls_suite());
}

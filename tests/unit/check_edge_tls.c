/*
 * check_edge_tls.c - edge clients on a TLS port (edge/client_tls.c under
 * edge/client.c), over socketpairs.
 *
 * Each test gets a worker whose port is a TLS port (a struct tls_server
 * with a certificate the test makes, tests/support/tls_cert.h) and one
 * connection, whose other end the test drives with an OpenSSL client that
 * trusts that certificate, or with raw bytes when it plays an attacker.
 * The loop is pumped non-blocking between steps. Covered: the wss path
 * end to end (handshake, ops, deliveries, messages and events larger than
 * a record, coalesced output), the memory rule (an idle TLS connection
 * holds no chunk, no evbuffer and no OpenSSL record buffer), close_notify
 * on every close, the ClientHello guard (plaintext, split or oversized
 * hellos refused at once, also after a HelloRetryRequest), a stalled
 * handshake held within a bound until handshake-timeout, garbage records,
 * and a TLS client that stops reading (1008 as on plain ports).
 */
#include <check.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "common/frame.h"
#include "common/tls.h"
#include "common/trie.h"
#include "common/ws/ws_frame.h"
#include "edge/client.h"
#include "edge/edge_conf.h"
#include "edge/pool.h"
#include "edge/worker.h"
#include "tests/support/check_main.h"
#include "tests/support/edge_peer.h"
#include "tests/support/heap.h"
#include "tests/support/tls_cert.h"

static struct test_cert cert;
static struct tls_server tls;
static struct edge_peer ep; /* its fd wrapped in pc */
static SSL_CTX *cctx;
static SSL *pc;      /* the test's TLS client */
static int peer_end; /* SSL_get_error of the read that ended the stream */

/* ---------- the test's end ---------- */

static bool want_retry(int rc)
{
    int e = SSL_get_error(pc, rc);

    return e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE;
}

/* ep.send: writes through the test's TLS client. */
static void tls_send(struct edge_peer *p, const void *buf, size_t len)
{
    const uint8_t *b = buf;

    while (len > 0) {
        size_t n = 0;

        if (SSL_write_ex(pc, b, len, &n) != 1) {
            ck_assert(want_retry(0));
            edge_peer_pump(p);
            continue;
        }
        b += n;
        len -= n;
    }
    edge_peer_pump(p);
}

/* ep.fill: reads what the worker has written; false once the stream ended (peer_end says how). */
static bool tls_fill(struct edge_peer *p)
{
    for (int tries = 0; tries < 200; tries++) {
        size_t n = 0;

        edge_peer_pump(p);
        if (SSL_read_ex(pc, p->rbuf + p->rlen, sizeof(p->rbuf) - 1 - p->rlen, &n) == 1) {
            p->rlen += n;
            return true;
        }
        if (!want_retry(0)) {
            peer_end = SSL_get_error(pc, 0);
            ERR_clear_error();
            return false;
        }
        poll(NULL, 0, 2);
    }
    return true;
}

/* ---------- fixture ---------- */

static void setup_with(int argc, char **argv, const char *server_groups)
{
    char err[512];

    edge_peer_load(&ep, argc, argv);
    ck_assert(test_cert_init(&cert));
    ck_assert_msg(tls_server_init(&tls, cert.cert, cert.key, err, sizeof(err)) == 0, "%s", err);
    if (server_groups)
        ck_assert_int_eq(SSL_CTX_set1_groups_list(tls.ctx, server_groups), 1);
    edge_peer_start(&ep);
    worker_set_tls(ep.w, &tls);
    edge_peer_connect(&ep);
    ck_assert_ptr_nonnull(client_ssl(ep.cl));
    ep.send = tls_send;
    ep.fill = tls_fill;
    cctx = tls_client_ctx_new(cert.cert, err, sizeof(err));
    ck_assert_msg(cctx != NULL, "%s", err);
    pc = SSL_new(cctx);
    SSL_set_fd(pc, ep.fd);
    SSL_set_connect_state(pc);
    SSL_set_tlsext_host_name(pc, "localhost");
    SSL_set1_host(pc, "localhost");
    peer_end = 0;
}

static void setup(void)
{
    char *argv[] = {"--port", "0", "--handshake-timeout", "1s"};

    setup_with(4, argv, NULL);
}

static void setup_small_queue(void)
{
    char *argv[] = {"--port", "0", "--send-queue-limit", "8kb"};

    setup_with(4, argv, NULL);
}

/* The server accepts only X25519 key shares: a client offering P-256 first gets a
 * HelloRetryRequest. */
static void setup_hrr(void)
{
    char *argv[] = {"--port", "0"};

    setup_with(2, argv, "X25519");
    ck_assert_int_eq(SSL_set1_groups_list(pc, "P-256:X25519"), 1);
}

static void teardown(void)
{
    SSL_free(pc);
    pc = NULL;
    SSL_CTX_free(cctx);
    edge_peer_close(&ep);
    tls_server_free(&tls);
    test_cert_remove(&cert);
}

/* ---------- TLS on top of the peer ---------- */

static void tls_connect(void)
{
    int rc = 0;

    for (int i = 0; i < 400 && (rc = SSL_do_handshake(pc)) != 1; i++) {
        ck_assert_msg(want_retry(rc), "client handshake failed");
        edge_peer_pump(&ep);
    }
    ck_assert_int_eq(rc, 1);
    edge_peer_pump(&ep);
    ck_assert_int_eq(SSL_get_verify_result(pc), X509_V_OK);
}

/* The TLS handshake, then the WebSocket one. */
static void handshake(const char *target)
{
    tls_connect();
    edge_peer_handshake(&ep, target, "");
}

/* Bytes past the test's TLS client: what an attacker, or a record split by hand, would send. */
static void raw_send(const void *buf, size_t len)
{
    ck_assert_int_eq(write(ep.fd, buf, len), (ssize_t)len);
    edge_peer_pump(&ep);
}

/* True when the raw socket sees EOF or a reset (after any bytes) within a second. */
static bool raw_closed(void)
{
    uint8_t b[4096];

    for (int tries = 0; tries < 500; tries++) {
        ssize_t n;

        edge_peer_pump(&ep);
        n = read(ep.fd, b, sizeof(b));
        if (n == 0 || (n < 0 && errno == ECONNRESET))
            return true;
        if (n < 0)
            poll(NULL, 0, 2);
    }
    return false;
}

/* The server ended the TLS stream with close_notify (not a bare EOF). */
static void expect_close_notify(void)
{
    edge_peer_expect_eof(&ep);
    ck_assert_int_eq(peer_end, SSL_ERROR_ZERO_RETURN);
}

/* Encrypts a text frame with the test's client without sending it; returns its length. */
static size_t record_of(const char *text, uint8_t *out, size_t cap)
{
    static uint8_t frame[256];
    BIO *mem = BIO_new(BIO_s_mem()), *sock = SSL_get_wbio(pc);
    size_t n = 0, flen = edge_peer_frame_bytes(WS_OP_TEXT, true, text, strlen(text), frame);
    int len;

    BIO_up_ref(sock);
    SSL_set0_wbio(pc, mem);
    ck_assert_int_eq(SSL_write_ex(pc, frame, flen, &n), 1);
    len = BIO_read(mem, out, (int)cap);
    ck_assert_int_gt(len, 5);
    SSL_set0_wbio(pc, sock);
    return (size_t)len;
}

/* ---------- wss ---------- */

START_TEST(test_wss_sub_deliver_and_idle)
{
    handshake("/ws?topic=mail.>");
    ck_assert_uint_eq(ep.w->h.stats.tls_handshakes, 1);
    ck_assert_uint_eq(ep.w->h.stats.handshakes_ok, 1);
    worker_deliver(ep.w, "mail.42", 7, 3, "{\"a\":1}", 7);
    worker_flush_dirty(ep.w);
    edge_peer_expect_text(&ep,
                          "{\"op\":\"msg\",\"topic\":\"mail.42\",\"seq\":3,\"data\":{\"a\":1}}");
    edge_peer_send_text(&ep, "{\"op\":\"ping\",\"id\":5}");
    edge_peer_expect_text(&ep, "{\"op\":\"pong\",\"id\":5}");
    edge_peer_assert_idle(&ep);
    ck_assert_uint_eq(ep.w->h.stats.tls_handshake_failures + ep.w->h.stats.tls_errors, 0);
}

END_TEST

/*
 * The SSL object sits in the hub's per-slot array, not in struct client
 * (docs/architecture.md §4.4): when a client is retired, the last one takes
 * its slot (the O(1) swap) and brings its SSL object along, which then
 * serves a whole session; the retired one reads as having none.
 */
START_TEST(test_ssl_moves_with_its_client)
{
    struct client *first = ep.cl;
    SSL *ssl;
    int sv[2];

    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    ep.cl = client_new(&ep.w->h, sv[0]);
    ck_assert_ptr_nonnull(ep.cl);
    ssl = client_ssl(ep.cl);
    ck_assert_ptr_nonnull(ssl);
    ck_assert_ptr_ne(ssl, client_ssl(first));
    ck_assert_uint_eq(ep.cl->index, 1);
    client_abort(first); /* on the close list until the next loop pass */
    ck_assert_ptr_null(client_ssl(first));
    ck_assert_uint_eq(ep.cl->index, 0);
    ck_assert_ptr_eq(client_ssl(ep.cl), ssl);
    close(ep.fd);
    ep.fd = sv[1];
    ck_assert_int_eq(SSL_set_fd(pc, ep.fd), 1); /* the test's client has not started yet */
    handshake("/ws?topic=mail.>");
    worker_deliver(ep.w, "mail.42", 7, 3, "{\"a\":1}", 7);
    worker_flush_dirty(ep.w);
    edge_peer_expect_text(&ep,
                          "{\"op\":\"msg\",\"topic\":\"mail.42\",\"seq\":3,\"data\":{\"a\":1}}");
    edge_peer_assert_idle(&ep);
    ck_assert_uint_eq(ep.w->h.stats.tls_handshakes, 1);
}

END_TEST

/*
 * OpenSSL's record buffers (~17 KiB each way) exist only while a record
 * is in flight: an idle connection is back to what it held before.
 */
START_TEST(test_idle_tls_connection_holds_no_record_buffer)
{
    static uint8_t rec[512];
    size_t len, idle, partial;

    handshake("/ws");
    edge_peer_send_text(&ep, "{\"op\":\"ping\",\"id\":1}");
    edge_peer_expect_text(&ep, "{\"op\":\"pong\",\"id\":1}");
    len = record_of("{\"op\":\"ping\",\"id\":2}", rec, sizeof(rec));
    edge_peer_pump(&ep);
    idle = heap_bytes();
    raw_send(rec, 3); /* a record header, partly */
    partial = heap_bytes();
    ck_assert_msg(partial >= idle + 16384, "idle %zu partial %zu", idle, partial);
    ck_assert_ptr_null(ep.cl->in); /* the partial record is OpenSSL's, not a chunk */
    raw_send(rec + 3, len - 3);
    edge_peer_expect_text(&ep, "{\"op\":\"pong\",\"id\":2}");
    edge_peer_assert_idle(&ep);
    ck_assert_msg(heap_bytes() <= idle, "idle %zu now %zu", idle, heap_bytes());
}

END_TEST

START_TEST(test_messages_larger_than_a_record)
{
    static char big[60001], got[70000];
    size_t n = 0;

    /* In: one 60,000-byte message in four records, reassembled in the scratch. */
    handshake("/ws?topic=t&format=raw");
    memset(big, 'x', sizeof(big) - 1);
    edge_peer_send_frame(&ep, WS_OP_TEXT, true, big, 60000);
    edge_peer_expect_text(
        &ep, "{\"op\":\"error\",\"code\":\"bad_request\",\"message\":\"malformed JSON\"}");
    /* Out: a 50,000-byte event written as four records from the pending frame. */
    worker_deliver(ep.w, "t", 1, 1, big, 50000);
    worker_flush_dirty(ep.w);
    ck_assert_int_eq(edge_peer_read_frame(&ep, got, sizeof(got), &n), WS_OP_TEXT);
    ck_assert_uint_eq(n, 50000);
    ck_assert_int_eq(memcmp(got, big, 50000), 0);
    edge_peer_assert_idle(&ep);
}

END_TEST

START_TEST(test_coalesced_output_in_order)
{
    char want[64];

    handshake("/ws?topic=t");
    for (int i = 1; i <= 300; i++) {
        char payload[900];

        memset(payload, '7', sizeof(payload));
        worker_deliver(ep.w, "t", 1, (uint64_t)i, payload, (size_t)(i % 3 ? 1 : 900));
    }
    worker_flush_dirty(ep.w);
    for (int i = 1; i <= 300; i++) {
        static char buf[2048];
        size_t n = 0;

        ck_assert_int_eq(edge_peer_read_frame(&ep, buf, sizeof(buf), &n), WS_OP_TEXT);
        snprintf(want, sizeof(want), "{\"op\":\"msg\",\"topic\":\"t\",\"seq\":%d,", i);
        ck_assert_msg(strncmp(buf, want, strlen(want)) == 0, "frame %d: %.60s", i, buf);
    }
    edge_peer_assert_idle(&ep);
}

END_TEST

START_TEST(test_close_frame_then_close_notify)
{
    handshake("/ws");
    edge_peer_send_frame(&ep, WS_OP_CLOSE, true, "\x03\xe8", 2);
    edge_peer_expect_close(&ep, 1000, NULL);
    expect_close_notify();
    edge_peer_drop(&ep);
    ck_assert_uint_eq(ep.w->h.nclients, 0);
    ck_assert_uint_eq(ep.w->h.stats.tls_errors, 0);
}

END_TEST

START_TEST(test_shutdown_sends_restart_and_close_notify)
{
    handshake("/ws");
    worker_begin_shutdown(ep.w);
    edge_peer_expect_close(&ep, WS_CLOSE_RESTART, "service restart");
    expect_close_notify();
}

END_TEST

START_TEST(test_peer_close_notify_ends_connection)
{
    handshake("/ws?topic=a");
    ck_assert_int_ge(SSL_shutdown(pc), 0);
    edge_peer_pump(&ep);
    ck_assert_uint_eq(ep.w->h.nclients, 0);
    ck_assert_uint_eq(trie_subscription_count(ep.w->h.trie), 0);
    ck_assert_uint_eq(ep.w->h.stats.tls_errors, 0);
}

END_TEST

START_TEST(test_garbage_record_after_handshake)
{
    uint8_t junk[5 + 64] = {23, 3, 3, 0, 64};

    handshake("/ws?topic=a");
    for (size_t i = 5; i < sizeof(junk); i++)
        junk[i] = (uint8_t)(i * 37);
    raw_send(junk, sizeof(junk));
    ck_assert_uint_eq(ep.w->h.nclients, 0);
    ck_assert_uint_eq(ep.w->h.stats.tls_errors, 1);
    ck_assert_uint_eq(trie_subscription_count(ep.w->h.trie), 0);
    ck_assert(raw_closed());
}

END_TEST

START_TEST(test_metrics_over_tls)
{
    const char *req = "GET /metrics HTTP/1.1\r\nHost: edge\r\n\r\n";
    static char resp[1 << 16];

    tls_connect();
    edge_peer_send(&ep, req, strlen(req));
    edge_peer_read_http(&ep, resp, sizeof(resp), true);
    ck_assert_msg(strncmp(resp, "HTTP/1.1 200 ", 13) == 0, "got: %.200s", resp);
    ck_assert_ptr_nonnull(strstr(resp, "\nherald_edge_tls_handshakes_total 1\n"));
    ck_assert_ptr_nonnull(strstr(resp, "\nherald_edge_tls_handshake_failures_total 0\n"));
    ck_assert_ptr_nonnull(strstr(resp, "\nherald_edge_tls_reloads_total{result=\"ok\"} 0\n"));
    ck_assert_int_eq(peer_end, SSL_ERROR_ZERO_RETURN);
}

END_TEST

/* ---------- the ClientHello guard ---------- */

static const struct {
    const char *what;
    const char *bytes;
    size_t len;
} refused[] = {
    {"plaintext HTTP", "GET /ws HTTP/1.1\r\nHost: edge\r\n\r\n", 33},
    {"one byte", "\x16", 1},
    {"record header only", "\x16\x03\x01\x00\xc8", 5},
    {"hello header split", "\x16\x03\x01\x00\xc8\x01\x00", 7},
    {"hello declaring 128 KiB", "\x16\x03\x01\x02\x00\x01\x02\x01\x44", 9},
    {"hello declaring 16381 bytes", "\x16\x03\x01\x02\x00\x01\x00\x3f\xfd", 9},
    {"not a ClientHello", "\x16\x03\x01\x00\xc8\x02\x00\x00\xc4", 9},
    {"record shorter than a hello header", "\x16\x03\x01\x00\x03\x01\x00\x00\x16", 9},
    {"alert first", "\x15\x03\x01\x00\x02\x02\x28", 7},
    {"SSLv2 hello", "\x80\x2e\x01\x03\x01\x00\x15\x00\x00", 9},
};

START_TEST(test_guard_refuses_at_once)
{
    raw_send(refused[_i].bytes, refused[_i].len);
    ck_assert_msg(ep.w->h.nclients == 0, "%s: still open", refused[_i].what);
    ck_assert_uint_eq(ep.w->h.stats.tls_handshake_failures, 1);
    ck_assert(raw_closed());
}

END_TEST

/*
 * A hello header within the limit, then nothing: held until
 * handshake-timeout, with OpenSSL's read buffer and its 16 KiB handshake
 * buffer (63,872 bytes under ASan, 72,800 with glibc's chunk headers; a
 * ClientHello declaring 128 KiB would make it 210,352, hence the guard).
 */
START_TEST(test_stalled_hello_bounded_until_timeout)
{
    size_t before = heap_bytes(), held;

    raw_send("\x16\x03\x01\x40\x00\x01\x00\x3f\xfc", 9); /* declares 16,380 bytes */
    held = heap_bytes() - before;
    ck_assert_uint_eq(ep.w->h.nclients, 1);
    ck_assert_msg(held <= 80 * 1024, "a stalled hello holds %zu bytes", held);
    edge_peer_run(&ep, 3100);
    ck_assert_uint_eq(ep.w->h.nclients, 0);
    ck_assert_uint_eq(ep.w->h.stats.hs_fail[HS_FAIL_TIMEOUT], 1);
    ck_assert(raw_closed());
}

END_TEST

START_TEST(test_tls_done_but_no_request_times_out)
{
    tls_connect();
    ck_assert_uint_eq(ep.w->h.stats.tls_handshakes, 1);
    edge_peer_run(&ep, 3100);
    ck_assert_uint_eq(ep.w->h.nclients, 0);
    ck_assert_uint_eq(ep.w->h.stats.hs_fail[HS_FAIL_TIMEOUT], 1);
}

END_TEST

START_TEST(test_probe_is_not_a_failed_handshake)
{
    edge_peer_drop(&ep);
    ck_assert_uint_eq(ep.w->h.nclients, 0);
    ck_assert_uint_eq(ep.w->h.stats.tls_handshake_failures, 0);
}

END_TEST

START_TEST(test_client_rejecting_certificate_counted)
{
    struct test_cert other;
    char err[256];
    int rc;

    ck_assert(test_cert_init(&other));
    SSL_free(pc);
    SSL_CTX_free(cctx);
    cctx = tls_client_ctx_new(other.cert, err, sizeof(err));
    pc = SSL_new(cctx);
    SSL_set_fd(pc, ep.fd);
    SSL_set_connect_state(pc);
    for (int i = 0; i < 400 && (rc = SSL_do_handshake(pc)) != 1 && want_retry(rc); i++)
        edge_peer_pump(&ep);
    ERR_clear_error();
    edge_peer_pump(&ep);
    ck_assert_uint_eq(ep.w->h.nclients, 0);
    ck_assert_uint_eq(ep.w->h.stats.tls_handshake_failures, 1);
    test_cert_remove(&other);
}

END_TEST

/* ---------- HelloRetryRequest ---------- */

START_TEST(test_hrr_handshake_completes)
{
    handshake("/ws");
    ck_assert_int_eq(SSL_version(pc), TLS1_3_VERSION);
    edge_peer_send_text(&ep, "{\"op\":\"ping\",\"id\":1}");
    edge_peer_expect_text(&ep, "{\"op\":\"pong\",\"id\":1}");
}

END_TEST

/* The second ClientHello is guarded like the first (after the dummy ChangeCipherSpec). */
START_TEST(test_hrr_second_hello_too_big_refused)
{
    static const uint8_t ccs_and_big_hello[] = {20, 3, 3, 0, 1,    1,    22,  3,
                                                3,  2, 0, 1, 0x02, 0x01, 0x44};
    BIO *rmem = BIO_new(BIO_s_mem()), *wmem = BIO_new(BIO_s_mem());
    static uint8_t hello[4096], back[8192];
    ssize_t n = 0;
    int len;

    SSL_set_bio(pc, rmem, wmem);
    ck_assert_int_ne(SSL_do_handshake(pc), 1);
    len = BIO_read(wmem, hello, sizeof(hello));
    ck_assert_int_gt(len, 9);
    raw_send(hello, (size_t)len);
    for (int i = 0; i < 100 && n <= 0; i++) {
        edge_peer_pump(&ep);
        n = read(ep.fd, back, sizeof(back));
    }
    ck_assert_int_gt(n, 0); /* the HelloRetryRequest */
    ck_assert_uint_eq(ep.w->h.nclients, 1);
    ck_assert_int_eq(SSL_get_state(client_ssl(ep.cl)), TLS_ST_EARLY_DATA);
    raw_send(ccs_and_big_hello, sizeof(ccs_and_big_hello));
    ck_assert_uint_eq(ep.w->h.nclients, 0);
    ck_assert_uint_eq(ep.w->h.stats.tls_handshake_failures, 1);
}

END_TEST

/* ---------- backpressure ---------- */

START_TEST(test_slow_tls_consumer_closed)
{
    static char payload[2000];
    static char frame[4096];
    int small = 4096, op, data_frames = 0;

    memset(payload, 'z', sizeof(payload));
    handshake("/ws?topic=s");
    setsockopt(ep.fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
    setsockopt(event_get_fd(&ep.cl->ev), SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
    for (int i = 0; i < 2000 && ep.w->h.stats.slow_consumers == 0; i++) {
        worker_deliver(ep.w, "s", 1, (uint64_t)i, payload, sizeof(payload));
        worker_flush_dirty(ep.w);
    }
    ck_assert_uint_eq(ep.w->h.stats.slow_consumers, 1);
    ck_assert_uint_eq(trie_subscription_count(ep.w->h.trie), 0);
    ck_assert_uint_le(client_queued(ep.cl), ep.w->h.conf->send_queue_limit + 256);
    while ((op = edge_peer_read_frame(&ep, frame, sizeof(frame), NULL)) == WS_OP_TEXT)
        data_frames++;
    ck_assert_int_eq(op, WS_OP_CLOSE);
    ck_assert_uint_eq(((uint8_t)frame[0] << 8) | (uint8_t)frame[1], WS_CLOSE_POLICY);
    ck_assert_int_gt(data_frames, 0);
    expect_close_notify();
    edge_peer_drop(&ep);
    ck_assert_uint_eq(ep.w->h.nclients, 0);
    ck_assert_uint_eq(frame_live(), 0);
}

END_TEST

/* Tries once to send a ping op (the peer's socket may be full: then it stays in its SSL). */
static void send_frame_once(void)
{
    static uint8_t ping[64];
    size_t n = 0,
           len = edge_peer_frame_bytes(WS_OP_TEXT, true, "{\"op\":\"ping\",\"id\":9}", 20, ping);

    (void)SSL_write_ex(pc, ping, len, &n);
    ERR_clear_error();
}

/* CPU seconds this process has used. */
static double cpu_now(void)
{
    struct rusage ru;

    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

/*
 * A peer that asks for KeyUpdates and never reads: each answer is a write
 * inside SSL_read, so once the socket is full the read waits for it to
 * drain. Reading meanwhile would spin (the peer's bytes stay readable and
 * cannot be consumed): EV_READ is off until the socket drains, and the
 * connection costs no CPU while it waits.
 */
START_TEST(test_read_waiting_to_write_does_not_spin)
{
    static uint8_t ping[64];
    size_t plen = edge_peer_frame_bytes(WS_OP_TEXT, true, "{\"op\":\"ping\",\"id\":9}", 20, ping),
           n = 0;
    int small = 4096, sent = 0;
    bool ping_sent;
    double cpu;

    handshake("/ws");
    setsockopt(ep.fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
    setsockopt(event_get_fd(&ep.cl->ev), SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
    for (; sent < 20000 && !SSL_want_write(client_ssl(ep.cl)); sent++) {
        ck_assert_int_eq(SSL_key_update(pc, SSL_KEY_UPDATE_REQUESTED), 1);
        if (SSL_do_handshake(pc) != 1)
            break; /* our own socket is full */
        edge_peer_pump(&ep);
    }
    ck_assert_msg(SSL_want_write(client_ssl(ep.cl)), "no blocked read after %d key updates", sent);
    ping_sent = SSL_write_ex(pc, ping, plen, &n) == 1; /* bytes the edge cannot read yet */
    edge_peer_pump(&ep);
    ck_assert_int_eq(event_get_events(&ep.cl->ev) & EV_READ, 0);
    cpu = cpu_now();
    edge_peer_run(&ep, 1000);
    ck_assert_msg(cpu_now() - cpu < 0.4, "%.2f s of CPU in 1 s waiting", cpu_now() - cpu);
    ck_assert_uint_eq(ep.w->h.nclients, 1);
    /* The peer reads: the edge's answers drain, reading resumes, the op is answered. */
    for (int i = 0; i < 5000 && ep.rlen < 20; i++) {
        edge_peer_pump(&ep);
        if (!ping_sent)
            ping_sent = SSL_write_ex(pc, ping, plen, &n) == 1;
        if (SSL_read_ex(pc, ep.rbuf + ep.rlen, sizeof(ep.rbuf) - ep.rlen, &n) == 1)
            ep.rlen += n;
    }
    ck_assert(ping_sent);
    edge_peer_expect_text(&ep, "{\"op\":\"pong\",\"id\":9}");
    ck_assert(event_get_events(&ep.cl->ev) & EV_READ);
}

END_TEST

/*
 * A KeyUpdate request while an encrypted record of ours waits for the
 * socket (OpenSSL cannot answer before that record is out): the stream the
 * peer reads stays whole, every event in order, and the connection goes on
 * under the new keys.
 */
START_TEST(test_key_update_while_output_blocked)
{
    static char payload[2000], frame[4096];
    int small = 4096, got = 0, op;
    size_t queued;

    memset(payload, 'k', sizeof(payload));
    handshake("/ws?topic=k");
    setsockopt(ep.fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
    setsockopt(event_get_fd(&ep.cl->ev), SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
    for (int i = 1; i <= 3 && ep.cl->out == NULL; i++) {
        worker_deliver(ep.w, "k", 1, (uint64_t)i, payload, sizeof(payload));
        worker_flush_dirty(ep.w);
    }
    ck_assert_ptr_nonnull(ep.cl->out); /* blocked: OpenSSL holds a record */
    queued = client_queued(ep.cl);
    ck_assert_uint_gt(queued, 0);
    ck_assert_int_eq(SSL_key_update(pc, SSL_KEY_UPDATE_REQUESTED), 1);
    ck_assert_int_eq(SSL_do_handshake(pc), 1);
    edge_peer_pump(&ep);
    while ((op = edge_peer_read_frame(&ep, frame, sizeof(frame), NULL)) == WS_OP_TEXT) {
        char want[64];

        got++;
        snprintf(want, sizeof(want), "{\"op\":\"msg\",\"topic\":\"k\",\"seq\":%d,", got);
        ck_assert_msg(strncmp(frame, want, strlen(want)) == 0, "event %d: %.40s", got, frame);
        if (got == 3)
            break;
    }
    ck_assert_int_eq(got, 3);
    edge_peer_send_text(&ep, "{\"op\":\"ping\",\"id\":4}");
    edge_peer_expect_text(&ep, "{\"op\":\"pong\",\"id\":4}");
    ck_assert_uint_eq(ep.w->h.stats.tls_errors, 0);
    edge_peer_assert_idle(&ep);
}

END_TEST

/* The same peer, closed while the read waits (idle-timeout, shutdown): no spin either. */
START_TEST(test_close_while_read_waits_does_not_spin)
{
    int small = 4096;
    double cpu;

    handshake("/ws");
    setsockopt(ep.fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
    setsockopt(event_get_fd(&ep.cl->ev), SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
    for (int i = 0; i < 20000 && !SSL_want_write(client_ssl(ep.cl)); i++) {
        ck_assert_int_eq(SSL_key_update(pc, SSL_KEY_UPDATE_REQUESTED), 1);
        if (SSL_do_handshake(pc) != 1)
            break;
        edge_peer_pump(&ep);
    }
    ck_assert(SSL_want_write(client_ssl(ep.cl)));
    send_frame_once();
    client_close(ep.cl, WS_CLOSE_GOING_AWAY, "bye"); /* the close frame cannot go out either */
    edge_peer_pump(&ep);
    ck_assert_int_eq(event_get_events(&ep.cl->ev) & EV_READ, 0);
    cpu = cpu_now();
    edge_peer_run(&ep, 3100); /* past the 2 s linger */
    ck_assert_msg(cpu_now() - cpu < 0.5, "%.2f s of CPU in 3 s", cpu_now() - cpu);
    ck_assert_uint_eq(ep.w->h.nclients, 0);
}

END_TEST

static Suite *edge_tls_suite(void)
{
    Suite *s = suite_create("edge_tls");
    TCase *t;

    t = tcase_create("wss");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_add_test(t, test_wss_sub_deliver_and_idle);
    tcase_add_test(t, test_ssl_moves_with_its_client);
    tcase_add_test(t, test_idle_tls_connection_holds_no_record_buffer);
    tcase_add_test(t, test_messages_larger_than_a_record);
    tcase_add_test(t, test_coalesced_output_in_order);
    tcase_add_test(t, test_close_frame_then_close_notify);
    tcase_add_test(t, test_shutdown_sends_restart_and_close_notify);
    tcase_add_test(t, test_peer_close_notify_ends_connection);
    tcase_add_test(t, test_garbage_record_after_handshake);
    tcase_add_test(t, test_metrics_over_tls);
    suite_add_tcase(s, t);

    t = tcase_create("guard");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_add_loop_test(t, test_guard_refuses_at_once, 0, sizeof(refused) / sizeof(refused[0]));
    tcase_add_test(t, test_stalled_hello_bounded_until_timeout);
    tcase_add_test(t, test_tls_done_but_no_request_times_out);
    tcase_add_test(t, test_probe_is_not_a_failed_handshake);
    tcase_add_test(t, test_client_rejecting_certificate_counted);
    suite_add_tcase(s, t);

    t = tcase_create("hrr");
    tcase_add_checked_fixture(t, setup_hrr, teardown);
    tcase_add_test(t, test_hrr_handshake_completes);
    tcase_add_test(t, test_hrr_second_hello_too_big_refused);
    suite_add_tcase(s, t);

    t = tcase_create("backpressure");
    tcase_add_checked_fixture(t, setup_small_queue, teardown);
    tcase_add_test(t, test_slow_tls_consumer_closed);
    tcase_add_test(t, test_read_waiting_to_write_does_not_spin);
    tcase_add_test(t, test_close_while_read_waits_does_not_spin);
    tcase_add_test(t, test_key_update_while_output_blocked);
    suite_add_tcase(s, t);
    return s;
}

int main(int argc, char **argv)
{
    (void)argc;
    heap_init(argv);
    return check_run_suite(edge_tls_suite());
}

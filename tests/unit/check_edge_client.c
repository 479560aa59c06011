/*
 * check_edge_client.c - one edge worker and its clients over socketpairs.
 *
 * Each test gets a fresh worker (event_base, pool, trie, no uplink) and
 * one connection whose other end the test drives as a browser would:
 * handshake, masked frames, reading the server's frames. The loop is
 * pumped non-blocking between steps. Teardown frees the worker and checks
 * that no frame is left alive (docs/architecture.md §4.6, §6.1).
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/event.h>

#include "common/frame.h"
#include "common/trie.h"
#include "edge/client.h"
#include "edge/edge_conf.h"
#include "edge/pool.h"
#include "edge/worker.h"
#include "common/ws/ws_frame.h"
#include "tests/support/check_main.h"
#include "tests/support/edge_peer.h"

static struct edge_peer ep;

/* ---------- fixture ---------- */

static void setup(void)
{
    char *argv[] = {"--port", "0", "--bind", "127.0.0.1"};

    edge_peer_open(&ep, 4, argv);
}

static void setup_small_queue(void)
{
    char *argv[] = {"--port", "0", "--send-queue-limit", "8kb"};

    edge_peer_open(&ep, 4, argv);
}

static void setup_short_timers(void)
{
    char *argv[] = {"--port", "0", "--idle-timeout", "1s", "--handshake-timeout", "1s"};

    edge_peer_open(&ep, 6, argv);
}

static void setup_five_ops(void)
{
    char *argv[] = {"--port", "0", "--max-ops-per-second", "5"};

    edge_peer_open(&ep, 4, argv);
}

static void setup_two_subs(void)
{
    char *argv[] = {"--port", "0", "--max-subscriptions", "2"};

    edge_peer_open(&ep, 4, argv);
}

static void setup_drain(void)
{
    char *argv[] = {"--port", "0", "--shutdown-timeout", "3s"};

    edge_peer_open(&ep, 4, argv);
}

static void teardown(void)
{
    edge_peer_close(&ep);
}

/* ---------- size ---------- */

/*
 * 216 bytes on x86-64 (docs/architecture.md §4.4): the ops counter of
 * max-ops-per-second lives in what was tail padding, and a token's grant,
 * the per-address key and a TLS connection's SSL object sit in per-slot
 * arrays of the hub, allocated only when auth, the per-address limits or
 * TLS are on, so a connection without them costs nothing more. 216 is a
 * 224-byte malloc chunk; 217 would be 240.
 */
START_TEST(test_client_struct_size)
{
    ck_assert_uint_le(sizeof(struct client), 216);
}

END_TEST

/* ---------- handshake and HTTP ---------- */

START_TEST(test_handshake_ok_and_idle)
{
    edge_peer_handshake(&ep, "/ws", "");
    edge_peer_assert_idle(&ep);
    ck_assert_uint_eq(ep.w->h.stats.handshakes_ok, 1);
    ck_assert_ptr_null(ep.w->h.ssls); /* a plain port has no SSL slots */
    ck_assert_ptr_null(client_ssl(ep.cl));
}

END_TEST

START_TEST(test_handshake_split_holds_chunk)
{
    const char *req = "GET /ws HTTP/1.1\r\nHost: edge\r\nUpgrade: websocket\r\n"
                      "Connection: Upgrade\r\nSec-WebSocket-Key: " EDGE_PEER_KEY "\r\n"
                      "Sec-WebSocket-Version: 13\r\n\r\n";
    struct pool_stats ps;
    char head[1024];

    edge_peer_send(&ep, req, 20);
    pool_get_stats(ep.w->h.pool, &ps);
    ck_assert_uint_eq(ps.chunks_in_use, 1);
    ck_assert_ptr_nonnull(ep.cl->in);
    edge_peer_send(&ep, req + 20, strlen(req) - 20);
    edge_peer_read_http(&ep, head, sizeof(head), false);
    ck_assert_msg(strncmp(head, "HTTP/1.1 101 ", 13) == 0, "got: %s", head);
    edge_peer_assert_idle(&ep);
}

END_TEST

static const struct {
    const char *target;
    const char *extra;
    const char *status;
} http_cases[] = {
    {"/nope", "Sec-WebSocket-Version: 13\r\n", "HTTP/1.1 404 "},
    {"/ws", "Sec-WebSocket-Version: 8\r\n", "HTTP/1.1 426 "},
    {"/ws", "", "HTTP/1.1 400 "},
    {"/echo", "Sec-WebSocket-Version: 13\r\n", "HTTP/1.1 404 "}, /* echo-path unset */
};

START_TEST(test_http_errors)
{
    char resp[4096];

    edge_peer_send_request(&ep, http_cases[_i].target, http_cases[_i].extra);
    edge_peer_read_http(&ep, resp, sizeof(resp), true);
    ck_assert_msg(strncmp(resp, http_cases[_i].status, strlen(http_cases[_i].status)) == 0,
                  "got: %s", resp);
    ck_assert_ptr_nonnull(strstr(resp, "Connection: close\r\n"));
    ck_assert_uint_eq(ep.w->h.nclients, 1); /* lingering until the peer closes */
    edge_peer_drop(&ep);
    ck_assert_uint_eq(ep.w->h.nclients, 0);
}

END_TEST

START_TEST(test_header_too_large_431)
{
    static char req[10000];
    char resp[4096];
    int n = snprintf(req, sizeof(req), "GET /ws HTTP/1.1\r\nX-Big: ");

    memset(req + n, 'a', sizeof(req) - (size_t)n);
    edge_peer_send(&ep, req, sizeof(req));
    edge_peer_read_http(&ep, resp, sizeof(resp), true);
    ck_assert_msg(strncmp(resp, "HTTP/1.1 431 ", 13) == 0, "got: %.100s", resp);
    ck_assert_uint_eq(ep.w->h.stats.hs_fail[HS_FAIL_431], 1);
}

END_TEST

START_TEST(test_healthz_without_broker)
{
    const char *req = "GET /healthz HTTP/1.1\r\nHost: edge\r\n\r\n";
    char resp[4096];

    edge_peer_send(&ep, req, strlen(req));
    edge_peer_read_http(&ep, resp, sizeof(resp), true);
    ck_assert_msg(strncmp(resp, "HTTP/1.1 503 ", 13) == 0, "got: %s", resp);
    ck_assert_ptr_nonnull(strstr(resp, "\r\n\r\n{\"status\":\"degraded\",\"broker\":\"down\"}\n"));
}

END_TEST

START_TEST(test_metrics)
{
    const char *req = "GET /metrics HTTP/1.1\r\nHost: edge\r\n\r\n";
    char resp[1 << 16];

    edge_peer_send(&ep, req, strlen(req));
    edge_peer_read_http(&ep, resp, sizeof(resp), true);
    ck_assert_msg(strncmp(resp, "HTTP/1.1 200 ", 13) == 0, "got: %.200s", resp);
    ck_assert_ptr_nonnull(strstr(resp, "\nherald_edge_connections 1\n"));
    ck_assert_ptr_nonnull(strstr(resp, "\nherald_edge_workers 1\n"));
    ck_assert_ptr_nonnull(strstr(resp, "herald_edge_http_requests_total{path=\"/metrics\"} 1\n"));
}

END_TEST

/* ---------- ops and delivery ---------- */

START_TEST(test_sub_and_deliver_json)
{
    edge_peer_handshake(&ep, "/ws", "");
    edge_peer_send_text(&ep, "{\"op\":\"sub\",\"topic\":\"mail.user.*.inbox\",\"id\":1}");
    edge_peer_expect_text(&ep, "{\"op\":\"ok\",\"id\":1}");
    ck_assert_uint_eq(trie_subscription_count(ep.w->h.trie), 1);
    worker_deliver(ep.w, "mail.user.42.inbox", 18, 7, "{\"from\":\"a@b\"}", 14);
    worker_flush_dirty(ep.w);
    edge_peer_expect_text(&ep, "{\"op\":\"msg\",\"topic\":\"mail.user.42.inbox\",\"seq\":7,"
                               "\"data\":{\"from\":\"a@b\"}}");
    ck_assert_uint_eq(ep.w->h.stats.deliveries, 1);
    edge_peer_assert_idle(&ep);
    ck_assert_uint_eq(frame_live(), 0);
}

END_TEST

START_TEST(test_query_topics_raw)
{
    edge_peer_handshake(&ep, "/ws?topic=a.b&topic=c.%3E&format=raw", "");
    ck_assert_uint_eq(trie_subscription_count(ep.w->h.trie), 2);
    worker_deliver(ep.w, "c.d.e", 5, 1, "hello", 5);
    worker_deliver(ep.w, "x.y", 3, 2, "nobody", 6);
    worker_deliver(ep.w, "a.b", 3, 3, "{\"k\":2}", 7);
    worker_flush_dirty(ep.w);
    edge_peer_expect_text(&ep, "hello");
    edge_peer_expect_text(&ep, "{\"k\":2}");
    edge_peer_assert_idle(&ep);
}

END_TEST

START_TEST(test_coalesced_batch_uses_evbuffer_then_returns_it)
{
    struct pool_stats ps;

    edge_peer_handshake(&ep, "/ws?topic=t", "");
    for (int i = 0; i < 3; i++)
        worker_deliver(ep.w, "t", 1, (uint64_t)i, "1", 1);
    ck_assert_ptr_nonnull(ep.cl->out); /* a second frame spills into a borrowed evbuffer */
    worker_flush_dirty(ep.w);
    pool_get_stats(ep.w->h.pool, &ps);
    ck_assert_uint_eq(ps.evbuffers_in_use, 0);
    edge_peer_expect_text(&ep, "{\"op\":\"msg\",\"topic\":\"t\",\"seq\":0,\"data\":1}");
    edge_peer_expect_text(&ep, "{\"op\":\"msg\",\"topic\":\"t\",\"seq\":1,\"data\":1}");
    edge_peer_expect_text(&ep, "{\"op\":\"msg\",\"topic\":\"t\",\"seq\":2,\"data\":1}");
    edge_peer_assert_idle(&ep);
}

END_TEST

START_TEST(test_op_errors_keep_connection)
{
    edge_peer_handshake(&ep, "/ws", "");
    edge_peer_send_text(&ep, "{\"op\":\"sub\",\"topic\":\"a..b\",\"id\":\"x\"}");
    edge_peer_expect_text(&ep, "{\"op\":\"error\",\"id\":\"x\",\"code\":\"bad_topic\",\"message\":"
                               "\"empty token in topic\"}");
    edge_peer_send_text(&ep, "{\"op\":\"unsub\",\"topic\":\"a.b\",\"id\":2}");
    edge_peer_expect_text(&ep, "{\"op\":\"error\",\"id\":2,\"code\":\"not_subscribed\",\"message\":"
                               "\"not subscribed to this topic\"}");
    edge_peer_send_text(&ep, "[1,2]");
    edge_peer_expect_text(&ep, "{\"op\":\"error\",\"code\":\"bad_request\",\"message\":"
                               "\"message must be a JSON object\"}");
    edge_peer_send_text(&ep, "{\"op\":\"ping\",\"id\":9}");
    edge_peer_expect_text(&ep, "{\"op\":\"pong\",\"id\":9}");
    ck_assert_int_eq(ep.cl->state, CLIENT_OPEN);
}

END_TEST

START_TEST(test_unsub_prunes_trie)
{
    edge_peer_handshake(&ep, "/ws", "");
    edge_peer_send_text(&ep, "{\"op\":\"sub\",\"topic\":\"a.>\",\"id\":1}");
    edge_peer_expect_text(&ep, "{\"op\":\"ok\",\"id\":1}");
    edge_peer_send_text(&ep, "{\"op\":\"sub\",\"topic\":\"a.>\",\"id\":2}");
    edge_peer_expect_text(&ep, "{\"op\":\"ok\",\"id\":2}");
    ck_assert_uint_eq(ptrset_count(&ep.cl->subs), 1);
    edge_peer_send_text(&ep, "{\"op\":\"unsub\",\"topic\":\"a.>\",\"id\":3}");
    edge_peer_expect_text(&ep, "{\"op\":\"ok\",\"id\":3}");
    ck_assert_uint_eq(trie_subscription_count(ep.w->h.trie), 0);
    ck_assert_uint_eq(trie_pattern_count(ep.w->h.trie), 0);
}

END_TEST

START_TEST(test_fragmented_message_with_interleaved_ping)
{
    const char *msg = "{\"op\":\"sub\",\"topic\":\"frag.x\",\"id\":5}";
    char buf[256];
    size_t n = 0;

    edge_peer_handshake(&ep, "/ws", "");
    edge_peer_send_frame(&ep, WS_OP_TEXT, false, msg, 10);
    ck_assert_ptr_nonnull(ep.cl->msg);
    edge_peer_send_frame(&ep, WS_OP_PING, true, "hi", 2);
    ck_assert_int_eq(edge_peer_read_frame(&ep, buf, sizeof(buf), &n), WS_OP_PONG);
    ck_assert_str_eq(buf, "hi");
    edge_peer_send_frame(&ep, WS_OP_CONT, false, msg + 10, 10);
    edge_peer_send_frame(&ep, WS_OP_CONT, true, msg + 20, strlen(msg) - 20);
    edge_peer_expect_text(&ep, "{\"op\":\"ok\",\"id\":5}");
    edge_peer_assert_idle(&ep);
}

END_TEST

START_TEST(test_split_frame_held_in_chunk)
{
    const char *msg = "{\"op\":\"ping\",\"id\":1}";
    uint8_t frame[64];
    const uint8_t mask[4] = {1, 2, 3, 4};
    size_t len = strlen(msg);

    edge_peer_handshake(&ep, "/ws", "");
    frame[0] = 0x81;
    frame[1] = (uint8_t)(0x80 | len);
    memcpy(frame + 2, mask, 4);
    for (size_t i = 0; i < len; i++)
        frame[6 + i] = (uint8_t)msg[i] ^ mask[i % 4];
    edge_peer_send(&ep, frame, 9);
    ck_assert_ptr_nonnull(ep.cl->in);
    edge_peer_send(&ep, frame + 9, 6 + len - 9);
    edge_peer_expect_text(&ep, "{\"op\":\"pong\",\"id\":1}");
    edge_peer_assert_idle(&ep);
}

END_TEST

/* ---------- protocol errors: each closes with its code ---------- */

static const struct {
    uint8_t opcode;
    bool fin;
    const char *payload;
    size_t len;
    uint16_t code;
} close_cases[] = {
    {WS_OP_TEXT, true, "\xc3\x28", 2, WS_CLOSE_INVALID_DATA},
    {WS_OP_BINARY, true, "\x01\x02", 2, WS_CLOSE_UNSUPPORTED},
    {WS_OP_CONT, true, "x", 1, WS_CLOSE_PROTOCOL},
    {0x3, true, "", 0, WS_CLOSE_PROTOCOL},                 /* reserved opcode */
    {WS_OP_CLOSE, true, "\x03\xed", 2, WS_CLOSE_PROTOCOL}, /* close code 1005 is not sendable */
    {WS_OP_CLOSE, true, "\x03\xe8\xc3\x28", 4, WS_CLOSE_INVALID_DATA}, /* reason not UTF-8 */
    {WS_OP_PING, false, "", 0, WS_CLOSE_PROTOCOL}, /* fragmented control frame */
};

START_TEST(test_protocol_errors_close)
{
    edge_peer_handshake(&ep, "/ws", "");
    edge_peer_send_frame(&ep, close_cases[_i].opcode, close_cases[_i].fin, close_cases[_i].payload,
                         close_cases[_i].len);
    edge_peer_expect_close(&ep, close_cases[_i].code, NULL);
    edge_peer_expect_eof(&ep);
    edge_peer_drop(&ep);
    ck_assert_uint_eq(ep.w->h.nclients, 0);
}

END_TEST

START_TEST(test_message_too_big)
{
    static char big[65 * 1024 + 10];

    memset(big, 'a', sizeof(big));
    edge_peer_handshake(&ep, "/ws", "");
    edge_peer_send_frame(&ep, WS_OP_TEXT, true, big, sizeof(big));
    edge_peer_expect_close(&ep, WS_CLOSE_TOO_BIG, NULL);
    ck_assert_uint_eq(ep.w->h.stats.closes[CLOSE_R_1009], 1);
}

END_TEST

START_TEST(test_fragments_too_big)
{
    static char part[40 * 1024];

    memset(part, 'a', sizeof(part));
    edge_peer_handshake(&ep, "/ws", "");
    edge_peer_send_frame(&ep, WS_OP_TEXT, false, part, sizeof(part));
    edge_peer_send_frame(&ep, WS_OP_CONT, true, part, sizeof(part));
    edge_peer_expect_close(&ep, WS_CLOSE_TOO_BIG, NULL);
}

END_TEST

START_TEST(test_close_echo)
{
    edge_peer_handshake(&ep, "/ws?topic=a", "");
    edge_peer_send_frame(&ep, WS_OP_CLOSE, true,
                         "\x03\xe8"
                         "bye",
                         5);
    edge_peer_expect_close(&ep, 1000, NULL);
    ck_assert_uint_eq(trie_subscription_count(ep.w->h.trie), 0);
    edge_peer_expect_eof(&ep);
    edge_peer_drop(&ep);
    ck_assert_uint_eq(ep.w->h.nclients, 0);
}

END_TEST

START_TEST(test_close_without_status_answers_1000)
{
    edge_peer_handshake(&ep, "/ws", "");
    edge_peer_send_frame(&ep, WS_OP_CLOSE, true, "", 0);
    edge_peer_expect_close(&ep, 1000, NULL);
}

END_TEST

/* ---------- backpressure and shutdown ---------- */

START_TEST(test_slow_consumer_closed)
{
    static char payload[2000];
    static char frame[4096];
    int small = 4096, op, data_frames = 0;

    memset(payload, 'z', sizeof(payload));
    edge_peer_handshake(&ep, "/ws?topic=s", "");
    setsockopt(ep.fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
    setsockopt(event_get_fd(&ep.cl->ev), SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
    for (int i = 0; i < 2000 && ep.w->h.stats.slow_consumers == 0; i++) {
        worker_deliver(ep.w, "s", 1, (uint64_t)i, payload, sizeof(payload));
        worker_flush_dirty(ep.w);
    }
    ck_assert_uint_eq(ep.w->h.stats.slow_consumers, 1);
    /* Deliveries stop at once: the client left the trie. */
    ck_assert_uint_eq(trie_subscription_count(ep.w->h.trie), 0);
    ck_assert_uint_le(client_queued(ep.cl), ep.w->h.conf->send_queue_limit + 256);
    /* What was queued drains in order, then close 1008 "slow consumer". */
    while ((op = edge_peer_read_frame(&ep, frame, sizeof(frame), NULL)) == WS_OP_TEXT)
        data_frames++;
    ck_assert_int_eq(op, WS_OP_CLOSE);
    ck_assert_uint_eq(((uint8_t)frame[0] << 8) | (uint8_t)frame[1], WS_CLOSE_POLICY);
    ck_assert_str_eq(frame + 2, "slow consumer");
    ck_assert_int_gt(data_frames, 0);
    edge_peer_expect_eof(&ep);
    edge_peer_drop(&ep);
    ck_assert_uint_eq(ep.w->h.nclients, 0);
    edge_peer_pump(&ep);
    ck_assert_uint_eq(frame_live(), 0);
}

END_TEST

START_TEST(test_shutdown_sends_restart)
{
    edge_peer_handshake(&ep, "/ws", "");
    worker_begin_shutdown(ep.w);
    edge_peer_expect_close(&ep, WS_CLOSE_RESTART, "service restart");
    edge_peer_expect_eof(&ep);
    edge_peer_drop(&ep);
    ck_assert_uint_eq(ep.w->h.nclients, 0);
}

END_TEST

/* Fills the client's output with n events of 2,000 bytes that the test's end does not read. */
static void queue_unread(int n)
{
    static char payload[2000];
    int small = 4096;

    memset(payload, 'd', sizeof(payload));
    setsockopt(ep.fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
    setsockopt(event_get_fd(&ep.cl->ev), SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
    for (int i = 0; i < n; i++)
        worker_deliver(ep.w, "d", 1, (uint64_t)i + 1, payload, sizeof(payload));
    worker_flush_dirty(ep.w);
    ck_assert_uint_gt(client_queued(ep.cl), 0);
}

/*
 * The drain waits for output up to shutdown-timeout (3 s here), past the 2 s
 * linger of an ordinary close: a reader that comes back after 2.5 s gets
 * every event queued before the drain, then 1012.
 */
START_TEST(test_shutdown_flushes_within_timeout)
{
    static char frame[4096];
    int op, data_frames = 0;

    edge_peer_handshake(&ep, "/ws?topic=d", "");
    queue_unread(100);
    worker_begin_shutdown(ep.w);
    ck_assert_uint_eq(trie_subscription_count(ep.w->h.trie), 0);
    edge_peer_run(&ep, 2500);
    ck_assert_uint_eq(ep.w->h.nclients, 1);
    while ((op = edge_peer_read_frame(&ep, frame, sizeof(frame), NULL)) == WS_OP_TEXT)
        data_frames++;
    ck_assert_int_eq(data_frames, 100);
    ck_assert_int_eq(op, WS_OP_CLOSE);
    ck_assert_uint_eq(((uint8_t)frame[0] << 8) | (uint8_t)frame[1], WS_CLOSE_RESTART);
    edge_peer_expect_eof(&ep);
    edge_peer_drop(&ep);
    ck_assert_uint_eq(ep.w->h.nclients, 0);
}

END_TEST

/* A client that never reads is cut when shutdown-timeout passes, and the loop ends. */
START_TEST(test_shutdown_timeout_aborts)
{
    edge_peer_handshake(&ep, "/ws?topic=d", "");
    queue_unread(100);
    worker_begin_shutdown(ep.w);
    edge_peer_run(&ep, 2500);
    ck_assert_uint_eq(ep.w->h.nclients, 1);
    event_base_dispatch(ep.w->h.base); /* returns when the stop tick ends the loop */
    ck_assert_uint_eq(ep.w->h.nclients, 0);
}

END_TEST

START_TEST(test_peer_eof_closes)
{
    edge_peer_handshake(&ep, "/ws?topic=q", "");
    edge_peer_drop(&ep);
    ck_assert_uint_eq(ep.w->h.nclients, 0);
    ck_assert_uint_eq(trie_subscription_count(ep.w->h.trie), 0);
}

END_TEST

START_TEST(test_ping_keepalive)
{
    char buf[64];
    size_t n = 1;

    edge_peer_handshake(&ep, "/ws", "");
    ck_assert_int_eq(client_ping(ep.cl), 0);
    ck_assert_int_eq(edge_peer_read_frame(&ep, buf, sizeof(buf), &n), WS_OP_PING);
    ck_assert_uint_eq(n, 0);
    edge_peer_assert_idle(&ep);
}

END_TEST

START_TEST(test_idle_timeout_closes)
{
    edge_peer_handshake(&ep, "/ws", "");
    edge_peer_run(&ep, 2200);
    edge_peer_expect_close(&ep, WS_CLOSE_GOING_AWAY, NULL);
    ck_assert_uint_eq(ep.w->h.stats.closes[CLOSE_R_IDLE], 1);
}

END_TEST

START_TEST(test_handshake_timeout)
{
    edge_peer_send(&ep, "GET /ws HTTP/1.1\r\n", 18);
    edge_peer_run(&ep, 2200);
    edge_peer_expect_eof(&ep);
    ck_assert_uint_eq(ep.w->h.nclients, 0);
    ck_assert_uint_eq(ep.w->h.stats.hs_fail[HS_FAIL_TIMEOUT], 1);
}

END_TEST

START_TEST(test_max_subscriptions)
{
    edge_peer_handshake(&ep, "/ws?topic=a&topic=b&topic=c", "");
    edge_peer_expect_text(&ep, "{\"op\":\"error\",\"code\":\"too_many_subscriptions\",\"message\":"
                               "\"max-subscriptions reached for this connection\"}");
    edge_peer_send_text(&ep, "{\"op\":\"sub\",\"topic\":\"a\",\"id\":1}");
    edge_peer_expect_text(&ep, "{\"op\":\"ok\",\"id\":1}"); /* already held: not a new one */
    edge_peer_send_text(&ep, "{\"op\":\"unsub\",\"topic\":\"b\",\"id\":2}");
    edge_peer_expect_text(&ep, "{\"op\":\"ok\",\"id\":2}");
    edge_peer_send_text(&ep, "{\"op\":\"sub\",\"topic\":\"d\",\"id\":3}");
    edge_peer_expect_text(&ep, "{\"op\":\"ok\",\"id\":3}");
    ck_assert_uint_eq(trie_subscription_count(ep.w->h.trie), 2);
}

END_TEST

/* ---------- echo path (docs/protocol.md §3.11) ---------- */

static void setup_echo(void)
{
    char *argv[] = {"--port", "0", "--echo-path", "/echo"};

    edge_peer_open(&ep, 4, argv);
}

static void setup_echo_small_queue(void)
{
    char *argv[] = {"--port", "0", "--echo-path", "/echo", "--send-queue-limit", "8kb"};

    edge_peer_open(&ep, 6, argv);
}

static void expect_frame(int op, const void *want, size_t len)
{
    static char buf[70000];
    size_t n = 0;

    ck_assert_int_eq(edge_peer_read_frame(&ep, buf, sizeof(buf), &n), op);
    ck_assert_uint_eq(n, len);
    ck_assert(memcmp(buf, want, len) == 0);
}

START_TEST(test_echo_messages)
{
    static const char op[] = "{\"op\":\"sub\",\"topic\":\"a\",\"id\":1}";

    edge_peer_handshake(&ep, "/echo?topic=b", "");
    ck_assert(ep.cl->flags & CLIENT_F_ECHO);
    /* No subscription from the query string, and an op is only text. */
    edge_peer_send_text(&ep, op);
    expect_frame(WS_OP_TEXT, op, strlen(op));
    ck_assert_uint_eq(trie_subscription_count(ep.w->h.trie), 0);
    edge_peer_send_frame(&ep, WS_OP_BINARY, true, "\x00\xff\xc3\x28", 4);
    expect_frame(WS_OP_BINARY, "\x00\xff\xc3\x28", 4);
    edge_peer_send_frame(&ep, WS_OP_TEXT, true, "", 0);
    expect_frame(WS_OP_TEXT, "", 0);
    /* Fragmented, a ping between: the pong at once, then one message. */
    edge_peer_send_frame(&ep, WS_OP_BINARY, false, "ab", 2);
    edge_peer_send_frame(&ep, WS_OP_PING, true, "p", 1);
    edge_peer_send_frame(&ep, WS_OP_CONT, false, "", 0);
    edge_peer_send_frame(&ep, WS_OP_CONT, true, "cd", 2);
    expect_frame(WS_OP_PONG, "p", 1);
    expect_frame(WS_OP_BINARY, "abcd", 4);
    edge_peer_send_frame(&ep, WS_OP_TEXT, false, "\xe2\x82", 2);
    edge_peer_send_frame(&ep, WS_OP_CONT, true, "\xac", 1);
    expect_frame(WS_OP_TEXT, "\xe2\x82\xac", 3);
    edge_peer_assert_idle(&ep);
    ck_assert_uint_eq(ep.w->h.stats.closes[CLOSE_R_1003], 0);
}

END_TEST

START_TEST(test_echo_max_message)
{
    static char big[64 * 1024];

    memset(big, '*', sizeof(big));
    edge_peer_handshake(&ep, "/echo", "");
    edge_peer_send_frame(&ep, WS_OP_TEXT, true, big, sizeof(big) - 1);
    expect_frame(WS_OP_TEXT, big, sizeof(big) - 1);
    edge_peer_assert_idle(&ep);
    edge_peer_send_frame(&ep, WS_OP_BINARY, false, big, 40000);
    edge_peer_send_frame(&ep, WS_OP_CONT, true, big, sizeof(big) - 40000 + 1);
    edge_peer_expect_close(&ep, WS_CLOSE_TOO_BIG, NULL);
    ck_assert_uint_eq(ep.w->h.stats.closes[CLOSE_R_1009], 1);
}

END_TEST

START_TEST(test_echo_text_still_utf8)
{
    edge_peer_handshake(&ep, "/echo", "");
    edge_peer_send_frame(&ep, WS_OP_TEXT, false, "ok", 2);
    edge_peer_send_frame(&ep, WS_OP_CONT, false, "\xed\xa0\x80",
                         3); /* a surrogate: fails before the end */
    edge_peer_expect_close(&ep, WS_CLOSE_INVALID_DATA, NULL);
    ck_assert_uint_eq(ep.w->h.stats.closes[CLOSE_R_1007], 1);
}

END_TEST

START_TEST(test_echo_close_reason_utf8)
{
    edge_peer_handshake(&ep, "/echo", "");
    edge_peer_send_frame(&ep, WS_OP_CLOSE, true, "\x03\xe8\xce\xba\xff", 5);
    edge_peer_expect_close(&ep, WS_CLOSE_INVALID_DATA, NULL);
    edge_peer_expect_eof(&ep);
    ck_assert_uint_eq(ep.w->h.stats.closes[CLOSE_R_1007], 1);
}

END_TEST

START_TEST(test_echo_unread_closed_1008)
{
    static char payload[2000];
    int small = 4096, op, echoes = 0;
    char *frame = malloc(4096);

    memset(payload, 'e', sizeof(payload));
    edge_peer_handshake(&ep, "/echo", "");
    setsockopt(ep.fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
    setsockopt(event_get_fd(&ep.cl->ev), SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
    for (int i = 0; i < 2000 && ep.w->h.stats.slow_consumers == 0; i++)
        edge_peer_send_frame(&ep, WS_OP_BINARY, true, payload, sizeof(payload));
    ck_assert_uint_eq(ep.w->h.stats.slow_consumers, 1);
    ck_assert_uint_le(client_queued(ep.cl), ep.w->h.conf->send_queue_limit + 256);
    while ((op = edge_peer_read_frame(&ep, frame, 4096, NULL)) == WS_OP_BINARY)
        echoes++;
    ck_assert_int_eq(op, WS_OP_CLOSE);
    ck_assert_uint_eq(((uint8_t)frame[0] << 8) | (uint8_t)frame[1], WS_CLOSE_POLICY);
    ck_assert_int_gt(echoes, 0);
    free(frame);
    edge_peer_expect_eof(&ep);
    edge_peer_drop(&ep);
    ck_assert_uint_eq(ep.w->h.nclients, 0);
}

END_TEST

/* max-ops-per-second: the op past the limit within one second closes 1008. */
START_TEST(test_ops_flood_closed)
{
    char buf[64];
    int n = 0, op;

    edge_peer_handshake(&ep, "/ws", "");
    for (int i = 0; i < 5; i++)
        edge_peer_send_text(&ep, "{\"op\":\"ping\"}");
    /* A second may end between two sends: then the count restarts. Keep going until closed. */
    for (int i = 0; i < 20 && ep.cl->state == CLIENT_OPEN; i++)
        edge_peer_send_text(&ep, "{\"op\":\"ping\"}");
    ck_assert_int_eq(ep.cl->state, CLIENT_CLOSING);
    while ((op = edge_peer_read_frame(&ep, buf, sizeof(buf), NULL)) == WS_OP_TEXT)
        n++;
    ck_assert_int_eq(op, WS_OP_CLOSE);
    ck_assert_uint_eq(((uint8_t)buf[0] << 8) | (uint8_t)buf[1], WS_CLOSE_POLICY);
    ck_assert_str_eq(buf + 2, "too many ops");
    ck_assert_int_ge(n, 5);
    ck_assert_uint_eq(ep.w->h.stats.closes[CLOSE_R_1008], 1);
}

END_TEST

/* A client that keeps to the limit is never closed: the count starts again every second. */
START_TEST(test_ops_within_limit_survive)
{
    edge_peer_handshake(&ep, "/ws", "");
    for (int s = 0; s < 3; s++) {
        for (int i = 0; i < 5; i++) {
            edge_peer_send_text(&ep, "{\"op\":\"ping\"}");
            edge_peer_expect_text(&ep, "{\"op\":\"pong\"}");
        }
        edge_peer_run(&ep, 1100);
    }
    ck_assert_int_eq(ep.cl->state, CLIENT_OPEN);
}

END_TEST

static Suite *edge_client_suite(void)
{
    Suite *s = suite_create("edge_client");
    TCase *t;

    t = tcase_create("size");
    tcase_add_test(t, test_client_struct_size);
    suite_add_tcase(s, t);

    t = tcase_create("handshake");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_add_test(t, test_handshake_ok_and_idle);
    tcase_add_test(t, test_handshake_split_holds_chunk);
    tcase_add_loop_test(t, test_http_errors, 0, sizeof(http_cases) / sizeof(http_cases[0]));
    tcase_add_test(t, test_header_too_large_431);
    tcase_add_test(t, test_healthz_without_broker);
    tcase_add_test(t, test_metrics);
    suite_add_tcase(s, t);

    t = tcase_create("ops");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_add_test(t, test_sub_and_deliver_json);
    tcase_add_test(t, test_query_topics_raw);
    tcase_add_test(t, test_coalesced_batch_uses_evbuffer_then_returns_it);
    tcase_add_test(t, test_op_errors_keep_connection);
    tcase_add_test(t, test_unsub_prunes_trie);
    tcase_add_test(t, test_fragmented_message_with_interleaved_ping);
    tcase_add_test(t, test_split_frame_held_in_chunk);
    suite_add_tcase(s, t);

    t = tcase_create("protocol_errors");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_add_loop_test(t, test_protocol_errors_close, 0,
                        sizeof(close_cases) / sizeof(close_cases[0]));
    tcase_add_test(t, test_message_too_big);
    tcase_add_test(t, test_fragments_too_big);
    tcase_add_test(t, test_close_echo);
    tcase_add_test(t, test_close_without_status_answers_1000);
    suite_add_tcase(s, t);

    t = tcase_create("lifecycle");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_add_test(t, test_shutdown_sends_restart);
    tcase_add_test(t, test_peer_eof_closes);
    suite_add_tcase(s, t);

    t = tcase_create("drain");
    tcase_add_checked_fixture(t, setup_drain, teardown);
    tcase_add_test(t, test_shutdown_flushes_within_timeout);
    tcase_add_test(t, test_shutdown_timeout_aborts);
    suite_add_tcase(s, t);

    t = tcase_create("limits");
    tcase_add_checked_fixture(t, setup_two_subs, teardown);
    tcase_add_test(t, test_max_subscriptions);
    suite_add_tcase(s, t);

    t = tcase_create("timers");
    tcase_add_checked_fixture(t, setup_short_timers, teardown);
    tcase_add_test(t, test_ping_keepalive);
    tcase_add_test(t, test_idle_timeout_closes);
    tcase_add_test(t, test_handshake_timeout);
    suite_add_tcase(s, t);

    t = tcase_create("backpressure");
    tcase_add_checked_fixture(t, setup_small_queue, teardown);
    tcase_add_test(t, test_slow_consumer_closed);
    suite_add_tcase(s, t);

    t = tcase_create("echo");
    tcase_add_checked_fixture(t, setup_echo, teardown);
    tcase_add_test(t, test_echo_messages);
    tcase_add_test(t, test_echo_max_message);
    tcase_add_test(t, test_echo_text_still_utf8);
    tcase_add_test(t, test_echo_close_reason_utf8);
    suite_add_tcase(s, t);

    t = tcase_create("echo_backpressure");
    tcase_add_checked_fixture(t, setup_echo_small_queue, teardown);
    tcase_add_test(t, test_echo_unread_closed_1008);
    suite_add_tcase(s, t);

    t = tcase_create("ops_limit");
    tcase_add_checked_fixture(t, setup_five_ops, teardown);
    tcase_add_test(t, test_ops_flood_closed);
    tcase_add_test(t, test_ops_within_limit_survive);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    return check_run_suite(edge_client_suite());
}

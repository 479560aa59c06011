/*
 * Tests for edge/ws_handshake.c: the RFC 6455 accept sample, curl-like and
 * browser-like upgrades, every prefix of a valid head (-2), each error
 * status (400, 403, 404, 405, 426, 431) from a table, the Host rules
 * (RFC 7230 5.4), the echo path, garbage input,
 * origin lists, query topics and format=raw, topic limits, the exact 101
 * response, and a guard-page test (input ends at a PROT_NONE page).
 */
#include "common/ws/ws_key.h"
#include "edge/ws_handshake.h"
#include "tests/support/check_main.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define MAX_HEADER 8192
#define SAMPLE_KEY "dGhlIHNhbXBsZSBub25jZQ=="
#define SAMPLE_ACC "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

static const char curl_req[] = "GET /ws HTTP/1.1\r\n"
                               "Host: localhost:8080\r\n"
                               "User-Agent: curl/7.88.1\r\n"
                               "Accept: */*\r\n"
                               "Connection: Upgrade\r\n"
                               "Upgrade: websocket\r\n"
                               "Sec-WebSocket-Version: 13\r\n"
                               "Sec-WebSocket-Key: " SAMPLE_KEY "\r\n"
                               "\r\n";

static const char browser_req[] =
    "GET /ws?topic=mail.user.42.%3E&topic=news.*&format=raw HTTP/1.1\r\n"
    "Host: edge.example.com\r\n"
    "Connection: keep-alive, Upgrade\r\n"
    "Pragma: no-cache\r\n"
    "Cache-Control: no-cache\r\n"
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/120.0 Safari/537.36\r\n"
    "Upgrade: WebSocket\r\n"
    "Origin: https://app.example.com\r\n"
    "Sec-WebSocket-Version: 13\r\n"
    "Accept-Encoding: gzip, deflate, br\r\n"
    "Accept-Language: en-US,en;q=0.9\r\n"
    "Sec-WebSocket-Key: x3JJHMbDL1EzLkh9GBhXDw==\r\n"
    "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
    "Sec-WebSocket-Protocol: chat, herald.v1\r\n"
    "\r\n";

static ssize_t parse(const char *s, const char *origins, struct ws_request *req)
{
    const struct ws_hs_policy policy = {origins, NULL};
    memset(req, 0x5A, sizeof(*req));
    return ws_handshake_parse(s, strlen(s), MAX_HEADER, &policy, req);
}

/* ---------- accept key and response ---------- */

START_TEST(test_accept_rfc_sample)
{
    char out[29];
    ws_accept_key(SAMPLE_KEY, strlen(SAMPLE_KEY), out);
    ck_assert_str_eq(out, SAMPLE_ACC);
    /* The example handshake on Wikipedia's WebSocket page. */
    ws_accept_key("x3JJHMbDL1EzLkh9GBhXDw==", 24, out);
    ck_assert_str_eq(out, "HSmrc0sMlYUkAGmm5OPpG2HaGWk=");
}

END_TEST

START_TEST(test_response_exact)
{
    struct ws_request req;
    ck_assert_int_eq(parse(curl_req, NULL, &req), (ssize_t)strlen(curl_req));
    char out[256];
    size_t n = ws_handshake_response(&req, out, sizeof(out));
    const char *want = "HTTP/1.1 101 Switching Protocols\r\n"
                       "Upgrade: websocket\r\n"
                       "Connection: Upgrade\r\n"
                       "Sec-WebSocket-Accept: " SAMPLE_ACC "\r\n"
                       "\r\n";
    ck_assert_uint_eq(n, strlen(want));
    ck_assert_str_eq(out, want);

    ck_assert_int_gt(parse(browser_req, NULL, &req), 0);
    n = ws_handshake_response(&req, out, sizeof(out));
    want = "HTTP/1.1 101 Switching Protocols\r\n"
           "Upgrade: websocket\r\n"
           "Connection: Upgrade\r\n"
           "Sec-WebSocket-Accept: HSmrc0sMlYUkAGmm5OPpG2HaGWk=\r\n"
           "Sec-WebSocket-Protocol: herald.v1\r\n"
           "\r\n";
    ck_assert_uint_eq(n, strlen(want));
    ck_assert_str_eq(out, want);
}

END_TEST

/* ---------- valid upgrades ---------- */

START_TEST(test_curl_upgrade)
{
    struct ws_request req;
    ck_assert_int_eq(parse(curl_req, NULL, &req), (ssize_t)strlen(curl_req));
    ck_assert_int_eq(req.kind, WS_REQ_UPGRADE);
    ck_assert_str_eq(req.accept, SAMPLE_ACC);
    ck_assert(!req.subprotocol);
    ck_assert(!req.raw);
    ck_assert_uint_eq(req.ntopics, 0);
    ck_assert(!req.too_many_topics);
}

END_TEST

START_TEST(test_browser_upgrade)
{
    struct ws_request req;
    ck_assert_int_eq(parse(browser_req, "https://app.example.com", &req),
                     (ssize_t)strlen(browser_req));
    ck_assert_int_eq(req.kind, WS_REQ_UPGRADE);
    ck_assert_str_eq(req.accept, "HSmrc0sMlYUkAGmm5OPpG2HaGWk=");
    ck_assert(req.subprotocol);
    ck_assert(req.raw);
    ck_assert_uint_eq(req.ntopics, 2);
    ck_assert_str_eq(req.topics[0], "mail.user.42.>");
    ck_assert_uint_eq(req.topic_lens[0], 14);
    ck_assert_str_eq(req.topics[1], "news.*");
    ck_assert_uint_eq(req.topic_lens[1], 6);
    ck_assert(!req.too_many_topics);
}

END_TEST

START_TEST(test_case_insensitive_headers)
{
    struct ws_request req;
    const char *r = "GET /ws HTTP/1.1\r\n"
                    "host: x\r\n"
                    "CONNECTION: upgrade\r\n"
                    "upgrade: WEBSOCKET\r\n"
                    "sec-websocket-version:13\r\n"
                    "SEC-WEBSOCKET-KEY:   " SAMPLE_KEY "   \r\n"
                    "sec-websocket-protocol: herald.v1\r\n"
                    "\r\n";
    ck_assert_int_eq(parse(r, NULL, &req), (ssize_t)strlen(r));
    ck_assert_int_eq(req.kind, WS_REQ_UPGRADE);
    ck_assert_str_eq(req.accept, SAMPLE_ACC);
    ck_assert(req.subprotocol);
}

END_TEST

START_TEST(test_subprotocol_not_offered)
{
    struct ws_request req;
    const char *r = "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
                    "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " SAMPLE_KEY "\r\n"
                    "Sec-WebSocket-Protocol: herald.v2, HERALD.V1, xherald.v1\r\n\r\n";
    ck_assert_int_gt(parse(r, NULL, &req), 0);
    ck_assert_int_eq(req.kind, WS_REQ_UPGRADE);
    ck_assert(!req.subprotocol);
}

END_TEST

START_TEST(test_bytes_after_head_untouched)
{
    char buf[512];
    strcpy(buf, curl_req);
    size_t head = strlen(curl_req);
    memcpy(buf + head, "\x81\x85\x01\x02\x03\x04hello", 11);
    struct ws_request req;
    ck_assert_int_eq(ws_handshake_parse(buf, head + 11, MAX_HEADER, NULL, &req), (ssize_t)head);
    ck_assert_int_eq(req.kind, WS_REQ_UPGRADE);

    /* A non-upgrade request followed by another one: stop after the first. */
    const char *first = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    const char *two = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /metrics HTTP/1.1\r\n\r\n";
    ck_assert_int_eq(parse(two, NULL, &req), (ssize_t)strlen(first));
    ck_assert_int_eq(req.kind, WS_REQ_HEALTHZ);
}

END_TEST

START_TEST(test_body_not_read)
{
    struct ws_request req;
    const char *r = "GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello";
    ck_assert_int_eq(parse(r, NULL, &req), (ssize_t)strlen(r) - 5);
    ck_assert_int_eq(req.kind, WS_REQ_HEALTHZ);
}

END_TEST

START_TEST(test_every_prefix_incomplete)
{
    const char *reqs[] = {curl_req, browser_req};
    const char *r = reqs[_i];
    size_t len = strlen(r);
    for (size_t p = 0; p < len; p++) {
        struct ws_request req;
        ck_assert_msg(ws_handshake_parse(r, p, MAX_HEADER, NULL, &req) == -2, "prefix %zu", p);
    }
    struct ws_request req;
    ck_assert_int_eq(ws_handshake_parse(r, len, MAX_HEADER, NULL, &req), (ssize_t)len);
    ck_assert_int_eq(req.kind, WS_REQ_UPGRADE);
}

END_TEST

/* ---------- status table ---------- */

struct status_case {
    const char *name;
    const char *req;
    const char *origins;
    int ret; /* 1: complete head, -1 */
    enum ws_request_kind kind;
    int status;
};

#define UPG "Host: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
#define KEY "Sec-WebSocket-Key: " SAMPLE_KEY "\r\n"

static const struct status_case statuses[] = {
    {"healthz", "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", NULL, 1, WS_REQ_HEALTHZ, 0},
    {"metrics", "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", NULL, 1, WS_REQ_METRICS, 0},
    {"healthz http/1.0", "GET /healthz HTTP/1.0\r\n\r\n", NULL, 1, WS_REQ_HEALTHZ, 0},
    {"metrics query", "GET /metrics?x=1 HTTP/1.1\r\nHost: x\r\n\r\n", NULL, 1, WS_REQ_METRICS, 0},
    {"healthz with upgrade headers", "GET /healthz HTTP/1.1\r\n" UPG KEY "\r\n", NULL, 1,
     WS_REQ_HEALTHZ, 0},
    {"absolute-form", "GET http://x/ws HTTP/1.1\r\n" UPG KEY "\r\n", NULL, 1, WS_REQ_UPGRADE, 0},
    {"not found", "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n", NULL, 1, WS_REQ_ERROR, 404},
    {"root", "GET / HTTP/1.1\r\nHost: x\r\n\r\n", NULL, 1, WS_REQ_ERROR, 404},
    {"ws slash", "GET /ws/ HTTP/1.1\r\n" UPG KEY "\r\n", NULL, 1, WS_REQ_ERROR, 404},
    {"post ws", "POST /ws HTTP/1.1\r\n" UPG KEY "Content-Length: 0\r\n\r\n", NULL, 1, WS_REQ_ERROR,
     405},
    {"post healthz", "POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n", NULL, 1,
     WS_REQ_ERROR, 405},
    {"delete metrics", "DELETE /metrics HTTP/1.1\r\nHost: x\r\n\r\n", NULL, 1, WS_REQ_ERROR, 405},
    /* RFC 7230 5.4 (RFC 6455 4.2.1 for the upgrade): Host on every HTTP/1.1 request, once. */
    {"ws without host",
     "GET /ws HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
     "Sec-WebSocket-Version: 13\r\n" KEY "\r\n",
     NULL, 1, WS_REQ_ERROR, 400},
    {"healthz without host", "GET /healthz HTTP/1.1\r\n\r\n", NULL, 1, WS_REQ_ERROR, 400},
    {"metrics without host", "GET /metrics HTTP/1.1\r\n\r\n", NULL, 1, WS_REQ_ERROR, 400},
    {"unknown path without host", "GET /nope HTTP/1.1\r\n\r\n", NULL, 1, WS_REQ_ERROR, 400},
    {"post without host", "POST /ws HTTP/1.1\r\nContent-Length: 0\r\n\r\n", NULL, 1, WS_REQ_ERROR,
     400},
    {"host twice", "GET /ws HTTP/1.1\r\n" UPG KEY "Host: y\r\n\r\n", NULL, 1, WS_REQ_ERROR, 400},
    {"host twice on http/1.0", "GET /healthz HTTP/1.0\r\nHost: x\r\nhost: x\r\n\r\n", NULL, 1,
     WS_REQ_ERROR, 400},
    {"host with a space", "GET /healthz HTTP/1.1\r\nHost: a b\r\n\r\n", NULL, 1, WS_REQ_ERROR, 400},
    {"host with a slash", "GET /healthz HTTP/1.1\r\nHost: a/b\r\n\r\n", NULL, 1, WS_REQ_ERROR, 400},
    {"host with userinfo", "GET /healthz HTTP/1.1\r\nHost: u@a\r\n\r\n", NULL, 1, WS_REQ_ERROR,
     400},
    {"host empty (no authority)", "GET /healthz HTTP/1.1\r\nHost:\r\n\r\n", NULL, 1, WS_REQ_HEALTHZ,
     0},
    {"host ipv6 and port", "GET /healthz HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n", NULL, 1,
     WS_REQ_HEALTHZ, 0},
    {"host name and port", "GET /healthz HTTP/1.1\r\nhost:  edge.example:443 \r\n\r\n", NULL, 1,
     WS_REQ_HEALTHZ, 0},
    {"missing key", "GET /ws HTTP/1.1\r\n" UPG "\r\n", NULL, 1, WS_REQ_ERROR, 400},
    {"key too short",
     "GET /ws HTTP/1.1\r\n" UPG "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZ==\r\n\r\n", NULL, 1,
     WS_REQ_ERROR, 400},
    {"key too long",
     "GET /ws HTTP/1.1\r\n" UPG "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQQ==\r\n\r\n", NULL, 1,
     WS_REQ_ERROR, 400},
    {"key not base64",
     "GET /ws HTTP/1.1\r\n" UPG "Sec-WebSocket-Key: dGhlIHNhbXBsZ$Bub25jZQ==\r\n\r\n", NULL, 1,
     WS_REQ_ERROR, 400},
    {"key no padding",
     "GET /ws HTTP/1.1\r\n" UPG "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQAA\r\n\r\n", NULL, 1,
     WS_REQ_ERROR, 400},
    {"key one padding",
     "GET /ws HTTP/1.1\r\n" UPG "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQA=\r\n\r\n", NULL, 1,
     WS_REQ_ERROR, 400},
    {"key empty", "GET /ws HTTP/1.1\r\n" UPG "Sec-WebSocket-Key:\r\n\r\n", NULL, 1, WS_REQ_ERROR,
     400},
    {"key twice", "GET /ws HTTP/1.1\r\n" UPG KEY KEY "\r\n", NULL, 1, WS_REQ_ERROR, 400},
    {"version 8",
     "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
     "Sec-WebSocket-Version: 8\r\n" KEY "\r\n",
     NULL, 1, WS_REQ_ERROR, 426},
    {"version 130",
     "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
     "Sec-WebSocket-Version: 130\r\n" KEY "\r\n",
     NULL, 1, WS_REQ_ERROR, 426},
    {"version missing",
     "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n" KEY "\r\n",
     NULL, 1, WS_REQ_ERROR, 400},
    {"upgrade missing",
     "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n" KEY
     "\r\n",
     NULL, 1, WS_REQ_ERROR, 400},
    {"upgrade h2c",
     "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n"
     "Sec-WebSocket-Version: 13\r\n" KEY "\r\n",
     NULL, 1, WS_REQ_ERROR, 400},
    {"connection missing",
     "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n" KEY
     "\r\n",
     NULL, 1, WS_REQ_ERROR, 400},
    {"connection keep-alive only",
     "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\nUpgrade: websocket\r\n"
     "Sec-WebSocket-Version: 13\r\n" KEY "\r\n",
     NULL, 1, WS_REQ_ERROR, 400},
    {"connection upgraded (not a token match)",
     "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: upgraded\r\nUpgrade: websocket\r\n"
     "Sec-WebSocket-Version: 13\r\n" KEY "\r\n",
     NULL, 1, WS_REQ_ERROR, 400},
    {"connection folded (obs-fold)",
     "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: keep-alive,\r\n Upgrade\r\nUpgrade: websocket\r\n"
     "Sec-WebSocket-Version: 13\r\n" KEY "\r\n",
     NULL, 1, WS_REQ_UPGRADE, 0},
    {"ws over http/1.0", "GET /ws HTTP/1.0\r\n" UPG KEY "\r\n", NULL, 1, WS_REQ_ERROR, 400},
    {"origin allowed", "GET /ws HTTP/1.1\r\n" UPG KEY "Origin: https://b.example\r\n\r\n",
     "https://a.example, https://b.example", 1, WS_REQ_UPGRADE, 0},
    {"origin denied", "GET /ws HTTP/1.1\r\n" UPG KEY "Origin: https://evil.example\r\n\r\n",
     "https://a.example,https://b.example", 1, WS_REQ_ERROR, 403},
    {"origin prefix denied", "GET /ws HTTP/1.1\r\n" UPG KEY "Origin: https://a.exampl\r\n\r\n",
     "https://a.example", 1, WS_REQ_ERROR, 403},
    {"origin empty denied", "GET /ws HTTP/1.1\r\n" UPG KEY "Origin:\r\n\r\n", "https://a.example",
     1, WS_REQ_ERROR, 403},
    {"origin empty vs list with empty item", "GET /ws HTTP/1.1\r\n" UPG KEY "Origin:\r\n\r\n",
     "https://a.example,,https://b.example", 1, WS_REQ_ERROR, 403},
    {"origin any (empty list)",
     "GET /ws HTTP/1.1\r\n" UPG KEY "Origin: https://evil.example\r\n\r\n", "", 1, WS_REQ_UPGRADE,
     0},
    {"origin absent with list", "GET /ws HTTP/1.1\r\n" UPG KEY "\r\n", "https://a.example", 1,
     WS_REQ_UPGRADE, 0},
    {"bad percent", "GET /ws?topic=a%2 HTTP/1.1\r\n" UPG KEY "\r\n", NULL, 1, WS_REQ_ERROR, 400},
    {"bad percent hex", "GET /ws?topic=a%zz HTTP/1.1\r\n" UPG KEY "\r\n", NULL, 1, WS_REQ_ERROR,
     400},
    {"percent nul", "GET /ws?topic=a%00b HTTP/1.1\r\n" UPG KEY "\r\n", NULL, 1, WS_REQ_ERROR, 400},
    {"http/2", "GET /ws HTTP/2.0\r\n" UPG KEY "\r\n", NULL, -1, WS_REQ_ERROR, 400},
    {"tls client hello", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", NULL, -1, WS_REQ_ERROR,
     400},
    {"garbage", "HELLO THERE\r\n\r\n", NULL, -1, WS_REQ_ERROR, 400},
    {"binary", "\x01\x02\x03\x04\r\n\r\n", NULL, -1, WS_REQ_ERROR, 400},
    {"header without colon", "GET /ws HTTP/1.1\r\nNoColon\r\n\r\n", NULL, -1, WS_REQ_ERROR, 400},
    {"bad version digits", "GET /ws HTTP/1.x\r\n\r\n", NULL, -1, WS_REQ_ERROR, 400},
    {"space in header name (lenient parser: 400 later)",
     "GET /ws HTTP/1.1\r\nBad Header: x\r\n\r\n", NULL, 1, WS_REQ_ERROR, 400},
    {"response not request", "HTTP/1.1 200 OK\r\n\r\n", NULL, -1, WS_REQ_ERROR, 400},
};

#define NSTATUS (sizeof(statuses) / sizeof(statuses[0]))

START_TEST(test_status)
{
    const struct status_case *c = &statuses[_i];
    struct ws_request req;
    ssize_t r = parse(c->req, c->origins, &req);
    if (c->ret > 0) {
        ck_assert_msg(r == (ssize_t)strlen(c->req), "case %s: returned %zd", c->name, r);
    } else {
        ck_assert_msg(r == c->ret, "case %s: returned %zd", c->name, r);
    }
    ck_assert_msg(req.kind == c->kind, "case %s: kind %d", c->name, req.kind);
    if (c->kind == WS_REQ_ERROR) {
        ck_assert_msg(req.status == c->status, "case %s: status %d", c->name, req.status);
        ck_assert_msg(req.err != NULL && req.err[0] != '\0', "case %s: no err", c->name);
    }
}

END_TEST

/* ---------- header size limit ---------- */

START_TEST(test_max_header)
{
    char big[4096];
    size_t n = (size_t)snprintf(big, sizeof(big),
                                "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: %0900d\r\n\r\n", 0);
    struct ws_request req;
    /* Incomplete and within the limit: read more. */
    ck_assert_int_eq(ws_handshake_parse(big, 200, 512, NULL, &req), -2);
    ck_assert_int_eq(ws_handshake_parse(big, 512, 512, NULL, &req), -2);
    /* More than the limit without a complete head. */
    ck_assert_int_eq(ws_handshake_parse(big, 513, 512, NULL, &req), -1);
    ck_assert_int_eq(req.status, 431);
    ck_assert_ptr_nonnull(req.err);
    ck_assert_int_eq(ws_handshake_parse(big, n, 512, NULL, &req), -1);
    ck_assert_int_eq(req.status, 431);
    /* A head of exactly the limit is fine, one byte over is not. */
    ck_assert_int_eq(ws_handshake_parse(big, n, n, NULL, &req), (ssize_t)n);
    ck_assert_int_eq(req.kind, WS_REQ_HEALTHZ);
    ck_assert_int_eq(ws_handshake_parse(big, n, n - 1, NULL, &req), -1);
    ck_assert_int_eq(req.status, 431);
}

END_TEST

START_TEST(test_max_header_endless_line)
{
    static char buf[100000];
    memcpy(buf, "GET /ws?", 8);
    memset(buf + 8, 'a', sizeof(buf) - 8);
    struct ws_request req;
    ck_assert_int_eq(ws_handshake_parse(buf, sizeof(buf), MAX_HEADER, NULL, &req), -1);
    ck_assert_int_eq(req.status, 431);
    /* Even a limit above libhttp-parser's own 80 KB header cap answers 431. */
    memcpy(buf, "GET /ws HTTP/1.1\r\nX: ", 21);
    ck_assert_int_eq(ws_handshake_parse(buf, sizeof(buf), sizeof(buf), NULL, &req), -1);
    ck_assert_int_eq(req.status, 431);
}

END_TEST

/* ---------- query string ---------- */

START_TEST(test_query_decoding)
{
    struct ws_request req;
    const char *r =
        "GET /ws?x=1&topic=a.b&&topic=%41%62.c+d&topic=&format=json&topic=%2a&y HTTP/1.1\r\n" UPG
            KEY "\r\n";
    ck_assert_int_gt(parse(r, NULL, &req), 0);
    ck_assert_int_eq(req.kind, WS_REQ_UPGRADE);
    ck_assert(!req.raw);
    ck_assert_uint_eq(req.ntopics, 4);
    ck_assert_str_eq(req.topics[0], "a.b");
    ck_assert_str_eq(req.topics[1], "Ab.c+d");
    ck_assert_uint_eq(req.topic_lens[1], 6);
    ck_assert_str_eq(req.topics[2], "");
    ck_assert_uint_eq(req.topic_lens[2], 0);
    ck_assert_str_eq(req.topics[3], "*");
    /* Topics live in topic_buf. */
    for (size_t i = 0; i < req.ntopics; i++) {
        ck_assert(req.topics[i] >= req.topic_buf &&
                  req.topics[i] + req.topic_lens[i] < req.topic_buf + sizeof(req.topic_buf));
    }
    ck_assert(!req.too_many_topics);
}

END_TEST

START_TEST(test_query_format_raw)
{
    struct ws_request req;
    ck_assert_int_gt(parse("GET /ws?format=raw HTTP/1.1\r\n" UPG KEY "\r\n", NULL, &req), 0);
    ck_assert(req.raw);
    ck_assert_int_gt(parse("GET /ws?format=rawx HTTP/1.1\r\n" UPG KEY "\r\n", NULL, &req), 0);
    ck_assert(!req.raw);
    ck_assert_int_gt(parse("GET /ws?formats=raw HTTP/1.1\r\n" UPG KEY "\r\n", NULL, &req), 0);
    ck_assert(!req.raw);
}

END_TEST

static char big_req[16384];

static const char *topics_request(size_t n, size_t topic_len)
{
    size_t off = (size_t)snprintf(big_req, sizeof(big_req), "GET /ws?");
    for (size_t i = 0; i < n; i++) {
        off += (size_t)snprintf(big_req + off, sizeof(big_req) - off, "%stopic=t%0*zu",
                                i ? "&" : "", (int)topic_len - 1, i);
    }
    snprintf(big_req + off, sizeof(big_req) - off, " HTTP/1.1\r\n" UPG KEY "\r\n");
    return big_req;
}

START_TEST(test_topics_limit_count)
{
    struct ws_request req;
    const char *r = topics_request(WS_HS_MAX_TOPICS, 4);
    ck_assert_int_eq(parse(r, NULL, &req), (ssize_t)strlen(r));
    ck_assert_int_eq(req.kind, WS_REQ_UPGRADE);
    ck_assert_uint_eq(req.ntopics, WS_HS_MAX_TOPICS);
    ck_assert(!req.too_many_topics);
    ck_assert_str_eq(req.topics[63], "t063");

    r = topics_request(WS_HS_MAX_TOPICS + 1, 4);
    ck_assert_int_eq(parse(r, NULL, &req), (ssize_t)strlen(r));
    ck_assert_int_eq(req.kind, WS_REQ_UPGRADE);
    ck_assert_uint_eq(req.ntopics, WS_HS_MAX_TOPICS);
    ck_assert(req.too_many_topics);
}

END_TEST

START_TEST(test_topics_limit_bytes)
{
    struct ws_request req;
    /* 9 topics of 499 bytes + NUL fill 4500 > 4096 bytes: the 9th does not fit. */
    const char *r = topics_request(9, 499);
    ck_assert_int_eq(ws_handshake_parse(r, strlen(r), sizeof(big_req), NULL, &req),
                     (ssize_t)strlen(r));
    ck_assert_int_eq(req.kind, WS_REQ_UPGRADE);
    ck_assert_uint_eq(req.ntopics, 8);
    ck_assert(req.too_many_topics);
    ck_assert_uint_eq(req.topic_lens[7], 499);
    ck_assert_uint_eq(strlen(req.topics[7]), 499);
}

END_TEST

/* ---------- echo path ---------- */

struct echo_case {
    const char *name;
    const char *req;
    const char *echo_path; /* policy->echo_path */
    enum ws_request_kind kind;
    int status;
};

static const struct echo_case echoes[] = {
    {"echo", "GET /echo HTTP/1.1\r\n" UPG KEY "\r\n", "/echo", WS_REQ_ECHO, 0},
    {"echo query ignored", "GET /echo?topic=a&format=raw&topic=%zz HTTP/1.1\r\n" UPG KEY "\r\n",
     "/echo", WS_REQ_ECHO, 0},
    {"echo deeper path", "GET /t/echo HTTP/1.1\r\n" UPG KEY "\r\n", "/t/echo", WS_REQ_ECHO, 0},
    {"echo unset: 404", "GET /echo HTTP/1.1\r\n" UPG KEY "\r\n", NULL, WS_REQ_ERROR, 404},
    {"echo other path: 404", "GET /echo HTTP/1.1\r\n" UPG KEY "\r\n", "/echo2", WS_REQ_ERROR, 404},
    {"echo prefix: 404", "GET /echo/ HTTP/1.1\r\n" UPG KEY "\r\n", "/echo", WS_REQ_ERROR, 404},
    {"echo case-sensitive", "GET /ECHO HTTP/1.1\r\n" UPG KEY "\r\n", "/echo", WS_REQ_ERROR, 404},
    {"ws still served", "GET /ws?topic=a HTTP/1.1\r\n" UPG KEY "\r\n", "/echo", WS_REQ_UPGRADE, 0},
    {"echo post", "POST /echo HTTP/1.1\r\n" UPG KEY "Content-Length: 0\r\n\r\n", "/echo",
     WS_REQ_ERROR, 405},
    {"echo plain get", "GET /echo HTTP/1.1\r\nHost: x\r\n\r\n", "/echo", WS_REQ_ERROR, 400},
    {"echo version 8",
     "GET /echo HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
     "Sec-WebSocket-Version: 8\r\n" KEY "\r\n",
     "/echo", WS_REQ_ERROR, 426},
    {"echo without host",
     "GET /echo HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
     "Sec-WebSocket-Version: 13\r\n" KEY "\r\n",
     "/echo", WS_REQ_ERROR, 400},
    {"echo origin denied", "GET /echo HTTP/1.1\r\n" UPG KEY "Origin: https://evil.example\r\n\r\n",
     "/echo", WS_REQ_ERROR, 403},
};

#define NECHOES (sizeof(echoes) / sizeof(echoes[0]))

START_TEST(test_echo_path)
{
    const struct echo_case *c = &echoes[_i];
    const struct ws_hs_policy policy = {"https://a.example", c->echo_path};
    struct ws_request req;
    memset(&req, 0x5A, sizeof(req));
    ssize_t r = ws_handshake_parse(c->req, strlen(c->req), MAX_HEADER, &policy, &req);
    ck_assert_msg(r == (ssize_t)strlen(c->req), "case %s: returned %zd", c->name, r);
    ck_assert_msg(req.kind == c->kind, "case %s: kind %d", c->name, req.kind);
    if (c->kind == WS_REQ_ERROR) {
        ck_assert_msg(req.status == c->status, "case %s: status %d", c->name, req.status);
    } else {
        ck_assert_str_eq(req.accept, SAMPLE_ACC);
    }
    if (c->kind == WS_REQ_ECHO) {
        /* The query string is not read: no topics, no format, no error. */
        ck_assert_uint_eq(req.ntopics, 0);
        ck_assert(!req.raw);
        ck_assert(!req.too_many_topics);
    }
}

END_TEST

START_TEST(test_null_policy)
{
    struct ws_request req;
    const char *r = "GET /ws HTTP/1.1\r\n" UPG KEY "Origin: https://any.example\r\n\r\n";
    ck_assert_int_eq(ws_handshake_parse(r, strlen(r), MAX_HEADER, NULL, &req), (ssize_t)strlen(r));
    ck_assert_int_eq(req.kind, WS_REQ_UPGRADE);
    r = "GET /echo HTTP/1.1\r\n" UPG KEY "\r\n";
    ck_assert_int_eq(ws_handshake_parse(r, strlen(r), MAX_HEADER, NULL, &req), (ssize_t)strlen(r));
    ck_assert_int_eq(req.kind, WS_REQ_ERROR);
    ck_assert_int_eq(req.status, 404);
}

END_TEST

/* ---------- guard page ---------- */

static char *guarded(size_t len, void **map, size_t *maplen)
{
    size_t pg = (size_t)sysconf(_SC_PAGESIZE);
    *maplen = 2 * pg;
    char *m = mmap(NULL, *maplen, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ck_assert_ptr_ne(m, MAP_FAILED);
    ck_assert_int_eq(mprotect(m + pg, pg, PROT_NONE), 0);
    *map = m;
    return m + pg - len;
}

START_TEST(test_guard_page)
{
    size_t len = strlen(browser_req);
    for (size_t p = 0; p <= len; p++) {
        void *map;
        size_t maplen;
        char *b = guarded(p, &map, &maplen);
        memcpy(b, browser_req, p);
        struct ws_request req;
        ssize_t r = ws_handshake_parse(b, p, MAX_HEADER, NULL, &req);
        ck_assert_int_eq(r, p == len ? (ssize_t)len : -2);
        if (p == len) {
            ck_assert_int_eq(req.kind, WS_REQ_UPGRADE);
            ck_assert_str_eq(req.topics[0], "mail.user.42.>");
        }
        ck_assert_int_eq(munmap(map, maplen), 0);
    }
    for (size_t i = 0; i < NSTATUS; i++) {
        void *map;
        size_t maplen;
        size_t n = strlen(statuses[i].req);
        char *b = guarded(n, &map, &maplen);
        memcpy(b, statuses[i].req, n);
        struct ws_request req;
        const struct ws_hs_policy policy = {statuses[i].origins, "/echo"};
        ssize_t r = ws_handshake_parse(b, n, MAX_HEADER, &policy, &req);
        ck_assert_int_eq(r, statuses[i].ret > 0 ? (ssize_t)n : -1);
        ck_assert_int_eq(munmap(map, maplen), 0);
    }
}

END_TEST

static Suite *ws_handshake_suite(void)
{
    Suite *s = suite_create("ws_handshake");
    TCase *tc = tcase_create("accept");
    tcase_add_test(tc, test_accept_rfc_sample);
    tcase_add_test(tc, test_response_exact);
    suite_add_tcase(s, tc);
    tc = tcase_create("upgrade");
    tcase_add_test(tc, test_curl_upgrade);
    tcase_add_test(tc, test_browser_upgrade);
    tcase_add_test(tc, test_case_insensitive_headers);
    tcase_add_test(tc, test_subprotocol_not_offered);
    tcase_add_test(tc, test_bytes_after_head_untouched);
    tcase_add_test(tc, test_body_not_read);
    tcase_add_loop_test(tc, test_every_prefix_incomplete, 0, 2);
    suite_add_tcase(s, tc);
    tc = tcase_create("status");
    tcase_add_loop_test(tc, test_status, 0, NSTATUS);
    tcase_add_test(tc, test_max_header);
    tcase_add_test(tc, test_max_header_endless_line);
    suite_add_tcase(s, tc);
    tc = tcase_create("query");
    tcase_add_test(tc, test_query_decoding);
    tcase_add_test(tc, test_query_format_raw);
    tcase_add_test(tc, test_topics_limit_count);
    tcase_add_test(tc, test_topics_limit_bytes);
    suite_add_tcase(s, tc);
    tc = tcase_create("echo");
    tcase_add_loop_test(tc, test_echo_path, 0, NECHOES);
    tcase_add_test(tc, test_null_policy);
    suite_add_tcase(s, tc);
    tc = tcase_create("guard");
    tcase_add_test(tc, test_guard_page);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return check_run_suite(ws_handshake_suite());
}

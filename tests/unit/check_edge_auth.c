/*
 * check_edge_auth.c - signed subscription tokens at the edge
 * (docs/protocol.md §3.10): edge/auth.c (the auth directives resolved at
 * start-up, the compact grant), the token's way out of the upgrade request
 * (edge/ws_handshake.c), and client_auth.c over a real worker and a
 * socketpair, as check_edge_client.c drives one: tokens at the upgrade (401
 * and its WWW-Authenticate), the auth op, the forbidden gate on every
 * subscription, refresh, expiry and the authentication deadline (4001),
 * and that a grant is all an authenticated connection adds.
 *
 * Good tokens are minted with jwt_sign; bad ones are built here with
 * OpenSSL's HMAC so the header and claims can be anything.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "common/frame.h"
#include "common/jwt.h"
#include "common/trie.h"
#include "common/ws/ws_frame.h"
#include "edge/auth.h"
#include "edge/client.h"
#include "edge/edge_conf.h"
#include "edge/pool.h"
#include "edge/worker.h"
#include "edge/ws_handshake.h"
#include "tests/support/check_main.h"
#include "tests/support/edge_peer.h"

#define SECRET "an edge test secret of 32+ bytes!"

static struct edge_conf conf; /* of the conf and grant cases; the worker's is ep.conf */
static struct edge_peer ep;

/* ---------- tokens ---------- */

static char *b64(const void *s, size_t n)
{
    char *out = malloc(4 * (n / 3 + 1) + 1);
    int len = EVP_EncodeBlock((unsigned char *)out, s, (int)n);

    while (len > 0 && out[len - 1] == '=')
        len--;
    out[len] = '\0';
    for (int i = 0; i < len; i++)
        out[i] = out[i] == '+' ? '-' : out[i] == '/' ? '_' : out[i];
    return out;
}

/* header.payload signed with HMAC-SHA256 under key (whatever the header says). */
static char *mint_raw(const char *header, const char *payload, const char *key)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    char *h = b64(header, strlen(header)), *p = b64(payload, strlen(payload)), *sig;
    char *tok = malloc(strlen(h) + strlen(p) + 64);

    sprintf(tok, "%s.%s", h, p);
    ck_assert_ptr_nonnull(
        HMAC(EVP_sha256(), key, (int)strlen(key), (unsigned char *)tok, strlen(tok), md, &mdlen));
    sig = b64(md, mdlen);
    strcat(tok, ".");
    strcat(tok, sig);
    free(h);
    free(p);
    free(sig);
    return tok;
}

/* A good token: sub, exp = now + ttl, one or two patterns. */
static char *mint(const char *sub, int64_t ttl, const char *t1, const char *t2)
{
    const char *topics[2] = {t1, t2};
    int64_t now = (int64_t)time(NULL);
    char *tok = jwt_sign((const uint8_t *)SECRET, strlen(SECRET), sub, now, 0, now + ttl, topics,
                         t2 ? 2 : 1);

    ck_assert_ptr_nonnull(tok);
    return tok;
}

/* ---------- auth_conf_resolve ---------- */

static int resolve(int argc, char **argv, char *err, unsigned *warn)
{
    char e[256];

    memset(&conf, 0, sizeof(conf));
    ck_assert_int_eq(conf_load(edge_conf_table, &conf, argc, argv, e, sizeof(e)), 0);
    return auth_conf_resolve(&conf, err, 256, warn);
}

static char *write_file(const char *content, size_t len)
{
    static char path[64];
    int fd;

    strcpy(path, "/tmp/herald-auth-XXXXXX");
    fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, content, len), (ssize_t)len);
    close(fd);
    return path;
}

START_TEST(test_conf_off_warns)
{
    char err[256];
    unsigned warn;
    char *argv[] = {"--auth-required", "no"};

    ck_assert_int_eq(resolve(0, NULL, err, &warn), 0);
    ck_assert(!conf.auth_on && !conf.auth_enforced);
    ck_assert_uint_eq(warn, AUTH_WARN_OPEN);
    conf_free(edge_conf_table, &conf);
    ck_assert_int_eq(resolve(2, argv, err, &warn), 0);
    ck_assert(!conf.auth_on && !conf.auth_enforced);
    ck_assert_uint_eq(warn, AUTH_WARN_OPEN);
    conf_free(edge_conf_table, &conf);
}

END_TEST

START_TEST(test_conf_secret_enforces)
{
    char err[256];
    unsigned warn;
    char *argv[] = {"--auth-secret", SECRET};
    char *optional[] = {"--auth-secret", SECRET, "--auth-required", "no"};

    ck_assert_int_eq(resolve(2, argv, err, &warn), 0);
    ck_assert(conf.auth_on && conf.auth_enforced);
    ck_assert_uint_eq(warn, 0);
    ck_assert_uint_eq(conf.auth_key_len, strlen(SECRET));
    conf_free(edge_conf_table, &conf);
    ck_assert_int_eq(resolve(4, optional, err, &warn), 0);
    ck_assert(conf.auth_on && !conf.auth_enforced);
    conf_free(edge_conf_table, &conf);
}

END_TEST

START_TEST(test_conf_short_secret_warns)
{
    char err[256];
    unsigned warn;
    char *argv[] = {"--auth-secret", "short"};

    ck_assert_int_eq(resolve(2, argv, err, &warn), 0);
    ck_assert(conf.auth_on);
    ck_assert_uint_eq(warn, AUTH_WARN_SHORT_SECRET);
    conf_free(edge_conf_table, &conf);
}

END_TEST

static const struct {
    const char *args[4];
    const char *file; /* content of auth-secret-file when not NULL */
    size_t file_len;
    const char *err; /* substring of the message */
} bad_confs[] = {
    {{"--auth-required", "yes"}, NULL, 0, "needs auth-secret"},
    {{"--auth-secret", ""}, NULL, 0, "auth-secret: empty"},
    {{"--auth-secret", SECRET}, "x", 1, "both set"},
    {{NULL}, "", 0, "is empty"},
    {{NULL}, "\n", 1, "is empty"},
    {{NULL}, "ab\0cd", 5, "NUL"},
};

START_TEST(test_conf_errors)
{
    char err[256] = "", *argv[8];
    unsigned warn;
    int argc = 0;

    for (int i = 0; i < 4 && bad_confs[_i].args[i]; i++)
        argv[argc++] = (char *)bad_confs[_i].args[i];
    if (bad_confs[_i].file) {
        argv[argc++] = "--auth-secret-file";
        argv[argc++] = write_file(bad_confs[_i].file, bad_confs[_i].file_len);
    }
    ck_assert_int_eq(resolve(argc, argv, err, &warn), -1);
    ck_assert_msg(strstr(err, bad_confs[_i].err) != NULL, "got: %s", err);
    if (bad_confs[_i].file)
        unlink(argv[argc - 1]);
    conf_free(edge_conf_table, &conf);
}

END_TEST

START_TEST(test_conf_file_newline_stripped)
{
    static const char *contents[] = {SECRET "\n", SECRET};
    char err[256], *argv[2] = {"--auth-secret-file", NULL};
    unsigned warn;

    for (size_t i = 0; i < 2; i++) {
        argv[1] = write_file(contents[i], strlen(contents[i]));
        ck_assert_int_eq(resolve(2, argv, err, &warn), 0);
        unlink(argv[1]);
        ck_assert(conf.auth_on && conf.auth_enforced);
        ck_assert_str_eq(conf.auth_secret, SECRET);
        ck_assert_uint_eq(conf.auth_key_len, strlen(SECRET));
        conf_free(edge_conf_table, &conf);
    }
    /* Only one newline is the editor's: a second one, or a \r, is part of the key (as for
     * `herald token --secret-file`, whose tokens must verify here). */
    argv[1] = write_file(SECRET "\n\n", strlen(SECRET) + 2);
    ck_assert_int_eq(resolve(2, argv, err, &warn), 0);
    unlink(argv[1]);
    ck_assert_uint_eq(conf.auth_key_len, strlen(SECRET) + 1);
    conf_free(edge_conf_table, &conf);
    argv[1] = write_file(SECRET "\r\n", strlen(SECRET) + 2);
    ck_assert_int_eq(resolve(2, argv, err, &warn), 0);
    unlink(argv[1]);
    ck_assert_str_eq(conf.auth_secret, SECRET "\r");
    conf_free(edge_conf_table, &conf);
}

END_TEST

START_TEST(test_conf_file_missing_or_huge)
{
    static char big[AUTH_SECRET_MAX + 1];
    char err[256], *argv[2] = {"--auth-secret-file", "/nonexistent/herald.key"};
    unsigned warn;

    ck_assert_int_eq(resolve(2, argv, err, &warn), -1);
    ck_assert_ptr_nonnull(strstr(err, "cannot open"));
    conf_free(edge_conf_table, &conf);
    memset(big, 'k', sizeof(big));
    argv[1] = write_file(big, sizeof(big));
    ck_assert_int_eq(resolve(2, argv, err, &warn), -1);
    ck_assert_ptr_nonnull(strstr(err, "over"));
    conf_free(edge_conf_table, &conf);
    argv[1] = write_file(big, sizeof(big) - 1); /* exactly AUTH_SECRET_MAX: fine */
    ck_assert_int_eq(resolve(2, argv, err, &warn), 0);
    unlink(argv[1]);
    ck_assert_uint_eq(conf.auth_key_len, AUTH_SECRET_MAX);
    conf_free(edge_conf_table, &conf);
}

END_TEST

/* ---------- the grant ---------- */

static struct auth_grant *grant_for(const char *tok, enum jwt_status *st)
{
    static const struct topic_limits lim = {.max_len = 256, .max_tokens = 16};
    const char *err = NULL;
    struct auth_grant *g;

    memset(&conf, 0, sizeof(conf));
    conf.auth_secret = SECRET;
    conf.auth_key_len = strlen(SECRET);
    g = auth_verify(&conf, &lim, tok, strlen(tok), (int64_t)time(NULL), st, &err);
    ck_assert(g != NULL || err != NULL);
    return g;
}

START_TEST(test_grant_compact)
{
    char *tok = mint("42", 60, "mail.user.{sub}.>", NULL);
    enum jwt_status st;
    struct auth_grant *g = grant_for(tok, &st);

    ck_assert_int_eq(st, JWT_OK);
    /* 4 (exp) + 1 (count) + "mail.user.42.>" + NUL: a 32-byte malloc chunk. */
    ck_assert_uint_eq(auth_grant_size(g), 5 + strlen("mail.user.42.>") + 1);
    ck_assert_int_ge(auth_grant_exp(g), (int64_t)time(NULL) + 59);
    auth_grant_free(g);
    free(tok);
}

END_TEST

START_TEST(test_grant_exp_clamped)
{
    struct jwt_claims c;
    struct auth_grant *g;

    memset(&c, 0, sizeof(c));
    c.exp = (int64_t)1 << 40;
    c.ntopics = 1;
    c.topics[0] = "a";
    c.topic_lens[0] = 1;
    g = auth_grant_new(&c);
    ck_assert_int_eq(auth_grant_exp(g), UINT32_MAX);
    ck_assert(auth_grant_covers(g, "a", 1));
    ck_assert(!auth_grant_covers(g, "b", 1));
    auth_grant_free(g);
}

END_TEST

static const struct {
    const char *pattern;
    bool covered;
} widening[] = {
    {"mail.user.42.>", true},
    {"mail.user.42.inbox", true},
    {"mail.user.42.*", true},
    {"mail.user.42.*.x", true},
    {"news.sport", true},
    {"mail.user.*.inbox", false},
    {"mail.user.43.inbox", false},
    {"mail.user.42", false},
    {"mail.>", false},
    {">", false},
    {"*.user.42.inbox", false},
    {"news.*", false},
};

/* Subject substitution and exact coverage: no wildcard widens a grant. */
START_TEST(test_grant_widening)
{
    char *tok = mint("42", 60, "mail.user.{sub}.>", "news.sport");
    enum jwt_status st;
    struct auth_grant *g = grant_for(tok, &st);
    const char *p = widening[_i].pattern;

    ck_assert_int_eq(st, JWT_OK);
    ck_assert_msg(auth_grant_covers(g, p, strlen(p)) == widening[_i].covered, "%s", p);
    auth_grant_free(g);
    free(tok);
}

END_TEST

/* ---------- the token in the upgrade request ---------- */

static ssize_t parse_req(const char *target, const char *extra, struct ws_request *req)
{
    char buf[8192];
    int n = snprintf(buf, sizeof(buf),
                     "GET %s HTTP/1.1\r\nHost: e\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: " EDGE_PEER_KEY "\r\nSec-WebSocket-Version: 13\r\n%s\r\n",
                     target, extra);

    return ws_handshake_parse(buf, (size_t)n, sizeof(buf), NULL, req);
}

START_TEST(test_handshake_token_sources)
{
    static struct ws_request req;

    ck_assert_int_gt(parse_req("/ws?token=a.b%2Ec&topic=x", "", &req), 0);
    ck_assert_int_eq(req.kind, WS_REQ_UPGRADE);
    ck_assert(req.has_token && !req.token_too_long);
    ck_assert_str_eq(req.token, "a.b.c");
    ck_assert_uint_eq(req.token_len, 5);
    ck_assert_int_gt(parse_req("/ws", "Authorization: Bearer  a.b.c \r\n", &req), 0);
    ck_assert_int_eq(req.kind, WS_REQ_UPGRADE);
    ck_assert_str_eq(req.token, "a.b.c");
    ck_assert_int_gt(parse_req("/ws", "authorization: bEARER x.y.z\r\n", &req), 0);
    ck_assert_str_eq(req.token, "x.y.z");
    /* Another scheme is not a token. */
    ck_assert_int_gt(parse_req("/ws", "Authorization: Basic dXNlcjpwYXNz\r\n", &req), 0);
    ck_assert_int_eq(req.kind, WS_REQ_UPGRADE);
    ck_assert(!req.has_token);
    ck_assert_int_gt(parse_req("/ws", "Authorization: Bearertoken\r\n", &req), 0);
    ck_assert(!req.has_token);
    ck_assert_int_gt(parse_req("/ws", "", &req), 0);
    ck_assert(!req.has_token);
}

END_TEST

START_TEST(test_handshake_token_errors)
{
    static struct ws_request req;
    static char target[JWT_MAX_LEN + 64];

    ck_assert_int_gt(parse_req("/ws?token=a&token=b", "", &req), 0);
    ck_assert_int_eq(req.status, 400);
    ck_assert_str_eq(req.err, "more than one token");
    ck_assert_int_gt(parse_req("/ws?token=a", "Authorization: Bearer b\r\n", &req), 0);
    ck_assert_int_eq(req.status, 400);
    ck_assert_int_gt(
        parse_req("/ws", "Authorization: Bearer a\r\nAuthorization: Bearer b\r\n", &req), 0);
    ck_assert_int_eq(req.status, 400);
    ck_assert_int_gt(parse_req("/ws?token=a%zz", "", &req), 0);
    ck_assert_int_eq(req.status, 400);
    ck_assert_str_eq(req.err, "bad query string");
    /* JWT_MAX_LEN bytes fit; one more is kept only as "too long". */
    strcpy(target, "/ws?token=");
    memset(target + strlen(target), 'a', JWT_MAX_LEN);
    ck_assert_int_gt(parse_req(target, "", &req), 0);
    ck_assert(req.has_token && !req.token_too_long);
    ck_assert_uint_eq(req.token_len, JWT_MAX_LEN);
    strcat(target, "a");
    ck_assert_int_gt(parse_req(target, "", &req), 0);
    ck_assert_int_eq(req.kind, WS_REQ_UPGRADE);
    ck_assert(req.has_token && req.token_too_long);
}

END_TEST

/* ---------- a worker with auth on, one connection over a socketpair ---------- */

static void setup_with(int argc, char **argv)
{
    char err[256];
    unsigned warn;

    edge_peer_load(&ep, argc, argv);
    ck_assert_int_eq(auth_conf_resolve(&ep.conf, err, sizeof(err), &warn), 0);
    edge_peer_start(&ep);
    edge_peer_connect(&ep);
}

static void setup(void)
{
    char *argv[] = {"--port", "0", "--auth-secret", SECRET};

    setup_with(4, argv);
}

static void setup_short(void)
{
    char *argv[] = {"--port", "0", "--auth-secret", SECRET, "--handshake-timeout", "1s"};

    setup_with(6, argv);
}

static void setup_optional(void)
{
    char *argv[] = {"--port", "0", "--auth-secret", SECRET, "--auth-required", "no"};

    setup_with(6, argv);
}

static void setup_off(void)
{
    char *argv[] = {"--port", "0"};

    setup_with(2, argv);
}

static void teardown(void)
{
    edge_peer_close(&ep);
}

/* The next text frame starts with prefix. */
static void expect_text_prefix(const char *prefix)
{
    char buf[4096];

    ck_assert_int_eq(edge_peer_read_frame(&ep, buf, sizeof(buf), NULL), WS_OP_TEXT);
    ck_assert_msg(strncmp(buf, prefix, strlen(prefix)) == 0, "got: %s", buf);
}

/* The upgrade is refused with 401; returns the response in resp. */
static void upgrade_401(const char *target, const char *extra, char *resp, size_t cap)
{
    edge_peer_send_upgrade(&ep, target, extra);
    edge_peer_read_http(&ep, resp, cap, true);
    ck_assert_msg(strncmp(resp, "HTTP/1.1 401 ", 13) == 0, "got: %s", resp);
    ck_assert_ptr_nonnull(strstr(resp, "Connection: close\r\n"));
    ck_assert_uint_eq(ep.w->h.stats.handshakes_ok, 0);
    ck_assert_uint_eq(ep.w->h.stats.hs_fail[HS_FAIL_401], 1);
}

static void sub(const char *pattern, int id)
{
    char msg[512];

    snprintf(msg, sizeof(msg), "{\"op\":\"sub\",\"topic\":\"%s\",\"id\":%d}", pattern, id);
    edge_peer_send_text(&ep, msg);
}

static void auth(const char *tok, int id)
{
    static char msg[JWT_MAX_LEN + 128];

    snprintf(msg, sizeof(msg), "{\"op\":\"auth\",\"token\":\"%s\",\"id\":%d}", tok, id);
    edge_peer_send_text(&ep, msg);
}

/* A query string ?token=tok&topic=... */
static char *target_with(const char *tok, const char *topics)
{
    static char t[JWT_MAX_LEN + 256];

    snprintf(t, sizeof(t), "/ws?token=%s%s", tok, topics);
    return t;
}

START_TEST(test_upgrade_query_token)
{
    char *tok = mint("42", 60, "mail.user.{sub}.>", NULL);

    edge_peer_handshake(&ep, target_with(tok, "&topic=mail.user.42.inbox"), "");
    ck_assert_ptr_nonnull(client_grant(ep.cl));
    ck_assert_uint_eq(ep.w->h.stats.auth_ok, 1);
    ck_assert_uint_eq(trie_subscription_count(ep.w->h.trie), 1);
    sub("mail.user.42.>", 1);
    edge_peer_expect_text(&ep, "{\"op\":\"ok\",\"id\":1}");
    sub("mail.user.43.inbox", 2);
    edge_peer_expect_text(&ep, "{\"op\":\"error\",\"id\":2,\"code\":\"forbidden\",\"message\":"
                               "\"the token does not allow this pattern\"}");
    ck_assert_uint_eq(ep.w->h.stats.auth_forbidden, 1);
    /* The grant goes with the connection. */
    edge_peer_drop(&ep);
    ck_assert_uint_eq(ep.w->h.nclients, 0);
    ck_assert_uint_eq(ep.w->h.stats.grants, 0);
    free(tok);
}

END_TEST

START_TEST(test_upgrade_bearer_header)
{
    char *tok = mint("7", 60, "a.{sub}", NULL), extra[JWT_MAX_LEN + 64];

    snprintf(extra, sizeof(extra), "Authorization: Bearer %s\r\n", tok);
    edge_peer_handshake(&ep, "/ws?topic=a.7", extra);
    ck_assert_uint_eq(trie_subscription_count(ep.w->h.trie), 1);
    free(tok);
}

END_TEST

/* A query topic the token does not cover: an error after the 101, like any refused query topic. */
START_TEST(test_upgrade_query_topic_forbidden)
{
    char *tok = mint("42", 60, "mail.user.{sub}.>", NULL);

    edge_peer_handshake(&ep, target_with(tok, "&topic=mail.user.*.inbox&topic=mail.user.42.x"), "");
    edge_peer_expect_text(&ep, "{\"op\":\"error\",\"code\":\"forbidden\",\"message\":"
                               "\"the token does not allow this pattern\"}");
    ck_assert_uint_eq(trie_subscription_count(ep.w->h.trie), 1);
    free(tok);
}

END_TEST

#define HS256_HEAD "{\"alg\":\"HS256\",\"typ\":\"JWT\"}"
#define FUTURE     "4000000000"

static const struct {
    const char *name;
    const char *header;
    const char *payload;
    const char *key;
} bad_tokens[] = {
    {"expired", HS256_HEAD, "{\"sub\":\"42\",\"exp\":1000,\"topics\":[\"a\"]}", SECRET},
    {"not yet valid", HS256_HEAD,
     "{\"sub\":\"42\",\"nbf\":" FUTURE ",\"exp\":" FUTURE "1,\"topics\":[\"a\"]}", SECRET},
    {"bad signature", HS256_HEAD, "{\"sub\":\"42\",\"exp\":" FUTURE ",\"topics\":[\"a\"]}",
     "another secret of thirty-two bytes"},
    {"alg none", "{\"alg\":\"none\"}", "{\"sub\":\"42\",\"exp\":" FUTURE ",\"topics\":[\"a\"]}",
     SECRET},
    {"alg HS384", "{\"alg\":\"HS384\"}", "{\"sub\":\"42\",\"exp\":" FUTURE ",\"topics\":[\"a\"]}",
     SECRET},
    {"alg RS256", "{\"alg\":\"RS256\"}", "{\"sub\":\"42\",\"exp\":" FUTURE ",\"topics\":[\"a\"]}",
     SECRET},
    {"no sub", HS256_HEAD, "{\"exp\":" FUTURE ",\"topics\":[\"a\"]}", SECRET},
    {"no exp", HS256_HEAD, "{\"sub\":\"42\",\"topics\":[\"a\"]}", SECRET},
    {"no topics", HS256_HEAD, "{\"sub\":\"42\",\"exp\":" FUTURE "}", SECRET},
    {"wildcard sub", HS256_HEAD, "{\"sub\":\"*\",\"exp\":" FUTURE ",\"topics\":[\"a.{sub}\"]}",
     SECRET},
};

START_TEST(test_upgrade_bad_token_401)
{
    char *tok = mint_raw(bad_tokens[_i].header, bad_tokens[_i].payload, bad_tokens[_i].key);
    char resp[4096];

    upgrade_401(target_with(tok, ""), "", resp, sizeof(resp));
    ck_assert_msg(strstr(resp, "WWW-Authenticate: Bearer error=\"invalid_token\"\r\n") != NULL,
                  "%s: %s", bad_tokens[_i].name, resp);
    ck_assert_uint_eq(ep.w->h.stats.auth_failed, 1);
    free(tok);
}

END_TEST

/* The same tokens in an auth op: refused, and the connection stays as it was. */
START_TEST(test_auth_op_bad_token)
{
    char *tok = mint_raw(bad_tokens[_i].header, bad_tokens[_i].payload, bad_tokens[_i].key);

    edge_peer_handshake(&ep, "/ws", "");
    auth(tok, 3);
    expect_text_prefix(_i == 0 ? "{\"op\":\"error\",\"id\":3,\"code\":\"token_expired\""
                               : "{\"op\":\"error\",\"id\":3,\"code\":\"unauthorized\"");
    ck_assert_ptr_null(client_grant(ep.cl));
    ck_assert_int_eq(ep.cl->state, CLIENT_OPEN);
    free(tok);
}

END_TEST

START_TEST(test_upgrade_topic_without_token_401)
{
    char resp[4096];

    upgrade_401("/ws?topic=a", "", resp, sizeof(resp));
    ck_assert_ptr_nonnull(strstr(resp, "WWW-Authenticate: Bearer\r\n"));
    ck_assert_ptr_null(strstr(resp, "invalid_token"));
}

END_TEST

START_TEST(test_upgrade_token_too_long_401)
{
    static char t[JWT_MAX_LEN + 32];
    char resp[4096];

    strcpy(t, "/ws?token=");
    memset(t + strlen(t), 'a', JWT_MAX_LEN + 1);
    upgrade_401(t, "", resp, sizeof(resp));
    ck_assert_ptr_nonnull(strstr(resp, "invalid_token"));
}

END_TEST

/* No token, no topic: only auth and ping until an auth op succeeds. */
START_TEST(test_unauthenticated_then_auth_op)
{
    char *tok = mint("42", 60, "mail.user.{sub}.>", NULL), want[128];

    edge_peer_handshake(&ep, "/ws", "");
    ck_assert_ptr_null(client_grant(ep.cl));
    sub("mail.user.42.inbox", 1);
    edge_peer_expect_text(&ep, "{\"op\":\"error\",\"id\":1,\"code\":\"unauthorized\",\"message\":"
                               "\"send an auth op first\"}");
    edge_peer_send_text(&ep, "{\"op\":\"unsub\",\"topic\":\"a\",\"id\":2}");
    expect_text_prefix("{\"op\":\"error\",\"id\":2,\"code\":\"unauthorized\"");
    edge_peer_send_text(&ep, "{\"op\":\"ping\",\"id\":3}");
    edge_peer_expect_text(&ep, "{\"op\":\"pong\",\"id\":3}");
    auth(tok, 4);
    snprintf(want, sizeof(want), "{\"op\":\"ok\",\"id\":4,\"exp\":%lld}",
             (long long)auth_grant_exp(client_grant(ep.cl)));
    edge_peer_expect_text(&ep, want);
    sub("mail.user.42.inbox", 5);
    edge_peer_expect_text(&ep, "{\"op\":\"ok\",\"id\":5}");
    edge_peer_send_text(&ep, "{\"op\":\"auth\",\"id\":6}");
    edge_peer_expect_text(&ep, "{\"op\":\"error\",\"id\":6,\"code\":\"bad_request\",\"message\":"
                               "\"missing token\"}");
    free(tok);
}

END_TEST

/* A refresh replaces the grant: what it no longer covers is dropped and reported. */
START_TEST(test_refresh_drops_uncovered)
{
    char *first = mint("42", 60, "mail.user.{sub}.>", "news.>");
    char *second = mint("42", 120, "mail.user.{sub}.inbox", NULL);

    edge_peer_handshake(
        &ep, target_with(first, "&topic=mail.user.42.inbox&topic=mail.user.42.>&topic=news.a"), "");
    ck_assert_uint_eq(trie_subscription_count(ep.w->h.trie), 3);
    auth(second, 9);
    expect_text_prefix("{\"op\":\"ok\",\"id\":9,\"exp\":");
    /* Two reports, in the subscription set's order. */
    for (int i = 0; i < 2; i++) {
        char buf[512];

        ck_assert_int_eq(edge_peer_read_frame(&ep, buf, sizeof(buf), NULL), WS_OP_TEXT);
        ck_assert_msg(strcmp(buf, "{\"op\":\"error\",\"code\":\"forbidden\",\"topic\":"
                                  "\"mail.user.42.>\",\"message\":\"the new token does not allow "
                                  "this pattern\"}") == 0 ||
                          strcmp(buf, "{\"op\":\"error\",\"code\":\"forbidden\",\"topic\":"
                                      "\"news.a\",\"message\":\"the new token does not allow this "
                                      "pattern\"}") == 0,
                      "got: %s", buf);
    }
    ck_assert_uint_eq(trie_subscription_count(ep.w->h.trie), 1);
    ck_assert_ptr_nonnull(trie_find(ep.w->h.trie, "mail.user.42.inbox", 18));
    ck_assert_ptr_null(trie_find(ep.w->h.trie, "news.a", 6)); /* pruned: UNSUB went out */
    free(first);
    free(second);
}

END_TEST

/* Unauthenticated past handshake-timeout: close 4001. */
START_TEST(test_auth_deadline_4001)
{
    edge_peer_handshake(&ep, "/ws", "");
    edge_peer_run(&ep, 2600);
    edge_peer_expect_close(&ep, CLIENT_CLOSE_AUTH, "authentication required");
    ck_assert_uint_eq(ep.w->h.stats.closes[CLOSE_R_4001], 1);
}

END_TEST

/* The token expires while connected: token_expired, then close 4001. */
START_TEST(test_expiry_while_connected)
{
    char *tok = mint("42", 2, "a.>", NULL);

    edge_peer_handshake(&ep, target_with(tok, "&topic=a.b"), "");
    edge_peer_run(&ep, 4300);
    edge_peer_expect_text(
        &ep, "{\"op\":\"error\",\"code\":\"token_expired\",\"message\":\"the token expired\"}");
    edge_peer_expect_close(&ep, CLIENT_CLOSE_AUTH, "token expired");
    ck_assert_uint_eq(trie_subscription_count(ep.w->h.trie), 0);
    ck_assert_uint_eq(ep.w->h.stats.closes[CLOSE_R_4001], 1);
    free(tok);
}

END_TEST

/* A fresh auth op before exp keeps the connection past the first token's exp. */
START_TEST(test_refresh_before_expiry)
{
    char *first = mint("42", 3, "a.>", NULL), *second = mint("42", 60, "a.>", NULL);

    edge_peer_handshake(&ep, target_with(first, "&topic=a.b"), "");
    edge_peer_run(&ep, 1000);
    auth(second, 1);
    expect_text_prefix("{\"op\":\"ok\",\"id\":1,\"exp\":");
    edge_peer_run(&ep, 3500); /* past the first token's exp (at most 3 s after it was minted) */
    ck_assert_int_eq(ep.cl->state, CLIENT_OPEN);
    ck_assert_uint_eq(ep.w->h.stats.closes[CLOSE_R_4001], 0);
    worker_deliver(ep.w, "a.b", 3, 1, "1", 1);
    worker_flush_dirty(ep.w);
    edge_peer_expect_text(&ep, "{\"op\":\"msg\",\"topic\":\"a.b\",\"seq\":1,\"data\":1}");
    free(first);
    free(second);
}

END_TEST

/* An idle authenticated connection holds its struct and its grant, nothing else. */
START_TEST(test_authenticated_idle_holds_grant_only)
{
    char *tok = mint("42", 60, "mail.user.{sub}.>", NULL);
    struct pool_stats ps;

    edge_peer_handshake(&ep, target_with(tok, "&topic=mail.user.42.>"), "");
    ck_assert_ptr_null(ep.cl->in);
    ck_assert_ptr_null(ep.cl->out);
    ck_assert_ptr_null(ep.cl->pending);
    pool_get_stats(ep.w->h.pool, &ps);
    ck_assert_uint_eq(ps.chunks_in_use, 0);
    ck_assert_uint_eq(ps.evbuffers_in_use, 0);
    ck_assert_uint_eq(auth_grant_size(client_grant(ep.cl)), 20);
    ck_assert_uint_eq(ep.w->h.stats.grants, 1);
    free(tok);
}

END_TEST

/* auth-required no: no token, anything goes; a token still binds its holder. */
START_TEST(test_optional_auth)
{
    char *tok = mint("42", 60, "a.{sub}", NULL);

    edge_peer_handshake(&ep, "/ws?topic=anything.>", "");
    sub("more.>", 1);
    edge_peer_expect_text(&ep, "{\"op\":\"ok\",\"id\":1}");
    auth(tok, 2);
    expect_text_prefix("{\"op\":\"ok\",\"id\":2,\"exp\":");
    expect_text_prefix("{\"op\":\"error\",\"code\":\"forbidden\",\"topic\":");
    expect_text_prefix("{\"op\":\"error\",\"code\":\"forbidden\",\"topic\":");
    sub("a.42", 3);
    edge_peer_expect_text(&ep, "{\"op\":\"ok\",\"id\":3}");
    sub("b", 4);
    expect_text_prefix("{\"op\":\"error\",\"id\":4,\"code\":\"forbidden\"");
    edge_peer_run(&ep, 2300); /* no deadline without enforcement */
    ck_assert_int_eq(ep.cl->state, CLIENT_OPEN);
    free(tok);
}

END_TEST

/* Auth off: a token is not looked at, and the auth op says tokens are not used. */
START_TEST(test_auth_off)
{
    edge_peer_handshake(&ep, "/ws?token=whatever&topic=x.>", "");
    ck_assert_ptr_null(ep.w->h.grants);
    ck_assert_uint_eq(trie_subscription_count(ep.w->h.trie), 1);
    edge_peer_send_text(&ep, "{\"op\":\"auth\",\"token\":\"a.b.c\",\"id\":1}");
    edge_peer_expect_text(&ep, "{\"op\":\"error\",\"id\":1,\"code\":\"bad_request\",\"message\":"
                               "\"this server does not use tokens\"}");
}

END_TEST

static Suite *edge_auth_suite(void)
{
    Suite *s = suite_create("edge_auth");
    TCase *t;

    t = tcase_create("conf");
    tcase_add_test(t, test_conf_off_warns);
    tcase_add_test(t, test_conf_secret_enforces);
    tcase_add_test(t, test_conf_short_secret_warns);
    tcase_add_loop_test(t, test_conf_errors, 0, sizeof(bad_confs) / sizeof(bad_confs[0]));
    tcase_add_test(t, test_conf_file_newline_stripped);
    tcase_add_test(t, test_conf_file_missing_or_huge);
    suite_add_tcase(s, t);

    t = tcase_create("grant");
    tcase_add_test(t, test_grant_compact);
    tcase_add_test(t, test_grant_exp_clamped);
    tcase_add_loop_test(t, test_grant_widening, 0, sizeof(widening) / sizeof(widening[0]));
    suite_add_tcase(s, t);

    t = tcase_create("handshake");
    tcase_add_test(t, test_handshake_token_sources);
    tcase_add_test(t, test_handshake_token_errors);
    suite_add_tcase(s, t);

    t = tcase_create("connection");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_add_test(t, test_upgrade_query_token);
    tcase_add_test(t, test_upgrade_bearer_header);
    tcase_add_test(t, test_upgrade_query_topic_forbidden);
    tcase_add_loop_test(t, test_upgrade_bad_token_401, 0,
                        sizeof(bad_tokens) / sizeof(bad_tokens[0]));
    tcase_add_loop_test(t, test_auth_op_bad_token, 0, sizeof(bad_tokens) / sizeof(bad_tokens[0]));
    tcase_add_test(t, test_upgrade_topic_without_token_401);
    tcase_add_test(t, test_upgrade_token_too_long_401);
    tcase_add_test(t, test_unauthenticated_then_auth_op);
    tcase_add_test(t, test_refresh_drops_uncovered);
    tcase_add_test(t, test_expiry_while_connected);
    tcase_add_test(t, test_refresh_before_expiry);
    tcase_add_test(t, test_authenticated_idle_holds_grant_only);
    suite_add_tcase(s, t);

    t = tcase_create("deadline");
    tcase_add_checked_fixture(t, setup_short, teardown);
    tcase_add_test(t, test_auth_deadline_4001);
    suite_add_tcase(s, t);

    t = tcase_create("optional");
    tcase_add_checked_fixture(t, setup_optional, teardown);
    tcase_add_test(t, test_optional_auth);
    suite_add_tcase(s, t);

    t = tcase_create("off");
    tcase_add_checked_fixture(t, setup_off, teardown);
    tcase_add_test(t, test_auth_off);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    return check_run_suite(edge_auth_suite());
}

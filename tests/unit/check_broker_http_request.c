/*
 * The broker's incremental HTTP request parser (broker/http_request.c): a
 * table of requests - plain, keep-alive, chunked, pipelined, and the
 * refusals issue 10 asks for (two Content-Length headers, Content-Length
 * with Transfer-Encoding: 400; a body announced or sent over the limit:
 * 413 before it is read; head and URL limits: 431, 414; a head hook's own
 * status, e.g. 401, with the body never waited for) - each fed whole, at
 * every split point, and byte by byte, with the same outcome; input ending
 * at an unmapped page; and a second request on the same parser after
 * http_request_next. A chunked body's trailer fields are no
 * header - a trailer Content-Length is not counted beside the head's
 * Transfer-Encoding, a trailer Authorization neither replaces nor spoils
 * the head's; what libhttp-parser reads leniently is a 400 - a chunk size
 * byte 0x80-0xff, a CR without LF (chunk size line, head, trailer), chunk
 * data without CRLF, a control byte in a chunk extension; with the
 * pipelined input fuzz_http_request found it all with.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "broker/http_request.h"
#include "tests/support/check_main.h"

static const struct http_request_limits limits = {.max_head = 512, .max_body = 64};

/* Head hook of the table: "/deny" is refused with 401 before any body. */
static int hook(struct http_request *r, void *arg, const char **err)
{
    int *calls = arg;

    (*calls)++;
    if (r->url_len >= 5 && memcmp(r->url, "/deny", 5) == 0) {
        *err = "unauthorized";
        return 401;
    }
    return 0;
}

struct req_case {
    const char *name;
    const char *in;
    int status;       /* 0: complete */
    size_t consumed;  /* bytes of the first request; 0: all of in */
    const char *url;  /* when complete */
    const char *body; /* when complete */
    const char *auth; /* when complete: Authorization value, NULL: none */
    int hook_calls;   /* at the end */
    bool keep_alive;  /* when complete */
};

#define CRLF "\r\n"

static const struct req_case cases[] = {
    {"get", "GET /healthz HTTP/1.1" CRLF "Host: x" CRLF CRLF, 0, 0, "/healthz", "", NULL, 1, true},
    {"http/1.0 closes", "GET / HTTP/1.0" CRLF CRLF, 0, 0, "/", "", NULL, 1, false},
    {"connection close", "GET / HTTP/1.1" CRLF "Connection: close" CRLF CRLF, 0, 0, "/", "", NULL,
     1, false},
    {"post with body",
     "POST /v1/publish/a.b HTTP/1.1" CRLF "Content-Length: 5" CRLF
     "Authorization: Bearer s" CRLF CRLF "hello",
     0, 0, "/v1/publish/a.b", "hello", "Bearer s", 1, true},
    {"chunked",
     "POST /p HTTP/1.1" CRLF "Transfer-Encoding: chunked" CRLF CRLF "3" CRLF "abc" CRLF "2" CRLF
     "de" CRLF "0" CRLF CRLF,
     0, 0, "/p", "abcde", NULL, 1, true},
    {"header names are case-insensitive",
     "POST /p HTTP/1.1" CRLF "content-LENGTH: 2" CRLF "AUTHORIZATION: x" CRLF CRLF "ok", 0, 0, "/p",
     "ok", "x", 1, true},
    {"pipelined: the first request only", "GET /a HTTP/1.1" CRLF CRLF "GET /b HTTP/1.1" CRLF CRLF,
     0, 19, "/a", "", NULL, 1, true},
    {"two content-length",
     "POST /p HTTP/1.1" CRLF "Content-Length: 1" CRLF "Content-Length: 1" CRLF CRLF "x", 400, 0,
     NULL, NULL, NULL, 0, false},
    {"two different content-length",
     "POST /p HTTP/1.1" CRLF "Content-Length: 1" CRLF "Content-Length: 20" CRLF CRLF "x", 400, 0,
     NULL, NULL, NULL, 0, false},
    {"content-length and chunked",
     "POST /p HTTP/1.1" CRLF "Content-Length: 3" CRLF "Transfer-Encoding: chunked" CRLF CRLF
     "0" CRLF CRLF,
     400, 0, NULL, NULL, NULL, 0, false},
    {"announced body over the limit", "POST /p HTTP/1.1" CRLF "Content-Length: 1000000" CRLF CRLF,
     413, 0, NULL, NULL, NULL, 1, false},
    {"chunked body over the limit",
     "POST /p HTTP/1.1" CRLF "Transfer-Encoding: chunked" CRLF CRLF "41" CRLF
     "0123456789012345678901234567890123456789012345678901234567890123456789" CRLF,
     413, 0, NULL, NULL, NULL, 1, false},
    {"hook refuses before the body", "POST /deny HTTP/1.1" CRLF "Content-Length: 60" CRLF CRLF, 401,
     0, NULL, NULL, NULL, 1, false},
    {"head over the limit",
     "GET / HTTP/1.1" CRLF "X: "
     "0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890"
     "1234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901"
     "2345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012"
     "3456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123"
     "4567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234"
     "5678901234567890123456789012345678901234567890123456789012345678901234567890123456789012345"
     "6789012345678901234567890123456789012345678901234567890123456789" CRLF CRLF,
     431, 0, NULL, NULL, NULL, 0, false},
    {"garbage", "\x01\x02garbage garbage" CRLF CRLF, 400, 0, NULL, NULL, NULL, 0, false},
    {"bad chunk size", "POST /p HTTP/1.1" CRLF "Transfer-Encoding: chunked" CRLF CRLF "zz" CRLF,
     400, 0, NULL, NULL, NULL, 1, false},
    {"smuggling: a trailer content-length is no header",
     "POST /p HTTP/1.1" CRLF "Transfer-Encoding: chunked" CRLF CRLF "0" CRLF
     "Content-Length: 2" CRLF CRLF,
     0, 0, "/p", "", NULL, 1, true},
    {"smuggling: a trailer authorization is not kept",
     "POST /p HTTP/1.1" CRLF "Transfer-Encoding: chunked" CRLF CRLF "1" CRLF "x" CRLF "0" CRLF
     "Authorization: t" CRLF CRLF,
     0, 0, "/p", "x", NULL, 1, true},
    {"smuggling: a chunk size byte 0xff is no digit",
     "POST /p HTTP/1.1" CRLF "Transfer-Encoding: chunked" CRLF CRLF "\xff"
     "5" CRLF "hello" CRLF "0" CRLF CRLF,
     400, 0, NULL, NULL, NULL, 1, false},
    {"smuggling: a chunk size ending in 0x80",
     "POST /p HTTP/1.1" CRLF "Transfer-Encoding: chunked" CRLF CRLF "1\x80" CRLF "x" CRLF
     "0" CRLF CRLF,
     400, 0, NULL, NULL, NULL, 1, false},
    {"smuggling: a chunk size CR without LF",
     "POST /p HTTP/1.1" CRLF "Transfer-Encoding: chunked" CRLF CRLF "5\rXhello" CRLF "0" CRLF CRLF,
     400, 0, NULL, NULL, NULL, 1, false},
    {"smuggling: chunk data not followed by CRLF",
     "POST /p HTTP/1.1" CRLF "Transfer-Encoding: chunked" CRLF CRLF "5" CRLF "helloXY0" CRLF CRLF,
     400, 0, NULL, NULL, NULL, 1, false},
    {"smuggling: chunk data followed by LF alone",
     "POST /p HTTP/1.1" CRLF "Transfer-Encoding: chunked" CRLF CRLF "5" CRLF "hello\n0" CRLF CRLF,
     400, 0, NULL, NULL, NULL, 1, false},
    {"smuggling: a control byte in a chunk extension",
     "POST /p HTTP/1.1" CRLF "Transfer-Encoding: chunked" CRLF CRLF "5;a\n" CRLF "hello" CRLF
     "0" CRLF CRLF,
     400, 0, NULL, NULL, NULL, 1, false},
    {"smuggling: the trailer's end CR without LF",
     "POST /p HTTP/1.1" CRLF "Transfer-Encoding: chunked" CRLF CRLF "0" CRLF "X: y" CRLF "\rZ", 400,
     0, NULL, NULL, NULL, 1, false},
    {"smuggling: the head's end CR without LF", "GET / HTTP/1.1" CRLF "Host: x" CRLF "\rZ", 400, 0,
     NULL, NULL, NULL, 0, false},
    {"smuggling: an empty header value CR without LF",
     "GET / HTTP/1.1" CRLF "X:\rYHost: x" CRLF CRLF, 400, 0, NULL, NULL, NULL, 0, false},
    {"chunk extensions, upper-case hex, leading zeros",
     "POST /p HTTP/1.1" CRLF "Transfer-Encoding: chunked" CRLF CRLF "00A;name=\"v w\"" CRLF
     "0123456789" CRLF "1 ; x" CRLF "!" CRLF "0" CRLF "T: v" CRLF CRLF,
     0, 0, "/p", "0123456789!", NULL, 1, true},
    {"bare LF line ends", "GET /lf HTTP/1.1\nHost: x\n\n", 0, 0, "/lf", "", NULL, 1, true},
    {"smuggling: a trailer authorization leaves the head's",
     "POST /p HTTP/1.1" CRLF "Authorization: h" CRLF "Transfer-Encoding: chunked" CRLF CRLF "0" CRLF
     "Authorization: t" CRLF "Content-Length: 0" CRLF CRLF,
     0, 0, "/p", "", "h", 1, true},
};

#define NCASES (sizeof(cases) / sizeof(cases[0]))

struct outcome {
    int status;
    bool complete;
    size_t consumed;
    int hook_calls;
};

/* Feeds in[0..len) in pieces of at most step bytes (0: one piece), as a connection would. */
static struct outcome run(const char *in, size_t len, size_t step, struct http_request *r)
{
    struct outcome o = {0};
    size_t off = 0;

    http_request_init(r, &limits, hook, &o.hook_calls);
    while (off < len && !r->complete && !r->status) {
        size_t piece = step && len - off > step ? step : len - off;
        size_t n = http_request_feed(r, in + off, piece);

        ck_assert_uint_le(n, piece);
        off += n;
        if (n < piece)
            break;
    }
    o.status = r->status;
    o.complete = r->complete;
    o.consumed = off;
    return o;
}

static void check(const struct req_case *c, const struct outcome *o, const struct http_request *r)
{
    size_t len = strlen(c->in);

    ck_assert_msg(o->status == c->status, "%s: status %d, want %d", c->name, o->status, c->status);
    ck_assert_int_eq(o->hook_calls, c->hook_calls);
    if (c->status) {
        ck_assert(!o->complete);
        ck_assert_ptr_nonnull(r->err);
        return;
    }
    ck_assert_msg(o->complete, "%s: not complete", c->name);
    ck_assert_uint_eq(o->consumed, c->consumed ? c->consumed : len);
    /* The smuggling rules hold for every complete request. */
    ck_assert_uint_le(r->content_lengths, 1);
    ck_assert_msg(!(r->content_lengths && r->transfer_encoding),
                  "%s: Content-Length and Transfer-Encoding both counted", c->name);
    ck_assert_str_eq(r->url, c->url);
    ck_assert_uint_eq(r->body_len, strlen(c->body));
    ck_assert(r->body_len == 0 || memcmp(r->body, c->body, r->body_len) == 0);
    ck_assert(r->has_auth == (c->auth != NULL));
    if (c->auth) {
        ck_assert(!r->auth_overflow);
        ck_assert_str_eq(r->auth, c->auth);
    }
    ck_assert(http_request_keep_alive(r) == c->keep_alive);
}

START_TEST(test_whole)
{
    struct http_request r;
    struct outcome o = run(cases[_i].in, strlen(cases[_i].in), 0, &r);

    check(&cases[_i], &o, &r);
    http_request_free(&r);
}

END_TEST

/* Every split into two pieces, and byte by byte: the outcome never depends on the reads. */
START_TEST(test_split_points)
{
    const struct req_case *c = &cases[_i];
    size_t len = strlen(c->in);
    struct http_request r;

    for (size_t cut = 1; cut < len; cut++) {
        struct outcome o = {0};
        size_t n;

        http_request_init(&r, &limits, hook, &o.hook_calls);
        n = http_request_feed(&r, c->in, cut);
        if (!r.complete && !r.status)
            n += http_request_feed(&r, c->in + cut, len - cut);
        o.status = r.status;
        o.complete = r.complete;
        o.consumed = n;
        check(c, &o, &r);
        http_request_free(&r);
    }
    {
        struct outcome o = run(c->in, len, 1, &r);

        check(c, &o, &r);
        http_request_free(&r);
    }
}

END_TEST

/* The parser never reads past the input: the last byte sits before a PROT_NONE page. */
START_TEST(test_guard_page)
{
    const struct req_case *c = &cases[_i];
    size_t len = strlen(c->in);
    long page = sysconf(_SC_PAGESIZE);
    char *map =
        mmap(NULL, (size_t)page * 2, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    struct http_request r;
    struct outcome o;

    ck_assert_ptr_ne(map, MAP_FAILED);
    ck_assert_int_eq(mprotect(map + page, (size_t)page, PROT_NONE), 0);
    memcpy(map + page - len, c->in, len);
    o = run(map + page - len, len, 0, &r);
    check(c, &o, &r);
    http_request_free(&r);
    munmap(map, (size_t)page * 2);
}

END_TEST

/* Keep-alive: after http_request_next the same parser takes the next request. */
START_TEST(test_next_request)
{
    static const char two[] = "POST /a HTTP/1.1" CRLF "Content-Length: 2" CRLF CRLF "xy"
                              "GET /b HTTP/1.1" CRLF "Authorization: z" CRLF CRLF;
    struct http_request r;
    int calls = 0;
    size_t n;

    http_request_init(&r, &limits, hook, &calls);
    n = http_request_feed(&r, two, sizeof(two) - 1);
    ck_assert(r.complete);
    ck_assert_str_eq(r.url, "/a");
    ck_assert_uint_eq(r.body_len, 2);
    ck_assert_uint_eq(http_request_feed(&r, two + n, sizeof(two) - 1 - n), 0); /* until next */
    http_request_next(&r);
    ck_assert(!r.complete);
    ck_assert_uint_eq(r.body_len, 0);
    ck_assert(!r.has_auth);
    n += http_request_feed(&r, two + n, sizeof(two) - 1 - n);
    ck_assert_uint_eq(n, sizeof(two) - 1);
    ck_assert(r.complete);
    ck_assert_str_eq(r.url, "/b");
    ck_assert_str_eq(r.auth, "z");
    ck_assert_int_eq(http_request_method(&r), HTTP_GET);
    ck_assert_int_eq(calls, 2);
    http_request_free(&r);
}

END_TEST

/* An Authorization value too long to keep, or a second one, never matches a secret. */
START_TEST(test_authorization_overflow)
{
    char big[HTTP_AUTH_MAX + 64];
    char req[HTTP_AUTH_MAX + 256];
    static const struct http_request_limits wide = {.max_head = 4096, .max_body = 64};
    struct http_request r;
    int calls = 0;

    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    snprintf(req, sizeof(req), "GET / HTTP/1.1" CRLF "Authorization: %s" CRLF CRLF, big);
    http_request_init(&r, &wide, hook, &calls);
    http_request_feed(&r, req, strlen(req));
    ck_assert(r.complete);
    ck_assert(r.has_auth && r.auth_overflow);
    http_request_free(&r);

    http_request_init(&r, &wide, hook, &calls);
    snprintf(req, sizeof(req),
             "GET / HTTP/1.1" CRLF "Authorization: a" CRLF "Authorization: b" CRLF CRLF);
    http_request_feed(&r, req, strlen(req));
    ck_assert(r.complete);
    ck_assert(r.auth_overflow);
    http_request_free(&r);
}

END_TEST

/*
 * fuzz_http_request's input, past its two control bytes (piece
 * size 17, body limit 1600). libhttp-parser reads the chunk-size byte 0xff
 * as a 0 digit, so the second request's "\xff... /b1" was its last chunk
 * and the Content-Length after it a trailer field, counted beside the
 * head's Transfer-Encoding; the "hiGET" after it a third request. That
 * chunk size is now a 400, after one complete request.
 */
static const char fuzz_found_input[] =
    "POST /v1/pub\xff\xff\xefHTTP/1.1\r\n"
    "Content-Length: 2\r\n"
    "\r\n"
    "hiGET /healt<<<<<<<<<<Tlish1.1-\n"
    "Transfer-Encoding: chunked\r\n"
    "\r\n"
    "\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff /b1\r\n"
    "Content-Length: 2\r\n"
    "\r\n"
    "hiGET /healt/<z<<<<<<<ETlish1.1\r\n"
    "Transfer-Encoding: chunked\r\n"
    "\r\n"
    "5\ration: Be\n"
    "8ar /\r\n"
    "\n"
    "\r\n"
    "\r\n";

START_TEST(test_fuzzer_found_input)
{
    static const size_t steps[] = {0, 17, 1};
    static const struct http_request_limits lim = {.max_head = 2048, .max_body = 1600};
    const size_t len = sizeof(fuzz_found_input) - 1;
    struct http_request r;
    int calls = 0;
    size_t off = 0, nreqs = 0, step = steps[_i];

    http_request_init(&r, &lim, hook, &calls);
    while (off < len && !r.status) {
        size_t piece = step && len - off > step ? step : len - off;

        off += http_request_feed(&r, fuzz_found_input + off, piece);
        if (!r.complete)
            continue;
        ck_assert_uint_le(r.content_lengths, 1);
        ck_assert(!(r.content_lengths && r.transfer_encoding));
        ck_assert_str_eq(r.url, "/v1/pub\xff\xff\xefHTTP/1.1");
        ck_assert_uint_eq(r.body_len, 2);
        nreqs++;
        http_request_next(&r);
    }
    ck_assert_uint_eq(nreqs, 1);
    ck_assert_int_eq(r.status, 400);
    ck_assert_str_eq(r.err, "invalid chunk framing");
    ck_assert_int_eq(calls, 2);
    http_request_free(&r);
}

END_TEST

static Suite *http_request_suite(void)
{
    Suite *s = suite_create("http_request");
    TCase *tc = tcase_create("table");

    tcase_add_loop_test(tc, test_whole, 0, NCASES);
    tcase_add_loop_test(tc, test_split_points, 0, NCASES);
    tcase_add_loop_test(tc, test_guard_page, 0, NCASES);
    suite_add_tcase(s, tc);
    tc = tcase_create("connection");
    tcase_add_test(tc, test_next_request);
    tcase_add_test(tc, test_authorization_overflow);
    tcase_add_loop_test(tc, test_fuzzer_found_input, 0, 3);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return check_run_suite(http_request_suite());
}

/*
 * fuzz_http_request.c - libFuzzer target for broker/http_request.c, the
 * HTTP publish path's request parser. make test runs it for a few seconds
 * (CTest fuzz_http_request); `tests/fuzz/run.sh http_request 600` runs it
 * longer.
 *
 * Input: byte 0 picks the piece size (1..32 bytes, or all at once), byte 1
 * the body limit; the rest is a connection's byte stream. It is parsed
 * twice - in one piece and in small pieces, as reads would deliver it -
 * request after request (http_request_next after each complete one), and
 * both runs must see the same requests (URL, Authorization, body) and end
 * the same way (refused, or wanting more). Each complete
 * request must respect the limits (body within max_body, head within
 * max_head) and the smuggling rules (at most one Content-Length, never
 * with Transfer-Encoding); each refusal has a reason and a status of
 * 400, 401, 413, 414 or 431. A head hook refuses URLs starting "/deny"
 * with 401, so that path is fuzzed too. ASan checks the parser never reads
 * past a piece.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "broker/http_request.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            __builtin_trap();                                                                      \
    } while (0)

#define MAX_REQS 64

/* What one run saw: a digest per complete request, and how it ended. */
struct trace {
    uint64_t digest[MAX_REQS];
    size_t nreqs;
    int status;
};

static uint64_t mix(uint64_t h, const void *p, size_t n)
{
    const uint8_t *b = p;

    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 1099511628211ull;
    return h ^ n;
}

static int hook(struct http_request *r, void *arg, const char **err)
{
    (void)arg;
    if (r->url_len >= 5 && memcmp(r->url, "/deny", 5) == 0) {
        *err = "unauthorized";
        return 401;
    }
    return 0;
}

static void check_request(const struct http_request *r, const struct http_request_limits *lim)
{
    CHECK(r->url != NULL && r->url[r->url_len] == '\0');
    CHECK(r->body_len <= lim->max_body);
    CHECK(r->head_bytes <= lim->max_head);
    CHECK(r->content_lengths <= 1);
    CHECK(!(r->content_lengths && r->transfer_encoding));
    CHECK(r->auth_len <= HTTP_AUTH_MAX && r->auth[r->auth_len] == '\0');
}

static uint64_t digest(const struct http_request *r)
{
    uint64_t h = 1469598103934665603ull;

    h = mix(h, r->url, r->url_len);
    h = mix(h, r->body ? r->body : "", r->body_len);
    h = mix(h, r->auth, r->auth_len);
    return mix(h, &(int){http_request_method(r)}, sizeof(int));
}

/* Parses in[0..len) in pieces of step bytes (0: all at once), into *t. */
static void run(const uint8_t *in, size_t len, size_t step, const struct http_request_limits *lim,
                struct trace *t)
{
    struct http_request r;
    size_t off = 0;

    memset(t, 0, sizeof(*t));
    http_request_init(&r, lim, hook, NULL);
    while (off < len && t->nreqs < MAX_REQS) {
        size_t piece = step && len - off > step ? step : len - off;
        /* An exact-size copy, so ASan sees any read past the piece. */
        uint8_t *copy = malloc(piece);
        size_t n;

        memcpy(copy, in + off, piece);
        n = http_request_feed(&r, (const char *)copy, piece);
        free(copy);
        CHECK(n <= piece);
        off += n;
        if (r.status) {
            CHECK(r.err != NULL);
            CHECK(r.status == 400 || r.status == 401 || r.status == 413 || r.status == 414 ||
                  r.status == 431);
            t->status = r.status;
            break;
        }
        if (r.complete) {
            check_request(&r, lim);
            t->digest[t->nreqs++] = digest(&r);
            http_request_next(&r);
            continue;
        }
        CHECK(n == piece); /* neither complete nor refused: everything was taken */
    }
    http_request_free(&r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct http_request_limits lim = {.max_head = 2048};
    struct trace whole, pieces;
    size_t step;

    if (size < 2)
        return 0;
    step = data[0] % 33;
    lim.max_body = (size_t)data[1] * 16;
    run(data + 2, size - 2, 0, &lim, &whole);
    run(data + 2, size - 2, step ? step : 1, &lim, &pieces);
    CHECK(whole.nreqs == pieces.nreqs);
    CHECK(memcmp(whole.digest, pieces.digest, whole.nreqs * sizeof(whole.digest[0])) == 0);
    /* Both refuse, or neither: which limit a refusal names first may differ,
     * since the parser reports a token's bytes at the end of each piece. */
    CHECK((whole.status != 0) == (pieces.status != 0));
    return 0;
}

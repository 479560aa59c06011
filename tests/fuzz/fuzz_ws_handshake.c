/*
 * libFuzzer target for edge/ws_handshake.c. make test runs it for a few
 * seconds (CTest fuzz_ws_handshake); `tests/fuzz/run.sh ws_handshake 600`
 * runs it longer. To build it yourself:
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -I. \
 *       tests/fuzz/fuzz_ws_handshake.c edge/ws_handshake.c \
 *       -lhttp_parser -lcrypto -o fuzz_ws_handshake
 *   ./fuzz_ws_handshake -max_total_time=60 -dict=<optional http dict>
 *
 * (run from the repository root). The input is the bytes a client sent,
 * parsed with a 2 KB header limit, an origin list and the echo path
 * /echo. Checks the contract:
 * a complete head's length is within the input and one byte less is
 * incomplete; -2 only while within the limit; errors carry a status and a
 * reason; an upgrade has a 28-byte accept, NUL-terminated topics inside
 * topic_buf, and a response that fits 256 bytes; an echo upgrade has no
 * topics.
 */
#include "edge/ws_handshake.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_MAX_HEADER 2048

static void check(bool ok)
{
    if (!ok) {
        abort();
    }
}

static void check_upgrade(const struct ws_request *req)
{
    check(strlen(req->accept) == 28);
    check(req->ntopics <= WS_HS_MAX_TOPICS);
    for (size_t i = 0; i < req->ntopics; i++) {
        const char *t = req->topics[i];
        check(t >= req->topic_buf &&
              t + req->topic_lens[i] < req->topic_buf + sizeof(req->topic_buf));
        check(strlen(t) == req->topic_lens[i]);
    }
    char out[256];
    size_t n = ws_handshake_response(req, out, sizeof(out));
    check(n > 0 && n < sizeof(out) && out[n] == '\0');
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* Copy so that ASan catches any read past the end. */
    char *buf = malloc(size + 1);
    memcpy(buf, data, size);
    struct ws_request *req = malloc(sizeof(*req));
    const struct ws_hs_policy policy = {"https://a.example, https://b.example", "/echo"};
    ssize_t r = ws_handshake_parse(buf, size, FUZZ_MAX_HEADER, &policy, req);
    if (r == -2) {
        check(size <= FUZZ_MAX_HEADER);
    } else if (r == -1) {
        check(req->kind == WS_REQ_ERROR && (req->status == 400 || req->status == 431));
        check(req->err != NULL);
    } else {
        check(r > 0 && (size_t)r <= size && (size_t)r <= FUZZ_MAX_HEADER);
        if (req->kind == WS_REQ_UPGRADE) {
            check_upgrade(req);
        } else if (req->kind == WS_REQ_ECHO) {
            check_upgrade(req);
            check(req->ntopics == 0 && !req->too_many_topics && !req->raw);
        } else if (req->kind == WS_REQ_ERROR) {
            check(req->status >= 400 && req->status <= 431 && req->err != NULL);
        }
        check(ws_handshake_parse(buf, (size_t)r - 1, FUZZ_MAX_HEADER, &policy, req) == -2);
    }
    free(req);
    free(buf);
    return 0;
}

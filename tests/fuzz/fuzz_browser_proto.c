/*
 * fuzz_browser_proto.c - libFuzzer target for edge/browser_proto.c, the
 * browser-facing JSON protocol. make test runs it for a few seconds (CTest
 * fuzz_browser_proto); longer, by hand:
 *
 *   tests/fuzz/run.sh browser_proto 600
 *
 * or build it yourself from the repository root:
 *
 *   clang -std=gnu11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined \
 *       -fno-sanitize-recover=undefined -I. tests/fuzz/fuzz_browser_proto.c \
 *       edge/browser_proto.c common/ws/ws_frame.c common/ws/ws_out.c common/utf8.c \
 *       common/json_str.c common/frame.c common/mem.c common/log.c \
 *       $(pkg-config --cflags --libs jansson) -o fuzz_browser_proto
 *   ./fuzz_browser_proto -max_total_time=60 tests/fuzz/corpus/browser_proto
 *
 * The whole input is one client message for browser_op_parse; split at its
 * first newline it is also a topic and a payload to encode (no newline: an
 * empty topic). Every string handed over is an exact-size heap copy.
 *
 * Ops: on success the kind is known, a sub/unsub has a NUL-terminated
 * topic of topic_len bytes and an auth a token of token_len bytes (whose
 * ok reply with an exp parses); on failure code is "bad_request" and err a
 * non-empty string still readable after browser_op_release and the message
 * are freed (so static); either way id_text is NUL-terminated within its 48
 * bytes and is "" or the JSON text of an integer or string id (equal to id
 * when an integer), and ok/pong/error replies carrying it parse as JSON.
 *
 * Frames: browser_encode_event, _raw, _text and _close return one complete
 * frame with one reference: FIN, the expected opcode, no mask, the
 * shortest length encoding, a length equal to the rest of the frame, and a
 * header ws_frame_parse_header accepts once a zero mask key is spliced in.
 * The event envelope is UTF-8 and parses with jansson to exactly op, topic,
 * seq and data; topic is the topic when that is UTF-8; when the payload is
 * JSON, data equals it (json_equal) and the envelope ends with the payload's
 * own bytes, trimmed; otherwise data is a string, the payload itself when
 * that is UTF-8. A raw frame is text exactly when the payload is UTF-8. A
 * close frame's reason is a prefix of the given one, UTF-8 when that was.
 * browser_reply_error with the topic and payload as code and message gives
 * JSON holding them, and snprintf semantics at every capacity.
 */
#include "edge/browser_proto.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/frame.h"
#include "common/utf8.h"
#include "common/ws/ws_frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Aborts naming the failed check, so libFuzzer reports the input. */
#define CHECK(cond) ((cond) ? (void)0 : check_failed(#cond, __LINE__))

static void __attribute__((noreturn)) check_failed(const char *what, int line)
{
    fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, line, what);
    abort();
}

static char *copy(const void *p, size_t n)
{
    char *s = malloc(n > 0 ? n : 1);

    CHECK(s != NULL);
    memcpy(s, p, n);
    return s;
}

static char *cstr(const void *p, size_t n)
{
    const char *nul = memchr(p, '\0', n);
    size_t len = nul != NULL ? (size_t)(nul - (const char *)p) : n;
    char *s = malloc(len + 1);

    CHECK(s != NULL);
    memcpy(s, p, len);
    s[len] = '\0';
    return s;
}

/* True when the JSON string v holds exactly s[0..n). */
static bool json_string_is(const json_t *v, const void *s, size_t n)
{
    return json_is_string(v) && json_string_length(v) == n &&
           memcmp(json_string_value(v), s, n) == 0;
}

/* ------------------------------------------------------------- frames */

/* Checks f's header; returns its payload (borrowed from f) and its length. */
static const uint8_t *check_frame(const struct frame *f, uint8_t opcode, size_t *plen)
{
    const uint8_t *b = (const uint8_t *)f->data;
    uint8_t masked[WS_MAX_HEADER];
    struct ws_frame_header h;
    uint16_t code = 0;
    const char *err = NULL;
    size_t hlen, len;

    CHECK(f->refs == 1 && f->len >= 2);
    CHECK(b[0] == (0x80 | opcode) && (b[1] & 0x80) == 0);
    hlen = (b[1] & 0x7f) == 127 ? 10 : (b[1] & 0x7f) == 126 ? 4 : 2;
    CHECK(f->len >= hlen);
    len = f->len - hlen;
    CHECK(hlen == (len <= 125 ? 2u : len <= 0xffff ? 4u : 10u));
    /* As sent it is no client frame; with a zero mask key it parses back. */
    CHECK(ws_frame_parse_header(b, f->len, UINT64_MAX, &h, &code, &err) == -1);
    CHECK(code == WS_CLOSE_PROTOCOL && err != NULL);
    memcpy(masked, b, hlen);
    masked[1] |= 0x80;
    memset(masked + hlen, 0, 4);
    CHECK(ws_frame_parse_header(masked, hlen + 4, UINT64_MAX, &h, &code, &err) ==
          (ssize_t)(hlen + 4));
    CHECK(h.fin && h.opcode == opcode && h.payload_len == len);
    *plen = len;
    return b + hlen;
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* The envelope's text ends with ,"data":<the payload, trimmed>}. */
static void check_verbatim(const uint8_t *env, size_t elen, const char *payload, size_t plen)
{
    static const char key[] = ",\"data\":";
    size_t klen = sizeof(key) - 1;

    while (plen > 0 && is_space(payload[0])) {
        payload++;
        plen--;
    }
    while (plen > 0 && is_space(payload[plen - 1]))
        plen--;
    CHECK(elen >= klen + plen + 1 && env[elen - 1] == '}');
    CHECK(memcmp(env + elen - 1 - plen - klen, key, klen) == 0);
    CHECK(memcmp(env + elen - 1 - plen, payload, plen) == 0);
}

static void check_data(const json_t *d, const uint8_t *env, size_t elen, const char *payload,
                       size_t plen)
{
    json_error_t jerr;
    json_t *v = plen > 0 ? json_loadb(payload, plen, JSON_DECODE_ANY, &jerr) : NULL;

    if (v != NULL) {
        CHECK(json_equal(d, v));
        check_verbatim(env, elen, payload, plen);
        json_decref(v);
        return;
    }
    CHECK(json_is_string(d));
    if (utf8_valid((const uint8_t *)payload, plen))
        CHECK(json_string_is(d, payload, plen));
}

static void check_event(const char *topic, size_t tlen, uint64_t seq, const char *payload,
                        size_t plen)
{
    struct frame *f = browser_encode_event(topic, tlen, seq, payload, plen);
    size_t elen;
    const uint8_t *env = check_frame(f, WS_OP_TEXT, &elen);
    json_error_t jerr;
    json_t *root;

    CHECK(utf8_valid(env, elen));
    root = json_loadb((const char *)env, elen, JSON_ALLOW_NUL, &jerr);
    if (root == NULL) {
        /* Only jansson's own nesting limit, one level deeper than the payload's. */
        CHECK(json_error_code(&jerr) == json_error_stack_overflow);
        frame_unref(&f);
        return;
    }
    CHECK(json_is_object(root) && json_object_size(root) == 4);
    CHECK(json_string_is(json_object_get(root, "op"), "msg", 3));
    CHECK(json_is_string(json_object_get(root, "topic")));
    if (utf8_valid((const uint8_t *)topic, tlen))
        CHECK(json_string_is(json_object_get(root, "topic"), topic, tlen));
    CHECK(json_is_integer(json_object_get(root, "seq")));
    CHECK((uint64_t)json_integer_value(json_object_get(root, "seq")) == seq);
    CHECK(json_object_get(root, "data") != NULL);
    check_data(json_object_get(root, "data"), env, elen, payload, plen);
    json_decref(root);
    frame_unref(&f);
}

static void check_raw(const char *payload, size_t plen)
{
    bool text = utf8_valid((const uint8_t *)payload, plen);
    struct frame *f = browser_encode_raw(payload, plen);
    size_t len;
    const uint8_t *p = check_frame(f, text ? WS_OP_TEXT : WS_OP_BINARY, &len);

    CHECK(len == plen && memcmp(p, payload, plen) == 0);
    frame_unref(&f);
    f = browser_encode_text(payload, plen);
    p = check_frame(f, WS_OP_TEXT, &len);
    CHECK(len == plen && memcmp(p, payload, plen) == 0);
    frame_unref(&f);
}

static void check_close(uint16_t code, const char *reason)
{
    size_t rlen = strlen(reason);
    struct frame *f = browser_encode_close(code, reason);
    size_t len;
    const uint8_t *p = check_frame(f, WS_OP_CLOSE, &len);

    CHECK(len >= 2 && len <= 125 && p[0] == code >> 8 && p[1] == (code & 0xff));
    CHECK(len - 2 <= rlen && memcmp(p + 2, reason, len - 2) == 0);
    CHECK(rlen > 123 || len - 2 == rlen);
    /* A valid reason is cut before the character that does not fit. */
    if (utf8_valid((const uint8_t *)reason, rlen))
        CHECK(utf8_valid(p + 2, len - 2) && (rlen <= 123 || len - 2 >= 120));
    frame_unref(&f);
}

/* ------------------------------------------------------------ replies */

/* A reply: JSON, op as given, "id" as id_text says, nothing else but extra keys. */
static json_t *check_reply(const char *s, const char *op, const char *id_text, size_t extra)
{
    json_error_t jerr;
    json_t *root = json_loads(s, 0, &jerr);
    json_t *id = json_object_get(root, "id");

    CHECK(root != NULL && json_is_object(root));
    CHECK(json_object_size(root) == 1 + (id_text[0] != '\0') + extra);
    CHECK(json_string_is(json_object_get(root, "op"), op, strlen(op)));
    if (id_text[0] == '\0') {
        CHECK(id == NULL);
    } else {
        json_t *want = json_loads(id_text, JSON_DECODE_ANY, &jerr);
        CHECK(want != NULL && json_equal(id, want));
        json_decref(want);
    }
    return root;
}

static void check_ok_pong(const char *id_text)
{
    char out[128];

    CHECK(browser_reply_ok(out, sizeof(out), id_text) < sizeof(out));
    json_decref(check_reply(out, "ok", id_text, 0));
    CHECK(browser_reply_pong(out, sizeof(out), id_text) < sizeof(out));
    json_decref(check_reply(out, "pong", id_text, 0));
}

static void check_error_reply(const char *id_text, const char *code, const char *message,
                              size_t cap)
{
    size_t need = browser_reply_error(NULL, 0, id_text, code, message);
    char *full = malloc(need + 1);
    char *cut = malloc(cap);
    json_t *root;

    CHECK(full != NULL && cut != NULL);
    CHECK(browser_reply_error(full, need + 1, id_text, code, message) == need);
    CHECK(strlen(full) == need);
    root = check_reply(full, "error", id_text, 2);
    CHECK(json_is_string(json_object_get(root, "code")));
    CHECK(json_is_string(json_object_get(root, "message")));
    if (utf8_valid((const uint8_t *)code, strlen(code)))
        CHECK(json_string_is(json_object_get(root, "code"), code, strlen(code)));
    if (utf8_valid((const uint8_t *)message, strlen(message)))
        CHECK(json_string_is(json_object_get(root, "message"), message, strlen(message)));
    json_decref(root);
    /* snprintf semantics: the full length, and as much as fits, terminated. */
    CHECK(browser_reply_error(cut, cap, id_text, code, message) == need);
    CHECK(strlen(cut) == (need < cap ? need : cap - 1));
    CHECK(memcmp(cut, full, strlen(cut)) == 0);
    free(cut);
    free(full);
}

/* ---------------------------------------------------------------- ops */

/* id_text is "" or the JSON text of an integer or string (that integer when has_id). */
static void check_id_text(const struct browser_op *op)
{
    json_error_t jerr;
    json_t *id;

    CHECK(memchr(op->id_text, '\0', sizeof(op->id_text)) != NULL);
    if (op->id_text[0] == '\0') {
        CHECK(!op->has_id);
        return;
    }
    id = json_loads(op->id_text, JSON_DECODE_ANY, &jerr);
    CHECK(id != NULL && (json_is_integer(id) || json_is_string(id)));
    if (op->has_id && json_is_integer(id))
        CHECK(json_integer_value(id) == op->id);
    json_decref(id);
}

/* Parses the message; copies the id text out for the replies. */
/* The auth op's ok reply carries the id and an integer exp, and parses as JSON. */
static void check_auth_ok(const char *id_text)
{
    char buf[128];
    size_t n = browser_reply_auth_ok(buf, sizeof(buf), id_text, -1234567890123LL);
    json_error_t jerr;
    json_t *root;

    CHECK(n < sizeof(buf));
    root = json_loadb(buf, n, 0, &jerr);
    CHECK(root != NULL);
    CHECK(json_integer_value(json_object_get(root, "exp")) == -1234567890123LL);
    json_decref(root);
}

static void check_op(const uint8_t *data, size_t size, char *id_text)
{
    char *msg = copy(data, size);
    struct browser_op op;
    const char *code = NULL, *err = NULL;
    int rc = browser_op_parse(msg, size, &op, &code, &err);

    CHECK(rc == 0 || rc == -1);
    check_id_text(&op);
    memcpy(id_text, op.id_text, sizeof(op.id_text));
    if (rc == 0) {
        CHECK(op.kind == BROWSER_OP_SUB || op.kind == BROWSER_OP_UNSUB ||
              op.kind == BROWSER_OP_PING || op.kind == BROWSER_OP_AUTH);
        CHECK(op.has_id == (op.id_text[0] != '\0'));
        if (op.kind == BROWSER_OP_SUB || op.kind == BROWSER_OP_UNSUB)
            CHECK(op.topic != NULL && strlen(op.topic) == op.topic_len);
        if (op.kind == BROWSER_OP_AUTH)
            CHECK(op.token != NULL && strlen(op.token) == op.token_len);
        check_auth_ok(op.id_text);
    }
    browser_op_release(&op);
    CHECK(op.json == NULL && op.topic == NULL && op.token == NULL);
    free(msg);
    if (rc == -1) {
        CHECK(code != NULL && strcmp(code, "bad_request") == 0);
        CHECK(err != NULL && strlen(err) > 0);
    }
    check_ok_pong(id_text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char id_text[sizeof(((struct browser_op *)0)->id_text)];
    const uint8_t *nl = memchr(data, '\n', size);
    size_t tlen = nl != NULL ? (size_t)(nl - data) : 0;
    size_t skip = nl != NULL ? tlen + 1 : 0;
    char *topic = copy(data, tlen);
    char *payload = copy(data + skip, size - skip);
    char *code = cstr(data, tlen);
    char *message = cstr(data + skip, size - skip);
    /* jansson reads integers into int64_t, so seq stays below 2^63. */
    uint64_t seq = size % 2 ? INT64_MAX - size : size;

    check_op(data, size, id_text);
    check_event(topic, tlen, seq, payload, size - skip);
    check_raw(payload, size - skip);
    check_close((uint16_t)(1000 + size), message);
    check_error_reply(id_text, code, message, 1 + size % 64);
    CHECK(frame_live() == 0);
    free(message);
    free(code);
    free(payload);
    free(topic);
    return 0;
}

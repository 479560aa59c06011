/*
 * Tests for edge/browser_proto.c: client ops (valid and every bad_request
 * reason, with the id echoed when readable), exact reply strings, exact
 * event envelopes (JSON payloads inserted verbatim but trimmed, anything
 * else as an escaped string with U+FFFD for invalid UTF-8), WebSocket
 * header forms at the 125/126 and 65535/65536 length boundaries, raw,
 * text and close frames. Every frame is released: teardown checks that no
 * frame is alive.
 */
#include "edge/browser_proto.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/frame.h"
#include "tests/support/check_main.h"

static void setup(void)
{
    ck_assert_uint_eq(frame_live(), 0);
}

static void teardown(void)
{
    ck_assert_uint_eq(frame_live(), 0);
}

/* ---------- ops ---------- */

static const struct {
    const char *msg;
    enum browser_op_kind kind;
    const char *topic;
    bool has_id;
    int64_t id;
    const char *id_text;
} good_ops[] = {
    {"{\"op\":\"sub\",\"topic\":\"mail.user.42.>\",\"id\":1}", BROWSER_OP_SUB, "mail.user.42.>",
     true, 1, "1"},
    {"{\"op\":\"sub\",\"topic\":\"news\",\"id\":\"s-1\"}", BROWSER_OP_SUB, "news", true, 0,
     "\"s-1\""},
    {"{\"op\":\"sub\",\"topic\":\"news\"}", BROWSER_OP_SUB, "news", false, 0, ""},
    {"{\"op\":\"unsub\",\"topic\":\"a.*\",\"id\":-9}", BROWSER_OP_UNSUB, "a.*", true, -9, "-9"},
    {"{\"op\":\"unsub\",\"topic\":\"a\",\"id\":\"x\\\"y\"}", BROWSER_OP_UNSUB, "a", true, 0,
     "\"x\\\"y\""},
    {"{\"op\":\"unsub\",\"topic\":\"a\"}", BROWSER_OP_UNSUB, "a", false, 0, ""},
    {"{\"op\":\"ping\",\"id\":9007199254740993}", BROWSER_OP_PING, NULL, true, 9007199254740993,
     "9007199254740993"},
    {"{\"op\":\"ping\",\"id\":\"p\"}", BROWSER_OP_PING, NULL, true, 0, "\"p\""},
    {"{\"op\":\"ping\"}", BROWSER_OP_PING, NULL, false, 0, ""},
    /* Order, whitespace and extra members do not matter; topic syntax is not checked here. */
    {" {\"id\": 3, \"extra\": [1], \"topic\": \"..\", \"op\": \"sub\"} \n", BROWSER_OP_SUB, "..",
     true, 3, "3"},
    /* The longest id that fits: 45 characters plus quotes = 47 bytes. */
    {"{\"op\":\"ping\",\"id\":\"123456789012345678901234567890123456789012345\"}", BROWSER_OP_PING,
     NULL, true, 0, "\"123456789012345678901234567890123456789012345\""},
};

START_TEST(test_op_valid)
{
    struct browser_op op;
    const char *code = "unset";
    const char *err = "unset";
    const char *msg = good_ops[_i].msg;

    ck_assert_int_eq(browser_op_parse(msg, strlen(msg), &op, &code, &err), 0);
    ck_assert_int_eq(op.kind, good_ops[_i].kind);
    if (good_ops[_i].topic != NULL) {
        ck_assert_str_eq(op.topic, good_ops[_i].topic);
        ck_assert_uint_eq(op.topic_len, strlen(good_ops[_i].topic));
    }
    ck_assert_int_eq(op.has_id, good_ops[_i].has_id);
    ck_assert_int_eq(op.id, good_ops[_i].id);
    ck_assert_str_eq(op.id_text, good_ops[_i].id_text);
    browser_op_release(&op);
    ck_assert_ptr_null(op.json);
}

END_TEST

static const struct {
    const char *msg;
    const char *err;
    const char *id_text;
} bad_ops[] = {
    {"{\"op\":\"sub\"", "malformed JSON", ""},
    {"", "malformed JSON", ""},
    {"{\"op\":\"sub\",\"topic\":\"a\"} x", "malformed JSON", ""},
    {"{\"op\":\"sub\",\"topic\":\"a\\u0000b\"}", "malformed JSON", ""},
    {"[{\"op\":\"ping\"}]", "message must be a JSON object", ""},
    {"\"ping\"", "message must be a JSON object", ""},
    {"{\"id\":5}", "missing op", "5"},
    {"{}", "missing op", ""},
    {"{\"op\":\"subscribe\",\"id\":\"q\"}", "unknown op", "\"q\""},
    {"{\"op\":7,\"id\":8}", "unknown op", "8"},
    {"{\"op\":\"sub\",\"topic\":7,\"id\":3}", "topic must be a string", "3"},
    {"{\"op\":\"sub\",\"topic\":null}", "topic must be a string", ""},
    {"{\"op\":\"unsub\",\"id\":4}", "missing topic", "4"},
    {"{\"op\":\"sub\",\"id\":\"k\"}", "missing topic", "\"k\""},
    {"{\"op\":\"sub\",\"topic\":\"a\",\"id\":1.5}", "id must be an integer or a string", ""},
    {"{\"op\":\"sub\",\"topic\":\"a\",\"id\":{}}", "id must be an integer or a string", ""},
    {"{\"op\":\"ping\",\"id\":\"1234567890123456789012345678901234567890123456\"}", "id too long",
     ""},
};

START_TEST(test_op_bad_request)
{
    struct browser_op op;
    const char *code = NULL;
    const char *err = NULL;
    const char *msg = bad_ops[_i].msg;

    ck_assert_int_eq(browser_op_parse(msg, strlen(msg), &op, &code, &err), -1);
    ck_assert_str_eq(code, "bad_request");
    ck_assert_str_eq(err, bad_ops[_i].err);
    ck_assert_str_eq(op.id_text, bad_ops[_i].id_text);
    browser_op_release(&op);
    ck_assert_ptr_null(op.json);
}

END_TEST

/* The length is explicit: bytes past it are not read. */
START_TEST(test_op_uses_length)
{
    static const char msg[] = "{\"op\":\"ping\"}garbage";
    struct browser_op op;
    const char *code;
    const char *err;

    ck_assert_int_eq(browser_op_parse(msg, 13, &op, &code, &err), 0);
    ck_assert_int_eq(op.kind, BROWSER_OP_PING);
    browser_op_release(&op);
}

END_TEST

/* ---------- replies ---------- */

START_TEST(test_replies)
{
    char buf[256];

    ck_assert_uint_eq(browser_reply_ok(buf, sizeof(buf), "1"), 18);
    ck_assert_str_eq(buf, "{\"op\":\"ok\",\"id\":1}");
    ck_assert_uint_eq(browser_reply_ok(buf, sizeof(buf), ""), 11);
    ck_assert_str_eq(buf, "{\"op\":\"ok\"}");
    ck_assert_uint_eq(browser_reply_pong(buf, sizeof(buf), "\"p-1\""), 24);
    ck_assert_str_eq(buf, "{\"op\":\"pong\",\"id\":\"p-1\"}");
    ck_assert_uint_eq(browser_reply_pong(buf, sizeof(buf), ""), 13);
    ck_assert_str_eq(buf, "{\"op\":\"pong\"}");
    browser_reply_error(buf, sizeof(buf), "3", "forbidden", "not allowed");
    ck_assert_str_eq(
        buf, "{\"op\":\"error\",\"id\":3,\"code\":\"forbidden\",\"message\":\"not allowed\"}");
    browser_reply_error(buf, sizeof(buf), "", "bad_request", "say \"hi\"\\\n\x01");
    ck_assert_str_eq(buf, "{\"op\":\"error\",\"code\":\"bad_request\","
                          "\"message\":\"say \\\"hi\\\"\\\\\\n\\u0001\"}");
}

END_TEST

START_TEST(test_reply_truncated)
{
    char buf[32];

    memset(buf, 'Z', sizeof(buf));
    ck_assert_uint_eq(browser_reply_ok(buf, 8, "1"), 18);
    ck_assert_str_eq(buf, "{\"op\":\"");
    ck_assert_int_eq(buf[8], 'Z');
    ck_assert_uint_eq(browser_reply_ok(buf, 0, "1"), 18);
    ck_assert_int_eq(buf[0], '{');
    ck_assert_uint_eq(browser_reply_ok(buf, 18, "1"), 18);
    ck_assert_uint_eq(strlen(buf), 17);
}

END_TEST

/* ---------- envelopes ---------- */

#define ENV_PREFIX "{\"op\":\"msg\",\"topic\":\"mail.u1\",\"seq\":7,\"data\":"

static const struct {
    const char *payload;
    size_t plen;
    const char *data;
} envelopes[] = {
    {"{\"from\":\"a@b\"}", 14, "{\"from\":\"a@b\"}"},
    {"42", 2, "42"},
    {"\"str\"", 5, "\"str\""},
    {"  [1,2] ", 8, "[1,2]"},
    {"\r\n\t{ \"a\" : [ 1 , 2.50 ] }\n", 26, "{ \"a\" : [ 1 , 2.50 ] }"},
    {"null", 4, "null"},
    {"hi", 2, "\"hi\""},
    {"a\"b\\c\n", 6, "\"a\\\"b\\\\c\\n\""},
    {"\b\f\r\t\x01\x1f\x7f", 7, "\"\\b\\f\\r\\t\\u0001\\u001f\x7f\""},
    {"a\xff"
     "b",
     3, "\"a\\ufffdb\""},
    {"\xe2\x82x", 3, "\"\\ufffdx\""},
    {"\xc0\xaf", 2, "\"\\ufffd\\ufffd\""},
    {"\xed\xa0\x80", 3, "\"\\ufffd\\ufffd\\ufffd\""},
    {"end\xf0\x9f\x98", 6, "\"end\\ufffd\""},
    {"caf\xc3\xa9 \xf0\x9f\x98\x80", 10, "\"caf\xc3\xa9 \xf0\x9f\x98\x80\""},
    {"\"caf\xc3\xa9\"", 7, "\"caf\xc3\xa9\""},
    {"", 0, "\"\""},
    {"   ", 3, "\"   \""},
    {"{\"a\":1} x", 9, "\"{\\\"a\\\":1} x\""},
    {"[1,", 3, "\"[1,\""},
    {"a\0b", 3, "\"a\\u0000b\""},
};

/* Checks f is one final unmasked text frame with a 2-byte header; returns its payload. */
static const char *small_text_payload(const struct frame *f, size_t *len)
{
    ck_assert_uint_ge(f->len, 2);
    ck_assert_uint_eq((uint8_t)f->data[0], 0x81);
    ck_assert_uint_lt((uint8_t)f->data[1], 126);
    *len = (uint8_t)f->data[1];
    ck_assert_uint_eq(f->len, 2 + *len);
    return f->data + 2;
}

START_TEST(test_envelope)
{
    char want[256];
    size_t len;
    struct frame *f =
        browser_encode_event("mail.u1", 7, 7, envelopes[_i].payload, envelopes[_i].plen);
    const char *got = small_text_payload(f, &len);

    snprintf(want, sizeof(want), "%s%s}", ENV_PREFIX, envelopes[_i].data);
    ck_assert_uint_eq(len, strlen(want));
    ck_assert_mem_eq(got, want, len);
    ck_assert_uint_eq(f->refs, 1);
    frame_unref(&f);
}

END_TEST

START_TEST(test_envelope_topic_and_seq)
{
    static const char want[] =
        "{\"op\":\"msg\",\"topic\":\"a\\\"b\\\\c\",\"seq\":18446744073709551615,\"data\":0}";
    size_t len;
    struct frame *f = browser_encode_event("a\"b\\c", 5, UINT64_MAX, "0", 1);
    const char *got = small_text_payload(f, &len);

    ck_assert_uint_eq(len, strlen(want));
    ck_assert_mem_eq(got, want, len);
    frame_unref(&f);
    /* tlen bounds the topic: bytes after it are not part of it. */
    f = browser_encode_event("news.sport", 4, 0, "1", 1);
    got = small_text_payload(f, &len);
    ck_assert_uint_eq(len, strlen("{\"op\":\"msg\",\"topic\":\"news\",\"seq\":0,\"data\":1}"));
    ck_assert_mem_eq(got, "{\"op\":\"msg\",\"topic\":\"news\",\"seq\":0,\"data\":1}", len);
    frame_unref(&f);
}

END_TEST

/* ---------- header forms ---------- */

static const struct {
    size_t json_len;
    size_t header_len;
    uint8_t header[10];
} header_forms[] = {
    {125, 2, {0x81, 125}},
    {126, 4, {0x81, 126, 0x00, 126}},
    {65535, 4, {0x81, 126, 0xff, 0xff}},
    {65536, 10, {0x81, 127, 0, 0, 0, 0, 0, 1, 0, 0}},
};

START_TEST(test_envelope_header_forms)
{
    static const char prefix[] = "{\"op\":\"msg\",\"topic\":\"t\",\"seq\":1,\"data\":";
    size_t overhead = strlen(prefix) + 1;
    size_t plen = header_forms[_i].json_len - overhead;
    char *payload = malloc(plen);
    struct frame *f;
    size_t h = header_forms[_i].header_len;

    ck_assert_ptr_nonnull(payload);
    /* A JSON string payload: inserted as is, so the JSON length is exact. */
    memset(payload, 'x', plen);
    payload[0] = '"';
    payload[plen - 1] = '"';
    f = browser_encode_event("t", 1, 1, payload, plen);
    ck_assert_uint_eq(f->len, h + header_forms[_i].json_len);
    ck_assert_mem_eq(f->data, header_forms[_i].header, h);
    ck_assert_mem_eq(f->data + h, prefix, strlen(prefix));
    ck_assert_mem_eq(f->data + h + strlen(prefix), payload, plen);
    ck_assert_int_eq(f->data[f->len - 1], '}');
    frame_unref(&f);
    free(payload);
}

END_TEST

/* ---------- raw, text and close frames ---------- */

START_TEST(test_raw_frames)
{
    struct frame *f = browser_encode_raw("hello", 5);

    ck_assert_uint_eq(f->len, 7);
    ck_assert_mem_eq(f->data, "\x81\x05hello", 7);
    frame_unref(&f);
    f = browser_encode_raw("caf\xc3\xa9", 5);
    ck_assert_mem_eq(f->data,
                     "\x81\x05"
                     "caf\xc3\xa9",
                     7);
    frame_unref(&f);
    f = browser_encode_raw("\x00\xff\x01", 3);
    ck_assert_uint_eq(f->len, 5);
    ck_assert_mem_eq(f->data, "\x82\x03\x00\xff\x01", 5);
    frame_unref(&f);
    f = browser_encode_raw("", 0);
    ck_assert_uint_eq(f->len, 2);
    ck_assert_mem_eq(f->data, "\x81\x00", 2);
    frame_unref(&f);
}

END_TEST

START_TEST(test_raw_large)
{
    size_t n = 70000;
    char *p = malloc(n);
    struct frame *f;

    ck_assert_ptr_nonnull(p);
    memset(p, 0xfe, n);
    f = browser_encode_raw(p, n);
    ck_assert_uint_eq(f->len, 10 + n);
    ck_assert_mem_eq(f->data, "\x82\x7f\x00\x00\x00\x00\x00\x01\x11\x70", 10);
    ck_assert_mem_eq(f->data + 10, p, n);
    frame_unref(&f);
    free(p);
}

END_TEST

START_TEST(test_text_frame)
{
    struct frame *f = browser_encode_text("{\"op\":\"ok\"}", 11);

    ck_assert_uint_eq(f->len, 13);
    ck_assert_mem_eq(f->data, "\x81\x0b{\"op\":\"ok\"}", 13);
    frame_unref(&f);
}

END_TEST

START_TEST(test_close_frames)
{
    char reason[200];
    struct frame *f = browser_encode_close(1008, "slow consumer");

    ck_assert_uint_eq(f->len, 17);
    ck_assert_mem_eq(f->data, "\x88\x0f\x03\xf0slow consumer", 17);
    frame_unref(&f);
    f = browser_encode_close(1000, NULL);
    ck_assert_uint_eq(f->len, 4);
    ck_assert_mem_eq(f->data, "\x88\x02\x03\xe8", 4);
    frame_unref(&f);
    f = browser_encode_close(1001, "");
    ck_assert_uint_eq(f->len, 4);
    ck_assert_mem_eq(f->data, "\x88\x02\x03\xe9", 4);
    frame_unref(&f);
    /* Cut at 123 bytes: the control frame payload is 125. */
    memset(reason, 'r', sizeof(reason) - 1);
    reason[sizeof(reason) - 1] = '\0';
    f = browser_encode_close(4000, reason);
    ck_assert_uint_eq(f->len, 127);
    ck_assert_mem_eq(f->data, "\x88\x7d\x0f\xa0", 4);
    ck_assert_mem_eq(f->data + 4, reason, 123);
    frame_unref(&f);
    /* ... but never inside a UTF-8 character (é at bytes 122-123). */
    memcpy(reason + 122, "\xc3\xa9", 2);
    f = browser_encode_close(4000, reason);
    ck_assert_uint_eq(f->len, 126);
    ck_assert_uint_eq((uint8_t)f->data[1], 124);
    ck_assert_mem_eq(f->data + 4, reason, 122);
    frame_unref(&f);
}

END_TEST

static Suite *browser_proto_suite(void)
{
    Suite *s = suite_create("browser_proto");
    TCase *tc;

    tc = tcase_create("ops");
    tcase_add_loop_test(tc, test_op_valid, 0, (int)(sizeof(good_ops) / sizeof(good_ops[0])));
    tcase_add_loop_test(tc, test_op_bad_request, 0, (int)(sizeof(bad_ops) / sizeof(bad_ops[0])));
    tcase_add_test(tc, test_op_uses_length);
    suite_add_tcase(s, tc);

    tc = tcase_create("replies");
    tcase_add_test(tc, test_replies);
    tcase_add_test(tc, test_reply_truncated);
    suite_add_tcase(s, tc);

    tc = tcase_create("envelope");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_loop_test(tc, test_envelope, 0, (int)(sizeof(envelopes) / sizeof(envelopes[0])));
    tcase_add_test(tc, test_envelope_topic_and_seq);
    tcase_add_loop_test(tc, test_envelope_header_forms, 0,
                        (int)(sizeof(header_forms) / sizeof(header_forms[0])));
    suite_add_tcase(s, tc);

    tc = tcase_create("frames");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_raw_frames);
    tcase_add_test(tc, test_raw_large);
    tcase_add_test(tc, test_text_frame);
    tcase_add_test(tc, test_close_frames);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return check_run_suite(browser_proto_suite());
}

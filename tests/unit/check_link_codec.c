/*
 * check_link_codec.c - link frames: encode/decode round trips with edge
 * values, streaming decode at every split point, malformed input (a table of
 * hand-built msgpack) and the max_frame limit.
 *
 * The split-point and byte-by-byte tests check a stream by re-encoding every
 * decoded frame at once (its views die at the next decoder call) and
 * comparing the result with the original stream byte for byte.
 */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/link_codec.h"
#include "common/mem.h"
#include "tests/support/check_main.h"

#define BIG_LIMIT (2u * 1024 * 1024)

static void assert_view(struct link_str s, const void *want, size_t len)
{
    ck_assert_uint_eq(s.len, len);
    if (len > 0)
        ck_assert_mem_eq(s.ptr, want, len);
}

static void assert_cstr(struct link_str s, const char *want)
{
    assert_view(s, want, strlen(want));
}

/* Feeds sb's bytes to a fresh decoder and returns it with one frame in *f. */
static struct link_decoder *decode_one(const msgpack_sbuffer *sb, size_t max_frame,
                                       struct link_frame *f)
{
    struct link_decoder *d = link_decoder_new(max_frame);
    const char *err = NULL;

    ck_assert_int_eq(link_decoder_feed(d, sb->data, sb->size, &err), 0);
    ck_assert_int_eq(link_decoder_next(d, f, &err), 1);
    ck_assert_uint_eq(link_decoder_pending(d), 0);
    return d;
}

/* Checks that the only frame in the decoder is gone and nothing is left. */
static void finish(struct link_decoder *d, msgpack_sbuffer *sb)
{
    struct link_frame f;
    const char *err = NULL;

    ck_assert_int_eq(link_decoder_next(d, &f, &err), 0);
    link_decoder_free(d);
    msgpack_sbuffer_destroy(sb);
}

/* ---------------------------------------------------------------------------
 * Round trips.
 */

START_TEST(hello_with_and_without_secret)
{
    msgpack_sbuffer sb;
    struct link_frame f;
    struct link_decoder *d;

    msgpack_sbuffer_init(&sb);
    link_encode_hello(&sb, "edge", "node-1", "s3cret");
    d = decode_one(&sb, 1024, &f);
    ck_assert_int_eq(f.type, LINK_HELLO);
    ck_assert_uint_eq(f.version, LINK_VERSION);
    assert_cstr(f.role, "edge");
    assert_cstr(f.node, "node-1");
    ck_assert(f.has_secret);
    assert_cstr(f.secret, "s3cret");
    finish(d, &sb);

    msgpack_sbuffer_init(&sb);
    link_encode_hello(&sb, "", "", NULL);
    d = decode_one(&sb, 1024, &f);
    ck_assert_int_eq(f.type, LINK_HELLO);
    assert_cstr(f.role, "");
    assert_cstr(f.node, "");
    ck_assert(!f.has_secret);
    ck_assert_uint_eq(f.secret.len, 0);
    finish(d, &sb);
}

END_TEST

START_TEST(welcome_edge_epochs)
{
    static const uint64_t epochs[] = {0, 1, UINT64_MAX};

    for (size_t i = 0; i < sizeof(epochs) / sizeof(epochs[0]); i++) {
        msgpack_sbuffer sb;
        struct link_frame f;
        struct link_decoder *d;

        msgpack_sbuffer_init(&sb);
        link_encode_welcome(&sb, "broker-a", epochs[i], epochs[i] / 2);
        d = decode_one(&sb, 1024, &f);
        ck_assert_int_eq(f.type, LINK_WELCOME);
        ck_assert_uint_eq(f.version, LINK_VERSION);
        assert_cstr(f.node, "broker-a");
        ck_assert_uint_eq(f.epoch, epochs[i]);
        ck_assert(f.has_max_subscriptions);
        ck_assert_uint_eq(f.max_subscriptions, epochs[i] / 2);
        finish(d, &sb);
    }
}

END_TEST

/* WELCOME with the history epoch string; the 5-element form still reads without it. */
START_TEST(welcome_history_epoch)
{
    msgpack_sbuffer sb;
    struct link_frame f;
    struct link_decoder *d;

    msgpack_sbuffer_init(&sb);
    link_encode_welcome_epoch(&sb, "broker-a", 9, 100, "0123456789abcdef");
    d = decode_one(&sb, 1024, &f);
    ck_assert_int_eq(f.type, LINK_WELCOME);
    ck_assert_uint_eq(f.epoch, 9);
    ck_assert_uint_eq(f.max_subscriptions, 100);
    ck_assert(f.has_history_epoch);
    assert_cstr(f.history_epoch, "0123456789abcdef");
    finish(d, &sb);

    msgpack_sbuffer_init(&sb);
    link_encode_welcome(&sb, "broker-a", 9, 100);
    d = decode_one(&sb, 1024, &f);
    ck_assert(f.has_max_subscriptions);
    ck_assert(!f.has_history_epoch);
    ck_assert_uint_eq(f.history_epoch.len, 0);
    finish(d, &sb);
}

END_TEST

START_TEST(history_with_and_without_position)
{
    struct link_history_req r = {
        .req_id = UINT64_MAX,
        .topic = {"mail.user.42", 12},
        .epoch = {"00ff00ff00ff00ff", 16},
        .has_epoch = true,
        .after = 17,
        .has_after = true,
    };
    msgpack_sbuffer sb;
    struct link_frame f;
    struct link_decoder *d;

    msgpack_sbuffer_init(&sb);
    link_encode_history(&sb, &r);
    d = decode_one(&sb, 1024, &f);
    ck_assert_int_eq(f.type, LINK_HISTORY);
    ck_assert_uint_eq(f.req_id, UINT64_MAX);
    assert_cstr(f.topic, "mail.user.42");
    ck_assert(f.has_history_epoch);
    assert_cstr(f.history_epoch, "00ff00ff00ff00ff");
    ck_assert(f.has_after);
    ck_assert_uint_eq(f.after, 17);
    finish(d, &sb);

    r.has_epoch = false;
    r.has_after = false;
    r.req_id = 0;
    msgpack_sbuffer_init(&sb);
    link_encode_history(&sb, &r);
    d = decode_one(&sb, 1024, &f);
    ck_assert_int_eq(f.type, LINK_HISTORY);
    ck_assert_uint_eq(f.req_id, 0);
    ck_assert(!f.has_history_epoch);
    ck_assert(!f.has_after);
    ck_assert_uint_eq(f.after, 0);
    finish(d, &sb);
}

END_TEST

START_TEST(histr_recovered_and_not)
{
    struct link_history_reply r = {
        .req_id = 5,
        .topic = {"a.b", 3},
        .epoch = {"0123456789abcdef", 16},
        .head = UINT64_MAX,
        .recovered = true,
        .count = 3,
    };
    msgpack_sbuffer sb;
    struct link_frame f;
    struct link_decoder *d;

    msgpack_sbuffer_init(&sb);
    link_encode_histr(&sb, &r);
    d = decode_one(&sb, 1024, &f);
    ck_assert_int_eq(f.type, LINK_HISTR);
    ck_assert_uint_eq(f.req_id, 5);
    assert_cstr(f.topic, "a.b");
    assert_cstr(f.history_epoch, "0123456789abcdef");
    ck_assert_uint_eq(f.head, UINT64_MAX);
    ck_assert(f.recovered);
    ck_assert_uint_eq(f.count, 3);
    finish(d, &sb);

    r.recovered = false;
    r.count = 0;
    r.head = 0;
    msgpack_sbuffer_init(&sb);
    link_encode_histr(&sb, &r);
    d = decode_one(&sb, 1024, &f);
    ck_assert(!f.recovered);
    ck_assert_uint_eq(f.count, 0);
    ck_assert_uint_eq(f.head, 0);
    finish(d, &sb);
}

END_TEST

START_TEST(sub_unsub_patterns)
{
    static const char *const patterns[] = {"mail.user.42.>", "a.*.c", ""};

    for (size_t i = 0; i < 3; i++) {
        msgpack_sbuffer sb;
        struct link_frame f;
        struct link_decoder *d;

        msgpack_sbuffer_init(&sb);
        link_encode_sub(&sb, patterns[i], strlen(patterns[i]));
        d = decode_one(&sb, 1024, &f);
        ck_assert_int_eq(f.type, LINK_SUB);
        assert_cstr(f.topic, patterns[i]);
        finish(d, &sb);

        msgpack_sbuffer_init(&sb);
        link_encode_unsub(&sb, patterns[i], strlen(patterns[i]));
        d = decode_one(&sb, 1024, &f);
        ck_assert_int_eq(f.type, LINK_UNSUB);
        assert_cstr(f.topic, patterns[i]);
        finish(d, &sb);
    }
}

END_TEST

START_TEST(pub_req_id_and_payloads)
{
    static const char payload[] = {'{', 0, '\xff', '}'};
    msgpack_sbuffer sb;
    struct link_frame f;
    struct link_decoder *d;

    msgpack_sbuffer_init(&sb);
    link_encode_pub(&sb, "user.42.mail", 12, payload, sizeof(payload), true, UINT64_MAX);
    d = decode_one(&sb, 1024, &f);
    ck_assert_int_eq(f.type, LINK_PUB);
    assert_cstr(f.topic, "user.42.mail");
    assert_view(f.payload, payload, sizeof(payload));
    ck_assert(f.has_req_id);
    ck_assert_uint_eq(f.req_id, UINT64_MAX);
    finish(d, &sb);

    msgpack_sbuffer_init(&sb);
    link_encode_pub(&sb, "t", 1, NULL, 0, true, 0);
    d = decode_one(&sb, 1024, &f);
    ck_assert(f.has_req_id);
    ck_assert_uint_eq(f.req_id, 0);
    ck_assert_uint_eq(f.payload.len, 0);
    finish(d, &sb);

    msgpack_sbuffer_init(&sb);
    link_encode_pub(&sb, "t", 1, "x", 1, false, 99);
    d = decode_one(&sb, 1024, &f);
    ck_assert(!f.has_req_id);
    ck_assert_uint_eq(f.req_id, 0);
    assert_view(f.payload, "x", 1);
    finish(d, &sb);
}

END_TEST

START_TEST(puback_edge_values)
{
    msgpack_sbuffer sb;
    struct link_frame f;
    struct link_decoder *d;

    msgpack_sbuffer_init(&sb);
    link_encode_puback(&sb, UINT64_MAX, 0, UINT64_MAX - 1);
    d = decode_one(&sb, 1024, &f);
    ck_assert_int_eq(f.type, LINK_PUBACK);
    ck_assert_uint_eq(f.req_id, UINT64_MAX);
    ck_assert_uint_eq(f.receivers, 0);
    ck_assert_uint_eq(f.seq, UINT64_MAX - 1);
    finish(d, &sb);
}

END_TEST

START_TEST(msg_empty_payload)
{
    msgpack_sbuffer sb;
    struct link_frame f;
    struct link_decoder *d;

    msgpack_sbuffer_init(&sb);
    link_encode_msg(&sb, "news", 4, 0, "", 0);
    d = decode_one(&sb, 1024, &f);
    ck_assert_int_eq(f.type, LINK_MSG);
    assert_cstr(f.topic, "news");
    ck_assert_uint_eq(f.seq, 0);
    ck_assert_uint_eq(f.payload.len, 0);
    finish(d, &sb);
}

END_TEST

START_TEST(msg_one_mib_payload_under_two_mib_limit)
{
    size_t plen = 1024 * 1024;
    char *payload = mem_alloc(plen);
    msgpack_sbuffer sb;
    struct link_frame f;
    struct link_decoder *d = link_decoder_new(BIG_LIMIT);
    const char *err = NULL;

    for (size_t i = 0; i < plen; i++)
        payload[i] = (char)(i * 31 + 7);
    msgpack_sbuffer_init(&sb);
    link_encode_msg(&sb, "big.one", 7, UINT64_MAX, payload, plen);
    /* In 64 KiB reads, as a socket would deliver it. */
    for (size_t off = 0; off < sb.size; off += 65536) {
        size_t n = sb.size - off < 65536 ? sb.size - off : 65536;

        ck_assert_int_eq(link_decoder_feed(d, sb.data + off, n, &err), 0);
        if (off + n < sb.size) {
            ck_assert_int_eq(link_decoder_next(d, &f, &err), 0);
            ck_assert_uint_eq(link_decoder_pending(d), off + n);
        }
    }
    ck_assert_int_eq(link_decoder_next(d, &f, &err), 1);
    ck_assert_int_eq(f.type, LINK_MSG);
    ck_assert_uint_eq(f.seq, UINT64_MAX);
    assert_cstr(f.topic, "big.one");
    assert_view(f.payload, payload, plen);
    mem_free(payload);
    finish(d, &sb);
}

END_TEST

START_TEST(ping_pong_err)
{
    static const uint64_t tokens[] = {0, 127, 128, UINT32_MAX, UINT64_MAX};
    msgpack_sbuffer sb;
    struct link_frame f;
    struct link_decoder *d;

    for (size_t i = 0; i < sizeof(tokens) / sizeof(tokens[0]); i++) {
        msgpack_sbuffer_init(&sb);
        link_encode_ping(&sb, tokens[i]);
        d = decode_one(&sb, 1024, &f);
        ck_assert_int_eq(f.type, LINK_PING);
        ck_assert_uint_eq(f.token, tokens[i]);
        finish(d, &sb);

        msgpack_sbuffer_init(&sb);
        link_encode_pong(&sb, tokens[i]);
        d = decode_one(&sb, 1024, &f);
        ck_assert_int_eq(f.type, LINK_PONG);
        ck_assert_uint_eq(f.token, tokens[i]);
        finish(d, &sb);
    }
    msgpack_sbuffer_init(&sb);
    link_encode_err(&sb, "too_large", "frame too large");
    d = decode_one(&sb, 1024, &f);
    ck_assert_int_eq(f.type, LINK_ERR);
    assert_cstr(f.code, "too_large");
    assert_cstr(f.text, "frame too large");
    finish(d, &sb);

    msgpack_sbuffer_init(&sb);
    link_encode_err(&sb, "", "");
    d = decode_one(&sb, 1024, &f);
    assert_cstr(f.code, "");
    assert_cstr(f.text, "");
    ck_assert(!f.has_topic);
    finish(d, &sb);

    msgpack_sbuffer_init(&sb);
    link_encode_err_topic(&sb, "too_many_subscriptions", "limit", "mail.user.*.inbox", 17);
    d = decode_one(&sb, 1024, &f);
    assert_cstr(f.code, "too_many_subscriptions");
    ck_assert(f.has_topic);
    assert_cstr(f.topic, "mail.user.*.inbox");
    finish(d, &sb);
}

END_TEST

/* Frames of the first release, without the optional trailing fields, still decode. */
START_TEST(optional_fields_absent)
{
    static const uint8_t welcome[] = {0x94, 0x02, 0x01, 0xa1, 'b', 0x07};
    static const uint8_t err[] = {0x93, 0x0a, 0xa1, 'c', 0xa1, 't'};
    struct link_decoder *d = link_decoder_new(64);
    struct link_frame f;
    const char *e = NULL;

    ck_assert_int_eq(link_decoder_feed(d, welcome, sizeof(welcome), &e), 0);
    ck_assert_int_eq(link_decoder_feed(d, err, sizeof(err), &e), 0);
    ck_assert_int_eq(link_decoder_next(d, &f, &e), 1);
    ck_assert_int_eq(f.type, LINK_WELCOME);
    ck_assert_uint_eq(f.epoch, 7);
    ck_assert(!f.has_max_subscriptions);
    ck_assert_int_eq(link_decoder_next(d, &f, &e), 1);
    ck_assert_int_eq(f.type, LINK_ERR);
    ck_assert(!f.has_topic);
    ck_assert_uint_eq(f.topic.len, 0);
    link_decoder_free(d);
}

END_TEST

/* A limit raised between frames (the broker after HELLO) admits the larger frame. */
START_TEST(limit_raised_between_frames)
{
    msgpack_sbuffer sb;
    struct link_decoder *d = link_decoder_new(32);
    struct link_frame f;
    char payload[100];
    const char *e = NULL;

    memset(payload, 'x', sizeof(payload));
    msgpack_sbuffer_init(&sb);
    link_encode_ping(&sb, 1);
    ck_assert_int_eq(link_decoder_feed(d, sb.data, sb.size, &e), 0);
    ck_assert_int_eq(link_decoder_next(d, &f, &e), 1);
    link_decoder_set_max(d, 4096);
    msgpack_sbuffer_clear(&sb);
    link_encode_pub(&sb, "a.b", 3, payload, sizeof(payload), false, 0);
    ck_assert_int_eq(link_decoder_feed(d, sb.data, sb.size, &e), 0);
    ck_assert_int_eq(link_decoder_next(d, &f, &e), 1);
    ck_assert_uint_eq(f.payload.len, sizeof(payload));
    link_decoder_free(d);
    msgpack_sbuffer_destroy(&sb);
}

END_TEST

START_TEST(stats_and_statsr)
{
    static const char text[] = "connections 3\nsubscriptions 7\n";
    msgpack_sbuffer sb;
    struct link_frame f;
    struct link_decoder *d;

    msgpack_sbuffer_init(&sb);
    link_encode_stats(&sb);
    ck_assert_uint_eq(sb.size, 2);
    d = decode_one(&sb, 1024, &f);
    ck_assert_int_eq(f.type, LINK_STATS);
    ck_assert_uint_eq(f.text.len, 0);
    finish(d, &sb);

    msgpack_sbuffer_init(&sb);
    link_encode_statsr(&sb, text, strlen(text));
    d = decode_one(&sb, 1024, &f);
    ck_assert_int_eq(f.type, LINK_STATSR);
    assert_cstr(f.text, text);
    finish(d, &sb);

    msgpack_sbuffer_init(&sb);
    link_encode_statsr(&sb, "", 0);
    d = decode_one(&sb, 1024, &f);
    assert_cstr(f.text, "");
    finish(d, &sb);
}

END_TEST

START_TEST(payload_as_str_accepted)
{
    /* [7, "t", 5, "hi"]: MSG whose payload is a str, not a bin. */
    static const unsigned char msg[] = {0x94, 0x07, 0xa1, 't', 0x05, 0xa2, 'h', 'i'};
    /* [5, "t", "{}", 9] with non-canonical int8 and str8 encodings. */
    static const unsigned char pub[] = {0x94, 0x05, 0xd9, 0x01, 't', 0xa2, '{', '}', 0xd0, 0x09};
    struct link_decoder *d = link_decoder_new(1024);
    struct link_frame f;
    const char *err = NULL;

    ck_assert_int_eq(link_decoder_feed(d, msg, sizeof(msg), &err), 0);
    ck_assert_int_eq(link_decoder_feed(d, pub, sizeof(pub), &err), 0);
    ck_assert_int_eq(link_decoder_next(d, &f, &err), 1);
    ck_assert_int_eq(f.type, LINK_MSG);
    ck_assert_uint_eq(f.seq, 5);
    assert_cstr(f.payload, "hi");
    ck_assert_int_eq(link_decoder_next(d, &f, &err), 1);
    ck_assert_int_eq(f.type, LINK_PUB);
    assert_cstr(f.topic, "t");
    assert_cstr(f.payload, "{}");
    ck_assert(f.has_req_id);
    ck_assert_uint_eq(f.req_id, 9);
    ck_assert_int_eq(link_decoder_next(d, &f, &err), 0);
    link_decoder_free(d);
}

END_TEST

START_TEST(type_names)
{
    ck_assert_str_eq(link_type_name(LINK_HELLO), "HELLO");
    ck_assert_str_eq(link_type_name(LINK_PUBACK), "PUBACK");
    ck_assert_str_eq(link_type_name(LINK_ERR), "ERR");
    ck_assert_str_eq(link_type_name(0), "UNKNOWN");
    ck_assert_str_eq(link_type_name(LINK_STATS), "STATS");
    ck_assert_str_eq(link_type_name(LINK_STATSR), "STATSR");
    ck_assert_str_eq(link_type_name(LINK_HISTORY), "HISTORY");
    ck_assert_str_eq(link_type_name(LINK_HISTR), "HISTR");
    ck_assert_str_eq(link_type_name(15), "UNKNOWN");
    ck_assert_str_eq(link_type_name(-1), "UNKNOWN");
}

END_TEST

/* ---------------------------------------------------------------------------
 * Streams.
 */

static void reencode_welcome(msgpack_sbuffer *sb, const struct link_frame *f, const char *node)
{
    char *h;

    if (!f->has_history_epoch) {
        link_encode_welcome(sb, node, f->epoch, f->max_subscriptions);
        return;
    }
    h = mem_strndup(f->history_epoch.ptr ? f->history_epoch.ptr : "", f->history_epoch.len);
    link_encode_welcome_epoch(sb, node, f->epoch, f->max_subscriptions, h);
    mem_free(h);
}

static void reencode_history(msgpack_sbuffer *sb, const struct link_frame *f)
{
    struct link_history_req q = {f->req_id, f->topic,    f->history_epoch, f->has_history_epoch,
                                 f->after,  f->has_after};
    struct link_history_reply r = {f->req_id, f->topic,     f->history_epoch,
                                   f->head,   f->recovered, f->count};

    if (f->type == LINK_HISTORY)
        link_encode_history(sb, &q);
    else
        link_encode_histr(sb, &r);
}

/* Re-encodes a decoded frame with the encoders (strings copied to C strings). */
static void reencode(msgpack_sbuffer *sb, const struct link_frame *f)
{
    char *a = mem_strndup(f->role.ptr ? f->role.ptr : "", f->role.len);
    char *b = mem_strndup(f->node.ptr ? f->node.ptr : "", f->node.len);
    char *c = mem_strndup(f->secret.ptr ? f->secret.ptr : "", f->secret.len);
    char *e = mem_strndup(f->code.ptr ? f->code.ptr : "", f->code.len);
    char *t = mem_strndup(f->text.ptr ? f->text.ptr : "", f->text.len);

    switch (f->type) {
    case LINK_HELLO:
        link_encode_hello(sb, a, b, f->has_secret ? c : NULL);
        break;
    case LINK_WELCOME:
        reencode_welcome(sb, f, b);
        break;
    case LINK_SUB:
        link_encode_sub(sb, f->topic.ptr, f->topic.len);
        break;
    case LINK_UNSUB:
        link_encode_unsub(sb, f->topic.ptr, f->topic.len);
        break;
    case LINK_PUB:
        link_encode_pub(sb, f->topic.ptr, f->topic.len, f->payload.ptr, f->payload.len,
                        f->has_req_id, f->req_id);
        break;
    case LINK_PUBACK:
        link_encode_puback(sb, f->req_id, f->receivers, f->seq);
        break;
    case LINK_MSG:
        link_encode_msg(sb, f->topic.ptr, f->topic.len, f->seq, f->payload.ptr, f->payload.len);
        break;
    case LINK_PING:
        link_encode_ping(sb, f->token);
        break;
    case LINK_PONG:
        link_encode_pong(sb, f->token);
        break;
    case LINK_ERR:
        if (f->has_topic)
            link_encode_err_topic(sb, e, t, f->topic.ptr, f->topic.len);
        else
            link_encode_err(sb, e, t);
        break;
    case LINK_STATS:
        link_encode_stats(sb);
        break;
    case LINK_STATSR:
        link_encode_statsr(sb, f->text.ptr, f->text.len);
        break;
    case LINK_HISTORY:
    case LINK_HISTR:
        reencode_history(sb, f);
        break;
    }
    mem_free(a);
    mem_free(b);
    mem_free(c);
    mem_free(e);
    mem_free(t);
}

/* Every type, edge values, and one payload larger than the 4 KiB start buffer. */
static void build_stream(msgpack_sbuffer *sb, size_t *nframes)
{
    static char big[5000];

    memset(big, 'p', sizeof(big));
    *nframes = 0;
    for (int round = 0; round < 3; round++) {
        uint64_t v = round == 0 ? 0 : round == 1 ? 300 : UINT64_MAX;

        link_encode_hello(sb, "edge", "n1", round == 1 ? NULL : "pw");
        link_encode_welcome(sb, "b", v, v);
        link_encode_sub(sb, "a.*.c", 5);
        link_encode_unsub(sb, "a.>", 3);
        link_encode_pub(sb, "a.b", 3, "data", round == 0 ? 0 : 4, round != 1, v);
        link_encode_puback(sb, v, 3, v);
        link_encode_msg(sb, "a.b", 3, v, "payload", 7);
        link_encode_ping(sb, v);
        link_encode_pong(sb, v);
        link_encode_err(sb, "code", round == 2 ? "" : "some text");
        link_encode_err_topic(sb, "too_many_subscriptions", "t", "a.>", 3);
        link_encode_stats(sb);
        link_encode_statsr(sb, "a 1\n", round == 0 ? 0 : 4);
        link_encode_welcome_epoch(sb, "b", v, v, round == 0 ? "" : "0123456789abcdef");
        link_encode_history(
            sb, &(struct link_history_req){v, {"a.b", 3}, {"e", 1}, round != 1, v, round != 2});
        link_encode_histr(
            sb, &(struct link_history_reply){v, {"a.b", 3}, {"e", round}, v, round == 1, v});
        *nframes += 16;
    }
    link_encode_msg(sb, "big", 3, 1, big, sizeof(big));
    link_encode_ping(sb, 42);
    *nframes += 2;
}

/* Takes every complete frame, re-encoding each into out; returns the count. */
static size_t drain(struct link_decoder *d, msgpack_sbuffer *out)
{
    struct link_frame f;
    const char *err = NULL;
    size_t n = 0;
    int rc;

    while ((rc = link_decoder_next(d, &f, &err)) == 1) {
        reencode(out, &f);
        n++;
    }
    ck_assert_msg(rc == 0, "next returned %d: %s", rc, err ? err : "");
    return n;
}

static void assert_same_stream(const msgpack_sbuffer *a, const msgpack_sbuffer *b)
{
    ck_assert_uint_eq(a->size, b->size);
    ck_assert(memcmp(a->data, b->data, a->size) == 0);
}

START_TEST(every_split_point)
{
    msgpack_sbuffer in, out;
    size_t nframes;

    msgpack_sbuffer_init(&in);
    build_stream(&in, &nframes);
    for (size_t i = 0; i <= in.size; i++) {
        struct link_decoder *d = link_decoder_new(64 * 1024);
        const char *err = NULL;
        size_t got;

        msgpack_sbuffer_init(&out);
        ck_assert_int_eq(link_decoder_feed(d, in.data, i, &err), 0);
        got = drain(d, &out);
        ck_assert_int_eq(link_decoder_feed(d, in.data + i, in.size - i, &err), 0);
        got += drain(d, &out);
        ck_assert_uint_eq(got, nframes);
        ck_assert_uint_eq(link_decoder_pending(d), 0);
        assert_same_stream(&in, &out);
        msgpack_sbuffer_destroy(&out);
        link_decoder_free(d);
    }
    msgpack_sbuffer_destroy(&in);
}

END_TEST

START_TEST(byte_by_byte)
{
    msgpack_sbuffer in, out;
    struct link_decoder *d = link_decoder_new(64 * 1024);
    size_t nframes, got = 0, taken = 0;

    msgpack_sbuffer_init(&in);
    msgpack_sbuffer_init(&out);
    build_stream(&in, &nframes);
    for (size_t i = 0; i < in.size; i++) {
        const char *err = NULL;

        ck_assert_int_eq(link_decoder_feed(d, in.data + i, 1, &err), 0);
        got += drain(d, &out);
        taken = out.size;
        /* Whatever was not returned as frames is still buffered. */
        ck_assert_uint_eq(link_decoder_pending(d), i + 1 - taken);
    }
    ck_assert_uint_eq(got, nframes);
    assert_same_stream(&in, &out);
    msgpack_sbuffer_destroy(&in);
    msgpack_sbuffer_destroy(&out);
    link_decoder_free(d);
}

END_TEST

START_TEST(many_frames_in_one_feed_under_small_limit)
{
    /* 1000 PINGs (10 bytes each) in one read, far over a 64-byte max_frame. */
    msgpack_sbuffer in, out;
    struct link_decoder *d = link_decoder_new(64);
    const char *err = NULL;

    msgpack_sbuffer_init(&in);
    msgpack_sbuffer_init(&out);
    for (uint64_t i = 0; i < 1000; i++)
        link_encode_ping(&in, UINT64_MAX - i);
    ck_assert_int_eq(link_decoder_feed(d, in.data, in.size, &err), 0);
    ck_assert_uint_eq(link_decoder_pending(d), in.size);
    ck_assert_uint_eq(drain(d, &out), 1000);
    assert_same_stream(&in, &out);
    msgpack_sbuffer_destroy(&in);
    msgpack_sbuffer_destroy(&out);
    link_decoder_free(d);
}

END_TEST

START_TEST(frames_before_malformed_are_delivered)
{
    /* [8, 1] then a map: PING comes out, then the failure, sticky. */
    static const unsigned char bytes[] = {0x92, 0x08, 0x01, 0x81, 0x01, 0x02};
    struct link_decoder *d = link_decoder_new(64);
    struct link_frame f;
    const char *err = NULL;

    ck_assert_int_eq(link_decoder_feed(d, bytes, sizeof(bytes), &err), 0);
    ck_assert_int_eq(link_decoder_next(d, &f, &err), 1);
    ck_assert_int_eq(f.type, LINK_PING);
    ck_assert_uint_eq(f.token, 1);
    ck_assert_int_eq(link_decoder_next(d, &f, &err), -1);
    ck_assert_str_eq(err, "frame is not an array");
    link_decoder_free(d);
}

END_TEST

/* ---------------------------------------------------------------------------
 * Malformed input: hand-built msgpack. feed_rc is link_decoder_feed's result;
 * when it is 0, result is what link_decoder_next returns after every frame
 * before it (there are none in this table).
 */

struct bad_case {
    const char *name;
    unsigned char bytes[16];
    size_t len;
    size_t max_frame;
    int feed_rc;
    int result;
    const char *err;
};

static const struct bad_case bad_cases[] = {
    {"non-array", {0x01}, 1, 64, 0, -1, "frame is not an array"},
    {"map", {0x81, 0x01, 0x02}, 3, 64, 0, -1, "frame is not an array"},
    {"empty array", {0x90}, 1, 64, 0, -1, "empty frame"},
    {"unknown type 0", {0x91, 0x00}, 2, 64, 0, -1, "unknown frame type"},
    {"unknown type 15", {0x92, 0x0f, 0x01}, 3, 64, 0, -1, "unknown frame type"},
    {"unknown type 255", {0x91, 0xcc, 0xff}, 3, 64, 0, -1, "unknown frame type"},
    {"type as string",
     {0x92, 0xa1, '8', 0x01},
     4,
     64,
     0,
     -1,
     "frame type is not an unsigned integer"},
    {"negative type", {0x92, 0xf8, 0x01}, 3, 64, 0, -1, "frame type is not an unsigned integer"},
    {"SUB with int pattern", {0x92, 0x03, 0x05}, 3, 64, 0, -1, "expected string"},
    {"SUB with bin pattern", {0x92, 0x03, 0xc4, 0x01, 'a'}, 5, 64, 0, -1, "expected string"},
    {"PUB with 2 elements", {0x92, 0x05, 0xa1, 'a'}, 4, 64, 0, -1, "wrong element count"},
    {"PUB with 5 elements",
     {0x95, 0x05, 0xa1, 'a', 0xc4, 0x01, 'x', 0xc0, 0xc0},
     9,
     64,
     0,
     -1,
     "wrong element count"},
    {"6 elements", {0x96, 0x08, 0x01, 0x01, 0x01, 0x01, 0x01}, 7, 64, 0, -1, "wrong element count"},
    {"MSG seq negative",
     {0x94, 0x07, 0xa1, 'a', 0xff, 0xc4, 0x00},
     7,
     64,
     0,
     -1,
     "negative integer"},
    {"MSG ext payload",
     {0x94, 0x07, 0xa1, 'a', 0x01, 0xd4, 0x01, 0x00},
     8,
     64,
     0,
     -1,
     "expected bin or string payload"},
    {"PING float token",
     {0x92, 0x08, 0xca, 0x3f, 0x80, 0x00, 0x00},
     7,
     64,
     0,
     -1,
     "expected unsigned integer"},
    {"HELLO secret as int",
     {0x95, 0x01, 0x01, 0xa4, 'e', 'd', 'g', 'e', 0xa2, 'n', '1', 0x2a},
     12,
     64,
     0,
     -1,
     "expected string"},
    {"PUB topic nil", {0x94, 0x05, 0xc0, 0xc4, 0x00, 0xc0}, 6, 64, 0, -1, "expected string"},
    {"STATS with an element", {0x92, 0x0b, 0xc0}, 3, 64, 0, -1, "wrong element count"},
    {"WELCOME without epoch", {0x93, 0x02, 0x01, 0xa1, 'b'}, 5, 64, 0, -1, "wrong element count"},
    {"ERR with 4 fields",
     {0x95, 0x0a, 0xa1, 'c', 0xa1, 't', 0xa1, 'p', 0xc0},
     9,
     64,
     0,
     -1,
     "wrong element count"},
    {"ERR topic as int", {0x94, 0x0a, 0xa1, 'c', 0xa1, 't', 0x01}, 7, 64, 0, -1, "expected string"},
    {"STATSR text as int", {0x92, 0x0c, 0x01}, 3, 64, 0, -1, "expected string"},
    /* [13, 1, "t", nil]: HISTORY without after. */
    {"HISTORY missing after",
     {0x94, 0x0d, 0x01, 0xa1, 't', 0xc0},
     6,
     64,
     0,
     -1,
     "wrong element count"},
    {"HISTORY topic nil", {0x95, 0x0d, 0x01, 0xc0, 0xc0, 0xc0}, 6, 64, 0, -1, "expected string"},
    {"HISTORY epoch as int",
     {0x95, 0x0d, 0x01, 0xa1, 't', 0x01, 0xc0},
     7,
     64,
     0,
     -1,
     "expected string"},
    {"HISTORY after negative",
     {0x95, 0x0d, 0x01, 0xa1, 't', 0xc0, 0xff},
     7,
     64,
     0,
     -1,
     "negative integer"},
    /* [14, 1, "t", "e", 3, 1, 0]: recovered must be a boolean. */
    {"HISTR recovered as int",
     {0x97, 0x0e, 0x01, 0xa1, 't', 0xa1, 'e', 0x03, 0x01, 0x00},
     10,
     64,
     0,
     -1,
     "expected boolean"},
    {"HISTR epoch nil",
     {0x97, 0x0e, 0x01, 0xa1, 't', 0xc0, 0x03, 0xc3, 0x00},
     9,
     64,
     0,
     -1,
     "expected string"},
    {"HISTR without count",
     {0x96, 0x0e, 0x01, 0xa1, 't', 0xa1, 'e', 0x03, 0xc3},
     9,
     64,
     0,
     -1,
     "wrong element count"},
    {"8 elements", {0x98, 0x0e, 1, 1, 1, 1, 1, 1, 1}, 9, 64, 0, -1, "wrong element count"},
    {"PUBACK missing field", {0x93, 0x06, 0x01, 0x02}, 4, 64, 0, -1, "wrong element count"},
    {"nested array", {0x92, 0x03, 0x91, 0x01}, 4, 64, 0, -1, "nested array or map"},
    /* A 32 GiB zone allocation if msgpack-c saw it (ASan would abort). */
    {"nested huge array32",
     {0x92, 0x03, 0xdd, 0x3f, 0xff, 0xff, 0xff},
     7,
     64,
     0,
     -1,
     "nested array or map"},
    {"top-level huge array32", {0xdd, 0xff, 0xff, 0xff, 0xff}, 5, 64, 0, -1, "wrong element count"},
    {"reserved byte 0xc1", {0x92, 0x08, 0xc1}, 3, 64, 0, -1, "invalid msgpack"},
    /* [5, "abc", bin "xyz", nil] is 12 bytes. */
    {"oversize complete frame",
     {0x94, 0x05, 0xa3, 'a', 'b', 'c', 0xc4, 0x03, 'x', 'y', 'z', 0xc0},
     12,
     11,
     -1,
     -1,
     "frame too large"},
    /* [5, "a", bin32 of 65536 bytes...: the header alone passes max_frame. */
    {"oversize incomplete frame rejected by feed",
     {0x94, 0x05, 0xa1, 'a', 0xc6, 0x00, 0x01, 0x00, 0x00, 'x', 'x'},
     11,
     1024,
     -1,
     -1,
     "frame too large"},
    {"truncated frame needs more", {0x94, 0x05, 0xa1}, 3, 64, 0, 0, NULL},
    {"truncated str body needs more", {0x92, 0x03, 0xa5, 'a', 'b'}, 5, 64, 0, 0, NULL},
};

START_TEST(malformed_table)
{
    const struct bad_case *c = &bad_cases[_i];
    struct link_decoder *d = link_decoder_new(c->max_frame);
    struct link_frame f;
    const char *err = NULL;
    int rc = link_decoder_feed(d, c->bytes, c->len, &err);

    ck_assert_msg(rc == c->feed_rc, "%s: feed returned %d", c->name, rc);
    if (rc == 0)
        rc = link_decoder_next(d, &f, &err);
    ck_assert_msg(rc == c->result, "%s: got %d (%s)", c->name, rc, err ? err : "no error");
    if (c->err != NULL)
        ck_assert_str_eq(err, c->err);
    if (c->result == 0)
        ck_assert_uint_eq(link_decoder_pending(d), c->len);
    /* After -1 the decoder is unusable: only freed. */
    link_decoder_free(d);
}

END_TEST

/* ---------------------------------------------------------------------------
 * max_frame.
 */

START_TEST(frame_exactly_at_limit)
{
    msgpack_sbuffer sb;
    struct link_decoder *d;
    struct link_frame f;
    const char *err = NULL;

    msgpack_sbuffer_init(&sb);
    link_encode_msg(&sb, "t", 1, 7, "0123456789", 10);
    d = link_decoder_new(sb.size);
    ck_assert_int_eq(link_decoder_feed(d, sb.data, sb.size, &err), 0);
    ck_assert_int_eq(link_decoder_next(d, &f, &err), 1);
    assert_view(f.payload, "0123456789", 10);
    link_decoder_free(d);

    d = link_decoder_new(sb.size - 1);
    ck_assert_int_eq(link_decoder_feed(d, sb.data, sb.size, &err), -1);
    ck_assert_str_eq(err, "frame too large");
    link_decoder_free(d);
    msgpack_sbuffer_destroy(&sb);
}

END_TEST

START_TEST(oversize_rejected_before_buffering)
{
    /* A real 1 MiB MSG fed byte by byte to a 4 KiB decoder: feed fails at the
     * last byte of the bin32 header, with only the header buffered. */
    size_t plen = 1024 * 1024;
    char *payload = mem_calloc(1, plen);
    msgpack_sbuffer sb;
    struct link_decoder *d = link_decoder_new(4096);
    const char *err = NULL;
    size_t i;
    int rc = 0;

    msgpack_sbuffer_init(&sb);
    link_encode_msg(&sb, "t", 1, 1, payload, plen);
    /* 94 07 a1 't' 01 c6 00 10 00 00: the header ends at byte 10. */
    for (i = 0; i < sb.size && rc == 0; i++)
        rc = link_decoder_feed(d, sb.data + i, 1, &err);
    ck_assert_int_eq(rc, -1);
    ck_assert_uint_eq(i, 10);
    ck_assert_str_eq(err, "frame too large");
    ck_assert_uint_le(link_decoder_pending(d), 4096);
    link_decoder_free(d);
    mem_free(payload);
    msgpack_sbuffer_destroy(&sb);
}

END_TEST

START_TEST(oversize_in_one_feed_after_good_frames)
{
    msgpack_sbuffer sb;
    struct link_decoder *d = link_decoder_new(32);
    const char *err = NULL;
    char payload[40] = {0};

    msgpack_sbuffer_init(&sb);
    link_encode_ping(&sb, 1);
    link_encode_pub(&sb, "t", 1, payload, sizeof(payload), false, 0);
    ck_assert_int_eq(link_decoder_feed(d, sb.data, sb.size, &err), -1);
    ck_assert_str_eq(err, "frame too large");
    link_decoder_free(d);
    msgpack_sbuffer_destroy(&sb);
}

END_TEST

START_TEST(big_frame_then_small_frames)
{
    /* After a frame near the limit, the decoder keeps working (its buffer
     * is given back once drained). */
    size_t plen = 512 * 1024;
    char *payload = mem_calloc(1, plen);
    msgpack_sbuffer sb, out;
    struct link_decoder *d = link_decoder_new(BIG_LIMIT);
    const char *err = NULL;

    msgpack_sbuffer_init(&sb);
    msgpack_sbuffer_init(&out);
    link_encode_pub(&sb, "t", 1, payload, plen, true, 5);
    ck_assert_int_eq(link_decoder_feed(d, sb.data, sb.size, &err), 0);
    ck_assert_uint_eq(drain(d, &out), 1);
    assert_same_stream(&sb, &out);
    msgpack_sbuffer_clear(&sb);
    msgpack_sbuffer_clear(&out);
    link_encode_ping(&sb, 9);
    link_encode_sub(&sb, "x", 1);
    ck_assert_int_eq(link_decoder_feed(d, sb.data, sb.size, &err), 0);
    ck_assert_uint_eq(drain(d, &out), 2);
    assert_same_stream(&sb, &out);
    link_decoder_free(d);
    mem_free(payload);
    msgpack_sbuffer_destroy(&sb);
    msgpack_sbuffer_destroy(&out);
}

END_TEST

static Suite *link_codec_suite(void)
{
    Suite *s = suite_create("link_codec");
    TCase *rt = tcase_create("roundtrip");
    TCase *stream = tcase_create("stream");
    TCase *bad = tcase_create("malformed");
    TCase *limit = tcase_create("max_frame");

    tcase_add_test(rt, hello_with_and_without_secret);
    tcase_add_test(rt, welcome_edge_epochs);
    tcase_add_test(rt, welcome_history_epoch);
    tcase_add_test(rt, history_with_and_without_position);
    tcase_add_test(rt, histr_recovered_and_not);
    tcase_add_test(rt, sub_unsub_patterns);
    tcase_add_test(rt, pub_req_id_and_payloads);
    tcase_add_test(rt, puback_edge_values);
    tcase_add_test(rt, msg_empty_payload);
    tcase_add_test(rt, msg_one_mib_payload_under_two_mib_limit);
    tcase_add_test(rt, ping_pong_err);
    tcase_add_test(rt, optional_fields_absent);
    tcase_add_test(rt, limit_raised_between_frames);
    tcase_add_test(rt, stats_and_statsr);
    tcase_add_test(rt, payload_as_str_accepted);
    tcase_add_test(rt, type_names);
    suite_add_tcase(s, rt);

    tcase_add_test(stream, every_split_point);
    tcase_add_test(stream, byte_by_byte);
    tcase_add_test(stream, many_frames_in_one_feed_under_small_limit);
    tcase_add_test(stream, frames_before_malformed_are_delivered);
    tcase_set_timeout(stream, 60);
    suite_add_tcase(s, stream);

    tcase_add_loop_test(bad, malformed_table, 0, sizeof(bad_cases) / sizeof(bad_cases[0]));
    suite_add_tcase(s, bad);

    tcase_add_test(limit, frame_exactly_at_limit);
    tcase_add_test(limit, oversize_rejected_before_buffering);
    tcase_add_test(limit, oversize_in_one_feed_after_good_frames);
    tcase_add_test(limit, big_frame_then_small_frames);
    suite_add_tcase(s, limit);
    return s;
}

int main(void)
{
    return check_run_suite(link_codec_suite());
}

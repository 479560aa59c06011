/*
 * link_codec.c - link frames <-> msgpack: encoders over msgpack_sbuffer and a
 * streaming decoder over msgpack-c's msgpack_unpacker. Pure code, no sockets.
 *
 * Decoder data structure: one msgpack_unpacker (its buffer starts at
 * DECODER_INIT_BUFFER bytes, because a broker holds one decoder per link),
 * one msgpack_unpacked holding the zone of the frame last returned, and a
 * small shallow *scanner* that every fed byte passes through before it is
 * copied into the unpacker.
 *
 * Why a scanner in front of msgpack-c: its C unpacker has no limits. An array
 * or map header makes it allocate count * sizeof(msgpack_object) from its zone
 * before any element has arrived, so 5 bytes (dd 3f ff ff ff) ask malloc for
 * 32 GiB; and it cannot tell how big the frame it is waiting for will be. The
 * scanner reads only msgpack headers, never values, and checks what the link
 * grammar allows of every frame: the top level is an array of at most
 * LINK_MAX_ELEMS elements, no element is an array or map, and the frame's size
 * (headers plus *declared* str/bin/ext lengths) stays within max_frame. So an
 * oversize frame is rejected by link_decoder_feed() as soon as the header that
 * makes it too big arrives, before its bytes are buffered, and the unpacker
 * never grows past max_frame plus the complete frames not yet taken.
 *
 * Invariants:
 *  - The scanner has seen every byte in the unpacker; frames_ready counts the
 *    complete frames among them not yet returned, and msgpack_unpacker_next()
 *    runs only when frames_ready > 0, so the unpacker never holds a partially
 *    parsed frame (parsed == 0 between calls) and never parses a frame the
 *    scanner failed. Scanner and unpacker agreeing on frame boundaries is
 *    asserted (the fuzz target exercises it).
 *  - A frame's header bytes count toward max_frame from their first byte, so
 *    the bytes buffered for an incomplete frame never exceed max_frame.
 *  - Views in a returned link_frame point into the unpacked zone (msgpack-c's
 *    str/bin objects reference its buffer, kept alive by the zone). The zone is
 *    destroyed at the start of the next link_decoder_next()/feed() call, which
 *    is the lifetime the header promises; nothing else invalidates them.
 *  - Failures are sticky. A size failure is reported by feed() at once (the
 *    header's contract); a grammar failure the scanner finds is reported by
 *    next() after the complete frames before it, so a stream is delivered up
 *    to the bad frame and never partially past it.
 *
 * Frame grammar: one table, grammar[], one row per type mirroring the wire
 * layout in link_codec.h (change both together), drives the element checks
 * after msgpack-c has decoded a frame.
 *
 * Rejected: checking msgpack_unpacker_message_size() after each copy. It
 * counts complete frames not yet taken as well, so one large read of many
 * small frames would be mistaken for one oversize frame, and it does nothing
 * about the container-count allocations above. Also rejected: a second
 * buffer in front of the unpacker (one copy of each byte is enough).
 */
#include "common/link_codec.h"

#include <assert.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/mem.h"

/* Unpacker buffer at start; idle links keep only this much. */
#define DECODER_INIT_BUFFER 4096
/* A drained decoder whose buffer grew past this gets a fresh small one. */
#define DECODER_SHRINK_ABOVE (64 * 1024)
/* The longest frame type (HISTR) has 7 elements. */
#define LINK_MAX_ELEMS 7

enum head_kind {
    HEAD_SCALAR, /* value fits the header, or a str/bin/ext body follows */
    HEAD_ARRAY,
    HEAD_MAP,
    HEAD_INVALID, /* 0xc1, never used by msgpack */
};

struct link_decoder {
    msgpack_unpacker unpacker;
    msgpack_unpacked cur; /* zone of the frame last returned, or empty */
    size_t max_frame;
    size_t frames_ready; /* complete frames scanned, not yet returned */
    const char *err;     /* first failure, sticky */
    bool size_failed;    /* err came from the max_frame check */
    bool dead;           /* a call returned -1: refuse everything */
    /* Scanner state: position inside the current frame. */
    bool in_frame;
    uint8_t head[9];  /* the msgpack header being collected */
    uint8_t have;     /* bytes of head collected */
    uint8_t need;     /* header length, known from head[0] */
    uint8_t elems;    /* elements of the current frame still to come */
    uint64_t body;    /* str/bin/ext body bytes still to skip */
    size_t frame_len; /* current frame: headers plus declared bodies */
};

/* ---------------------------------------------------------------------------
 * Scanner: msgpack headers only (see the top comment).
 */

static enum head_kind head_kind(uint8_t b)
{
    if ((b >= 0x80 && b <= 0x8f) || b == 0xde || b == 0xdf)
        return HEAD_MAP;
    if ((b >= 0x90 && b <= 0x9f) || b == 0xdc || b == 0xdd)
        return HEAD_ARRAY;
    return b == 0xc1 ? HEAD_INVALID : HEAD_SCALAR;
}

/* Header length in bytes, from its first byte (format byte plus fixed part). */
static uint8_t head_len(uint8_t b)
{
    static const uint8_t len_c4_df[] = {
        2, 3, 5,       /* c4-c6 bin8/16/32 */
        3, 4, 6,       /* c7-c9 ext8/16/32: length, then the ext type */
        5, 9,          /* ca-cb float32/64 */
        2, 3, 5, 9,    /* cc-cf uint8..64 */
        2, 3, 5, 9,    /* d0-d3 int8..64 */
        2, 2, 2, 2, 2, /* d4-d8 fixext: the ext type */
        2, 3, 5,       /* d9-db str8/16/32 */
        3, 5, 3, 5,    /* dc-dd array16/32, de-df map16/32 */
    };

    if (b >= 0xc4 && b <= 0xdf)
        return len_c4_df[b - 0xc4];
    return 1;
}

static uint64_t be_uint(const uint8_t *p, int n)
{
    uint64_t v = 0;

    for (int i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

/* For a complete header: an array's element count, else the body length. */
static uint64_t head_value(const uint8_t *h)
{
    uint8_t b = h[0];

    if (b >= 0x90 && b <= 0x9f)
        return b & 0x0f;
    if (b >= 0xa0 && b <= 0xbf)
        return b & 0x1f;
    if (b >= 0xd4 && b <= 0xd8)
        return 1u << (b - 0xd4);
    switch (b) {
    case 0xc4: /* bin8 */
    case 0xc7: /* ext8 */
    case 0xd9: /* str8 */
        return h[1];
    case 0xc5:
    case 0xc8:
    case 0xda:
    case 0xdc: /* array16 */
        return be_uint(h + 1, 2);
    case 0xc6:
    case 0xc9:
    case 0xdb:
    case 0xdd: /* array32 */
        return be_uint(h + 1, 4);
    default:
        return 0;
    }
}

static void scan_fail(struct link_decoder *d, const char *err, bool size)
{
    d->err = err;
    d->size_failed = size;
}

/* Adds n bytes to the current frame unless that takes it past max_frame. */
static bool frame_grow(struct link_decoder *d, uint64_t n)
{
    if (n > d->max_frame - d->frame_len) {
        scan_fail(d, "frame too large", true);
        return false;
    }
    d->frame_len += (size_t)n;
    return true;
}

static void element_done(struct link_decoder *d)
{
    if (d->elems > 0)
        d->elems--;
    if (d->elems == 0) {
        d->in_frame = false;
        d->frame_len = 0;
        d->frames_ready++;
    }
}

/* A frame starts: it must be an array of at most LINK_MAX_ELEMS elements. */
static void frame_head(struct link_decoder *d)
{
    uint64_t count = head_value(d->head);

    if (head_kind(d->head[0]) != HEAD_ARRAY) {
        scan_fail(d, "frame is not an array", false);
        return;
    }
    if (count > LINK_MAX_ELEMS) {
        scan_fail(d, "wrong element count", false);
        return;
    }
    d->in_frame = true;
    d->elems = (uint8_t)count;
    if (count == 0)
        element_done(d);
}

/* An element's header is complete: no containers; its body must fit. */
static void element_head(struct link_decoder *d)
{
    enum head_kind kind = head_kind(d->head[0]);
    uint64_t body;

    if (kind == HEAD_ARRAY || kind == HEAD_MAP) {
        scan_fail(d, "nested array or map", false);
        return;
    }
    if (kind == HEAD_INVALID) {
        scan_fail(d, "invalid msgpack", false);
        return;
    }
    body = head_value(d->head);
    if (!frame_grow(d, body))
        return;
    d->body = body;
    if (body == 0)
        element_done(d);
}

/* Scans p[0..n); returns the bytes accepted (fewer than n only on failure). */
static size_t scan(struct link_decoder *d, const uint8_t *p, size_t n)
{
    size_t i = 0;

    while (i < n && d->err == NULL) {
        if (d->body > 0) {
            size_t k = n - i < d->body ? n - i : (size_t)d->body;

            i += k;
            d->body -= k;
            if (d->body == 0)
                element_done(d);
            continue;
        }
        d->head[d->have++] = p[i++];
        /* Count a header in full at its first byte, so that no byte is
         * buffered before the frame it belongs to is known to fit. */
        if (d->have == 1) {
            d->need = head_len(d->head[0]);
            if (!d->in_frame)
                d->frame_len = 0;
            if (!frame_grow(d, d->need))
                break;
        }
        if (d->have < d->need)
            continue;
        d->have = 0;
        if (d->in_frame)
            element_head(d);
        else
            frame_head(d);
    }
    return i;
}

/* ---------------------------------------------------------------------------
 * Decoder.
 */

static void unpacker_init(struct link_decoder *d)
{
    if (!msgpack_unpacker_init(&d->unpacker, DECODER_INIT_BUFFER)) {
        log_error("oom", "what=msgpack_unpacker");
        abort();
    }
}

struct link_decoder *link_decoder_new(size_t max_frame)
{
    struct link_decoder *d = mem_calloc(1, sizeof(*d));

    d->max_frame = max_frame;
    unpacker_init(d);
    msgpack_unpacked_init(&d->cur);
    return d;
}

void link_decoder_free(struct link_decoder *d)
{
    if (d == NULL)
        return;
    msgpack_unpacked_destroy(&d->cur);
    msgpack_unpacker_destroy(&d->unpacker);
    mem_free(d);
}

static int fail(struct link_decoder *d, const char *why, const char **err)
{
    if (d->err == NULL)
        d->err = why;
    d->dead = true;
    *err = d->err;
    return -1;
}

int link_decoder_feed(struct link_decoder *d, const void *data, size_t len, const char **err)
{
    size_t n;

    if (d->dead)
        return fail(d, d->err, err);
    /* The last frame's views die here, as documented; its zone goes now. */
    msgpack_unpacked_destroy(&d->cur);
    /* A grammar failure is pending for next(): the rest of the stream is moot. */
    if (d->err != NULL)
        return 0;
    n = scan(d, data, len);
    if (d->err != NULL && d->size_failed)
        return fail(d, d->err, err);
    if (n == 0)
        return 0;
    if (!msgpack_unpacker_reserve_buffer(&d->unpacker, n)) {
        log_error("oom", "what=msgpack_unpacker bytes=%zu", n);
        abort();
    }
    memcpy(msgpack_unpacker_buffer(&d->unpacker), data, n);
    msgpack_unpacker_buffer_consumed(&d->unpacker, n);
    return 0;
}

/* A drained decoder gives back a buffer that one big frame made large. */
static void maybe_shrink(struct link_decoder *d)
{
    msgpack_unpacker *u = &d->unpacker;

    if (msgpack_unpacker_message_size(u) != 0 || u->used + u->free <= DECODER_SHRINK_ABOVE)
        return;
    msgpack_unpacker_destroy(u);
    unpacker_init(d);
}

static int decode_frame(const msgpack_object *o, struct link_frame *f, const char **err);

int link_decoder_next(struct link_decoder *d, struct link_frame *out, const char **err)
{
    msgpack_unpack_return r;

    if (d->dead)
        return fail(d, d->err, err);
    msgpack_unpacked_destroy(&d->cur);
    if (d->frames_ready == 0) {
        if (d->err != NULL)
            return fail(d, d->err, err);
        maybe_shrink(d);
        return 0;
    }
    r = msgpack_unpacker_next(&d->unpacker, &d->cur);
    /* The scanner saw a complete frame of scalars; msgpack must agree. */
    assert(r == MSGPACK_UNPACK_SUCCESS);
    if (r != MSGPACK_UNPACK_SUCCESS)
        return fail(d, "invalid msgpack", err);
    if (d->cur.zone == NULL)
        return fail(d, "out of memory", err);
    d->frames_ready--;
    if (decode_frame(&d->cur.data, out, err) < 0)
        return fail(d, *err, err);
    return 1;
}

void link_decoder_set_max(struct link_decoder *d, size_t max_frame)
{
    d->max_frame = max_frame;
}

size_t link_decoder_pending(const struct link_decoder *d)
{
    return msgpack_unpacker_message_size(&d->unpacker);
}

/* ---------------------------------------------------------------------------
 * Frame grammar: element types per frame type.
 */

enum field_kind {
    F_UINT,     /* uint64_t */
    F_OPT_UINT, /* uint64_t, or nil: has flag false */
    F_STR,      /* struct link_str from str */
    F_OPT_STR,  /* struct link_str from str, or nil: has flag false */
    F_PAYLOAD,  /* struct link_str from bin or str */
    F_BOOL,     /* bool from true/false */
};

struct field_spec {
    enum field_kind kind;
    size_t off;     /* of the value in struct link_frame */
    size_t has_off; /* of the bool has_* flag, F_OPT_* only */
};

/*
 * The elements after the type, per frame type: the wire layout in the
 * header. The last nfields - nrequired fields are optional trailing ones
 * (added after the first release of a frame type): a frame may stop before
 * them, and they read as absent (zero, has flag false).
 */
struct frame_spec {
    size_t nfields;
    size_t nrequired;
    struct field_spec fields[LINK_MAX_ELEMS - 1];
};

#define FIELD(kind, name)                                                                          \
    {                                                                                              \
        kind, offsetof(struct link_frame, name), 0                                                 \
    }
#define OPT_FIELD(kind, name, has)                                                                 \
    {                                                                                              \
        kind, offsetof(struct link_frame, name), offsetof(struct link_frame, has)                  \
    }

static const struct frame_spec grammar[] = {
    [LINK_HELLO] = {4,
                    4,
                    {FIELD(F_UINT, version), FIELD(F_STR, role), FIELD(F_STR, node),
                     OPT_FIELD(F_OPT_STR, secret, has_secret)}},
    [LINK_WELCOME] = {5,
                      3,
                      {FIELD(F_UINT, version), FIELD(F_STR, node), FIELD(F_UINT, epoch),
                       OPT_FIELD(F_OPT_UINT, max_subscriptions, has_max_subscriptions),
                       OPT_FIELD(F_OPT_STR, history_epoch, has_history_epoch)}},
    [LINK_SUB] = {1, 1, {FIELD(F_STR, topic)}},
    [LINK_UNSUB] = {1, 1, {FIELD(F_STR, topic)}},
    [LINK_PUB] = {3,
                  3,
                  {FIELD(F_STR, topic), FIELD(F_PAYLOAD, payload),
                   OPT_FIELD(F_OPT_UINT, req_id, has_req_id)}},
    [LINK_PUBACK] = {3, 3, {FIELD(F_UINT, req_id), FIELD(F_UINT, receivers), FIELD(F_UINT, seq)}},
    [LINK_MSG] = {3, 3, {FIELD(F_STR, topic), FIELD(F_UINT, seq), FIELD(F_PAYLOAD, payload)}},
    [LINK_PING] = {1, 1, {FIELD(F_UINT, token)}},
    [LINK_PONG] = {1, 1, {FIELD(F_UINT, token)}},
    [LINK_ERR] = {3,
                  2,
                  {FIELD(F_STR, code), FIELD(F_STR, text), OPT_FIELD(F_OPT_STR, topic, has_topic)}},
    [LINK_STATS] = {0, 0, {{0}}},
    [LINK_STATSR] = {1, 1, {FIELD(F_STR, text)}},
    [LINK_HISTORY] = {4,
                      4,
                      {FIELD(F_UINT, req_id), FIELD(F_STR, topic),
                       OPT_FIELD(F_OPT_STR, history_epoch, has_history_epoch),
                       OPT_FIELD(F_OPT_UINT, after, has_after)}},
    [LINK_HISTR] = {6,
                    6,
                    {FIELD(F_UINT, req_id), FIELD(F_STR, topic), FIELD(F_STR, history_epoch),
                     FIELD(F_UINT, head), FIELD(F_BOOL, recovered), FIELD(F_UINT, count)}},
};

static int want_uint(const msgpack_object *o, uint64_t *out, const char **err)
{
    if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
        *out = o->via.u64;
        return 0;
    }
    *err = o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER ? "negative integer"
                                                      : "expected unsigned integer";
    return -1;
}

static int want_str(const msgpack_object *o, struct link_str *out, const char **err)
{
    if (o->type != MSGPACK_OBJECT_STR) {
        *err = "expected string";
        return -1;
    }
    out->ptr = o->via.str.ptr;
    out->len = o->via.str.size;
    return 0;
}

static int want_payload(const msgpack_object *o, struct link_str *out, const char **err)
{
    if (o->type == MSGPACK_OBJECT_BIN) {
        out->ptr = o->via.bin.ptr;
        out->len = o->via.bin.size;
        return 0;
    }
    if (o->type == MSGPACK_OBJECT_STR)
        return want_str(o, out, err);
    *err = "expected bin or string payload";
    return -1;
}

static int decode_field(const msgpack_object *o, const struct field_spec *spec,
                        struct link_frame *f, const char **err)
{
    char *base = (char *)f;
    bool present = o->type != MSGPACK_OBJECT_NIL;

    switch (spec->kind) {
    case F_UINT:
        return want_uint(o, (uint64_t *)(base + spec->off), err);
    case F_OPT_UINT:
        *(bool *)(base + spec->has_off) = present;
        return present ? want_uint(o, (uint64_t *)(base + spec->off), err) : 0;
    case F_STR:
        return want_str(o, (struct link_str *)(base + spec->off), err);
    case F_OPT_STR:
        *(bool *)(base + spec->has_off) = present;
        return present ? want_str(o, (struct link_str *)(base + spec->off), err) : 0;
    case F_PAYLOAD:
        return want_payload(o, (struct link_str *)(base + spec->off), err);
    case F_BOOL:
        if (o->type != MSGPACK_OBJECT_BOOLEAN) {
            *err = "expected boolean";
            return -1;
        }
        *(bool *)(base + spec->off) = o->via.boolean;
        return 0;
    }
    *err = "unknown field kind";
    return -1;
}

static int decode_frame(const msgpack_object *o, struct link_frame *f, const char **err)
{
    const struct frame_spec *spec;
    const msgpack_object *a;
    uint64_t type;

    memset(f, 0, sizeof(*f));
    if (o->type != MSGPACK_OBJECT_ARRAY) {
        *err = "frame is not an array";
        return -1;
    }
    if (o->via.array.size == 0) {
        *err = "empty frame";
        return -1;
    }
    a = o->via.array.ptr;
    if (want_uint(&a[0], &type, err) < 0) {
        *err = "frame type is not an unsigned integer";
        return -1;
    }
    if (type < LINK_HELLO || type > LINK_HISTR) {
        *err = "unknown frame type";
        return -1;
    }
    spec = &grammar[type];
    if (o->via.array.size < spec->nrequired + 1 || o->via.array.size > spec->nfields + 1) {
        *err = "wrong element count";
        return -1;
    }
    f->type = (enum link_type)type;
    for (size_t i = 0; i + 1 < o->via.array.size; i++) {
        if (decode_field(&a[i + 1], &spec->fields[i], f, err) < 0)
            return -1;
    }
    return 0;
}

/* ---------------------------------------------------------------------------
 * Encoders. msgpack_sbuffer_write fails only when realloc does; like mem.c,
 * that aborts, so encoders return nothing.
 */

static void must(int rc)
{
    if (rc != 0) {
        log_error("oom", "what=msgpack_sbuffer");
        abort();
    }
}

static void begin(msgpack_packer *pk, msgpack_sbuffer *sb, enum link_type type, size_t elems)
{
    msgpack_packer_init(pk, sb, msgpack_sbuffer_write);
    must(msgpack_pack_array(pk, elems));
    must(msgpack_pack_uint64(pk, type));
}

static void put_str(msgpack_packer *pk, const char *s, size_t len)
{
    assert(len <= UINT32_MAX);
    must(msgpack_pack_str(pk, len));
    if (len > 0)
        must(msgpack_pack_str_body(pk, s, len));
}

static void put_bin(msgpack_packer *pk, const void *p, size_t len)
{
    assert(len <= UINT32_MAX);
    must(msgpack_pack_bin(pk, len));
    if (len > 0)
        must(msgpack_pack_bin_body(pk, p, len));
}

void link_encode_hello(msgpack_sbuffer *sb, const char *role, const char *node, const char *secret)
{
    msgpack_packer pk;

    begin(&pk, sb, LINK_HELLO, 5);
    must(msgpack_pack_uint64(&pk, LINK_VERSION));
    put_str(&pk, role, strlen(role));
    put_str(&pk, node, strlen(node));
    if (secret != NULL)
        put_str(&pk, secret, strlen(secret));
    else
        must(msgpack_pack_nil(&pk));
}

void link_encode_welcome(msgpack_sbuffer *sb, const char *node, uint64_t epoch,
                         uint64_t max_subscriptions)
{
    msgpack_packer pk;

    begin(&pk, sb, LINK_WELCOME, 5);
    must(msgpack_pack_uint64(&pk, LINK_VERSION));
    put_str(&pk, node, strlen(node));
    must(msgpack_pack_uint64(&pk, epoch));
    must(msgpack_pack_uint64(&pk, max_subscriptions));
}

void link_encode_welcome_epoch(msgpack_sbuffer *sb, const char *node, uint64_t epoch,
                               uint64_t max_subscriptions, const char *history_epoch)
{
    msgpack_packer pk;

    begin(&pk, sb, LINK_WELCOME, 6);
    must(msgpack_pack_uint64(&pk, LINK_VERSION));
    put_str(&pk, node, strlen(node));
    must(msgpack_pack_uint64(&pk, epoch));
    must(msgpack_pack_uint64(&pk, max_subscriptions));
    put_str(&pk, history_epoch, strlen(history_epoch));
}

void link_encode_sub(msgpack_sbuffer *sb, const char *pattern, size_t len)
{
    msgpack_packer pk;

    begin(&pk, sb, LINK_SUB, 2);
    put_str(&pk, pattern, len);
}

void link_encode_unsub(msgpack_sbuffer *sb, const char *pattern, size_t len)
{
    msgpack_packer pk;

    begin(&pk, sb, LINK_UNSUB, 2);
    put_str(&pk, pattern, len);
}

void link_encode_pub(msgpack_sbuffer *sb, const char *topic, size_t tlen, const void *payload,
                     size_t plen, bool has_req_id, uint64_t req_id)
{
    msgpack_packer pk;

    begin(&pk, sb, LINK_PUB, 4);
    put_str(&pk, topic, tlen);
    put_bin(&pk, payload, plen);
    if (has_req_id)
        must(msgpack_pack_uint64(&pk, req_id));
    else
        must(msgpack_pack_nil(&pk));
}

void link_encode_puback(msgpack_sbuffer *sb, uint64_t req_id, uint64_t receivers, uint64_t seq)
{
    msgpack_packer pk;

    begin(&pk, sb, LINK_PUBACK, 4);
    must(msgpack_pack_uint64(&pk, req_id));
    must(msgpack_pack_uint64(&pk, receivers));
    must(msgpack_pack_uint64(&pk, seq));
}

void link_encode_msg(msgpack_sbuffer *sb, const char *topic, size_t tlen, uint64_t seq,
                     const void *payload, size_t plen)
{
    msgpack_packer pk;

    begin(&pk, sb, LINK_MSG, 4);
    put_str(&pk, topic, tlen);
    must(msgpack_pack_uint64(&pk, seq));
    put_bin(&pk, payload, plen);
}

void link_encode_ping(msgpack_sbuffer *sb, uint64_t token)
{
    msgpack_packer pk;

    begin(&pk, sb, LINK_PING, 2);
    must(msgpack_pack_uint64(&pk, token));
}

void link_encode_pong(msgpack_sbuffer *sb, uint64_t token)
{
    msgpack_packer pk;

    begin(&pk, sb, LINK_PONG, 2);
    must(msgpack_pack_uint64(&pk, token));
}

void link_encode_err(msgpack_sbuffer *sb, const char *code, const char *text)
{
    msgpack_packer pk;

    begin(&pk, sb, LINK_ERR, 3);
    put_str(&pk, code, strlen(code));
    put_str(&pk, text, strlen(text));
}

void link_encode_err_topic(msgpack_sbuffer *sb, const char *code, const char *text,
                           const char *topic, size_t tlen)
{
    msgpack_packer pk;

    begin(&pk, sb, LINK_ERR, 4);
    put_str(&pk, code, strlen(code));
    put_str(&pk, text, strlen(text));
    put_str(&pk, topic, tlen);
}

void link_encode_stats(msgpack_sbuffer *sb)
{
    msgpack_packer pk;

    begin(&pk, sb, LINK_STATS, 1);
}

void link_encode_statsr(msgpack_sbuffer *sb, const char *text, size_t len)
{
    msgpack_packer pk;

    begin(&pk, sb, LINK_STATSR, 2);
    put_str(&pk, text, len);
}

void link_encode_history(msgpack_sbuffer *sb, const struct link_history_req *r)
{
    msgpack_packer pk;

    begin(&pk, sb, LINK_HISTORY, 5);
    must(msgpack_pack_uint64(&pk, r->req_id));
    put_str(&pk, r->topic.ptr, r->topic.len);
    if (r->has_epoch)
        put_str(&pk, r->epoch.ptr, r->epoch.len);
    else
        must(msgpack_pack_nil(&pk));
    if (r->has_after)
        must(msgpack_pack_uint64(&pk, r->after));
    else
        must(msgpack_pack_nil(&pk));
}

void link_encode_histr(msgpack_sbuffer *sb, const struct link_history_reply *r)
{
    msgpack_packer pk;

    begin(&pk, sb, LINK_HISTR, 7);
    must(msgpack_pack_uint64(&pk, r->req_id));
    put_str(&pk, r->topic.ptr, r->topic.len);
    put_str(&pk, r->epoch.ptr, r->epoch.len);
    must(msgpack_pack_uint64(&pk, r->head));
    must(r->recovered ? msgpack_pack_true(&pk) : msgpack_pack_false(&pk));
    must(msgpack_pack_uint64(&pk, r->count));
}

const char *link_type_name(int type)
{
    static const char *const names[] = {
        [LINK_HELLO] = "HELLO",     [LINK_WELCOME] = "WELCOME", [LINK_SUB] = "SUB",
        [LINK_UNSUB] = "UNSUB",     [LINK_PUB] = "PUB",         [LINK_PUBACK] = "PUBACK",
        [LINK_MSG] = "MSG",         [LINK_PING] = "PING",       [LINK_PONG] = "PONG",
        [LINK_ERR] = "ERR",         [LINK_STATS] = "STATS",     [LINK_STATSR] = "STATSR",
        [LINK_HISTORY] = "HISTORY", [LINK_HISTR] = "HISTR",
    };

    if (type < LINK_HELLO || type > LINK_HISTR)
        return "UNKNOWN";
    return names[type];
}

/*
 * Tests for common/ws/ws_frame.c: every payload length form, -2 on every
 * incomplete prefix, each RFC 6455 violation with its close code, the
 * payload limit, unmasking in pieces at every split, header encoding
 * sizes, close payload validation (1002 for the code, 1007 for the reason), a stream of frames
 * delivered split at every point, and a guard-page test (input ends at a PROT_NONE page).
 */
#include "common/ws/ws_frame.h"
#include "tests/support/check_main.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define NO_LIMIT UINT64_MAX

static const uint8_t test_mask[4] = {0x37, 0xFA, 0x21, 0x3D};

/*
 * Writes a masked client frame header for payload_len into out and
 * returns its length: the server encoder plus the mask bit and key.
 */
static size_t client_header(uint8_t *out, uint8_t op, bool fin, uint64_t payload_len)
{
    size_t n = ws_frame_header_encode(out, op, fin, payload_len);
    out[1] |= 0x80;
    memcpy(out + n, test_mask, 4);
    return n + 4;
}

static ssize_t parse(const uint8_t *b, size_t len, uint64_t max, struct ws_frame_header *h,
                     uint16_t *code, const char **err)
{
    *code = 0;
    *err = NULL;
    return ws_frame_parse_header(b, len, max, h, code, err);
}

/* ---------- valid headers ---------- */

static const uint64_t lengths[] = {
    0, 1, 125, 126, 127, 65535, 65536, UINT64_C(1) << 32, (UINT64_C(1) << 63) - 1};
static const size_t header_lens[] = {6, 6, 6, 8, 8, 8, 14, 14, 14};

START_TEST(test_parse_lengths)
{
    uint8_t b[WS_MAX_HEADER + 4];
    size_t n = client_header(b, WS_OP_BINARY, true, lengths[_i]);
    ck_assert_uint_eq(n, header_lens[_i]);
    struct ws_frame_header h;
    uint16_t code;
    const char *err;
    ck_assert_int_eq(parse(b, n, NO_LIMIT, &h, &code, &err), (ssize_t)n);
    ck_assert(h.fin);
    ck_assert_uint_eq(h.opcode, WS_OP_BINARY);
    ck_assert(h.masked);
    ck_assert_mem_eq(h.mask, test_mask, 4);
    ck_assert_uint_eq(h.payload_len, lengths[_i]);
    ck_assert_uint_eq(h.header_len, n);
    /* Trailing payload bytes are not the header's business. */
    memset(b + n, 0xAA, 4);
    ck_assert_int_eq(parse(b, n + 4, NO_LIMIT, &h, &code, &err), (ssize_t)n);
}

END_TEST

START_TEST(test_parse_every_prefix_incomplete)
{
    uint8_t b[WS_MAX_HEADER];
    size_t n = client_header(b, WS_OP_TEXT, false, lengths[_i]);
    for (size_t p = 0; p < n; p++) {
        struct ws_frame_header h;
        uint16_t code;
        const char *err;
        ck_assert_int_eq(parse(b, p, NO_LIMIT, &h, &code, &err), -2);
    }
}

END_TEST

START_TEST(test_parse_opcodes_and_fin)
{
    static const uint8_t ops[] = {WS_OP_CONT,  WS_OP_TEXT, WS_OP_BINARY,
                                  WS_OP_CLOSE, WS_OP_PING, WS_OP_PONG};
    for (size_t i = 0; i < sizeof(ops); i++) {
        for (int fin = 0; fin < 2; fin++) {
            if ((ops[i] & 0x8) && !fin) {
                continue;
            }
            uint8_t b[WS_MAX_HEADER];
            size_t n = client_header(b, ops[i], fin, 3);
            struct ws_frame_header h;
            uint16_t code;
            const char *err;
            ck_assert_int_eq(parse(b, n, 100, &h, &code, &err), (ssize_t)n);
            ck_assert_uint_eq(h.opcode, ops[i]);
            ck_assert_int_eq(h.fin, fin);
        }
    }
}

END_TEST

START_TEST(test_parse_control_125_and_nonminimal)
{
    uint8_t b[WS_MAX_HEADER];
    struct ws_frame_header h;
    uint16_t code;
    const char *err;
    size_t n = client_header(b, WS_OP_PING, true, 125);
    ck_assert_int_eq(parse(b, n, NO_LIMIT, &h, &code, &err), 6);
    ck_assert_uint_eq(h.payload_len, 125);
    /* 16-bit form carrying 5: non-minimal but allowed. */
    const uint8_t nm[] = {0x89, 0xFE, 0x00, 0x05, 1, 2, 3, 4};
    ck_assert_int_eq(parse(nm, sizeof(nm), NO_LIMIT, &h, &code, &err), 8);
    ck_assert_uint_eq(h.payload_len, 5);
    ck_assert_uint_eq(h.opcode, WS_OP_PING);
}

END_TEST

START_TEST(test_parse_max_payload_boundary)
{
    uint8_t b[WS_MAX_HEADER];
    struct ws_frame_header h;
    uint16_t code;
    const char *err;
    size_t n = client_header(b, WS_OP_TEXT, true, 1000);
    ck_assert_int_eq(parse(b, n, 1000, &h, &code, &err), (ssize_t)n);
    ck_assert_int_eq(parse(b, n, 999, &h, &code, &err), -1);
    ck_assert_uint_eq(code, WS_CLOSE_TOO_BIG);
    ck_assert_ptr_nonnull(err);
}

END_TEST

/* ---------- violations ---------- */

struct bad_frame {
    const char *name;
    uint8_t bytes[14];
    size_t len;
    uint64_t max;
    uint16_t code;
};

static const struct bad_frame bad[] = {
    {"rsv1", {0xC1, 0x80, 1, 2, 3, 4}, 6, NO_LIMIT, 1002},
    {"rsv2", {0xA1, 0x80, 1, 2, 3, 4}, 6, NO_LIMIT, 1002},
    {"rsv3", {0x91, 0x80, 1, 2, 3, 4}, 6, NO_LIMIT, 1002},
    {"opcode 3", {0x83, 0x80, 1, 2, 3, 4}, 6, NO_LIMIT, 1002},
    {"opcode 4", {0x84, 0x80, 1, 2, 3, 4}, 6, NO_LIMIT, 1002},
    {"opcode 5", {0x85, 0x80, 1, 2, 3, 4}, 6, NO_LIMIT, 1002},
    {"opcode 6", {0x86, 0x80, 1, 2, 3, 4}, 6, NO_LIMIT, 1002},
    {"opcode 7", {0x87, 0x80, 1, 2, 3, 4}, 6, NO_LIMIT, 1002},
    {"opcode B", {0x8B, 0x80, 1, 2, 3, 4}, 6, NO_LIMIT, 1002},
    {"opcode C", {0x8C, 0x80, 1, 2, 3, 4}, 6, NO_LIMIT, 1002},
    {"opcode D", {0x8D, 0x80, 1, 2, 3, 4}, 6, NO_LIMIT, 1002},
    {"opcode E", {0x8E, 0x80, 1, 2, 3, 4}, 6, NO_LIMIT, 1002},
    {"opcode F", {0x8F, 0x80, 1, 2, 3, 4}, 6, NO_LIMIT, 1002},
    {"unmasked text", {0x81, 0x05, 'h', 'e', 'l', 'l', 'o'}, 7, NO_LIMIT, 1002},
    {"unmasked close", {0x88, 0x00}, 2, NO_LIMIT, 1002},
    {"ping not fin", {0x09, 0x80, 1, 2, 3, 4}, 6, NO_LIMIT, 1002},
    {"close not fin", {0x08, 0x80, 1, 2, 3, 4}, 6, NO_LIMIT, 1002},
    {"pong not fin", {0x0A, 0x80, 1, 2, 3, 4}, 6, NO_LIMIT, 1002},
    {"ping 126", {0x89, 0xFE, 0x00, 0x7E, 1, 2, 3, 4}, 8, NO_LIMIT, 1002},
    {"close 64-bit 200", {0x88, 0xFF, 0, 0, 0, 0, 0, 0, 0, 200, 1, 2, 3, 4}, 14, NO_LIMIT, 1002},
    {"64-bit msb", {0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4}, 14, NO_LIMIT, 1002},
    {"64-bit all ones",
     {0x82, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 1, 2, 3, 4},
     14,
     NO_LIMIT,
     1002},
    {"7-bit over max", {0x81, 0x8B, 1, 2, 3, 4}, 6, 10, 1009},
    {"16-bit over max", {0x82, 0xFE, 0x01, 0x00, 1, 2, 3, 4}, 8, 255, 1009},
    {"64-bit over max", {0x82, 0xFF, 0, 0, 0, 1, 0, 0, 0, 0, 1, 2, 3, 4}, 14, 1 << 20, 1009},
    {"zero max", {0x81, 0x81, 1, 2, 3, 4}, 6, 0, 1009},
};

#define NBAD (sizeof(bad) / sizeof(bad[0]))

START_TEST(test_parse_violation)
{
    const struct bad_frame *f = &bad[_i];
    struct ws_frame_header h;
    uint16_t code;
    const char *err;
    ck_assert_msg(parse(f->bytes, f->len, f->max, &h, &code, &err) == -1, "case %s", f->name);
    ck_assert_msg(code == f->code, "case %s: code %u", f->name, code);
    ck_assert_ptr_nonnull(err);
    ck_assert_uint_gt(strlen(err), 0);
}

END_TEST

/* A prefix of a bad frame is either still incomplete or already the same error. */
START_TEST(test_parse_violation_prefixes)
{
    const struct bad_frame *f = &bad[_i];
    for (size_t p = 0; p < f->len; p++) {
        struct ws_frame_header h;
        uint16_t code;
        const char *err;
        ssize_t r = parse(f->bytes, p, f->max, &h, &code, &err);
        ck_assert_msg(r == -2 || (r == -1 && code == f->code), "case %s prefix %zu: %zd", f->name,
                      p, r);
    }
}

END_TEST

/* ---------- unmasking ---------- */

static void naive_unmask(uint8_t *d, size_t len, const uint8_t m[4])
{
    for (size_t i = 0; i < len; i++) {
        d[i] ^= m[i % 4];
    }
}

START_TEST(test_unmask_whole)
{
    uint8_t a[300], b[300];
    for (size_t i = 0; i < sizeof(a); i++) {
        a[i] = b[i] = (uint8_t)(i * 7 + 3);
    }
    ws_unmask(a, sizeof(a), test_mask, 0);
    naive_unmask(b, sizeof(b), test_mask);
    ck_assert_mem_eq(a, b, sizeof(a));
    ws_unmask(a, sizeof(a), test_mask, 0);
    for (size_t i = 0; i < sizeof(a); i++) {
        ck_assert_uint_eq(a[i], (uint8_t)(i * 7 + 3));
    }
}

END_TEST

/* Unmasking [0,s) and [s,t) and [t,len) with offsets equals one pass. */
START_TEST(test_unmask_every_split)
{
    size_t len = (size_t)_i;
    uint8_t want[64], got[64];
    for (size_t i = 0; i < len; i++) {
        want[i] = (uint8_t)(0xA5 ^ (i * 13));
    }
    naive_unmask(want, len, test_mask);
    for (size_t s = 0; s <= len; s++) {
        for (size_t t = s; t <= len; t++) {
            for (size_t i = 0; i < len; i++) {
                got[i] = (uint8_t)(0xA5 ^ (i * 13));
            }
            ws_unmask(got, s, test_mask, 0);
            ws_unmask(got + s, t - s, test_mask, s);
            ws_unmask(got + t, len - t, test_mask, t);
            ck_assert_msg(memcmp(got, want, len) == 0, "len %zu split %zu %zu", len, s, t);
        }
    }
}

END_TEST

START_TEST(test_unmask_large_offset)
{
    uint8_t a[5] = {0};
    /* Offsets are 64-bit: 2^32 + 1 is congruent to 1 mod 4. */
    ws_unmask(a, sizeof(a), test_mask, (UINT64_C(1) << 32) + 1);
    ck_assert_uint_eq(a[0], test_mask[1]);
    ck_assert_uint_eq(a[1], test_mask[2]);
    ck_assert_uint_eq(a[2], test_mask[3]);
    ck_assert_uint_eq(a[3], test_mask[0]);
    ck_assert_uint_eq(a[4], test_mask[1]);
}

END_TEST

/* ---------- encoding ---------- */

struct enc_case {
    uint64_t len;
    size_t hlen;
    uint8_t bytes[10];
};

static const struct enc_case enc[] = {
    {0, 2, {0x81, 0x00}},
    {125, 2, {0x81, 0x7D}},
    {126, 4, {0x81, 0x7E, 0x00, 0x7E}},
    {65535, 4, {0x81, 0x7E, 0xFF, 0xFF}},
    {65536, 10, {0x81, 0x7F, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00}},
    {UINT64_C(1) << 32, 10, {0x81, 0x7F, 0, 0, 0, 0x01, 0, 0, 0, 0}},
};

START_TEST(test_encode_sizes)
{
    const struct enc_case *c = &enc[_i];
    uint8_t out[WS_MAX_HEADER];
    size_t n = ws_frame_header_encode(out, WS_OP_TEXT, true, c->len);
    ck_assert_uint_eq(n, c->hlen);
    ck_assert_mem_eq(out, c->bytes, n);
}

END_TEST

START_TEST(test_encode_flags)
{
    uint8_t out[WS_MAX_HEADER];
    ck_assert_uint_eq(ws_frame_header_encode(out, WS_OP_BINARY, false, 3), 2);
    ck_assert_uint_eq(out[0], 0x02);
    ck_assert_uint_eq(out[1], 0x03);
    ck_assert_uint_eq(ws_frame_header_encode(out, WS_OP_CLOSE, true, 2), 2);
    ck_assert_uint_eq(out[0], 0x88);
    ck_assert_uint_eq(ws_frame_header_encode(out, WS_OP_PONG, true, 0), 2);
    ck_assert_uint_eq(out[0], 0x8A);
}

END_TEST

/* ---------- close payloads ---------- */

struct close_case {
    const char *name;
    const char *bytes;
    size_t len;
    uint16_t fail; /* what ws_close_payload_check returns: 0 valid, 1002, 1007 */
    uint16_t code;
};

#define CLOSE(name, lit, fail, code)                                                               \
    {                                                                                              \
        name, lit, sizeof(lit) - 1, fail, code                                                     \
    }

static const struct close_case closes[] = {
    CLOSE("empty", "", 0, 1005),
    CLOSE("1000", "\x03\xE8", 0, 1000),
    CLOSE("1000 reason",
          "\x03\xE8"
          "bye",
          0, 1000),
    CLOSE("1000 utf8 reason", "\x03\xE8\xCE\xBA\xE1\xBD\xB9\xCF\x83\xCE\xBC\xCE\xB5", 0, 1000),
    CLOSE("1001", "\x03\xE9", 0, 1001),
    CLOSE("1002", "\x03\xEA", 0, 1002),
    CLOSE("1003", "\x03\xEB", 0, 1003),
    CLOSE("1007", "\x03\xEF", 0, 1007),
    CLOSE("1011", "\x03\xF3", 0, 1011),
    CLOSE("1012", "\x03\xF4", 0, 1012),
    CLOSE("1013", "\x03\xF5", 0, 1013),
    CLOSE("1014", "\x03\xF6", 0, 1014),
    CLOSE("3000", "\x0B\xB8", 0, 3000),
    CLOSE("3999", "\x0F\x9F", 0, 3999),
    CLOSE("4000", "\x0F\xA0", 0, 4000),
    CLOSE("4999", "\x13\x87", 0, 4999),
    CLOSE("0", "\x00\x00", 1002, 0),
    CLOSE("999", "\x03\xE7", 1002, 999),
    CLOSE("1004", "\x03\xEC", 1002, 1004),
    CLOSE("1005", "\x03\xED", 1002, 1005),
    CLOSE("1006", "\x03\xEE", 1002, 1006),
    CLOSE("1015", "\x03\xF7", 1002, 1015),
    CLOSE("1016", "\x03\xF8", 1002, 1016),
    CLOSE("1100", "\x04\x4C", 1002, 1100),
    CLOSE("2000", "\x07\xD0", 1002, 2000),
    CLOSE("2999", "\x0B\xB7", 1002, 2999),
    CLOSE("5000", "\x13\x88", 1002, 5000),
    CLOSE("65535", "\xFF\xFF", 1002, 65535),
    CLOSE("1000 overlong reason", "\x03\xE8\xC0\x80", 1007, 1000),
    CLOSE("1000 truncated reason", "\x03\xE8\xE2\x82", 1007, 1000),
    CLOSE("1000 surrogate reason", "\x03\xE8\xED\xA0\x80", 1007, 1000),
    CLOSE("1000 over U+10FFFF reason", "\x03\xE8\xF4\x90\x80\x80", 1007, 1000),
    CLOSE("4000 reason cut in a character", "\x0F\xA0ok\xCE", 1007, 4000),
    /* A bad code wins over a bad reason: the code is read first. */
    CLOSE("1004 with a bad reason", "\x03\xEC\xFF", 1002, 1004),
};

#define NCLOSES (sizeof(closes) / sizeof(closes[0]))

START_TEST(test_close_payload)
{
    const struct close_case *c = &closes[_i];
    uint16_t code = 0xBEEF;
    uint16_t fail = ws_close_payload_check((const uint8_t *)c->bytes, c->len, &code);
    ck_assert_msg(fail == c->fail, "case %s: returned %u", c->name, fail);
    ck_assert_msg(code == c->code, "case %s: code %u", c->name, code);
    ck_assert_uint_eq(ws_close_payload_check((const uint8_t *)c->bytes, c->len, NULL), c->fail);
}

END_TEST

START_TEST(test_close_payload_one_byte)
{
    uint16_t code = 0xBEEF;
    ck_assert_uint_eq(ws_close_payload_check((const uint8_t *)"\x03", 1, &code), 1002);
    ck_assert_uint_eq(code, 0xBEEF);
}

END_TEST

/* Every code 0..65535 with an empty reason: exactly the sendable ranges pass. */
START_TEST(test_close_code_ranges)
{
    for (uint32_t c = 0; c <= 0xFFFF; c++) {
        uint8_t p[2] = {(uint8_t)(c >> 8), (uint8_t)c};
        bool sendable =
            (c >= 1000 && c <= 1003) || (c >= 1007 && c <= 1014) || (c >= 3000 && c <= 4999);
        ck_assert_msg(ws_close_payload_check(p, 2, NULL) == (sendable ? 0 : 1002), "code %u", c);
    }
}

END_TEST

/* ---------- a stream split at every point ---------- */

struct sent_frame {
    uint8_t op;
    bool fin;
    size_t len;
};

static const struct sent_frame stream_frames[] = {
    {WS_OP_TEXT, false, 0},  {WS_OP_CONT, false, 7},   {WS_OP_PING, true, 125},
    {WS_OP_CONT, true, 126}, {WS_OP_BINARY, true, 1},  {WS_OP_PONG, true, 0},
    {WS_OP_TEXT, true, 300}, {WS_OP_BINARY, true, 65}, {WS_OP_TEXT, true, 3},
    {WS_OP_CLOSE, true, 2},
};

#define NSTREAM (sizeof(stream_frames) / sizeof(stream_frames[0]))

static uint8_t payload_byte(size_t frame, size_t i)
{
    return (uint8_t)(frame * 31 + i * 7 + 1);
}

/* Builds the masked client stream; returns its length. */
static size_t build_stream(uint8_t *out)
{
    size_t n = 0;
    for (size_t f = 0; f < NSTREAM; f++) {
        const struct sent_frame *s = &stream_frames[f];
        n += client_header(out + n, s->op, s->fin, s->len);
        for (size_t i = 0; i < s->len; i++) {
            out[n + i] = payload_byte(f, i);
        }
        ws_unmask(out + n, s->len, test_mask, 0);
        n += s->len;
    }
    return n;
}

struct reader {
    size_t pos;      /* next unparsed byte of the stream */
    bool in_payload; /* header parsed, payload bytes still due */
    struct ws_frame_header h;
    uint64_t got;  /* payload bytes already unmasked */
    size_t frames; /* complete frames checked */
    uint8_t msg[512];
};

/* Consumes what is available of stream[0..avail), as a connection would. */
static void reader_run(struct reader *r, const uint8_t *stream, size_t avail)
{
    for (;;) {
        if (!r->in_payload) {
            uint16_t code;
            const char *err;
            ssize_t n = parse(stream + r->pos, avail - r->pos, 1000, &r->h, &code, &err);
            ck_assert_int_ne(n, -1);
            if (n == -2) {
                return;
            }
            ck_assert_uint_lt(r->frames, NSTREAM);
            r->pos += (size_t)n;
            r->in_payload = true;
            r->got = 0;
        }
        size_t k = avail - r->pos;
        if (k > r->h.payload_len - r->got) {
            k = (size_t)(r->h.payload_len - r->got);
        }
        memcpy(r->msg + r->got, stream + r->pos, k);
        ws_unmask(r->msg + r->got, k, r->h.mask, r->got);
        r->got += k;
        r->pos += k;
        if (r->got < r->h.payload_len) {
            return;
        }
        const struct sent_frame *s = &stream_frames[r->frames];
        ck_assert_uint_eq(r->h.opcode, s->op);
        ck_assert_int_eq(r->h.fin, s->fin);
        ck_assert_uint_eq(r->h.payload_len, s->len);
        for (size_t i = 0; i < s->len; i++) {
            ck_assert_uint_eq(r->msg[i], payload_byte(r->frames, i));
        }
        r->frames++;
        r->in_payload = false;
    }
}

START_TEST(test_stream_every_split)
{
    static uint8_t stream[2048];
    size_t len = build_stream(stream);
    for (size_t s = 0; s <= len; s++) {
        struct reader r = {0};
        reader_run(&r, stream, s);
        reader_run(&r, stream, len);
        ck_assert_uint_eq(r.frames, NSTREAM);
        ck_assert_uint_eq(r.pos, len);
    }
}

END_TEST

START_TEST(test_stream_byte_at_a_time)
{
    static uint8_t stream[2048];
    size_t len = build_stream(stream);
    struct reader r = {0};
    for (size_t s = 0; s <= len; s++) {
        reader_run(&r, stream, s);
    }
    ck_assert_uint_eq(r.frames, NSTREAM);
    ck_assert_uint_eq(r.pos, len);
}

END_TEST

/* ---------- guard page ---------- */

/* Returns a pointer len bytes before a PROT_NONE page. */
static uint8_t *guarded(size_t len, void **map, size_t *maplen)
{
    size_t pg = (size_t)sysconf(_SC_PAGESIZE);
    *maplen = 2 * pg;
    uint8_t *m = mmap(NULL, *maplen, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ck_assert_ptr_ne(m, MAP_FAILED);
    ck_assert_int_eq(mprotect(m + pg, pg, PROT_NONE), 0);
    *map = m;
    return m + pg - len;
}

START_TEST(test_guard_page)
{
    uint8_t hdr[WS_MAX_HEADER];
    size_t n = client_header(hdr, WS_OP_BINARY, true, lengths[_i]);
    void *map;
    size_t maplen;
    for (size_t p = 0; p <= n; p++) {
        uint8_t *b = guarded(p, &map, &maplen);
        memcpy(b, hdr, p);
        struct ws_frame_header h;
        uint16_t code;
        const char *err;
        ck_assert_int_eq(parse(b, p, NO_LIMIT, &h, &code, &err), p == n ? (ssize_t)n : -2);
        ck_assert_int_eq(munmap(map, maplen), 0);
    }
    for (size_t i = 0; i < NBAD; i++) {
        uint8_t *b = guarded(bad[i].len, &map, &maplen);
        memcpy(b, bad[i].bytes, bad[i].len);
        struct ws_frame_header h;
        uint16_t code;
        const char *err;
        ck_assert_int_eq(parse(b, bad[i].len, bad[i].max, &h, &code, &err), -1);
        ck_assert_int_eq(munmap(map, maplen), 0);
    }
}

END_TEST

static Suite *ws_frame_suite(void)
{
    size_t nlen = sizeof(lengths) / sizeof(lengths[0]);
    Suite *s = suite_create("ws_frame");
    TCase *tc = tcase_create("parse");
    tcase_add_loop_test(tc, test_parse_lengths, 0, (int)nlen);
    tcase_add_loop_test(tc, test_parse_every_prefix_incomplete, 0, (int)nlen);
    tcase_add_test(tc, test_parse_opcodes_and_fin);
    tcase_add_test(tc, test_parse_control_125_and_nonminimal);
    tcase_add_test(tc, test_parse_max_payload_boundary);
    tcase_add_loop_test(tc, test_parse_violation, 0, NBAD);
    tcase_add_loop_test(tc, test_parse_violation_prefixes, 0, NBAD);
    tcase_add_loop_test(tc, test_guard_page, 0, (int)nlen);
    suite_add_tcase(s, tc);
    tc = tcase_create("unmask");
    tcase_add_test(tc, test_unmask_whole);
    tcase_add_loop_test(tc, test_unmask_every_split, 0, 40);
    tcase_add_test(tc, test_unmask_large_offset);
    suite_add_tcase(s, tc);
    tc = tcase_create("encode");
    tcase_add_loop_test(tc, test_encode_sizes, 0, sizeof(enc) / sizeof(enc[0]));
    tcase_add_test(tc, test_encode_flags);
    suite_add_tcase(s, tc);
    tc = tcase_create("close");
    tcase_add_loop_test(tc, test_close_payload, 0, NCLOSES);
    tcase_add_test(tc, test_close_payload_one_byte);
    tcase_add_test(tc, test_close_code_ranges);
    suite_add_tcase(s, tc);
    tc = tcase_create("stream");
    tcase_add_test(tc, test_stream_every_split);
    tcase_add_test(tc, test_stream_byte_at_a_time);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return check_run_suite(ws_frame_suite());
}

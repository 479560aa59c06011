/*
 * fuzz_link_codec.c - libFuzzer target for the link decoder. make test runs
 * it for a few seconds (CTest fuzz_link_codec); `tests/fuzz/run.sh
 * link_codec 600` runs it longer. To build it yourself, from the repository
 * root:
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
 *       -D_GNU_SOURCE -I. tests/fuzz/fuzz_link_codec.c common/link_codec.c common/mem.c \
 *       common/log.c $(pkg-config --cflags --libs msgpack) -o fuzz_link_codec
 *   ./fuzz_link_codec -max_total_time=60
 *
 * Input: byte 0 picks max_frame (16 B .. 64 KiB), bytes 1..4 seed the
 * piece sizes, the rest is the stream, fed in pieces of 1..64 bytes. After
 * each piece every complete frame is drained; each frame's views are read
 * in full (ASan checks they are live), re-encoded, and the re-encoding must
 * decode to the same frame. Rejections must come with a reason, be sticky,
 * and leave no more buffered than max_frame past the last full frame.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/link_codec.h"
#include "common/mem.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            __builtin_trap();                                                                      \
    } while (0)

static uint32_t rng_next(uint32_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}

static uint8_t sum_view(struct link_str v)
{
    uint8_t x = 0;

    for (size_t i = 0; i < v.len; i++)
        x ^= (uint8_t)v.ptr[i];
    return x;
}

static char *cstr(struct link_str v)
{
    return mem_strndup(v.len ? v.ptr : "", v.len);
}

/* Encodes f the way its sender would have; strings come out NUL-cut. */
static void reencode(msgpack_sbuffer *sb, const struct link_frame *f)
{
    char *a = cstr(f->role), *b = cstr(f->node), *c = cstr(f->secret);
    char *e = cstr(f->code), *t = cstr(f->text);

    switch (f->type) {
    case LINK_HELLO:
        link_encode_hello(sb, a, b, f->has_secret ? c : NULL);
        break;
    case LINK_WELCOME:
        if (f->has_history_epoch) {
            char *h = cstr(f->history_epoch);

            link_encode_welcome_epoch(sb, b, f->epoch, f->max_subscriptions, h);
            mem_free(h);
        } else {
            link_encode_welcome(sb, b, f->epoch, f->max_subscriptions);
        }
        break;
    case LINK_SUB:
    case LINK_UNSUB:
        (f->type == LINK_SUB ? link_encode_sub : link_encode_unsub)(sb, f->topic.ptr, f->topic.len);
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
    case LINK_PONG:
        (f->type == LINK_PING ? link_encode_ping : link_encode_pong)(sb, f->token);
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
        link_encode_history(sb, &(struct link_history_req){f->req_id, f->topic, f->history_epoch,
                                                           f->has_history_epoch, f->after,
                                                           f->has_after});
        break;
    case LINK_HISTR:
        link_encode_histr(sb, &(struct link_history_reply){f->req_id, f->topic, f->history_epoch,
                                                           f->head, f->recovered, f->count});
        break;
    }
    mem_free(a);
    mem_free(b);
    mem_free(c);
    mem_free(e);
    mem_free(t);
}

static void same_view(struct link_str x, struct link_str y)
{
    CHECK(x.len == y.len && (x.len == 0 || memcmp(x.ptr, y.ptr, x.len) == 0));
}

/* The re-encoding of f decodes to f (string fields compared when NUL-free). */
static void check_roundtrip(const struct link_frame *f)
{
    msgpack_sbuffer sb;
    struct link_decoder *d = link_decoder_new(SIZE_MAX);
    struct link_frame g;
    const char *err = NULL;

    msgpack_sbuffer_init(&sb);
    reencode(&sb, f);
    CHECK(link_decoder_feed(d, sb.data, sb.size, &err) == 0);
    CHECK(link_decoder_next(d, &g, &err) == 1);
    CHECK(g.type == f->type && g.epoch == f->epoch && g.seq == f->seq);
    CHECK(g.req_id == f->req_id);
    CHECK(g.after == f->after && g.has_after == f->has_after && g.head == f->head);
    CHECK(g.count == f->count && g.recovered == f->recovered);
    CHECK(g.has_history_epoch == f->has_history_epoch);
    same_view(g.history_epoch, f->history_epoch);
    CHECK(g.has_req_id == f->has_req_id && g.has_secret == f->has_secret);
    CHECK(g.receivers == f->receivers && g.token == f->token);
    same_view(g.topic, f->topic);
    same_view(g.payload, f->payload);
    if (memchr(f->node.ptr ? f->node.ptr : "", 0, f->node.len) == NULL)
        same_view(g.node, f->node);
    CHECK(link_decoder_next(d, &g, &err) == 0);
    link_decoder_free(d);
    msgpack_sbuffer_destroy(&sb);
}

/* Returns -1 once the decoder has failed, else 0. */
static int drain(struct link_decoder *d, size_t max_frame)
{
    struct link_frame f;
    const char *err = NULL;
    volatile uint8_t sink = 0;
    int rc;

    while ((rc = link_decoder_next(d, &f, &err)) == 1) {
        sink ^= sum_view(f.role) ^ sum_view(f.node) ^ sum_view(f.secret) ^ sum_view(f.topic);
        sink ^= sum_view(f.payload) ^ sum_view(f.code) ^ sum_view(f.text);
        check_roundtrip(&f);
    }
    if (rc < 0) {
        CHECK(err != NULL && err[0] != '\0');
        CHECK(link_decoder_next(d, &f, &err) == -1);
        return -1;
    }
    CHECK(rc == 0);
    CHECK(link_decoder_pending(d) <= max_frame);
    (void)sink;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct link_decoder *d;
    size_t max_frame;
    uint32_t seed;

    if (size < 5)
        return 0;
    max_frame = (size_t)16 << (data[0] % 13);
    memcpy(&seed, data + 1, sizeof(seed));
    seed |= 1;
    data += 5;
    size -= 5;
    d = link_decoder_new(max_frame);
    while (size > 0) {
        size_t n = 1 + rng_next(&seed) % 64;
        const char *err = NULL;

        if (n > size)
            n = size;
        if (link_decoder_feed(d, data, n, &err) < 0) {
            CHECK(err != NULL && err[0] != '\0');
            break;
        }
        if (drain(d, max_frame) < 0)
            break;
        data += n;
        size -= n;
    }
    link_decoder_free(d);
    return 0;
}

/*
 * libFuzzer target for common/ws/ws_frame.c and common/utf8.c. make test runs it
 * for a few seconds (CTest fuzz_ws_frame); `tests/fuzz/run.sh ws_frame 600`
 * runs it longer. To build it yourself:
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -I. \
 *       tests/fuzz/fuzz_ws_frame.c common/ws/ws_frame.c common/utf8.c -o fuzz_ws_frame
 *   ./fuzz_ws_frame -max_total_time=60
 *
 * (run from the repository root). The first input byte picks the payload
 * limit; the rest is a client byte stream. Beyond "no crash, no read past
 * len", it checks the parser's contract: a header length is 6, 8 or 14 and
 * every shorter prefix is incomplete; errors carry 1002 or 1009 and a
 * reason; unmasking in two pieces equals unmasking at once; one-shot and
 * split UTF-8 validation agree.
 */
#include "common/utf8.h"
#include "common/ws/ws_frame.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint64_t limits[] = {0, 125, 65535, 1 << 20, UINT64_MAX};

static void check(bool ok)
{
    if (!ok) {
        abort();
    }
}

static void check_header(const uint8_t *buf, size_t len, uint64_t max)
{
    struct ws_frame_header h;
    uint16_t code = 0;
    const char *err = NULL;
    ssize_t n = ws_frame_parse_header(buf, len, max, &h, &code, &err);
    if (n == -1) {
        check((code == WS_CLOSE_PROTOCOL || code == WS_CLOSE_TOO_BIG) && err != NULL);
        return;
    }
    if (n == -2) {
        check(len < WS_MAX_HEADER);
        return;
    }
    check((n == 6 || n == 8 || n == 14) && (size_t)n <= len && h.header_len == (size_t)n);
    check(h.masked && h.payload_len <= max && !(h.payload_len >> 63));
    check(!(h.opcode & 0x8) || (h.fin && h.payload_len <= 125));
    for (size_t p = 0; p < (size_t)n; p++) {
        check(ws_frame_parse_header(buf, p, max, &h, &code, &err) == -2);
    }
}

static void check_unmask(const uint8_t *buf, size_t len)
{
    static const uint8_t mask[4] = {0x12, 0x34, 0x56, 0x78};
    uint8_t *a = malloc(len + 1);
    uint8_t *b = malloc(len + 1);
    memcpy(a, buf, len);
    memcpy(b, buf, len);
    size_t split = len ? buf[0] % len : 0;
    ws_unmask(a, len, mask, 0);
    ws_unmask(b, split, mask, 0);
    ws_unmask(b + split, len - split, mask, split);
    check(memcmp(a, b, len) == 0);
    free(a);
    free(b);
}

static void check_utf8(const uint8_t *buf, size_t len)
{
    bool whole = utf8_valid(buf, len);
    uint32_t st = UTF8_ACCEPT;
    bool ok = true;
    for (size_t i = 0; i < len && ok; i++) {
        ok = utf8_feed(&st, buf + i, 1);
    }
    check(whole == (ok && utf8_complete(st)));
    uint16_t code;
    uint16_t fail = ws_close_payload_check(buf, len, &code);
    if (fail == 0) {
        check(len == 0 || (len >= 2 && utf8_valid(buf + 2, len - 2)));
    } else if (fail == WS_CLOSE_INVALID_DATA) {
        check(len >= 2 && !utf8_valid(buf + 2, len - 2));
    } else {
        check(fail == WS_CLOSE_PROTOCOL);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) {
        return 0;
    }
    uint64_t max = limits[data[0] % (sizeof(limits) / sizeof(limits[0]))];
    /* Copy so that ASan catches any read past the end. */
    uint8_t *buf = malloc(size - 1 + 1);
    memcpy(buf, data + 1, size - 1);
    check_header(buf, size - 1, max);
    check_unmask(buf, size - 1);
    check_utf8(buf, size - 1);
    free(buf);
    return 0;
}

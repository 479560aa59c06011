#include "common/utf8.h"

#include <string.h>

/*
 * UTF-8 validation as an explicit state machine over RFC 3629's table of
 * well-formed byte sequences. The state is the set of bytes the next byte
 * may be, so a sequence split across WebSocket fragments (or reads) at any
 * byte resumes exactly where it stopped:
 *
 *   ACCEPT   between characters
 *   REJECT   sticky failure
 *   TAIL1..3 1, 2 or 3 continuation bytes (80..BF) still due
 *   E0       after E0: next A0..BF (no overlong 3-byte forms)
 *   ED       after ED: next 80..9F (no surrogates D800..DFFF)
 *   F0       after F0: next 90..BF (no overlong 4-byte forms)
 *   F4       after F4: next 80..8F (nothing above U+10FFFF)
 *
 * Lead bytes C0, C1 (overlong 2-byte) and F5..FF (above U+10FFFF) are
 * rejected at once. ASCII runs are skipped eight bytes at a time while in
 * ACCEPT, since almost every JSON message is mostly ASCII.
 *
 * Rejected: Hoehrmann's 364-byte class/transition tables (the same machine,
 * but opaque to review) and decoding to code points (we never need them).
 */

enum {
    ST_ACCEPT = UTF8_ACCEPT,
    ST_REJECT = UTF8_REJECT,
    ST_TAIL1,
    ST_TAIL2,
    ST_TAIL3,
    ST_E0,
    ST_ED,
    ST_F0,
    ST_F4,
};

/* Allowed range of the next byte in each non-final state, and where it leads. */
struct cont_rule {
    uint8_t lo, hi, next;
};

static const struct cont_rule cont_rules[] = {
    [ST_TAIL1] = {0x80, 0xBF, ST_ACCEPT}, [ST_TAIL2] = {0x80, 0xBF, ST_TAIL1},
    [ST_TAIL3] = {0x80, 0xBF, ST_TAIL2},  [ST_E0] = {0xA0, 0xBF, ST_TAIL1},
    [ST_ED] = {0x80, 0x9F, ST_TAIL1},     [ST_F0] = {0x90, 0xBF, ST_TAIL2},
    [ST_F4] = {0x80, 0x8F, ST_TAIL2},
};

static uint32_t lead_state(uint8_t b)
{
    if (b < 0x80) {
        return ST_ACCEPT;
    }
    if (b < 0xC2) {
        return ST_REJECT; /* stray continuation byte, or overlong C0/C1 */
    }
    if (b < 0xE0) {
        return ST_TAIL1;
    }
    if (b == 0xE0) {
        return ST_E0;
    }
    if (b == 0xED) {
        return ST_ED;
    }
    if (b < 0xF0) {
        return ST_TAIL2;
    }
    if (b == 0xF0) {
        return ST_F0;
    }
    if (b < 0xF4) {
        return ST_TAIL3;
    }
    if (b == 0xF4) {
        return ST_F4;
    }
    return ST_REJECT;
}

static uint32_t step(uint32_t state, uint8_t b)
{
    if (state == ST_ACCEPT) {
        return lead_state(b);
    }
    const struct cont_rule *r = &cont_rules[state];
    return (b >= r->lo && b <= r->hi) ? r->next : ST_REJECT;
}

/* Length of the all-ASCII prefix of s[0..len), measured in whole words. */
static size_t ascii_run(const uint8_t *s, size_t len)
{
    size_t i = 0;
    while (len - i >= sizeof(uint64_t)) {
        uint64_t w;
        memcpy(&w, s + i, sizeof(w));
        if (w & UINT64_C(0x8080808080808080)) {
            break;
        }
        i += sizeof(w);
    }
    return i;
}

bool utf8_feed(uint32_t *state, const uint8_t *s, size_t len)
{
    uint32_t st = *state;
    size_t i = 0;
    if (st >= sizeof(cont_rules) / sizeof(cont_rules[0])) {
        st = ST_REJECT; /* a corrupted state never validates anything */
    }
    while (i < len && st != ST_REJECT) {
        if (st == ST_ACCEPT) {
            i += ascii_run(s + i, len - i);
            if (i == len) {
                break;
            }
        }
        st = step(st, s[i++]);
    }
    *state = st;
    return st != ST_REJECT;
}

bool utf8_complete(uint32_t state)
{
    return state == UTF8_ACCEPT;
}

bool utf8_valid(const uint8_t *s, size_t len)
{
    uint32_t st = UTF8_ACCEPT;
    return utf8_feed(&st, s, len) && utf8_complete(st);
}

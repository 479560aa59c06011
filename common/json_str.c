/*
 * json_str.c - escaping bytes for the inside of a JSON string.
 *
 * One pass over the input with a writer that counts every byte but
 * stores only what fits, so measuring and writing are the same code and
 * cannot disagree: the edge measures an envelope, allocates the frame,
 * then writes it in place. Runs of bytes that need no escaping are copied
 * in one go (topics and most payloads are plain ASCII). Invalid UTF-8 is
 * replaced as the Unicode standard recommends (one U+FFFD per maximal
 * prefix of a well-formed sequence), with the incremental validator of
 * common/utf8.h fed one byte at a time from the first byte over 0x7F.
 *
 * Rejected: jansson's json_dumps of a json_string (allocates twice per
 * string, and refuses invalid UTF-8 instead of repairing it).
 */
#include "common/json_str.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "common/utf8.h"

void json_out_put(struct json_out *o, const void *s, size_t n)
{
    if (o->len < o->cap) {
        size_t room = o->cap - o->len;

        memcpy(o->buf + o->len, s, n < room ? n : room);
    }
    o->len += n;
}

void json_out_str(struct json_out *o, const char *s)
{
    json_out_put(o, s, strlen(s));
}

/*
 * Length of the invalid bytes at s[0..n) to replace with one U+FFFD: the
 * maximal prefix of a well-formed sequence (at least one byte). Returns 0
 * when s starts a valid character, with *valid set to its length.
 */
static size_t utf8_bad_prefix(const uint8_t *s, size_t n, size_t *valid)
{
    uint32_t state = UTF8_ACCEPT;

    for (size_t i = 0; i < n; i++) {
        if (!utf8_feed(&state, s + i, 1))
            return i > 0 ? i : 1;
        if (state == UTF8_ACCEPT) {
            *valid = i + 1;
            return 0;
        }
    }
    return n; /* truncated at the end of the input */
}

/* Writes one ASCII byte that needs escaping: the short forms, else \u00XX. */
static void put_escaped_ascii(struct json_out *o, uint8_t c)
{
    static const char hex[] = "0123456789abcdef";
    char u[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 0xf]};

    switch (c) {
    case '"':
        json_out_str(o, "\\\"");
        return;
    case '\\':
        json_out_str(o, "\\\\");
        return;
    case '\b':
        json_out_str(o, "\\b");
        return;
    case '\f':
        json_out_str(o, "\\f");
        return;
    case '\n':
        json_out_str(o, "\\n");
        return;
    case '\r':
        json_out_str(o, "\\r");
        return;
    case '\t':
        json_out_str(o, "\\t");
        return;
    default:
        json_out_put(o, u, sizeof(u));
        return;
    }
}

static bool needs_no_escape(uint8_t c)
{
    return c >= 0x20 && c < 0x80 && c != '"' && c != '\\';
}

size_t json_str_escape(char *out, size_t cap, const void *src, size_t n)
{
    struct json_out o = {out, out ? cap : 0, 0};
    const uint8_t *s = src;
    size_t i = 0;

    while (i < n) {
        size_t run = i;
        size_t valid = 0;
        size_t bad;

        /* Copy the run of bytes that need no escaping in one go. */
        while (run < n && needs_no_escape(s[run]))
            run++;
        if (run > i) {
            json_out_put(&o, s + i, run - i);
            i = run;
        } else if (s[i] < 0x80) {
            put_escaped_ascii(&o, s[i]);
            i++;
        } else {
            bad = utf8_bad_prefix(s + i, n - i, &valid);
            if (bad > 0)
                json_out_str(&o, "\\ufffd");
            else
                json_out_put(&o, s + i, valid);
            i += bad > 0 ? bad : valid;
        }
    }
    return o.len;
}

void json_out_escaped(struct json_out *o, const void *s, size_t n)
{
    size_t room = o->len < o->cap ? o->cap - o->len : 0;

    o->len += json_str_escape(room ? o->buf + o->len : NULL, room, s, n);
}

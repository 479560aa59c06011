/*
 * resp_parse.c - pure RESP2 request parser: multibulk and inline commands.
 *
 * Owns nothing. Each call borrows buf and, on success, returns views into it
 * through argv; no state survives a call. After -2 the caller reads more and
 * calls again with the same bytes at the front of the grown buffer, so a
 * command split over k reads is scanned k times. That re-scan is cheap next
 * to the reads that cause it, and every header it re-reads is bounded.
 *
 * Invariants:
 *  - No byte at or past buf + len is read: every access is preceded by a
 *    bounds check (a guard-page test holds this).
 *  - Any prefix of a valid command gives -2. Input that no continuation can
 *    make valid gives -1 as soon as the offending byte is visible: a bad
 *    byte in a length line, anything but '$' where a bulk starts, data not
 *    followed by CRLF. Counts and lengths are checked against the limits
 *    when their line completes, before the data they announce arrives.
 *  - A length line is at most 1 + 20 + 2 bytes: leading zeros are refused
 *    and a 21st digit overflows uint64_t, so a line without CRLF is refused
 *    within 23 bytes and no separate line cap is needed.
 *  - buf is written only once a whole inline line is present, to decode
 *    quoted words in place. Every escape and quote shrinks, so the write
 *    cursor never passes the read cursor.
 *
 * Deliberate differences from Redis: the CRLF after a count, length or bulk
 * is checked (Redis skips two bytes blindly); only "*0" and "*-1" are
 * ignored (Redis ignores any count <= 0); a NUL is an ordinary byte in an
 * inline word (sdssplitargs stops at it); a complete inline line over
 * max_inline is refused even if it arrived in one read.
 *
 * Rejected: decoding quoted words into a caller scratch buffer (one more
 * parameter and capacity to size, for a path only telnet users hit) and a
 * resumable state machine like Redis's querybuf bookkeeping (per-connection
 * state to save a bounded re-scan).
 */
#include "broker/resp_parse.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#define ERR_MULTIBULK   "Protocol error: invalid multibulk length"
#define ERR_BULK        "Protocol error: invalid bulk length"
#define ERR_INLINE_SIZE "Protocol error: too big inline request"
#define ERR_QUOTES      "Protocol error: unbalanced quotes in request"
#define ERR_TOO_MANY    "Protocol error: too many arguments"

/*
 * "Protocol error: expected '$', got 'X'" for every byte X, as static
 * strings: a struct whose members are laid out back to back, read as one
 * NUL-terminated char array. Unprintable bytes show as '?' so the reply line
 * stays readable and never carries a CR or LF.
 */
#define DOLLAR_PREFIX "Protocol error: expected '$', got '"

struct dollar_msg {
    char prefix[sizeof(DOLLAR_PREFIX) - 1];
    char got;
    char tail[2];
};

_Static_assert(sizeof(struct dollar_msg) == sizeof(DOLLAR_PREFIX) + 2, "dollar_msg is padded");

#define DM(c)                                                                                      \
    {                                                                                              \
        DOLLAR_PREFIX, (char)((c) >= 0x20 && (c) < 0x7f ? (c) : '?'), "'"                          \
    }
#define DM4(c)  DM(c), DM((c) + 1), DM((c) + 2), DM((c) + 3)
#define DM16(c) DM4(c), DM4((c) + 4), DM4((c) + 8), DM4((c) + 12)
#define DM64(c) DM16(c), DM16((c) + 16), DM16((c) + 32), DM16((c) + 48)

static const struct dollar_msg dollar_msgs[256] = {DM64(0), DM64(64), DM64(128), DM64(192)};

static const char *expected_dollar(char got)
{
    return (const char *)&dollar_msgs[(unsigned char)got];
}

/* ---- multibulk --------------------------------------------------------- */

/*
 * Parses "<digits>\r\n", the rest of a '*' or '$' line, from p[0..avail).
 * Accepts one leading '-' (reported in *neg for the caller to judge) and
 * refuses '+', leading zeros, "-0", no digits and values past UINT64_MAX.
 * Returns the line's length including CRLF, -2 if it may still become
 * valid, -1 if it cannot.
 */
static ssize_t parse_number_line(const char *p, size_t avail, bool *neg, uint64_t *out)
{
    size_t first = avail > 0 && p[0] == '-' ? 1 : 0;
    size_t i = first;
    uint64_t v = 0;

    for (; i < avail && p[i] >= '0' && p[i] <= '9'; i++) {
        unsigned d = (unsigned)(p[i] - '0');

        if ((i > first || first == 1) && p[first] == '0')
            return -1;
        if (v > (UINT64_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    if (i == avail)
        return -2;
    if (i == first || p[i] != '\r')
        return -1;
    if (i + 1 == avail)
        return -2;
    if (p[i + 1] != '\n')
        return -1;
    *neg = first == 1;
    *out = v;
    return (ssize_t)(i + 2);
}

/*
 * Parses "$<len>\r\n<data>\r\n" at buf[pos..len) into *arg. Returns the
 * position after it, -2 or -1 (with *err).
 */
static ssize_t parse_bulk(const char *buf, size_t len, size_t pos, const struct resp_limits *lim,
                          struct resp_arg *arg, const char **err)
{
    bool neg;
    uint64_t n;
    size_t avail;
    ssize_t r;

    if (pos == len)
        return -2;
    if (buf[pos] != '$') {
        *err = expected_dollar(buf[pos]);
        return -1;
    }
    r = parse_number_line(buf + pos + 1, len - pos - 1, &neg, &n);
    if (r == -2)
        return -2;
    if (r == -1 || neg || n > lim->max_bulk) {
        *err = ERR_BULK;
        return -1;
    }
    pos += 1 + (size_t)r;
    avail = len - pos;
    if (avail <= n)
        return -2;
    /* Data not followed by CRLF means the declared length was wrong. */
    if (buf[pos + n] != '\r' || (avail - n > 1 && buf[pos + n + 1] != '\n')) {
        *err = ERR_BULK;
        return -1;
    }
    if (avail - n < 2)
        return -2;
    arg->ptr = buf + pos;
    arg->len = (size_t)n;
    return (ssize_t)(pos + (size_t)n + 2);
}

/* Parses "*<n>\r\n" and n bulks from buf[0..len), buf[0] being '*'. */
static ssize_t parse_multibulk(const char *buf, size_t len, const struct resp_limits *lim,
                               struct resp_arg *argv, size_t *argc, const char **err)
{
    bool neg;
    uint64_t n;
    ssize_t r = parse_number_line(buf + 1, len - 1, &neg, &n);
    size_t pos;

    if (r == -2)
        return -2;
    if (r == -1 || (neg && n != 1)) {
        *err = ERR_MULTIBULK;
        return -1;
    }
    pos = 1 + (size_t)r;
    if (neg || n == 0)
        return (ssize_t)pos;
    if (n > lim->max_args) {
        *err = ERR_TOO_MANY;
        return -1;
    }
    for (size_t k = 0; k < n; k++) {
        r = parse_bulk(buf, len, pos, lim, &argv[k], err);
        if (r < 0)
            return r;
        pos = (size_t)r;
    }
    *argc = (size_t)n;
    return (ssize_t)pos;
}

/* ---- inline ------------------------------------------------------------ */

/* sdssplitargs ends an unquoted word at these; '\n' never reaches here. */
static bool is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r';
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/*
 * Decodes one unit of a double-quoted word at p[0..avail) into *out and
 * returns the bytes it used. As in sdssplitargs, "\xHH" needs two hex
 * digits (else it is "x" then the digits) and an unknown "\c" is c.
 */
static size_t unescape_double(const char *p, size_t avail, char *out)
{
    if (p[0] != '\\' || avail < 2) {
        *out = p[0];
        return 1;
    }
    if (p[1] == 'x' && avail >= 4 && hex_value(p[2]) >= 0 && hex_value(p[3]) >= 0) {
        *out = (char)(hex_value(p[2]) * 16 + hex_value(p[3]));
        return 4;
    }
    switch (p[1]) {
    case 'n':
        *out = '\n';
        break;
    case 'r':
        *out = '\r';
        break;
    case 't':
        *out = '\t';
        break;
    case 'b':
        *out = '\b';
        break;
    case 'a':
        *out = '\a';
        break;
    default:
        *out = p[1];
        break;
    }
    return 2;
}

/* Single quotes know one escape, \' ; any other backslash is literal. */
static size_t unescape_single(const char *p, size_t avail, char *out)
{
    if (p[0] == '\\' && avail >= 2 && p[1] == '\'') {
        *out = '\'';
        return 2;
    }
    *out = p[0];
    return 1;
}

/*
 * Reads the word starting at s[*ip] of the line s[0..n), decoding it in
 * place from s[*wp]. A quote anywhere in a word opens a quoted part; a
 * closing quote ends the word and must be followed by a blank or the end
 * of the line. Returns 0 with *ip past the word and *wp past its decoded
 * bytes, or -1 for unbalanced quotes.
 */
static int read_word(char *s, size_t n, size_t *ip, size_t *wp)
{
    size_t i = *ip, w = *wp;
    char quote = 0;

    while (i < n && (quote != 0 || !is_blank(s[i]))) {
        if (quote == 0 && (s[i] == '"' || s[i] == '\'')) {
            quote = s[i++];
        } else if (quote == 0) {
            s[w++] = s[i++];
        } else if (s[i] == quote) {
            i++;
            if (i < n && !is_blank(s[i]))
                return -1;
            quote = 0;
            break;
        } else if (quote == '"') {
            i += unescape_double(s + i, n - i, &s[w++]);
        } else {
            i += unescape_single(s + i, n - i, &s[w++]);
        }
    }
    if (quote != 0)
        return -1;
    *ip = i;
    *wp = w;
    return 0;
}

/* Splits the complete line s[0..n) (CRLF removed) into argv. */
static int split_inline(char *s, size_t n, const struct resp_limits *lim, struct resp_arg *argv,
                        size_t *argc, const char **err)
{
    size_t i = 0, k = 0;

    for (;;) {
        size_t start, w;

        while (i < n && is_blank(s[i]))
            i++;
        if (i == n)
            break;
        if (k == lim->max_args) {
            *err = ERR_TOO_MANY;
            return -1;
        }
        start = w = i;
        if (read_word(s, n, &i, &w) < 0) {
            *err = ERR_QUOTES;
            return -1;
        }
        argv[k].ptr = s + start;
        argv[k].len = w - start;
        k++;
    }
    *argc = k;
    return 0;
}

/*
 * Parses one inline line ending in "\n" (an optional "\r" before it is not
 * part of the line). Looks for the "\n" only within max_inline + 2 bytes.
 */
static ssize_t parse_inline(char *buf, size_t len, const struct resp_limits *lim,
                            struct resp_arg *argv, size_t *argc, const char **err)
{
    size_t scan = len, end, content;
    const char *nl;

    if (lim->max_inline < len && len - lim->max_inline > 2)
        scan = lim->max_inline + 2;
    nl = memchr(buf, '\n', scan);
    if (nl == NULL) {
        /* A trailing "\r" may be the terminator's first half. */
        content = len - (buf[len - 1] == '\r' ? 1 : 0);
        if (content > lim->max_inline) {
            *err = ERR_INLINE_SIZE;
            return -1;
        }
        return -2;
    }
    end = (size_t)(nl - buf);
    content = end - (end > 0 && buf[end - 1] == '\r' ? 1 : 0);
    if (content > lim->max_inline) {
        *err = ERR_INLINE_SIZE;
        return -1;
    }
    if (split_inline(buf, content, lim, argv, argc, err) < 0)
        return -1;
    return (ssize_t)(end + 1);
}

/* ---- entry point ------------------------------------------------------- */

ssize_t resp_parse_command(char *buf, size_t len, const struct resp_limits *lim,
                           struct resp_arg *argv, size_t *argc, const char **err)
{
    *argc = 0;
    if (len == 0)
        return -2;
    if (buf[0] == '*')
        return parse_multibulk(buf, len, lim, argv, argc, err);
    return parse_inline(buf, len, lim, argv, argc, err);
}

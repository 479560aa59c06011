#include "common/topic.h"

#include <string.h>

/*
 * Topic and pattern syntax: validation and the reference matcher.
 *
 * Owns nothing: every function borrows its input bytes for the call and
 * allocates nothing, so it can run on unterminated views straight out of a
 * parser. Tokens are found with memchr over [s, s+len); a valid string has
 * no empty token, so "exhausted" is simply "the cursor went past len".
 *
 * One checker serves both topic_valid and topic_pattern_valid (a flag says
 * whether wildcards are allowed) so the two can never disagree about what a
 * token is. topic_matches is the straightforward token-by-token matcher the
 * trie is tested against; the trie never calls it.
 *
 * Rejected: a regex or glob engine (patterns are whole-token only, so two
 * cursors suffice), and a NUL-terminated API (topics arrive as views).
 */

static const struct topic_limits default_limits = {
    .max_len = TOPIC_DEFAULT_MAX_LEN,
    .max_tokens = TOPIC_DEFAULT_MAX_TOKENS,
};

/* Checks the bytes of one token s[0..n); n >= 1. at_end: it is the last token. */
static bool token_ok(const char *s, size_t n, bool wild, bool at_end, const char **err)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        /* 0x21..0x7e: printable ASCII without space; '.' never reaches here. */
        if (c < 0x21 || c > 0x7e) {
            *err = "topic has a space or non-printable byte";
            return false;
        }
        if (c != '*' && c != '>')
            continue;
        if (n != 1) {
            *err = "wildcard inside a token";
            return false;
        }
        if (!wild) {
            *err = "wildcard in a publish topic";
            return false;
        }
        if (c == '>' && !at_end) {
            *err = "'>' must be the last token";
            return false;
        }
    }
    return true;
}

static bool check(const char *s, size_t len, const struct topic_limits *lim, bool wild,
                  const char **err)
{
    const char *dummy;
    if (!err)
        err = &dummy;
    if (!lim)
        lim = &default_limits;
    if (len == 0) {
        *err = "empty topic";
        return false;
    }
    if (len > lim->max_len) {
        *err = "topic too long";
        return false;
    }
    size_t tokens = 0;
    size_t i = 0;
    while (i <= len) {
        const char *dot = memchr(s + i, '.', len - i);
        size_t end = dot ? (size_t)(dot - s) : len;
        if (end == i) {
            *err = "empty token in topic";
            return false;
        }
        if (++tokens > lim->max_tokens) {
            *err = "too many tokens in topic";
            return false;
        }
        if (!token_ok(s + i, end - i, wild, end == len, err))
            return false;
        i = end + 1;
    }
    return true;
}

bool topic_valid(const char *s, size_t len, const struct topic_limits *lim, const char **err)
{
    return check(s, len, lim, false, err);
}

bool topic_pattern_valid(const char *s, size_t len, const struct topic_limits *lim,
                         const char **err)
{
    return check(s, len, lim, true, err);
}

bool topic_is_pattern(const char *s, size_t len)
{
    /* In a valid pattern '*' and '>' only ever appear as whole tokens. */
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '*' || s[i] == '>')
            return true;
    }
    return false;
}

/* Length of the token starting at s[i], i <= len. */
static size_t token_len(const char *s, size_t len, size_t i)
{
    const char *dot = memchr(s + i, '.', len - i);
    return dot ? (size_t)(dot - (s + i)) : len - i;
}

bool topic_matches(const char *pattern, size_t plen, const char *topic, size_t tlen)
{
    size_t p = 0;
    size_t t = 0;
    /* A cursor past its length means that side has no tokens left. */
    while (p <= plen) {
        size_t pn = token_len(pattern, plen, p);
        if (pn == 1 && pattern[p] == '>')
            return t <= tlen;
        if (t > tlen)
            return false;
        size_t tn = token_len(topic, tlen, t);
        bool star = pn == 1 && pattern[p] == '*';
        if (!star && (pn != tn || memcmp(pattern + p, topic + t, pn) != 0))
            return false;
        p += pn + 1;
        t += tn + 1;
    }
    return t > tlen;
}

#ifndef HERALD_COMMON_JSON_STR_H
#define HERALD_COMMON_JSON_STR_H

#include <stddef.h>

/*
 * The inside of a JSON string (RFC 8259), written by hand where a JSON
 * library would cost an allocation: the edge's event envelopes and
 * replies, the broker's HTTP error bodies.
 */

/*
 * Writes s[0..n) escaped for the inside of a JSON string into out[0..cap)
 * and returns the escaped length; like snprintf it stores only what fits
 * (and no NUL), so a call with cap 0 (out may then be NULL) measures.
 * '"' and '\\' get a backslash, control characters the short forms
 * (\b \f \n \r \t) or \u00XX, and each invalid UTF-8 sequence (its maximal
 * well-formed prefix, at least one byte) becomes one \ufffd, so the
 * result is valid UTF-8 whatever s holds. Everything else is copied.
 */
size_t json_str_escape(char *out, size_t cap, const void *s, size_t n);

/*
 * A bounded writer for JSON text: stores what fits in buf[0..cap) and
 * counts everything in len (like snprintf), so len >= cap means the text
 * did not fit.
 */
struct json_out {
    char *buf;
    size_t cap; /* bytes that may be stored */
    size_t len; /* bytes produced so far, stored or not */
};

/* Appends s[0..n) / the C string s / s[0..n) escaped (json_str_escape) to o. */
void json_out_put(struct json_out *o, const void *s, size_t n);
void json_out_str(struct json_out *o, const char *s);
void json_out_escaped(struct json_out *o, const void *s, size_t n);

#endif

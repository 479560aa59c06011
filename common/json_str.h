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

#endif

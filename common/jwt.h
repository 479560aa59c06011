#ifndef HERALD_COMMON_JWT_H
#define HERALD_COMMON_JWT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/topic.h"

/*
 * Signed subscription tokens (docs/protocol.md §3.10): compact JWS
 * (RFC 7515) with HS256 only (HMAC-SHA256, OpenSSL libcrypto), claims
 * parsed with jansson. Pure code: no I/O, the clock is a parameter.
 *
 * A token is accepted only when all of these hold:
 *   - three base64url parts (no padding), at most JWT_MAX_LEN bytes in all;
 *   - the header is a JSON object whose "alg" is exactly "HS256" (so
 *     "none", "HS384", "RS256" and alg confusion are refused), whose
 *     "typ", when present, is "JWT", and which has no "crit" (RFC 7515
 *     §4.1.11: we understand no extension);
 *   - the signature is HMAC-SHA256(secret, header "." payload), compared in
 *     constant time (CRYPTO_memcmp);
 *   - the payload is a JSON object with "sub" (a string that is one literal
 *     topic token: no '.', '*' or '>', at most JWT_MAX_SUB bytes; an
 *     integer is taken as its decimal text), "exp" (integer seconds since
 *     the epoch, now < exp), "topics" (an array of at most JWT_MAX_TOPICS
 *     strings) and optionally "nbf" (integer, nbf <= now);
 *   - every "topics" entry, once each "{sub}" in it is replaced by the
 *     subject, is a valid pattern under lim (topic_pattern_valid).
 */

#define JWT_MAX_LEN    4096 /* longest token, all three parts and the dots */
#define JWT_MAX_SUB    128  /* longest subject */
#define JWT_MAX_TOPICS 32   /* most patterns in "topics" */

enum jwt_status {
    JWT_OK = 0,
    JWT_MALFORMED,     /* not three base64url parts, not JSON objects, oversize */
    JWT_BAD_ALG,       /* alg is not HS256 (none, HS384, RS256, ...) or typ is not JWT */
    JWT_BAD_SIGNATURE, /* HMAC mismatch */
    JWT_MISSING_CLAIM, /* sub, exp or topics absent */
    JWT_BAD_CLAIM,     /* a claim of the wrong type or out of bounds, a bad pattern */
    JWT_EXPIRED,       /* now >= exp */
    JWT_NOT_YET_VALID, /* now < nbf */
};

/* The verified claims. topics[i] point into one owned block; free with jwt_claims_free. */
struct jwt_claims {
    char sub[JWT_MAX_SUB + 1];
    int64_t exp;
    int64_t nbf; /* 0 when absent */
    size_t ntopics;
    const char *topics[JWT_MAX_TOPICS]; /* NUL-terminated, {sub} already replaced */
    size_t topic_lens[JWT_MAX_TOPICS];
    char *block; /* owns the topic texts */
};

/*
 * Verifies tok[0..len) against key[0..keylen) at time now (seconds since the
 * epoch). Returns JWT_OK with *out filled (release with jwt_claims_free), or
 * another status with *err (static text for logs and replies) and *out
 * holding nothing to free. On JWT_EXPIRED and JWT_NOT_YET_VALID the
 * signature was good and every claim valid: the clock is checked last.
 * An empty key verifies nothing (JWT_BAD_SIGNATURE).
 */
enum jwt_status jwt_verify(const char *tok, size_t len, const uint8_t *key, size_t keylen,
                           int64_t now, const struct topic_limits *lim, struct jwt_claims *out,
                           const char **err);

/* Frees what jwt_verify allocated (safe on a zeroed struct and twice). */
void jwt_claims_free(struct jwt_claims *c);

/* The wire name of a status: "ok", "malformed", "bad_alg", "bad_signature", ... */
const char *jwt_status_name(enum jwt_status s);

/*
 * Mints an HS256 token with {"sub":sub,"iat":iat,"exp":exp,"topics":[...]}
 * (and "nbf" when nbf != 0). Returns a malloc'ed NUL-terminated string, or
 * NULL when an argument is out of the bounds above: an empty key, a bad
 * subject, more than JWT_MAX_TOPICS topics, a topic that once "{sub}" is
 * replaced is not a valid pattern under the largest limits
 * (TOPIC_MAX_LEN, TOPIC_MAX_TOKENS), or a token longer than JWT_MAX_LEN.
 * Topics are written as given ("{sub}" stays for the verifier to
 * replace). For `herald token` and the tests.
 */
char *jwt_sign(const uint8_t *key, size_t keylen, const char *sub, int64_t iat, int64_t nbf,
               int64_t exp, const char *const *topics, size_t ntopics);

#endif

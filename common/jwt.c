/*
 * jwt.c - HS256 subscription tokens: the verifier and the signer
 * (common/jwt.h, docs/protocol.md §3.10).
 *
 * A token is checked in the order that trusts the least first: its shape
 * (length, three parts, each canonical unpadded base64url), then the header
 * (alg and typ), then the HMAC over the text of the first two parts, and
 * only then is the payload parsed and its claims read; the clock is looked
 * at last, so JWT_EXPIRED and JWT_NOT_YET_VALID mean "valid but for the
 * time". All decoding happens in one stack buffer of JWT_MAX_LEN bytes
 * (base64url only shrinks); the only allocations are jansson's trees, freed
 * before returning, and the claims' topic block, measured (and refused
 * when over lim->max_len) before it is allocated.
 *
 * Base64url is decoded strictly: padding, any byte outside the alphabet,
 * an impossible length and non-zero unused bits in the last character are
 * all refused, so every byte string has exactly one spelling and a flipped
 * bit in the signature can never decode to the same 32 bytes. JSON is
 * parsed with JSON_REJECT_DUPLICATES (a second "alg" or "sub" could
 * otherwise mean different things to different readers) and without
 * JSON_DECODE_ANY or JSON_DISABLE_EOF_CHECK, so only an object or array
 * followed by nothing but white space parses; jansson bounds the nesting
 * depth itself (2048) and the token length bounds it anyway.
 *
 * "{sub}" is replaced in the topic patterns by plain substitution, left to
 * right, never rescanning inserted text. The subject is one literal topic
 * token (no '.', '*' or '>'), so the substitution cannot add a token or a
 * wildcard: the grant can never be wider than the pattern as signed.
 *
 * Rejected: a general JOSE library (every algorithm we do not accept is
 * attack surface: alg none, RS/HS confusion), a crit header we would not
 * understand (RFC 7515 §4.1.11 says a recipient must refuse it, so any
 * "crit" is refused), and checking the signature before reading the
 * header (the answer for alg none or RS256 would then be "bad signature",
 * which tells an operator less).
 */
#include "common/jwt.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "common/mem.h"

#define SIG_LEN     32 /* HMAC-SHA256 */
#define SIG_B64_LEN 43 /* its unpadded base64url */
#define SUB_MARK    "{sub}"
#define SUB_MARK_N  (sizeof(SUB_MARK) - 1)
/* {"alg":"HS256","typ":"JWT"}: the header jwt_sign writes. */
#define HEADER_B64 "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"

/* The subject: exactly one topic token of at most JWT_MAX_SUB bytes. */
static const struct topic_limits sub_limits = {.max_len = JWT_MAX_SUB, .max_tokens = 1};

/* What jwt_sign accepts as a pattern: the largest limits a configuration can set. */
static const struct topic_limits sign_limits = {.max_len = TOPIC_MAX_LEN,
                                                .max_tokens = TOPIC_MAX_TOKENS};

static enum jwt_status fail(const char **err, enum jwt_status st, const char *why)
{
    if (err)
        *err = why;
    return st;
}

/* ---- base64url (RFC 4648 §5, no padding) --------------------------------- */

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static int b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
}

/*
 * Decodes s[0..n) into out (room for n * 3 / 4 bytes) and sets *outlen.
 * Returns 0, or -1 for a byte outside the alphabet ('=' included), a
 * length no encoding has (n % 4 == 1), or unused bits that are not zero.
 */
static int b64url_decode(const char *s, size_t n, uint8_t *out, size_t *outlen)
{
    uint32_t acc = 0;
    unsigned bits = 0;
    size_t o = 0;

    if (n % 4 == 1)
        return -1;
    for (size_t i = 0; i < n; i++) {
        int v = b64_value((unsigned char)s[i]);

        if (v < 0)
            return -1;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (uint8_t)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    /* The 2 or 4 bits left over must be zero: one spelling per byte string. */
    if (acc != 0)
        return -1;
    *outlen = o;
    return 0;
}

/* Encodes in[0..n) into out (room for (n * 4 + 2) / 3 bytes); returns the length written. */
static size_t b64url_encode(const uint8_t *in, size_t n, char *out)
{
    uint32_t acc = 0;
    unsigned bits = 0;
    size_t o = 0;

    for (size_t i = 0; i < n; i++) {
        acc = (acc << 8) | in[i];
        bits += 8;
        while (bits >= 6) {
            bits -= 6;
            out[o++] = b64_alphabet[(acc >> bits) & 63];
        }
        acc &= (1u << bits) - 1;
    }
    if (bits > 0)
        out[o++] = b64_alphabet[(acc << (6 - bits)) & 63];
    return o;
}

/* ---- pieces shared by the verifier and the signer ------------------------ */

/* HMAC-SHA256(key, msg[0..n)) into md. False when the key is empty or too long for OpenSSL. */
static bool hmac_sha256(const uint8_t *key, size_t keylen, const char *msg, size_t n,
                        uint8_t md[SIG_LEN])
{
    unsigned int mdlen = 0;

    if (key == NULL || keylen == 0 || keylen > INT_MAX)
        return false;
    return HMAC(EVP_sha256(), key, (int)keylen, (const unsigned char *)msg, n, md, &mdlen) !=
               NULL &&
           mdlen == SIG_LEN;
}

/*
 * Writes p[0..n) with each "{sub}" replaced by sub[0..sublen) into out
 * (may be NULL: only measures) and returns the length of the result.
 */
static size_t substitute(const char *p, size_t n, const char *sub, size_t sublen, char *out)
{
    size_t o = 0;
    size_t i = 0;

    while (i < n) {
        if (n - i >= SUB_MARK_N && memcmp(p + i, SUB_MARK, SUB_MARK_N) == 0) {
            if (out)
                memcpy(out + o, sub, sublen);
            o += sublen;
            i += SUB_MARK_N;
            continue;
        }
        if (out)
            out[o] = p[i];
        o++;
        i++;
    }
    return o;
}

/* ---- verifying ----------------------------------------------------------- */

/* The token's three parts, each decoded into the caller's buffer. */
struct parts {
    size_t signed_len; /* bytes of "header.payload", the HMAC's input */
    const uint8_t *header, *payload, *sig;
    size_t header_len, payload_len, sig_len;
};

/* Splits tok[0..len) at its two dots and decodes each part into buf (JWT_MAX_LEN bytes). */
static enum jwt_status split(const char *tok, size_t len, uint8_t *buf, struct parts *pt,
                             const char **err)
{
    const char *end = tok + len;
    const char *d1 = memchr(tok, '.', len);
    const char *d2 = d1 ? memchr(d1 + 1, '.', (size_t)(end - d1 - 1)) : NULL;
    size_t used = 0;

    if (d2 == NULL || memchr(d2 + 1, '.', (size_t)(end - d2 - 1)) != NULL)
        return fail(err, JWT_MALFORMED, "token is not three dot-separated parts");
    pt->signed_len = (size_t)(d2 - tok);
    pt->header = buf;
    if (b64url_decode(tok, (size_t)(d1 - tok), buf, &pt->header_len) < 0)
        goto bad;
    used += pt->header_len;
    pt->payload = buf + used;
    if (b64url_decode(d1 + 1, (size_t)(d2 - d1 - 1), buf + used, &pt->payload_len) < 0)
        goto bad;
    used += pt->payload_len;
    pt->sig = buf + used;
    if (b64url_decode(d2 + 1, (size_t)(end - d2 - 1), buf + used, &pt->sig_len) < 0)
        goto bad;
    return JWT_OK;
bad:
    return fail(err, JWT_MALFORMED, "token part is not unpadded base64url");
}

/* True when the JSON value is the string s exactly. */
static bool json_is_text(const json_t *v, const char *s)
{
    size_t n = strlen(s);

    return json_is_string(v) && json_string_length(v) == n &&
           memcmp(json_string_value(v), s, n) == 0;
}

/* Parses bytes as a JSON object (duplicate keys and trailing bytes refused); NULL if it is not one.
 */
static json_t *parse_object(const uint8_t *s, size_t n)
{
    json_error_t jerr;
    json_t *v = json_loadb((const char *)s, n, JSON_REJECT_DUPLICATES, &jerr);

    if (v != NULL && !json_is_object(v)) {
        json_decref(v);
        v = NULL;
    }
    return v;
}

static enum jwt_status check_header(const struct parts *pt, const char **err)
{
    json_t *h = parse_object(pt->header, pt->header_len);
    enum jwt_status st = JWT_OK;

    if (h == NULL)
        return fail(err, JWT_MALFORMED, "token header is not a JSON object");
    if (!json_is_text(json_object_get(h, "alg"), "HS256"))
        st = fail(err, JWT_BAD_ALG, "token alg is not HS256");
    else if (json_object_get(h, "typ") != NULL && !json_is_text(json_object_get(h, "typ"), "JWT"))
        st = fail(err, JWT_BAD_ALG, "token typ is not JWT");
    else if (json_object_get(h, "crit") != NULL)
        st = fail(err, JWT_BAD_ALG, "token header has crit");
    json_decref(h);
    return st;
}

static enum jwt_status check_signature(const char *tok, const struct parts *pt, const uint8_t *key,
                                       size_t keylen, const char **err)
{
    uint8_t md[SIG_LEN];

    if (!hmac_sha256(key, keylen, tok, pt->signed_len, md))
        return fail(err, JWT_BAD_SIGNATURE, "no usable key");
    if (pt->sig_len != SIG_LEN || CRYPTO_memcmp(md, pt->sig, SIG_LEN) != 0)
        return fail(err, JWT_BAD_SIGNATURE, "token signature does not match");
    return JWT_OK;
}

/* Reads "sub" (a string, or an integer as its decimal text) into out->sub. */
static enum jwt_status read_sub(const json_t *v, struct jwt_claims *out, const char **err)
{
    size_t n;

    if (json_is_integer(v)) {
        /* At most 20 characters, all digits but a leading '-': one valid token. */
        snprintf(out->sub, sizeof(out->sub), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        return JWT_OK;
    }
    if (!json_is_string(v))
        return fail(err, JWT_BAD_CLAIM, "token sub is not a string");
    n = json_string_length(v);
    if (!topic_valid(json_string_value(v), n, &sub_limits, NULL))
        return fail(err, JWT_BAD_CLAIM, "token sub is not one topic token");
    memcpy(out->sub, json_string_value(v), n);
    out->sub[n] = '\0';
    return JWT_OK;
}

/*
 * Copies the "topics" array, each "{sub}" replaced, into one new block
 * (out->block) and checks every result is a valid pattern under lim.
 */
static enum jwt_status read_topics(const json_t *arr, const struct topic_limits *lim,
                                   struct jwt_claims *out, const char **err)
{
    size_t max_len = lim ? lim->max_len : TOPIC_DEFAULT_MAX_LEN;
    size_t sublen = strlen(out->sub);
    size_t n = json_array_size(arr), total = 0, off = 0;

    if (n > JWT_MAX_TOPICS)
        return fail(err, JWT_BAD_CLAIM, "token has too many topics");
    for (size_t i = 0; i < n; i++) {
        const json_t *t = json_array_get(arr, i);

        if (!json_is_string(t))
            return fail(err, JWT_BAD_CLAIM, "token topic is not a string");
        out->topic_lens[i] =
            substitute(json_string_value(t), json_string_length(t), out->sub, sublen, NULL);
        /* Measured before anything is allocated: the block is bounded by the limit. */
        if (out->topic_lens[i] > max_len)
            return fail(err, JWT_BAD_CLAIM, "token topic is too long");
        total += out->topic_lens[i] + 1;
    }
    out->block = mem_alloc(total);
    for (size_t i = 0; i < n; i++) {
        const json_t *t = json_array_get(arr, i);
        char *dst = out->block + off;

        substitute(json_string_value(t), json_string_length(t), out->sub, sublen, dst);
        dst[out->topic_lens[i]] = '\0';
        out->topics[i] = dst;
        off += out->topic_lens[i] + 1;
        if (!topic_pattern_valid(dst, out->topic_lens[i], lim, NULL))
            return fail(err, JWT_BAD_CLAIM, "token topic is not a valid pattern");
    }
    out->ntopics = n;
    return JWT_OK;
}

static enum jwt_status read_claims(const json_t *c, int64_t now, const struct topic_limits *lim,
                                   struct jwt_claims *out, const char **err)
{
    const json_t *sub = json_object_get(c, "sub");
    const json_t *exp = json_object_get(c, "exp");
    const json_t *nbf = json_object_get(c, "nbf");
    const json_t *topics = json_object_get(c, "topics");
    enum jwt_status st;

    if (sub == NULL || exp == NULL || topics == NULL)
        return fail(err, JWT_MISSING_CLAIM,
                    sub == NULL   ? "token has no sub"
                    : exp == NULL ? "token has no exp"
                                  : "token has no topics");
    if ((st = read_sub(sub, out, err)) != JWT_OK)
        return st;
    if (!json_is_integer(exp))
        return fail(err, JWT_BAD_CLAIM, "token exp is not an integer");
    if (nbf != NULL && !json_is_integer(nbf))
        return fail(err, JWT_BAD_CLAIM, "token nbf is not an integer");
    if (!json_is_array(topics))
        return fail(err, JWT_BAD_CLAIM, "token topics is not an array");
    if ((st = read_topics(topics, lim, out, err)) != JWT_OK)
        return st;
    out->exp = json_integer_value(exp);
    out->nbf = nbf != NULL ? json_integer_value(nbf) : 0;
    if (now >= out->exp)
        return fail(err, JWT_EXPIRED, "token expired");
    if (nbf != NULL && now < out->nbf)
        return fail(err, JWT_NOT_YET_VALID, "token not yet valid");
    return JWT_OK;
}

enum jwt_status jwt_verify(const char *tok, size_t len, const uint8_t *key, size_t keylen,
                           int64_t now, const struct topic_limits *lim, struct jwt_claims *out,
                           const char **err)
{
    uint8_t buf[JWT_MAX_LEN];
    struct parts pt;
    json_t *claims;
    enum jwt_status st;

    memset(out, 0, sizeof(*out));
    if (len == 0 || len > JWT_MAX_LEN)
        return fail(err, JWT_MALFORMED, len ? "token is too long" : "token is empty");
    if ((st = split(tok, len, buf, &pt, err)) != JWT_OK)
        return st;
    if ((st = check_header(&pt, err)) != JWT_OK)
        return st;
    if ((st = check_signature(tok, &pt, key, keylen, err)) != JWT_OK)
        return st;
    claims = parse_object(pt.payload, pt.payload_len);
    if (claims == NULL)
        return fail(err, JWT_MALFORMED, "token payload is not a JSON object");
    st = read_claims(claims, now, lim, out, err);
    json_decref(claims);
    if (st != JWT_OK)
        jwt_claims_free(out);
    return st;
}

void jwt_claims_free(struct jwt_claims *c)
{
    mem_free(c->block);
    memset(c, 0, sizeof(*c));
}

const char *jwt_status_name(enum jwt_status s)
{
    switch (s) {
    case JWT_OK:
        return "ok";
    case JWT_MALFORMED:
        return "malformed";
    case JWT_BAD_ALG:
        return "bad_alg";
    case JWT_BAD_SIGNATURE:
        return "bad_signature";
    case JWT_MISSING_CLAIM:
        return "missing_claim";
    case JWT_BAD_CLAIM:
        return "bad_claim";
    case JWT_EXPIRED:
        return "expired";
    case JWT_NOT_YET_VALID:
        return "not_yet_valid";
    }
    return "unknown";
}

/* ---- signing ------------------------------------------------------------- */

/* True when every argument is within the bounds jwt_verify enforces. */
static bool sign_args_ok(const char *sub, const char *const *topics, size_t ntopics)
{
    char buf[TOPIC_MAX_LEN + 1];
    size_t sublen;

    if (sub == NULL || !topic_valid(sub, strlen(sub), &sub_limits, NULL))
        return false;
    if (ntopics > JWT_MAX_TOPICS || (ntopics > 0 && topics == NULL))
        return false;
    sublen = strlen(sub);
    for (size_t i = 0; i < ntopics; i++) {
        size_t n;

        if (topics[i] == NULL)
            return false;
        n = substitute(topics[i], strlen(topics[i]), sub, sublen, NULL);
        if (n > TOPIC_MAX_LEN)
            return false;
        substitute(topics[i], strlen(topics[i]), sub, sublen, buf);
        if (!topic_pattern_valid(buf, n, &sign_limits, NULL))
            return false;
    }
    return true;
}

/* The compact claims JSON into buf[0..cap); returns its length (> cap: did not fit). */
static size_t claims_json(char *buf, size_t cap, const char *sub, int64_t iat, int64_t nbf,
                          int64_t exp, const char *const *topics, size_t ntopics)
{
    json_t *c = json_object();
    json_t *arr = json_array();
    size_t n;

    json_object_set_new(c, "sub", json_string(sub));
    json_object_set_new(c, "iat", json_integer(iat));
    if (nbf != 0)
        json_object_set_new(c, "nbf", json_integer(nbf));
    json_object_set_new(c, "exp", json_integer(exp));
    for (size_t i = 0; i < ntopics; i++)
        json_array_append_new(arr, json_string(topics[i]));
    json_object_set_new(c, "topics", arr);
    n = json_dumpb(c, buf, cap, JSON_COMPACT);
    json_decref(c);
    return n;
}

char *jwt_sign(const uint8_t *key, size_t keylen, const char *sub, int64_t iat, int64_t nbf,
               int64_t exp, const char *const *topics, size_t ntopics)
{
    char json[JWT_MAX_LEN];
    uint8_t md[SIG_LEN];
    size_t json_len, len;
    char *tok;

    if (!sign_args_ok(sub, topics, ntopics))
        return NULL;
    json_len = claims_json(json, sizeof(json), sub, iat, nbf, exp, topics, ntopics);
    /* header "." payload "." signature, each base64url (4 characters per 3 bytes). */
    len = (sizeof(HEADER_B64) - 1) + 1 + (json_len * 4 + 2) / 3 + 1 + SIG_B64_LEN;
    if (json_len == 0 || json_len > sizeof(json) || len > JWT_MAX_LEN)
        return NULL;
    tok = mem_alloc(len + 1);
    memcpy(tok, HEADER_B64, sizeof(HEADER_B64) - 1);
    len = sizeof(HEADER_B64) - 1;
    tok[len++] = '.';
    len += b64url_encode((const uint8_t *)json, json_len, tok + len);
    if (!hmac_sha256(key, keylen, tok, len, md)) {
        mem_free(tok);
        return NULL;
    }
    tok[len++] = '.';
    len += b64url_encode(md, SIG_LEN, tok + len);
    tok[len] = '\0';
    return tok;
}

/*
 * fuzz_jwt.c - libFuzzer target for common/jwt.c, the HS256 token verifier
 * and signer. make test runs it for a few seconds (CTest fuzz_jwt);
 * longer, by hand:
 *
 *   tests/fuzz/run.sh jwt 600
 *
 * or build it yourself from the repository root (run.sh prints the exact
 * command):
 *
 *   clang -std=gnu11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined \
 *       -fno-sanitize-recover=undefined -I. tests/fuzz/fuzz_jwt.c common/jwt.c \
 *       common/topic.c common/mem.c common/log.c \
 *       $(pkg-config --cflags --libs jansson libcrypto) -o fuzz_jwt
 *   ./fuzz_jwt -max_total_time=60 tests/fuzz/corpus/jwt
 *
 * Input: a mode byte, then the rest.
 *   'J'  the rest is a header JSON text, a newline, a payload JSON text
 *        (no newline: the payload alone under {"alg":"HS256"}); this target
 *        signs them with the fixed key (its own base64url and OpenSSL's
 *        HMAC), so the fuzzer reaches the claims, which it could never do
 *        by guessing an HMAC;
 *   else the rest is a token, verified as it is.
 * Every token is verified with the fixed key at a fixed time, from an
 * exact-size heap copy (ASan sees a read past its end).
 *
 * Checked: the status is one of the enum's and has a name; a refusal says
 * why (a non-empty static string) and leaves *out with nothing to free;
 * a token longer than JWT_MAX_LEN is always malformed; an accepted token
 * has a subject that is one topic token, now < exp, nbf <= now, at most
 * JWT_MAX_TOPICS topics, each NUL-terminated at its length and a valid
 * pattern under the limits given. Then the claims are signed again with
 * jwt_sign: it refuses them only when the token would be long, and the new
 * token verifies to the same claims (unless a topic still holds "{sub}",
 * which the second verification replaces again: then it must be accepted
 * or refused as too long, nothing else); the same token under another key
 * is refused for its signature.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "common/jwt.h"
#include "common/topic.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NOW 1700000000LL

static const uint8_t key[] = "herald-fuzz-key-0123456789abcdef";
static const uint8_t other_key[] = "herald-fuzz-key-0123456789abcdeF";
#define KEYLEN 32

static const struct topic_limits lim = {.max_len = 128, .max_tokens = 8};

/* Aborts naming the failed check, so libFuzzer reports the input. */
#define CHECK(cond) ((cond) ? (void)0 : check_failed(#cond, __LINE__))

static void __attribute__((noreturn)) check_failed(const char *what, int line)
{
    fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, line, what);
    abort();
}

/* ---- an independent signer ------------------------------------------------ */

static size_t b64url(const uint8_t *in, size_t n, char *out)
{
    static const char alpha[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t o = 0;

    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        size_t left = n - i;

        if (left > 1)
            v |= (uint32_t)in[i + 1] << 8;
        if (left > 2)
            v |= in[i + 2];
        out[o++] = alpha[v >> 18 & 63];
        out[o++] = alpha[v >> 12 & 63];
        if (left > 1)
            out[o++] = alpha[v >> 6 & 63];
        if (left > 2)
            out[o++] = alpha[v & 63];
    }
    return o;
}

/* The token for header[0..hn) and payload[0..pn), signed with key: a new string, its length in
 * *len. */
static char *sign_json(const uint8_t *header, size_t hn, const uint8_t *payload, size_t pn,
                       size_t *len)
{
    char *tok = malloc(4 * (hn + pn) / 3 + 64);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    size_t n = b64url(header, hn, tok);

    tok[n++] = '.';
    n += b64url(payload, pn, tok + n);
    CHECK(HMAC(EVP_sha256(), key, KEYLEN, (unsigned char *)tok, n, md, &mdlen) != NULL);
    tok[n++] = '.';
    n += b64url(md, mdlen, tok + n);
    *len = n;
    return tok;
}

/* ---- checks --------------------------------------------------------------- */

static bool has_sub_mark(const struct jwt_claims *c)
{
    for (size_t i = 0; i < c->ntopics; i++) {
        if (strstr(c->topics[i], "{sub}") != NULL)
            return true;
    }
    return false;
}

static void check_refusal(enum jwt_status st, const struct jwt_claims *c, const char *err)
{
    CHECK(st > JWT_OK && st <= JWT_NOT_YET_VALID);
    CHECK(err != NULL && err[0] != '\0');
    CHECK(c->block == NULL && c->ntopics == 0);
    CHECK(strcmp(jwt_status_name(st), "unknown") != 0);
}

static void check_claims(const struct jwt_claims *c)
{
    CHECK(topic_valid(c->sub, strlen(c->sub), NULL, NULL));
    CHECK(strchr(c->sub, '.') == NULL && strlen(c->sub) <= JWT_MAX_SUB);
    CHECK(NOW < c->exp && c->nbf <= NOW);
    CHECK(c->ntopics <= JWT_MAX_TOPICS);
    CHECK(c->ntopics == 0 || c->block != NULL);
    for (size_t i = 0; i < c->ntopics; i++) {
        CHECK(strlen(c->topics[i]) == c->topic_lens[i]);
        CHECK(topic_pattern_valid(c->topics[i], c->topic_lens[i], &lim, NULL));
    }
}

/* An upper bound of the claims JSON jwt_sign writes (every byte escaped, the longest integers). */
static size_t json_bound(const struct jwt_claims *c)
{
    size_t n = 64 + 3 * 21 + 6 * strlen(c->sub);

    for (size_t i = 0; i < c->ntopics; i++)
        n += 6 * c->topic_lens[i] + 3;
    return n;
}

static void check_resign(const struct jwt_claims *c)
{
    char *tok = jwt_sign(key, KEYLEN, c->sub, NOW, c->nbf, c->exp, c->topics, c->ntopics);
    struct jwt_claims again;
    const char *err = NULL;
    enum jwt_status st;

    if (tok == NULL) {
        /* Only a token that might pass JWT_MAX_LEN (header 37 + signature 44 bytes). */
        CHECK((json_bound(c) * 4 + 2) / 3 + 81 > JWT_MAX_LEN);
        return;
    }
    CHECK(strlen(tok) <= JWT_MAX_LEN);
    st = jwt_verify(tok, strlen(tok), other_key, KEYLEN, NOW, &lim, &again, &err);
    CHECK(st == JWT_BAD_SIGNATURE);
    st = jwt_verify(tok, strlen(tok), key, KEYLEN, NOW, &lim, &again, &err);
    if (has_sub_mark(c)) {
        CHECK(st == JWT_OK || (st == JWT_BAD_CLAIM && strcmp(err, "token topic is too long") == 0));
    } else {
        CHECK(st == JWT_OK);
        CHECK(strcmp(again.sub, c->sub) == 0 && again.exp == c->exp && again.nbf == c->nbf);
        CHECK(again.ntopics == c->ntopics);
        for (size_t i = 0; i < c->ntopics; i++)
            CHECK(again.topic_lens[i] == c->topic_lens[i] &&
                  strcmp(again.topics[i], c->topics[i]) == 0);
    }
    jwt_claims_free(&again);
    free(tok);
}

static void verify(const char *tok, size_t len)
{
    char *copy = malloc(len ? len : 1);
    struct jwt_claims c;
    const char *err = NULL;
    enum jwt_status st;

    memcpy(copy, tok, len);
    st = jwt_verify(copy, len, key, KEYLEN, NOW, &lim, &c, &err);
    if (len > JWT_MAX_LEN)
        CHECK(st == JWT_MALFORMED);
    if (st == JWT_OK) {
        CHECK(len > 0);
        check_claims(&c);
        check_resign(&c);
    } else {
        check_refusal(st, &c, err);
    }
    jwt_claims_free(&c);
    jwt_claims_free(&c);
    free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char def_header[] = "{\"alg\":\"HS256\"}";
    const uint8_t *nl;
    char *tok;
    size_t len;

    if (size == 0)
        return 0;
    if (data[0] != 'J') {
        verify((const char *)data + 1, size - 1);
        return 0;
    }
    data++;
    size--;
    nl = memchr(data, '\n', size);
    if (nl == NULL)
        tok = sign_json((const uint8_t *)def_header, strlen(def_header), data, size, &len);
    else
        tok = sign_json(data, (size_t)(nl - data), nl + 1, size - (size_t)(nl - data) - 1, &len);
    verify(tok, len);
    free(tok);
    return 0;
}

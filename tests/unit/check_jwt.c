/*
 * HS256 tokens (common/jwt.h): a table of header/payload pairs signed here
 * with an independent signer (OpenSSL's HMAC and EVP_EncodeBlock, not
 * jwt.c's code), then the token's shape (parts, base64url, length), the
 * signature (every bit of every part flipped, other keys, other lengths),
 * and jwt_sign against jwt_verify.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "common/jwt.h"
#include "tests/support/check_main.h"

#define NOW 1700000000LL
static const uint8_t key[] = "0123456789abcdef0123456789abcdef";
#define KEYLEN 32

static const struct topic_limits lim = {.max_len = 64, .max_tokens = 6};

#define HS256 "{\"alg\":\"HS256\",\"typ\":\"JWT\"}"

/* ---- an independent signer ------------------------------------------------ */

/* Base64url of s[0..n) with no padding (EVP_EncodeBlock, then the URL alphabet). */
static char *b64(const void *s, size_t n)
{
    char *out = malloc(4 * (n / 3 + 1) + 1);
    int len = EVP_EncodeBlock((unsigned char *)out, s, (int)n);

    ck_assert_int_ge(len, 0);
    while (len > 0 && out[len - 1] == '=')
        len--;
    out[len] = '\0';
    for (int i = 0; i < len; i++) {
        if (out[i] == '+')
            out[i] = '-';
        else if (out[i] == '/')
            out[i] = '_';
    }
    return out;
}

/* "head.body." plus the HS256 signature of "head.body" under k, base64url. */
static char *sign_text(const char *head, const char *body, const uint8_t *k, size_t klen)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    size_t n = strlen(head) + strlen(body) + 1;
    char *tok = malloc(n + 2 + 4 * EVP_MAX_MD_SIZE / 3 + 4);
    char *sig;

    sprintf(tok, "%s.%s", head, body);
    ck_assert_ptr_nonnull(HMAC(EVP_sha256(), k, (int)klen, (unsigned char *)tok, n, md, &mdlen));
    sig = b64(md, mdlen);
    sprintf(tok + n, ".%s", sig);
    free(sig);
    return tok;
}

/* A token for header and payload JSON texts, signed with the test key. */
static char *mint(const char *header, const char *payload)
{
    char *h = b64(header, strlen(header));
    char *p = b64(payload, strlen(payload));
    char *tok = sign_text(h, p, key, KEYLEN);

    free(h);
    free(p);
    return tok;
}

static enum jwt_status verify(const char *tok, struct jwt_claims *c, const char **err)
{
    return jwt_verify(tok, strlen(tok), key, KEYLEN, NOW, &lim, c, err);
}

/* Asserts a refusal left nothing behind and said why. */
static void assert_refused(const struct jwt_claims *c, const char *err)
{
    ck_assert_ptr_null(c->block);
    ck_assert_uint_eq(c->ntopics, 0);
    ck_assert_ptr_nonnull(err);
    ck_assert(err[0] != '\0');
}

/* ---- the table ------------------------------------------------------------ */

struct token_case {
    const char *name;
    const char *header;
    const char *payload;
    enum jwt_status want;
};

#define EXP         "\"exp\":1700000060"
#define TOPIC       "\"topics\":[\"mail.user.{sub}.>\"]"
#define CLAIMS(...) "{\"sub\":\"42\"," EXP "," TOPIC __VA_ARGS__ "}"

static const struct token_case token_cases[] = {
    {"valid", HS256, CLAIMS(), JWT_OK},
    {"valid without typ", "{\"alg\":\"HS256\"}", CLAIMS(), JWT_OK},
    {"valid integer sub", HS256, "{\"sub\":42," EXP "," TOPIC "}", JWT_OK},
    {"valid negative integer sub", HS256, "{\"sub\":-7," EXP "," TOPIC "}", JWT_OK},
    {"valid nbf now", HS256, CLAIMS(",\"nbf\":1700000000"), JWT_OK},
    {"valid unknown claims", HS256, CLAIMS(",\"iat\":\"x\",\"aud\":[1],\"x\":{}"), JWT_OK},
    {"valid empty topics", HS256, "{\"sub\":\"42\"," EXP ",\"topics\":[]}", JWT_OK},
    {"valid exp one second ahead", HS256, "{\"sub\":\"42\",\"exp\":1700000001," TOPIC "}", JWT_OK},
    {"valid trailing white space", HS256, CLAIMS() " \n\t", JWT_OK},
    {"valid sub of 128 bytes", HS256,
     "{\"sub\":\"" /* 128 bytes */
     "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
     "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
     "\"," EXP ",\"topics\":[\"a\"]}",
     JWT_OK},
    /* time */
    {"expired at exp", HS256, "{\"sub\":\"42\",\"exp\":1700000000," TOPIC "}", JWT_EXPIRED},
    {"expired before", HS256, "{\"sub\":\"42\",\"exp\":1600000000," TOPIC "}", JWT_EXPIRED},
    {"expired negative exp", HS256, "{\"sub\":\"42\",\"exp\":-1," TOPIC "}", JWT_EXPIRED},
    {"not yet valid", HS256, CLAIMS(",\"nbf\":1700000001"), JWT_NOT_YET_VALID},
    /* alg and typ */
    {"alg none", "{\"alg\":\"none\",\"typ\":\"JWT\"}", CLAIMS(), JWT_BAD_ALG},
    {"alg None", "{\"alg\":\"None\"}", CLAIMS(), JWT_BAD_ALG},
    {"alg HS384", "{\"alg\":\"HS384\",\"typ\":\"JWT\"}", CLAIMS(), JWT_BAD_ALG},
    {"alg HS512", "{\"alg\":\"HS512\"}", CLAIMS(), JWT_BAD_ALG},
    {"alg RS256", "{\"alg\":\"RS256\",\"typ\":\"JWT\"}", CLAIMS(), JWT_BAD_ALG},
    {"alg ES256", "{\"alg\":\"ES256\"}", CLAIMS(), JWT_BAD_ALG},
    {"alg lower case", "{\"alg\":\"hs256\",\"typ\":\"JWT\"}", CLAIMS(), JWT_BAD_ALG},
    {"alg with a space", "{\"alg\":\"HS256 \"}", CLAIMS(), JWT_BAD_ALG},
    {"alg with a NUL", "{\"alg\":\"HS256\\u0000\"}", CLAIMS(), JWT_MALFORMED},
    {"alg missing", "{\"typ\":\"JWT\"}", CLAIMS(), JWT_BAD_ALG},
    {"alg a number", "{\"alg\":256}", CLAIMS(), JWT_BAD_ALG},
    {"alg null", "{\"alg\":null}", CLAIMS(), JWT_BAD_ALG},
    {"alg an array", "{\"alg\":[\"HS256\"]}", CLAIMS(), JWT_BAD_ALG},
    {"typ JWS", "{\"alg\":\"HS256\",\"typ\":\"JWS\"}", CLAIMS(), JWT_BAD_ALG},
    {"typ lower case", "{\"alg\":\"HS256\",\"typ\":\"jwt\"}", CLAIMS(), JWT_BAD_ALG},
    {"typ a number", "{\"alg\":\"HS256\",\"typ\":1}", CLAIMS(), JWT_BAD_ALG},
    {"crit", "{\"alg\":\"HS256\",\"crit\":[\"b64\"],\"b64\":false}", CLAIMS(), JWT_BAD_ALG},
    /* the header's JSON */
    {"header duplicate alg", "{\"alg\":\"HS256\",\"alg\":\"none\"}", CLAIMS(), JWT_MALFORMED},
    {"header an array", "[\"HS256\"]", CLAIMS(), JWT_MALFORMED},
    {"header a string", "\"HS256\"", CLAIMS(), JWT_MALFORMED},
    {"header empty", "", CLAIMS(), JWT_MALFORMED},
    {"header trailing garbage", HS256 "x", CLAIMS(), JWT_MALFORMED},
    {"header two objects", HS256 "{}", CLAIMS(), JWT_MALFORMED},
    /* the payload's JSON */
    {"payload trailing garbage", HS256, CLAIMS() "x", JWT_MALFORMED},
    {"payload two objects", HS256, CLAIMS() "{}", JWT_MALFORMED},
    {"payload duplicate sub", HS256, "{\"sub\":\"42\",\"sub\":\"43\"," EXP "," TOPIC "}",
     JWT_MALFORMED},
    {"payload duplicate topics", HS256, CLAIMS(",\"topics\":[\">\"]"), JWT_MALFORMED},
    {"payload an array", HS256, "[" CLAIMS() "]", JWT_MALFORMED},
    {"payload a number", HS256, "1", JWT_MALFORMED},
    {"payload empty", HS256, "", JWT_MALFORMED},
    {"payload not JSON", HS256, "sub=42", JWT_MALFORMED},
    {"payload truncated", HS256, "{\"sub\":\"42\"," EXP, JWT_MALFORMED},
    {"payload invalid UTF-8", HS256, "{\"sub\":\"\xff\"," EXP "," TOPIC "}", JWT_MALFORMED},
    {"payload NUL in sub", HS256, "{\"sub\":\"4\\u00002\"," EXP "," TOPIC "}", JWT_MALFORMED},
    {"payload huge integer", HS256, "{\"sub\":\"42\",\"exp\":1e999," TOPIC "}", JWT_MALFORMED},
    {"payload integer overflow", HS256, "{\"sub\":\"42\",\"exp\":99999999999999999999," TOPIC "}",
     JWT_MALFORMED},
    /* missing claims */
    {"missing sub", HS256, "{" EXP "," TOPIC "}", JWT_MISSING_CLAIM},
    {"missing exp", HS256, "{\"sub\":\"42\"," TOPIC "}", JWT_MISSING_CLAIM},
    {"missing topics", HS256, "{\"sub\":\"42\"," EXP "}", JWT_MISSING_CLAIM},
    {"missing everything", HS256, "{}", JWT_MISSING_CLAIM},
    /* claims of the wrong type or out of bounds */
    {"exp a string", HS256, "{\"sub\":\"42\",\"exp\":\"1700000060\"," TOPIC "}", JWT_BAD_CLAIM},
    {"exp a float", HS256, "{\"sub\":\"42\",\"exp\":1700000060.0," TOPIC "}", JWT_BAD_CLAIM},
    {"exp exponent", HS256, "{\"sub\":\"42\",\"exp\":17e8," TOPIC "}", JWT_BAD_CLAIM},
    {"exp null", HS256, "{\"sub\":\"42\",\"exp\":null," TOPIC "}", JWT_BAD_CLAIM},
    {"exp true", HS256, "{\"sub\":\"42\",\"exp\":true," TOPIC "}", JWT_BAD_CLAIM},
    {"nbf a string", HS256, CLAIMS(",\"nbf\":\"0\""), JWT_BAD_CLAIM},
    {"nbf a float", HS256, CLAIMS(",\"nbf\":1.5"), JWT_BAD_CLAIM},
    {"nbf null", HS256, CLAIMS(",\"nbf\":null"), JWT_BAD_CLAIM},
    {"topics a string", HS256, "{\"sub\":\"42\"," EXP ",\"topics\":\"a.b\"}", JWT_BAD_CLAIM},
    {"topics an object", HS256, "{\"sub\":\"42\"," EXP ",\"topics\":{\"a\":1}}", JWT_BAD_CLAIM},
    {"topic a number", HS256, "{\"sub\":\"42\"," EXP ",\"topics\":[\"a\",1]}", JWT_BAD_CLAIM},
    {"topic null", HS256, "{\"sub\":\"42\"," EXP ",\"topics\":[null]}", JWT_BAD_CLAIM},
    {"topic an array", HS256, "{\"sub\":\"42\"," EXP ",\"topics\":[[\"a\"]]}", JWT_BAD_CLAIM},
    {"topic empty", HS256, "{\"sub\":\"42\"," EXP ",\"topics\":[\"\"]}", JWT_BAD_CLAIM},
    {"topic empty token", HS256, "{\"sub\":\"42\"," EXP ",\"topics\":[\"a..b\"]}", JWT_BAD_CLAIM},
    {"topic > inside", HS256, "{\"sub\":\"42\"," EXP ",\"topics\":[\"a.>.b\"]}", JWT_BAD_CLAIM},
    {"topic a space", HS256, "{\"sub\":\"42\"," EXP ",\"topics\":[\"a b\"]}", JWT_BAD_CLAIM},
    {"topic non-ASCII", HS256, "{\"sub\":\"42\"," EXP ",\"topics\":[\"caf\xc3\xa9\"]}",
     JWT_BAD_CLAIM},
    {"topic too many tokens", HS256, "{\"sub\":\"42\"," EXP ",\"topics\":[\"a.b.c.d.e.f.g\"]}",
     JWT_BAD_CLAIM},
    {"topic too long", HS256,
     "{\"sub\":\"42\"," EXP ",\"topics\":["
     "\"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdefX\"]}",
     JWT_BAD_CLAIM},
    {"sub with a dot", HS256, "{\"sub\":\"4.2\"," EXP "," TOPIC "}", JWT_BAD_CLAIM},
    {"sub a star", HS256, "{\"sub\":\"*\"," EXP "," TOPIC "}", JWT_BAD_CLAIM},
    {"sub a >", HS256, "{\"sub\":\">\"," EXP "," TOPIC "}", JWT_BAD_CLAIM},
    {"sub with a star", HS256, "{\"sub\":\"4*\"," EXP "," TOPIC "}", JWT_BAD_CLAIM},
    {"sub with a >", HS256, "{\"sub\":\"4>\"," EXP "," TOPIC "}", JWT_BAD_CLAIM},
    {"sub empty", HS256, "{\"sub\":\"\"," EXP "," TOPIC "}", JWT_BAD_CLAIM},
    {"sub a space", HS256, "{\"sub\":\"4 2\"," EXP "," TOPIC "}", JWT_BAD_CLAIM},
    {"sub non-ASCII", HS256, "{\"sub\":\"\xc3\xa9\"," EXP "," TOPIC "}", JWT_BAD_CLAIM},
    {"sub a newline", HS256, "{\"sub\":\"4\\n\"," EXP "," TOPIC "}", JWT_BAD_CLAIM},
    {"sub a float", HS256, "{\"sub\":4.2," EXP "," TOPIC "}", JWT_BAD_CLAIM},
    {"sub true", HS256, "{\"sub\":true," EXP "," TOPIC "}", JWT_BAD_CLAIM},
    {"sub null", HS256, "{\"sub\":null," EXP "," TOPIC "}", JWT_BAD_CLAIM},
    {"sub an object", HS256, "{\"sub\":{}," EXP "," TOPIC "}", JWT_BAD_CLAIM},
    {"sub of 129 bytes", HS256,
     "{\"sub\":\""
     "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
     "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdefX"
     "\"," EXP ",\"topics\":[\"a\"]}",
     JWT_BAD_CLAIM},
    /* a bad claim wins over the clock: EXPIRED means valid but for the time */
    {"expired and bad topic", HS256, "{\"sub\":\"42\",\"exp\":1,\"topics\":[\"a..b\"]}",
     JWT_BAD_CLAIM},
};

#define TOKEN_CASES (sizeof(token_cases) / sizeof(token_cases[0]))

START_TEST(test_token_table)
{
    const struct token_case *tc = &token_cases[_i];
    char *tok = mint(tc->header, tc->payload);
    struct jwt_claims c;
    const char *err = NULL;
    enum jwt_status st = verify(tok, &c, &err);

    ck_assert_msg(st == tc->want, "%s: got %s (%s), want %s", tc->name, jwt_status_name(st),
                  err ? err : "-", jwt_status_name(tc->want));
    if (st == JWT_OK)
        ck_assert_ptr_nonnull(c.block);
    else
        assert_refused(&c, err);
    jwt_claims_free(&c);
    free(tok);
}

END_TEST

START_TEST(test_valid_claims)
{
    char *tok = mint(HS256, "{\"sub\":\"42\",\"exp\":1700000060,\"nbf\":1699999999,"
                            "\"topics\":[\"mail.user.{sub}.>\",\"news.*\"]}");
    struct jwt_claims c;
    const char *err = NULL;

    ck_assert_int_eq(verify(tok, &c, &err), JWT_OK);
    ck_assert_str_eq(c.sub, "42");
    ck_assert_int_eq(c.exp, 1700000060);
    ck_assert_int_eq(c.nbf, 1699999999);
    ck_assert_uint_eq(c.ntopics, 2);
    ck_assert_str_eq(c.topics[0], "mail.user.42.>");
    ck_assert_uint_eq(c.topic_lens[0], strlen("mail.user.42.>"));
    ck_assert_str_eq(c.topics[1], "news.*");
    ck_assert_uint_eq(c.topic_lens[1], 6);
    jwt_claims_free(&c);
    ck_assert_ptr_null(c.block);
    jwt_claims_free(&c);
    free(tok);
}

END_TEST

START_TEST(test_integer_sub)
{
    char *tok = mint(HS256, "{\"sub\":9007199254740993,\"exp\":1700000060,"
                            "\"topics\":[\"u.{sub}\"]}");
    struct jwt_claims c;

    ck_assert_int_eq(verify(tok, &c, NULL), JWT_OK);
    ck_assert_str_eq(c.sub, "9007199254740993");
    ck_assert_str_eq(c.topics[0], "u.9007199254740993");
    ck_assert_int_eq(c.nbf, 0);
    jwt_claims_free(&c);
    free(tok);
}

END_TEST

/* ---- subject substitution ------------------------------------------------- */

struct subst_case {
    const char *sub;
    const char *topic;
    const char *want; /* NULL: refused (JWT_BAD_CLAIM) */
};

static const struct subst_case subst_cases[] = {
    {"42", "mail.user.{sub}.>", "mail.user.42.>"},
    {"42", "{sub}", "42"},
    {"42", "a.{sub}.{sub}.x", "a.42.42.x"},
    {"42", "{sub}.{sub}.{sub}", "42.42.42"},
    {"42", "x{sub}y.{sub}{sub}", "x42y.4242"},
    {"42", "{{sub}}", "{42}"},
    {"42", "{sub", "{sub"},
    {"42", "sub}", "sub}"},
    {"42", "{SUB}", "{SUB}"},
    {"42", "{su{sub}b}", "{su42b}"},
    {"42", "a.b", "a.b"},
    {"{sub}", "u.{sub}", "u.{sub}"}, /* inserted text is not scanned again */
    {"b}", "u.{su{sub}", "u.{sub}"}, /* nor text that only becomes "{sub}" */
    {"42", "{sub}.*.>", "42.*.>"},
    {"x", "{sub}{sub}{sub}{sub}{sub}", "xxxxx"},
    /* 30 bytes twice plus a dot: 61 <= 64 */
    {"abcdefghijklmnopqrstuvwxyz0123", "{sub}.{sub}",
     "abcdefghijklmnopqrstuvwxyz0123.abcdefghijklmnopqrstuvwxyz0123"},
    /* 30 bytes thrice: over lim.max_len once replaced */
    {"abcdefghijklmnopqrstuvwxyz0123", "{sub}.{sub}.{sub}", NULL},
    /* 7 tokens once replaced: over lim.max_tokens */
    {"42", "{sub}.{sub}.{sub}.{sub}.{sub}.{sub}.{sub}", NULL},
};

START_TEST(test_substitution)
{
    const struct subst_case *sc = &subst_cases[_i];
    char payload[512];
    struct jwt_claims c;
    const char *err = NULL;
    char *tok;
    enum jwt_status st;

    snprintf(payload, sizeof(payload), "{\"sub\":\"%s\",\"exp\":1700000060,\"topics\":[\"%s\"]}",
             sc->sub, sc->topic);
    tok = mint(HS256, payload);
    st = verify(tok, &c, &err);
    if (sc->want == NULL) {
        ck_assert_int_eq(st, JWT_BAD_CLAIM);
        assert_refused(&c, err);
    } else {
        ck_assert_msg(st == JWT_OK, "%s / %s: %s", sc->sub, sc->topic, err);
        ck_assert_uint_eq(c.ntopics, 1);
        ck_assert_str_eq(c.topics[0], sc->want);
        ck_assert_uint_eq(c.topic_lens[0], strlen(sc->want));
    }
    jwt_claims_free(&c);
    free(tok);
}

END_TEST

/* JWT_MAX_TOPICS topics pass, one more is refused; the block holds each, NUL-terminated. */
START_TEST(test_topic_count)
{
    for (size_t n = JWT_MAX_TOPICS; n <= JWT_MAX_TOPICS + 1; n++) {
        char payload[1024];
        size_t off = (size_t)snprintf(payload, sizeof(payload),
                                      "{\"sub\":\"s\",\"exp\":1700000060,\"topics\":[");
        struct jwt_claims c;
        const char *err = NULL;
        char *tok;

        for (size_t i = 0; i < n; i++)
            off += (size_t)snprintf(payload + off, sizeof(payload) - off, "%s\"t%zu.{sub}\"",
                                    i ? "," : "", i);
        snprintf(payload + off, sizeof(payload) - off, "]}");
        tok = mint(HS256, payload);
        if (n == JWT_MAX_TOPICS) {
            ck_assert_int_eq(verify(tok, &c, &err), JWT_OK);
            ck_assert_uint_eq(c.ntopics, n);
            for (size_t i = 0; i < n; i++) {
                char want[16];
                snprintf(want, sizeof(want), "t%zu.s", i);
                ck_assert_str_eq(c.topics[i], want);
            }
        } else {
            ck_assert_int_eq(verify(tok, &c, &err), JWT_BAD_CLAIM);
            ck_assert_str_eq(err, "token has too many topics");
        }
        jwt_claims_free(&c);
        free(tok);
    }
}

END_TEST

/* No lim: the defaults of common/topic.h (256 bytes, 16 tokens). */
START_TEST(test_default_limits)
{
    char payload[1024], topic[300];
    struct jwt_claims c;
    char *tok;

    memset(topic, 'a', sizeof(topic));
    for (size_t n = TOPIC_DEFAULT_MAX_LEN; n <= TOPIC_DEFAULT_MAX_LEN + 1; n++) {
        snprintf(payload, sizeof(payload),
                 "{\"sub\":\"s\",\"exp\":1700000060,\"topics\":[\"%.*s\"]}", (int)n, topic);
        tok = mint(HS256, payload);
        ck_assert_int_eq(jwt_verify(tok, strlen(tok), key, KEYLEN, NOW, NULL, &c, NULL),
                         n == TOPIC_DEFAULT_MAX_LEN ? JWT_OK : JWT_BAD_CLAIM);
        jwt_claims_free(&c);
        free(tok);
    }
}

END_TEST

/* ---- nesting -------------------------------------------------------------- */

/* A payload (or header) nested as deep as JWT_MAX_LEN allows, inside a valid claim set. */
static char *deep(size_t depth, const char *before, const char *after)
{
    size_t n = strlen(before) + strlen(after) + 2 * depth + 1;
    char *s = malloc(n);
    size_t off = (size_t)sprintf(s, "%s", before);

    memset(s + off, '[', depth);
    memset(s + off + depth, ']', depth);
    sprintf(s + off + 2 * depth, "%s", after);
    return s;
}

START_TEST(test_depth_bomb)
{
    static const size_t depths[] = {10, 500, 1400, 3000};
    struct jwt_claims c;

    for (size_t i = 0; i < sizeof(depths) / sizeof(depths[0]); i++) {
        char *p = deep(depths[i], "{\"sub\":\"42\",\"exp\":1700000060,\"topics\":[],\"x\":", "}");
        char *h = deep(depths[i], "{\"alg\":\"HS256\",\"x\":", "}");
        char *tok = mint(HS256, p);
        enum jwt_status st = verify(tok, &c, NULL);
        enum jwt_status want = strlen(tok) <= JWT_MAX_LEN ? JWT_OK : JWT_MALFORMED;

        /* Within the length bound jansson parses it (its own cap is 2048 levels). */
        ck_assert_msg(st == want, "depth %zu: %s", depths[i], jwt_status_name(st));
        jwt_claims_free(&c);
        free(tok);
        tok = mint(h, CLAIMS());
        st = verify(tok, &c, NULL);
        ck_assert_msg(st == want, "header depth %zu: %s", depths[i], jwt_status_name(st));
        jwt_claims_free(&c);
        free(tok);
        free(p);
        free(h);
    }
    /* Unbalanced: a truncated bomb is malformed, not a crash. */
    {
        char *p = deep(1400, "{\"x\":", "}");
        char *tok;
        p[strlen(p) - 2] = '\0';
        tok = mint(HS256, p);
        ck_assert_int_eq(verify(tok, &c, NULL), JWT_MALFORMED);
        free(tok);
        free(p);
    }
}

END_TEST

/* ---- shape: length, parts, base64url -------------------------------------- */

/* A valid token exactly len bytes long (a filler claim makes up the length). */
static char *token_of_length(size_t len)
{
    for (size_t pad = 0; pad < JWT_MAX_LEN; pad++) {
        char *payload = malloc(pad + 128);
        char *tok;

        snprintf(payload, pad + 128,
                 "{\"sub\":\"42\",\"exp\":1700000060,\"topics\":[],\"x\":\"%*s\"}", (int)pad, "");
        tok = mint(HS256, payload);
        free(payload);
        if (strlen(tok) == len)
            return tok;
        free(tok);
    }
    return NULL;
}

START_TEST(test_max_len)
{
    char *tok = token_of_length(JWT_MAX_LEN);
    char *over = token_of_length(JWT_MAX_LEN + 3); /* + 1 and + 2 cannot be made */
    struct jwt_claims c;
    const char *err = NULL;

    ck_assert_ptr_nonnull(tok);
    ck_assert_int_eq(verify(tok, &c, &err), JWT_OK);
    jwt_claims_free(&c);
    /* A valid signature does not make a longer token acceptable. */
    ck_assert_ptr_nonnull(over);
    ck_assert_int_eq(verify(over, &c, &err), JWT_MALFORMED);
    ck_assert_str_eq(err, "token is too long");
    assert_refused(&c, err);
    /* JWT_MAX_LEN + 1 bytes: refused by length whatever they hold. */
    ck_assert_int_eq(jwt_verify(over, JWT_MAX_LEN + 1, key, KEYLEN, NOW, &lim, &c, &err),
                     JWT_MALFORMED);
    ck_assert_str_eq(err, "token is too long");
    free(tok);
    free(over);
}

END_TEST

struct shape_case {
    const char *tok;
    enum jwt_status want;
};

static const struct shape_case shape_cases[] = {
    {"", JWT_MALFORMED},
    {".", JWT_MALFORMED},
    {"..", JWT_MALFORMED},
    {"...", JWT_MALFORMED},
    {"a", JWT_MALFORMED},
    {"eyJhbGciOiJIUzI1NiJ9", JWT_MALFORMED},
    {"eyJhbGciOiJIUzI1NiJ9.e30", JWT_MALFORMED},
    {"eyJhbGciOiJIUzI1NiJ9.e30.", JWT_BAD_SIGNATURE},
    {"eyJhbGciOiJIUzI1NiJ9.e30.a.b", JWT_MALFORMED},
    {"eyJhbGciOiJIUzI1NiJ9..", JWT_BAD_SIGNATURE},
    {".e30.", JWT_MALFORMED},
    /* alg none, unsigned: with the empty signature, and with no third part */
    {"eyJhbGciOiJub25lIn0.eyJzdWIiOiI0MiIsImV4cCI6MTcwMDAwMDA2MCwidG9waWNzIjpbIj4iXX0.",
     JWT_BAD_ALG},
    {"eyJhbGciOiJub25lIn0.eyJzdWIiOiI0MiIsImV4cCI6MTcwMDAwMDA2MCwidG9waWNzIjpbIj4iXX0",
     JWT_MALFORMED},
    /* padding and the standard alphabet */
    {"eyJhbGciOiJIUzI1NiJ9=.e30.", JWT_MALFORMED},
    {"eyJhbGciOiJIUzI1NiJ9.e30=.", JWT_MALFORMED},
    {"eyJhbGciOiJIUzI1NiJ9.e30.AAAA==", JWT_MALFORMED},
    {"eyJhbGciOiJIUzI1NiJ9.e+0.", JWT_MALFORMED},
    {"eyJhbGciOiJIUzI1NiJ9.e/0.", JWT_MALFORMED},
    {"eyJhbGciOiJIUzI1NiJ9.e 30.", JWT_MALFORMED},
    {" eyJhbGciOiJIUzI1NiJ9.e30.", JWT_MALFORMED},
    {"eyJhbGciOiJIUzI1NiJ9.e30.\n", JWT_MALFORMED},
    /* a length no base64 has (4n + 1), and unused bits that are not zero ("e31") */
    {"eyJhbGciOiJIUzI1NiJ9.e30AA.", JWT_MALFORMED},
    {"eyJhbGciOiJIUzI1NiJ9.e31.", JWT_MALFORMED},
    {"eyJhbGciOiJIUzI1NiJ8.e30.", JWT_MALFORMED},
};

START_TEST(test_shape_table)
{
    const struct shape_case *sc = &shape_cases[_i];
    struct jwt_claims c;
    const char *err = NULL;
    enum jwt_status st = verify(sc->tok, &c, &err);

    ck_assert_msg(st == sc->want, "'%s': got %s (%s)", sc->tok, jwt_status_name(st), err);
    assert_refused(&c, err);
}

END_TEST

/*
 * A byte outside the alphabet in any part, with the signature made over
 * the text as it stands, so only the alphabet check can refuse it.
 */
START_TEST(test_foreign_bytes)
{
    static const char foreign[] = {'+', '/', '=', ' ', '\n', '.', '"', (char)0x80, (char)0xff};
    char *h = b64(HS256, strlen(HS256));
    char *p = b64(CLAIMS(), strlen(CLAIMS()));
    struct jwt_claims c;
    char *tok;

    for (size_t part = 0; part < 2; part++) {
        for (size_t f = 0; f < sizeof(foreign); f++) {
            char *mod = strdup(part == 0 ? h : p);

            /* Replace the fourth character: the length mod 4 stays the same. */
            mod[3] = foreign[f];
            tok = part == 0 ? sign_text(mod, p, key, KEYLEN) : sign_text(h, mod, key, KEYLEN);
            ck_assert_msg(verify(tok, &c, NULL) == JWT_MALFORMED, "part %zu byte 0x%02x", part,
                          (unsigned char)foreign[f]);
            free(tok);
            free(mod);
        }
    }
    /* A NUL inside the length given. */
    tok = mint(HS256, CLAIMS());
    tok[strlen(h) + 4] = '\0';
    ck_assert_int_eq(jwt_verify(tok, strlen(tok + strlen(h) + 5) + strlen(h) + 5, key, KEYLEN, NOW,
                                &lim, &c, NULL),
                     JWT_MALFORMED);
    free(tok);
    free(h);
    free(p);
}

END_TEST

/* A padded part refused though the signature covers it as written. */
START_TEST(test_padding_signed)
{
    char *h = b64("{\"alg\":\"HS256\"}", 15); /* 15 bytes: 20 characters, no padding */
    /* 59 bytes: one '=' of padding */
    static const char claims[] = "{\"sub\":\"4\"," EXP "," TOPIC "}";
    char *p = b64(claims, strlen(claims));
    size_t n = strlen(p);
    char *padded = malloc(n + 3);
    char *tok;
    struct jwt_claims c;

    memcpy(padded, p, n + 1);
    while (strlen(padded) % 4 != 0)
        strcat(padded, "=");
    ck_assert_uint_ne(strlen(padded), n); /* the claims need padding */
    tok = sign_text(h, padded, key, KEYLEN);
    ck_assert_int_eq(verify(tok, &c, NULL), JWT_MALFORMED);
    free(tok);
    tok = sign_text(h, p, key, KEYLEN);
    ck_assert_int_eq(verify(tok, &c, NULL), JWT_OK);
    jwt_claims_free(&c);
    free(tok);
    free(padded);
    free(h);
    free(p);
}

END_TEST

/* ---- the signature -------------------------------------------------------- */

/*
 * Every bit of every byte of a valid token flipped, one at a time: never
 * accepted. In each part some flips keep the token well formed, and those
 * are refused by the signature.
 */
START_TEST(test_flipped_bits)
{
    char *tok = mint(HS256, CLAIMS());
    size_t len = strlen(tok);
    const char *d1 = strchr(tok, '.');
    const char *d2 = strchr(d1 + 1, '.');
    size_t bad_sig[3] = {0, 0, 0};

    for (size_t i = 0; i < len; i++) {
        size_t part = tok + i < d1 ? 0 : tok + i < d2 ? 1 : 2;
        for (int bit = 0; bit < 8; bit++) {
            struct jwt_claims c;
            const char *err = NULL;
            enum jwt_status st;

            tok[i] ^= (char)(1 << bit);
            st = jwt_verify(tok, len, key, KEYLEN, NOW, &lim, &c, &err);
            tok[i] ^= (char)(1 << bit);
            ck_assert_msg(st != JWT_OK, "byte %zu bit %d accepted", i, bit);
            assert_refused(&c, err);
            bad_sig[part] += st == JWT_BAD_SIGNATURE;
        }
    }
    ck_assert_uint_gt(bad_sig[0], 0);
    ck_assert_uint_gt(bad_sig[1], 0);
    ck_assert_uint_gt(bad_sig[2], 0);
    free(tok);
}

END_TEST

START_TEST(test_wrong_key)
{
    static const uint8_t other[] = "0123456789abcdef0123456789abcdeF";
    char *tok = mint(HS256, CLAIMS());
    struct jwt_claims c;
    const char *err = NULL;

    ck_assert_int_eq(jwt_verify(tok, strlen(tok), other, KEYLEN, NOW, &lim, &c, &err),
                     JWT_BAD_SIGNATURE);
    ck_assert_str_eq(err, "token signature does not match");
    /* A prefix of the key is another key. */
    ck_assert_int_eq(jwt_verify(tok, strlen(tok), key, KEYLEN - 1, NOW, &lim, &c, &err),
                     JWT_BAD_SIGNATURE);
    /* An empty key verifies nothing, not even a token signed with it. */
    ck_assert_int_eq(jwt_verify(tok, strlen(tok), key, 0, NOW, &lim, &c, &err), JWT_BAD_SIGNATURE);
    ck_assert_int_eq(jwt_verify(tok, strlen(tok), NULL, 0, NOW, &lim, &c, &err), JWT_BAD_SIGNATURE);
    assert_refused(&c, err);
    free(tok);
}

END_TEST

/* The signature of another header, or of the same claims re-encoded, does not carry over. */
START_TEST(test_signature_covers_text)
{
    char *a = mint(HS256, CLAIMS());
    char *b = mint("{\"typ\":\"JWT\",\"alg\":\"HS256\"}", CLAIMS());
    char *spaced = mint(HS256, "{\"sub\": \"42\"," EXP "," TOPIC "}");
    const char *sig_a = strrchr(a, '.');
    char *mixed = malloc(strlen(b) + 64);
    struct jwt_claims c;

    /* b's header and payload, a's signature */
    sprintf(mixed, "%.*s%s", (int)(strrchr(b, '.') - b), b, sig_a);
    ck_assert_int_eq(verify(mixed, &c, NULL), JWT_BAD_SIGNATURE);
    sprintf(mixed, "%.*s%s", (int)(strrchr(spaced, '.') - spaced), spaced, sig_a);
    ck_assert_int_eq(verify(mixed, &c, NULL), JWT_BAD_SIGNATURE);
    ck_assert_int_eq(verify(b, &c, NULL), JWT_OK);
    jwt_claims_free(&c);
    free(a);
    free(b);
    free(spaced);
    free(mixed);
}

END_TEST

/* Signatures of other lengths: HMAC-SHA384 / -SHA512 / truncated / one byte longer. */
START_TEST(test_signature_length)
{
    char *h = b64(HS256, strlen(HS256));
    char *p = b64(CLAIMS(), strlen(CLAIMS()));
    char signed_part[1024];
    unsigned char md[EVP_MAX_MD_SIZE + 1];
    unsigned int mdlen = 0;
    const EVP_MD *mds[] = {EVP_sha384(), EVP_sha512(), EVP_sha256(), EVP_sha256()};
    struct jwt_claims c;

    snprintf(signed_part, sizeof(signed_part), "%s.%s", h, p);
    for (size_t i = 0; i < 4; i++) {
        char tok[2048];
        char *sig;

        HMAC(mds[i], key, KEYLEN, (unsigned char *)signed_part, strlen(signed_part), md, &mdlen);
        if (i == 2)
            mdlen = 31;
        if (i == 3)
            md[mdlen++] = 0;
        sig = b64(md, mdlen);
        snprintf(tok, sizeof(tok), "%s.%s", signed_part, sig);
        ck_assert_msg(verify(tok, &c, NULL) == JWT_BAD_SIGNATURE, "case %zu", i);
        free(sig);
    }
    free(h);
    free(p);
}

END_TEST

/* The header's alg decides nothing about the key: RS256 / none tokens with a good HMAC. */
START_TEST(test_alg_confusion_with_good_hmac)
{
    static const char *const headers[] = {
        "{\"alg\":\"none\"}",
        "{\"alg\":\"RS256\",\"typ\":\"JWT\"}",
        "{\"alg\":\"HS384\",\"typ\":\"JWT\"}",
    };
    struct jwt_claims c;

    for (size_t i = 0; i < 3; i++) {
        char *tok = mint(headers[i], CLAIMS());
        ck_assert_int_eq(verify(tok, &c, NULL), JWT_BAD_ALG);
        free(tok);
    }
}

END_TEST

/* ---- signing -------------------------------------------------------------- */

START_TEST(test_sign_roundtrip)
{
    const char *topics[] = {"mail.user.{sub}.>", "news.*", "{sub}"};
    char *tok = jwt_sign(key, KEYLEN, "42", NOW, 0, NOW + 3600, topics, 3);
    struct jwt_claims c;
    const char *err = NULL;

    ck_assert_ptr_nonnull(tok);
    ck_assert(strncmp(tok, "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.", 37) == 0);
    ck_assert_int_eq(verify(tok, &c, &err), JWT_OK);
    ck_assert_str_eq(c.sub, "42");
    ck_assert_int_eq(c.exp, NOW + 3600);
    ck_assert_int_eq(c.nbf, 0);
    ck_assert_uint_eq(c.ntopics, 3);
    ck_assert_str_eq(c.topics[0], "mail.user.42.>");
    ck_assert_str_eq(c.topics[1], "news.*");
    ck_assert_str_eq(c.topics[2], "42");
    jwt_claims_free(&c);
    /* one second before exp, and at exp */
    ck_assert_int_eq(jwt_verify(tok, strlen(tok), key, KEYLEN, NOW + 3599, &lim, &c, NULL), JWT_OK);
    jwt_claims_free(&c);
    ck_assert_int_eq(jwt_verify(tok, strlen(tok), key, KEYLEN, NOW + 3600, &lim, &c, NULL),
                     JWT_EXPIRED);
    free(tok);
}

END_TEST

START_TEST(test_sign_nbf)
{
    const char *topics[] = {"a.>"};
    char *tok = jwt_sign(key, KEYLEN, "s", NOW, NOW + 10, NOW + 20, topics, 1);
    struct jwt_claims c;

    ck_assert_int_eq(verify(tok, &c, NULL), JWT_NOT_YET_VALID);
    ck_assert_int_eq(jwt_verify(tok, strlen(tok), key, KEYLEN, NOW + 10, &lim, &c, NULL), JWT_OK);
    ck_assert_int_eq(c.nbf, NOW + 10);
    jwt_claims_free(&c);
    free(tok);
}

END_TEST

START_TEST(test_sign_refuses)
{
    const char *ok[] = {"a"};
    const char *bad[] = {"a..b"};
    const char *null_topic[] = {NULL};
    const char *many[JWT_MAX_TOPICS + 1];
    char long_sub[JWT_MAX_SUB + 2];
    char *tok;

    for (size_t i = 0; i <= JWT_MAX_TOPICS; i++)
        many[i] = "a";
    memset(long_sub, 's', sizeof(long_sub) - 1);
    long_sub[JWT_MAX_SUB + 1] = '\0';
    ck_assert_ptr_null(jwt_sign(key, 0, "s", NOW, 0, NOW + 1, ok, 1));
    ck_assert_ptr_null(jwt_sign(NULL, 0, "s", NOW, 0, NOW + 1, ok, 1));
    ck_assert_ptr_null(jwt_sign(key, KEYLEN, NULL, NOW, 0, NOW + 1, ok, 1));
    ck_assert_ptr_null(jwt_sign(key, KEYLEN, "", NOW, 0, NOW + 1, ok, 1));
    ck_assert_ptr_null(jwt_sign(key, KEYLEN, "a.b", NOW, 0, NOW + 1, ok, 1));
    ck_assert_ptr_null(jwt_sign(key, KEYLEN, "*", NOW, 0, NOW + 1, ok, 1));
    ck_assert_ptr_null(jwt_sign(key, KEYLEN, "a b", NOW, 0, NOW + 1, ok, 1));
    ck_assert_ptr_null(jwt_sign(key, KEYLEN, long_sub, NOW, 0, NOW + 1, ok, 1));
    long_sub[JWT_MAX_SUB] = '\0';
    tok = jwt_sign(key, KEYLEN, long_sub, NOW, 0, NOW + 1, ok, 1);
    ck_assert_ptr_nonnull(tok);
    free(tok);
    ck_assert_ptr_null(jwt_sign(key, KEYLEN, "s", NOW, 0, NOW + 1, bad, 1));
    ck_assert_ptr_null(jwt_sign(key, KEYLEN, "s", NOW, 0, NOW + 1, null_topic, 1));
    ck_assert_ptr_null(jwt_sign(key, KEYLEN, "s", NOW, 0, NOW + 1, NULL, 1));
    ck_assert_ptr_null(jwt_sign(key, KEYLEN, "s", NOW, 0, NOW + 1, many, JWT_MAX_TOPICS + 1));
    tok = jwt_sign(key, KEYLEN, "s", NOW, 0, NOW + 1, many, JWT_MAX_TOPICS);
    ck_assert_ptr_nonnull(tok);
    free(tok);
    tok = jwt_sign(key, KEYLEN, "s", NOW, 0, NOW + 1, NULL, 0);
    ck_assert_ptr_nonnull(tok);
    free(tok);
}

END_TEST

/* A token that would pass JWT_MAX_LEN is not minted. */
START_TEST(test_sign_too_long)
{
    static char topic[JWT_MAX_TOPICS][200];
    const char *topics[JWT_MAX_TOPICS];
    char *tok;
    size_t n;

    for (size_t i = 0; i < JWT_MAX_TOPICS; i++) {
        memset(topic[i], 'a' + (int)(i % 26), sizeof(topic[i]) - 1);
        topic[i][sizeof(topic[i]) - 1] = '\0';
        topics[i] = topic[i];
    }
    /* 200-byte topics: 14 fit (about 2,900 bytes of JSON), 32 do not. */
    ck_assert_ptr_null(jwt_sign(key, KEYLEN, "s", NOW, 0, NOW + 1, topics, JWT_MAX_TOPICS));
    for (n = JWT_MAX_TOPICS; n > 0; n--) {
        tok = jwt_sign(key, KEYLEN, "s", NOW, 0, NOW + 1, topics, n);
        if (tok != NULL)
            break;
    }
    ck_assert_uint_gt(n, 10);
    ck_assert_uint_le(strlen(tok), JWT_MAX_LEN);
    ck_assert_uint_gt(strlen(tok), JWT_MAX_LEN - 300);
    free(tok);
}

END_TEST

/* Escaped characters in the claims survive the trip ('"' and '\\' are token bytes). */
START_TEST(test_sign_escapes)
{
    const char *topics[] = {"a\"b.c\\d.{sub}"};
    char *tok = jwt_sign(key, KEYLEN, "q\"\\", NOW, 0, NOW + 60, topics, 1);
    struct jwt_claims c;

    ck_assert_int_eq(verify(tok, &c, NULL), JWT_OK);
    ck_assert_str_eq(c.sub, "q\"\\");
    ck_assert_str_eq(c.topics[0], "a\"b.c\\d.q\"\\");
    jwt_claims_free(&c);
    free(tok);
}

END_TEST

START_TEST(test_status_names)
{
    static const enum jwt_status all[] = {
        JWT_OK,        JWT_MALFORMED, JWT_BAD_ALG,       JWT_BAD_SIGNATURE, JWT_MISSING_CLAIM,
        JWT_BAD_CLAIM, JWT_EXPIRED,   JWT_NOT_YET_VALID,
    };

    size_t n = sizeof(all) / sizeof(all[0]);

    ck_assert_str_eq(jwt_status_name(JWT_OK), "ok");
    ck_assert_str_eq(jwt_status_name(JWT_BAD_SIGNATURE), "bad_signature");
    ck_assert_str_eq(jwt_status_name(JWT_EXPIRED), "expired");
    ck_assert_str_eq(jwt_status_name(JWT_NOT_YET_VALID), "not_yet_valid");
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < i; j++)
            ck_assert_str_ne(jwt_status_name(all[i]), jwt_status_name(all[j]));
    }
}

END_TEST

START_TEST(test_free_zeroed)
{
    struct jwt_claims c;

    memset(&c, 0, sizeof(c));
    jwt_claims_free(&c);
    jwt_claims_free(&c);
    ck_assert_ptr_null(c.block);
}

END_TEST

static Suite *jwt_suite(void)
{
    Suite *s = suite_create("jwt");
    TCase *tc = tcase_create("claims");

    tcase_add_loop_test(tc, test_token_table, 0, TOKEN_CASES);
    tcase_add_test(tc, test_valid_claims);
    tcase_add_test(tc, test_integer_sub);
    tcase_add_loop_test(tc, test_substitution, 0, sizeof(subst_cases) / sizeof(subst_cases[0]));
    tcase_add_test(tc, test_topic_count);
    tcase_add_test(tc, test_default_limits);
    tcase_add_test(tc, test_depth_bomb);
    suite_add_tcase(s, tc);

    tc = tcase_create("shape");
    tcase_add_test(tc, test_max_len);
    tcase_add_loop_test(tc, test_shape_table, 0, sizeof(shape_cases) / sizeof(shape_cases[0]));
    tcase_add_test(tc, test_foreign_bytes);
    tcase_add_test(tc, test_padding_signed);
    suite_add_tcase(s, tc);

    tc = tcase_create("signature");
    tcase_add_test(tc, test_flipped_bits);
    tcase_add_test(tc, test_wrong_key);
    tcase_add_test(tc, test_signature_covers_text);
    tcase_add_test(tc, test_signature_length);
    tcase_add_test(tc, test_alg_confusion_with_good_hmac);
    suite_add_tcase(s, tc);

    tc = tcase_create("sign");
    tcase_add_test(tc, test_sign_roundtrip);
    tcase_add_test(tc, test_sign_nbf);
    tcase_add_test(tc, test_sign_refuses);
    tcase_add_test(tc, test_sign_too_long);
    tcase_add_test(tc, test_sign_escapes);
    tcase_add_test(tc, test_status_names);
    tcase_add_test(tc, test_free_zeroed);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return check_run_suite(jwt_suite());
}

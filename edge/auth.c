/*
 * auth.c - the auth directives and the per-connection grant.
 *
 * Start-up. auth_conf_resolve() turns the three auth directives into two
 * booleans and a key, once, before any worker exists: the workers then
 * share the key read-only like the rest of the configuration. A secret file
 * is read whole (bounded by AUTH_SECRET_MAX), one trailing newline dropped
 * (editors add one), and its text replaces conf->auth_secret so the key has
 * one home and one owner (conf_free).
 *
 * The grant. A verified token (common/jwt.h) becomes the smallest thing
 * that answers the two questions asked later - "does it allow this pattern"
 * at every subscription and "has it expired" at the sweep:
 *
 *     uint32_t exp | uint8_t n | "pattern\0pattern\0..."   (one malloc)
 *
 * For a typical token (`mail.user.{sub}.>`, one pattern) that is 20 bytes,
 * a 32-byte malloc chunk. The subject, nbf and iat are not kept: the
 * subject is already substituted into the patterns, nbf was checked. exp
 * is clamped to UINT32_MAX (year 2106): a token valid that long is valid
 * for the life of any connection. The connection holds its grant through
 * its hub's per-slot array (hub.h), so a connection without one costs
 * nothing more.
 *
 * Rejected: keeping struct jwt_claims (about 800 bytes, mostly empty
 * slots); a pointer to the grant in struct client (8 more bytes on every
 * connection, auth or not: 224 instead of 216, a 240-byte malloc chunk
 * instead of 224); interning grants (per-user patterns rarely repeat).
 */
#include "edge/auth.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/mem.h"
#include "common/topic_cover.h"
#include "edge/edge_conf.h"

struct auth_grant {
    uint32_t exp;
    uint8_t n;
    char text[]; /* n NUL-terminated patterns, back to back */
};

/* ---------- start-up ---------- */

/*
 * Reads path into a new NUL-terminated string (*out, *len). Returns 0, or
 * -1 with err filled: unreadable, over AUTH_SECRET_MAX, or holding a NUL.
 */
static int read_secret(const char *path, char **out, size_t *len, char *err, size_t errlen)
{
    char *buf = mem_alloc(AUTH_SECRET_MAX + 2);
    size_t n = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd < 0) {
        snprintf(err, errlen, "auth-secret-file: cannot open '%s': %s", path, strerror(errno));
        goto fail;
    }
    while (n <= AUTH_SECRET_MAX) {
        ssize_t r = read(fd, buf + n, AUTH_SECRET_MAX + 1 - n);

        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            snprintf(err, errlen, "auth-secret-file: cannot read '%s': %s", path, strerror(errno));
            goto fail;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    if (n > AUTH_SECRET_MAX) {
        snprintf(err, errlen, "auth-secret-file: '%s' is over %d bytes", path, AUTH_SECRET_MAX);
        goto fail;
    }
    close(fd);
    buf[n] = '\0';
    if (memchr(buf, '\0', n) != NULL) {
        snprintf(err, errlen, "auth-secret-file: '%s' holds a NUL byte", path);
        mem_free(buf);
        return -1;
    }
    *out = buf;
    *len = n;
    return 0;
fail:
    if (fd >= 0)
        close(fd);
    mem_free(buf);
    return -1;
}

/* Drops one trailing "\n", exactly as `herald token --secret-file` does (the keys must agree). */
static void strip_newline(char *s, size_t *len)
{
    if (*len > 0 && s[*len - 1] == '\n')
        s[--*len] = '\0';
}

/* Puts the key into conf->auth_secret (from the file when set). Returns 0 or -1. */
static int load_key(struct edge_conf *conf, char *err, size_t errlen)
{
    char *text;
    size_t len;

    if (conf->auth_secret && conf->auth_secret_file) {
        snprintf(err, errlen, "auth-secret and auth-secret-file are both set: keep one");
        return -1;
    }
    if (conf->auth_secret_file) {
        if (read_secret(conf->auth_secret_file, &text, &len, err, errlen) < 0)
            return -1;
        strip_newline(text, &len);
        conf->auth_secret = text;
        if (len == 0) {
            snprintf(err, errlen, "auth-secret-file: '%s' is empty", conf->auth_secret_file);
            return -1;
        }
    } else if (conf->auth_secret && conf->auth_secret[0] == '\0') {
        snprintf(err, errlen, "auth-secret: empty");
        return -1;
    }
    conf->auth_key_len = conf->auth_secret ? strlen(conf->auth_secret) : 0;
    return 0;
}

int auth_conf_resolve(struct edge_conf *conf, char *err, size_t errlen, unsigned *warnings)
{
    bool required;

    *warnings = 0;
    conf->auth_on = conf->auth_enforced = false;
    if (load_key(conf, err, errlen) < 0)
        return -1;
    conf->auth_on = conf->auth_key_len > 0;
    required = conf->auth_required ? strcmp(conf->auth_required, "yes") == 0 : conf->auth_on;
    if (required && !conf->auth_on) {
        snprintf(err, errlen, "auth-required yes needs auth-secret or auth-secret-file");
        return -1;
    }
    conf->auth_enforced = required;
    if (conf->auth_on && conf->auth_key_len < AUTH_SECRET_MIN)
        *warnings |= AUTH_WARN_SHORT_SECRET;
    if (!conf->auth_on)
        *warnings |= AUTH_WARN_OPEN;
    return 0;
}

/* ---------- grants ---------- */

struct auth_grant *auth_verify(const struct edge_conf *conf, const struct topic_limits *lim,
                               const char *tok, size_t len, int64_t now, enum jwt_status *st,
                               const char **err)
{
    struct jwt_claims claims;
    struct auth_grant *g;

    memset(&claims, 0, sizeof(claims));
    *st = jwt_verify(tok, len, (const uint8_t *)conf->auth_secret, conf->auth_key_len, now, lim,
                     &claims, err);
    if (*st != JWT_OK)
        return NULL;
    g = auth_grant_new(&claims);
    jwt_claims_free(&claims);
    return g;
}

struct auth_grant *auth_grant_new(const struct jwt_claims *c)
{
    size_t text = 0, off = 0;
    struct auth_grant *g;

    for (size_t i = 0; i < c->ntopics; i++)
        text += c->topic_lens[i] + 1;
    g = mem_alloc(offsetof(struct auth_grant, text) + text);
    g->exp = c->exp <= 0 ? 0 : c->exp >= (int64_t)UINT32_MAX ? UINT32_MAX : (uint32_t)c->exp;
    g->n = (uint8_t)c->ntopics;
    for (size_t i = 0; i < c->ntopics; i++) {
        memcpy(g->text + off, c->topics[i], c->topic_lens[i]);
        off += c->topic_lens[i];
        g->text[off++] = '\0';
    }
    return g;
}

void auth_grant_free(struct auth_grant *g)
{
    mem_free(g);
}

int64_t auth_grant_exp(const struct auth_grant *g)
{
    return g->exp;
}

bool auth_grant_covers(const struct auth_grant *g, const char *pattern, size_t len)
{
    const char *allowed[JWT_MAX_TOPICS];
    size_t lens[JWT_MAX_TOPICS];
    const char *p = g->text;

    _Static_assert(JWT_MAX_TOPICS <= TOPIC_COVER_MAX_ALLOWED, "a token's patterns fit the check");
    for (uint8_t i = 0; i < g->n; i++) {
        allowed[i] = p;
        lens[i] = strlen(p);
        p += lens[i] + 1;
    }
    return topic_covered(pattern, len, allowed, lens, g->n);
}

size_t auth_grant_size(const struct auth_grant *g)
{
    const char *p = g->text;

    for (uint8_t i = 0; i < g->n; i++)
        p += strlen(p) + 1;
    return (size_t)(p - (const char *)g);
}

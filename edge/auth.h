#ifndef HERALD_EDGE_AUTH_H
#define HERALD_EDGE_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/jwt.h"
#include "common/topic.h"

/*
 * The edge's side of signed subscription tokens (docs/protocol.md §3.10):
 * the auth directives resolved once at start-up, and the grant a verified
 * token leaves on its connection. Tokens themselves are common/jwt.h's;
 * coverage is common/topic_cover.h's. No I/O but the secret file, no
 * sockets: the connection glue is client_auth.c.
 */

struct edge_conf;

/* A connection's rights: exp and the allowed patterns, packed (auth.c says how). Opaque. */
struct auth_grant;

/* Warnings auth_conf_resolve found (bits); main.c logs them. */
#define AUTH_WARN_SHORT_SECRET 0x1 /* the secret is shorter than AUTH_SECRET_MIN bytes */
#define AUTH_WARN_OPEN         0x2 /* no secret and auth not required: anyone may subscribe */

#define AUTH_SECRET_MIN 32    /* bytes; HS256's key should be at least the hash's size */
#define AUTH_SECRET_MAX 65536 /* bytes read from auth-secret-file at most */

/*
 * Resolves auth-secret, auth-secret-file and auth-required into conf's
 * derived fields (auth_on, auth_enforced, auth_key_len). The file's content
 * (one trailing "\n" stripped) replaces conf->auth_secret, so the
 * key is always conf->auth_secret[0..auth_key_len) and conf_free releases it.
 * Returns 0 with *warnings (AUTH_WARN_* bits), or -1 with a message in err:
 * both directives set, an empty secret, an unreadable, oversize or NUL-holding
 * file, or auth-required yes without a secret.
 */
int auth_conf_resolve(struct edge_conf *conf, char *err, size_t errlen, unsigned *warnings);

/*
 * Verifies tok[0..len) with conf's key at now (seconds since the epoch).
 * Returns a new grant (release with auth_grant_free), or NULL with *st and
 * *err (static) saying why.
 */
struct auth_grant *auth_verify(const struct edge_conf *conf, const struct topic_limits *lim,
                               const char *tok, size_t len, int64_t now, enum jwt_status *st,
                               const char **err);

/* Packs verified claims into a new grant (the caller keeps c). */
struct auth_grant *auth_grant_new(const struct jwt_claims *c);

/* Frees g (NULL ok). */
void auth_grant_free(struct auth_grant *g);

/* The token's exp (seconds since the epoch; UINT32_MAX for any exp past 2106). */
int64_t auth_grant_exp(const struct auth_grant *g);

/* True when every topic pattern[0..len) can match is allowed by g (topic_covered). */
bool auth_grant_covers(const struct auth_grant *g, const char *pattern, size_t len);

/* Bytes g was allocated with (its share of a connection's memory). */
size_t auth_grant_size(const struct auth_grant *g);

#endif

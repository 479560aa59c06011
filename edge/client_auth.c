/*
 * client_auth.c - an edge client's credentials (docs/protocol.md §3.10).
 *
 * A connection's rights are its grant (edge/auth.h: exp and the allowed
 * patterns, packed in one small allocation), kept in its hub's per-slot
 * array rather than in struct client, so that a connection without one -
 * every connection when auth is off - costs not a byte more. The grant
 * comes from a token at the upgrade (client.c) or from an auth op (here),
 * and is asked two things: does it allow this pattern (client_may_subscribe,
 * the credential half of the one subscription gate in client_subs.c), and
 * has it expired (the worker's sweep, through client_auth_due and
 * client_auth_expire: no timer per connection, docs/architecture.md §4.5).
 *
 * A refresh (a second auth op) replaces the grant at once; subscriptions the
 * new grant does not cover are dropped (UNSUB when last) and reported one by
 * one, like the broker's refusals. A bad token in an auth op changes
 * nothing: the connection keeps what it had until its deadline.
 *
 * Expiry is wall-clock time (exp is seconds since the epoch): the sweep
 * files a client under the worker-clock second its exp falls in, and checks
 * the wall clock again when that second comes.
 */
#include "edge/client.h"

#include <assert.h>
#include <time.h>

#include "common/mem.h"
#include "common/topic.h"
#include "common/trie.h"
#include "edge/auth.h"
#include "edge/hub.h"

#define REPLY_MAX (2 * TOPIC_MAX_LEN + 512) /* a report names its pattern, JSON-escaped */
#define DUE_MAX_S (1u << 30)                /* furthest deadline filed (the sweep's clock wraps) */

struct auth_grant *client_grant(const struct client *c)
{
    const struct hub *h = c->h;

    /* Once c is retired its index names another client's slot (hub.c). */
    if (!h->grants || c->state == CLIENT_CLOSED)
        return NULL;
    return h->grants[c->index];
}

void client_set_grant(struct client *c, struct auth_grant *g)
{
    struct hub *h = c->h;

    if (c->state == CLIENT_CLOSED) { /* its slot is another client's now */
        auth_grant_free(g);
        return;
    }
    if (!h->grants) {
        assert(g == NULL); /* grants exist whenever tokens can be verified */
        return;
    }
    if (g && !h->grants[c->index])
        h->stats.grants++;
    else if (!g && h->grants[c->index])
        h->stats.grants--;
    auth_grant_free(h->grants[c->index]);
    h->grants[c->index] = g;
}

bool client_may_subscribe(struct client *c, const char *pattern, size_t len, const char **code,
                          const char **err)
{
    struct auth_grant *g = client_grant(c);

    if (!g) {
        if (!c->h->conf->auth_enforced)
            return true;
        *code = "unauthorized";
        *err = "send an auth op first";
        return false;
    }
    if ((int64_t)time(NULL) >= auth_grant_exp(g)) {
        *code = "token_expired";
        *err = "the token expired";
        return false;
    }
    if (!auth_grant_covers(g, pattern, len)) {
        c->h->stats.auth_forbidden++;
        *code = "forbidden";
        *err = "the token does not allow this pattern";
        return false;
    }
    return true;
}

/* ---------- the auth op ---------- */

int64_t client_authenticate(struct client *c, const char *tok, size_t len, const char **code,
                            const char **err)
{
    const struct edge_conf *conf = c->h->conf;
    struct auth_grant *g;
    enum jwt_status st;

    if (!conf->auth_on) {
        *code = "bad_request";
        *err = "this server does not use tokens";
        return -1;
    }
    g = auth_verify(conf, &c->h->limits, tok, len, time(NULL), &st, err);
    if (!g) {
        c->h->stats.auth_failed++;
        *code = st == JWT_EXPIRED ? "token_expired" : "unauthorized";
        return -1;
    }
    c->h->stats.auth_ok++;
    client_set_grant(c, g);
    hub_sweep_soon(c->h, c); /* its deadline moved: the next sweep files it again */
    return auth_grant_exp(g);
}

size_t client_uncovered(struct client *c, struct trie_node ***out)
{
    const struct auth_grant *g = client_grant(c);
    uint32_t nslots, held = ptrset_count(&c->subs);
    void *const *slots = ptrset_slots(&c->subs, &nslots);
    char pattern[TOPIC_MAX_LEN + 1];
    size_t n = 0;

    *out = NULL;
    if (!g || held == 0)
        return 0;
    *out = mem_alloc(held * sizeof(**out));
    for (uint32_t i = 0; i < nslots; i++) {
        size_t len;

        if (!slots[i])
            continue;
        len = trie_node_pattern(slots[i], pattern, sizeof(pattern));
        if (!auth_grant_covers(g, pattern, len))
            (*out)[n++] = slots[i];
    }
    c->h->stats.auth_forbidden += n;
    return n;
}

/* ---------- deadlines (the worker's sweep) ---------- */

bool client_auth_due(const struct client *c, uint32_t hs_timeout_s, uint32_t *due)
{
    const struct hub *h = c->h;
    struct auth_grant *g = client_grant(c);
    int64_t left;

    if (!g) {
        if (!h->conf->auth_enforced || (c->flags & CLIENT_F_ECHO)) /* echo: public (§3.11) */
            return false;
        *due = c->born_s + hs_timeout_s + 1;
        return true;
    }
    left = auth_grant_exp(g) - h->wall_s;
    if (left < 0)
        left = 0;
    if (left > (int64_t)DUE_MAX_S)
        left = DUE_MAX_S;
    *due = h->now_s + (uint32_t)left;
    return true;
}

const char *client_auth_ending(const struct client *c)
{
    struct auth_grant *g = client_grant(c);

    if (!g) /* the deadline to authenticate is on the worker clock: reached */
        return "authentication required";
    return c->h->wall_s >= auth_grant_exp(g) ? "token expired" : NULL;
}

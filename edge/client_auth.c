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

#include "common/log.h"
#include "common/mem.h"
#include "common/topic.h"
#include "common/trie.h"
#include "edge/auth.h"
#include "edge/browser_proto.h"
#include "edge/hub.h"

#define REPLY_MAX (2 * TOPIC_MAX_LEN + 512) /* a report names its pattern, JSON-escaped */
#define DUE_MAX_S (1u << 30)                /* furthest deadline filed (the sweep's clock wraps) */

struct auth_grant *client_grant(const struct client *c)
{
    const struct hub *h = c->h;

    return h->grants ? h->grants[c->index] : NULL;
}

void client_set_grant(struct client *c, struct auth_grant *g)
{
    struct hub *h = c->h;

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

/* Drops node (held by c) and tells c. Returns 0, or -1 when c was closed. */
static int drop_forbidden(struct client *c, struct trie_node *node)
{
    char pattern[TOPIC_MAX_LEN + 1], buf[REPLY_MAX];
    size_t len = trie_node_pattern(node, pattern, sizeof(pattern)), n;
    const char *code, *err;

    c->h->stats.auth_forbidden++;
    client_unsubscribe(c, pattern, len, &code, &err);
    n = browser_reply_refused(buf, sizeof(buf), "forbidden", pattern, len,
                              "the new token does not allow this pattern");
    return n < sizeof(buf) ? client_reply(c, buf, n) : 0;
}

/*
 * Drops and reports every subscription of c that g does not cover. The
 * nodes are collected first: dropping changes c->subs. A node left in the
 * list stays valid meanwhile, since c still holds it.
 */
static int drop_uncovered(struct client *c, const struct auth_grant *g)
{
    uint32_t nslots, held = ptrset_count(&c->subs);
    void *const *slots = ptrset_slots(&c->subs, &nslots);
    struct trie_node **gone;
    char pattern[TOPIC_MAX_LEN + 1];
    size_t ngone = 0;
    int rc = 0;

    if (held == 0)
        return 0;
    gone = mem_alloc(held * sizeof(*gone));
    for (uint32_t i = 0; i < nslots; i++) {
        size_t len;

        if (!slots[i])
            continue;
        len = trie_node_pattern(slots[i], pattern, sizeof(pattern));
        if (!auth_grant_covers(g, pattern, len))
            gone[ngone++] = slots[i];
    }
    for (size_t i = 0; i < ngone && rc == 0; i++)
        rc = drop_forbidden(c, gone[i]);
    mem_free(gone);
    return rc;
}

int client_auth_op(struct client *c, const struct browser_op *op)
{
    const struct edge_conf *conf = c->h->conf;
    char buf[REPLY_MAX];
    enum jwt_status st;
    const char *err = "bad token";
    struct auth_grant *g;
    size_t n;

    if (!conf->auth_on)
        return client_reply_error(c, op->id_text, "bad_request", "this server does not use tokens");
    g = auth_verify(conf, &c->h->limits, op->token, op->token_len, time(NULL), &st, &err);
    if (!g) {
        c->h->stats.auth_failed++;
        return client_reply_error(c, op->id_text,
                                  st == JWT_EXPIRED ? "token_expired" : "unauthorized", err);
    }
    c->h->stats.auth_ok++;
    client_set_grant(c, g);
    hub_sweep_soon(c->h, c); /* its deadline moved: the next sweep files it again */
    n = browser_reply_auth_ok(buf, sizeof(buf), op->id_text, auth_grant_exp(g));
    if (n < sizeof(buf) && client_reply(c, buf, n) < 0)
        return -1;
    return drop_uncovered(c, g);
}

/* ---------- deadlines (the worker's sweep) ---------- */

bool client_auth_due(const struct client *c, uint32_t hs_timeout_s, uint32_t *due)
{
    const struct hub *h = c->h;
    struct auth_grant *g = client_grant(c);
    int64_t left;

    if (!g) {
        if (!h->conf->auth_enforced)
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

bool client_auth_expire(struct client *c)
{
    struct hub *h = c->h;
    struct auth_grant *g = client_grant(c);

    /* Without a grant the deadline is on the worker clock: reached. */
    if (g && h->wall_s < auth_grant_exp(g))
        return false;
    h->stats.closes[CLOSE_R_4001]++;
    if (!g) {
        log_debug("auth_timeout", "conn=%u", c->id);
        client_close(c, CLIENT_CLOSE_AUTH, "authentication required");
        return true;
    }
    log_debug("token_expired", "conn=%u", c->id);
    if (client_reply_error(c, "", "token_expired", "the token expired") == 0)
        client_close(c, CLIENT_CLOSE_AUTH, "token expired");
    return true;
}

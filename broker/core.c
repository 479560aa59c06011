/*
 * core.c - what the broker's endpoints share: the listener set-up, the
 * close list, admission, secrets, connection counts.
 *
 * The endpoints (linksrv.c, resp_conn.c and resp_cmd.c, http_api.c), the
 * router and broker_metrics.c use this module; it uses none of them, and
 * broker.c, which starts and stops the endpoints, sits above them all.
 * struct core is the part they read and write (configuration, counters,
 * the tries, the sequence map); struct core_state here adds the lists and
 * events only the functions below touch.
 *
 * Connections are closed at once but freed later: endpoint close functions
 * detach from tries and sockets, then queue a close_entry here; close_ev
 * (a manual event made active on the first queued entry) frees the list on
 * the next loop pass, after every callback that could still hold a pointer
 * has returned (Redis's freeClientAsync). What a connection's own parser
 * still points into (a link's decoder, a RESP client's input) is freed
 * there too, never by the close: a publish handed to the router is a view
 * into that memory, and the router's delivery may close the publisher.
 *
 * Admission. Connections that have not authenticated (a link before
 * HELLO, RESP before AUTH with requirepass) are listed here in accept
 * order: they have their own cap, max-unauthenticated, at which the oldest
 * is closed to admit the newcomer, and auth-timeout closes them from the
 * head of the list. Only authenticated connections count toward
 * max-clients. So ten thousand idle sockets cost at most
 * max-unauthenticated descriptors for auth-timeout each, and never keep an
 * edge's HELLO out. Rejected: refusing newcomers at the cap instead (the
 * idle sockets would then lock real clients out for auth-timeout at a
 * time, renewed by the attacker at will).
 */
#include "broker/core.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/time.h>
#include <event2/event.h>

#include "broker/history.h"
#include "broker/seq_map.h"
#include "common/log.h"
#include "common/mem.h"
#include "common/net.h"
#include "common/trie.h"

#define CORE_LISTEN_BACKLOG 511

struct core_state {
    struct core pub; /* first: what the endpoints see */
    struct close_entry *close_list;
    struct event *close_ev;                      /* frees close_list on the next loop pass */
    struct preauth *preauth_head, *preauth_tail; /* oldest first */
    uint64_t npreauth;
    struct net_cidr edge_allow[NET_CIDR_MAX];
    size_t n_edge_allow;
    struct log_rate auth_rate; /* failed authentications, all endpoints */
};

static const char *const endpoint_names[EP_COUNT] = {"link", "resp", "http"};
static const char *const drop_names[DROP_COUNT] = {
    "slow_consumer", "protocol",     "oversize",        "auth",
    "max_clients",   "auth_timeout", "unauthenticated", "request_timeout"};

static struct core_state *state_of(struct core *core)
{
    return (struct core_state *)core;
}

static const struct core_state *cstate_of(const struct core *core)
{
    return (const struct core_state *)core;
}

bool core_request_late(const struct core *core, uint64_t since_ms, uint64_t now_ms)
{
    return since_ms != 0 && now_ms - since_ms >= (uint64_t)core->conf->request_timeout;
}

void core_request_timeout(struct core *core, enum broker_endpoint ep, uint32_t id, const char *peer)
{
    core->stats.drops[DROP_REQUEST_TIMEOUT]++;
    log_info("request_timeout", "endpoint=%s conn=%u peer=%s", endpoint_names[ep], id, peer);
}

const char *core_endpoint_name(enum broker_endpoint ep)
{
    return endpoint_names[ep];
}

const char *core_drop_name(enum broker_drop d)
{
    return drop_names[d];
}

static void free_close_list(struct core_state *s)
{
    while (s->close_list) {
        struct close_entry *e = s->close_list;

        s->close_list = e->next;
        e->free_fn(e);
    }
}

static void core_on_close_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    free_close_list(arg);
}

void core_defer_free(struct core *core, struct close_entry *e)
{
    struct core_state *s = state_of(core);

    e->next = s->close_list;
    s->close_list = e;
    event_active(s->close_ev, EV_TIMEOUT, 0);
}

uint64_t core_conn_count(const struct core *core)
{
    return core->stats.conns_current[EP_LINK] + core->stats.conns_current[EP_RESP];
}

uint64_t core_unauthenticated(const struct core *core)
{
    return cstate_of(core)->npreauth;
}

void core_preauth_leave(struct core *core, struct preauth *p)
{
    struct core_state *s = state_of(core);

    if (!p->listed)
        return;
    if (p->prev)
        p->prev->next = p->next;
    else
        s->preauth_head = p->next;
    if (p->next)
        p->next->prev = p->prev;
    else
        s->preauth_tail = p->prev;
    p->prev = p->next = NULL;
    p->listed = false;
    s->npreauth--;
}

void core_preauth_add(struct core *core, struct preauth *p)
{
    struct core_state *s = state_of(core);

    /* The evicted connection leaves the list from its own close path. */
    while (s->preauth_head && s->npreauth >= (uint64_t)core->conf->max_unauthenticated)
        s->preauth_head->expire(s->preauth_head, DROP_UNAUTHENTICATED);
    p->since_ms = net_now_ms();
    p->next = NULL;
    p->prev = s->preauth_tail;
    if (s->preauth_tail)
        s->preauth_tail->next = p;
    else
        s->preauth_head = p;
    s->preauth_tail = p;
    p->listed = true;
    s->npreauth++;
}

/* Oldest first: the list is in accept order. */
void core_preauth_expire(struct core *core, uint64_t now_ms)
{
    struct core_state *s = state_of(core);
    uint64_t limit = (uint64_t)core->conf->auth_timeout;

    while (s->preauth_head && now_ms - s->preauth_head->since_ms >= limit)
        s->preauth_head->expire(s->preauth_head, DROP_AUTH_TIMEOUT);
}

bool core_admit(struct core *core)
{
    uint64_t authed = core_conn_count(core) - state_of(core)->npreauth;

    /* The caller's own connection is already counted open (and still listed
     * as unauthenticated when it just authenticated). */
    if (authed < (uint64_t)core->conf->max_clients)
        return true;
    core->stats.drops[DROP_MAX_CLIENTS]++;
    return false;
}

void core_auth_failed(struct core *core, enum broker_endpoint ep, const char *peer)
{
    uint64_t n;

    core->stats.drops[DROP_AUTH]++;
    n = log_rate_tick(&state_of(core)->auth_rate, net_now_ms(), 1000);
    if (n)
        log_warn("auth_failed", "endpoint=%s count=%llu peer=%s", endpoint_names[ep],
                 (unsigned long long)n, peer);
}

void core_conn_closed(struct core *core, enum broker_endpoint ep)
{
    if (core->stats.conns_current[ep] > 0)
        core->stats.conns_current[ep]--;
    if (core->stopping && core_conn_count(core) == 0)
        event_base_loopexit(core->base, NULL);
}

bool core_secret_eq(const char *want, const char *secret, size_t len)
{
    size_t wlen;

    if (!want || !secret)
        return false;
    wlen = strlen(want);
    /* Constant time over the expected secret's length; the length itself is
     * not secret enough to matter. */
    if (len != wlen)
        return false;
    return CRYPTO_memcmp(want, secret, wlen) == 0;
}

bool core_auth_ok(const struct core *core, const char *secret, size_t len)
{
    if (!core->conf->requirepass)
        return true;
    return core_secret_eq(core->conf->requirepass, secret, len);
}

bool core_edge_allowed(const struct core *core, const struct sockaddr *sa)
{
    const struct core_state *s = cstate_of(core);

    return s->n_edge_allow > 0 && net_cidr_match(s->edge_allow, s->n_edge_allow, sa);
}

struct listener *core_listen(struct core *core, enum broker_endpoint ep, int64_t port,
                             listener_accept_fn *cb, void *arg, int *bound, const char **err)
{
    const char *bind = core->conf->bind;
    struct listener *l;
    char event[32];
    int fd, lport;

    fd = net_listen(bind, (int)port, false, CORE_LISTEN_BACKLOG, err);
    if (fd < 0)
        return NULL;
    lport = net_local_port(fd);
    l = listener_new(core->base, fd, endpoint_names[ep], cb, arg, &core->stats.accept_errors[ep]);
    if (!l) {
        *err = "evconnlistener_new failed";
        return NULL;
    }
    if (bound)
        *bound = lport;
    snprintf(event, sizeof(event), "%s_listen", endpoint_names[ep]);
    log_info(event, "bind=%s port=%d", bind ? bind : "*", lport);
    return l;
}

/* 16 lowercase hex characters from getrandom: the broker's epoch string. */
static int make_epoch(char out[17], const char **err)
{
    static const char hex[] = "0123456789abcdef";
    uint8_t r[8];

    if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r)) {
        *err = "getrandom failed";
        return -1;
    }
    for (size_t i = 0; i < sizeof(r); i++) {
        out[2 * i] = hex[r[i] >> 4];
        out[2 * i + 1] = hex[r[i] & 15];
    }
    out[16] = '\0';
    return 0;
}

/* Parses the `history` lines (validated by the table already) and makes the store. */
static int history_setup(struct core *core, const struct broker_conf *conf, const char **err)
{
    struct history_conf hc = {(size_t)conf->history_size, (uint64_t)conf->history_ttl,
                              conf->history_max_memory, NULL, 0};
    const char *p = conf->history;

    while (p && *p) {
        char line[TOPIC_MAX_LEN + 80];
        size_t n = strcspn(p, "\n");

        snprintf(line, sizeof(line), "%.*s", (int)n, p);
        core->history_rules = mem_realloc(core->history_rules, (core->n_history_rules + 1) *
                                                                   sizeof(*core->history_rules));
        if (broker_conf_history_rule(line, &core->history_rules[core->n_history_rules], err) < 0)
            return -1;
        core->n_history_rules++;
        p += n + (p[n] == '\n');
    }
    hc.rules = core->history_rules;
    hc.nrules = core->n_history_rules;
    core->history = history_new(&hc);
    return 0;
}

struct core *core_new(struct event_base *base, const struct broker_conf *conf, const char **err)
{
    struct core_state *s = mem_calloc(1, sizeof(*s));
    struct core *core = &s->pub;
    int n;

    core->base = base;
    core->conf = conf;
    core->limits.max_len = (size_t)conf->max_topic_length;
    core->limits.max_tokens = (size_t)conf->max_topic_tokens;
    core->link_subs.trie = trie_new();
    core->resp_subs.trie = trie_new();
    core->seqs = seq_map_new((size_t)conf->max_topics, (uint64_t)conf->topic_ttl);
    core->started_ms = net_now_ms();
    {
        struct timeval tv;

        gettimeofday(&tv, NULL);
        core->epoch = (uint64_t)tv.tv_sec * 1000u + (uint64_t)tv.tv_usec / 1000u;
    }
    if (make_epoch(core->history_epoch, err) < 0 || history_setup(core, conf, err) < 0)
        goto fail;
    n = net_cidr_parse(conf->edge_allow, s->edge_allow, NET_CIDR_MAX, err);
    if (n < 0)
        goto fail;
    s->n_edge_allow = (size_t)n;
    s->close_ev = event_new(base, -1, 0, core_on_close_tick, s);
    if (!s->close_ev) {
        *err = "event_new failed";
        goto fail;
    }
    return core;
fail:
    core_free(core);
    return NULL;
}

void core_free(struct core *core)
{
    struct core_state *s;

    if (!core)
        return;
    s = state_of(core);
    free_close_list(s);
    if (s->close_ev)
        event_free(s->close_ev);
    trie_free(core->link_subs.trie);
    trie_free(core->resp_subs.trie);
    seq_map_free(core->seqs);
    history_free(core->history);
    for (size_t i = 0; i < core->n_history_rules; i++)
        mem_free((char *)core->history_rules[i].pattern);
    mem_free(core->history_rules);
    mem_free(s);
}

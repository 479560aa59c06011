#ifndef HERALD_BROKER_CORE_H
#define HERALD_BROKER_CORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "broker/broker_conf.h"
#include "common/listener.h"
#include "common/topic.h"

struct event_base;
struct history;
struct history_rule;
struct seq_map;
struct sink_ops;
struct sockaddr;
struct trie;

/*
 * What the broker's endpoints (linksrv.c, resp_conn.c and resp_cmd.c,
 * http_api.c) and its router share, and the rules they all follow: the
 * listener set-up, the close list, the list of unauthenticated
 * connections, admission under max-clients, secret and edge-allow checks,
 * connection counts, the names of endpoints and drop reasons. broker.c
 * creates it, runs the endpoints on it, and frees it after them; nothing
 * here calls an endpoint except through the callbacks a connection gives
 * it (close_entry, preauth).
 */

enum broker_endpoint {
    EP_LINK,
    EP_RESP,
    EP_HTTP,
    EP_COUNT,
};

enum broker_drop {
    DROP_SLOW_CONSUMER,   /* output over client-output-limit: disconnected */
    DROP_PROTOCOL,        /* malformed input: ERR / -ERR then closed */
    DROP_OVERSIZE,        /* frame, payload or request over a limit */
    DROP_AUTH,            /* wrong or missing secret */
    DROP_MAX_CLIENTS,     /* refused: over max-clients (or http-max-connections) */
    DROP_AUTH_TIMEOUT,    /* not authenticated within auth-timeout */
    DROP_UNAUTHENTICATED, /* closed to admit a newer one at max-unauthenticated */
    DROP_REQUEST_TIMEOUT, /* a command, frame or request not complete within request-timeout */
    DROP_COUNT,
};

/* Counters shown by /metrics, INFO and `herald stats`. Owned by the loop thread. */
struct broker_stats {
    uint64_t conns_current[EP_COUNT];
    uint64_t conns_total[EP_COUNT];
    uint64_t published; /* events accepted, all endpoints */
    uint64_t delivered; /* copies queued to subscribers (one per link, per RESP match) */
    uint64_t bytes_in;  /* bytes read from link and RESP connections */
    uint64_t bytes_out; /* bytes queued to link and RESP connections */
    uint64_t drops[DROP_COUNT];
    uint64_t http_requests;
    uint64_t accept_errors[EP_COUNT];
    uint64_t link_tls_handshake_failures; /* TLS handshakes on the link that failed */
    uint64_t link_tls_reloads;            /* SIGHUP: the link certificate was loaded again */
    uint64_t link_tls_reload_failures;    /* SIGHUP: it did not load; the old one serves */
    uint64_t history_requests;            /* HISTORY frames answered with HISTR */
    uint64_t history_recovered;           /* ... with recovered true */
    uint64_t history_events_sent;         /* MSG frames sent after HISTRs */
};

/*
 * A trie of subscribers (struct sink, common/sink.h) and the ops they all
 * share, registered by the endpoint that owns them: the router publishes
 * through it without knowing the endpoint.
 */
struct broker_subs {
    struct trie *trie;
    const struct sink_ops *ops; /* NULL until the endpoint starts */
};

/* sink->form of the broker's subscribers: the wire form each receives. */
enum sub_form {
    SUB_FORM_MSG = 0,      /* a link: one link MSG per event */
    SUB_FORM_MESSAGE = 0,  /* a RESP channel handle (SUBSCRIBE): `message` */
    SUB_FORM_PMESSAGE = 1, /* a RESP pattern handle (PSUBSCRIBE): `pmessage`, per pattern */
};

/* A connection queued for freeing after the current callback chain. */
struct close_entry {
    struct close_entry *next;
    void (*free_fn)(struct close_entry *e);
};

/*
 * A connection that has not authenticated yet: a link before its HELLO is
 * accepted, a RESP client before AUTH while requirepass is set. Embedded in
 * the connection; core.c keeps them in accept order, closes the oldest
 * once auth-timeout has passed, and closes the oldest to admit a new one
 * at max-unauthenticated (so idle sockets cannot lock real clients out).
 * They do not count toward max-clients.
 */
struct preauth {
    struct preauth *prev, *next;
    uint64_t since_ms;
    bool listed;
    /* Closes the connection (counting why); it calls core_preauth_leave itself. */
    void (*expire)(struct preauth *p, enum broker_drop why);
};

/*
 * The part of the broker every endpoint sees. The lists behind the
 * functions below are private to core.c.
 */
struct core {
    struct event_base *base;
    const struct broker_conf *conf;
    struct topic_limits limits;
    struct broker_subs link_subs;       /* each link's sink */
    struct broker_subs resp_subs;       /* RESP clients' channel and pattern handles */
    struct seq_map *seqs;               /* topic -> last sequence */
    uint64_t epoch;                     /* start time in ms (WELCOME's uint epoch, herald stats) */
    char history_epoch[17];             /* the {epoch, seq} position's epoch: 16 random hex chars */
    struct history *history;            /* retained events (docs/protocol.md section 1.2) */
    struct history_rule *history_rules; /* parsed `history` overrides, owned */
    size_t n_history_rules;
    uint64_t started_ms;
    struct broker_stats stats;
    bool stopping; /* the graceful stop has begun: accept nothing new */
};

/*
 * Creates the shared state on base: both tries, the sequence map, the
 * history store and its rules, the random epoch, the parsed edge-allow list. Borrows conf and base.
 * Returns NULL with *err on failure (nothing logged).
 */
struct core *core_new(struct event_base *base, const struct broker_conf *conf, const char **err);

/* Frees what is on the close list, then everything. NULL is fine. */
void core_free(struct core *core);

/*
 * The one listener set-up of every endpoint: binds conf->bind:port and
 * accepts on core->base for endpoint ep (failed accepts counted in
 * stats.accept_errors[ep]), then logs event=<endpoint>_listen with the
 * address and the bound port, which *bound gets when not NULL. Returns the
 * listener (listener_free stops it), or NULL with *err.
 */
struct listener *core_listen(struct core *core, enum broker_endpoint ep, int64_t port,
                             listener_accept_fn *cb, void *arg, int *bound, const char **err);

/*
 * Queues e to be freed on the next loop pass ("close now, free later"):
 * callers have already detached the connection from tries and sockets.
 */
void core_defer_free(struct core *core, struct close_entry *e);

/* Called by endpoints when a connection count drops, so a graceful stop can finish. */
void core_conn_closed(struct core *core, enum broker_endpoint ep);

/* Total open connections over the link and RESP endpoints. */
uint64_t core_conn_count(const struct core *core);

/* Connections listed as unauthenticated. */
uint64_t core_unauthenticated(const struct core *core);

/*
 * Lists a new, unauthenticated connection (since now). At
 * max-unauthenticated the oldest listed one is expired first
 * (DROP_UNAUTHENTICATED).
 */
void core_preauth_add(struct core *core, struct preauth *p);

/* Unlists p (authenticated, or closing); a no-op when p is not listed. */
void core_preauth_leave(struct core *core, struct preauth *p);

/* Closes the unauthenticated connections whose auth-timeout has passed (the broker's tick). */
void core_preauth_expire(struct core *core, uint64_t now_ms);

/*
 * True when one more authenticated connection fits under max-clients
 * (unauthenticated ones do not count). When false the caller refuses the
 * connection (counting DROP_MAX_CLIENTS is done here).
 */
bool core_admit(struct core *core);

/* Checks a secret against requirepass in constant time; true when none is set. */
bool core_auth_ok(const struct core *core, const char *secret, size_t len);

/*
 * Constant-time comparison of secret[0..len) with want (NUL-terminated);
 * false when either is NULL.
 */
bool core_secret_eq(const char *want, const char *secret, size_t len);

/* True when sa is in edge-allow. */
bool core_edge_allowed(const struct core *core, const struct sockaddr *sa);

/*
 * Counts a failed authentication from peer on endpoint ep and logs it at
 * most once a second with the number of failures since the last line.
 */
void core_auth_failed(struct core *core, enum broker_endpoint ep, const char *peer);

/*
 * request-timeout, one rule for every endpoint: true when a request that
 * started arriving at since_ms (0: none pending) is still incomplete at
 * now_ms past the limit.
 */
bool core_request_late(const struct core *core, uint64_t since_ms, uint64_t now_ms);

/* Counts a connection closed for request-timeout (DROP_REQUEST_TIMEOUT) and logs it. */
void core_request_timeout(struct core *core, enum broker_endpoint ep, uint32_t id,
                          const char *peer);

/* Name of an endpoint ("link", "resp", "http") / drop reason ("slow_consumer", ...). */
const char *core_endpoint_name(enum broker_endpoint ep);
const char *core_drop_name(enum broker_drop d);

#endif

#ifndef HERALD_BROKER_BROKER_H
#define HERALD_BROKER_BROKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "broker/broker_conf.h"
#include "common/log.h"
#include "common/net.h"
#include "common/topic.h"

struct evbuffer;
struct event_base;
struct event;
struct trie;
struct linksrv;
struct resp_server;
struct http_api;
struct seq_map;

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
 * the connection; the broker keeps them in accept order, closes the oldest
 * once auth-timeout has passed, and closes the oldest to admit a new one
 * at max-unauthenticated (so idle sockets cannot lock real clients out).
 * They do not count toward max-clients.
 */
struct preauth {
    struct preauth *prev, *next;
    uint64_t since_ms;
    bool listed;
    /* Closes the connection (counting why); it calls broker_preauth_leave itself. */
    void (*expire)(struct preauth *p, enum broker_drop why);
};

struct broker {
    struct event_base *base;
    const struct broker_conf *conf;
    struct topic_limits limits;
    struct broker_subs link_subs; /* each link's sink */
    struct broker_subs resp_subs; /* RESP clients' channel and pattern handles */
    struct seq_map *seqs;         /* topic -> last sequence */
    uint64_t epoch;               /* start time in ms: the {epoch, seq} position's epoch */
    uint64_t started_ms;
    struct broker_stats stats;
    struct linksrv *link;
    struct resp_server *resp;
    struct http_api *http;
    struct close_entry *close_list;
    struct event *close_ev; /* frees close_list on the next loop pass */
    struct event *shutdown_ev;
    struct event *tick_ev;                       /* 1 s: timeouts, topic expiry */
    struct preauth *preauth_head, *preauth_tail; /* oldest first */
    uint64_t npreauth;
    size_t edge_budget_used; /* of edge-output-limit-total */
    size_t trim_peak;        /* tries + topics high-water since the last malloc_trim */
    struct net_cidr edge_allow[NET_CIDR_MAX];
    size_t n_edge_allow;
    struct log_rate auth_rate; /* failed authentications, all endpoints */
    bool stopping;
};

/*
 * Creates the broker on base and starts every enabled endpoint. Borrows
 * conf and base for the broker's lifetime. Returns NULL with *err on failure
 * (e.g. a port in use), having logged it.
 */
struct broker *broker_new(struct event_base *base, const struct broker_conf *conf,
                          const char **err);

/*
 * Graceful stop: stops accepting, asks every endpoint to flush and close,
 * and breaks the loop when all connections are gone or shutdown-timeout
 * passes.
 */
void broker_shutdown(struct broker *b);

/* Frees everything; call after the loop has exited. NULL is fine. */
void broker_free(struct broker *b);

/*
 * Queues e to be freed on the next loop pass ("close now, free later"):
 * callers have already detached the connection from tries and sockets.
 */
void broker_defer_free(struct broker *b, struct close_entry *e);

/* Called by endpoints when a connection count drops, so shutdown can finish. */
void broker_conn_closed(struct broker *b, enum broker_endpoint ep);

/* Total open connections over all endpoints. */
uint64_t broker_conn_count(const struct broker *b);

/*
 * Lists a new, unauthenticated connection (since now). At
 * max-unauthenticated the oldest listed one is expired first
 * (DROP_UNAUTHENTICATED).
 */
void broker_preauth_add(struct broker *b, struct preauth *p);

/* Unlists p (authenticated, or closing); a no-op when p is not listed. */
void broker_preauth_leave(struct broker *b, struct preauth *p);

/*
 * True when one more authenticated connection fits under max-clients
 * (unauthenticated ones do not count). When false the caller refuses the
 * connection (counting DROP_MAX_CLIENTS is done here).
 */
bool broker_admit(struct broker *b);

/* Checks a secret against requirepass in constant time; true when none is set. */
bool broker_auth_ok(const struct broker *b, const char *secret, size_t len);

/* Constant-time comparison of secret[0..len) with want (NUL-terminated); false when either is NULL.
 */
bool broker_secret_eq(const char *want, const char *secret, size_t len);

/*
 * Counts a failed authentication from peer on endpoint ep and logs it at
 * most once a second with the number of failures since the last line.
 */
void broker_auth_failed(struct broker *b, enum broker_endpoint ep, const char *peer);

/* Writes the Prometheus text of every broker metric into out. */
void broker_metrics(struct broker *b, struct evbuffer *out);

/* Name of an endpoint ("link", "resp", "http") / drop reason ("slow_consumer", ...). */
const char *broker_endpoint_name(enum broker_endpoint ep);
const char *broker_drop_name(enum broker_drop d);

#endif

#ifndef HERALD_EDGE_EDGE_METRICS_H
#define HERALD_EDGE_EDGE_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "edge/pool.h"

/*
 * The edge's counters and their Prometheus text. Each worker counts into
 * its hub's struct edge_stats (plain integers, its own thread); once a
 * second (edge_metrics_snapshot) they are copied under the hub's lock, and
 * the worker answering /metrics or /healthz sums its live counters with the
 * other workers' snapshots: a scrape is at most a second stale for other
 * workers and never takes a lock on the hot path.
 */

struct evbuffer;
struct hub;

/* Handshake failures by reason (the HTTP status answered, or a timeout). */
enum edge_hs_fail {
    HS_FAIL_400,
    HS_FAIL_403,
    HS_FAIL_404,
    HS_FAIL_405,
    HS_FAIL_426,
    HS_FAIL_431,
    HS_FAIL_TIMEOUT,
    HS_FAIL_COUNT,
};

/* Connections closed by the edge for a protocol reason, by close code. */
enum edge_close_reason {
    CLOSE_R_1002, /* protocol error */
    CLOSE_R_1003, /* unsupported data (binary message) */
    CLOSE_R_1007, /* invalid UTF-8 */
    CLOSE_R_1008, /* policy: slow consumer */
    CLOSE_R_1009, /* message too big */
    CLOSE_R_IDLE, /* idle-timeout */
    CLOSE_R_COUNT,
};

/* Counters of one worker (its hub); gauges are filled when a snapshot is taken. */
struct edge_stats {
    uint64_t conns_current;  /* gauge: open sockets, any state */
    uint64_t conns_total;    /* accepted */
    uint64_t conns_rejected; /* over max-connections at accept */
    uint64_t accept_errors;  /* failed accept() calls (EMFILE and the like) */
    uint64_t handshakes_ok;
    uint64_t hs_fail[HS_FAIL_COUNT];
    uint64_t http_healthz;
    uint64_t http_metrics;
    uint64_t frames_in;  /* WebSocket frames from clients */
    uint64_t frames_out; /* frames queued to clients (events, replies, control) */
    uint64_t bytes_in;
    uint64_t bytes_out; /* bytes written to client sockets */
    uint64_t events_in; /* MSG frames from the broker */
    uint64_t deliveries;
    uint64_t flush_polls;  /* uplink reads during a flush that brought data */
    uint64_t flush_yields; /* flushes that left the rest of the list for the next pass */
    uint64_t slow_consumers;
    uint64_t patterns_refused; /* subscriptions refused for the broker's pattern limit */
    uint64_t closes[CLOSE_R_COUNT];
    uint64_t tls_handshakes;         /* TLS handshakes completed (TLS port) */
    uint64_t tls_handshake_failures; /* not a ClientHello, alerts, errors, EOF mid-handshake */
    uint64_t tls_errors;             /* fatal TLS errors after the handshake (bad records) */
    uint64_t broker_reconnects;
    uint64_t link_up;       /* gauge: 1 when the uplink is connected */
    uint64_t subscriptions; /* gauge: (pattern, client) pairs */
    uint64_t patterns;      /* gauge: distinct patterns (= SUBs held at the broker) */
    uint64_t trie_bytes;    /* gauge: heap bytes of the subscription trie */
    uint64_t frames_live;   /* gauge */
    struct pool_stats pool; /* gauges */
};

#define EDGE_MAX_HUBS 1024 /* the workers directive's maximum */

/* Sets the process's hubs (one per worker; borrowed until exit); main calls it once. */
void edge_metrics_set_hubs(struct hub *const *hubs, size_t n);

/* Copies h->stats (with fresh gauges) into h->snap under its lock. h's thread only. */
void edge_metrics_snapshot(struct hub *h);

/*
 * Appends the Prometheus text for the whole process to out: self's live
 * counters plus every other hub's last snapshot. self may be the only one
 * (tests). self's thread only.
 */
void edge_metrics_render(struct hub *self, struct evbuffer *out);

/* Counts the workers whose uplink is connected (self live, others by snapshot). */
void edge_metrics_links_up(struct hub *self, size_t *up, size_t *total);

#endif

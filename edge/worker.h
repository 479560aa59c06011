#ifndef HERALD_EDGE_WORKER_H
#define HERALD_EDGE_WORKER_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/fanout.h"
#include "common/log.h"
#include "common/outq.h"
#include "common/topic.h"
#include "edge/edge_conf.h"
#include "edge/pool.h"

/*
 * One edge worker: a thread with its own event_base, SO_REUSEPORT
 * listener, buffer pool, read scratch, local trie of client subscriptions
 * and broker uplink (DESIGN.md "Processes"). Workers share only the
 * read-only configuration; the main thread talks to a worker through its
 * notify pipe, and /metrics reads the other workers' stats snapshots under
 * their mutex. The struct is public because client.c and uplink.c use its
 * fields on the hot path.
 */

struct client;
struct evbuffer;
struct event;
struct event_base;
struct frame;
struct trie;
struct uplink;

/* Handshake failures by reason (the HTTP status answered, or a timeout). */
enum worker_hs_fail {
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
enum worker_close_reason {
    CLOSE_R_1002, /* protocol error */
    CLOSE_R_1003, /* unsupported data (binary message) */
    CLOSE_R_1007, /* invalid UTF-8 */
    CLOSE_R_1008, /* policy: slow consumer */
    CLOSE_R_1009, /* message too big */
    CLOSE_R_IDLE, /* idle-timeout */
    CLOSE_R_COUNT,
};

/* Counters of one worker; gauges are filled when a snapshot is taken. */
struct worker_stats {
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
    uint64_t broker_reconnects;
    uint64_t link_up;       /* gauge: 1 when the uplink is connected */
    uint64_t subscriptions; /* gauge: (pattern, client) pairs */
    uint64_t patterns;      /* gauge: distinct patterns (= SUBs held at the broker) */
    uint64_t trie_bytes;    /* gauge: heap bytes of the subscription trie */
    uint64_t frames_live;   /* gauge */
    struct pool_stats pool; /* gauges */
};

struct worker {
    int id;
    pthread_t thread;
    bool started;
    bool torn_down;
    struct event_base *base;
    const struct edge_conf *conf;
    struct topic_limits limits;
    uint32_t handshake_timeout_s, ping_interval_s, idle_timeout_s;
    int listen_fd;
    int notify_fd[2]; /* [0] read by the worker, [1] written by main */
    struct event *accept_ev, *sweep_ev, *notify_ev, *reap_ev, *flush_ev, *stop_ev;
    struct pool *pool;
    uint8_t *scratch; /* per-worker read area: complete frames are parsed here */
    size_t scratch_cap;
    struct trie *trie; /* client subscriptions; subscriber = struct client * */
    struct uplink *uplink;
    struct client **clients; /* every live connection; client->index is its slot */
    uint32_t *due_s;         /* per slot: the second from which the sweep acts on it */
    uint32_t nclients, clients_cap;
    struct client **closed; /* closed, freed on the next loop pass */
    uint32_t nclosed, closed_cap;
    struct dirty_list dirty;  /* clients' sinks with output queued by a fan-out, flushed when it
                                 ends (or later) */
    struct fanout fanout;     /* fan-out targets of one event */
    struct frame *ping_frame; /* shared empty ping, made on first use (on the worker's thread) */
    uint64_t start_ms;
    uint32_t now_s; /* coarse clock: seconds since start, updated by the sweep */
    uint32_t next_conn_id;
    bool shutting_down;
    uint64_t shutdown_deadline_ms;
    struct log_rate accept_log; /* accept() failures: a line a second at most */
    size_t trim_peak;           /* trie bytes high-water since the last malloc_trim */
    struct worker_stats stats;
    pthread_mutex_t snap_lock;
    struct worker_stats snap; /* copy of stats for other threads, under snap_lock */
};

/*
 * Returns a new worker with its event_base, pool, trie, scratch and a
 * listener on conf->bind:port (SO_REUSEPORT, so every worker binds the same
 * port; port 0 binds an ephemeral one). Borrows conf until worker_free.
 * Returns NULL with *err (static) when the listener cannot be bound.
 * evthread_use_pthreads() must have been called first. No uplink yet.
 */
struct worker *worker_new(int id, const struct edge_conf *conf, int port, const char **err);

/* Creates the broker uplink (conf->broker) and starts connecting. */
void worker_start_uplink(struct worker *w);

/* Starts the worker's thread, which runs its loop until shutdown. Returns 0 or -1. */
int worker_start(struct worker *w);

/* Thread-safe: asks the worker to shut down (writes to its notify pipe). */
void worker_request_shutdown(struct worker *w);

/* Joins the thread started by worker_start. */
void worker_join(struct worker *w);

/*
 * Starts the graceful shutdown on the worker's own thread: closes the
 * listener, sends close 1001 to every open client; the loop exits when the
 * clients are gone or shutdown-timeout passed. Used by the notify pipe and
 * by tests.
 */
void worker_begin_shutdown(struct worker *w);

/*
 * Frees the worker and everything it owns (closing remaining clients at
 * once, then running the loop once so deferred frees happen). Must run on
 * the thread that ran the worker (frame accounting is per thread). NULL ok.
 */
void worker_free(struct worker *w);

/* Port the worker's listener is bound to. */
int worker_port(const struct worker *w);

/* ---- the process-wide view (/metrics, /healthz) ---- */

/* Sets the process's workers (borrowed until process exit); main calls it once. */
void worker_set_all(struct worker **all, size_t n);

/* Copies w->stats (with fresh gauges) into w->snap under its mutex. Worker thread only. */
void worker_snapshot(struct worker *w);

/*
 * Appends the Prometheus text for the whole process to out: self's live
 * counters plus every other worker's last snapshot. self may be the only
 * worker (tests). Worker thread of self only.
 */
void worker_render_metrics(struct worker *self, struct evbuffer *out);

/* Counts the workers whose uplink is connected (self live, others by snapshot). */
void worker_links_up(struct worker *self, size_t *up, size_t *total);

/* ---- used by client.c and uplink.c ---- */

/* Adds c to the worker's array (sets c->index). */
void worker_add_client(struct worker *w, struct client *c);

/*
 * Removes c from the array (O(1) swap) and queues it on the close list; it
 * is freed on the next loop pass. c must be fully closed already.
 */
void worker_retire_client(struct worker *w, struct client *c);

/* c's timers moved earlier (it started closing): the next sweep visits it. */
void worker_sweep_soon(struct worker *w, const struct client *c);

/* Queues c on the dirty list (once per fan-out; SINK_DIRTY tracks it). */
void worker_mark_dirty(struct worker *w, struct client *c);

/*
 * Fans one broker event out to every matching local client: collects the
 * targets first (a delivery may close a slow consumer, which changes the
 * trie), encodes the JSON and/or raw frame once, lazily, and queues a
 * reference on each target. Output is written by worker_flush_dirty().
 * Borrows topic and payload.
 */
void worker_deliver(struct worker *w, const char *topic, size_t tlen, uint64_t seq,
                    const void *payload, size_t plen);

/*
 * Writes the output of the clients on the dirty list, in order, polling the
 * uplink between them (events that arrive join the pass). After a slice of
 * about 20 ms the rest stays on the list for the next loop pass.
 */
void worker_flush_dirty(struct worker *w);

#endif

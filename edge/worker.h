#ifndef HERALD_EDGE_WORKER_H
#define HERALD_EDGE_WORKER_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/types.h>

#include "common/log.h"
#include "edge/edge_conf.h"
#include "edge/hub.h"

/*
 * One edge worker: a thread with its own event_base, SO_REUSEPORT
 * listener, sweep, broker uplink and the hub its connections share
 * (docs/architecture.md §3.2). Workers share only the read-only
 * configuration; the main thread talks to a worker through its notify
 * pipe, and /metrics reads the other workers' stats snapshots under their
 * hub's mutex. The struct is visible to main.c and to the unit tests, which
 * drive a worker's loop; connections see only its hub.
 */

struct addr_limit;
struct event;
struct tls_server;

struct worker {
    struct hub h; /* what its connections share (hub.h) */
    int id;
    pthread_t thread;
    bool started;
    bool torn_down;
    uint32_t handshake_timeout_s, idle_timeout_s;
    int listen_fd;
    int notify_fd[2]; /* [0] read by the worker, [1] written by main */
    struct event *accept_ev, *sweep_ev, *notify_ev, *flush_ev, *stop_ev;
    uint64_t start_ms;
    bool shutting_down;
    uint64_t shutdown_deadline_ms;
    struct log_rate accept_log; /* accept() failures: a line a second at most */
    size_t trim_peak;           /* trie bytes high-water since the last malloc_trim */
    SSL_CTX *uplink_tls;        /* broker-tls: the process's link client context (borrowed) */
};

/*
 * Returns a new worker with its event_base, pool, trie, scratch and a
 * listener on conf->bind:port (SO_REUSEPORT, so every worker binds the same
 * port; port 0 binds an ephemeral one). Borrows conf until worker_free.
 * Returns NULL with *err (static) when the listener cannot be bound.
 * evthread_use_pthreads() must have been called first. No uplink yet.
 */
struct worker *worker_new(int id, const struct edge_conf *conf, int port, const char **err);

/*
 * Shares the per-address limits a (borrowed until worker_free; NULL: none)
 * with the worker's hub. Before the worker's first connection.
 */
void worker_set_addr_limit(struct worker *w, struct addr_limit *a);

/*
 * Creates the broker uplink (conf->broker) and starts connecting; over TLS
 * when w->uplink_tls is set (main sets it before worker_start).
 */
void worker_start_uplink(struct worker *w);

/* Starts the worker's thread, which runs its loop until shutdown. Returns 0 or -1. */
int worker_start(struct worker *w);

/* Thread-safe: asks the worker to shut down (writes to its notify pipe). */
void worker_request_shutdown(struct worker *w);

/* Joins the thread started by worker_start. */
void worker_join(struct worker *w);

/*
 * Starts the graceful shutdown (the drain) on the worker's own thread:
 * closes the listener, drops handshakes, sends close 1012 "service restart"
 * after what is queued to every open client, and lets every closing
 * connection flush until shutdown-timeout; the loop exits when the clients
 * are gone or shutdown-timeout passed (the rest are then aborted). Used by
 * the notify pipe and by tests.
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

/*
 * Makes w's port a TLS port: every connection accepted from now on gets an
 * SSL object from tls's current certificate, kept in a per-slot array of
 * w's hub. Borrows tls until worker_free. Before worker_start and before
 * any connection.
 */
void worker_set_tls(struct worker *w, struct tls_server *tls);

/* ---- the process-wide view (/metrics, /healthz) ---- */

/* Hands the process's workers' hubs to edge_metrics (borrowed until exit); main calls it once. */
void worker_set_all(struct worker **all, size_t n);

/* ---- the fan-out (the uplink's callbacks; tests) ---- */

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

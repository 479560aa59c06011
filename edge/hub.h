#ifndef HERALD_EDGE_HUB_H
#define HERALD_EDGE_HUB_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "common/fanout.h"
#include "common/outq.h"
#include "common/topic.h"
#include "edge/edge_conf.h"
#include "edge/edge_metrics.h"

/*
 * What one worker's client connections share (docs/architecture.md §2.4):
 * the worker's event base and configuration, the buffer pool and read
 * scratch they borrow from, the trie of their subscriptions, the broker
 * uplink, the connection array the sweep walks, the close and dirty lists,
 * and the counters. The worker (worker.c) owns and fills it; client.c and
 * edge_http.c use it and never call the worker, so the worker sits above
 * the connections and nothing calls back up (worker.c -> client.c ->
 * hub.c). Every field belongs to the worker's thread, except snap, which
 * other workers read under snap_lock (edge_metrics.c).
 */

struct addr_limit;
struct auth_grant;
struct client;
struct event;
struct event_base;
struct frame;
struct pool;
struct ssl_st;
struct tls_server;
struct trie;
struct uplink;

struct hub {
    struct event_base *base;
    const struct edge_conf *conf;
    struct topic_limits limits;
    uint32_t ping_interval_s;
    uint32_t now_s; /* coarse clock: seconds since the worker started, advanced by its sweep */
    uint32_t next_conn_id;
    struct pool *pool;
    uint8_t *scratch; /* read area: complete frames are parsed here, in place */
    size_t scratch_cap;
    struct trie *trie; /* client subscriptions; subscriber = &client->sink */
    struct uplink *uplink;
    struct client **clients; /* every live connection; client->index is its slot */
    uint32_t *due_s;         /* per slot: the second from which the sweep acts on it */
    /* Per slot, and allocated only when their feature is on, so a connection pays for
     * what is configured (struct client stays the same size either way, auth.c says why).
     * hub_retire_client moves them with their client: */
    struct auth_grant **grants; /* its token's grant or NULL; when conf->auth_on */
    uint64_t *addr_keys;        /* the address it counts against in addr; when addr is set */
    struct ssl_st **ssls;       /* its SSL object (client_tls.c); when tls is set */
    uint32_t nclients, clients_cap;
    uint32_t nrefused;       /* connections past max-connections lingering with their 503 */
    struct addr_limit *addr; /* per-address limits shared by every worker (main's), or NULL */
    int64_t wall_s;          /* time(NULL) at the last sweep: token expiry is wall-clock time */
    struct client **closed;  /* closed, freed on the next loop pass (reap_ev) */
    uint32_t nclosed, closed_cap;
    struct event *reap_ev;
    struct dirty_list dirty;  /* client sinks with output queued, written when a fan-out ends */
    struct fanout fanout;     /* fan-out targets of one event */
    struct frame *ping_frame; /* shared empty ping, made on first use (on the worker's thread) */
    struct tls_server *tls;   /* the port's certificate (main.c's), NULL on a plain port */
    struct edge_stats stats;
    pthread_mutex_t snap_lock;
    struct edge_stats snap; /* copy of stats for other threads, under snap_lock */
};

/* Adds c to the connection array (sets c->index) and counts it. */
void hub_add_client(struct hub *h, struct client *c);

/*
 * Removes c from the array (O(1) swap: the last client takes c's slot, its
 * per-slot entries moving with it) and queues it on the close list; it is
 * freed on the next loop pass. c must be fully closed already, its own
 * per-slot entries released (grant, address key, SSL object).
 */
void hub_retire_client(struct hub *h, struct client *c);

/* c's timers moved earlier (it opened or started closing): the next sweep visits it. */
void hub_sweep_soon(struct hub *h, const struct client *c);

/* Queues c on the dirty list (once per fan-out; SINK_DIRTY tracks it). */
void hub_mark_dirty(struct hub *h, struct client *c);

#endif

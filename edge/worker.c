/*
 * worker.c - one edge worker thread: listener, sweep, fan-out, shutdown.
 *
 * Owns struct worker and everything in it: the event_base, the listener
 * (SO_REUSEPORT: every worker binds the same port and the kernel spreads
 * connections), the buffer pool and read scratch shared by its clients,
 * the trie of its clients' subscriptions and the uplink to the broker.
 * Workers share nothing but the read-only configuration.
 *
 * Clients live in an array (each knows its index: O(1) swap removal) that
 * the 1 s sweep walks backwards, so removing the current entry only moves
 * an already-visited one. The sweep replaces per-connection timers: it
 * advances the coarse clock (uint32 seconds since start), times out
 * handshakes, pings open connections every ping-interval, closes those
 * silent past idle-timeout and aborts closings past their linger cap.
 *
 * Closed clients go on a close list and are freed by an event made active
 * for the next loop pass ("close now, free later"): a fan-out's target
 * vector or the dirty list may still point at them until the current
 * callback returns.
 *
 * Fan-out (the hot path). The uplink hands each MSG to worker_deliver(),
 * which collects the matching clients into w->match first (a delivery may
 * close a slow consumer, and the trie must not change during a match),
 * encodes the JSON envelope and the raw frame at most once each, lazily,
 * and queues a reference on every target; targets go on the dirty list.
 * When the uplink has handled every frame of one read it calls
 * worker_flush_dirty(), so a burst of events costs one write per client,
 * not one per event.
 *
 * A rolling pass. Writing to N clients takes about N kernel sends (60 ms
 * for 15,000 here), and events keep arriving meanwhile. Every
 * FLUSH_POLL_EVERY clients the flush polls the uplink: a new event is
 * appended to the clients not yet written (they get both frames in one
 * write) and puts the ones already written back at the tail of the list,
 * in the same order. Each client is then written about once per pass and
 * an event waits at most one pass, not the rest of the current pass plus
 * a whole next one: at high rates that halves the latency. After
 * FLUSH_SLICE_MS or FLUSH_SLICE_CLIENTS writes, whichever comes first, a
 * polling flush returns to the loop with the rest of the list
 * kept and flush_ev armed as a zero timer (the loop polls its sockets
 * before it runs), so a broker that never pauses cannot keep
 * the worker from its clients' reads, accepts and timers, and the pass
 * goes on where it stopped. The list may therefore outlive a callback:
 * reap() drops closed clients from it before freeing them.
 *
 * Stats. Counters are plain integers owned by this thread. Once a sweep
 * (and at shutdown) they are copied under snap_lock into w->snap; the
 * worker answering /metrics sums its live counters and the others'
 * snapshots, so a scrape is at most a second stale for other workers and
 * never takes a lock on the hot path.
 *
 * Rejected: evconnlistener (one more allocation and callback layer for an
 * accept4 loop), a timer per connection (memory rule 3), atomics for stats
 * (every increment would pay for a once-a-second read).
 */
#include "edge/worker.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "common/frame.h"
#include "common/link_codec.h"
#include "common/log.h"
#include "common/mem.h"
#include "common/metrics.h"
#include "common/net.h"
#include "common/trie.h"
#include "edge/client.h"
#include "edge/client_proto.h"
#include "edge/interest.h"
#include "edge/uplink.h"
#include "common/ws/ws_frame.h"

#define ACCEPT_BATCH        64
#define LISTEN_BACKLOG      4096
#define SCRATCH_MIN         (64u << 10)
#define SHUTDOWN_TICK       100  /* ms between shutdown checks */
#define FLUSH_POLL_EVERY    256  /* clients written between two uplink polls in a flush */
#define FLUSH_SLICE_CLIENTS 4096 /* a polling flush returns to the loop after this many writes */
#define FLUSH_SLICE_MS      20   /* ... or after this long, whichever comes first */
#define WORKER_TRIM_DROP    (8u << 20) /* trie bytes this far below their peak: malloc_trim */

static struct worker **all_workers;
static size_t n_workers;

/* ---------- small vectors of client pointers ---------- */

static void vec_push(struct client ***v, uint32_t *n, uint32_t *cap, struct client *c)
{
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 64;
        *v = mem_realloc(*v, *cap * sizeof(**v));
    }
    (*v)[(*n)++] = c;
}

void worker_add_client(struct worker *w, struct client *c)
{
    uint32_t cap = w->clients_cap;

    c->index = w->nclients;
    vec_push(&w->clients, &w->nclients, &w->clients_cap, c);
    if (w->clients_cap != cap)
        w->due_s = mem_realloc(w->due_s, w->clients_cap * sizeof(*w->due_s));
    w->due_s[c->index] = 0;
    w->stats.conns_current++;
    w->stats.conns_total++;
}

void worker_retire_client(struct worker *w, struct client *c)
{
    struct client *last = w->clients[--w->nclients];

    last->index = c->index;
    w->clients[c->index] = last;
    w->due_s[c->index] = w->due_s[w->nclients];
    w->stats.conns_current--;
    vec_push(&w->closed, &w->nclosed, &w->closed_cap, c);
    if (w->reap_ev)
        event_active(w->reap_ev, EV_TIMEOUT, 0);
}

void worker_mark_dirty(struct worker *w, struct client *c)
{
    c->flags |= CLIENT_F_DIRTY;
    vec_push(&w->dirty, &w->ndirty, &w->dirty_cap, c);
}

static void reap(struct worker *w)
{
    uint32_t kept = 0;

    if (w->nclosed && w->ndirty) { /* a flush left for the next pass may name them */
        for (uint32_t i = 0; i < w->ndirty; i++)
            if (w->dirty[i]->state != CLIENT_CLOSED)
                w->dirty[kept++] = w->dirty[i];
        w->ndirty = kept;
    }
    for (uint32_t i = 0; i < w->nclosed; i++)
        client_free(w->closed[i]);
    w->nclosed = 0;
}

static void uplink_close(struct worker *w)
{
    uplink_free(w->uplink);
    w->uplink = NULL;
}

static void stop_loop(struct worker *w)
{
    uplink_close(w);
    event_base_loopexit(w->base, NULL);
}

static void worker_on_reap(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;

    (void)fd;
    (void)what;
    reap(w);
    if (w->shutting_down && w->nclients == 0)
        stop_loop(w);
}

/* ---------- fan-out ---------- */

static int collect(void *sub, const struct trie_node *node, void *arg)
{
    struct worker *w = arg;

    (void)node;
    vec_push(&w->match, &w->nmatch, &w->match_cap, sub);
    return 0;
}

void worker_deliver(struct worker *w, const char *topic, size_t tlen, uint64_t seq,
                    const void *payload, size_t plen)
{
    struct frame *json = NULL, *raw = NULL;

    w->stats.events_in++;
    w->nmatch = 0;
    trie_match(w->trie, topic, tlen, collect, w);
    for (uint32_t i = 0; i < w->nmatch; i++) {
        struct client *c = w->match[i];

        if (c->state != CLIENT_OPEN)
            continue;
        if (c->flags & CLIENT_F_RAW) {
            if (!raw)
                raw = client_encode_raw(payload, plen);
            client_deliver(c, raw);
        } else {
            if (!json)
                json = client_encode_event(topic, tlen, seq, payload, plen);
            client_deliver(c, json);
        }
    }
    frame_unref(&json);
    frame_unref(&raw);
}

/* Milliseconds on a cheap coarse clock (a few ms resolution). */
static int64_t coarse_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void worker_flush_dirty(struct worker *w)
{
    bool polling = w->uplink && w->ndirty > FLUSH_POLL_EVERY;
    int64_t until = polling ? coarse_ms() + FLUSH_SLICE_MS : 0;
    uint32_t i;

    /* w->ndirty and w->dirty are re-read every round: a poll appends. */
    for (i = 0; i < w->ndirty; i++) {
        struct client *c = w->dirty[i];

        c->flags &= (uint8_t)~CLIENT_F_DIRTY;
        if (c->state == CLIENT_OPEN || c->state == CLIENT_CLOSING)
            client_flush(c);
        if (polling && (i + 1) % FLUSH_POLL_EVERY == 0) {
            if (i + 1 >= FLUSH_SLICE_CLIENTS || coarse_ms() >= until)
                break;
            w->stats.flush_polls += uplink_poll(w->uplink) > 0;
        }
    }
    if (i + 1 < w->ndirty) { /* the slice is over: the rest goes on in the next loop pass */
        w->ndirty -= i + 1;
        memmove(w->dirty, w->dirty + i + 1, w->ndirty * sizeof(*w->dirty));
        w->stats.flush_yields++;
        if (w->flush_ev) { /* a zero timer, not event_active: that would run it before */
            struct timeval now = {0, 0}; /* the loop polls its sockets again */

            event_add(w->flush_ev, &now);
        }
        return;
    }
    w->ndirty = 0;
}

static void worker_on_flush(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    worker_flush_dirty(arg);
}

/* ---------- uplink glue ---------- */

static void on_link_msg(void *arg, const struct link_frame *f)
{
    worker_deliver(arg, f->topic.ptr, f->topic.len, f->seq, f->payload.ptr, f->payload.len);
}

static void on_link_batch_end(void *arg)
{
    worker_flush_dirty(arg);
}

/*
 * The broker refused a pattern: every local subscriber loses it (without an
 * UNSUB) and is told. The subscribers are collected first: telling one may
 * close it, and the node is pruned with its last subscriber.
 */
static void on_link_refused(void *arg, const char *code, const char *pattern, size_t len)
{
    struct worker *w = arg;
    struct trie_node *node = trie_find(w->trie, pattern, len);

    if (!node)
        return;
    w->nmatch = 0;
    trie_node_foreach(node, collect, w);
    w->stats.patterns_refused += w->nmatch;
    /* The last one prunes the node: it is not used after this loop. */
    for (uint32_t i = 0; i < w->nmatch; i++)
        client_refused(w->match[i], node, code, pattern, len);
    w->nmatch = 0;
}

static void on_link_up(void *arg)
{
    struct worker *w = arg;
    size_t n = interest_resend(w->trie, w->uplink);

    worker_snapshot(w); /* /healthz on other workers sees the link at once */
    log_debug("interest_resent", "patterns=%zu", n);
}

void worker_start_uplink(struct worker *w)
{
    struct uplink_handlers h = {on_link_msg, on_link_batch_end, on_link_up, on_link_refused, w};
    struct uplink_config cfg;
    char node[64];
    const char *err = "";

    if (!w->conf->broker || !*w->conf->broker || w->uplink)
        return;
    snprintf(node, sizeof(node), "edge-%ld-%d", (long)getpid(), w->id);
    cfg.broker = w->conf->broker;
    cfg.secret = w->conf->broker_secret;
    cfg.node = node;
    cfg.reconnect_min_ms = w->conf->reconnect_min;
    cfg.reconnect_max_ms = w->conf->reconnect_max;
    cfg.ping_interval_ms = w->conf->broker_ping_interval;
    w->uplink = uplink_new(w->base, &cfg, &h, &err);
    if (!w->uplink)
        log_error("uplink_failed", "broker=%s reason=\"%s\"", w->conf->broker, err);
}

/* ---------- accept ---------- */

/*
 * EMFILE & co: stop accepting until the next sweep (at most a second), or
 * the level-triggered listener would wake the loop again at once and spin
 * while the condition lasts; the sweep re-enables it. One line a second at
 * most, with the count.
 */
static void accept_failed(struct worker *w, int err)
{
    uint64_t n;

    w->stats.accept_errors++;
    n = log_rate_tick(&w->accept_log, net_now_ms(), 1000);
    if (n)
        log_warn("accept_failed", "endpoint=ws errno=%d reason=\"%s\" count=%llu", err,
                 strerror(err), (unsigned long long)n);
    event_del(w->accept_ev);
}

static void worker_on_accept(evutil_socket_t lfd, short what, void *arg)
{
    struct worker *w = arg;
    int one = 1;

    (void)what;
    for (int i = 0; i < ACCEPT_BATCH; i++) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                accept_failed(w, errno);
            return;
        }
        if ((int64_t)w->nclients >= w->conf->max_connections || w->shutting_down) {
            close(fd);
            w->stats.conns_rejected++;
            continue;
        }
        /* Events are small and latency matters more than segment count. */
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        client_new(w, fd);
    }
}

/* ---------- sweep ---------- */

/*
 * Timestamps are whole seconds of the worker clock, so "now - t" undercounts
 * the time elapsed by up to a second: a timeout's deadline is one second past
 * the configured time, so it never fires early (it may fire up to a second
 * later). The deadlines below are what sweep_one acts on and what next_due
 * files the client under; reached() compares them modulo 2^32 (a spread
 * ping phase may start "before" second 0).
 */
static bool reached(uint32_t now, uint32_t at)
{
    return (int32_t)(now - at) >= 0;
}

static uint32_t handshake_deadline(const struct worker *w, const struct client *c)
{
    return c->born_s + w->handshake_timeout_s + 1;
}

static uint32_t idle_deadline(const struct worker *w, const struct client *c)
{
    return c->last_rx_s + w->idle_timeout_s + 1;
}

static uint32_t ping_due(const struct worker *w, const struct client *c)
{
    return c->last_ping_s + w->ping_interval_s;
}

static void sweep_one(struct worker *w, struct client *c)
{
    uint32_t now = w->now_s;

    switch (c->state) {
    case CLIENT_HANDSHAKE:
        if (reached(now, handshake_deadline(w, c))) {
            w->stats.hs_fail[HS_FAIL_TIMEOUT]++;
            client_abort(c);
        }
        break;
    case CLIENT_OPEN:
        if (reached(now, idle_deadline(w, c))) {
            w->stats.closes[CLOSE_R_IDLE]++;
            log_debug("idle_timeout", "conn=%u", c->id);
            client_close(c, WS_CLOSE_GOING_AWAY, "idle timeout");
        } else if (reached(now, ping_due(w, c))) {
            client_ping(c);
        }
        break;
    case CLIENT_CLOSING:
        if (reached(now, c->last_ping_s)) /* the linger deadline */
            client_abort(c);
        break;
    default:
        break;
    }
}

/* The first second at which sweep_one would act on c. */
static uint32_t next_due(const struct worker *w, const struct client *c)
{
    uint32_t idle, ping;

    switch (c->state) {
    case CLIENT_HANDSHAKE:
        return handshake_deadline(w, c);
    case CLIENT_OPEN:
        idle = idle_deadline(w, c);
        ping = ping_due(w, c);
        return reached(idle, ping) ? ping : idle;
    case CLIENT_CLOSING:
        return c->last_ping_s;
    default:
        return w->now_s + 1;
    }
}

void worker_sweep_soon(struct worker *w, const struct client *c)
{
    w->due_s[c->index] = 0;
}

static void update_clock(struct worker *w)
{
    w->now_s = (uint32_t)((net_now_ms() - w->start_ms) / 1000u);
}

static void abort_all(struct worker *w)
{
    while (w->nclients > 0)
        client_abort(w->clients[w->nclients - 1]);
}

static void worker_on_sweep(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;

    (void)fd;
    (void)what;
    update_clock(w);
    for (uint32_t i = w->nclients; i-- > 0;) {
        struct client *c;

        /* The due array is read in order and touches no client: reading
         * every struct instead cost an idle worker with 18,000
         * connections ~0.7 ms a second (0.38 ms this way), and 56 such
         * workers share one core at one million. */
        if (i >= w->nclients || !reached(w->now_s, w->due_s[i]))
            continue;
        c = w->clients[i];
        sweep_one(w, c);
        if (i < w->nclients && w->clients[i] == c) /* still here: when next */
            w->due_s[i] = next_due(w, c);
    }
    if (w->accept_ev && !w->shutting_down && !event_pending(w->accept_ev, EV_READ, NULL))
        event_add(w->accept_ev, NULL);
    /* After a spike of patterns (an attacker's, say), give the pages back. */
    if (mem_trim_after_peak(trie_bytes(w->trie), &w->trim_peak, WORKER_TRIM_DROP))
        log_info("memory_trimmed", "rss=%llu", (unsigned long long)net_rss_bytes());
    worker_snapshot(w);
}

/* ---------- shutdown ---------- */

static void worker_on_stop_tick(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;

    (void)fd;
    (void)what;
    update_clock(w);
    if (net_now_ms() >= w->shutdown_deadline_ms) {
        if (w->nclients)
            log_warn("shutdown_forced", "clients=%u", w->nclients);
        abort_all(w);
    }
    if (w->nclients == 0)
        stop_loop(w);
}

void worker_begin_shutdown(struct worker *w)
{
    struct timeval tv = {0, SHUTDOWN_TICK * 1000};

    if (w->shutting_down)
        return;
    w->shutting_down = true;
    w->shutdown_deadline_ms = net_now_ms() + (uint64_t)w->conf->shutdown_timeout;
    if (w->accept_ev) {
        event_free(w->accept_ev);
        w->accept_ev = NULL;
    }
    if (w->listen_fd >= 0) {
        close(w->listen_fd);
        w->listen_fd = -1;
    }
    for (uint32_t i = w->nclients; i-- > 0;) {
        struct client *c = w->clients[i];

        if (c->state == CLIENT_OPEN)
            client_close(c, WS_CLOSE_GOING_AWAY, "going away");
        else if (c->state == CLIENT_HANDSHAKE)
            client_abort(c);
    }
    w->stop_ev = event_new(w->base, -1, EV_PERSIST, worker_on_stop_tick, w);
    if (w->stop_ev)
        event_add(w->stop_ev, &tv);
    if (w->nclients == 0)
        stop_loop(w);
}

static void worker_on_notify(evutil_socket_t fd, short what, void *arg)
{
    char buf[16];

    (void)what;
    while (read(fd, buf, sizeof(buf)) > 0) {
    }
    worker_begin_shutdown(arg);
}

void worker_request_shutdown(struct worker *w)
{
    char b = 's';
    ssize_t n = write(w->notify_fd[1], &b, 1);

    (void)n;
}

/* ---------- life cycle ---------- */

static uint32_t ms_to_s(int64_t ms)
{
    int64_t s = (ms + 999) / 1000;

    return s < 1 ? 1 : (uint32_t)s;
}

static int add_events(struct worker *w)
{
    struct timeval one_s = {1, 0};

    w->accept_ev = event_new(w->base, w->listen_fd, EV_READ | EV_PERSIST, worker_on_accept, w);
    w->sweep_ev = event_new(w->base, -1, EV_PERSIST, worker_on_sweep, w);
    w->notify_ev = event_new(w->base, w->notify_fd[0], EV_READ | EV_PERSIST, worker_on_notify, w);
    w->reap_ev = event_new(w->base, -1, 0, worker_on_reap, w);
    w->flush_ev = event_new(w->base, -1, 0, worker_on_flush, w);
    if (!w->accept_ev || !w->sweep_ev || !w->notify_ev || !w->reap_ev || !w->flush_ev)
        return -1;
    if (event_add(w->accept_ev, NULL) < 0 || event_add(w->sweep_ev, &one_s) < 0 ||
        event_add(w->notify_ev, NULL) < 0)
        return -1;
    return 0;
}

static void init_fields(struct worker *w, int id, const struct edge_conf *conf)
{
    w->id = id;
    w->conf = conf;
    w->listen_fd = -1;
    w->notify_fd[0] = w->notify_fd[1] = -1;
    w->limits.max_len = (size_t)conf->max_topic_length;
    w->limits.max_tokens = (size_t)conf->max_topic_tokens;
    w->handshake_timeout_s = ms_to_s(conf->handshake_timeout);
    w->ping_interval_s = ms_to_s(conf->ping_interval);
    w->idle_timeout_s = ms_to_s(conf->idle_timeout);
    w->scratch_cap = conf->max_message_size + WS_MAX_HEADER;
    if (w->scratch_cap < SCRATCH_MIN)
        w->scratch_cap = SCRATCH_MIN;
    if (w->scratch_cap < conf->max_header_size + 1)
        w->scratch_cap = conf->max_header_size + 1;
    w->scratch = mem_alloc(w->scratch_cap);
    w->pool = pool_new(conf->pool_cache);
    w->trie = trie_new();
    w->start_ms = net_now_ms();
    pthread_mutex_init(&w->snap_lock, NULL);
}

struct worker *worker_new(int id, const struct edge_conf *conf, int port, const char **err)
{
    struct worker *w = mem_calloc(1, sizeof(*w));

    init_fields(w, id, conf);
    w->base = event_base_new();
    if (!w->base) {
        *err = "event_base_new failed";
        goto fail;
    }
    w->listen_fd = net_listen(conf->bind, port, true, LISTEN_BACKLOG, err);
    if (w->listen_fd < 0)
        goto fail;
    if (pipe2(w->notify_fd, O_NONBLOCK | O_CLOEXEC) < 0) {
        *err = "pipe2 failed";
        goto fail;
    }
    if (add_events(w) < 0) {
        *err = "event_add failed";
        goto fail;
    }
    return w;
fail:
    worker_free(w);
    return NULL;
}

int worker_port(const struct worker *w)
{
    return w->listen_fd >= 0 ? net_local_port(w->listen_fd) : -1;
}

static void free_event(struct event **ev)
{
    if (*ev)
        event_free(*ev);
    *ev = NULL;
}

/* Closes what is left, frees everything loop-related; on the worker's thread. */
static void worker_teardown(struct worker *w)
{
    struct pool_stats ps;

    if (w->torn_down)
        return;
    w->torn_down = true;
    abort_all(w);
    uplink_close(w);
    reap(w);
    worker_snapshot(w);
    free_event(&w->accept_ev);
    free_event(&w->sweep_ev);
    free_event(&w->notify_ev);
    free_event(&w->reap_ev);
    free_event(&w->flush_ev);
    free_event(&w->stop_ev);
    if (w->base)
        event_base_loop(w->base, EVLOOP_NONBLOCK); /* let deferred frees run */
    frame_unref(&w->ping_frame);
    if (w->pool) {
        pool_get_stats(w->pool, &ps);
        if (ps.chunks_in_use || ps.evbuffers_in_use)
            log_error("pool_leak", "chunks=%llu evbuffers=%llu",
                      (unsigned long long)ps.chunks_in_use,
                      (unsigned long long)ps.evbuffers_in_use);
        pool_free(w->pool);
        w->pool = NULL;
    }
    trie_free(w->trie);
    w->trie = NULL;
    if (w->base)
        event_base_free(w->base);
    w->base = NULL;
    if (frame_live() != 0)
        log_error("frame_leak", "live=%llu", (unsigned long long)frame_live());
}

void worker_free(struct worker *w)
{
    if (!w)
        return;
    worker_teardown(w);
    if (w->listen_fd >= 0)
        close(w->listen_fd);
    for (int i = 0; i < 2; i++) {
        if (w->notify_fd[i] >= 0)
            close(w->notify_fd[i]);
    }
    mem_free(w->scratch);
    mem_free(w->clients);
    mem_free(w->due_s);
    mem_free(w->closed);
    mem_free(w->dirty);
    mem_free(w->match);
    pthread_mutex_destroy(&w->snap_lock);
    mem_free(w);
}

static void *worker_thread(void *arg)
{
    struct worker *w = arg;

    log_set_worker(w->id);
    worker_start_uplink(w);
    if (event_base_dispatch(w->base) < 0)
        log_error("loop_failed", "");
    worker_teardown(w);
    log_debug("worker_exit", "");
    return NULL;
}

int worker_start(struct worker *w)
{
    if (pthread_create(&w->thread, NULL, worker_thread, w) != 0)
        return -1;
    w->started = true;
    return 0;
}

void worker_join(struct worker *w)
{
    if (w->started)
        pthread_join(w->thread, NULL);
    w->started = false;
}

/* ---------- stats and the process-wide view ---------- */

void worker_set_all(struct worker **all, size_t n)
{
    all_workers = all;
    n_workers = n;
}

/* Returns w's counters with the gauges filled in (worker thread only). */
static void live_stats(struct worker *w, struct worker_stats *out)
{
    *out = w->stats;
    out->link_up = w->uplink && uplink_state(w->uplink) == UPLINK_UP;
    out->broker_reconnects =
        w->stats.broker_reconnects + (w->uplink ? uplink_reconnects(w->uplink) : 0);
    out->subscriptions = w->trie ? trie_subscription_count(w->trie) : 0;
    out->patterns = w->trie ? trie_pattern_count(w->trie) : 0;
    out->trie_bytes = w->trie ? trie_bytes(w->trie) : 0;
    out->frames_live = frame_live();
    if (w->pool)
        pool_get_stats(w->pool, &out->pool);
}

void worker_snapshot(struct worker *w)
{
    struct worker_stats s;

    live_stats(w, &s);
    pthread_mutex_lock(&w->snap_lock);
    w->snap = s;
    pthread_mutex_unlock(&w->snap_lock);
}

static void add_stats(struct worker_stats *sum, const struct worker_stats *s)
{
    const uint64_t *a = (const uint64_t *)s;
    uint64_t *b = (uint64_t *)sum;

    /* Every field is a uint64_t (pool_stats too): sum them as an array. */
    _Static_assert(sizeof(struct worker_stats) % sizeof(uint64_t) == 0, "stats are uint64_t");
    for (size_t i = 0; i < sizeof(*s) / sizeof(uint64_t); i++)
        b[i] += a[i];
}

/* Sums self's live stats and every other worker's snapshot. */
static void sum_stats(struct worker *self, struct worker_stats *sum, size_t *nworkers)
{
    struct worker_stats s;

    memset(sum, 0, sizeof(*sum));
    live_stats(self, &s);
    add_stats(sum, &s);
    *nworkers = 1;
    for (size_t i = 0; i < n_workers; i++) {
        struct worker *o = all_workers[i];

        if (o == self)
            continue;
        pthread_mutex_lock(&o->snap_lock);
        s = o->snap;
        pthread_mutex_unlock(&o->snap_lock);
        add_stats(sum, &s);
        (*nworkers)++;
    }
}

void worker_links_up(struct worker *self, size_t *up, size_t *total)
{
    struct worker_stats sum;

    sum_stats(self, &sum, total);
    *up = (size_t)sum.link_up;
}

static void render_labelled(struct evbuffer *out, const char *name, const char *help,
                            const char *label, const char *const *values, const uint64_t *v,
                            size_t n)
{
    char lb[64];

    metrics_family(out, name, "counter", help);
    for (size_t i = 0; i < n; i++) {
        snprintf(lb, sizeof(lb), "%s=\"%s\"", label, values[i]);
        metrics_sample(out, name, lb, v[i]);
    }
}

static void render_traffic(struct evbuffer *out, const struct worker_stats *s)
{
    metrics_counter(out, "herald_edge_frames_in_total", "WebSocket frames received", s->frames_in);
    metrics_counter(out, "herald_edge_frames_out_total", "WebSocket frames queued to clients",
                    s->frames_out);
    metrics_counter(out, "herald_edge_bytes_in_total", "Bytes read from clients", s->bytes_in);
    metrics_counter(out, "herald_edge_bytes_out_total", "Bytes written to clients", s->bytes_out);
    metrics_counter(out, "herald_edge_events_in_total", "Events received from the broker",
                    s->events_in);
    metrics_counter(out, "herald_edge_deliveries_total", "Event frames queued to clients",
                    s->deliveries);
    metrics_counter(out, "herald_edge_flush_polls_total",
                    "Broker reads made between client writes of a fan-out that brought events",
                    s->flush_polls);
    metrics_counter(out, "herald_edge_flush_yields_total",
                    "Fan-outs that returned to the event loop before finishing (slice over)",
                    s->flush_yields);
    metrics_counter(out, "herald_edge_slow_consumers_total",
                    "Clients closed for exceeding send-queue-limit", s->slow_consumers);
    metrics_gauge(out, "herald_edge_subscriptions", "Client subscriptions (pattern, connection)",
                  s->subscriptions);
    metrics_gauge(out, "herald_edge_patterns", "Distinct patterns subscribed at the broker",
                  s->patterns);
    metrics_counter(out, "herald_edge_patterns_refused_total",
                    "Subscriptions refused: over the broker's pattern limit, or by the broker",
                    s->patterns_refused);
    metrics_gauge(out, "herald_edge_trie_bytes", "Heap bytes of the subscription tries",
                  s->trie_bytes);
}

static void render_conns(struct evbuffer *out, const struct worker_stats *s)
{
    static const char *const hs[HS_FAIL_COUNT] = {"400", "403", "404",    "405",
                                                  "426", "431", "timeout"};
    static const char *const cl[CLOSE_R_COUNT] = {"1002", "1003", "1007",
                                                  "1008", "1009", "idle_timeout"};

    metrics_gauge(out, "herald_edge_connections", "Open client connections", s->conns_current);
    metrics_counter(out, "herald_edge_connections_total", "Accepted client connections",
                    s->conns_total);
    metrics_counter(out, "herald_edge_connections_rejected_total",
                    "Connections refused at accept (max-connections)", s->conns_rejected);
    metrics_counter(out, "herald_edge_accept_errors_total",
                    "Failed accept() calls (EMFILE and the like)", s->accept_errors);
    metrics_counter(out, "herald_edge_handshakes_total", "Successful WebSocket handshakes",
                    s->handshakes_ok);
    render_labelled(out, "herald_edge_handshake_failures_total",
                    "Failed handshakes by HTTP status or timeout", "reason", hs, s->hs_fail,
                    HS_FAIL_COUNT);
    render_labelled(out, "herald_edge_closes_total",
                    "Connections closed by the edge, by close code or reason", "reason", cl,
                    s->closes, CLOSE_R_COUNT);
    metrics_family(out, "herald_edge_http_requests_total", "counter", "HTTP requests by path");
    metrics_sample(out, "herald_edge_http_requests_total", "path=\"/healthz\"", s->http_healthz);
    metrics_sample(out, "herald_edge_http_requests_total", "path=\"/metrics\"", s->http_metrics);
}

static void render_memory(struct evbuffer *out, const struct worker_stats *s, size_t nworkers)
{
    metrics_gauge(out, "herald_edge_broker_links_up", "Workers whose broker link is up",
                  s->link_up);
    metrics_counter(out, "herald_edge_broker_reconnects_total", "Broker link reconnect attempts",
                    s->broker_reconnects);
    metrics_gauge(out, "herald_edge_workers", "Worker threads", nworkers);
    metrics_gauge(out, "herald_edge_frames_live", "Encoded frames alive", s->frames_live);
    metrics_gauge(out, "herald_edge_pool_chunks_in_use", "Pool chunks borrowed",
                  s->pool.chunks_in_use);
    metrics_gauge(out, "herald_edge_pool_chunk_bytes_in_use", "Bytes of pool chunks borrowed",
                  s->pool.chunk_bytes_in_use);
    metrics_gauge(out, "herald_edge_pool_chunks_cached", "Free pool chunks kept for reuse",
                  s->pool.chunks_cached);
    metrics_gauge(out, "herald_edge_pool_evbuffers_in_use", "Output evbuffers borrowed",
                  s->pool.evbuffers_in_use);
    metrics_counter(out, "herald_edge_pool_gets_total", "Pool borrows", s->pool.gets);
    metrics_gauge(out, "herald_edge_rss_bytes", "Resident set size of the process",
                  net_rss_bytes());
}

void worker_render_metrics(struct worker *self, struct evbuffer *out)
{
    struct worker_stats sum;
    size_t nworkers;

    sum_stats(self, &sum, &nworkers);
    render_conns(out, &sum);
    render_traffic(out, &sum);
    render_memory(out, &sum, nworkers);
}

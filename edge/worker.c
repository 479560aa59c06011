/*
 * worker.c - one edge worker thread: listener, sweep, fan-out, shutdown.
 *
 * Owns struct worker and everything in it: the event_base, the listener
 * (SO_REUSEPORT: every worker binds the same port and the kernel spreads
 * connections), and the hub its clients share (hub.h: buffer pool, read
 * scratch, the trie of their subscriptions, the uplink to the broker, the
 * connection array and the close and dirty lists). Workers share nothing
 * but the read-only configuration.
 *
 * The 1 s sweep walks the hub's connection array backwards (hub.c) and
 * replaces per-connection timers: it advances the coarse clock (uint32
 * seconds since start), times out handshakes, pings open connections every
 * ping-interval, closes those silent past idle-timeout and aborts closings
 * past their linger cap. reap() frees the close list on the next loop pass.
 *
 * Fan-out (the hot path). The uplink hands each MSG to worker_deliver(),
 * which publishes it through the common fan-out (common/fanout.c: targets
 * collected first, since a delivery may close a slow consumer and the trie
 * must not change during a match), with the JSON envelope and the raw
 * frame each encoded at most once, lazily; client_sink_ops queue a
 * reference on every target and put it on the dirty list (common/outq.h).
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
 * Stats are counted into the hub and rendered by edge_metrics.c; the
 * sweep snapshots them once a second for the other workers' scrapes.
 *
 * Rejected: evconnlistener (one more allocation and callback layer for an
 * accept4 loop), a timer per connection (docs/architecture.md §4.5).
 */
#include "edge/worker.h"

#include <assert.h>
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
#include "common/net.h"
#include "common/trie.h"
#include "edge/addr_limit.h"
#include "edge/client.h"
#include "edge/edge_metrics.h"
#include "edge/hub.h"
#include "edge/browser_proto.h"
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

static void reap(struct worker *w)
{
    if (w->h.nclosed && w->h.dirty.n) /* a flush left for the next pass may name them */
        dirty_prune(&w->h.dirty);
    for (uint32_t i = 0; i < w->h.nclosed; i++)
        client_free(w->h.closed[i]);
    w->h.nclosed = 0;
}

static void uplink_close(struct worker *w)
{
    uplink_free(w->h.uplink);
    w->h.uplink = NULL;
}

static void stop_loop(struct worker *w)
{
    uplink_close(w);
    event_base_loopexit(w->h.base, NULL);
}

static void worker_on_reap(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;

    (void)fd;
    (void)what;
    reap(w);
    if (w->shutting_down && w->h.nclients == 0)
        stop_loop(w);
}

/* ---------- fan-out ---------- */

struct msg_event {
    const char *topic;
    size_t tlen;
    uint64_t seq;
    const void *payload;
    size_t plen;
};

static struct frame *encode_event(void *arg, uint8_t form, const struct trie_node *node)
{
    const struct msg_event *ev = arg;

    (void)node;
    if (form == CLIENT_FORM_RAW)
        return browser_encode_raw(ev->payload, ev->plen);
    return browser_encode_event(ev->topic, ev->tlen, ev->seq, ev->payload, ev->plen);
}

void worker_deliver(struct worker *w, const char *topic, size_t tlen, uint64_t seq,
                    const void *payload, size_t plen)
{
    struct msg_event ev = {topic, tlen, seq, payload, plen};

    w->h.stats.events_in++;
    fanout_publish(&w->h.fanout, w->h.trie, topic, tlen, false, &client_sink_ops, 0, encode_event,
                   &ev);
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
    bool polling = w->h.uplink && w->h.dirty.n > FLUSH_POLL_EVERY;
    int64_t until = polling ? coarse_ms() + FLUSH_SLICE_MS : 0;
    uint32_t i;

    /* w->h.dirty.n and .v are re-read every round: a poll appends. */
    for (i = 0; i < w->h.dirty.n; i++) {
        struct sink *s = w->h.dirty.v[i];

        s->flags &= (uint8_t)~SINK_DIRTY;
        if (!(s->flags & SINK_CLOSED))
            client_sink_ops.flush(s);
        if (polling && (i + 1) % FLUSH_POLL_EVERY == 0) {
            if (i + 1 >= FLUSH_SLICE_CLIENTS || coarse_ms() >= until)
                break;
            w->h.stats.flush_polls += uplink_poll(w->h.uplink) > 0;
        }
    }
    if (i + 1 < w->h.dirty.n) { /* the slice is over: the rest goes on in the next loop pass */
        dirty_consume(&w->h.dirty, i + 1);
        w->h.stats.flush_yields++;
        if (w->flush_ev) { /* a zero timer, not event_active: that would run it before */
            struct timeval now = {0, 0}; /* the loop polls its sockets again */

            event_add(w->flush_ev, &now);
        }
        return;
    }
    w->h.dirty.n = 0;
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
    struct trie_node *node = trie_find(w->h.trie, pattern, len);

    if (!node)
        return;
    w->h.stats.patterns_refused += fanout_collect_node(&w->h.fanout, node);
    /* The last one prunes the node: it is not used after this loop. */
    for (size_t i = 0; i < w->h.fanout.n; i++)
        client_refused(client_of_sink(w->h.fanout.v[i].sink), node, code, pattern, len);
    w->h.fanout.n = 0;
}

static void on_link_up(void *arg)
{
    struct worker *w = arg;
    size_t n = interest_resend(w->h.trie, w->h.uplink);

    edge_metrics_snapshot(&w->h); /* /healthz on other workers sees the link at once */
    log_debug("interest_resent", "patterns=%zu", n);
}

void worker_start_uplink(struct worker *w)
{
    struct uplink_handlers h = {on_link_msg, on_link_batch_end, on_link_up, on_link_refused, w};
    struct uplink_config cfg;
    char node[64];
    const char *err = "";

    if (!w->h.conf->broker || !*w->h.conf->broker || w->h.uplink)
        return;
    snprintf(node, sizeof(node), "edge-%ld-%d", (long)getpid(), w->id);
    cfg.broker = w->h.conf->broker;
    cfg.secret = w->h.conf->broker_secret;
    cfg.node = node;
    cfg.reconnect_min_ms = w->h.conf->reconnect_min;
    cfg.reconnect_max_ms = w->h.conf->reconnect_max;
    cfg.ping_interval_ms = w->h.conf->broker_ping_interval;
    cfg.tls = w->uplink_tls;
    cfg.tls_server_name = w->h.conf->broker_tls_server_name;
    w->h.uplink = uplink_new(w->h.base, &cfg, &h, &err);
    if (!w->h.uplink)
        log_error("uplink_failed", "broker=%s reason=\"%s\"", w->h.conf->broker, err);
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

    w->h.stats.accept_errors++;
    n = log_rate_tick(&w->accept_log, net_now_ms(), 1000);
    if (n)
        log_warn("accept_failed", "endpoint=ws errno=%d reason=\"%s\" count=%llu", err,
                 strerror(err), (unsigned long long)n);
    event_del(w->accept_ev);
}

/*
 * Whether a new connection from sa may stay (docs/protocol.md §3.2):
 * returns 0 with *key counted in the per-address table (or ADDR_KEY_NONE),
 * or the status that refuses it - 503 at max-connections (refusals still
 * lingering with their answer do not count) or when the address table is
 * full, 429 over the address's connection count or handshake rate.
 */
static int admission(struct worker *w, const struct sockaddr *sa, socklen_t len, uint64_t *key)
{
    struct hub *h = &w->h;

    *key = ADDR_KEY_NONE;
    if ((int64_t)(h->nclients - h->nrefused) >= h->conf->max_connections) {
        h->stats.conns_rejected++;
        return 503;
    }
    if (!h->addr)
        return 0;
    *key = addr_limit_key(sa, len);
    switch (addr_limit_acquire(h->addr, *key, net_now_ms())) {
    case ADDR_OK:
        return 0;
    case ADDR_TOO_MANY:
        h->stats.addr_refused[0]++;
        return 429;
    case ADDR_TOO_FAST:
        h->stats.addr_refused[1]++;
        return 429;
    default:
        h->stats.addr_refused[2]++;
        return 503;
    }
}

static void worker_on_accept(evutil_socket_t lfd, short what, void *arg)
{
    struct worker *w = arg;
    int one = 1;

    (void)what;
    for (int i = 0; i < ACCEPT_BATCH; i++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        int fd = accept4(lfd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC), status;
        uint64_t key;

        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                accept_failed(w, errno);
            return;
        }
        if (w->shutting_down) {
            close(fd);
            w->h.stats.conns_rejected++;
            continue;
        }
        status = admission(w, (const struct sockaddr *)&ss, sl, &key);
        /* Events are small and latency matters more than segment count. */
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        client_accept(&w->h, fd, key, status);
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
    return c->last_ping_s + w->h.ping_interval_s;
}

static void sweep_one(struct worker *w, struct client *c)
{
    uint32_t now = w->h.now_s, due;

    switch (c->state) {
    case CLIENT_HANDSHAKE:
        if (reached(now, handshake_deadline(w, c))) {
            w->h.stats.hs_fail[HS_FAIL_TIMEOUT]++;
            client_abort(c);
        }
        break;
    case CLIENT_OPEN:
        if (client_auth_due(c, w->handshake_timeout_s, &due) && reached(now, due) &&
            client_auth_expire(c))
            break;
        if (reached(now, idle_deadline(w, c))) {
            w->h.stats.closes[CLOSE_R_IDLE]++;
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
    uint32_t idle, ping, first, auth;

    switch (c->state) {
    case CLIENT_HANDSHAKE:
        return handshake_deadline(w, c);
    case CLIENT_OPEN:
        idle = idle_deadline(w, c);
        ping = ping_due(w, c);
        first = reached(idle, ping) ? ping : idle;
        /* The token's exp, or the deadline to authenticate (client_auth.c). */
        if (client_auth_due(c, w->handshake_timeout_s, &auth) && reached(first, auth))
            first = auth;
        return first;
    case CLIENT_CLOSING:
        return c->last_ping_s;
    default:
        return w->h.now_s + 1;
    }
}

static void update_clock(struct worker *w)
{
    w->h.now_s = (uint32_t)((net_now_ms() - w->start_ms) / 1000u);
    w->h.wall_s = (int64_t)time(NULL);
}

static void abort_all(struct worker *w)
{
    while (w->h.nclients > 0)
        client_abort(w->h.clients[w->h.nclients - 1]);
}

static void worker_on_sweep(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;

    (void)fd;
    (void)what;
    update_clock(w);
    for (uint32_t i = w->h.nclients; i-- > 0;) {
        struct client *c;

        /* The due array is read in order and touches no client: reading
         * every struct instead cost an idle worker with 18,000
         * connections ~0.7 ms a second (0.38 ms this way), and 56 such
         * workers share one core at one million. */
        if (i >= w->h.nclients || !reached(w->h.now_s, w->h.due_s[i]))
            continue;
        c = w->h.clients[i];
        sweep_one(w, c);
        if (i < w->h.nclients && w->h.clients[i] == c) /* still here: when next */
            w->h.due_s[i] = next_due(w, c);
    }
    if (w->accept_ev && !w->shutting_down && !event_pending(w->accept_ev, EV_READ, NULL))
        event_add(w->accept_ev, NULL);
    if (w->id == 0 && w->h.addr) /* the table is the process's: one worker tidies it */
        addr_limit_expire(w->h.addr, net_now_ms());
    /* After a spike of patterns (an attacker's, say), give the pages back. */
    if (mem_trim_after_peak(trie_bytes(w->h.trie), &w->trim_peak, WORKER_TRIM_DROP))
        log_info("memory_trimmed", "rss=%llu", (unsigned long long)net_rss_bytes());
    edge_metrics_snapshot(&w->h);
}

/* ---------- shutdown ---------- */

static uint32_t ms_to_s(int64_t ms)
{
    int64_t s = (ms + 999) / 1000;

    return s < 1 ? 1 : (uint32_t)s;
}

static void worker_on_stop_tick(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;

    (void)fd;
    (void)what;
    update_clock(w);
    if (net_now_ms() >= w->shutdown_deadline_ms) {
        if (w->h.nclients)
            log_warn("shutdown_forced", "clients=%u", w->h.nclients);
        abort_all(w);
    }
    if (w->h.nclients == 0)
        stop_loop(w);
}

/*
 * Drain (docs/protocol.md §3.7): an open client gets 1012 "service restart",
 * which tells it to reconnect at once (to another edge behind the load
 * balancer), after what is already queued for it; a handshake is dropped.
 * Every closing connection then lingers until the shutdown deadline rather
 * than CLOSE_LINGER_S, so output that takes longer than 2 s to flush still
 * gets shutdown-timeout; one that is flushed and sees its EOF ends sooner.
 */
static void drain_one(struct worker *w, struct client *c, uint32_t linger_s)
{
    if (c->state == CLIENT_OPEN) {
        client_close(c, WS_CLOSE_RESTART, "service restart");
    } else if (c->state == CLIENT_HANDSHAKE) {
        client_abort(c);
        return;
    }
    if (c->state == CLIENT_CLOSING && reached(w->h.now_s + linger_s, c->last_ping_s)) {
        c->last_ping_s = w->h.now_s + linger_s;
        hub_sweep_soon(&w->h, c);
    }
}

void worker_begin_shutdown(struct worker *w)
{
    struct timeval tv = {0, SHUTDOWN_TICK * 1000};
    uint32_t linger_s;

    if (w->shutting_down)
        return;
    w->shutting_down = true;
    w->shutdown_deadline_ms = net_now_ms() + (uint64_t)w->h.conf->shutdown_timeout;
    update_clock(w);
    /* One second more than the deadline: the stop tick, not the sweep, ends the drain. */
    linger_s = ms_to_s(w->h.conf->shutdown_timeout) + 1;
    if (w->accept_ev) {
        event_free(w->accept_ev);
        w->accept_ev = NULL;
    }
    if (w->listen_fd >= 0) {
        close(w->listen_fd);
        w->listen_fd = -1;
    }
    log_info("drain", "clients=%u timeout_ms=%lld", w->h.nclients,
             (long long)w->h.conf->shutdown_timeout);
    for (uint32_t i = w->h.nclients; i-- > 0;)
        drain_one(w, w->h.clients[i], linger_s);
    w->stop_ev = event_new(w->h.base, -1, EV_PERSIST, worker_on_stop_tick, w);
    if (w->stop_ev)
        event_add(w->stop_ev, &tv);
    if (w->h.nclients == 0)
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

static int add_events(struct worker *w)
{
    struct timeval one_s = {1, 0};

    w->accept_ev = event_new(w->h.base, w->listen_fd, EV_READ | EV_PERSIST, worker_on_accept, w);
    w->sweep_ev = event_new(w->h.base, -1, EV_PERSIST, worker_on_sweep, w);
    w->notify_ev = event_new(w->h.base, w->notify_fd[0], EV_READ | EV_PERSIST, worker_on_notify, w);
    w->h.reap_ev = event_new(w->h.base, -1, 0, worker_on_reap, w);
    w->flush_ev = event_new(w->h.base, -1, 0, worker_on_flush, w);
    if (!w->accept_ev || !w->sweep_ev || !w->notify_ev || !w->h.reap_ev || !w->flush_ev)
        return -1;
    if (event_add(w->accept_ev, NULL) < 0 || event_add(w->sweep_ev, &one_s) < 0 ||
        event_add(w->notify_ev, NULL) < 0)
        return -1;
    return 0;
}

static void init_fields(struct worker *w, int id, const struct edge_conf *conf)
{
    w->id = id;
    w->h.conf = conf;
    w->listen_fd = -1;
    w->notify_fd[0] = w->notify_fd[1] = -1;
    w->h.limits.max_len = (size_t)conf->max_topic_length;
    w->h.limits.max_tokens = (size_t)conf->max_topic_tokens;
    w->handshake_timeout_s = ms_to_s(conf->handshake_timeout);
    w->h.ping_interval_s = ms_to_s(conf->ping_interval);
    w->idle_timeout_s = ms_to_s(conf->idle_timeout);
    w->h.scratch_cap = conf->max_message_size + WS_MAX_HEADER;
    if (w->h.scratch_cap < SCRATCH_MIN)
        w->h.scratch_cap = SCRATCH_MIN;
    if (w->h.scratch_cap < conf->max_header_size + 1)
        w->h.scratch_cap = conf->max_header_size + 1;
    w->h.scratch = mem_alloc(w->h.scratch_cap);
    w->h.pool = pool_new(conf->pool_cache);
    w->h.trie = trie_new();
    w->start_ms = net_now_ms();
    w->h.wall_s = (int64_t)time(NULL);
    pthread_mutex_init(&w->h.snap_lock, NULL);
}

struct worker *worker_new(int id, const struct edge_conf *conf, int port, const char **err)
{
    struct worker *w = mem_calloc(1, sizeof(*w));

    init_fields(w, id, conf);
    w->h.base = event_base_new();
    if (!w->h.base) {
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

void worker_set_addr_limit(struct worker *w, struct addr_limit *a)
{
    assert(w->h.nclients == 0 && w->h.clients_cap == 0); /* addr_keys follows the array */
    w->h.addr = a;
}

int worker_port(const struct worker *w)
{
    return w->listen_fd >= 0 ? net_local_port(w->listen_fd) : -1;
}

void worker_set_tls(struct worker *w, struct tls_server *tls)
{
    assert(w->h.nclients == 0 && w->h.clients_cap == 0); /* ssls follows the array */
    w->h.tls = tls;
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
    edge_metrics_snapshot(&w->h);
    free_event(&w->accept_ev);
    free_event(&w->sweep_ev);
    free_event(&w->notify_ev);
    free_event(&w->h.reap_ev);
    free_event(&w->flush_ev);
    free_event(&w->stop_ev);
    if (w->h.base)
        event_base_loop(w->h.base, EVLOOP_NONBLOCK); /* let deferred frees run */
    frame_unref(&w->h.ping_frame);
    if (w->h.pool) {
        pool_get_stats(w->h.pool, &ps);
        if (ps.chunks_in_use || ps.evbuffers_in_use)
            log_error("pool_leak", "chunks=%llu evbuffers=%llu",
                      (unsigned long long)ps.chunks_in_use,
                      (unsigned long long)ps.evbuffers_in_use);
        pool_free(w->h.pool);
        w->h.pool = NULL;
    }
    trie_free(w->h.trie);
    w->h.trie = NULL;
    if (w->h.base)
        event_base_free(w->h.base);
    w->h.base = NULL;
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
    mem_free(w->h.scratch);
    mem_free(w->h.clients);
    mem_free(w->h.due_s);
    mem_free(w->h.grants);
    mem_free(w->h.addr_keys);
    mem_free(w->h.ssls); /* empty: abort_all freed every SSL object */
    mem_free(w->h.closed);
    dirty_free(&w->h.dirty);
    fanout_free(&w->h.fanout);
    pthread_mutex_destroy(&w->h.snap_lock);
    mem_free(w);
}

static void *worker_thread(void *arg)
{
    struct worker *w = arg;

    log_set_worker(w->id);
    worker_start_uplink(w);
    if (event_base_dispatch(w->h.base) < 0)
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
    struct hub *hubs[EDGE_MAX_HUBS];

    if (n > EDGE_MAX_HUBS)
        n = EDGE_MAX_HUBS;
    for (size_t i = 0; i < n; i++)
        hubs[i] = &all[i]->h;
    edge_metrics_set_hubs(hubs, n);
}

/* Returns w's counters with the gauges filled in (worker thread only). */

/*
 * edge_metrics.c - the edge's /metrics text and the process-wide sums.
 *
 * Every worker's hub counts into its own struct edge_stats; the worker
 * answering a scrape sums its live counters and the other workers'
 * snapshots (edge_metrics.h says why). Rejected: atomics for the counters
 * (every increment on the hot path would pay for a once-a-second read).
 */
#include "edge/edge_metrics.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "common/frame.h"
#include "common/metrics.h"
#include "common/net.h"
#include "common/tls.h"
#include "common/trie.h"
#include "edge/hub.h"
#include "edge/uplink.h"

static struct hub *all_hubs[EDGE_MAX_HUBS];
static size_t n_hubs;

void edge_metrics_set_hubs(struct hub *const *hubs, size_t n)
{
    n_hubs = n < EDGE_MAX_HUBS ? n : EDGE_MAX_HUBS;
    for (size_t i = 0; i < n_hubs; i++)
        all_hubs[i] = hubs[i];
}

static void live_stats(struct hub *h, struct edge_stats *out)
{
    *out = h->stats;
    out->link_up = h->uplink && uplink_state(h->uplink) == UPLINK_UP;
    out->broker_reconnects =
        h->stats.broker_reconnects + (h->uplink ? uplink_reconnects(h->uplink) : 0);
    out->subscriptions = h->trie ? trie_subscription_count(h->trie) : 0;
    out->patterns = h->trie ? trie_pattern_count(h->trie) : 0;
    out->trie_bytes = h->trie ? trie_bytes(h->trie) : 0;
    out->frames_live = frame_live();
    if (h->pool)
        pool_get_stats(h->pool, &out->pool);
}

void edge_metrics_snapshot(struct hub *h)
{
    struct edge_stats s;

    live_stats(h, &s);
    pthread_mutex_lock(&h->snap_lock);
    h->snap = s;
    pthread_mutex_unlock(&h->snap_lock);
}

static void add_stats(struct edge_stats *sum, const struct edge_stats *s)
{
    const uint64_t *a = (const uint64_t *)s;
    uint64_t *b = (uint64_t *)sum;

    /* Every field is a uint64_t (pool_stats too): sum them as an array. */
    _Static_assert(sizeof(struct edge_stats) % sizeof(uint64_t) == 0, "stats are uint64_t");
    for (size_t i = 0; i < sizeof(*s) / sizeof(uint64_t); i++)
        b[i] += a[i];
}

/* Sums self's live stats and every other worker's snapshot. */
static void sum_stats(struct hub *self, struct edge_stats *sum, size_t *nworkers)
{
    struct edge_stats s;

    memset(sum, 0, sizeof(*sum));
    live_stats(self, &s);
    add_stats(sum, &s);
    *nworkers = 1;
    for (size_t i = 0; i < n_hubs; i++) {
        struct hub *o = all_hubs[i];

        if (o == self)
            continue;
        pthread_mutex_lock(&o->snap_lock);
        s = o->snap;
        pthread_mutex_unlock(&o->snap_lock);
        add_stats(sum, &s);
        (*nworkers)++;
    }
}

void edge_metrics_links_up(struct hub *self, size_t *up, size_t *total)
{
    struct edge_stats sum;

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

static void render_traffic(struct evbuffer *out, const struct edge_stats *s)
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

static void render_conns(struct evbuffer *out, const struct edge_stats *s)
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

static void render_memory(struct evbuffer *out, const struct edge_stats *s, size_t nworkers)
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

/* The TLS port's counters; reloads are the process's (its one tls_server). */
static void render_tls(struct evbuffer *out, const struct edge_stats *s, struct tls_server *tls)
{
    uint64_t ok = 0, failed = 0;

    if (tls) {
        pthread_mutex_lock(&tls->lock);
        ok = tls->reloads;
        failed = tls->reload_failures;
        pthread_mutex_unlock(&tls->lock);
    }
    metrics_counter(out, "herald_edge_tls_handshakes_total", "TLS handshakes completed",
                    s->tls_handshakes);
    metrics_counter(out, "herald_edge_tls_handshake_failures_total",
                    "TLS handshakes that failed: not a ClientHello, alerts, errors, EOF",
                    s->tls_handshake_failures);
    metrics_counter(out, "herald_edge_tls_errors_total",
                    "Connections ended by a TLS error after the handshake", s->tls_errors);
    metrics_family(out, "herald_edge_tls_reloads_total", "counter",
                   "Certificate reloads on SIGHUP, by result");
    metrics_sample(out, "herald_edge_tls_reloads_total", "result=\"ok\"", ok);
    metrics_sample(out, "herald_edge_tls_reloads_total", "result=\"failed\"", failed);
}

void edge_metrics_render(struct hub *self, struct evbuffer *out)
{
    struct edge_stats sum;
    size_t nworkers;

    sum_stats(self, &sum, &nworkers);
    render_conns(out, &sum);
    render_tls(out, &sum, self->tls);
    render_traffic(out, &sum);
    render_memory(out, &sum, nworkers);
}

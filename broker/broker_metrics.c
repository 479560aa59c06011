/*
 * broker_metrics.c - the broker's counters as text: Prometheus for
 * GET /metrics (http_api.c), "name value" lines for the link's STATS reply
 * (linksrv.c, shown by `herald stats`).
 *
 * Reads only what the endpoints share (core.h): the counters, the tries,
 * the sequence map, and the count of unauthenticated connections.
 */
#include "broker/broker_metrics.h"

#include <stdio.h>

#include "broker/core.h"
#include "broker/history.h"
#include "broker/seq_map.h"
#include "common/frame.h"
#include "common/metrics.h"
#include "common/net.h"
#include "common/trie.h"

static void metrics_by_endpoint(const struct core *core, struct evbuffer *out)
{
    const struct broker_stats *s = &core->stats;
    char labels[64];

    metrics_family(out, "herald_connections", "gauge", "Open connections by endpoint.");
    for (int ep = 0; ep < EP_HTTP; ep++) {
        snprintf(labels, sizeof(labels), "endpoint=\"%s\"", core_endpoint_name(ep));
        metrics_sample(out, "herald_connections", labels, s->conns_current[ep]);
    }
    metrics_family(out, "herald_connections_total", "counter",
                   "Connections accepted by endpoint (http: requests).");
    for (int ep = 0; ep < EP_COUNT; ep++) {
        snprintf(labels, sizeof(labels), "endpoint=\"%s\"", core_endpoint_name(ep));
        metrics_sample(out, "herald_connections_total", labels,
                       ep == EP_HTTP ? s->http_requests : s->conns_total[ep]);
    }
    metrics_family(out, "herald_drops_total", "counter",
                   "Connections or requests refused or cut off, by reason.");
    for (int d = 0; d < DROP_COUNT; d++) {
        snprintf(labels, sizeof(labels), "reason=\"%s\"", core_drop_name(d));
        metrics_sample(out, "herald_drops_total", labels, s->drops[d]);
    }
    metrics_family(out, "herald_accept_errors_total", "counter",
                   "Failed accept() calls by endpoint (EMFILE and the like).");
    for (int ep = 0; ep < EP_COUNT; ep++) {
        snprintf(labels, sizeof(labels), "endpoint=\"%s\"", core_endpoint_name(ep));
        metrics_sample(out, "herald_accept_errors_total", labels, s->accept_errors[ep]);
    }
    metrics_gauge(out, "herald_unauthenticated_connections",
                  "Link and RESP connections not authenticated yet.", core_unauthenticated(core));
    metrics_family(out, "herald_tls_handshake_failures_total", "counter",
                   "TLS handshakes that failed (plaintext, garbage, no common version).");
    metrics_sample(out, "herald_tls_handshake_failures_total", "endpoint=\"link\"",
                   s->link_tls_handshake_failures);
    metrics_family(out, "herald_tls_reloads_total", "counter",
                   "SIGHUP certificate reloads: ok, or failed (the old certificate kept serving).");
    metrics_sample(out, "herald_tls_reloads_total", "endpoint=\"link\",result=\"ok\"",
                   s->link_tls_reloads);
    metrics_sample(out, "herald_tls_reloads_total", "endpoint=\"link\",result=\"failed\"",
                   s->link_tls_reload_failures);
}

/* The history store (docs/protocol.md section 1.2): what it holds, what left it, requests. */
static void metrics_history(const struct core *core, struct evbuffer *out)
{
    const struct broker_stats *s = &core->stats;
    struct history_stats h;
    char labels[64];

    history_stats(core->history, &h);
    metrics_gauge(out, "herald_history_events", "Events retained for HISTORY.", h.events);
    metrics_gauge(out, "herald_history_topics", "Topics with retained events.", h.topics);
    metrics_gauge(out, "herald_history_bytes",
                  "Heap bytes the history holds, retained frames included (history-max-memory).",
                  h.bytes);
    metrics_family(out, "herald_history_evictions_total", "counter",
                   "Retained events dropped, by reason (size, ttl, memory, reset).");
    for (int r = 0; r < HISTORY_EVICT_COUNT; r++) {
        snprintf(labels, sizeof(labels), "reason=\"%s\"", history_evict_name(r));
        metrics_sample(out, "herald_history_evictions_total", labels, h.evicted[r]);
    }
    metrics_family(out, "herald_history_requests_total", "counter",
                   "HISTORY requests answered, by whether the range was recovered.");
    metrics_sample(out, "herald_history_requests_total", "recovered=\"true\"",
                   s->history_recovered);
    metrics_sample(out, "herald_history_requests_total", "recovered=\"false\"",
                   s->history_requests - s->history_recovered);
    metrics_counter(out, "herald_history_events_sent_total",
                    "Retained events sent after HISTR replies.", s->history_events_sent);
}

void broker_metrics_prometheus(const struct core *core, struct evbuffer *out)
{
    const struct trie *links = core->link_subs.trie, *resp = core->resp_subs.trie;

    metrics_by_endpoint(core, out);
    metrics_gauge(out, "herald_subscriptions",
                  "Subscriptions (pattern, subscriber) held by links and RESP clients.",
                  trie_subscription_count(links) + trie_subscription_count(resp));
    metrics_gauge(out, "herald_patterns", "Distinct subscribed patterns.",
                  trie_pattern_count(links) + trie_pattern_count(resp));
    metrics_gauge(out, "herald_topics",
                  "Topics whose sequence is remembered (published within topic-ttl).",
                  seq_map_count(core->seqs));
    metrics_counter(out, "herald_topics_evicted_total",
                    "Topics forgotten: idle past topic-ttl, or least recent at max-topics.",
                    seq_map_forgotten(core->seqs));
    metrics_gauge(out, "herald_trie_bytes", "Heap bytes of the subscription tries.",
                  trie_bytes(links) + trie_bytes(resp));
    metrics_counter(out, "herald_events_published_total", "Events accepted from publishers.",
                    core->stats.published);
    metrics_counter(out, "herald_events_delivered_total", "Event copies queued to subscribers.",
                    core->stats.delivered);
    metrics_counter(out, "herald_slow_consumers_total",
                    "Subscribers cut off for exceeding client-output-limit.",
                    core->stats.drops[DROP_SLOW_CONSUMER]);
    metrics_counter(out, "herald_bytes_in_total", "Bytes read from link and RESP clients.",
                    core->stats.bytes_in);
    metrics_counter(out, "herald_bytes_out_total", "Bytes queued to link and RESP clients.",
                    core->stats.bytes_out);
    metrics_history(core, out);
    metrics_gauge(out, "herald_frames_live", "Encoded event frames still referenced.",
                  frame_live());
    metrics_gauge(out, "herald_rss_bytes", "Resident set size of the broker.", net_rss_bytes());
    metrics_gauge(out, "herald_uptime_seconds", "Seconds since start.",
                  (net_now_ms() - core->started_ms) / 1000u);
}

/* Appends "name value\n" to buf at *off, never past cap. */
static void stat_line(char *buf, size_t cap, size_t *off, const char *name, uint64_t v)
{
    int n = snprintf(buf + *off, cap - *off, "%s %llu\n", name, (unsigned long long)v);

    if (n > 0 && (size_t)n < cap - *off)
        *off += (size_t)n;
}

size_t broker_metrics_stats(const struct core *core, char *buf, size_t cap)
{
    const struct broker_stats *s = &core->stats;
    char name[64];
    size_t off = 0, subs = 0, pats = 0;
    uint64_t now = net_now_ms();

    for (int ep = 0; ep < EP_HTTP; ep++) {
        snprintf(name, sizeof(name), "connections_%s", core_endpoint_name(ep));
        stat_line(buf, cap, &off, name, s->conns_current[ep]);
        snprintf(name, sizeof(name), "connections_%s_total", core_endpoint_name(ep));
        stat_line(buf, cap, &off, name, s->conns_total[ep]);
    }
    /* HTTP requests are not held connections: only their total, like /metrics. */
    stat_line(buf, cap, &off, "connections_http_total", s->http_requests);
    stat_line(buf, cap, &off, "published", s->published);
    stat_line(buf, cap, &off, "delivered", s->delivered);
    stat_line(buf, cap, &off, "bytes_in", s->bytes_in);
    stat_line(buf, cap, &off, "bytes_out", s->bytes_out);
    for (int d = 0; d < DROP_COUNT; d++) {
        snprintf(name, sizeof(name), "drops_%s", core_drop_name(d));
        stat_line(buf, cap, &off, name, s->drops[d]);
    }
    stat_line(buf, cap, &off, "slow_consumers", s->drops[DROP_SLOW_CONSUMER]);
    subs = trie_subscription_count(core->link_subs.trie) +
           (core->resp_subs.trie ? trie_subscription_count(core->resp_subs.trie) : 0);
    pats = trie_pattern_count(core->link_subs.trie) +
           (core->resp_subs.trie ? trie_pattern_count(core->resp_subs.trie) : 0);
    stat_line(buf, cap, &off, "subscriptions", subs);
    stat_line(buf, cap, &off, "patterns", pats);
    stat_line(buf, cap, &off, "epoch", core->epoch);
    {
        struct history_stats h;

        history_stats(core->history, &h);
        stat_line(buf, cap, &off, "history_events", h.events);
        stat_line(buf, cap, &off, "history_bytes", h.bytes);
        stat_line(buf, cap, &off, "history_requests", s->history_requests);
    }
    stat_line(buf, cap, &off, "uptime_s",
              now > core->started_ms ? (now - core->started_ms) / 1000 : 0);
    return off;
}

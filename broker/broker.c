/*
 * broker.c - struct broker: start/stop order, the close list, metrics.
 *
 * The broker is one libevent loop. It owns two tries (links, and RESP
 * handles: their delivery semantics differ, see router.c), the per-topic
 * sequence map and the endpoint servers. Start order: tries, then link,
 * RESP, HTTP (each may be disabled with port 0); a failing endpoint undoes
 * the ones already started. Stop order on SIGTERM: every endpoint stops
 * accepting and flushes its connections; the loop exits when the last one
 * is gone or shutdown-timeout passes.
 *
 * Connections are closed at once but freed later: endpoint close functions
 * detach from tries and sockets, then queue a close_entry here; close_ev
 * (a manual event made active on the first queued entry) frees the list on
 * the next loop pass, after every callback that could still hold a pointer
 * has returned (Redis's freeClientAsync). What a connection's own parser
 * still points into (a link's decoder, a RESP client's input) is freed
 * there too, never by the close: a publish handed to the router is a view
 * into that memory, and the router's delivery may close the publisher.
 *
 * Admission. Connections that have not authenticated (a link before
 * HELLO, RESP before AUTH with requirepass) are listed here in accept
 * order: they have their own cap, max-unauthenticated, at which the oldest
 * is closed to admit the newcomer, and auth-timeout closes them from the
 * head of the list. Only authenticated connections count toward
 * max-clients. So ten thousand idle sockets cost at most
 * max-unauthenticated descriptors for auth-timeout each, and never keep an
 * edge's HELLO out. Rejected: refusing newcomers at the cap instead (the
 * idle sockets would then lock real clients out for auth-timeout at a
 * time, renewed by the attacker at will).
 *
 * The tick (1 s) is the one timer for every deadline (one
 * sweep instead of a timer per connection): auth-timeout, each endpoint's
 * request-timeout sweep, forgetting topics past topic-ttl, and giving the
 * kernel back the memory a spike of subscriptions or topics left free.
 */
#include "broker/broker.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <event2/buffer.h>
#include <event2/event.h>

#include "broker/http_api.h"
#include "broker/linksrv.h"
#include "broker/resp.h"
#include "broker/router.h"
#include "broker/seq_map.h"
#include "common/frame.h"
#include "common/mem.h"
#include "common/metrics.h"
#include "common/net.h"
#include "common/trie.h"

/* Tries and topics this far below their peak: the allocator's free pages go back. */
#define BROKER_TRIM_DROP (8u << 20)

static const char *const endpoint_names[EP_COUNT] = {"link", "resp", "http"};
static const char *const drop_names[DROP_COUNT] = {
    "slow_consumer", "protocol",     "oversize",        "auth",
    "max_clients",   "auth_timeout", "unauthenticated", "request_timeout"};

const char *broker_endpoint_name(enum broker_endpoint ep)
{
    return endpoint_names[ep];
}

const char *broker_drop_name(enum broker_drop d)
{
    return drop_names[d];
}

static void free_close_list(struct broker *b)
{
    while (b->close_list) {
        struct close_entry *e = b->close_list;

        b->close_list = e->next;
        e->free_fn(e);
    }
}

static void broker_on_close_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    free_close_list(arg);
}

static void broker_on_shutdown_timeout(evutil_socket_t fd, short what, void *arg)
{
    struct broker *b = arg;

    (void)fd;
    (void)what;
    log_warn("shutdown_timeout", "open=%llu", (unsigned long long)broker_conn_count(b));
    event_base_loopexit(b->base, NULL);
}

void broker_defer_free(struct broker *b, struct close_entry *e)
{
    e->next = b->close_list;
    b->close_list = e;
    event_active(b->close_ev, EV_TIMEOUT, 0);
}

uint64_t broker_conn_count(const struct broker *b)
{
    return b->stats.conns_current[EP_LINK] + b->stats.conns_current[EP_RESP];
}

void broker_preauth_leave(struct broker *b, struct preauth *p)
{
    if (!p->listed)
        return;
    if (p->prev)
        p->prev->next = p->next;
    else
        b->preauth_head = p->next;
    if (p->next)
        p->next->prev = p->prev;
    else
        b->preauth_tail = p->prev;
    p->prev = p->next = NULL;
    p->listed = false;
    b->npreauth--;
}

void broker_preauth_add(struct broker *b, struct preauth *p)
{
    /* The evicted connection leaves the list from its own close path. */
    while (b->preauth_head && b->npreauth >= (uint64_t)b->conf->max_unauthenticated)
        b->preauth_head->expire(b->preauth_head, DROP_UNAUTHENTICATED);
    p->since_ms = net_now_ms();
    p->next = NULL;
    p->prev = b->preauth_tail;
    if (b->preauth_tail)
        b->preauth_tail->next = p;
    else
        b->preauth_head = p;
    b->preauth_tail = p;
    p->listed = true;
    b->npreauth++;
}

bool broker_admit(struct broker *b)
{
    uint64_t authed = broker_conn_count(b) - b->npreauth;

    /* The caller's own connection is already counted open (and still listed
     * as unauthenticated when it just authenticated). */
    if (authed < (uint64_t)b->conf->max_clients)
        return true;
    b->stats.drops[DROP_MAX_CLIENTS]++;
    return false;
}

void broker_auth_failed(struct broker *b, enum broker_endpoint ep, const char *peer)
{
    uint64_t n;

    b->stats.drops[DROP_AUTH]++;
    n = log_rate_tick(&b->auth_rate, net_now_ms(), 1000);
    if (n)
        log_warn("auth_failed", "endpoint=%s count=%llu peer=%s", endpoint_names[ep],
                 (unsigned long long)n, peer);
}

void broker_conn_closed(struct broker *b, enum broker_endpoint ep)
{
    if (b->stats.conns_current[ep] > 0)
        b->stats.conns_current[ep]--;
    if (b->stopping && broker_conn_count(b) == 0)
        event_base_loopexit(b->base, NULL);
}

bool broker_secret_eq(const char *want, const char *secret, size_t len)
{
    size_t wlen;

    if (!want || !secret)
        return false;
    wlen = strlen(want);
    /* Constant time over the expected secret's length; the length itself is
     * not secret enough to matter. */
    if (len != wlen)
        return false;
    return CRYPTO_memcmp(want, secret, wlen) == 0;
}

bool broker_auth_ok(const struct broker *b, const char *secret, size_t len)
{
    if (!b->conf->requirepass)
        return true;
    return broker_secret_eq(b->conf->requirepass, secret, len);
}

/* Closes the unauthenticated connections whose auth-timeout has passed (oldest first). */
static void expire_preauth(struct broker *b, uint64_t now)
{
    uint64_t limit = (uint64_t)b->conf->auth_timeout;

    while (b->preauth_head && now - b->preauth_head->since_ms >= limit)
        b->preauth_head->expire(b->preauth_head, DROP_AUTH_TIMEOUT);
}

static void broker_on_tick(evutil_socket_t fd, short what, void *arg)
{
    struct broker *b = arg;
    uint64_t now = net_now_ms();

    (void)fd;
    (void)what;
    expire_preauth(b, now);
    linksrv_sweep(b, now);
    resp_server_sweep(b, now);
    http_api_sweep(b, now);
    seq_map_expire(b->seqs, now);
    /* What peers made us allocate in bulk: after a spike, give it back. */
    if (mem_trim_after_peak(trie_bytes(b->link_subs.trie) + trie_bytes(b->resp_subs.trie) +
                                seq_map_bytes(b->seqs),
                            &b->trim_peak, BROKER_TRIM_DROP))
        log_info("memory_trimmed", "rss=%llu", (unsigned long long)net_rss_bytes());
}

static int start_endpoints(struct broker *b, const char **err)
{
    if (linksrv_start(b, err) < 0)
        return -1;
    if (resp_server_start(b, err) < 0)
        return -1;
    if (http_api_start(b, err) < 0)
        return -1;
    return 0;
}

struct broker *broker_new(struct event_base *base, const struct broker_conf *conf, const char **err)
{
    struct broker *b = mem_calloc(1, sizeof(*b));
    struct timeval one_s = {1, 0};
    int n;

    b->base = base;
    b->conf = conf;
    b->limits.max_len = (size_t)conf->max_topic_length;
    b->limits.max_tokens = (size_t)conf->max_topic_tokens;
    b->link_subs.trie = trie_new();
    b->resp_subs.trie = trie_new();
    b->seqs = seq_map_new((size_t)conf->max_topics, (uint64_t)conf->topic_ttl);
    b->started_ms = net_now_ms();
    {
        struct timeval tv;

        gettimeofday(&tv, NULL);
        b->epoch = (uint64_t)tv.tv_sec * 1000u + (uint64_t)tv.tv_usec / 1000u;
    }
    n = net_cidr_parse(conf->edge_allow, b->edge_allow, NET_CIDR_MAX, err);
    if (n < 0)
        goto fail;
    b->n_edge_allow = (size_t)n;
    b->close_ev = event_new(base, -1, 0, broker_on_close_tick, b);
    b->shutdown_ev = evtimer_new(base, broker_on_shutdown_timeout, b);
    b->tick_ev = event_new(base, -1, EV_PERSIST, broker_on_tick, b);
    if (!b->close_ev || !b->shutdown_ev || !b->tick_ev || event_add(b->tick_ev, &one_s) < 0) {
        *err = "event_new failed";
        goto fail;
    }
    if (start_endpoints(b, err) < 0)
        goto fail;
    return b;
fail:
    log_error("start_failed", "reason=\"%s\"", *err);
    broker_free(b);
    return NULL;
}

void broker_shutdown(struct broker *b)
{
    struct timeval tv;

    if (b->stopping)
        return;
    b->stopping = true;
    log_info("shutdown", "open=%llu", (unsigned long long)broker_conn_count(b));
    http_api_shutdown(b);
    linksrv_shutdown(b);
    resp_server_shutdown(b);
    if (broker_conn_count(b) == 0) {
        event_base_loopexit(b->base, NULL);
        return;
    }
    tv.tv_sec = (time_t)(b->conf->shutdown_timeout / 1000);
    tv.tv_usec = (suseconds_t)(b->conf->shutdown_timeout % 1000) * 1000;
    evtimer_add(b->shutdown_ev, &tv);
}

void broker_free(struct broker *b)
{
    if (!b)
        return;
    http_api_free(b);
    linksrv_free(b);
    resp_server_free(b);
    free_close_list(b);
    if (b->close_ev)
        event_free(b->close_ev);
    if (b->shutdown_ev)
        event_free(b->shutdown_ev);
    if (b->tick_ev)
        event_free(b->tick_ev);
    trie_free(b->link_subs.trie);
    trie_free(b->resp_subs.trie);
    seq_map_free(b->seqs);
    router_cleanup();
    mem_free(b);
}

static void metrics_by_endpoint(struct broker *b, struct evbuffer *out)
{
    char labels[64];

    metrics_family(out, "herald_connections", "gauge", "Open connections by endpoint.");
    for (int ep = 0; ep < EP_HTTP; ep++) {
        snprintf(labels, sizeof(labels), "endpoint=\"%s\"", endpoint_names[ep]);
        metrics_sample(out, "herald_connections", labels, b->stats.conns_current[ep]);
    }
    metrics_family(out, "herald_connections_total", "counter",
                   "Connections accepted by endpoint (http: requests).");
    for (int ep = 0; ep < EP_COUNT; ep++) {
        snprintf(labels, sizeof(labels), "endpoint=\"%s\"", endpoint_names[ep]);
        metrics_sample(out, "herald_connections_total", labels,
                       ep == EP_HTTP ? b->stats.http_requests : b->stats.conns_total[ep]);
    }
    metrics_family(out, "herald_drops_total", "counter",
                   "Connections or requests refused or cut off, by reason.");
    for (int d = 0; d < DROP_COUNT; d++) {
        snprintf(labels, sizeof(labels), "reason=\"%s\"", drop_names[d]);
        metrics_sample(out, "herald_drops_total", labels, b->stats.drops[d]);
    }
    metrics_family(out, "herald_accept_errors_total", "counter",
                   "Failed accept() calls by endpoint (EMFILE and the like).");
    for (int ep = 0; ep < EP_COUNT; ep++) {
        snprintf(labels, sizeof(labels), "endpoint=\"%s\"", endpoint_names[ep]);
        metrics_sample(out, "herald_accept_errors_total", labels, b->stats.accept_errors[ep]);
    }
    metrics_gauge(out, "herald_unauthenticated_connections",
                  "Link and RESP connections not authenticated yet.", b->npreauth);
}

void broker_metrics(struct broker *b, struct evbuffer *out)
{
    metrics_by_endpoint(b, out);
    metrics_gauge(out, "herald_subscriptions",
                  "Subscriptions (pattern, subscriber) held by links and RESP clients.",
                  trie_subscription_count(b->link_subs.trie) +
                      trie_subscription_count(b->resp_subs.trie));
    metrics_gauge(out, "herald_patterns", "Distinct subscribed patterns.",
                  trie_pattern_count(b->link_subs.trie) + trie_pattern_count(b->resp_subs.trie));
    metrics_gauge(out, "herald_topics",
                  "Topics whose sequence is remembered (published within topic-ttl).",
                  seq_map_count(b->seqs));
    metrics_counter(out, "herald_topics_evicted_total",
                    "Topics forgotten: idle past topic-ttl, or least recent at max-topics.",
                    seq_map_forgotten(b->seqs));
    metrics_gauge(out, "herald_trie_bytes", "Heap bytes of the subscription tries.",
                  trie_bytes(b->link_subs.trie) + trie_bytes(b->resp_subs.trie));
    metrics_counter(out, "herald_events_published_total", "Events accepted from publishers.",
                    b->stats.published);
    metrics_counter(out, "herald_events_delivered_total", "Event copies queued to subscribers.",
                    b->stats.delivered);
    metrics_counter(out, "herald_slow_consumers_total",
                    "Subscribers cut off for exceeding client-output-limit.",
                    b->stats.drops[DROP_SLOW_CONSUMER]);
    metrics_counter(out, "herald_bytes_in_total", "Bytes read from link and RESP clients.",
                    b->stats.bytes_in);
    metrics_counter(out, "herald_bytes_out_total", "Bytes queued to link and RESP clients.",
                    b->stats.bytes_out);
    metrics_gauge(out, "herald_frames_live", "Encoded event frames still referenced.",
                  frame_live());
    metrics_gauge(out, "herald_rss_bytes", "Resident set size of the broker.", net_rss_bytes());
    metrics_gauge(out, "herald_uptime_seconds", "Seconds since start.",
                  (net_now_ms() - b->started_ms) / 1000u);
}

/*
 * broker.c - struct broker: start/stop order, the tick.
 *
 * The broker is one libevent loop. It owns the shared state (core.c: two
 * tries, links and RESP handles, whose delivery semantics differ, see
 * router.c; the per-topic sequence map; the close list and the admission
 * rules) and the endpoint servers. Start order: the shared state, then
 * link, RESP, HTTP (each may be disabled with port 0); a failing endpoint
 * undoes the ones already started. Stop order on SIGTERM: every endpoint
 * stops accepting and flushes its connections; the loop exits when the
 * last one is gone or shutdown-timeout passes.
 *
 * Dependencies run one way: main.c -> broker.c -> the endpoints
 * (linksrv.c, resp_conn.c and resp_cmd.c, http_api.c) -> router.c and
 * broker_metrics.c -> core.c, each file using only files below it. No
 * endpoint knows this file: each start function hands its server back
 * here, and the tick, the stop and the free reach them through it.
 *
 * The tick (1 s) is the one timer for every deadline (one
 * sweep instead of a timer per connection): auth-timeout, each endpoint's
 * request-timeout sweep, forgetting topics past topic-ttl, and giving the
 * kernel back the memory a spike of subscriptions or topics left free.
 */
#include "broker/broker.h"

#include <sys/time.h>
#include <event2/event.h>

#include "broker/broker_conf.h"
#include "broker/core.h"
#include "broker/http_api.h"
#include "broker/linksrv.h"
#include "broker/resp_conn.h"
#include "broker/router.h"
#include "broker/history.h"
#include "broker/seq_map.h"
#include "common/log.h"
#include "common/mem.h"
#include "common/net.h"
#include "common/trie.h"

/* Tries and topics this far below their peak: the allocator's free pages go back. */
#define BROKER_TRIM_DROP (8u << 20)

struct broker {
    struct core *core;
    struct linksrv *link; /* NULL: link-port 0 */
    struct resp_server *resp;
    struct http_api *http;
    struct event *shutdown_ev;
    struct event *tick_ev; /* 1 s: timeouts, topic expiry */
    size_t trim_peak;      /* tries + topics high-water since the last malloc_trim */
};

static void broker_on_shutdown_timeout(evutil_socket_t fd, short what, void *arg)
{
    struct broker *b = arg;

    (void)fd;
    (void)what;
    log_warn("shutdown_timeout", "open=%llu", (unsigned long long)core_conn_count(b->core));
    event_base_loopexit(b->core->base, NULL);
}

static void broker_on_tick(evutil_socket_t fd, short what, void *arg)
{
    struct broker *b = arg;
    struct core *core = b->core;
    uint64_t now = net_now_ms();

    (void)fd;
    (void)what;
    core_preauth_expire(core, now);
    linksrv_sweep(b->link, now);
    resp_conn_sweep(b->resp, now);
    http_api_sweep(b->http, now);
    seq_map_expire(core->seqs, now);
    history_expire(core->history, now);
    /* What peers made us allocate in bulk: after a spike, give it back. */
    if (mem_trim_after_peak(trie_bytes(core->link_subs.trie) + trie_bytes(core->resp_subs.trie) +
                                seq_map_bytes(core->seqs),
                            &b->trim_peak, BROKER_TRIM_DROP))
        log_info("memory_trimmed", "rss=%llu", (unsigned long long)net_rss_bytes());
}

static int start_endpoints(struct broker *b, const char **err)
{
    const struct broker_conf *conf = b->core->conf;

    if (conf->link_port != 0 && !(b->link = linksrv_start(b->core, err)))
        return -1;
    if (conf->resp_port != 0 && !(b->resp = resp_conn_start(b->core, err)))
        return -1;
    if (conf->http_port != 0 && !(b->http = http_api_start(b->core, err)))
        return -1;
    return 0;
}

struct broker *broker_new(struct event_base *base, const struct broker_conf *conf, const char **err)
{
    struct broker *b = mem_calloc(1, sizeof(*b));
    struct timeval one_s = {1, 0};

    b->core = core_new(base, conf, err);
    if (!b->core)
        goto fail;
    b->shutdown_ev = evtimer_new(base, broker_on_shutdown_timeout, b);
    b->tick_ev = event_new(base, -1, EV_PERSIST, broker_on_tick, b);
    if (!b->shutdown_ev || !b->tick_ev || event_add(b->tick_ev, &one_s) < 0) {
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
    struct core *core = b->core;
    struct timeval tv;

    if (core->stopping)
        return;
    core->stopping = true;
    log_info("shutdown", "open=%llu", (unsigned long long)core_conn_count(core));
    http_api_shutdown(b->http);
    linksrv_shutdown(b->link);
    resp_conn_shutdown(b->resp);
    if (core_conn_count(core) == 0) {
        event_base_loopexit(core->base, NULL);
        return;
    }
    tv.tv_sec = (time_t)(core->conf->shutdown_timeout / 1000);
    tv.tv_usec = (suseconds_t)(core->conf->shutdown_timeout % 1000) * 1000;
    evtimer_add(b->shutdown_ev, &tv);
}

void broker_reload(struct broker *b)
{
    (void)linksrv_reload_tls(b->link); /* logs its own outcome */
}

void broker_free(struct broker *b)
{
    if (!b)
        return;
    http_api_free(b->http);
    linksrv_free(b->link);
    resp_conn_free(b->resp);
    if (b->shutdown_ev)
        event_free(b->shutdown_ev);
    if (b->tick_ev)
        event_free(b->tick_ev);
    core_free(b->core);
    router_cleanup();
    mem_free(b);
}

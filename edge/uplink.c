/*
 * uplink.c - a worker's link to the broker.
 *
 * Owns one bufferevent to the broker's link endpoint (there is one uplink
 * per worker, so the ~1 KB a bufferevent costs does not matter here), a
 * streaming link decoder, a backoff timer and a keepalive tick
 * (broker-ping-interval, 10 s by default).
 *
 * States: DOWN -> CONNECTING (TCP connect) -> HELLO (HELLO sent) -> UP
 * (WELCOME received: the worker re-sends its interest, MSGs flow). Any
 * EOF, error, ERR frame, malformed frame, connect timeout or three ticks
 * with a PING out and no frame at all received drops back to DOWN (any
 * frame proves the broker alive: a PONG waits behind whatever fan-out the
 * broker queued before it, which may take longer than three ticks to read
 * when this worker is far behind) and arms the backoff timer: the delay
 * starts at reconnect-min, doubles up to reconnect-max, and each wait is
 * jittered by +-20% so a broker restart is not met by every edge worker at
 * the same instant. The delay goes back to reconnect-min only once a link
 * has stayed up for a keepalive interval: a broker that accepts the HELLO
 * and then drops the link (or refuses something at once) is retried at the
 * doubling delay, not hammered. Clients are never touched by a link drop.
 * SUB/UNSUB while not UP are dropped: the resend after WELCOME states the
 * whole interest.
 *
 * ERR. An ERR that names a pattern (its optional topic element) with code
 * "too_many_subscriptions" or "bad_topic" is the broker refusing that one
 * SUB: on_refused hands it to the worker, which drops the pattern locally
 * and tells its clients; the link stays. Any other ERR (protocol, auth,
 * oversize) means the broker is closing the link. WELCOME's
 * max_subscriptions is the broker's per-link pattern limit, which the
 * worker applies before it would SUB a pattern the broker must refuse.
 *
 * Reads hand every MSG of one read to the worker, then call on_batch_end
 * once, which is where the worker flushes its coalesced client output.
 * While it flushes, the worker calls uplink_poll() every few hundred
 * clients: a non-blocking read of the same socket into the same input
 * buffer, so events that arrive mid-flush join the pass in progress.
 * The decoder limit is 16 MiB: the broker is trusted but bounded.
 *
 * Logs: uplink_up (info) on every WELCOME; uplink_down (warn) once per
 * drop from UP (or the first failure after start), later failed attempts
 * at debug only, so a broker outage is two lines, not one per retry.
 *
 * TLS (broker-tls): the bufferevent is a bufferevent_openssl client made
 * before the connect, its SSL from the process's one client context
 * (edge/main.c: one trust store in memory, not one per worker), told the
 * name to verify (tls_client_set_name: broker-tls-server-name, else the
 * host of `broker`). CONNECTING then covers TCP and the handshake, both
 * bounded by the connect timeout (read and write: a broker that accepts
 * and never answers the ClientHello is dropped too); BEV_EVENT_CONNECTED
 * means verified. A failed handshake is one uplink_down whose reason says
 * why (the verification error and the expected name, or OpenSSL's reason),
 * and the backoff retries it like any failure. uplink_poll does not read a
 * TLS link: the record layer belongs to the bufferevent, and a read beside
 * it could leave a decrypted record in OpenSSL where no read event would
 * find it; events that arrive during a long flush then wait for the next
 * loop pass, as they did before uplink_poll existed.
 *
 * Rejected: resolving names with evdns (one more base per worker for a
 * lookup done only at connect; getaddrinfo runs once per attempt, and
 * attempts are rare and backoff-bounded), and a separate connect timer
 * (the bufferevent's write timeout covers a hanging connect).
 */
#include "edge/uplink.h"

#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <msgpack.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "common/link_codec.h"
#include "common/log.h"
#include "common/mem.h"
#include "common/net.h"
#include "common/tls.h"

#define UPLINK_MAX_FRAME  (16u << 20)
#define UPLINK_TICK_MS    10000 /* when the config leaves ping_interval_ms 0 */
#define UPLINK_MAX_MISSED 3
#define UPLINK_CONNECT_S  10
#define UPLINK_READ_CHUNK (256u << 10)
#define UPLINK_HOST_MAX   256

struct uplink {
    struct event_base *base;
    struct bufferevent *bev;
    struct link_decoder *dec;
    struct event *retry_ev;
    struct event *tick_ev;
    struct uplink_handlers h;
    msgpack_sbuffer sb;
    const char *broker;
    const char *secret;
    char *node;
    char host[UPLINK_HOST_MAX];
    int port;
    SSL_CTX *tls;                      /* own reference; NULL: plain TCP */
    char server_name[UPLINK_HOST_MAX]; /* what the broker's certificate must name */
    int64_t min_ms, max_ms, delay_ms;
    enum uplink_state state;
    bool quiet; /* a drop was logged; further failures go to debug */
    unsigned missed;
    int64_t ping_ms; /* keepalive tick: also how long a link must stay up to reset the backoff */
    uint64_t up_since_ms;  /* last WELCOME */
    uint64_t max_patterns; /* the broker's per-link limit (WELCOME), 0: unknown */
    uint64_t token;
    uint64_t reconnects;
    unsigned int seed;
};

const char *uplink_state_name(enum uplink_state s)
{
    switch (s) {
    case UPLINK_CONNECTING:
        return "connecting";
    case UPLINK_HELLO:
        return "hello";
    case UPLINK_UP:
        return "up";
    default:
        return "down";
    }
}

static void uplink_connect(struct uplink *u);

static void send_sb(struct uplink *u)
{
    if (u->bev && bufferevent_write(u->bev, u->sb.data, u->sb.size) < 0)
        log_error("uplink_write_failed", "broker=%s", u->broker);
    msgpack_sbuffer_clear(&u->sb);
}

static void close_bev(struct uplink *u)
{
    if (u->bev)
        bufferevent_free(u->bev);
    u->bev = NULL;
    link_decoder_free(u->dec);
    u->dec = NULL;
}

/* The delay for the next attempt: the current one +-20%, then double it. */
static int64_t next_delay(struct uplink *u)
{
    double r = (double)rand_r(&u->seed) / (double)RAND_MAX;
    int64_t d = (int64_t)((double)u->delay_ms * (0.8 + 0.4 * r));

    u->delay_ms = u->delay_ms * 2 > u->max_ms ? u->max_ms : u->delay_ms * 2;
    return d < 1 ? 1 : d;
}

/* The link failed or dropped: close it and arm the backoff timer. */
static void link_down(struct uplink *u, const char *why)
{
    int64_t d;

    if (u->state == UPLINK_UP && net_now_ms() - u->up_since_ms >= (uint64_t)u->ping_ms)
        u->delay_ms = u->min_ms; /* it was a working link: reconnect at once */
    d = next_delay(u);
    struct timeval tv = {(time_t)(d / 1000), (suseconds_t)((d % 1000) * 1000)};

    if (u->state == UPLINK_UP || !u->quiet)
        log_warn("uplink_down", "broker=%s reason=\"%s\" retry_ms=%lld", u->broker, why,
                 (long long)d);
    else
        log_debug("uplink_retry_failed", "broker=%s reason=\"%s\" retry_ms=%lld", u->broker, why,
                  (long long)d);
    u->quiet = true;
    close_bev(u);
    u->state = UPLINK_DOWN;
    u->missed = 0;
    evtimer_add(u->retry_ev, &tv);
}

static void on_welcome(struct uplink *u, const struct link_frame *f)
{
    u->state = UPLINK_UP;
    u->up_since_ms = net_now_ms();
    u->max_patterns = f->has_max_subscriptions ? f->max_subscriptions : 0;
    u->quiet = false;
    u->missed = 0;
    log_info("uplink_up", "broker=%s node=%s", u->broker, u->node);
    if (u->h.on_up)
        u->h.on_up(u->h.arg);
}

static bool code_is(const struct link_frame *f, const char *code)
{
    return f->code.len == strlen(code) && memcmp(f->code.ptr, code, f->code.len) == 0;
}

/* True when an ERR refuses one pattern rather than the link. */
static bool refusal(const struct link_frame *f)
{
    return f->has_topic && f->topic.len > 0 &&
           (code_is(f, "too_many_subscriptions") || code_is(f, "bad_topic"));
}

static void on_refused(struct uplink *u, const struct link_frame *f)
{
    char code[32];
    size_t n = f->code.len < sizeof(code) - 1 ? f->code.len : sizeof(code) - 1;

    memcpy(code, f->code.ptr, n);
    code[n] = '\0';
    log_info("uplink_refused", "broker=%s code=%s pattern=%.*s", u->broker, code,
             (int)(f->topic.len < LOG_TOPIC_MAX ? f->topic.len : LOG_TOPIC_MAX), f->topic.ptr);
    if (u->h.on_refused)
        u->h.on_refused(u->h.arg, code, f->topic.ptr, f->topic.len);
}

/* Returns 0, or -1 when the link was closed. */
static int handle_frame(struct uplink *u, const struct link_frame *f)
{
    u->missed = 0;
    switch (f->type) {
    case LINK_MSG:
        if (u->state == UPLINK_UP)
            u->h.on_msg(u->h.arg, f);
        return 0;
    case LINK_WELCOME:
        if (u->state == UPLINK_HELLO)
            on_welcome(u, f);
        return 0;
    case LINK_PING:
        link_encode_pong(&u->sb, f->token);
        send_sb(u);
        return 0;
    case LINK_PONG:
        return 0;
    case LINK_ERR:
        if (refusal(f)) {
            on_refused(u, f);
            return 0;
        }
        log_warn("uplink_error", "broker=%s code=%.*s text=\"%.*s\"", u->broker, (int)f->code.len,
                 f->code.ptr, (int)f->text.len, f->text.ptr);
        link_down(u, "ERR from broker");
        return -1;
    default:
        log_debug("uplink_ignored", "type=%s", link_type_name(f->type));
        return 0;
    }
}

/* Feeds up to UPLINK_READ_CHUNK buffered bytes to the decoder. Returns 0 or -1 (closed). */
static int feed(struct uplink *u, struct evbuffer *in)
{
    struct evbuffer_iovec v[16];
    int n = evbuffer_peek(in, UPLINK_READ_CHUNK, NULL, v, 16);
    size_t fed = 0;
    const char *err = "";

    for (int i = 0; i < n && i < 16 && fed < UPLINK_READ_CHUNK; i++) {
        if (link_decoder_feed(u->dec, v[i].iov_base, v[i].iov_len, &err) < 0) {
            link_down(u, err);
            return -1;
        }
        fed += v[i].iov_len;
    }
    evbuffer_drain(in, fed);
    return 0;
}

/* Decodes and handles every complete frame. Returns 0 or -1 (closed). */
static int decode_all(struct uplink *u)
{
    struct link_frame f;
    const char *err = "";
    int r;

    while ((r = link_decoder_next(u->dec, &f, &err)) == 1) {
        if (handle_frame(u, &f) < 0)
            return -1;
    }
    if (r < 0) {
        link_down(u, err);
        return -1;
    }
    return 0;
}

static void uplink_on_read(struct bufferevent *bev, void *arg)
{
    struct uplink *u = arg;
    struct evbuffer *in = bufferevent_get_input(bev);

    while (evbuffer_get_length(in) > 0) {
        if (feed(u, in) < 0 || decode_all(u) < 0)
            break;
    }
    if (u->h.on_batch_end)
        u->h.on_batch_end(u->h.arg);
}

size_t uplink_poll(struct uplink *u)
{
    struct evbuffer *in;
    int n;

    if (!u || !u->bev || u->state != UPLINK_UP || u->tls)
        return 0;
    in = bufferevent_get_input(u->bev);
    /* A bufferevent keeps its input's end frozen outside its own reads;
     * thaw it for this one, as bufferevent_sock.c does around its read. */
    evbuffer_unfreeze(in, 0);
    n = evbuffer_read(in, bufferevent_getfd(u->bev), UPLINK_READ_CHUNK);
    evbuffer_freeze(in, 0);
    if (n <= 0)
        return 0; /* EAGAIN; EOF and errors come back through the read event */
    while (evbuffer_get_length(in) > 0) {
        if (feed(u, in) < 0 || decode_all(u) < 0)
            break; /* link_down freed the bufferevent */
    }
    return (size_t)n;
}

/*
 * Why a TLS connect failed, for uplink_down: the certificate's verification
 * error with the name expected, else OpenSSL's first reason.
 */
static void tls_failure(struct uplink *u, short what, char *buf, size_t len)
{
    SSL *ssl = bufferevent_openssl_get_ssl(u->bev);
    long v = ssl ? SSL_get_verify_result(ssl) : X509_V_OK;
    unsigned long e, first = 0;
    const char *why;

    while ((e = bufferevent_get_openssl_error(u->bev)) != 0) {
        if (!first)
            first = e;
    }
    why = first ? ERR_reason_error_string(first) : NULL;
    if (v != X509_V_OK)
        snprintf(buf, len, "TLS: broker certificate not verified: %s (expected name %s)",
                 X509_verify_cert_error_string(v), u->server_name);
    else if (what & BEV_EVENT_TIMEOUT)
        snprintf(buf, len, "TLS: connect or handshake timeout");
    else if (why)
        snprintf(buf, len, "TLS: handshake failed: %s", why);
    else
        snprintf(buf, len, "TLS: connection refused or closed before the handshake finished");
}

static void uplink_on_event(struct bufferevent *bev, short what, void *arg)
{
    struct uplink *u = arg;
    char why[512];

    (void)bev;
    if (u->tls && u->state == UPLINK_CONNECTING && !(what & BEV_EVENT_CONNECTED)) {
        tls_failure(u, what, why, sizeof(why));
        link_down(u, why);
        return;
    }
    if (what & BEV_EVENT_CONNECTED) {
        u->state = UPLINK_HELLO;
        u->dec = link_decoder_new(UPLINK_MAX_FRAME);
        bufferevent_set_timeouts(u->bev, NULL, NULL);
        link_encode_hello(&u->sb, "edge", u->node, u->secret);
        send_sb(u);
        return;
    }
    if (what & BEV_EVENT_EOF)
        link_down(u, "connection closed");
    else if (what & BEV_EVENT_TIMEOUT)
        link_down(u, "timeout");
    else
        link_down(u, "connection error");
}

/* A client bufferevent, not connected yet: plain, or TLS verifying u->server_name. */
static struct bufferevent *link_bev_new(struct uplink *u)
{
    struct bufferevent *bev;
    SSL *ssl;

    if (!u->tls)
        return bufferevent_socket_new(u->base, -1, BEV_OPT_CLOSE_ON_FREE);
    ssl = SSL_new(u->tls);
    if (!ssl || tls_client_set_name(ssl, u->server_name) < 0) {
        SSL_free(ssl);
        ERR_clear_error();
        return NULL;
    }
    /* Takes ssl (freed with the bufferevent, or here on failure). */
    bev = bufferevent_openssl_socket_new(u->base, -1, ssl, BUFFEREVENT_SSL_CONNECTING,
                                         BEV_OPT_CLOSE_ON_FREE);
    /* A broker that closes TCP without close_notify is a dropped link like
     * any other; the link's framing tells a cut frame. */
    if (bev)
        bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
    return bev;
}

static void uplink_connect(struct uplink *u)
{
    struct timeval connect_tv = {UPLINK_CONNECT_S, 0};
    struct addrinfo *res = NULL;
    int rc;

    if (net_resolve(u->host, u->port, AF_UNSPEC, &res) != 0) {
        link_down(u, "cannot resolve broker address");
        return;
    }
    u->bev = link_bev_new(u);
    if (!u->bev) {
        freeaddrinfo(res);
        link_down(u, "cannot create the link's bufferevent");
        return;
    }
    bufferevent_setcb(u->bev, uplink_on_read, NULL, uplink_on_event, u);
    bufferevent_set_max_single_read(u->bev, UPLINK_READ_CHUNK);
    /* With TLS the connect is followed by a handshake that waits to read. */
    bufferevent_set_timeouts(u->bev, u->tls ? &connect_tv : NULL, &connect_tv);
    u->state = UPLINK_CONNECTING;
    rc = bufferevent_socket_connect(u->bev, res->ai_addr, (int)res->ai_addrlen);
    freeaddrinfo(res);
    /* On failure libevent may already have run the event callback (which
     * called link_down and cleared u->bev); only handle it if it did not. */
    if (rc < 0 && u->bev && u->state == UPLINK_CONNECTING) {
        link_down(u, "connect failed");
        return;
    }
    if (u->bev && bufferevent_enable(u->bev, EV_READ) < 0)
        link_down(u, "bufferevent_enable failed");
}

static void uplink_on_retry(evutil_socket_t fd, short what, void *arg)
{
    struct uplink *u = arg;

    (void)fd;
    (void)what;
    u->reconnects++;
    uplink_connect(u);
}

/* Keepalive: a PING per tick when up; three ticks with nothing received (or no WELCOME) -> dead. */
static void uplink_on_tick(evutil_socket_t fd, short what, void *arg)
{
    struct uplink *u = arg;

    (void)fd;
    (void)what;
    if (u->state != UPLINK_UP && u->state != UPLINK_HELLO)
        return;
    if (u->missed >= UPLINK_MAX_MISSED) {
        link_down(u, u->state == UPLINK_UP ? "ping timeout" : "no WELCOME");
        return;
    }
    u->missed++;
    if (u->state == UPLINK_UP) {
        link_encode_ping(&u->sb, ++u->token);
        send_sb(u);
    }
}

struct uplink *uplink_new(struct event_base *base, const struct uplink_config *cfg,
                          const struct uplink_handlers *h, const char **err)
{
    int64_t tick_ms = cfg->ping_interval_ms > 0 ? cfg->ping_interval_ms : UPLINK_TICK_MS;
    struct timeval tick = {(time_t)(tick_ms / 1000), (suseconds_t)(tick_ms % 1000) * 1000};
    struct uplink *u = mem_calloc(1, sizeof(*u));

    if (net_split_hostport(cfg->broker, u->host, sizeof(u->host), &u->port) < 0) {
        *err = "broker must be host:port";
        mem_free(u);
        return NULL;
    }
    u->base = base;
    u->h = *h;
    u->broker = cfg->broker;
    u->secret = cfg->secret;
    if (cfg->tls) {
        SSL_CTX_up_ref(cfg->tls);
        u->tls = cfg->tls;
        snprintf(u->server_name, sizeof(u->server_name), "%s",
                 cfg->tls_server_name ? cfg->tls_server_name : u->host);
    }
    u->node = mem_strdup(cfg->node);
    u->ping_ms = tick_ms;
    u->min_ms = cfg->reconnect_min_ms > 0 ? cfg->reconnect_min_ms : 1;
    u->max_ms = cfg->reconnect_max_ms > u->min_ms ? cfg->reconnect_max_ms : u->min_ms;
    u->delay_ms = u->min_ms;
    u->seed = (unsigned int)(net_now_us() ^ (uintptr_t)u);
    msgpack_sbuffer_init(&u->sb);
    u->retry_ev = evtimer_new(base, uplink_on_retry, u);
    u->tick_ev = event_new(base, -1, EV_PERSIST, uplink_on_tick, u);
    if (!u->retry_ev || !u->tick_ev || event_add(u->tick_ev, &tick) < 0) {
        *err = "event_new failed";
        uplink_free(u);
        return NULL;
    }
    uplink_connect(u);
    return u;
}

void uplink_free(struct uplink *u)
{
    if (!u)
        return;
    close_bev(u);
    if (u->retry_ev)
        event_free(u->retry_ev);
    if (u->tick_ev)
        event_free(u->tick_ev);
    msgpack_sbuffer_destroy(&u->sb);
    SSL_CTX_free(u->tls);
    mem_free(u->node);
    mem_free(u);
}

void uplink_sub(struct uplink *u, const char *pattern, size_t len)
{
    if (u->state != UPLINK_UP)
        return;
    link_encode_sub(&u->sb, pattern, len);
    send_sb(u);
}

void uplink_unsub(struct uplink *u, const char *pattern, size_t len)
{
    if (u->state != UPLINK_UP)
        return;
    link_encode_unsub(&u->sb, pattern, len);
    send_sb(u);
}

enum uplink_state uplink_state(const struct uplink *u)
{
    return u->state;
}

uint64_t uplink_max_patterns(const struct uplink *u)
{
    return u->max_patterns;
}

uint64_t uplink_reconnects(const struct uplink *u)
{
    return u->reconnects;
}

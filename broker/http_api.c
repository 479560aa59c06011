/*
 * http_api.c - the HTTP endpoint: publish by POST, /healthz, /metrics.
 *
 * Routes: POST /v1/publish/<topic> (the body is the payload; 200
 * {"receivers":N,"seq":S}), GET|HEAD /healthz, GET|HEAD /metrics
 * (Prometheus text). Errors are {"error":"..."} with 400, 401, 404, 405,
 * 413, 414, 431 or 503. HTTP/1.1 keep-alive and pipelining work; each
 * request is answered before the next one is parsed.
 *
 * Owns the HTTP listener and every struct http_conn: one bufferevent per
 * connection (HTTP clients are publishers and probes: few, and capped by
 * http-max-connections; beyond it a connection gets a 503 and is closed)
 * and one incremental request parser (http_request.c).
 *
 * Hostile clients (docs/architecture.md §4.7; each with a test):
 *   - the head is judged before the body is read: a publish without the
 *     right bearer token gets its 401, and a Content-Length over
 *     max-payload its 413, as soon as the blank line arrives, and the
 *     connection is closed without reading the body;
 *   - a request must be complete within request-timeout from its first
 *     byte (a byte a second does not extend it), and a keep-alive
 *     connection idle for request-timeout is closed: both by
 *     http_api_sweep from the broker's 1 s tick;
 *   - two Content-Length headers, or one with Transfer-Encoding: 400;
 *   - a 401 closes the connection (a password guess costs a connection),
 *     and failures are logged at most once a second (core_auth_failed);
 *   - a client that pipelines requests without reading the answers stops
 *     being read once HTTP_OUT_HIGH bytes of answers wait, and is read
 *     again when they drain (request/reply backpressure, as RESP and links).
 * Every refusal closes the connection after its answer: once the answer is
 * written the write side is shut and what the client still sends (the
 * body we refused to read) is read and dropped until its EOF, for at most
 * HTTP_CLOSE_WAIT_S and HTTP_LINGER_MAX bytes, so the client sees the
 * answer instead of a reset over unread data (a lingering close, as
 * nginx's lingering_close).
 *
 * Close now, free later: a connection is detached and its bufferevent
 * freed at once; the struct (and the parser whose buffers a publish being
 * routed points into) goes to the close list (core.c).
 *
 * Rejected: libevent's evhttp (see http_request.c), and requiring the
 * secret on /healthz and /metrics (probes and Prometheus scrape without
 * credentials; neither exposes payloads).
 */
#include "broker/http_api.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>

#include "broker/broker_metrics.h"
#include "broker/core.h"
#include "broker/http_request.h"
#include "broker/router.h"
#include "common/http_status.h"
#include "common/json_str.h"
#include "common/listener.h"
#include "common/mem.h"
#include "common/net.h"

#define HTTP_MAX_HEAD     (16 * 1024)
#define HTTP_READ_CHUNK   (64 * 1024)
#define HTTP_OUT_HIGH     (256 * 1024) /* unread answers that stop reading a connection */
#define HTTP_CLOSE_WAIT_S 5 /* how long a closing connection may take to read its answer */
#define HTTP_LINGER_MAX   (1024 * 1024) /* bytes read and dropped while closing */
#define HTTP_PUBLISH_PATH "/v1/publish/"

enum route {
    ROUTE_PUBLISH,
    ROUTE_HEALTHZ,
    ROUTE_METRICS,
    ROUTE_NONE,
};

struct http_conn {
    struct close_entry close; /* first: the close list frees through it */
    struct http_api *api;
    struct http_conn *prev, *next;
    struct bufferevent *bev;
    struct http_request req;
    uint64_t since_ms; /* the current request's first byte, or the last answer (idle) */
    size_t dropped;    /* bytes read and dropped while closing */
    enum route route;  /* the current request's, from its head (on_head) */
    size_t path_off;   /* its path in req.url, found once by on_head */
    size_t path_len;
    uint32_t id;
    bool idle;      /* no request in progress: since_ms is the keep-alive clock */
    bool closing;   /* answer queued with Connection: close: close once written */
    bool lingering; /* answer written, write side shut: dropping input until EOF */
    bool peer_eof;  /* the client shut its side: close once the answers are written */
    bool closed;
    bool paused; /* answers over HTTP_OUT_HIGH: not reading */
    char peer[64];
};

struct http_api {
    struct core *core;
    struct listener *listener;
    struct http_conn *conns;
    uint64_t nconns;
    uint32_t next_id;
    struct http_request_limits limits;
};

static void conn_close(struct http_conn *c, const char *reason);
static void process(struct http_conn *c);

/* ---- answers -------------------------------------------------------------- */

/*
 * Queues one whole answer: status line, headers (extra: more header lines,
 * each ending in CRLF, or ""), and body unless the request was HEAD.
 * keep false adds Connection: close and closes c once it is written.
 */
static void answer(struct http_conn *c, int code, const char *type, const char *extra,
                   struct evbuffer *body, bool keep)
{
    struct evbuffer *out = bufferevent_get_output(c->bev);
    size_t len = evbuffer_get_length(body);

    evbuffer_add_printf(out,
                        "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                        "Cache-Control: no-store\r\n%s%s\r\n",
                        code, http_status_text(code), type, len,
                        keep ? "" : "Connection: close\r\n", extra);
    if (http_request_method(&c->req) == HTTP_HEAD)
        evbuffer_drain(body, len);
    else
        evbuffer_add_buffer(out, body);
    if (!keep)
        c->closing = true;
}

/* Appends s as the inside of a JSON string (the reasons are ASCII, but be safe). */
static void json_escape(struct evbuffer *out, const char *s)
{
    size_t n = strlen(s), len = json_str_escape(NULL, 0, s, n);
    struct evbuffer_iovec v;

    if (len == 0 || evbuffer_reserve_space(out, (ev_ssize_t)len, &v, 1) < 1)
        return;
    v.iov_len = json_str_escape(v.iov_base, len, s, n);
    evbuffer_commit_space(out, &v, 1);
}

/* {"error":"<what>[: <detail>]"} with the given status; closes after it unless keep. */
static void answer_error(struct http_conn *c, int code, const char *what, const char *detail,
                         const char *extra, bool keep)
{
    struct evbuffer *body = evbuffer_new();

    if (!body) {
        conn_close(c, "oom");
        return;
    }
    evbuffer_add_printf(body, "{\"error\":\"");
    json_escape(body, what);
    if (detail) {
        evbuffer_add(body, ": ", 2);
        json_escape(body, detail);
    }
    evbuffer_add(body, "\"}\n", 3);
    answer(c, code, "application/json", extra, body, keep);
    evbuffer_free(body);
}

/* ---- routes --------------------------------------------------------------- */

/* Where the request's path lies in its URL: *off, *len (0, 0 when it has none). */
static void url_path(const struct http_request *r, size_t *off, size_t *len)
{
    struct http_parser_url u;

    *off = *len = 0;
    http_parser_url_init(&u);
    if (r->url_len == 0 || http_parser_parse_url(r->url, r->url_len, 0, &u) != 0 ||
        !(u.field_set & (1 << UF_PATH)))
        return;
    *off = u.field_data[UF_PATH].off;
    *len = u.field_data[UF_PATH].len;
}

static enum route route_of(const char *path, size_t len)
{
    size_t plen = strlen(HTTP_PUBLISH_PATH);

    if (len >= plen && memcmp(path, HTTP_PUBLISH_PATH, plen) == 0)
        return ROUTE_PUBLISH;
    if (len == 8 && memcmp(path, "/healthz", 8) == 0)
        return ROUTE_HEALTHZ;
    if (len == 8 && memcmp(path, "/metrics", 8) == 0)
        return ROUTE_METRICS;
    return ROUTE_NONE;
}

/* True when requirepass is unset or the request carries `Authorization: Bearer <secret>`. */
static bool authorized(struct core *core, const struct http_request *r)
{
    const char *v = r->auth;

    if (!core->conf->requirepass)
        return true;
    if (!r->has_auth || r->auth_overflow || strncasecmp(v, "Bearer ", 7) != 0)
        return false;
    v += 7;
    while (*v == ' ')
        v++;
    return core_auth_ok(core, v, strlen(v));
}

/* The head hook: everything that can be refused before the body is read. */
static int on_head(struct http_request *r, void *arg, const char **err)
{
    struct http_conn *c = arg;
    struct core *core = c->api->core;
    int method = http_request_method(r);

    url_path(r, &c->path_off, &c->path_len);
    c->route = route_of(r->url + c->path_off, c->path_len);
    switch (c->route) {
    case ROUTE_PUBLISH:
        if (method != HTTP_POST) {
            *err = "method not allowed";
            return 405;
        }
        if (!authorized(core, r)) {
            core_auth_failed(core, EP_HTTP, c->peer);
            *err = "unauthorized";
            return 401;
        }
        return 0;
    case ROUTE_HEALTHZ:
    case ROUTE_METRICS:
        if (method != HTTP_GET && method != HTTP_HEAD) {
            *err = "method not allowed";
            return 405;
        }
        return 0;
    default:
        *err = "not found";
        return 404;
    }
}

/* Answers a refused request (parser or head hook), then closes. */
static void answer_refusal(struct http_conn *c)
{
    struct core *core = c->api->core;
    int code = c->req.status;
    const char *extra = "";

    if (code == 401)
        extra = "WWW-Authenticate: Bearer\r\n";
    else if (code == 405)
        extra = c->route == ROUTE_PUBLISH ? "Allow: POST\r\n" : "Allow: GET, HEAD\r\n";
    else if (code == 413)
        core->stats.drops[DROP_OVERSIZE]++;
    else if (code != 404)
        core->stats.drops[DROP_PROTOCOL]++;
    core->stats.http_requests++;
    answer_error(c, code, c->req.err ? c->req.err : http_status_text(code), NULL, extra, false);
}

/* Decodes the topic, validates it and publishes the body. */
static void publish(struct http_conn *c, bool keep)
{
    struct core *core = c->api->core;
    struct http_request *r = &c->req;
    size_t plen = c->path_len, tlen = 0, skip = strlen(HTTP_PUBLISH_PATH);
    const char *path = r->url + c->path_off;
    char enc[TOPIC_MAX_LEN * 3 + 1];
    struct router_result res;
    const char *err = "empty topic";
    struct evbuffer *body;
    char *topic;

    if (plen - skip >= sizeof(enc)) {
        answer_error(c, 400, "invalid topic", "topic too long", "", keep);
        return;
    }
    memcpy(enc, path + skip, plen - skip);
    enc[plen - skip] = '\0';
    topic = evhttp_uridecode(enc, 0, &tlen);
    if (!topic || !topic_valid(topic, tlen, &core->limits, &err)) {
        answer_error(c, 400, "invalid topic", topic ? err : "bad percent-encoding", "", keep);
        free(topic);
        return;
    }
    router_publish(core, topic, tlen, r->body ? r->body : "", r->body_len, &res);
    free(topic); /* evhttp_uridecode allocates with libevent's allocator (malloc here) */
    body = evbuffer_new();
    if (!body) {
        conn_close(c, "oom");
        return;
    }
    evbuffer_add_printf(body, "{\"receivers\":%" PRIu64 ",\"seq\":%" PRIu64 "}\n", res.receivers,
                        res.seq);
    answer(c, 200, "application/json", "", body, keep);
    evbuffer_free(body);
}

static void healthz(struct http_conn *c, bool keep)
{
    struct core *core = c->api->core;
    struct evbuffer *body = evbuffer_new();

    if (!body) {
        conn_close(c, "oom");
        return;
    }
    evbuffer_add_printf(
        body, "{\"status\":\"ok\",\"uptime_s\":%" PRIu64 ",\"connections\":%" PRIu64 "}\n",
        (net_now_ms() - core->started_ms) / 1000u, core_conn_count(core));
    answer(c, 200, "application/json", "", body, keep);
    evbuffer_free(body);
}

static void metrics(struct http_conn *c, bool keep)
{
    struct evbuffer *body = evbuffer_new();

    if (!body) {
        conn_close(c, "oom");
        return;
    }
    broker_metrics_prometheus(c->api->core, body);
    answer(c, 200, "text/plain; version=0.0.4", "", body, keep);
    evbuffer_free(body);
}

/* A complete request that passed the head hook. */
static void dispatch(struct http_conn *c)
{
    bool keep = http_request_keep_alive(&c->req) && !c->api->core->stopping;

    c->api->core->stats.http_requests++;
    switch (c->route) {
    case ROUTE_PUBLISH:
        publish(c, keep);
        break;
    case ROUTE_HEALTHZ:
        healthz(c, keep);
        break;
    default:
        metrics(c, keep);
        break;
    }
}

/* ---- connections ---------------------------------------------------------- */

static void conn_free(struct close_entry *e)
{
    struct http_conn *c = (struct http_conn *)e;

    http_request_free(&c->req);
    mem_free(c);
}

static void list_unlink(struct http_api *api, struct http_conn *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        api->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
}

/* Closes now (idempotent); the struct is freed from the close list (core.c). */
static void conn_close(struct http_conn *c, const char *reason)
{
    if (c->closed)
        return;
    c->closed = true;
    log_debug("http_close", "conn=%u peer=%s reason=%s", c->id, c->peer, reason);
    bufferevent_free(c->bev);
    c->bev = NULL;
    list_unlink(c->api, c);
    c->api->nconns--;
    c->close.free_fn = conn_free;
    core_defer_free(c->api->core, &c->close);
}

/* The last answer is written: shut the write side and drop input until EOF. */
static void linger(struct http_conn *c)
{
    if (c->lingering)
        return;
    c->lingering = true;
    if (shutdown(bufferevent_getfd(c->bev), SHUT_WR) < 0)
        conn_close(c, "error");
}

/* After answers were queued: close once written, or stop reading past the high mark. */
static void after_answer(struct http_conn *c)
{
    struct timeval tv = {HTTP_CLOSE_WAIT_S, 0};
    struct evbuffer *out = bufferevent_get_output(c->bev);

    if (c->closing) {
        /* The whole close, answer and linger, is bounded by this. */
        bufferevent_set_timeouts(c->bev, &tv, &tv);
        if (bufferevent_enable(c->bev, EV_READ) < 0) {
            conn_close(c, "error");
            return;
        }
        if (evbuffer_get_length(out) == 0)
            linger(c);
        return;
    }
    if (evbuffer_get_length(out) > HTTP_OUT_HIGH) {
        struct timeval rt = {(time_t)(c->api->core->conf->request_timeout / 1000),
                             (suseconds_t)(c->api->core->conf->request_timeout % 1000) * 1000};

        /* Not read while its answers wait; one that reads none of them for
         * request-timeout is closed (the write timeout). */
        c->paused = true;
        bufferevent_disable(c->bev, EV_READ);
        bufferevent_setwatermark(c->bev, EV_WRITE, HTTP_OUT_HIGH / 4, 0);
        bufferevent_set_timeouts(c->bev, NULL, &rt);
    }
}

/* Parses and answers every complete request in the input, in order. */
static void process(struct http_conn *c)
{
    struct evbuffer *in = bufferevent_get_input(c->bev);

    while (!c->closing && !c->paused && evbuffer_get_length(in) > 0) {
        struct evbuffer_iovec v;
        size_t n;

        if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
            break;
        n = http_request_feed(&c->req, v.iov_base, v.iov_len);
        evbuffer_drain(in, n);
        if (c->req.status) {
            answer_refusal(c);
        } else if (c->req.complete) {
            dispatch(c);
            if (c->closed)
                return;
            http_request_next(&c->req);
            /* The next request's clock starts now: idle when nothing of it is here. */
            c->since_ms = net_now_ms();
            c->idle = evbuffer_get_length(in) == 0;
        }
        after_answer(c);
        if (c->closed)
            return;
    }
}

/* Closing: what the client still sends is dropped (bounded). */
static void drop_input(struct http_conn *c)
{
    struct evbuffer *in = bufferevent_get_input(c->bev);
    size_t n = evbuffer_get_length(in);

    evbuffer_drain(in, n);
    c->dropped += n;
    if (c->dropped > HTTP_LINGER_MAX)
        conn_close(c, "linger_limit");
}

static void http_on_read(struct bufferevent *bev, void *arg)
{
    struct http_conn *c = arg;

    if (c->closing) {
        drop_input(c);
        return;
    }
    /* A request's clock starts at its first byte and no later byte resets it. */
    if (c->idle && evbuffer_get_length(bufferevent_get_input(bev)) > 0) {
        c->idle = false;
        c->since_ms = net_now_ms();
    }
    process(c);
}

static void http_on_write(struct bufferevent *bev, void *arg)
{
    struct http_conn *c = arg;

    if (c->closing) {
        if (evbuffer_get_length(bufferevent_get_output(bev)) > 0)
            return;
        if (c->peer_eof)
            conn_close(c, "done");
        else
            linger(c);
        return;
    }
    if (c->paused && evbuffer_get_length(bufferevent_get_output(bev)) <= HTTP_OUT_HIGH / 4) {
        c->paused = false;
        bufferevent_setwatermark(bev, EV_WRITE, 0, 0);
        bufferevent_set_timeouts(bev, NULL, NULL);
        if (bufferevent_enable(bev, EV_READ) < 0) {
            conn_close(c, "error");
            return;
        }
        process(c);
    }
}

static void http_on_event(struct bufferevent *bev, short what, void *arg)
{
    struct http_conn *c = arg;

    (void)bev;
    if (what & BEV_EVENT_EOF) {
        /* Half-closed after its request (or during a refusal): what is
         * answered is still written, then the connection closes. */
        if (evbuffer_get_length(bufferevent_get_output(bev)) > 0) {
            struct timeval tv = {HTTP_CLOSE_WAIT_S, 0};

            c->closing = true;
            c->peer_eof = true;
            bufferevent_disable(bev, EV_READ);
            bufferevent_set_timeouts(bev, NULL, &tv);
            return;
        }
        conn_close(c, "eof");
    } else if (what & BEV_EVENT_TIMEOUT) {
        conn_close(c, "timeout");
    } else if (what & BEV_EVENT_ERROR) {
        conn_close(c, "error");
    }
}

/* Over http-max-connections: a best-effort 503 on the fresh socket, then close. */
static void refuse(struct core *core, int fd)
{
    static const char msg[] = "HTTP/1.1 503 Service Unavailable\r\nContent-Type: "
                              "application/json\r\nContent-Length: 37\r\nConnection: close\r\n\r\n"
                              "{\"error\":\"too many HTTP connections\"}";

    core->stats.drops[DROP_MAX_CLIENTS]++;
    (void)send(fd, msg, sizeof(msg) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
    close(fd);
}

static void http_on_accept(int fd, struct sockaddr *sa, int salen, void *arg)
{
    struct http_api *api = arg;
    struct core *core = api->core;
    struct http_conn *c;

    (void)sa;
    (void)salen;
    if (core->stopping) {
        close(fd);
        return;
    }
    if (api->nconns >= (uint64_t)core->conf->http_max_connections) {
        refuse(core, fd);
        return;
    }
    c = mem_calloc(1, sizeof(*c));
    c->api = api;
    c->id = ++api->next_id;
    net_peer_name(fd, c->peer, sizeof(c->peer));
    c->bev = bufferevent_socket_new(core->base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (!c->bev) {
        close(fd);
        mem_free(c);
        return;
    }
    http_request_init(&c->req, &api->limits, on_head, c);
    c->since_ms = net_now_ms();
    c->idle = true;
    /* Reading stops at a chunk of unparsed input; parsing drains it. */
    bufferevent_setwatermark(c->bev, EV_READ, 0, HTTP_READ_CHUNK);
    bufferevent_setcb(c->bev, http_on_read, http_on_write, http_on_event, c);
    if (bufferevent_enable(c->bev, EV_READ | EV_WRITE) < 0) {
        bufferevent_free(c->bev);
        http_request_free(&c->req);
        mem_free(c);
        return;
    }
    c->next = api->conns;
    if (api->conns)
        api->conns->prev = c;
    api->conns = c;
    api->nconns++;
}

/* ---- exported ------------------------------------------------------------- */

struct http_api *http_api_start(struct core *core, const char **err)
{
    struct http_api *api = mem_calloc(1, sizeof(*api));

    api->core = core;
    api->limits.max_head = HTTP_MAX_HEAD;
    api->limits.max_body = core->conf->max_payload;
    api->listener =
        core_listen(core, EP_HTTP, core->conf->http_port, http_on_accept, api, NULL, err);
    if (!api->listener) {
        mem_free(api);
        return NULL;
    }
    return api;
}

void http_api_sweep(struct http_api *api, uint64_t now_ms)
{
    struct http_conn *c, *next;

    if (!api)
        return;
    for (c = api->conns; c; c = next) {
        next = c->next;
        if (c->closing || c->paused || !core_request_late(api->core, c->since_ms, now_ms))
            continue;
        if (c->idle) {
            conn_close(c, "idle");
            continue;
        }
        core_request_timeout(api->core, EP_HTTP, c->id, c->peer);
        answer_error(c, 408, "request timeout", NULL, "", false);
        if (!c->closed)
            after_answer(c);
    }
}

void http_api_shutdown(struct http_api *api)
{
    struct http_conn *c, *next;

    if (!api)
        return;
    listener_free(api->listener);
    api->listener = NULL;
    /* Requests are answered as they complete, so only idle or partial ones remain. */
    for (c = api->conns; c; c = next) {
        next = c->next;
        if (!c->closing)
            conn_close(c, "shutdown");
    }
}

void http_api_free(struct http_api *api)
{
    struct http_conn *c, *next;

    if (!api)
        return;
    listener_free(api->listener);
    for (c = api->conns; c; c = next) {
        next = c->next;
        bufferevent_free(c->bev);
        http_request_free(&c->req);
        mem_free(c);
    }
    mem_free(api);
}

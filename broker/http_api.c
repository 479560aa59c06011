/*
 * http_api.c - the HTTP endpoint: publish by POST, /healthz, /metrics.
 *
 * libevent's evhttp owns the connections, request parsing and keep-alive;
 * this file is one request callback on one listener (a net_listen socket
 * handed to evhttp_accept_socket_with_handle, so `bind` and the bound port
 * behave as on the other endpoints). Every reply body is built in the
 * request's own output buffer: no allocation besides the decoded topic.
 *
 * Limits: headers are capped at HTTP_MAX_HEADERS and the body at
 * max-payload by evhttp itself, which answers an oversize body with its own
 * 413 page (HTML, and before our callback runs, so it is not counted as a
 * drop: libevent 2.1 has no hook between the headers and the body of a
 * server request). Lingering close makes evhttp read and discard the rest
 * of such a body before answering, so clients that do not wait for
 * `100 Continue` see the 413 rather than a reset.
 *
 * evhttp does not track connections for broker_conn_count, and the
 * endpoint is request/response: requests are counted instead
 * (stats.http_requests).
 *
 * Rejected: a hand-written HTTP server on bufferevents (three routes do not
 * pay for a parser of our own), and requiring the secret on /healthz and
 * /metrics (probes and Prometheus scrape without credentials; neither
 * exposes payloads).
 */
#include "broker/http_api.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/http.h>

#include "broker/router.h"
#include "common/mem.h"
#include "common/net.h"

#define HTTP_MAX_HEADERS  (16 * 1024)
#define HTTP_TIMEOUT_S    30
#define HTTP_PUBLISH_PATH "/v1/publish/"

struct http_api {
    struct broker *b;
    struct evhttp *http;
    struct evhttp_bound_socket *sock;
};

/* ---- replies ------------------------------------------------------------ */

static const char *status_reason(int code)
{
    switch (code) {
    case 200:
        return "OK";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 413:
        return "Payload Too Large";
    default:
        return "Error";
    }
}

/* Sends the body already in the request's output buffer with this status. */
static void send_reply(struct evhttp_request *req, int code, const char *type)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);

    evhttp_add_header(h, "Content-Type", type);
    evhttp_send_reply(req, code, status_reason(code), NULL);
}

/* Appends s as the inside of a JSON string (the reasons are ASCII, but be safe). */
static void json_escape(struct evbuffer *out, const char *s)
{
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;

        if (ch == '"' || ch == '\\')
            evbuffer_add_printf(out, "\\%c", ch);
        else if (ch < 0x20)
            evbuffer_add_printf(out, "\\u%04x", ch);
        else
            evbuffer_add(out, s, 1);
    }
}

/* {"error":"<what>[: <detail>]"} with the given status. */
static void send_error(struct evhttp_request *req, int code, const char *what, const char *detail)
{
    struct evbuffer *out = evhttp_request_get_output_buffer(req);

    evbuffer_add_printf(out, "{\"error\":\"");
    json_escape(out, what);
    if (detail) {
        evbuffer_add(out, ": ", 2);
        json_escape(out, detail);
    }
    evbuffer_add(out, "\"}\n", 3);
    send_reply(req, code, "application/json");
}

static void send_method_not_allowed(struct evhttp_request *req, const char *allow)
{
    evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", allow);
    send_error(req, 405, "method not allowed", NULL);
}

/* ---- routes ------------------------------------------------------------- */

/* True when requirepass is unset or the request carries `Authorization: Bearer <secret>`. */
static bool authorized(struct broker *b, struct evhttp_request *req)
{
    const char *v;

    if (!b->conf->requirepass)
        return true;
    v = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
    if (!v || strncasecmp(v, "Bearer ", 7) != 0)
        return false;
    v += 7;
    while (*v == ' ')
        v++;
    return broker_auth_ok(b, v, strlen(v));
}

/* Decodes the topic, validates it and publishes the body; enc is still percent-encoded. */
static void publish(struct broker *b, struct evhttp_request *req, const char *enc)
{
    struct evbuffer *body = evhttp_request_get_input_buffer(req);
    size_t blen = evbuffer_get_length(body), tlen = 0;
    struct router_result res;
    const char *err = "empty topic";
    char *topic = evhttp_uridecode(enc, 0, &tlen);

    if (!topic || !topic_valid(topic, tlen, &b->limits, &err)) {
        send_error(req, 400, "invalid topic", topic ? err : "bad percent-encoding");
        goto out;
    }
    if (blen > b->conf->max_payload) {
        b->stats.drops[DROP_OVERSIZE]++;
        send_error(req, 413, "payload too large", NULL);
        goto out;
    }
    router_publish(b, topic, tlen, evbuffer_pullup(body, -1), blen, &res);
    evbuffer_add_printf(evhttp_request_get_output_buffer(req),
                        "{\"receivers\":%" PRIu64 ",\"seq\":%" PRIu64 "}\n", res.receivers,
                        res.seq);
    send_reply(req, 200, "application/json");
out:
    free(topic); /* evhttp_uridecode allocates with libevent's allocator (malloc here) */
}

static void route_publish(struct broker *b, struct evhttp_request *req, const char *enc)
{
    if (evhttp_request_get_command(req) != EVHTTP_REQ_POST) {
        send_method_not_allowed(req, "POST");
        return;
    }
    if (!authorized(b, req)) {
        b->stats.drops[DROP_AUTH]++;
        evhttp_add_header(evhttp_request_get_output_headers(req), "WWW-Authenticate", "Bearer");
        send_error(req, 401, "unauthorized", NULL);
        return;
    }
    publish(b, req, enc);
}

static void route_healthz(struct broker *b, struct evhttp_request *req)
{
    evbuffer_add_printf(evhttp_request_get_output_buffer(req),
                        "{\"status\":\"ok\",\"uptime_s\":%" PRIu64 ",\"connections\":%" PRIu64
                        "}\n",
                        (net_now_ms() - b->started_ms) / 1000u, broker_conn_count(b));
    send_reply(req, 200, "application/json");
}

static void route_metrics(struct broker *b, struct evhttp_request *req)
{
    broker_metrics(b, evhttp_request_get_output_buffer(req));
    send_reply(req, 200, "text/plain; version=0.0.4");
}

static bool is_get(struct evhttp_request *req)
{
    enum evhttp_cmd_type m = evhttp_request_get_command(req);

    return m == EVHTTP_REQ_GET || m == EVHTTP_REQ_HEAD;
}

static void http_api_on_request(struct evhttp_request *req, void *arg)
{
    struct http_api *api = arg;
    struct broker *b = api->b;
    const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));

    b->stats.http_requests++;
    if (!path)
        path = "";
    if (strncmp(path, HTTP_PUBLISH_PATH, strlen(HTTP_PUBLISH_PATH)) == 0) {
        route_publish(b, req, path + strlen(HTTP_PUBLISH_PATH));
    } else if (strcmp(path, "/healthz") == 0 || strcmp(path, "/metrics") == 0) {
        if (!is_get(req))
            send_method_not_allowed(req, "GET, HEAD");
        else if (path[1] == 'h')
            route_healthz(b, req);
        else
            route_metrics(b, req);
    } else {
        send_error(req, 404, "not found", NULL);
    }
}

/* ---- exported ----------------------------------------------------------- */

static int configure(struct http_api *api, int fd, const char **err)
{
    const struct broker_conf *conf = api->b->conf;

    evhttp_set_max_body_size(api->http, (ev_ssize_t)conf->max_payload);
    evhttp_set_max_headers_size(api->http, HTTP_MAX_HEADERS);
    evhttp_set_timeout(api->http, HTTP_TIMEOUT_S);
    /* Every common method reaches our callback, so the 405s carry our Allow header. */
    evhttp_set_allowed_methods(api->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
                                              EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
                                              EVHTTP_REQ_OPTIONS | EVHTTP_REQ_PATCH);
    if (evhttp_set_flags(api->http, EVHTTP_SERVER_LINGERING_CLOSE) != 0) {
        *err = "evhttp_set_flags failed";
        return -1;
    }
    evhttp_set_gencb(api->http, http_api_on_request, api);
    api->sock = evhttp_accept_socket_with_handle(api->http, fd);
    if (!api->sock) {
        *err = "evhttp_accept_socket failed";
        return -1;
    }
    return 0;
}

int http_api_start(struct broker *b, const char **err)
{
    struct http_api *api;
    int fd, port;

    if (b->conf->http_port == 0)
        return 0;
    fd = net_listen(b->conf->bind, (int)b->conf->http_port, false, 511, err);
    if (fd < 0)
        return -1;
    port = net_local_port(fd);
    api = mem_calloc(1, sizeof(*api));
    api->b = b;
    api->http = evhttp_new(b->base);
    if (!api->http) {
        *err = "evhttp_new failed";
        goto fail;
    }
    if (configure(api, fd, err) < 0)
        goto fail;
    b->http = api;
    log_info("http_listen", "bind=%s port=%d", b->conf->bind ? b->conf->bind : "*", port);
    return 0;
fail:
    if (api->http)
        evhttp_free(api->http);
    if (!api->sock)
        close(fd);
    mem_free(api);
    return -1;
}

void http_api_shutdown(struct broker *b)
{
    struct http_api *api = b->http;

    if (!api || !api->sock)
        return;
    /* Frees the listener and closes its socket; open requests finish. */
    evhttp_del_accept_socket(api->http, api->sock);
    api->sock = NULL;
}

void http_api_free(struct broker *b)
{
    struct http_api *api = b->http;

    if (!api)
        return;
    evhttp_free(api->http);
    mem_free(api);
    b->http = NULL;
}

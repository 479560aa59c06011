/*
 * edge_http.c - the edge port's answers to requests that are not a
 * WebSocket upgrade.
 *
 * A response is built whole into one frame and queued like any other
 * output, so an HTTP answer costs the connection nothing it would not
 * already have (no bufferevent, no second write path); client.c closes the
 * connection once it is written.
 */
#include "edge/edge_http.h"

#include <stdio.h>
#include <string.h>

#include <event2/buffer.h>

#include "common/frame.h"
#include "common/http_status.h"
#include "edge/edge_metrics.h"
#include "edge/hub.h"

static struct frame *respond(int status, const char *ctype, const char *extra, const void *body,
                             size_t blen)
{
    char head[512];
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                     "Cache-Control: no-store\r\nConnection: close\r\n%s\r\n",
                     status, http_status_text(status), ctype, blen, extra);
    struct frame *f = frame_new((size_t)n + blen);

    memcpy(f->data, head, (size_t)n);
    if (blen)
        memcpy(f->data + n, body, blen);
    return f;
}

static void count_hs_fail(struct hub *h, int status)
{
    static const int codes[] = {400, 403, 404, 405, 426, 431, 401}; /* enum edge_hs_fail's order */

    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
        if (codes[i] == status) {
            h->stats.hs_fail[i]++;
            return;
        }
    }
    h->stats.hs_fail[HS_FAIL_400]++;
}

static struct frame *error_with(int status, const char *extra, const char *why)
{
    char body[256];
    int n = snprintf(body, sizeof(body), "%s\n", why ? why : http_status_text(status));

    if (n < 0 || (size_t)n >= sizeof(body))
        n = snprintf(body, sizeof(body), "%s\n", http_status_text(status));
    return respond(status, "text/plain", extra, body, (size_t)n);
}

struct frame *edge_http_error(struct hub *h, int status, const char *why)
{
    const char *extra = "";

    if (status == 426)
        extra = "Sec-WebSocket-Version: 13\r\n";
    else if (status == 405)
        extra = "Allow: GET\r\n";
    else if (status == 429 || status == 503)
        extra = "Retry-After: 1\r\n";
    if (status != 429 && status != 503)
        count_hs_fail(h, status);
    return error_with(status, extra, why);
}

struct frame *edge_http_unauthorized(struct hub *h, bool invalid_token, const char *why)
{
    count_hs_fail(h, 401);
    return error_with(401,
                      invalid_token ? "WWW-Authenticate: Bearer error=\"invalid_token\"\r\n"
                                    : "WWW-Authenticate: Bearer\r\n",
                      why);
}

struct frame *edge_http_healthz(struct hub *h)
{
    size_t up = 0, total = 0;
    const char *body;

    h->stats.http_healthz++;
    edge_metrics_links_up(h, &up, &total);
    if (up == total)
        body = "{\"status\":\"ok\",\"broker\":\"up\"}\n";
    else if (up == 0)
        body = "{\"status\":\"degraded\",\"broker\":\"down\"}\n";
    else
        body = "{\"status\":\"degraded\",\"broker\":\"degraded\"}\n";
    return respond(up == total ? 200 : 503, "application/json", "", body, strlen(body));
}

struct frame *edge_http_metrics(struct hub *h)
{
    struct evbuffer *b = evbuffer_new();
    struct frame *f;
    size_t len;

    h->stats.http_metrics++;
    if (!b)
        return edge_http_error(h, 503, "out of memory");
    edge_metrics_render(h, b);
    len = evbuffer_get_length(b);
    f = respond(200, "text/plain; version=0.0.4", "", evbuffer_pullup(b, -1), len);
    evbuffer_free(b);
    return f;
}

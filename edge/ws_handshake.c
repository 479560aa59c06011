#include "edge/ws_handshake.h"

#include <assert.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <http_parser.h>

#include "common/ws/ws_key.h"

/*
 * The HTTP side of the edge port: one request head in, a classified
 * struct ws_request out. Pure code: no sockets, no allocation; every view
 * into the caller's bytes dies when ws_handshake_parse returns, and what
 * the caller keeps (topics, accept key) is copied into *req.
 *
 * libhttp-parser does the HTTP/1.x syntax. It is stateful, but a head is
 * small and bounded by max_header, so each call parses the buffer from
 * the start with a parser on the stack: the caller just appends bytes and
 * calls again, and no parser state lives in the connection struct
 * (docs/architecture.md §4.4). on_headers_complete returns 1 (skip any body: a GET's body is
 * not ours to read) and on_message_complete pauses the parser, so
 * http_parser_execute stops exactly after the blank line and its return
 * value is the head length; bytes after it (a client's first frames) are
 * left alone.
 *
 * Header callbacks may deliver a field or value in pieces (obs-fold, or
 * a buffer ending mid-line); since the buffer is contiguous each piece
 * only extends the span [start, at + len). A header is acted on when the
 * next field starts or the head ends ("commit"), so list headers
 * (Connection, Upgrade, Sec-WebSocket-Protocol) may repeat and any copy
 * counts, while single-valued ones (key, version, Origin) repeated are a
 * 400.
 *
 * Every request first: Host (400 when an HTTP/1.1 request has none, or any
 * request has two or one that is not host[:port] - RFC 7230 5.4, which
 * RFC 6455 4.2.1 requires of the upgrade; HTTP/1.0 may omit it). Then for
 * /ws and the echo path: method (405), HTTP/1.1, Upgrade and Connection
 * (400), version (missing 400, not 13 426, RFC 6455 4.2.2), key (400),
 * Origin (403), query string (400 on bad %-encoding; /ws only: the echo
 * path ignores it). A request without Origin passes the origin check: only
 * browsers send it, and the check exists to keep other sites' pages out,
 * not non-browser clients. The Host value is checked, not compared with
 * anything: the edge answers under any name it is reached by.
 *
 * Rejected: picohttpparser (not packaged in Debian 12), a hand-written
 * request-line parser (libhttp-parser is hardened and fuzzed), and keeping
 * a parser per connection across reads (costs bytes on every idle
 * connection for a few microseconds saved on a rare split head).
 */

#define SUBPROTOCOL "herald.v1"

struct span {
    const char *p;
    size_t n;
};

struct hs_ctx {
    struct span url;
    struct span field;
    struct span value;
    bool have_field; /* a field is pending commit */
    bool in_value;   /* the pending field's value has started */
    bool done;       /* on_message_complete ran */
    bool upgrade_ws;
    bool conn_upgrade;
    bool subprotocol;
    bool duplicate;
    struct span key, version, origin;
    bool have_key, have_version, have_origin;
    struct span host;
    unsigned nhost; /* Host fields seen */
};

/* ---------- small string helpers ---------- */

static bool is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static struct span trim(struct span s)
{
    while (s.n > 0 && is_ws(s.p[0])) {
        s.p++;
        s.n--;
    }
    while (s.n > 0 && is_ws(s.p[s.n - 1])) {
        s.n--;
    }
    return s;
}

static struct span lit(const char *s)
{
    return (struct span){s, strlen(s)};
}

static bool span_eq(struct span a, struct span b, bool icase)
{
    if (a.n != b.n) {
        return false;
    }
    if (a.n == 0) {
        return true;
    }
    return icase ? strncasecmp(a.p, b.p, a.n) == 0 : memcmp(a.p, b.p, a.n) == 0;
}

/* True when the comma-separated list s holds tok as one element. */
static bool list_has(struct span s, struct span tok, bool icase)
{
    while (s.n > 0) {
        const char *comma = memchr(s.p, ',', s.n);
        size_t n = comma ? (size_t)(comma - s.p) : s.n;
        struct span item = {s.p, n};
        if (span_eq(trim(item), tok, icase)) {
            return true;
        }
        s.p += comma ? n + 1 : n;
        s.n -= comma ? n + 1 : n;
    }
    return false;
}

static int hex_val(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

/* RFC 3986 3.2.2-3.2.3: the characters of host (reg-name, IP literal) and port. */
static bool is_host_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           (c != '\0' && strchr("-._~%!$&'()*+,;=:[]", c) != NULL);
}

/* An empty Host is valid (RFC 7230 5.4: a target without an authority). */
static bool host_valid(struct span h)
{
    for (size_t i = 0; i < h.n; i++) {
        if (!is_host_char(h.p[i])) {
            return false;
        }
    }
    return true;
}

static bool is_b64(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
           c == '/';
}

/* RFC 6455 4.1: the key is base64 of 16 random bytes: 22 symbols and "==". */
static bool key_valid(struct span k)
{
    if (k.n != WS_KEY_LEN || k.p[22] != '=' || k.p[23] != '=') {
        return false;
    }
    for (size_t i = 0; i < 22; i++) {
        if (!is_b64(k.p[i])) {
            return false;
        }
    }
    return true;
}

/* ---------- http_parser callbacks ---------- */

static void commit_header(struct hs_ctx *c)
{
    struct span f = c->field;
    struct span v = trim(c->in_value ? c->value : (struct span){"", 0});
    c->have_field = false;
    c->in_value = false;
    if (span_eq(f, lit("Host"), true)) {
        c->nhost++;
        c->host = v;
    } else if (span_eq(f, lit("Upgrade"), true)) {
        c->upgrade_ws |= list_has(v, lit("websocket"), true);
    } else if (span_eq(f, lit("Connection"), true)) {
        c->conn_upgrade |= list_has(v, lit("Upgrade"), true);
    } else if (span_eq(f, lit("Sec-WebSocket-Protocol"), true)) {
        c->subprotocol |= list_has(v, lit(SUBPROTOCOL), false);
    } else if (span_eq(f, lit("Sec-WebSocket-Key"), true)) {
        c->duplicate |= c->have_key;
        c->have_key = true;
        c->key = v;
    } else if (span_eq(f, lit("Sec-WebSocket-Version"), true)) {
        c->duplicate |= c->have_version;
        c->have_version = true;
        c->version = v;
    } else if (span_eq(f, lit("Origin"), true)) {
        c->duplicate |= c->have_origin;
        c->have_origin = true;
        c->origin = v;
    }
}

static int on_url(http_parser *p, const char *at, size_t len)
{
    struct hs_ctx *c = p->data;
    if (c->url.p == NULL) {
        c->url.p = at;
    }
    c->url.n = (size_t)(at + len - c->url.p);
    return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t len)
{
    struct hs_ctx *c = p->data;
    /* A piece that does not continue the pending field starts a new one. */
    if (c->have_field && (c->in_value || at != c->field.p + c->field.n)) {
        commit_header(c);
    }
    if (!c->have_field) {
        c->have_field = true;
        c->field.p = at;
    }
    c->field.n = (size_t)(at + len - c->field.p);
    return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
    struct hs_ctx *c = p->data;
    if (!c->in_value) {
        c->in_value = true;
        c->value.p = at;
    }
    c->value.n = (size_t)(at + len - c->value.p);
    return 0;
}

static int on_headers_complete(http_parser *p)
{
    struct hs_ctx *c = p->data;
    if (c->have_field) {
        commit_header(c);
    }
    return 1; /* skip the body: the head is all we read */
}

static int on_message_complete(http_parser *p)
{
    struct hs_ctx *c = p->data;
    c->done = true;
    http_parser_pause(p, 1);
    return 0;
}

static const http_parser_settings hs_settings = {
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_message_complete = on_message_complete,
};

/* ---------- classification ---------- */

static void set_error(struct ws_request *req, int status, const char *err)
{
    req->kind = WS_REQ_ERROR;
    req->status = status;
    req->err = err;
}

static bool origin_allowed(const struct hs_ctx *c, const char *allowed)
{
    if (allowed == NULL || allowed[0] == '\0' || !c->have_origin) {
        return true;
    }
    return c->origin.n > 0 && list_has(lit(allowed), c->origin, false);
}

/* The byte %XX encodes at v.p[i] == '%'; -1 when malformed or NUL. */
static int pct_byte(struct span v, size_t i)
{
    if (i + 2 >= v.n) {
        return -1;
    }
    int hi = hex_val(v.p[i + 1]);
    int lo = hex_val(v.p[i + 2]);
    if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
        return -1;
    }
    return hi << 4 | lo;
}

/*
 * Appends the %-decoded value v to req's topics. '+' stays literal (topics
 * have no spaces to encode). Returns -1 on a bad escape or an encoded NUL;
 * running out of slots or topic_buf only sets too_many_topics. The whole
 * value is decoded either way so a bad escape is a 400 wherever it is.
 */
static int add_topic(struct ws_request *req, struct span v)
{
    size_t used = 0;
    if (req->ntopics > 0) {
        size_t last = req->ntopics - 1;
        used = (size_t)(req->topics[last] - req->topic_buf) + req->topic_lens[last] + 1;
    }
    char *out = req->topic_buf + used;
    size_t room = sizeof(req->topic_buf) - used;
    size_t n = 0;
    for (size_t i = 0; i < v.n; i++) {
        int ch = (unsigned char)v.p[i];
        if (ch == '%') {
            ch = pct_byte(v, i);
            if (ch < 0) {
                return -1;
            }
            i += 2;
        }
        if (n + 1 < room) {
            out[n] = (char)ch;
        }
        n++;
    }
    if (req->ntopics == WS_HS_MAX_TOPICS || n + 1 > room) {
        req->too_many_topics = true;
        return 0;
    }
    out[n] = '\0';
    req->topics[req->ntopics] = out;
    req->topic_lens[req->ntopics] = n;
    req->ntopics++;
    return 0;
}

/* Reads topic= and format= from the query string. Returns 0 or -1 (400). */
static int parse_query(struct ws_request *req, struct span q)
{
    while (q.n > 0) {
        const char *amp = memchr(q.p, '&', q.n);
        size_t n = amp ? (size_t)(amp - q.p) : q.n;
        const char *eq = memchr(q.p, '=', n);
        struct span name = {q.p, eq ? (size_t)(eq - q.p) : n};
        struct span val = {eq ? eq + 1 : q.p + n, eq ? n - name.n - 1 : 0};
        if (span_eq(name, lit("topic"), false)) {
            if (add_topic(req, val) < 0) {
                return -1;
            }
        } else if (span_eq(name, lit("format"), false)) {
            req->raw = span_eq(val, lit("raw"), false);
        }
        q.p += amp ? n + 1 : n;
        q.n -= amp ? n + 1 : n;
    }
    return 0;
}

/* Validates a GET /ws upgrade; fills req with UPGRADE or ERROR. */
static void check_upgrade(const struct hs_ctx *c, const http_parser *p, struct span query,
                          const char *allowed_origins, struct ws_request *req)
{
    if (p->method != HTTP_GET) {
        set_error(req, 405, "method not allowed");
    } else if (p->http_minor < 1) {
        set_error(req, 400, "websocket upgrade needs HTTP/1.1");
    } else if (c->duplicate) {
        set_error(req, 400, "duplicate websocket header");
    } else if (!c->upgrade_ws) {
        set_error(req, 400, "missing Upgrade: websocket");
    } else if (!c->conn_upgrade) {
        set_error(req, 400, "missing Connection: Upgrade");
    } else if (!c->have_version) {
        set_error(req, 400, "missing Sec-WebSocket-Version");
    } else if (!span_eq(c->version, lit("13"), false)) {
        set_error(req, 426, "unsupported Sec-WebSocket-Version");
    } else if (!c->have_key || !key_valid(c->key)) {
        set_error(req, 400, "missing or bad Sec-WebSocket-Key");
    } else if (!origin_allowed(c, allowed_origins)) {
        set_error(req, 403, "origin not allowed");
    } else if (parse_query(req, query) < 0) {
        set_error(req, 400, "bad query string");
    } else {
        req->kind = WS_REQ_UPGRADE;
        req->subprotocol = c->subprotocol;
        ws_accept_key(c->key.p, c->key.n, req->accept);
    }
}

static struct span url_part(struct span url, const struct http_parser_url *u, int field)
{
    if (!(u->field_set & (1u << field))) {
        return (struct span){"", 0};
    }
    return (struct span){url.p + u->field_data[field].off, u->field_data[field].len};
}

/* RFC 7230 5.4. Returns false with req set to the 400 when Host is wrong. */
static bool check_host(const struct hs_ctx *c, const http_parser *p, struct ws_request *req)
{
    if (c->nhost > 1) {
        set_error(req, 400, "duplicate Host header");
    } else if (c->nhost == 0 && p->http_minor >= 1) {
        set_error(req, 400, "missing Host header");
    } else if (c->nhost == 1 && !host_valid(c->host)) {
        set_error(req, 400, "bad Host header");
    } else {
        return true;
    }
    return false;
}

/* Sorts a complete head by path and method. */
static void classify(const struct hs_ctx *c, const http_parser *p,
                     const struct ws_hs_policy *policy, struct ws_request *req)
{
    struct http_parser_url u;
    http_parser_url_init(&u);
    if (c->url.n == 0 || http_parser_parse_url(c->url.p, c->url.n, 0, &u) != 0) {
        set_error(req, 400, "bad request target");
        return;
    }
    if (!check_host(c, p, req)) {
        return;
    }
    struct span path = url_part(c->url, &u, UF_PATH);
    if (path.n == 0) {
        path = lit("/");
    }
    const char *origins = policy ? policy->allowed_origins : NULL;
    if (policy && policy->echo_path && span_eq(path, lit(policy->echo_path), false)) {
        check_upgrade(c, p, (struct span){"", 0}, origins, req);
        if (req->kind == WS_REQ_UPGRADE) {
            req->kind = WS_REQ_ECHO;
        }
        return;
    }
    if (span_eq(path, lit("/ws"), false)) {
        check_upgrade(c, p, url_part(c->url, &u, UF_QUERY), origins, req);
        return;
    }
    bool healthz = span_eq(path, lit("/healthz"), false);
    bool metrics = span_eq(path, lit("/metrics"), false);
    if (!healthz && !metrics) {
        set_error(req, 404, "not found");
    } else if (p->method != HTTP_GET) {
        set_error(req, 405, "method not allowed");
    } else {
        req->kind = healthz ? WS_REQ_HEALTHZ : WS_REQ_METRICS;
    }
}

static void request_init(struct ws_request *req)
{
    req->kind = WS_REQ_ERROR;
    req->status = 0;
    req->err = NULL;
    req->accept[0] = '\0';
    req->subprotocol = false;
    req->raw = false;
    req->ntopics = 0;
    req->too_many_topics = false;
}

ssize_t ws_handshake_parse(const char *buf, size_t len, size_t max_header,
                           const struct ws_hs_policy *policy, struct ws_request *req)
{
    struct hs_ctx c = {0};
    http_parser p;
    http_parser_init(&p, HTTP_REQUEST);
    p.data = &c;
    request_init(req);
    size_t avail = len < max_header ? len : max_header;
    size_t n = http_parser_execute(&p, &hs_settings, buf, avail);
    enum http_errno e = HTTP_PARSER_ERRNO(&p);
    if (!c.done) {
        if (e == HPE_HEADER_OVERFLOW || (e == HPE_OK && len > max_header)) {
            set_error(req, 431, "request header too large");
            return -1;
        }
        if (e != HPE_OK) {
            set_error(req, 400, http_errno_description(e));
            return -1;
        }
        return -2;
    }
    if (p.http_major != 1) {
        set_error(req, 400, "not HTTP/1.x");
        return -1;
    }
    classify(&c, &p, policy, req);
    return (ssize_t)n;
}

size_t ws_handshake_response(const struct ws_request *req, char *out, size_t outlen)
{
    int n = snprintf(out, outlen,
                     "HTTP/1.1 101 Switching Protocols\r\n"
                     "Upgrade: websocket\r\n"
                     "Connection: Upgrade\r\n"
                     "Sec-WebSocket-Accept: %s\r\n"
                     "%s"
                     "\r\n",
                     req->accept,
                     req->subprotocol ? "Sec-WebSocket-Protocol: " SUBPROTOCOL "\r\n" : "");
    assert(n > 0 && (size_t)n < outlen);
    return (size_t)n;
}

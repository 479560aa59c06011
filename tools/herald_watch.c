/*
 * herald_watch.c - `herald watch`: follow events through an edge, as a browser would.
 *
 *   herald watch [--count N] [--timeout SECONDS] [--raw] ws://host:port/ws PATTERN...
 *
 * A minimal blocking WebSocket client (RFC 6455): TCP connect, an upgrade
 * request with a random Sec-WebSocket-Key and the patterns in the query
 * string (`?topic=a&topic=b`, percent-encoded; `&format=raw` with --raw),
 * a check of the 101 and of Sec-WebSocket-Accept, then a frame loop:
 * client frames are masked, pings are answered, fragmented messages are
 * reassembled. Output, stable for scripts and tests:
 *   stdout  each event as received, one per line, flushed per line: the
 *           JSON envelope ({"op":"msg",...}), or with --raw every data
 *           message as it came
 *   stderr  "herald: error: <json>" for an error op (bad topic, ...),
 *           "herald: <message>" for failures
 * Exit status: 0 after --count events, 1 on failure, timeout or a close by
 * the server before the count is reached, 2 on usage errors.
 *
 * The key, the Accept check and the framing are the edge's own codec
 * (common/ws/), so the CLI and the edge cannot disagree on them; the
 * masks and the key come from OpenSSL's RAND_bytes. Rejected: libevent
 * (nothing here is concurrent; poll() gives the deadlines).
 */
#include "tools/herald_watch.h"

#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "common/mem.h"
#include "common/net.h"
#include "common/ws/ws_frame.h"
#include "common/ws/ws_key.h"

#define HEAD_MAX     8192
#define MSG_MAX      (64u << 20)
#define EXIT_OK      0
#define EXIT_RUNTIME 1
#define EXIT_USAGE   2

struct watch {
    int fd;
    bool raw;
    long count; /* events wanted, 0: unlimited */
    long seen;
    int64_t deadline; /* net_now_ms() value, 0: none */
    uint8_t *buf;     /* bytes read and not yet parsed */
    size_t len, cap;
    uint8_t *msg; /* fragmented message being assembled */
    size_t msg_len;
    int msg_op;
};

static void usage(FILE *out)
{
    fprintf(out, "usage: herald watch [--count N] [--timeout SECONDS] [--raw] "
                 "ws://host:port/ws PATTERN...\n"
                 "  --count N          exit 0 after N events\n"
                 "  --timeout SECONDS  exit 1 if not done by then\n"
                 "  --raw              ask for payloads alone (?format=raw)\n");
}

/* ---------- URL and request ---------- */

struct url {
    char host[256];
    char port[16];
    const char *path; /* borrowed from the argument, "/" when empty */
};

static int parse_url(const char *s, struct url *u)
{
    const char *hp, *slash;
    char hostport[300];
    int port = 80;
    size_t n;

    if (strncmp(s, "ws://", 5) != 0)
        return -1;
    hp = s + 5;
    slash = strchr(hp, '/');
    n = slash ? (size_t)(slash - hp) : strlen(hp);
    if (n == 0 || n >= sizeof(hostport))
        return -1;
    memcpy(hostport, hp, n);
    hostport[n] = '\0';
    if (net_split_hostport(hostport, u->host, sizeof(u->host), &port) < 0) {
        if (strchr(hostport, ':') || n >= sizeof(u->host))
            return -1;
        memcpy(u->host, hostport, n + 1);
    }
    snprintf(u->port, sizeof(u->port), "%d", port);
    u->path = slash ? slash : "/";
    return 0;
}

/* Appends s percent-encoded (everything but RFC 3986 unreserved bytes). */
static size_t pct_encode(char *out, size_t cap, size_t at, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";

    for (; *s && at + 4 < cap; s++) {
        unsigned char c = (unsigned char)*s;

        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '.' || c == '_' || c == '~') {
            out[at++] = (char)c;
        } else {
            out[at++] = '%';
            out[at++] = hex[c >> 4];
            out[at++] = hex[c & 15];
        }
    }
    out[at] = '\0';
    return at;
}

/* Builds path?topic=..&topic=..[&format=raw]; returns -1 when it does not fit. */
static int build_target(char *out, size_t cap, const struct url *u, char **patterns, int n,
                        bool raw)
{
    size_t at = (size_t)snprintf(out, cap, "%s", u->path);
    char sep = strchr(u->path, '?') ? '&' : '?';

    for (int i = 0; i < n; i++) {
        if (at + 8 >= cap)
            return -1;
        at += (size_t)snprintf(out + at, cap - at, "%ctopic=", sep);
        at = pct_encode(out, cap, at, patterns[i]);
        sep = '&';
    }
    if (raw && at + 13 < cap)
        at += (size_t)snprintf(out + at, cap - at, "%cformat=raw", sep);
    return at + 1 < cap ? 0 : -1;
}

static int make_key(char out[WS_KEY_LEN + 1])
{
    unsigned char raw[16];

    if (RAND_bytes(raw, sizeof(raw)) != 1)
        return -1;
    ws_key_encode(raw, out);
    return 0;
}

/* ---------- socket I/O with the deadline ---------- */

static int dial(const struct url *u)
{
    int gai_err;

    return net_connect(u->host, atoi(u->port), &gai_err);
}

static int send_all(int fd, const void *buf, size_t len)
{
    const uint8_t *p = buf;

    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Reads more bytes into w->buf. Returns 1, 0 at EOF, -1 on error, -2 at the deadline. */
static int fill(struct watch *w)
{
    struct pollfd pfd = {w->fd, POLLIN, 0};
    int timeout = -1;
    ssize_t n;

    if (w->deadline) {
        int64_t left = w->deadline - (int64_t)net_now_ms();

        if (left <= 0)
            return -2;
        timeout = left > 1000000 ? 1000000 : (int)left;
    }
    if (poll(&pfd, 1, timeout) == 0)
        return -2;
    if (w->cap - w->len < 65536) {
        w->cap = w->cap ? w->cap * 2 : 131072;
        w->buf = mem_realloc(w->buf, w->cap);
    }
    n = recv(w->fd, w->buf + w->len, w->cap - w->len, 0);
    if (n < 0)
        return errno == EINTR ? 1 : -1;
    if (n == 0)
        return 0;
    w->len += (size_t)n;
    return 1;
}

static void consume(struct watch *w, size_t n)
{
    memmove(w->buf, w->buf + n, w->len - n);
    w->len -= n;
}

/* Sends one masked client frame. */
static int send_frame(struct watch *w, int opcode, const void *payload, size_t len)
{
    size_t cap = WS_MAX_HEADER + len, n;
    uint8_t mask[4];
    uint8_t *out;
    int rc;

    if (RAND_bytes(mask, sizeof(mask)) != 1)
        memset(mask, 0x5a, sizeof(mask));
    out = mem_alloc(cap);
    n = ws_frame_encode_masked(out, cap, (uint8_t)opcode, payload, len, mask);
    rc = send_all(w->fd, out, n);
    mem_free(out);
    return rc;
}

/* ---------- handshake ---------- */

/* Finds header name's value in the head (case-insensitive name); NULL when absent. */
static const char *header_value(const char *head, const char *name, size_t *len)
{
    size_t nl = strlen(name);

    for (const char *p = strstr(head, "\r\n"); p && p[2] != '\r'; p = strstr(p + 2, "\r\n")) {
        const char *line = p + 2, *end = strstr(line, "\r\n");

        if (end && strncasecmp(line, name, nl) == 0 && line[nl] == ':') {
            const char *v = line + nl + 1;

            while (*v == ' ' || *v == '\t')
                v++;
            *len = (size_t)(end - v);
            while (*len > 0 && (v[*len - 1] == ' ' || v[*len - 1] == '\t'))
                (*len)--;
            return v;
        }
    }
    return NULL;
}

/* Reads the response head; checks 101 and the Accept value. Returns 0 or -1 (printed). */
static int read_upgrade(struct watch *w, const char *key)
{
    char accept[WS_ACCEPT_LEN + 1], *head, *end;
    const char *v;
    size_t vlen = 0, hlen;
    int r;

    while (w->len == 0 || !(end = memmem(w->buf, w->len, "\r\n\r\n", 4))) {
        if (w->len > HEAD_MAX || (r = fill(w)) <= 0) {
            fprintf(stderr, "herald: no WebSocket handshake response\n");
            return -1;
        }
    }
    hlen = (size_t)(end - (char *)w->buf) + 4;
    head = mem_strndup((const char *)w->buf, hlen);
    consume(w, hlen);
    ws_accept_key(key, strlen(key), accept);
    v = header_value(head, "Sec-WebSocket-Accept", &vlen);
    r = 0;
    if (strncmp(head, "HTTP/1.1 101", 12) != 0) {
        fprintf(stderr, "herald: upgrade refused: %.*s\n", (int)strcspn(head, "\r\n"), head);
        r = -1;
    } else if (!v || vlen != strlen(accept) || memcmp(v, accept, vlen) != 0) {
        fprintf(stderr, "herald: bad Sec-WebSocket-Accept\n");
        r = -1;
    }
    mem_free(head);
    return r;
}

static int handshake(struct watch *w, const struct url *u, const char *target)
{
    char key[WS_KEY_LEN + 1], req[HEAD_MAX + 512];
    int n;

    if (make_key(key) < 0) {
        fprintf(stderr, "herald: no random bytes for the key\n");
        return -1;
    }
    n = snprintf(req, sizeof(req),
                 "GET %s HTTP/1.1\r\nHost: %s:%s\r\nUpgrade: websocket\r\n"
                 "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                 "Sec-WebSocket-Version: 13\r\n\r\n",
                 target, u->host, u->port, key);
    if (n < 0 || (size_t)n >= sizeof(req) || send_all(w->fd, req, (size_t)n) < 0) {
        fprintf(stderr, "herald: cannot send the handshake\n");
        return -1;
    }
    return read_upgrade(w, key);
}

/* ---------- frames ---------- */

static bool is_event(const uint8_t *p, size_t len)
{
    return memmem(p, len < 64 ? len : 64, "\"op\":\"msg\"", 10) != NULL;
}

/* A complete data message. Returns 1 when the count is reached, else 0. */
static int on_message(struct watch *w, const uint8_t *p, size_t len)
{
    if (w->raw || is_event(p, len)) {
        fwrite(p, 1, len, stdout);
        fputc('\n', stdout);
        fflush(stdout);
        w->seen++;
        return w->count > 0 && w->seen >= w->count;
    }
    if (memmem(p, len < 64 ? len : 64, "\"op\":\"error\"", 12))
        fprintf(stderr, "herald: error: %.*s\n", (int)len, (const char *)p);
    return 0;
}

static int on_close(struct watch *w, const uint8_t *p, size_t len)
{
    unsigned code = len >= 2 ? (unsigned)(p[0] << 8 | p[1]) : 1005;

    send_frame(w, WS_OP_CLOSE, p, len >= 2 ? 2 : 0);
    fprintf(stderr, "herald: server closed the connection: code=%u reason=\"%.*s\"\n", code,
            len > 2 ? (int)(len - 2) : 0, len > 2 ? (const char *)p + 2 : "");
    return -1;
}

/* Data frame: assemble fragments. Returns 1 (count reached), 0, or -1. */
static int on_data(struct watch *w, int op, bool fin, const uint8_t *p, size_t len)
{
    int r;

    if (op != WS_OP_CONT)
        w->msg_op = op;
    if (fin && w->msg_len == 0)
        return on_message(w, p, len);
    if (w->msg_len + len > MSG_MAX) {
        fprintf(stderr, "herald: message too big\n");
        return -1;
    }
    w->msg = mem_realloc(w->msg, w->msg_len + len);
    memcpy(w->msg + w->msg_len, p, len);
    w->msg_len += len;
    if (!fin)
        return 0;
    r = on_message(w, w->msg, w->msg_len);
    w->msg_len = 0;
    return r;
}

/* Handles one complete frame at w->buf. Returns 1 done, 0 go on, -1 failure, -2 incomplete. */
static int next_frame(struct watch *w)
{
    struct ws_frame_header h;
    const uint8_t *p;
    const char *err;
    uint16_t code;
    ssize_t hl = ws_frame_parse_server_header(w->buf, w->len, MSG_MAX, &h, &code, &err);
    size_t len;
    int r;

    if (hl == -2)
        return -2;
    if (hl < 0) {
        fprintf(stderr, "herald: %s\n", code == WS_CLOSE_TOO_BIG ? "frame too big" : err);
        return -1;
    }
    len = (size_t)h.payload_len;
    if (w->len - (size_t)hl < len)
        return -2;
    p = w->buf + hl;
    if (h.opcode == WS_OP_PING)
        r = send_frame(w, WS_OP_PONG, p, len);
    else if (h.opcode == WS_OP_CLOSE)
        r = on_close(w, p, len);
    else if (h.opcode == WS_OP_PONG)
        r = 0;
    else
        r = on_data(w, h.opcode, h.fin, p, len);
    consume(w, (size_t)hl + len);
    return r;
}

static int frame_loop(struct watch *w)
{
    for (;;) {
        int r = next_frame(w);

        if (r == 1) {
            send_frame(w, WS_OP_CLOSE, "\x03\xe8", 2);
            return EXIT_OK;
        }
        if (r == -1)
            return EXIT_RUNTIME;
        if (r == 0)
            continue;
        r = fill(w);
        if (r == -2) {
            fprintf(stderr, "herald: timeout after %ld event(s)\n", w->seen);
            return EXIT_RUNTIME;
        }
        if (r <= 0) {
            fprintf(stderr, "herald: connection lost\n");
            return EXIT_RUNTIME;
        }
    }
}

/* ---------- command ---------- */

/* Parses the options; returns the index of the URL argument, or -1 (usage printed). */
static int parse_opts(int argc, char **argv, struct watch *w)
{
    static const struct option longopts[] = {
        {"count", required_argument, NULL, 'c'},
        {"timeout", required_argument, NULL, 't'},
        {"raw", no_argument, NULL, 'r'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    char *end;
    double secs;
    int opt;

    optind = 0; /* GNU getopt: re-initialise, the caller may have used it */
    while ((opt = getopt_long(argc, argv, "+c:t:rh", longopts, NULL)) != -1) {
        switch (opt) {
        case 'c':
            w->count = strtol(optarg, &end, 10);
            if (*end || w->count < 1)
                goto bad;
            break;
        case 't':
            secs = strtod(optarg, &end);
            if (*end || secs <= 0)
                goto bad;
            w->deadline = (int64_t)net_now_ms() + (int64_t)(secs * 1000.0);
            break;
        case 'r':
            w->raw = true;
            break;
        case 'h':
            usage(stdout);
            return -2;
        default:
            goto bad;
        }
    }
    if (argc - optind < 2)
        goto bad;
    return optind;
bad:
    usage(stderr);
    return -1;
}

int herald_watch_main(int argc, char **argv)
{
    struct watch w;
    struct url u;
    char target[HEAD_MAX];
    int at, rc = EXIT_RUNTIME;

    memset(&w, 0, sizeof(w));
    w.fd = -1;
    at = parse_opts(argc, argv, &w);
    if (at < 0)
        return at == -2 ? EXIT_OK : EXIT_USAGE;
    if (parse_url(argv[at], &u) < 0 ||
        build_target(target, sizeof(target), &u, argv + at + 1, argc - at - 1, w.raw) < 0) {
        fprintf(stderr, "herald: bad URL (expected ws://host:port/path): %s\n", argv[at]);
        return EXIT_USAGE;
    }
    w.fd = dial(&u);
    if (w.fd < 0) {
        fprintf(stderr, "herald: cannot connect to %s:%s\n", u.host, u.port);
        return EXIT_RUNTIME;
    }
    if (handshake(&w, &u, target) == 0)
        rc = frame_loop(&w);
    close(w.fd);
    mem_free(w.buf);
    mem_free(w.msg);
    return rc;
}

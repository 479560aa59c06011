/*
 * loadgen.c - herald-loadgen: subscribers and a publisher for the edge
 * benchmarks (bench/edge.sh) and the peer comparison (bench/peers.sh).
 *
 * Subscriber side (`sub`, `hold`): one process holds up to ~18,000
 * WebSocket connections on one event_base. A connection is a small fixed
 * struct with an embedded `struct event` (EV_WRITE while connecting, then
 * EV_READ|EV_PERSIST); the array of them is one allocation. Every read lands
 * in one process-wide read buffer; only a partial frame or response head is
 * copied into a per-connection `carry` allocation, freed as soon as the rest
 * arrives, so an idle connection costs its struct plus the kernel's socket.
 * Rejected: a bufferevent per connection (about 1 KB each, for nothing here).
 *
 * What is protocol-specific (request target and headers, a subscribe step
 * once open and its ack, how the stream is cut into units and what a unit
 * means, how to publish and read replies) is a `struct proto` adapter
 * (tools/loadgen.h), one file each: herald (loadgen_herald.c), nchan
 * (WebSocket + HTTP POST, loadgen_nchan.c), mqtt (MQTT 3.1.1 over WebSocket
 * + TCP, loadgen_mqtt.c) and resp (redis-server, plain TCP, loadgen_resp.c).
 * This file is the driver: options, connections, windows and the publisher.
 * The WebSocket client framing (loadgen_ws.c, over common/ws/) and the
 * accounting below it are shared. MQTT packets may straddle frames, so their
 * stream is joined per connection in a second `stream` carry, again kept only
 * while a unit is partial.
 *
 * TLS (wss:// or --tls, loadgen_tls.c): after the TCP connect a connection
 * runs the TLS handshake (CS_TLS; its event armed for whichever direction
 * OpenSSL waits on), then the same upgrade and subscribe steps through its
 * SSL object. Reads decrypt into the same process-wide buffer; OpenSSL
 * releases its record buffers whenever they are empty, so an idle TLS
 * connection costs the generator its struct, the SSL object and the
 * kernel's socket. Kernel receive stamps need recvmsg() on the socket,
 * which TLS reads through OpenSSL do not give: --kernel-ts is plain only.
 *
 * Latency: the publisher (`publish`, pipelined per --proto) writes a
 * fixed-width 64-byte payload "t=<CLOCK_REALTIME us> s=<seq> c=<count>
 * r=<run seed> xxxxxxxx"; a receiver subtracts t from the realtime clock read
 * once per recv() and records the difference in a log-linear histogram
 * (32 buckets per octave, ~3% resolution). With --kernel-ts the receive
 * time is instead the kernel's SO_TIMESTAMPNS of the data (on loopback:
 * when the server's send() queued it), so a load generator that shares one
 * core with many peers does not add its own scheduling delay; the
 * application-level figure is still reported as app_lat_*. c tells a broadcast receiver how
 * many events each connection should get; for unicast the target user of
 * event s is a pure function of (seed, s), so a receiver replays it to know
 * exactly what each of its connections should have received, and checks
 * that each event reached the right user.
 *
 * Measurement windows: SIGUSR1 prints the summary line of the window so far
 * and starts a new one (bench scripts send it before and after each
 * publisher run); SIGTERM, SIGINT or --duration print the last window and
 * exit. --hist-out rewrites the window's histogram ("value_us count" lines)
 * at each summary so a script can merge percentiles over processes.
 *
 * The tool is single-threaded; subscriber state is one file-static struct so
 * that a connection needs no back pointer.
 */
#include "tools/loadgen.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <openssl/ssl.h>

#include "common/mem.h"
#include "common/net.h"
#include "common/ws/ws_frame.h"
#include "common/ws/ws_key.h"

#define PAYLOAD_MIN   56 /* the fields' fixed width; the rest is padding */
#define TICK_MS       10
#define HANDSHAKE_MS  10000
#define PUB_TICK_US   1000
#define PUB_OUT_LIMIT (4u << 20) /* bytes queued to the broker before the publisher waits */
#define HIST_BITS     5
#define HIST_SUB      (1u << HIST_BITS)
#define HIST_BUCKETS  (2 * HIST_SUB + 40 * HIST_SUB)
#define EXIT_RUNTIME  1
#define EXIT_USAGE    2

/* ---------------------------------------------------------------- payload */

struct payload {
    uint64_t t_us;
    uint32_t seq;
    uint32_t count;
    uint32_t seed;
};

static uint64_t realtime_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static uint64_t splitmix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

/* The user that unicast event seq of run seed goes to; publisher and receivers agree. */
static uint64_t target_user(uint32_t seed, uint32_t seq, uint64_t users)
{
    return splitmix64(((uint64_t)seed << 32) | seq) % users;
}

static void payload_format(char out[PAYLOAD_LEN], const struct payload *p)
{
    char tmp[PAYLOAD_LEN + 1];
    int n = snprintf(tmp, sizeof(tmp),
                     "t=%016" PRIu64 " s=%010" PRIu32 " c=%010" PRIu32 " r=%08" PRIx32 " ", p->t_us,
                     p->seq, p->count, p->seed);

    memcpy(out, tmp, (size_t)n);
    memset(out + n, 'x', PAYLOAD_LEN - (size_t)n);
}

bool loadgen_parse_digits(const uint8_t *s, size_t n, unsigned base, uint64_t *out)
{
    uint64_t v = 0;

    for (size_t i = 0; i < n; i++) {
        unsigned d;
        if (s[i] >= '0' && s[i] <= '9')
            d = s[i] - '0';
        else if (base == 16 && s[i] >= 'a' && s[i] <= 'f')
            d = s[i] - 'a' + 10;
        else
            return false;
        v = v * base + d;
    }
    *out = v;
    return true;
}

/* Parses the fixed layout written by payload_format(); -1 when it is not one. */
static int payload_parse(const uint8_t *s, size_t len, struct payload *p)
{
    uint64_t t, seq, count, seed;

    if (len < PAYLOAD_MIN || memcmp(s, "t=", 2) != 0 || memcmp(s + 18, " s=", 3) != 0 ||
        memcmp(s + 31, " c=", 3) != 0 || memcmp(s + 44, " r=", 3) != 0)
        return -1;
    if (!loadgen_parse_digits(s + 2, 16, 10, &t) || !loadgen_parse_digits(s + 21, 10, 10, &seq) ||
        !loadgen_parse_digits(s + 34, 10, 10, &count) ||
        !loadgen_parse_digits(s + 47, 8, 16, &seed))
        return -1;
    p->t_us = t;
    p->seq = (uint32_t)seq;
    p->count = (uint32_t)count;
    p->seed = (uint32_t)seed;
    return 0;
}

/* -------------------------------------------------------------- histogram */

struct hist {
    uint64_t count[HIST_BUCKETS];
    uint64_t n;
    uint64_t max;
};

static unsigned hist_index(uint64_t v)
{
    unsigned e, m, idx;

    if (v < 2 * HIST_SUB)
        return (unsigned)v;
    e = 63u - (unsigned)__builtin_clzll(v);
    m = (unsigned)(v >> (e - HIST_BITS)); /* in [HIST_SUB, 2 * HIST_SUB) */
    idx = 2 * HIST_SUB + (e - HIST_BITS - 1) * HIST_SUB + (m - HIST_SUB);
    return idx < HIST_BUCKETS ? idx : HIST_BUCKETS - 1;
}

/* The middle of bucket idx: exact below 2 * HIST_SUB. */
static uint64_t hist_value(unsigned idx)
{
    unsigned k, e;

    if (idx < 2 * HIST_SUB)
        return idx;
    k = idx - 2 * HIST_SUB;
    e = k / HIST_SUB + HIST_BITS + 1;
    return ((uint64_t)(k % HIST_SUB + HIST_SUB) << (e - HIST_BITS)) +
           ((uint64_t)1 << (e - HIST_BITS)) / 2;
}

static void hist_add(struct hist *h, uint64_t v)
{
    h->count[hist_index(v)]++;
    h->n++;
    if (v > h->max)
        h->max = v;
}

static uint64_t hist_quantile(const struct hist *h, double q)
{
    uint64_t want = (uint64_t)(q * (double)h->n + 0.999999), seen = 0;

    if (h->n == 0)
        return 0;
    for (unsigned i = 0; i < HIST_BUCKETS; i++) {
        seen += h->count[i];
        if (seen >= want && h->count[i])
            return hist_value(i);
    }
    return h->max;
}

static void hist_write(const struct hist *h, const char *path, unsigned window)
{
    char tmp[4096];
    FILE *f;

    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    f = fopen(tmp, "w");
    if (!f) {
        fprintf(stderr, "loadgen: cannot write %s: %s\n", tmp, strerror(errno));
        return;
    }
    fprintf(f, "# window=%u n=%" PRIu64 " max=%" PRIu64 "\n", window, h->n, h->max);
    for (unsigned i = 0; i < HIST_BUCKETS; i++) {
        if (h->count[i])
            fprintf(f, "%" PRIu64 " %" PRIu64 "\n", hist_value(i), h->count[i]);
    }
    if (fclose(f) != 0 || rename(tmp, path) != 0)
        fprintf(stderr, "loadgen: cannot write %s: %s\n", path, strerror(errno));
}

/* ------------------------------------------------------- protocol adapter */

static const struct proto *const protos[] = {&loadgen_herald, &loadgen_nchan, &loadgen_mqtt,
                                             &loadgen_resp};

static const struct proto *proto_find(const char *name)
{
    for (size_t i = 0; i < sizeof(protos) / sizeof(protos[0]); i++) {
        if (strcmp(protos[i]->name, name) == 0)
            return protos[i];
    }
    return NULL;
}

int loadgen_topic(const struct opts *o, uint64_t idx, char *buf, size_t len)
{
    if (o->topic_mode == TOPIC_UNICAST)
        return snprintf(buf, len, "user.%" PRIu64, idx + o->offset);
    return snprintf(buf, len, "%s", o->topic);
}

/* ------------------------------------------------------ subscriber state */

/* CS_SUBSCRIBING: transport up, the subscribe step's ack (proto acks) not yet in. */
enum conn_state {
    CS_IDLE,
    CS_CONNECTING,
    CS_TLS, /* TCP up, TLS handshake under way */
    CS_HANDSHAKE,
    CS_SUBSCRIBING,
    CS_OPEN,
    CS_CLOSED,
    CS_FAILED
};

struct conn {
    struct event ev; /* EV_WRITE while connecting, then EV_READ|EV_PERSIST */
    SSL *ssl;        /* with TLS, from the TCP connect on; NULL on plain connections */
    uint8_t *carry;  /* a partial response head or frame; NULL when none */
    uint8_t *stream; /* proto cut over WebSocket: a partial unit of the joined payloads */
    uint32_t carry_len, stream_len;
    uint32_t received;   /* events in the current window */
    uint32_t started_ms; /* since run start, for the handshake deadline */
    uint8_t state;       /* enum conn_state */
};

struct window {
    uint64_t received, bad, misrouted, errors;
    uint64_t first_us, last_us; /* realtime of the first and last receipt */
    uint32_t count, seed;       /* of the last payload seen */
    bool seen;
    struct hist lat;     /* kernel receive time with --kernel-ts, else app_lat */
    struct hist app_lat; /* time the generator read it */
};

/* When one recv()'s data arrived: the kernel's stamp (0: none) and ours. */
struct rx_time {
    uint64_t kernel_us, app_us;
};

static struct sub_run {
    const struct opts *o;
    const struct proto *proto;
    struct event_base *base;
    struct conn *conns;
    uint8_t *rbuf;
    SSL_CTX *tls;                         /* NULL: plain connections */
    char tls_version[32], tls_cipher[64]; /* what the first TLS connection negotiated */
    bool tls_failure_logged;
    uint64_t t0_ms, salt;
    uint32_t next, pending, open, opened, failed, closed;
    const char *last_error;
    unsigned window_no;
    uint64_t total_received, progress_received;
    uint32_t progress_opened;
    bool ready;
    bool both_unicast; /* topic mode both: SIGUSR2 seen, windows count unicast */
    struct window win;
} run;

/* How events of the current window are counted: broadcast or unicast. */
static enum topic_mode counting_mode(void)
{
    if (run.o->topic_mode != TOPIC_BOTH)
        return run.o->topic_mode;
    return run.both_unicast ? TOPIC_UNICAST : TOPIC_BROADCAST;
}

static uint32_t conn_idx(const struct conn *c)
{
    return (uint32_t)(c - run.conns);
}

static uint32_t since_start_ms(void)
{
    return (uint32_t)(net_now_ms() - run.t0_ms);
}

/* Ends a connection: counted as failed before it opened, closed after. */
static void conn_end(struct conn *c, const char *why)
{
    evutil_socket_t fd = event_get_fd(&c->ev);

    event_del(&c->ev);
    loadgen_tls_free(c->ssl);
    c->ssl = NULL;
    if (fd >= 0)
        close(fd);
    mem_free(c->carry);
    mem_free(c->stream);
    c->carry = c->stream = NULL;
    c->carry_len = c->stream_len = 0;
    if (c->state == CS_OPEN) {
        run.open--;
        run.closed++;
        c->state = CS_CLOSED;
    } else {
        run.pending--;
        run.failed++;
        c->state = CS_FAILED;
    }
    run.last_error = why;
}

/* ----------------------------------------------------- WebSocket client */

/* The Sec-WebSocket-Key of connection idx, derived so it need not be stored. */
static void ws_key(uint32_t idx, char out[WS_KEY_LEN + 1])
{
    uint64_t raw[2] = {splitmix64(run.salt ^ idx), splitmix64(run.salt + idx)};

    ws_key_encode((const uint8_t *)raw, out);
}

/* Counts one event payload to connection c. */
static void on_payload(struct conn *c, const uint8_t *p, size_t plen, const struct rx_time *rx)
{
    uint64_t now_us = rx->kernel_us ? rx->kernel_us : rx->app_us;
    const struct opts *o = run.o;
    struct window *w = &run.win;
    struct payload pl;

    if (payload_parse(p, plen, &pl) < 0) {
        w->bad++; /* not ours: a probe, or a server bug */
        return;
    }
    c->received++;
    w->received++;
    if (!w->first_us)
        w->first_us = now_us;
    w->last_us = now_us;
    hist_add(&w->lat, now_us > pl.t_us ? now_us - pl.t_us : 0);
    hist_add(&w->app_lat, rx->app_us > pl.t_us ? rx->app_us - pl.t_us : 0);
    w->count = pl.count;
    w->seed = pl.seed;
    w->seen = true;
    if (counting_mode() == TOPIC_UNICAST && o->users &&
        target_user(pl.seed, pl.seq, o->users) != conn_idx(c) + o->offset)
        w->misrouted++;
}

static void conn_opened(struct conn *c)
{
    c->state = CS_OPEN;
    run.pending--;
    run.open++;
    run.opened++;
}

/* Handles one complete unit (see struct proto); returns -1 when the connection ended. */
static int on_unit(struct conn *c, const uint8_t *msg, size_t len, const struct rx_time *rx)
{
    const uint8_t *p = NULL;
    size_t plen = 0;

    switch (run.proto->classify(run.o, msg, len, &p, &plen)) {
    case UNIT_EVENT:
        on_payload(c, p, plen, rx);
        return 0;
    case UNIT_ACK:
        if (c->state == CS_SUBSCRIBING)
            conn_opened(c);
        return 0;
    case UNIT_ERROR:
        run.win.errors++;
        if (c->state != CS_SUBSCRIBING)
            return 0;
        conn_end(c, "subscribe_refused");
        return -1;
    default:
        return 0;
    }
}

/* Cuts and handles the complete units of s; returns bytes consumed or -1 when ended. */
static ssize_t consume_units(struct conn *c, const uint8_t *s, size_t len, const struct rx_time *rx)
{
    size_t used = 0;

    while (used < len) {
        ssize_t n = run.proto->cut(s + used, len - used);

        if (n == 0)
            break;
        if (n < 0) {
            conn_end(c, "bad_stream");
            return -1;
        }
        if (on_unit(c, s + used, (size_t)n, rx) < 0)
            return -1;
        used += (size_t)n;
    }
    return (ssize_t)used;
}

/*
 * Appends one WebSocket payload to the connection's unit stream (MQTT) and
 * handles what completes; only a trailing partial unit is copied and kept.
 * Returns -1 when the connection ended.
 */
static int stream_feed(struct conn *c, const uint8_t *p, size_t len, const struct rx_time *rx)
{
    uint8_t *joined = NULL;
    ssize_t used;

    if (c->stream_len) {
        joined = mem_alloc(c->stream_len + len);
        memcpy(joined, c->stream, c->stream_len);
        memcpy(joined + c->stream_len, p, len);
        len += c->stream_len;
        p = joined;
        mem_free(c->stream);
        c->stream = NULL;
        c->stream_len = 0;
    }
    used = consume_units(c, p, len, rx);
    if (used >= 0 && (size_t)used < len) {
        c->stream = mem_alloc(len - (size_t)used);
        memcpy(c->stream, p + used, len - (size_t)used);
        c->stream_len = (uint32_t)(len - (size_t)used);
    }
    mem_free(joined);
    return used < 0 ? -1 : 0;
}

/* Handles one frame; returns -1 when the connection ended. */
static int on_frame(struct conn *c, uint8_t opcode, const uint8_t *p, size_t len,
                    const struct rx_time *rx)
{
    int fd = event_get_fd(&c->ev);

    switch (opcode) {
    case WS_OP_CONT: /* more of a stream proto's bytes, else ignored */
        return run.proto->cut ? stream_feed(c, p, len, rx) : 0;
    case WS_OP_TEXT:
    case WS_OP_BINARY: /* a fragmented message is counted by its first frame */
        return run.proto->cut ? stream_feed(c, p, len, rx) : on_unit(c, p, len, rx);
    case WS_OP_PING: /* the server's idle timer needs the pong */
        if (loadgen_ws_send(fd, c->ssl, WS_OP_PONG, p, len) < 0) {
            conn_end(c, "pong_failed");
            return -1;
        }
        return 0;
    case WS_OP_CLOSE:
        loadgen_ws_send(fd, c->ssl, WS_OP_CLOSE, p, len < 2 ? len : 2);
        conn_end(c, "server_close");
        return -1;
    default: /* pong */
        return 0;
    }
}

/* Consumes complete frames; returns bytes consumed or -1 when the connection ended. */
static ssize_t consume_frames(struct conn *c, const uint8_t *buf, size_t len,
                              const struct rx_time *rx)
{
    size_t used = 0;

    while (used < len) {
        uint8_t opcode;
        const uint8_t *p;
        size_t plen;
        ssize_t n = loadgen_ws_next(buf + used, len - used, &opcode, &p, &plen);

        if (n == -2)
            break;
        if (n < 0) {
            conn_end(c, "bad_frame");
            return -1;
        }
        used += (size_t)n;
        if (on_frame(c, opcode, p, plen, rx) < 0)
            return -1;
    }
    return (ssize_t)used;
}

/*
 * The subscribe step once the transport is up: sends on_open's bytes; the
 * connection is open at once, or at the ack when the proto has one. Returns
 * -1 when the connection ended.
 */
static int conn_subscribe(struct conn *c)
{
    uint8_t sub[512];
    size_t n = run.proto->on_open ? run.proto->on_open(run.o, conn_idx(c), sub, sizeof(sub)) : 0;

    if (n && loadgen_send(event_get_fd(&c->ev), c->ssl, sub, n) < 0) {
        conn_end(c, "subscribe_send_failed");
        return -1;
    }
    if (run.proto->acks)
        c->state = CS_SUBSCRIBING;
    else
        conn_opened(c);
    return 0;
}

/* Consumes the response head; returns bytes consumed (0: incomplete) or -1 when ended. */
static ssize_t consume_head(struct conn *c, const uint8_t *buf, size_t len)
{
    const uint8_t *end = memmem(buf, len, "\r\n\r\n", 4);
    char key[WS_KEY_LEN + 1];
    size_t head_len;

    if (!end) {
        if (len <= MAX_HEAD)
            return 0;
        conn_end(c, "response_head_too_big");
        return -1;
    }
    head_len = (size_t)(end - buf) + 4;
    ws_key(conn_idx(c), key);
    if (head_len > MAX_HEAD ||
        !loadgen_ws_head_accepts(buf, head_len, key, run.proto->subprotocol)) {
        conn_end(c, "handshake_rejected");
        return -1;
    }
    return conn_subscribe(c) < 0 ? -1 : (ssize_t)head_len;
}

static ssize_t consume(struct conn *c, const uint8_t *buf, size_t len, const struct rx_time *rx)
{
    ssize_t head = 0, frames;

    if (c->state == CS_HANDSHAKE) {
        head = consume_head(c, buf, len);
        if (head <= 0)
            return head;
    }
    if (run.proto->websocket)
        frames = consume_frames(c, buf + head, len - (size_t)head, rx);
    else
        frames = consume_units(c, buf + head, len - (size_t)head, rx);
    return frames < 0 ? -1 : head + frames;
}

static void keep_carry(struct conn *c, const uint8_t *rest, size_t len)
{
    if (len == 0)
        return;
    c->carry = mem_alloc(len);
    memcpy(c->carry, rest, len);
    c->carry_len = (uint32_t)len;
}

/* recv() that also returns the kernel's receive stamp of the data, when enabled. */
static ssize_t recv_stamped(int fd, uint8_t *buf, size_t len, struct rx_time *rx)
{
    char cbuf[CMSG_SPACE(sizeof(struct timespec))];
    struct iovec iov = {buf, len};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
    struct cmsghdr *cm;
    ssize_t n;

    if (!run.o->kernel_ts)
        return recv(fd, buf, len, 0);
    mh.msg_control = cbuf;
    mh.msg_controllen = sizeof(cbuf);
    n = recvmsg(fd, &mh, 0);
    for (cm = n > 0 ? CMSG_FIRSTHDR(&mh) : NULL; cm; cm = CMSG_NXTHDR(&mh, cm)) {
        if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_TIMESTAMPNS) {
            struct timespec ts;
            memcpy(&ts, CMSG_DATA(cm), sizeof(ts));
            rx->kernel_us = (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
        }
    }
    return n;
}

/* What the connection has for us: byte count, 0 at its end, -1 on error, -2 nothing yet. */
static ssize_t conn_recv(struct conn *c, uint8_t *buf, size_t len, struct rx_time *rx)
{
    ssize_t n;

    if (c->ssl)
        return loadgen_tls_read(c->ssl, buf, len);
    n = recv_stamped(event_get_fd(&c->ev), buf, len, rx);
    return n < 0 && (errno == EAGAIN || errno == EINTR) ? -2 : n;
}

static void conn_on_read(struct conn *c)
{
    uint8_t *buf = run.rbuf;
    size_t have = c->carry_len;
    struct rx_time rx = {0, 0};
    ssize_t n, used;

    if (have)
        memcpy(buf, c->carry, have);
    n = conn_recv(c, buf + have, READ_BUF - have, &rx);
    if (n == -2)
        return;
    if (n <= 0) {
        conn_end(c, n == 0 ? "eof" : "recv_error");
        return;
    }
    mem_free(c->carry);
    c->carry = NULL;
    c->carry_len = 0;
    have += (size_t)n;
    rx.app_us = realtime_us();
    used = consume(c, buf, have, &rx);
    if (used >= 0)
        keep_carry(c, buf + used, have - (size_t)used);
}

static void conn_on_event(evutil_socket_t fd, short what, void *arg);

/* Waits for what (EV_READ, EV_WRITE, EV_PERSIST) on the connection's socket. */
static void conn_arm(struct conn *c, short what)
{
    evutil_socket_t fd = event_get_fd(&c->ev);

    event_del(&c->ev);
    event_assign(&c->ev, run.base, fd, what, conn_on_event, c);
    if (event_add(&c->ev, NULL) < 0)
        conn_end(c, "event_add_failed");
}

/* Sends the upgrade request; returns -1 when the connection ended. */
static int conn_send_request(struct conn *c)
{
    char target[2048], key[WS_KEY_LEN + 1], req[4096];
    int n;

    ws_key(conn_idx(c), key);
    if (run.proto->target(run.o, conn_idx(c), target, sizeof(target)) < 0) {
        conn_end(c, "target_too_long");
        return -1;
    }
    n = loadgen_ws_request(req, sizeof(req), target, run.o->host, run.o->port, key,
                           run.proto->headers);
    if (n < 0 || loadgen_send(event_get_fd(&c->ev), c->ssl, req, (size_t)n) < 0) {
        conn_end(c, "request_send_failed");
        return -1;
    }
    c->state = CS_HANDSHAKE;
    return 0;
}

/* The byte stream is up (TCP, or TLS over it): the upgrade or the subscribe step, then reads. */
static void conn_transport_up(struct conn *c)
{
    if ((run.proto->websocket ? conn_send_request(c) : conn_subscribe(c)) < 0)
        return;
    conn_arm(c, EV_READ | EV_PERSIST);
}

/* One step of the TLS handshake; at its end, the transport is up. */
static void conn_tls_step(struct conn *c)
{
    bool want_write = false;
    char detail[512];
    int r = loadgen_tls_handshake(c->ssl, &want_write, detail, sizeof(detail));

    if (r == 0) {
        conn_arm(c, want_write ? EV_WRITE : EV_READ);
        return;
    }
    if (r < 0) {
        if (!run.tls_failure_logged)
            fprintf(stderr, "loadgen: TLS handshake failed (first of any): %s\n", detail);
        run.tls_failure_logged = true;
        conn_end(c, r == -2 ? "tls_verify_failed" : "tls_handshake_failed");
        return;
    }
    if (!run.tls_version[0]) {
        snprintf(run.tls_version, sizeof(run.tls_version), "%s", SSL_get_version(c->ssl));
        snprintf(run.tls_cipher, sizeof(run.tls_cipher), "%s", SSL_get_cipher_name(c->ssl));
    }
    conn_transport_up(c);
}

static void conn_on_connected(struct conn *c)
{
    int fd = event_get_fd(&c->ev), err = 0;
    socklen_t elen = sizeof(err);

    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) < 0 || err) {
        conn_end(c, err == ECONNREFUSED ? "ECONNREFUSED" : "connect_failed");
        return;
    }
    if (!run.tls) {
        conn_transport_up(c);
        return;
    }
    c->ssl = loadgen_tls_new(run.tls, fd, run.o->host);
    if (!c->ssl) {
        conn_end(c, "tls_new_failed");
        return;
    }
    c->state = CS_TLS;
    conn_tls_step(c);
}

static void conn_on_event(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;

    (void)fd, (void)what;
    switch (c->state) {
    case CS_CONNECTING:
        conn_on_connected(c);
        return;
    case CS_TLS:
        conn_tls_step(c);
        return;
    default:
        /* the socket's readiness says nothing of a record OpenSSL already holds decrypted: read
         * it now (each pass takes at least one byte; the read buffer exceeds a record) */
        do
            conn_on_read(c);
        while (c->ssl && SSL_pending(c->ssl) > 0);
    }
}

static int open_socket(uint32_t idx)
{
    const struct opts *o = run.o;
    int one = 1, fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    struct sockaddr_in src = {.sin_family = AF_INET};

    if (fd < 0)
        return -1;
    if (o->kernel_ts && setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof(one)) < 0)
        goto fail;
    if (o->nsources) {
        /* the port is picked at connect() from the full 4-tuple, so each
         * source address gets its own ephemeral range */
        src.sin_addr = o->sources[idx % o->nsources];
        if (setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one)) < 0 ||
            bind(fd, (const struct sockaddr *)&src, sizeof(src)) < 0)
            goto fail;
    }
    if (connect(fd, (const struct sockaddr *)&o->target, sizeof(o->target)) < 0 &&
        errno != EINPROGRESS)
        goto fail;
    return fd;
fail:
    close(fd);
    return -1;
}

static void conn_start(uint32_t idx)
{
    struct conn *c = &run.conns[idx];
    int fd = open_socket(idx);

    c->state = CS_CONNECTING;
    c->started_ms = since_start_ms();
    run.pending++;
    if (fd < 0) {
        event_assign(&c->ev, run.base, -1, 0, conn_on_event, c);
        conn_end(c, errno == EMFILE          ? "EMFILE"
                    : errno == EADDRNOTAVAIL ? "EADDRNOTAVAIL"
                                             : "connect_failed");
        return;
    }
    event_assign(&c->ev, run.base, fd, EV_WRITE, conn_on_event, c);
    if (event_add(&c->ev, NULL) < 0)
        conn_end(c, "event_add_failed");
}

/* ---------------------------------------------------- windows and output */

static double cpu_seconds(void)
{
    struct rusage ru;

    if (getrusage(RUSAGE_SELF, &ru) < 0)
        return 0;
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* Per-connection expectations of this window; returns a new array (NULL: unknown). */
static uint32_t *expected_per_conn(void)
{
    const struct opts *o = run.o;
    const struct window *w = &run.win;
    uint32_t *exp;

    if (!w->seen || (counting_mode() == TOPIC_UNICAST && !o->users))
        return NULL;
    exp = mem_calloc(o->connections, sizeof(*exp));
    if (counting_mode() == TOPIC_BROADCAST) {
        for (uint32_t i = 0; i < o->connections; i++)
            exp[i] = w->count;
        return exp;
    }
    for (uint32_t s = 0; s < w->count; s++) {
        uint64_t u = target_user(w->seed, s, o->users);
        if (u >= o->offset && u - o->offset < o->connections)
            exp[u - o->offset]++;
    }
    return exp;
}

struct checks {
    uint64_t expected;
    uint32_t shortfall, extra;
};

static struct checks check_counts(void)
{
    struct checks k = {0, 0, 0};
    uint32_t *exp = expected_per_conn();

    for (uint32_t i = 0; exp && i < run.next; i++) {
        const struct conn *c = &run.conns[i];
        if (c->state != CS_OPEN && c->state != CS_CLOSED)
            continue;
        k.expected += exp[i];
        k.shortfall += c->received < exp[i];
        k.extra += c->received > exp[i];
    }
    mem_free(exp);
    return k;
}

/* Prints the window's summary line, writes its histogram, starts the next window. */
static void window_end(void)
{
    struct window *w = &run.win;
    struct checks k = check_counts();
    double span = (double)(w->last_us - w->first_us) / 1e6;

    /* the file first: a script that has seen the line may read it at once */
    if (run.o->hist_out)
        hist_write(&w->lat, run.o->hist_out, run.window_no);
    printf("window=%u connected=%" PRIu32 " failed=%" PRIu32 " closed=%" PRIu32 " received=%" PRIu64
           " expected=%" PRIu64 " short=%" PRIu32 " extra=%" PRIu32 " misrouted=%" PRIu64
           " bad=%" PRIu64 " errors=%" PRIu64 " lat_p50_us=%" PRIu64 " lat_p99_us=%" PRIu64
           " lat_p999_us=%" PRIu64 " lat_max_us=%" PRIu64 " app_lat_p50_us=%" PRIu64
           " app_lat_p99_us=%" PRIu64 " rate_per_s=%.0f first_us=%" PRIu64 " last_us=%" PRIu64
           " cpu_s=%.2f\n",
           run.window_no, run.opened, run.failed, run.closed, w->received, k.expected, k.shortfall,
           k.extra, w->misrouted, w->bad, w->errors, hist_quantile(&w->lat, 0.5),
           hist_quantile(&w->lat, 0.99), hist_quantile(&w->lat, 0.999), w->lat.max,
           hist_quantile(&w->app_lat, 0.5), hist_quantile(&w->app_lat, 0.99),
           span > 0 ? (double)w->received / span : 0.0, w->first_us, w->last_us, cpu_seconds());
    fflush(stdout);
    run.total_received += w->received;
    memset(w, 0, sizeof(*w));
    for (uint32_t i = 0; i < run.next; i++)
        run.conns[i].received = 0;
    run.window_no++;
}

static void progress(void)
{
    uint64_t received = run.total_received + run.win.received;
    double secs = (double)run.o->progress_ms / 1000.0;

    fprintf(stderr,
            "loadgen: t=%.0fs open=%" PRIu32 " pending=%" PRIu32 " failed=%" PRIu32
            " closed=%" PRIu32 " connect_rate=%.0f/s received=%" PRIu64 " window_received=%" PRIu64
            " recv_rate=%.0f/s last_error=%s\n",
            since_start_ms() / 1000.0, run.open, run.pending, run.failed, run.closed,
            (run.opened - run.progress_opened) / secs, received, run.win.received,
            (double)(received - run.progress_received) / secs,
            run.last_error ? run.last_error : "none");
    run.progress_opened = run.opened;
    run.progress_received = received;
}

/* Fails connections whose connect or handshake outlived HANDSHAKE_MS. */
static void sweep_deadlines(void)
{
    uint32_t now = since_start_ms();

    for (uint32_t i = 0; i < run.next && run.pending; i++) {
        struct conn *c = &run.conns[i];
        if ((c->state == CS_CONNECTING || c->state == CS_TLS || c->state == CS_HANDSHAKE ||
             c->state == CS_SUBSCRIBING) &&
            now - c->started_ms > HANDSHAKE_MS)
            conn_end(c, "handshake_timeout");
    }
}

static void start_due(void)
{
    const struct opts *o = run.o;
    double allowed = o->rate > 0 ? o->rate * since_start_ms() / 1000.0 + 1 : o->connections;

    while (run.next < o->connections && run.next < allowed && run.pending < o->max_pending)
        conn_start(run.next++);
    if (!run.ready && run.next == o->connections && run.pending == 0) {
        run.ready = true;
        printf("ready connected=%" PRIu32 " failed=%" PRIu32, run.opened, run.failed);
        if (run.tls)
            printf(" tls=%s cipher=%s", run.tls_version[0] ? run.tls_version : "none",
                   run.tls_cipher[0] ? run.tls_cipher : "none");
        printf("\n");
        fflush(stdout);
    }
}

static void sub_on_tick(evutil_socket_t fd, short what, void *arg)
{
    static uint32_t last_progress, last_sweep;
    uint32_t now = since_start_ms();

    (void)fd, (void)what, (void)arg;
    start_due();
    if (now - last_sweep >= 1000) {
        last_sweep = now;
        sweep_deadlines();
    }
    if (now - last_progress >= run.o->progress_ms) {
        last_progress = now;
        progress();
    }
}

static void sub_on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)what, (void)arg;
    window_end();
    if (sig == SIGUSR2)
        run.both_unicast = true;
    else if (sig != SIGUSR1)
        event_base_loopbreak(run.base);
}

static void sub_free(void)
{
    for (uint32_t i = 0; i < run.next; i++) {
        struct conn *c = &run.conns[i];
        if (c->state == CS_CONNECTING || c->state == CS_TLS || c->state == CS_HANDSHAKE ||
            c->state == CS_SUBSCRIBING || c->state == CS_OPEN)
            conn_end(c, "shutdown");
    }
    mem_free(run.conns);
    mem_free(run.rbuf);
    if (run.tls)
        SSL_CTX_free(run.tls);
}

/* ------------------------------------------------------------- publisher */

struct pub {
    const struct opts *o;
    const struct proto *proto;
    struct event_base *base;
    struct bufferevent *bev[16];
    uint64_t sent, t0_us;
    struct pub_tally t;
    bool bye_sent;
    int status;
};

static void pub_summary(struct pub *p)
{
    double secs = (double)(net_now_us() - p->t0_us) / 1e6;

    printf("published=%" PRIu64 " replies=%" PRIu64 " receivers=%" PRIu64 " errors=%" PRIu64
           " rate_per_s=%.0f elapsed_s=%.3f seed=%08" PRIx32 "\n",
           p->sent, p->t.replies, p->t.receivers, p->t.errors,
           secs > 0 ? (double)p->sent / secs : 0, secs, p->o->seed);
    fflush(stdout);
}

static void pub_append(struct pub *p)
{
    const struct opts *o = p->o;
    struct evbuffer *out = bufferevent_get_output(p->bev[p->sent % o->pub_conns]);
    struct payload pl = {realtime_us(), (uint32_t)p->sent, (uint32_t)o->count, o->seed};
    char topic[512], body[PAYLOAD_LEN];

    if (o->topic_mode == TOPIC_UNICAST)
        snprintf(topic, sizeof(topic), "user.%" PRIu64,
                 target_user(o->seed, (uint32_t)p->sent, o->users));
    else
        snprintf(topic, sizeof(topic), "%s", o->topic);
    payload_format(body, &pl);
    p->proto->pub_event(topic, body, out);
    p->sent++;
}

static void pub_on_tick(evutil_socket_t fd, short what, void *arg)
{
    struct pub *p = arg;
    double due = (double)(net_now_us() - p->t0_us) * p->o->rate / 1e6 + 1;

    (void)fd, (void)what;
    while (p->sent < p->o->count && (double)p->sent < due) {
        struct bufferevent *b = p->bev[p->sent % p->o->pub_conns];
        if (evbuffer_get_length(bufferevent_get_output(b)) > PUB_OUT_LIMIT)
            break; /* the broker is behind; later events go out late, and say so */
        pub_append(p);
    }
    if (p->sent == p->o->count && p->proto->pub_bye && !p->bye_sent) {
        for (unsigned i = 0; i < p->o->pub_conns; i++)
            p->proto->pub_bye(bufferevent_get_output(p->bev[i]));
        p->bye_sent = true;
    }
}

static void pub_on_read(struct bufferevent *b, void *arg)
{
    struct pub *p = arg;

    if (p->proto->pub_read(bufferevent_get_input(b), &p->t) < 0) {
        fprintf(stderr, "loadgen: unparsable reply from the %s server\n", p->proto->name);
        p->status = EXIT_RUNTIME;
        event_base_loopbreak(p->base);
        return;
    }
    /* no per-event replies (MQTT QoS 0): the pong to pub_bye follows the last event */
    if (p->proto->pub_bye && p->t.pongs >= p->o->pub_conns)
        p->t.replies = p->sent;
    if (p->t.replies >= p->o->count)
        event_base_loopbreak(p->base);
}

static void pub_on_event(struct bufferevent *b, short what, void *arg)
{
    struct pub *p = arg;

    (void)b;
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
        fprintf(stderr, "loadgen: broker connection lost\n");
        p->status = EXIT_RUNTIME;
        event_base_loopbreak(p->base);
    }
}

static int pub_connect(struct pub *p, unsigned i)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;

    if (fd < 0 || connect(fd, (const struct sockaddr *)&p->o->resp, sizeof(p->o->resp)) < 0) {
        fprintf(stderr, "loadgen: cannot connect to the broker: %s\n", strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    evutil_make_socket_nonblocking(fd);
    p->bev[i] = bufferevent_socket_new(p->base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (!p->bev[i]) {
        close(fd);
        return -1;
    }
    bufferevent_setcb(p->bev[i], pub_on_read, NULL, pub_on_event, p);
    if (p->proto->pub_hello)
        p->proto->pub_hello(p->o, i, bufferevent_get_output(p->bev[i]));
    return bufferevent_enable(p->bev[i], EV_READ);
}

/* ------------------------------------------------------------------ main */

static void usage(FILE *out)
{
    fprintf(
        out,
        "usage: herald-loadgen [sub|hold] [OPTIONS]    subscribers\n"
        "       herald-loadgen publish [OPTIONS]       publisher\n"
        "\n"
        "  --proto NAME               server adapter, both modes (default herald):\n"
        "      herald  WebSocket PATH?topic=T[&format=raw]; publish: RESP PUBLISH (the broker)\n"
        "      nchan   WebSocket PATH/<chan>, a frame is an event; publish: pipelined HTTP\n"
        "              POST /pub/<chan> (chan: the topic, non-\\w characters as '_')\n"
        "      mqtt    WebSocket, subprotocol mqtt, CONNECT + SUBSCRIBE QoS 0, PUBLISH\n"
        "              packets cut from the joined frame payloads; publish: MQTT 3.1.1 over\n"
        "              TCP, QoS 0, ended by PINGREQ/PINGRESP\n"
        "      resp    plain TCP (--url tcp://HOST:PORT), SUBSCRIBE T, \"message\" arrays;\n"
        "              publish: RESP PUBLISH (redis-server)\n"
        "  With an acknowledged subscribe step (mqtt SUBACK, resp subscribe reply) a\n"
        "  connection counts as connected only from the ack.\n"
        "\n"
        "sub, hold (hold: the same, named for idle memory runs):\n"
        "  --url ws://HOST:PORT/PATH  target (default ws://127.0.0.1:8080/ws; tcp://HOST:PORT\n"
        "                             for --proto resp; wss://HOST[:PORT]/PATH: TLS)\n"
        "  --tls                      TLS to the target (implied by wss://); the handshake\n"
        "                             counts in the connect timeout (10 s)\n"
        "  --ca FILE                  verify the server's certificate against FILE (PEM) and\n"
        "                             that it names the URL's host; without --ca nothing is\n"
        "                             verified (benchmarks only)\n"
        "  --connections N            connections to open (default 1000)\n"
        "  --source-ips A,B,...       bind outgoing sockets to these IPv4 addresses in turn\n"
        "                             (127.0.0.2,...: a port range per address)\n"
        "  --rate R                   connects per second (default 5000, 0: no cap)\n"
        "  --max-pending N            connects+handshakes in flight (default 1000)\n"
        "  --topic-mode broadcast|unicast|both\n"
        "                             broadcast: all on --topic; unicast: connection i on\n"
        "                             user.<i+offset>; both: on both, counted as broadcast\n"
        "                             until SIGUSR2, as unicast after (default broadcast)\n"
        "  --topic T                  broadcast topic (default bench.all)\n"
        "  --offset K                 first user number in unicast mode (default 0)\n"
        "  --users U                  unicast user space of the publisher: enables exact\n"
        "                             per-connection expectations and misroute checks\n"
        "  --raw                      ask for format=raw (payload alone; recommended)\n"
        "  --kernel-ts                latency to the kernel's receive stamp (SO_TIMESTAMPNS)\n"
        "                             instead of to when this process read the data (plain\n"
        "                             connections only)\n"
        "  --hist-out FILE            rewrite FILE with the window's latency histogram\n"
        "                             (\"value_us count\" lines) at each summary\n"
        "  --duration S               exit after S seconds (default: run until SIGTERM)\n"
        "  --progress-ms MS           progress line period on stderr (default 2000)\n"
        "  stdout: \"ready connected=N failed=N\" (with TLS also tls=VERSION cipher=NAME of\n"
        "  the first connection) once every connect ended; a summary line\n"
        "  per window: SIGUSR1 ends a window and starts the next (SIGUSR2: the same, and\n"
        "  later windows count unicast), SIGTERM/SIGINT/--duration\n"
        "  end the last one: window= connected= failed= closed= received= expected= short=\n"
        "  extra= misrouted= bad= errors= lat_p50_us= lat_p99_us= lat_p999_us= lat_max_us=\n"
        "  app_lat_p50_us= app_lat_p99_us= rate_per_s= first_us= last_us= cpu_s=. stderr: "
        "progress lines.\n"
        "\n"
        "publish:\n"
        "  --resp HOST:PORT           where to publish (alias --to; default 127.0.0.1:6380):\n"
        "                             RESP, nchan's HTTP or MQTT's TCP port by --proto\n"
        "  --rate E                   events per second (default 1000)\n"
        "  --count M                  events to publish (default 10000)\n"
        "  --topic T | --topic-mode unicast --users U\n"
        "                             one topic, or user.<k> with k a function of (seed, seq)\n"
        "  --seed S                   run id carried in payloads (default: random)\n"
        "  --conns P                  pipelined connections, 1..16 (default 1)\n"
        "  --duration S               hard stop\n"
        "  payload: 64 bytes \"t=<realtime us> s=<seq> c=<count> r=<seed> x...\"\n"
        "  stdout: published= replies= receivers= errors= rate_per_s= elapsed_s= seed=\n");
}

static int parse_u64(const char *s, uint64_t max, uint64_t *out)
{
    char *end;
    unsigned long long v;

    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno || end == s || *end || v > max || s[0] == '-')
        return -1;
    *out = v;
    return 0;
}

static int parse_double(const char *s, double *out)
{
    char *end;

    *out = strtod(s, &end);
    return end == s || *end || *out < 0 ? -1 : 0;
}

static int parse_ipv4_hostport(const char *s, struct sockaddr_in *sa, char *host, size_t hlen,
                               int *port)
{
    struct addrinfo *ai;

    if (net_split_hostport(s, host, hlen, port) < 0 || *port <= 0 || *port > 65535)
        return -1;
    if (net_resolve(host, *port, AF_INET, &ai) != 0)
        return -1;
    memcpy(sa, ai->ai_addr, sizeof(*sa));
    freeaddrinfo(ai);
    return 0;
}

/* ws://, wss:// (TLS, port 443 by default) or tcp:// HOST[:PORT][/PATH]. */
static int parse_url(const char *url, struct opts *o)
{
    static const char *const schemes[] = {"ws://", "wss://", "tcp://"};
    char hostport[300];
    const char *rest = NULL, *slash;
    size_t n;

    for (size_t i = 0; i < sizeof(schemes) / sizeof(schemes[0]) && !rest; i++) {
        if (strncmp(url, schemes[i], strlen(schemes[i])) == 0)
            rest = url + strlen(schemes[i]);
    }
    if (!rest)
        return -1;
    if (strncmp(url, "wss://", 6) == 0)
        o->tls = true;
    slash = strchr(rest, '/');
    n = slash ? (size_t)(slash - rest) : strlen(rest);
    if (n == 0 || n >= sizeof(hostport) || strlen(slash ? slash : "/") >= sizeof(o->path))
        return -1;
    memcpy(hostport, rest, n);
    hostport[n] = '\0';
    if (!strchr(hostport, ':'))
        strcat(hostport, strncmp(url, "wss://", 6) == 0 ? ":443" : ":80");
    snprintf(o->path, sizeof(o->path), "%s", slash ? slash : "/");
    return parse_ipv4_hostport(hostport, &o->target, o->host, sizeof(o->host), &o->port);
}

static int parse_sources(const char *list, struct opts *o)
{
    char buf[4096], *save = NULL;

    snprintf(buf, sizeof(buf), "%s", list);
    o->nsources = 0;
    for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (o->nsources == MAX_SOURCES || inet_pton(AF_INET, t, &o->sources[o->nsources]) != 1)
            return -1;
        o->nsources++;
    }
    return o->nsources ? 0 : -1;
}

static const struct option long_opts[] = {
    {"url", required_argument, NULL, 'u'},
    {"connections", required_argument, NULL, 'n'},
    {"source-ips", required_argument, NULL, 'S'},
    {"rate", required_argument, NULL, 'r'},
    {"max-pending", required_argument, NULL, 'P'},
    {"topic-mode", required_argument, NULL, 'm'},
    {"topic", required_argument, NULL, 't'},
    {"offset", required_argument, NULL, 'o'},
    {"users", required_argument, NULL, 'U'},
    {"raw", no_argument, NULL, 'R'},
    {"proto", required_argument, NULL, 'p'},
    {"hist-out", required_argument, NULL, 'H'},
    {"duration", required_argument, NULL, 'd'},
    {"resp", required_argument, NULL, 'e'},
    {"to", required_argument, NULL, 'e'},
    {"count", required_argument, NULL, 'c'},
    {"seed", required_argument, NULL, 's'},
    {"conns", required_argument, NULL, 'C'},
    {"progress-ms", required_argument, NULL, 'g'},
    {"kernel-ts", no_argument, NULL, 'k'},
    {"tls", no_argument, NULL, 'T'},
    {"ca", required_argument, NULL, 'A'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

/* Applies one option; returns -1 on a bad value. */
static int apply_opt(struct opts *o, int ch, const char *arg)
{
    char host[256];
    uint64_t v = 0;
    int port;

    switch (ch) {
    case 'u':
        return parse_url(arg, o);
    case 'n':
        return parse_u64(arg, 1000000, &v) < 0 ? -1 : (o->connections = (uint32_t)v, 0);
    case 'S':
        return parse_sources(arg, o);
    case 'r':
        return parse_double(arg, &o->rate);
    case 'P':
        return parse_u64(arg, 100000, &v) < 0 || !v ? -1 : (o->max_pending = (uint32_t)v, 0);
    case 'm':
        o->topic_mode = strcmp(arg, "unicast") == 0 ? TOPIC_UNICAST
                        : strcmp(arg, "both") == 0  ? TOPIC_BOTH
                                                    : TOPIC_BROADCAST;
        return strcmp(arg, "unicast") && strcmp(arg, "broadcast") && strcmp(arg, "both") ? -1 : 0;
    case 't':
        o->topic = arg;
        return 0;
    case 'o':
        return parse_u64(arg, UINT32_MAX, &o->offset);
    case 'U':
        return parse_u64(arg, UINT32_MAX, &o->users);
    case 'R':
        o->raw = true;
        return 0;
    case 'k':
        o->kernel_ts = true;
        return 0;
    case 'T':
        o->tls = true;
        return 0;
    case 'A':
        o->ca_file = arg;
        return 0;
    case 'p':
        o->proto = arg;
        return 0;
    case 'H':
        o->hist_out = arg;
        return 0;
    case 'd':
        return parse_double(arg, &o->duration);
    case 'e':
        return parse_ipv4_hostport(arg, &o->resp, host, sizeof(host), &port);
    case 'c':
        return parse_u64(arg, UINT32_MAX, &o->count);
    case 's':
        return parse_u64(arg, UINT32_MAX, &v) < 0 ? -1 : (o->seed = (uint32_t)v, 0);
    case 'C':
        return parse_u64(arg, 16, &v) < 0 || !v ? -1 : (o->pub_conns = (unsigned)v, 0);
    case 'g':
        return parse_u64(arg, 60000, &v) < 0 || v < 100 ? -1 : (o->progress_ms = (uint32_t)v, 0);
    default:
        return -1;
    }
}

static void set_defaults(struct opts *o)
{
    char host[256];
    int port;

    memset(o, 0, sizeof(*o));
    parse_url("ws://127.0.0.1:8080/ws", o);
    parse_ipv4_hostport("127.0.0.1:6380", &o->resp, host, sizeof(host), &port);
    o->connections = 1000;
    o->rate = -1; /* per mode, below */
    o->max_pending = 1000;
    o->topic = "bench.all";
    o->proto = "herald";
    o->count = 10000;
    o->seed = (uint32_t)splitmix64(realtime_us() ^ (uint64_t)getpid());
    o->pub_conns = 1;
    o->progress_ms = 2000;
}

/* Returns 0, 1 for --help, -1 on a usage error (printed). */
static int parse_args(int argc, char **argv, struct opts *o)
{
    int ch;

    set_defaults(o);
    if (argc > 1 && argv[1][0] != '-') {
        if (strcmp(argv[1], "sub") == 0 || strcmp(argv[1], "hold") == 0)
            o->mode = argv[1][0] == 's' ? MODE_SUB : MODE_HOLD;
        else if (strcmp(argv[1], "publish") == 0)
            o->mode = MODE_PUBLISH;
        else
            return fprintf(stderr, "herald-loadgen: unknown mode %s\n", argv[1]), -1;
        argc--, argv++;
    }
    while ((ch = getopt_long(argc, argv, "h", long_opts, NULL)) != -1) {
        if (ch == 'h')
            return 1;
        if (apply_opt(o, ch, optarg) < 0)
            return fprintf(stderr, "herald-loadgen: bad option %s\n", argv[optind - 1]), -1;
    }
    if (optind != argc)
        return fprintf(stderr, "herald-loadgen: unexpected argument %s\n", argv[optind]), -1;
    if (o->rate < 0)
        o->rate = o->mode == MODE_PUBLISH ? 1000 : 5000;
    if (o->mode == MODE_PUBLISH && o->topic_mode == TOPIC_UNICAST && !o->users)
        return fprintf(stderr, "herald-loadgen: unicast publishing needs --users\n"), -1;
    if (o->mode == MODE_PUBLISH && o->rate <= 0)
        return fprintf(stderr, "herald-loadgen: --rate must be positive\n"), -1;
    if (o->mode == MODE_PUBLISH && o->tls)
        return fprintf(stderr, "herald-loadgen: TLS is for subscribers (sub, hold)\n"), -1;
    if (o->ca_file && !o->tls)
        return fprintf(stderr, "herald-loadgen: --ca needs --tls or a wss:// URL\n"), -1;
    if (o->tls && o->kernel_ts)
        return fprintf(stderr, "herald-loadgen: --kernel-ts needs plain connections\n"), -1;
    return 0;
}

/* Adds the signal events and the --duration stop; returns them in evs (NULL-terminated). */
static int add_stops(struct event_base *base, const struct opts *o, event_callback_fn cb, void *arg,
                     struct event **evs)
{
    static const int sigs[] = {SIGTERM, SIGINT, SIGUSR1, SIGUSR2};
    struct timeval dur = {(time_t)o->duration, (long)((o->duration - (long)o->duration) * 1e6)};
    size_t n = 0;

    for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
        evs[n] = evsignal_new(base, sigs[i], cb, arg);
        if (!evs[n] || event_add(evs[n++], NULL) < 0)
            return -1;
    }
    if (o->duration > 0) {
        evs[n] = evtimer_new(base, cb, arg);
        if (!evs[n] || event_add(evs[n++], &dur) < 0)
            return -1;
    }
    evs[n] = NULL;
    return 0;
}

static void free_events(struct event **evs)
{
    for (; *evs; evs++)
        event_free(*evs);
}

static int run_sub(const struct opts *o, struct event_base *base)
{
    struct timeval tick = {0, TICK_MS * 1000};
    struct event *evs[8] = {NULL}, *tick_ev = NULL;
    int status = EXIT_RUNTIME;

    run.o = o;
    run.base = base;
    run.proto = proto_find(o->proto);
    if (!run.proto) {
        fprintf(stderr, "herald-loadgen: unknown --proto %s\n", o->proto);
        return EXIT_USAGE;
    }
    if (o->tls) {
        char err[512];
        run.tls = loadgen_tls_ctx(o->ca_file, err, sizeof(err));
        if (!run.tls) {
            fprintf(stderr, "herald-loadgen: %s\n", err);
            return EXIT_USAGE;
        }
    }
    run.conns = mem_calloc(o->connections ? o->connections : 1, sizeof(*run.conns));
    run.rbuf = mem_alloc(READ_BUF);
    run.t0_ms = net_now_ms();
    run.salt = splitmix64(realtime_us());
    tick_ev = event_new(base, -1, EV_PERSIST, sub_on_tick, NULL);
    if (!tick_ev || event_add(tick_ev, &tick) < 0 || add_stops(base, o, sub_on_signal, NULL, evs))
        goto out;
    start_due();
    event_base_dispatch(base);
    status = 0;
out:
    free_events(evs);
    if (tick_ev)
        event_free(tick_ev);
    sub_free();
    return status;
}

static void pub_on_stop(evutil_socket_t sig, short what, void *arg)
{
    struct pub *p = arg;

    (void)what;
    if (sig == SIGUSR1 || sig == SIGUSR2)
        return;
    p->status = EXIT_RUNTIME;
    event_base_loopbreak(p->base);
}

static int run_publish(const struct opts *o, struct event_base *base)
{
    struct timeval tick = {0, PUB_TICK_US};
    struct pub p = {.o = o, .proto = proto_find(o->proto), .base = base};
    struct event *evs[8] = {NULL}, *tick_ev = NULL;

    if (!p.proto) {
        fprintf(stderr, "herald-loadgen: unknown --proto %s\n", o->proto);
        return EXIT_USAGE;
    }
    for (unsigned i = 0; i < o->pub_conns; i++) {
        if (pub_connect(&p, i) < 0) {
            p.status = EXIT_RUNTIME;
            goto out;
        }
    }
    tick_ev = event_new(base, -1, EV_PERSIST, pub_on_tick, &p);
    if (!tick_ev || event_add(tick_ev, &tick) < 0 || add_stops(base, o, pub_on_stop, &p, evs)) {
        p.status = EXIT_RUNTIME;
        goto out;
    }
    p.t0_us = net_now_us();
    if (o->count)
        event_base_dispatch(base);
    pub_summary(&p);
out:
    free_events(evs);
    if (tick_ev)
        event_free(tick_ev);
    for (unsigned i = 0; i < o->pub_conns; i++) {
        if (p.bev[i])
            bufferevent_free(p.bev[i]);
    }
    return p.status;
}

int main(int argc, char **argv)
{
    struct opts o;
    struct event_base *base;
    int rc = parse_args(argc, argv, &o);

    if (rc != 0) {
        usage(rc > 0 ? stdout : stderr);
        return rc > 0 ? 0 : EXIT_USAGE;
    }
    signal(SIGPIPE, SIG_IGN);
    base = event_base_new();
    if (!base) {
        fprintf(stderr, "herald-loadgen: event_base_new failed\n");
        return EXIT_RUNTIME;
    }
    rc = o.mode == MODE_PUBLISH ? run_publish(&o, base) : run_sub(&o, base);
    event_base_free(base);
    return rc;
}

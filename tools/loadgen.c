/*
 * loadgen.c - herald-loadgen: WebSocket subscribers and a RESP publisher for
 * the edge benchmarks (bench/edge.sh).
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
 * once open, message -> event payload) is a `struct proto` adapter; the
 * WebSocket client framing below it is shared. Only Herald's adapter exists.
 *
 * Latency: the publisher (`publish`, pipelined RESP PUBLISH) writes a
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
#include <openssl/evp.h>
#include <openssl/sha.h>

#include "common/mem.h"
#include "common/net.h"

#define PAYLOAD_LEN   64
#define PAYLOAD_MIN   56 /* the fields' fixed width; the rest is padding */
#define MAX_SOURCES   64
#define READ_BUF      (1u << 20)
#define MAX_FRAME     (READ_BUF / 2) /* larger frames or response heads: connection error */
#define MAX_HEAD      8192
#define TICK_MS       10
#define HANDSHAKE_MS  10000
#define PUB_TICK_US   1000
#define PUB_OUT_LIMIT (4u << 20) /* bytes queued to the broker before the publisher waits */
#define HIST_BITS     5
#define HIST_SUB      (1u << HIST_BITS)
#define HIST_BUCKETS  (2 * HIST_SUB + 40 * HIST_SUB)
#define WS_GUID       "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define EXIT_RUNTIME  1
#define EXIT_USAGE    2

enum mode { MODE_SUB, MODE_HOLD, MODE_PUBLISH };

enum topic_mode { TOPIC_BROADCAST, TOPIC_UNICAST };

struct opts {
    enum mode mode;
    char host[256]; /* --url */
    int port;
    char path[256];
    struct sockaddr_in target;
    uint32_t connections;
    struct in_addr sources[MAX_SOURCES];
    unsigned nsources;
    double rate; /* sub: connects/s; publish: events/s */
    uint32_t max_pending;
    enum topic_mode topic_mode;
    const char *topic;
    uint64_t offset;
    uint64_t users;
    bool raw;
    bool kernel_ts;
    const char *proto;
    const char *hist_out;
    double duration;
    uint32_t progress_ms;
    struct sockaddr_in resp; /* publish */
    uint64_t count;
    uint32_t seed;
    unsigned pub_conns;
};

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

static bool parse_digits(const uint8_t *s, size_t n, unsigned base, uint64_t *out)
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
    if (!parse_digits(s + 2, 16, 10, &t) || !parse_digits(s + 21, 10, 10, &seq) ||
        !parse_digits(s + 34, 10, 10, &count) || !parse_digits(s + 47, 8, 16, &seed))
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

/*
 * What differs between the servers the generator talks to. A later adapter
 * (nchan: /sub/<channel>; MQTT over WebSocket: CONNECT + SUBSCRIBE packets in
 * binary frames, PUBLISH packets out) fills the same slots.
 */
struct proto {
    const char *name;
    /* Writes the request target (path and query) of connection idx; returns its length or -1. */
    int (*target)(const struct opts *o, uint64_t idx, char *buf, size_t len);
    const char *headers; /* extra request header lines, each ending "\r\n" */
    /* Writes the client frame(s) sent once open (the subscribe step); returns their length. */
    size_t (*on_open)(const struct opts *o, uint64_t idx, uint8_t *buf, size_t len);
    /*
     * Returns the event payload inside one complete message (borrowed from
     * msg) with its length, or NULL when the message is no event; sets
     * *error when it is a protocol-level error reply.
     */
    const uint8_t *(*extract)(const struct opts *o, const uint8_t *msg, size_t len, size_t *plen,
                              bool *error);
};

static int topic_of(const struct opts *o, uint64_t idx, char *buf, size_t len)
{
    if (o->topic_mode == TOPIC_UNICAST)
        return snprintf(buf, len, "user.%" PRIu64, idx + o->offset);
    return snprintf(buf, len, "%s", o->topic);
}

/* Percent-encodes everything but RFC 3986 unreserved characters and '.'. */
static size_t url_escape(const char *s, char *out, size_t len)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = 0;

    for (; *s && n + 4 < len; s++) {
        unsigned char ch = (unsigned char)*s;
        if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
            ch == '-' || ch == '_' || ch == '.' || ch == '~') {
            out[n++] = (char)ch;
            continue;
        }
        out[n++] = '%';
        out[n++] = hex[ch >> 4];
        out[n++] = hex[ch & 15];
    }
    out[n] = '\0';
    return n;
}

static int herald_target(const struct opts *o, uint64_t idx, char *buf, size_t len)
{
    char topic[512], esc[1536];
    int n;

    if (topic_of(o, idx, topic, sizeof(topic)) >= (int)sizeof(topic))
        return -1;
    url_escape(topic, esc, sizeof(esc));
    n = snprintf(buf, len, "%s?topic=%s%s", o->path, esc, o->raw ? "&format=raw" : "");
    return n < (int)len ? n : -1;
}

static size_t herald_on_open(const struct opts *o, uint64_t idx, uint8_t *buf, size_t len)
{
    (void)o, (void)idx, (void)buf, (void)len;
    return 0; /* the query string subscribed already */
}

static const uint8_t *find(const uint8_t *s, size_t len, const char *needle)
{
    const uint8_t *p = memmem(s, len, needle, strlen(needle));

    return p ? p + strlen(needle) : NULL;
}

static const uint8_t *herald_extract(const struct opts *o, const uint8_t *msg, size_t len,
                                     size_t *plen, bool *error)
{
    const uint8_t *p;

    if (o->raw) {
        *plen = len;
        return msg;
    }
    if (!find(msg, len, "\"op\":\"msg\"")) {
        *error = find(msg, len, "\"op\":\"error\"") != NULL;
        return NULL;
    }
    p = find(msg, len, "\"data\":");
    if (!p)
        return NULL;
    if (p < msg + len && *p == '"')
        p++; /* the payload is no JSON, so it came as a JSON string */
    *plen = (size_t)(msg + len - p);
    return p;
}

static const struct proto protos[] = {
    {"herald", herald_target, "", herald_on_open, herald_extract},
};

/* ------------------------------------------------------ subscriber state */

enum conn_state { CS_IDLE, CS_CONNECTING, CS_HANDSHAKE, CS_OPEN, CS_CLOSED, CS_FAILED };

struct conn {
    struct event ev; /* EV_WRITE while connecting, then EV_READ|EV_PERSIST */
    uint8_t *carry;  /* a partial response head or frame; NULL when none */
    uint32_t carry_len;
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
    uint64_t t0_ms, salt;
    uint32_t next, pending, open, opened, failed, closed;
    const char *last_error;
    unsigned window_no;
    uint64_t total_received, progress_received;
    uint32_t progress_opened;
    bool ready;
    struct window win;
} run;

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
    if (fd >= 0)
        close(fd);
    mem_free(c->carry);
    c->carry = NULL;
    c->carry_len = 0;
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
static void ws_key(uint32_t idx, char out[25])
{
    uint64_t raw[2] = {splitmix64(run.salt ^ idx), splitmix64(run.salt + idx)};

    EVP_EncodeBlock((unsigned char *)out, (const unsigned char *)raw, 16);
}

static void ws_accept(uint32_t idx, char out[29])
{
    char key[25], cat[25 + sizeof(WS_GUID)];
    unsigned char digest[SHA_DIGEST_LENGTH];

    ws_key(idx, key);
    snprintf(cat, sizeof(cat), "%s%s", key, WS_GUID);
    SHA1((const unsigned char *)cat, strlen(cat), digest);
    EVP_EncodeBlock((unsigned char *)out, digest, SHA_DIGEST_LENGTH);
}

/* Sends one masked client frame (payload <= 125 bytes); -1 when the kernel refused it. */
static int ws_send(int fd, uint8_t opcode, const uint8_t *payload, size_t len)
{
    static uint32_t mask_state = 0x2545f491u;
    uint8_t frame[2 + 4 + 125];

    if (len > 125)
        return -1;
    mask_state ^= mask_state << 13, mask_state ^= mask_state >> 17, mask_state ^= mask_state << 5;
    frame[0] = (uint8_t)(0x80 | opcode);
    frame[1] = (uint8_t)(0x80 | len);
    memcpy(frame + 2, &mask_state, 4);
    for (size_t i = 0; i < len; i++)
        frame[6 + i] = payload[i] ^ frame[2 + (i & 3)];
    return send(fd, frame, 6 + len, MSG_NOSIGNAL) == (ssize_t)(6 + len) ? 0 : -1;
}

/*
 * One server frame: returns bytes consumed, -2 when incomplete, -1 on a
 * violation (masked, RSV bits, oversize). Fills opcode and the payload view.
 */
static ssize_t ws_next(const uint8_t *p, size_t len, uint8_t *opcode, const uint8_t **payload,
                       size_t *plen)
{
    uint64_t n;
    size_t h = 2;

    if (len < 2)
        return -2;
    if ((p[0] & 0x70) || (p[1] & 0x80))
        return -1;
    n = p[1] & 0x7f;
    if (n == 126) {
        if (len < 4)
            return -2;
        n = (uint64_t)p[2] << 8 | p[3];
        h = 4;
    } else if (n == 127) {
        if (len < 10)
            return -2;
        n = 0;
        for (int i = 2; i < 10; i++)
            n = n << 8 | p[i];
        h = 10;
    }
    if (n > MAX_FRAME)
        return -1;
    if (len - h < n)
        return -2;
    *opcode = p[0] & 0x0f;
    *payload = p + h;
    *plen = (size_t)n;
    return (ssize_t)(h + n);
}

static void on_event_message(struct conn *c, const uint8_t *msg, size_t len,
                             const struct rx_time *rx)
{
    uint64_t now_us = rx->kernel_us ? rx->kernel_us : rx->app_us;
    const struct opts *o = run.o;
    struct window *w = &run.win;
    struct payload pl;
    bool error = false;
    size_t plen;
    const uint8_t *p = run.proto->extract(o, msg, len, &plen, &error);

    if (!p) {
        w->errors += error;
        return;
    }
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
    if (o->topic_mode == TOPIC_UNICAST && o->users &&
        target_user(pl.seed, pl.seq, o->users) != conn_idx(c) + o->offset)
        w->misrouted++;
}

/* Handles one frame; returns -1 when the connection ended. */
static int on_frame(struct conn *c, uint8_t opcode, const uint8_t *p, size_t len,
                    const struct rx_time *rx)
{
    int fd = event_get_fd(&c->ev);

    switch (opcode) {
    case 0x1: /* text */
    case 0x2: /* binary: a fragmented message is counted by its first frame */
        on_event_message(c, p, len, rx);
        return 0;
    case 0x9: /* ping: the server's idle timer needs the pong */
        if (ws_send(fd, 0xA, p, len) < 0) {
            conn_end(c, "pong_failed");
            return -1;
        }
        return 0;
    case 0x8:
        ws_send(fd, 0x8, p, len < 2 ? len : 2);
        conn_end(c, "server_close");
        return -1;
    default: /* continuation, pong */
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
        ssize_t n = ws_next(buf + used, len - used, &opcode, &p, &plen);

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

static bool head_accepts(uint32_t idx, const uint8_t *buf, size_t len)
{
    char head[MAX_HEAD + 1], want[29];
    const char *v;

    memcpy(head, buf, len);
    head[len] = '\0';
    if (strncmp(head, "HTTP/1.1 101", 12) != 0)
        return false;
    v = strcasestr(head, "\r\nSec-WebSocket-Accept:");
    if (!v)
        return false;
    v += strlen("\r\nSec-WebSocket-Accept:");
    v += strspn(v, " \t");
    ws_accept(idx, want);
    return strncmp(v, want, 28) == 0;
}

/* Consumes the response head; returns bytes consumed (0: incomplete) or -1 when ended. */
static ssize_t consume_head(struct conn *c, const uint8_t *buf, size_t len)
{
    uint8_t sub[512];
    const uint8_t *end = memmem(buf, len, "\r\n\r\n", 4);
    size_t head_len, n;

    if (!end) {
        if (len <= MAX_HEAD)
            return 0;
        conn_end(c, "response_head_too_big");
        return -1;
    }
    head_len = (size_t)(end - buf) + 4;
    if (head_len > MAX_HEAD || !head_accepts(conn_idx(c), buf, head_len)) {
        conn_end(c, "handshake_rejected");
        return -1;
    }
    c->state = CS_OPEN;
    run.pending--;
    run.open++;
    run.opened++;
    n = run.proto->on_open(run.o, conn_idx(c), sub, sizeof(sub));
    if (n && send(event_get_fd(&c->ev), sub, n, MSG_NOSIGNAL) != (ssize_t)n) {
        conn_end(c, "subscribe_send_failed");
        return -1;
    }
    return (ssize_t)head_len;
}

static ssize_t consume(struct conn *c, const uint8_t *buf, size_t len, const struct rx_time *rx)
{
    ssize_t head = 0, frames;

    if (c->state == CS_HANDSHAKE) {
        head = consume_head(c, buf, len);
        if (head <= 0)
            return head;
    }
    frames = consume_frames(c, buf + head, len - (size_t)head, rx);
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

static void conn_on_read(struct conn *c)
{
    uint8_t *buf = run.rbuf;
    size_t have = c->carry_len;
    struct rx_time rx = {0, 0};
    ssize_t n, used;

    if (have)
        memcpy(buf, c->carry, have);
    n = recv_stamped(event_get_fd(&c->ev), buf + have, READ_BUF - have, &rx);
    if (n <= 0) {
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return;
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

static void conn_on_connected(struct conn *c)
{
    char target[2048], key[25], req[4096];
    int fd = event_get_fd(&c->ev), err = 0, n;
    socklen_t elen = sizeof(err);

    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) < 0 || err) {
        conn_end(c, err == ECONNREFUSED ? "ECONNREFUSED" : "connect_failed");
        return;
    }
    ws_key(conn_idx(c), key);
    if (run.proto->target(run.o, conn_idx(c), target, sizeof(target)) < 0) {
        conn_end(c, "target_too_long");
        return;
    }
    n = snprintf(req, sizeof(req),
                 "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n%s\r\n",
                 target, run.o->host, run.o->port, key, run.proto->headers);
    if (n >= (int)sizeof(req) || send(fd, req, (size_t)n, MSG_NOSIGNAL) != n) {
        conn_end(c, "request_send_failed");
        return;
    }
    c->state = CS_HANDSHAKE;
}

static void conn_on_event(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;

    (void)what;
    if (c->state != CS_CONNECTING) {
        conn_on_read(c);
        return;
    }
    conn_on_connected(c);
    if (c->state != CS_HANDSHAKE)
        return;
    event_assign(&c->ev, run.base, fd, EV_READ | EV_PERSIST, conn_on_event, c);
    if (event_add(&c->ev, NULL) < 0)
        conn_end(c, "event_add_failed");
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

    if (!w->seen || (o->topic_mode == TOPIC_UNICAST && !o->users))
        return NULL;
    exp = mem_calloc(o->connections, sizeof(*exp));
    if (o->topic_mode == TOPIC_BROADCAST) {
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
        if ((c->state == CS_CONNECTING || c->state == CS_HANDSHAKE) &&
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
        printf("ready connected=%" PRIu32 " failed=%" PRIu32 "\n", run.opened, run.failed);
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
    if (sig != SIGUSR1)
        event_base_loopbreak(run.base);
}

static void sub_free(void)
{
    for (uint32_t i = 0; i < run.next; i++) {
        struct conn *c = &run.conns[i];
        if (c->state == CS_CONNECTING || c->state == CS_HANDSHAKE || c->state == CS_OPEN)
            conn_end(c, "shutdown");
    }
    mem_free(run.conns);
    mem_free(run.rbuf);
}

/* ------------------------------------------------------------- publisher */

struct pub {
    const struct opts *o;
    struct event_base *base;
    struct bufferevent *bev[16];
    uint64_t sent, replies, receivers, errors, t0_us;
    int status;
};

static void pub_summary(struct pub *p)
{
    double secs = (double)(net_now_us() - p->t0_us) / 1e6;

    printf("published=%" PRIu64 " replies=%" PRIu64 " receivers=%" PRIu64 " errors=%" PRIu64
           " rate_per_s=%.0f elapsed_s=%.3f seed=%08" PRIx32 "\n",
           p->sent, p->replies, p->receivers, p->errors, secs > 0 ? (double)p->sent / secs : 0,
           secs, p->o->seed);
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
    evbuffer_add_printf(out, "*3\r\n$7\r\nPUBLISH\r\n$%zu\r\n%s\r\n$%d\r\n", strlen(topic), topic,
                        PAYLOAD_LEN);
    evbuffer_add(out, body, PAYLOAD_LEN);
    evbuffer_add(out, "\r\n", 2);
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
}

static void pub_on_read(struct bufferevent *b, void *arg)
{
    struct pub *p = arg;
    struct evbuffer *in = bufferevent_get_input(b);
    char *line;
    size_t n;

    while ((line = evbuffer_readln(in, &n, EVBUFFER_EOL_CRLF_STRICT)) != NULL) {
        p->replies++;
        if (line[0] == ':')
            p->receivers += strtoull(line + 1, NULL, 10);
        else
            p->errors++;
        free(line); /* allocated by libevent */
    }
    if (p->replies >= p->o->count)
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
    return bufferevent_enable(p->bev[i], EV_READ);
}

/* ------------------------------------------------------------------ main */

static void usage(FILE *out)
{
    fprintf(out,
            "usage: herald-loadgen [sub|hold] [OPTIONS]    WebSocket subscribers\n"
            "       herald-loadgen publish [OPTIONS]       RESP publisher\n"
            "\n"
            "sub, hold (hold: the same, named for idle memory runs):\n"
            "  --url ws://HOST:PORT/PATH  target (default ws://127.0.0.1:8080/ws)\n"
            "  --connections N            connections to open (default 1000)\n"
            "  --source-ips A,B,...       bind outgoing sockets to these IPv4 addresses in turn\n"
            "                             (127.0.0.2,...: a port range per address)\n"
            "  --rate R                   connects per second (default 5000, 0: no cap)\n"
            "  --max-pending N            connects+handshakes in flight (default 1000)\n"
            "  --topic-mode broadcast|unicast\n"
            "                             broadcast: all on --topic; unicast: connection i on\n"
            "                             user.<i+offset> (default broadcast)\n"
            "  --topic T                  broadcast topic (default bench.all)\n"
            "  --offset K                 first user number in unicast mode (default 0)\n"
            "  --users U                  unicast user space of the publisher: enables exact\n"
            "                             per-connection expectations and misroute checks\n"
            "  --raw                      ask for format=raw (payload alone; recommended)\n"
            "  --kernel-ts                latency to the kernel's receive stamp (SO_TIMESTAMPNS)\n"
            "                             instead of to when this process read the data\n"
            "  --proto NAME               server adapter (default herald)\n"
            "  --hist-out FILE            rewrite FILE with the window's latency histogram\n"
            "                             (\"value_us count\" lines) at each summary\n"
            "  --duration S               exit after S seconds (default: run until SIGTERM)\n"
            "  --progress-ms MS           progress line period on stderr (default 2000)\n"
            "  stdout: \"ready connected=N failed=N\" once every connect ended; a summary line\n"
            "  per window: SIGUSR1 ends a window and starts the next, SIGTERM/SIGINT/--duration\n"
            "  end the last one: window= connected= failed= closed= received= expected= short=\n"
            "  extra= misrouted= bad= errors= lat_p50_us= lat_p99_us= lat_p999_us= lat_max_us=\n"
            "  app_lat_p50_us= app_lat_p99_us= rate_per_s= first_us= last_us= cpu_s=. stderr: "
            "progress lines.\n"
            "\n"
            "publish:\n"
            "  --resp HOST:PORT           broker RESP endpoint (default 127.0.0.1:6380)\n"
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
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *ai;

    if (net_split_hostport(s, host, hlen, port) < 0 || *port <= 0 || *port > 65535)
        return -1;
    if (getaddrinfo(host, NULL, &hints, &ai) != 0)
        return -1;
    memcpy(sa, ai->ai_addr, sizeof(*sa));
    sa->sin_port = htons((uint16_t)*port);
    freeaddrinfo(ai);
    return 0;
}

static int parse_url(const char *url, struct opts *o)
{
    char hostport[300];
    const char *rest, *slash;
    size_t n;

    if (strncmp(url, "ws://", 5) != 0)
        return -1;
    rest = url + 5;
    slash = strchr(rest, '/');
    n = slash ? (size_t)(slash - rest) : strlen(rest);
    if (n == 0 || n >= sizeof(hostport) || strlen(slash ? slash : "/") >= sizeof(o->path))
        return -1;
    memcpy(hostport, rest, n);
    hostport[n] = '\0';
    if (!strchr(hostport, ':'))
        strcat(hostport, ":80");
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
    {"count", required_argument, NULL, 'c'},
    {"seed", required_argument, NULL, 's'},
    {"conns", required_argument, NULL, 'C'},
    {"progress-ms", required_argument, NULL, 'g'},
    {"kernel-ts", no_argument, NULL, 'k'},
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
        o->topic_mode = strcmp(arg, "unicast") == 0 ? TOPIC_UNICAST : TOPIC_BROADCAST;
        return strcmp(arg, "unicast") && strcmp(arg, "broadcast") ? -1 : 0;
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
    return 0;
}

/* Adds the signal events and the --duration stop; returns them in evs (NULL-terminated). */
static int add_stops(struct event_base *base, const struct opts *o, event_callback_fn cb, void *arg,
                     struct event **evs)
{
    static const int sigs[] = {SIGTERM, SIGINT, SIGUSR1};
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
    for (size_t i = 0; i < sizeof(protos) / sizeof(protos[0]); i++)
        run.proto = strcmp(protos[i].name, o->proto) == 0 ? &protos[i] : run.proto;
    if (!run.proto) {
        fprintf(stderr, "herald-loadgen: unknown --proto %s\n", o->proto);
        return EXIT_USAGE;
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
    if (sig == SIGUSR1)
        return;
    p->status = EXIT_RUNTIME;
    event_base_loopbreak(p->base);
}

static int run_publish(const struct opts *o, struct event_base *base)
{
    struct timeval tick = {0, PUB_TICK_US};
    struct pub p = {.o = o, .base = base};
    struct event *evs[8] = {NULL}, *tick_ev = NULL;

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

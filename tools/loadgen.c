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
 * means, how to publish and read replies) is a `struct proto` adapter: herald,
 * nchan (WebSocket + HTTP POST), mqtt (MQTT 3.1.1 over WebSocket + TCP) and
 * resp (redis-server, plain TCP). The WebSocket client framing and the
 * accounting below it are shared. MQTT packets may straddle frames, so their
 * stream is joined per connection in a second `stream` carry, again kept only
 * while a unit is partial.
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
#include <arpa/inet.h>
#include <ctype.h>
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
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/event_struct.h>

#include "common/mem.h"
#include "common/net.h"
#include "common/ws/ws_frame.h"
#include "common/ws/ws_key.h"

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
#define EXIT_RUNTIME  1
#define EXIT_USAGE    2

enum mode { MODE_SUB, MODE_HOLD, MODE_PUBLISH };

/* TOPIC_BOTH (bench/scale.sh): --topic and user.<i+offset> on every connection. */
enum topic_mode { TOPIC_BROADCAST, TOPIC_UNICAST, TOPIC_BOTH };

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

/* What one unit of a server's stream means to the accounting. */
enum unit_kind {
    UNIT_OTHER, /* of no interest: a CONNACK, a reply to a ping */
    UNIT_EVENT, /* carries an event payload */
    UNIT_ACK,   /* acknowledges the subscribe step */
    UNIT_ERROR, /* a protocol-level error reply */
};

/* What came back to a publisher. */
struct pub_tally {
    uint64_t replies, receivers, errors, pongs;
};

/*
 * What differs between the servers the generator talks to. A subscriber's
 * unit is one WebSocket message (cut == NULL: Herald, nchan), or one packet
 * cut from a byte stream: the WebSocket payloads joined (MQTT, which may
 * split or join packets across frames) or the TCP stream itself (RESP,
 * websocket false). The publisher side writes events and reads replies on
 * plain TCP connections to --resp.
 */
struct proto {
    const char *name;
    bool websocket;
    /* Writes the request target (path and query) of connection idx; returns its length or -1. */
    int (*target)(const struct opts *o, uint64_t idx, char *buf, size_t len);
    const char *headers;     /* extra request header lines, each ending "\r\n" */
    const char *subprotocol; /* the Sec-WebSocket-Protocol the reply must echo; NULL: none */
    /* Writes the bytes sent once open (the subscribe step, framed); returns their length. */
    size_t (*on_open)(const struct opts *o, uint64_t idx, uint8_t *buf, size_t len);
    bool acks; /* on_open is answered by a UNIT_ACK; the connection counts as open from it */
    /* The length of the first complete unit of s, 0 when incomplete, -1 on a violation. */
    ssize_t (*cut)(const uint8_t *s, size_t len);
    /* Classifies one complete unit; for an event, *payload (borrowed from msg) and *plen. */
    enum unit_kind (*classify)(const struct opts *o, const uint8_t *msg, size_t len,
                               const uint8_t **payload, size_t *plen);
    /* Publisher: what opens connection conn (NULL: nothing). */
    void (*pub_hello)(const struct opts *o, unsigned conn, struct evbuffer *out);
    /* Publisher: one event of PAYLOAD_LEN bytes body on topic. */
    void (*pub_event)(const char *topic, const char *body, struct evbuffer *out);
    /* Publisher: sent after the last event when no per-event reply exists; its answer (a pong) ends
     * the run. */
    void (*pub_bye)(struct evbuffer *out);
    /* Publisher: consumes the complete replies in in; returns -1 on garbage. */
    int (*pub_read)(struct evbuffer *in, struct pub_tally *t);
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

static const uint8_t *find(const uint8_t *s, size_t len, const char *needle)
{
    const uint8_t *p = memmem(s, len, needle, strlen(needle));

    return p ? p + strlen(needle) : NULL;
}

/* The --url path as is (mosquitto ignores it). */
static int path_target(const struct opts *o, uint64_t idx, char *buf, size_t len)
{
    (void)idx;
    return snprintf(buf, len, "%s", o->path) < (int)len ? (int)strlen(buf) : -1;
}

static size_t no_open(const struct opts *o, uint64_t idx, uint8_t *buf, size_t len)
{
    (void)o, (void)idx, (void)buf, (void)len;
    return 0;
}

/*
 * Writes one masked client frame around payload into out; returns its length
 * (0 when it does not fit). The masks come from a xorshift generator: they
 * only have to vary, and RAND_bytes per frame would cost more than the frame.
 */
static size_t ws_frame_build(uint8_t opcode, const uint8_t *payload, size_t len, uint8_t *out,
                             size_t cap)
{
    static uint32_t mask_state = 0x2545f491u;
    uint8_t mask[4];

    mask_state ^= mask_state << 13, mask_state ^= mask_state >> 17, mask_state ^= mask_state << 5;
    memcpy(mask, &mask_state, sizeof(mask));
    return ws_frame_encode_masked(out, cap, opcode, payload, len, mask);
}

/* RESP: Herald's broker and redis-server take the same PUBLISH. */
static void resp_pub_event(const char *topic, const char *body, struct evbuffer *out)
{
    evbuffer_add_printf(out, "*3\r\n$7\r\nPUBLISH\r\n$%zu\r\n%s\r\n$%d\r\n", strlen(topic), topic,
                        PAYLOAD_LEN);
    evbuffer_add(out, body, PAYLOAD_LEN);
    evbuffer_add(out, "\r\n", 2);
}

/* Replies to PUBLISH: ":<receivers>" lines; anything else is an error. */
static int resp_pub_read(struct evbuffer *in, struct pub_tally *t)
{
    char *line;
    size_t n;

    while ((line = evbuffer_readln(in, &n, EVBUFFER_EOL_CRLF_STRICT)) != NULL) {
        t->replies++;
        if (line[0] == ':')
            t->receivers += strtoull(line + 1, NULL, 10);
        else
            t->errors++;
        free(line); /* allocated by libevent */
    }
    return evbuffer_get_length(in) > MAX_HEAD ? -1 : 0;
}

/* ---- Herald: /ws?topic=<t>[&format=raw]; JSON envelopes unless raw */

/*
 * Topic mode both (bench/scale.sh): "?topic=<topic>&topic=user.<idx+offset>",
 * two subscriptions per connection, so one connection set serves a
 * broadcast phase and then a unicast phase (SIGUSR2 switches the counting).
 */
static int herald_target_both(const struct opts *o, uint64_t idx, char *buf, size_t len)
{
    char esc[1536];
    int n;

    url_escape(o->topic, esc, sizeof(esc));
    n = snprintf(buf, len, "%s?topic=%s&topic=user.%" PRIu64 "%s", o->path, esc, idx + o->offset,
                 o->raw ? "&format=raw" : "");
    return n < (int)len ? n : -1;
}

static int herald_target(const struct opts *o, uint64_t idx, char *buf, size_t len)
{
    char topic[512], esc[1536];
    int n;

    if (o->topic_mode == TOPIC_BOTH)
        return herald_target_both(o, idx, buf, len);
    if (topic_of(o, idx, topic, sizeof(topic)) >= (int)sizeof(topic))
        return -1;
    url_escape(topic, esc, sizeof(esc));
    n = snprintf(buf, len, "%s?topic=%s%s", o->path, esc, o->raw ? "&format=raw" : "");
    return n < (int)len ? n : -1;
}

static enum unit_kind herald_classify(const struct opts *o, const uint8_t *msg, size_t len,
                                      const uint8_t **payload, size_t *plen)
{
    const uint8_t *p;

    if (o->raw) {
        *payload = msg;
        *plen = len;
        return UNIT_EVENT;
    }
    if (!find(msg, len, "\"op\":\"msg\""))
        return find(msg, len, "\"op\":\"error\"") ? UNIT_ERROR : UNIT_OTHER;
    p = find(msg, len, "\"data\":");
    if (!p)
        return UNIT_OTHER;
    if (p < msg + len && *p == '"')
        p++; /* the payload is no JSON, so it came as a JSON string */
    *payload = p;
    *plen = (size_t)(msg + len - p);
    return UNIT_EVENT;
}

/* ---- nchan: WebSocket /sub/<chan>, a frame is the body of one POST /pub/<chan> */

/* nchan channel ids are \w+ (nginx-nchan.conf): any other character becomes '_'. */
static void nchan_channel(const char *topic, char *out, size_t len)
{
    size_t n = 0;

    for (; *topic && n + 1 < len; topic++) {
        unsigned char ch = (unsigned char)*topic;
        out[n++] = isalnum(ch) || ch == '_' ? (char)ch : '_';
    }
    out[n] = '\0';
}

static int nchan_target(const struct opts *o, uint64_t idx, char *buf, size_t len)
{
    char topic[512], chan[512];
    size_t plen = strlen(o->path);
    int n;

    if (topic_of(o, idx, topic, sizeof(topic)) >= (int)sizeof(topic))
        return -1;
    nchan_channel(topic, chan, sizeof(chan));
    n = snprintf(buf, len, "%s%s%s", o->path, plen && o->path[plen - 1] == '/' ? "" : "/", chan);
    return n < (int)len ? n : -1;
}

static enum unit_kind nchan_classify(const struct opts *o, const uint8_t *msg, size_t len,
                                     const uint8_t **payload, size_t *plen)
{
    (void)o;
    *payload = msg; /* text or binary by the POST's Content-Type: the body as is */
    *plen = len;
    return UNIT_EVENT;
}

/* No Content-Type: nchan then sends a text frame (the payload is ASCII). */
static void nchan_pub_event(const char *topic, const char *body, struct evbuffer *out)
{
    char chan[512];

    nchan_channel(topic, chan, sizeof(chan));
    evbuffer_add_printf(out,
                        "POST /pub/%s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: %d\r\n\r\n",
                        chan, PAYLOAD_LEN);
    evbuffer_add(out, body, PAYLOAD_LEN);
}

/* One HTTP response in s (NUL-terminated copy); returns its length, 0 if incomplete, -1. */
static long http_response(const char *s, size_t len, struct pub_tally *t)
{
    const char *end = strstr(s, "\r\n\r\n"), *v;
    unsigned long clen = 0;
    size_t head;

    if (!end)
        return len >= 2048 ? -1 : 0;
    head = (size_t)(end - s) + 4;
    v = strcasestr(s, "\r\nContent-Length:");
    if (v && v < end)
        clen = strtoul(v + strlen("\r\nContent-Length:"), NULL, 10);
    if (head + clen > 2048)
        return -1;
    if (head + clen > len)
        return 0;
    t->replies++;
    /* 201: at least one subscriber; 202: none (stored for nchan_message_timeout) */
    if (strncmp(s, "HTTP/1.1 201", 12) != 0 && strncmp(s, "HTTP/1.1 202", 12) != 0)
        t->errors++;
    v = strstr(end, "active subscribers: ");
    if (v && v < s + head + clen)
        t->receivers += strtoull(v + strlen("active subscribers: "), NULL, 10);
    return (long)(head + clen);
}

static int nchan_pub_read(struct evbuffer *in, struct pub_tally *t)
{
    char buf[2049];
    long n;

    for (;;) {
        ev_ssize_t got = evbuffer_copyout(in, buf, sizeof(buf) - 1);
        if (got <= 0)
            return 0;
        buf[got] = '\0';
        n = http_response(buf, (size_t)got, t);
        if (n <= 0)
            return (int)n;
        evbuffer_drain(in, (size_t)n);
    }
}

/* ---- MQTT 3.1.1: over WebSocket (subprotocol mqtt) to subscribe, plain TCP to publish */

static size_t mqtt_varint(size_t v, uint8_t *out)
{
    size_t n = 0;

    do {
        uint8_t b = (uint8_t)(v & 0x7f);
        v >>= 7;
        out[n++] = (uint8_t)(b | (v ? 0x80 : 0));
    } while (v);
    return n;
}

/* CONNECT: clean session, keepalive 0 (off: no PINGREQ needed while idle). */
static size_t mqtt_connect(const char *id, uint8_t *out)
{
    size_t idlen = strlen(id), n = 0;

    out[n++] = 0x10;
    n += mqtt_varint(12 + idlen, out + n);
    memcpy(out + n, "\0\4MQTT\4\2\0\0", 10); /* name, level 4, flags, keepalive */
    n += 10;
    out[n++] = (uint8_t)(idlen >> 8);
    out[n++] = (uint8_t)idlen;
    memcpy(out + n, id, idlen);
    return n + idlen;
}

/* SUBSCRIBE packet id 1, one filter, QoS 0. */
static size_t mqtt_subscribe(const char *topic, uint8_t *out)
{
    size_t tl = strlen(topic), n = 0;

    out[n++] = 0x82;
    n += mqtt_varint(2 + 2 + tl + 1, out + n);
    out[n++] = 0;
    out[n++] = 1;
    out[n++] = (uint8_t)(tl >> 8);
    out[n++] = (uint8_t)tl;
    memcpy(out + n, topic, tl);
    n += tl;
    out[n++] = 0;
    return n;
}

/* CONNECT and SUBSCRIBE in one binary frame; client ids unique per process and connection. */
static size_t mqtt_on_open(const struct opts *o, uint64_t idx, uint8_t *buf, size_t len)
{
    char id[64], topic[256];
    uint8_t pkt[600];
    size_t n;

    snprintf(id, sizeof(id), "lg%d-%" PRIu64, (int)getpid(), idx);
    if (topic_of(o, idx, topic, sizeof(topic)) >= (int)sizeof(topic))
        return 0;
    n = mqtt_connect(id, pkt);
    n += mqtt_subscribe(topic, pkt + n);
    return ws_frame_build(WS_OP_BINARY, pkt, n, buf, len);
}

/*
 * The whole length of the packet starting at s (type byte, remaining length
 * in 1-4 bytes of 7 bits, least significant first, then that many bytes):
 * 0 when the length bytes are incomplete, -1 when invalid.
 */
static ssize_t mqtt_packet_len(const uint8_t *s, size_t len)
{
    size_t rem = 0, i;

    for (i = 1;; i++) {
        if (i == 5)
            return -1;
        if (i >= len)
            return 0;
        rem |= (size_t)(s[i] & 0x7f) << (7 * (i - 1));
        if (!(s[i] & 0x80))
            break;
    }
    return rem > MAX_FRAME ? -1 : (ssize_t)(i + 1 + rem);
}

static ssize_t mqtt_cut(const uint8_t *s, size_t len)
{
    ssize_t n = mqtt_packet_len(s, len);

    return n > 0 && (size_t)n > len ? 0 : n;
}

static enum unit_kind mqtt_classify(const struct opts *o, const uint8_t *m, size_t len,
                                    const uint8_t **payload, size_t *plen)
{
    size_t h = 1, off;

    (void)o;
    while (m[h] & 0x80) /* mqtt_cut() checked the varint */
        h++;
    h++;
    switch (m[0] >> 4) {
    case 3: /* PUBLISH: topic, a packet id only at QoS > 0, then the payload */
        if (len < h + 2)
            return UNIT_ERROR;
        off = h + 2 + ((size_t)m[h] << 8 | m[h + 1]) + ((m[0] >> 1) & 3 ? 2 : 0);
        if (off > len)
            return UNIT_ERROR;
        *payload = m + off;
        *plen = len - off;
        return UNIT_EVENT;
    case 2: /* CONNACK: return code 0 is accepted */
        return len >= h + 2 && m[h + 1] == 0 ? UNIT_OTHER : UNIT_ERROR;
    case 9: /* SUBACK: 0x80 is a refused filter */
        return len >= h + 3 && m[h + 2] != 0x80 ? UNIT_ACK : UNIT_ERROR;
    default:
        return UNIT_OTHER;
    }
}

static void mqtt_pub_hello(const struct opts *o, unsigned conn, struct evbuffer *out)
{
    char id[64];
    uint8_t pkt[128];

    snprintf(id, sizeof(id), "lgpub%d-%u-%08" PRIx32, (int)getpid(), conn, o->seed);
    evbuffer_add(out, pkt, mqtt_connect(id, pkt));
}

/* QoS 0: no reply; the run ends at the PINGRESP to pub_bye's PINGREQ, which comes in order. */
static void mqtt_pub_event(const char *topic, const char *body, struct evbuffer *out)
{
    uint8_t pkt[600];
    size_t tl = strlen(topic), n = 0;

    if (tl > 500)
        return;
    pkt[n++] = 0x30;
    n += mqtt_varint(2 + tl + PAYLOAD_LEN, pkt + n);
    pkt[n++] = (uint8_t)(tl >> 8);
    pkt[n++] = (uint8_t)tl;
    memcpy(pkt + n, topic, tl);
    n += tl;
    memcpy(pkt + n, body, PAYLOAD_LEN);
    evbuffer_add(out, pkt, n + PAYLOAD_LEN);
}

static void mqtt_pub_bye(struct evbuffer *out)
{
    evbuffer_add(out, "\xc0\x00", 2);
}

static int mqtt_pub_read(struct evbuffer *in, struct pub_tally *t)
{
    uint8_t head[5];

    for (;;) {
        ev_ssize_t got = evbuffer_copyout(in, head, sizeof(head));
        ssize_t n = got > 0 ? mqtt_packet_len(head, (size_t)got) : 0;

        if (n <= 0 || evbuffer_get_length(in) < (size_t)n)
            return n < 0 ? -1 : 0;
        if (head[0] == 0xd0)
            t->pongs++;
        else if (head[0] != 0x20 || n != 4 || head[3] != 0)
            t->errors++; /* a refused CONNACK, or nothing a QoS 0 publisher expects */
        evbuffer_drain(in, (size_t)n);
    }
}

/* ---- RESP (redis-server): plain TCP, SUBSCRIBE <topic>, "message" arrays */

static size_t resp_on_open(const struct opts *o, uint64_t idx, uint8_t *buf, size_t len)
{
    char topic[256];
    int n;

    if (topic_of(o, idx, topic, sizeof(topic)) >= (int)sizeof(topic))
        return 0;
    n = snprintf((char *)buf, len, "*2\r\n$9\r\nSUBSCRIBE\r\n$%zu\r\n%s\r\n", strlen(topic), topic);
    return n > 0 && n < (int)len ? (size_t)n : 0;
}

/* One RESP value (arrays nest at most 4 deep): consumed bytes, 0 incomplete, -1. */
static ssize_t resp_value(const uint8_t *s, size_t len, unsigned depth)
{
    const uint8_t *e = len ? memmem(s, len, "\r\n", 2) : NULL;
    size_t h, used;
    uint64_t n;

    if (!e)
        return len > MAX_HEAD ? -1 : 0;
    h = (size_t)(e - s) + 2;
    if (s[0] == '+' || s[0] == '-' || s[0] == ':' || ((s[0] == '$' || s[0] == '*') && s[1] == '-'))
        return (ssize_t)h;
    if ((s[0] != '$' && s[0] != '*') || !parse_digits(s + 1, h - 3, 10, &n) || n > MAX_FRAME)
        return -1;
    if (s[0] == '$')
        return len >= h + n + 2 ? (ssize_t)(h + n + 2) : 0;
    if (depth == 4)
        return -1;
    for (used = h; n; n--) {
        ssize_t k = resp_value(s + used, len - used, depth + 1);
        if (k <= 0)
            return k;
        used += (size_t)k;
    }
    return (ssize_t)used;
}

static ssize_t resp_cut(const uint8_t *s, size_t len)
{
    return resp_value(s, len, 0);
}

/* The bulk string at *off of a complete value; moves *off past it. NULL: none there. */
static const uint8_t *resp_bulk(const uint8_t *s, size_t len, size_t *off, size_t *n)
{
    const uint8_t *e;
    uint64_t v;

    if (*off >= len || s[*off] != '$')
        return NULL;
    e = memmem(s + *off, len - *off, "\r\n", 2);
    if (!e || !parse_digits(s + *off + 1, (size_t)(e - s) - *off - 1, 10, &v) ||
        (size_t)(e - s) + 2 + v + 2 > len)
        return NULL;
    *n = (size_t)v;
    *off = (size_t)(e - s) + 2 + v + 2;
    return e + 2;
}

static enum unit_kind resp_classify(const struct opts *o, const uint8_t *m, size_t len,
                                    const uint8_t **payload, size_t *plen)
{
    size_t off = 4, n;
    const uint8_t *kind;

    (void)o;
    if (m[0] == '-')
        return UNIT_ERROR;
    if (len < 4 || memcmp(m, "*3\r\n", 4) != 0)
        return UNIT_OTHER;
    kind = resp_bulk(m, len, &off, &n);
    if (kind && n == 9 && memcmp(kind, "subscribe", 9) == 0)
        return UNIT_ACK;
    if (!kind || n != 7 || memcmp(kind, "message", 7) != 0)
        return UNIT_OTHER;
    if (!resp_bulk(m, len, &off, &n)) /* the channel */
        return UNIT_ERROR;
    *payload = resp_bulk(m, len, &off, plen);
    return *payload ? UNIT_EVENT : UNIT_ERROR;
}

static const struct proto protos[] = {
    {"herald", true, herald_target, "", NULL, no_open, false, NULL, herald_classify, NULL,
     resp_pub_event, NULL, resp_pub_read},
    {"nchan", true, nchan_target, "", NULL, no_open, false, NULL, nchan_classify, NULL,
     nchan_pub_event, NULL, nchan_pub_read},
    {"mqtt", true, path_target, "Sec-WebSocket-Protocol: mqtt\r\n", "mqtt", mqtt_on_open, true,
     mqtt_cut, mqtt_classify, mqtt_pub_hello, mqtt_pub_event, mqtt_pub_bye, mqtt_pub_read},
    {"resp", false, NULL, "", NULL, resp_on_open, true, resp_cut, resp_classify, NULL,
     resp_pub_event, NULL, resp_pub_read},
};

static const struct proto *proto_find(const char *name)
{
    for (size_t i = 0; i < sizeof(protos) / sizeof(protos[0]); i++) {
        if (strcmp(protos[i].name, name) == 0)
            return &protos[i];
    }
    return NULL;
}

/* ------------------------------------------------------ subscriber state */

/* CS_SUBSCRIBING: transport up, the subscribe step's ack (proto acks) not yet in. */
enum conn_state {
    CS_IDLE,
    CS_CONNECTING,
    CS_HANDSHAKE,
    CS_SUBSCRIBING,
    CS_OPEN,
    CS_CLOSED,
    CS_FAILED
};

struct conn {
    struct event ev; /* EV_WRITE while connecting, then EV_READ|EV_PERSIST */
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

static void ws_accept(uint32_t idx, char out[WS_ACCEPT_LEN + 1])
{
    char key[WS_KEY_LEN + 1];

    ws_key(idx, key);
    ws_accept_key(key, strlen(key), out);
}

/* Sends one masked client frame (payload <= 125 bytes); -1 when the kernel refused it. */
static int ws_send(int fd, uint8_t opcode, const uint8_t *payload, size_t len)
{
    uint8_t frame[2 + 4 + WS_CTRL_MAX];
    size_t n = len <= WS_CTRL_MAX ? ws_frame_build(opcode, payload, len, frame, sizeof(frame)) : 0;

    return n && send(fd, frame, n, MSG_NOSIGNAL) == (ssize_t)n ? 0 : -1;
}

/*
 * One server frame: returns bytes consumed, -2 when incomplete, -1 on a
 * violation (common/ws/ws_frame.h: masked, RSV bits, a reserved opcode, a
 * bad control frame, over MAX_FRAME). Fills opcode and the payload view.
 */
static ssize_t ws_next(const uint8_t *p, size_t len, uint8_t *opcode, const uint8_t **payload,
                       size_t *plen)
{
    struct ws_frame_header h;
    const char *err;
    uint16_t code;
    ssize_t hl = ws_frame_parse_server_header(p, len, MAX_FRAME, &h, &code, &err);

    if (hl < 0)
        return hl;
    if (len - (size_t)hl < h.payload_len)
        return -2;
    *opcode = h.opcode;
    *payload = p + hl;
    *plen = (size_t)h.payload_len;
    return hl + (ssize_t)h.payload_len;
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
        if (ws_send(fd, WS_OP_PONG, p, len) < 0) {
            conn_end(c, "pong_failed");
            return -1;
        }
        return 0;
    case WS_OP_CLOSE:
        ws_send(fd, WS_OP_CLOSE, p, len < 2 ? len : 2);
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
    char head[MAX_HEAD + 1], want[WS_ACCEPT_LEN + 1];
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
    if (strncmp(v, want, WS_ACCEPT_LEN) != 0)
        return false;
    if (!run.proto->subprotocol)
        return true;
    /* mosquitto answers 101 without it too, then never answers CONNECT */
    v = strcasestr(head, "\r\nSec-WebSocket-Protocol:");
    if (!v)
        return false;
    v += strlen("\r\nSec-WebSocket-Protocol:");
    v += strspn(v, " \t");
    return strncasecmp(v, run.proto->subprotocol, strlen(run.proto->subprotocol)) == 0;
}

/*
 * The subscribe step once the transport is up: sends on_open's bytes; the
 * connection is open at once, or at the ack when the proto has one. Returns
 * -1 when the connection ended.
 */
static int conn_subscribe(struct conn *c)
{
    uint8_t sub[512];
    size_t n = run.proto->on_open(run.o, conn_idx(c), sub, sizeof(sub));

    if (n && send(event_get_fd(&c->ev), sub, n, MSG_NOSIGNAL) != (ssize_t)n) {
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
    size_t head_len;

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
    char target[2048], key[WS_KEY_LEN + 1], req[4096];
    int fd = event_get_fd(&c->ev), err = 0, n;
    socklen_t elen = sizeof(err);

    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) < 0 || err) {
        conn_end(c, err == ECONNREFUSED ? "ECONNREFUSED" : "connect_failed");
        return;
    }
    if (!run.proto->websocket) {
        conn_subscribe(c);
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
    if (c->state == CS_FAILED || c->state == CS_CLOSED)
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
        if ((c->state == CS_CONNECTING || c->state == CS_HANDSHAKE || c->state == CS_SUBSCRIBING) &&
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
    if (sig == SIGUSR2)
        run.both_unicast = true;
    else if (sig != SIGUSR1)
        event_base_loopbreak(run.base);
}

static void sub_free(void)
{
    for (uint32_t i = 0; i < run.next; i++) {
        struct conn *c = &run.conns[i];
        if (c->state == CS_CONNECTING || c->state == CS_HANDSHAKE || c->state == CS_SUBSCRIBING ||
            c->state == CS_OPEN)
            conn_end(c, "shutdown");
    }
    mem_free(run.conns);
    mem_free(run.rbuf);
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
        "                             for --proto resp)\n"
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
        "                             instead of to when this process read the data\n"
        "  --hist-out FILE            rewrite FILE with the window's latency histogram\n"
        "                             (\"value_us count\" lines) at each summary\n"
        "  --duration S               exit after S seconds (default: run until SIGTERM)\n"
        "  --progress-ms MS           progress line period on stderr (default 2000)\n"
        "  stdout: \"ready connected=N failed=N\" once every connect ended; a summary line\n"
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

static int parse_url(const char *url, struct opts *o)
{
    char hostport[300];
    const char *rest, *slash;
    size_t n;

    if (strncmp(url, "ws://", 5) != 0 && strncmp(url, "tcp://", 6) != 0)
        return -1;
    rest = url + (url[0] == 'w' ? 5 : 6);
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
    {"to", required_argument, NULL, 'e'},
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

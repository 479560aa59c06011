#ifndef HERALD_TOOLS_LOADGEN_H
#define HERALD_TOOLS_LOADGEN_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <openssl/types.h>

struct evbuffer;

/*
 * herald-loadgen's internals, shared by its driver (loadgen.c), its
 * WebSocket client (loadgen_ws.c) and its protocol adapters
 * (loadgen_herald.c, loadgen_nchan.c, loadgen_mqtt.c, loadgen_resp.c) and
 * its transport (loadgen_tls.c: plain sockets or TLS).
 * Not a library: one program's files.
 */

#define PAYLOAD_LEN 64
#define MAX_SOURCES 64
#define READ_BUF    (1u << 20)
#define MAX_FRAME   (READ_BUF / 2) /* larger frames or response heads: connection error */
#define MAX_HEAD    8192

enum mode { MODE_SUB, MODE_HOLD, MODE_PUBLISH };

/* TOPIC_BOTH (bench/scale.sh): --topic and user.<i+offset> on every connection. */
enum topic_mode { TOPIC_BROADCAST, TOPIC_UNICAST, TOPIC_BOTH };

struct opts {
    enum mode mode;
    char host[256]; /* --url */
    int port;
    char path[256];
    bool tls;            /* wss:// or --tls: subscribers speak TLS */
    const char *ca_file; /* --ca: verify the server against it; NULL: verify nothing */
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
    /* Writes the bytes sent once open (the subscribe step, framed); returns their length. NULL:
     * nothing is sent. */
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

/* The protocol adapters, one file each. */
extern const struct proto loadgen_herald; /* loadgen_herald.c: Herald's edge */
extern const struct proto loadgen_nchan;  /* loadgen_nchan.c: nginx + nchan */
extern const struct proto loadgen_mqtt;   /* loadgen_mqtt.c: MQTT 3.1.1 (mosquitto) */
extern const struct proto loadgen_resp;   /* loadgen_resp.c: redis-server */

/* loadgen.c: the topic connection idx subscribes to (--topic or user.<idx+offset>), as snprintf. */
int loadgen_topic(const struct opts *o, uint64_t idx, char *buf, size_t len);

/* loadgen.c: s[0..n) as digits of base 10 or 16 (lower case) into *out; false on any other byte. */
bool loadgen_parse_digits(const uint8_t *s, size_t n, unsigned base, uint64_t *out);

/*
 * loadgen_ws.c: writes one masked client frame around payload into out;
 * returns its length (0 when it does not fit).
 */
size_t loadgen_ws_frame(uint8_t opcode, const uint8_t *payload, size_t len, uint8_t *out,
                        size_t cap);

/*
 * loadgen_ws.c: sends one masked client frame (payload <= 125 bytes) on fd,
 * through ssl when not NULL; -1 when refused.
 */
int loadgen_ws_send(int fd, SSL *ssl, uint8_t opcode, const uint8_t *payload, size_t len);

/*
 * loadgen_ws.c: one server frame at p: returns bytes consumed, -2 when
 * incomplete, -1 on a violation. Fills opcode and the payload view.
 */
ssize_t loadgen_ws_next(const uint8_t *p, size_t len, uint8_t *opcode, const uint8_t **payload,
                        size_t *plen);

/*
 * loadgen_ws.c: writes the upgrade request for target on host:port with
 * key and the extra header lines into buf; returns its length, or -1
 * when it does not fit.
 */
int loadgen_ws_request(char *buf, size_t cap, const char *target, const char *host, int port,
                       const char *key, const char *headers);

/*
 * loadgen_ws.c: true when the response head buf[0..len) (len <= MAX_HEAD)
 * is a 101 with the Accept of key and, when subprotocol is not NULL, that
 * Sec-WebSocket-Protocol.
 */
bool loadgen_ws_head_accepts(const uint8_t *buf, size_t len, const char *key,
                             const char *subprotocol);

/*
 * loadgen_tls.c: the run's client context: verifies the server against
 * ca_file, or nothing when it is NULL (benchmarks). NULL with err.
 */
SSL_CTX *loadgen_tls_ctx(const char *ca_file, char *err, size_t errlen);

/*
 * loadgen_tls.c: a new client object over the connected socket fd (which
 * stays the caller's) for host: SNI when host is a name; when ctx verifies,
 * the certificate must name host. NULL on failure. Release with
 * loadgen_tls_free().
 */
SSL *loadgen_tls_new(SSL_CTX *ctx, int fd, const char *host);

/*
 * loadgen_tls.c: advances the handshake. Returns 1 when done, 0 when it
 * must be called again once the socket is readable (*want_write false) or
 * writable (true), -1 when it failed, -2 when the certificate did not
 * verify; on failure the reason goes to detail.
 */
int loadgen_tls_handshake(SSL *ssl, bool *want_write, char *detail, size_t dlen);

/*
 * loadgen_tls.c: decrypted bytes into buf: their count, 0 at the peer's end
 * (close_notify or EOF), -2 when none are complete yet (a partial record, or
 * a post-handshake message such as a session ticket), -1 on an error.
 */
ssize_t loadgen_tls_read(SSL *ssl, void *buf, size_t len);

/* loadgen_tls.c: sends all of buf on fd, or through ssl when not NULL; 0, or -1 when short. */
int loadgen_send(int fd, SSL *ssl, const void *buf, size_t len);

/* loadgen_tls.c: sends close_notify if it can, without waiting, and frees ssl (NULL: nothing). */
void loadgen_tls_free(SSL *ssl);

/* loadgen_resp.c: one RESP PUBLISH of the PAYLOAD_LEN bytes body (Herald's broker, redis). */
void loadgen_resp_pub_event(const char *topic, const char *body, struct evbuffer *out);

/* loadgen_resp.c: counts the replies to PUBLISH in in; -1 on garbage. */
int loadgen_resp_pub_read(struct evbuffer *in, struct pub_tally *t);

#endif

#ifndef HERALD_EDGE_CLIENT_H
#define HERALD_EDGE_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/event_struct.h>

#include "common/ptrset.h"
#include "common/sink.h"

/*
 * One client connection on the edge port: the HTTP request head, then a
 * WebSocket (RFC 6455) carrying the JSON ops of docs/protocol.md §3. The
 * struct is public only so the unit test can assert its
 * size and the worker's sweep can read its timestamps; everything else
 * goes through the functions below.
 */

struct auth_grant;
struct chunk;
struct evbuffer;
struct ssl_st;
struct frame;
struct trie_node;
struct hub;

enum client_state {
    CLIENT_HANDSHAKE, /* reading the HTTP request head */
    CLIENT_OPEN,      /* WebSocket open */
    CLIENT_CLOSING,   /* flushing the last output, then lingering until EOF or the cap */
    CLIENT_CLOSED,    /* socket closed; on the worker's close list */
};

/* c->sink.form: the encoding of events this client receives */
enum client_form {
    CLIENT_FORM_JSON = 0, /* the JSON envelope (docs/protocol.md) */
    CLIENT_FORM_RAW = 1,  /* ?format=raw: payloads alone */
};

/* c->flags bits */
#define CLIENT_F_SUBPROTO    0x02 /* herald.v1 negotiated */
#define CLIENT_F_WRITING     0x04 /* EV_WRITE is armed */
#define CLIENT_F_PEER_CLOSED 0x10 /* the peer sent its close frame */
#define CLIENT_F_SHUT_WR     0x20 /* CLOSING: output drained, write side shut */
#define CLIENT_F_ECHO        0x40 /* opened on echo-path: messages echoed, no ops (§3.11) */
#define CLIENT_F_REFUSED     0x80 /* answered 429/503 at accept: counted in h->nrefused */

struct client {
    struct event ev; /* the fd's event: EV_READ|EV_PERSIST, plus EV_WRITE while output waits */
    struct hub *h;
    struct chunk *in;      /* incomplete frame or request head, NULL when none */
    struct chunk *msg;     /* payload of a fragmented message being assembled, or NULL */
    struct evbuffer *out;  /* output the kernel refused (borrowed from the pool), or NULL */
    struct frame *pending; /* the single queued frame when out is NULL, or NULL */
    struct ptrset subs;    /* nodes of h->trie holding this client (one: no allocation) */
    uint32_t id;
    uint32_t index;       /* slot in h->clients */
    uint32_t born_s;      /* worker clock at accept */
    uint32_t last_rx_s;   /* last frame received */
    uint32_t last_ping_s; /* last ping sent; in CLOSING: the close deadline */
    uint32_t utf8;        /* UTF-8 validator state of the current text message */
    struct sink sink;     /* trie subscriber: form, SINK_DIRTY, SINK_CLOSED once CLOSED */
    uint8_t state;        /* enum client_state */
    uint8_t flags;        /* CLIENT_F_* */
    uint8_t msg_op;       /* opcode of the message being assembled, 0 when none */
    uint8_t ops_sec;      /* max-ops-per-second: low byte of the window's monotonic second */
    uint16_t ops;         /* text messages in that second */
};

/* Close code of the credential closes (docs/protocol.md §3.7): expired or never given. */
#define CLIENT_CLOSE_AUTH 4001

/*
 * Takes the accepted non-blocking socket fd and returns a new connection
 * in HANDSHAKE state, registered with the worker (array and read event).
 * On a TLS port (h->tls set) the connection gets its own SSL object from
 * the certificate h->tls holds now, in accept state: its first reads drive
 * the TLS handshake, which handshake-timeout covers like the request head.
 * Returns NULL (fd closed, logged) when it cannot be set up.
 */
struct client *client_new(struct hub *h, int fd);

/*
 * client_new for the worker's accept loop: with status 0, c counts against
 * addr_key in h->addr (already acquired; released when c closes); with
 * status 429 or 503, c is refused at once - the HTTP answer with
 * Retry-After: 1 is queued and c lingers in CLOSING like any HTTP answer
 * (a 503 also counts in h->nrefused until c is freed). NULL when the
 * event could not be added (fd closed, nothing counted).
 */
struct client *client_accept(struct hub *h, int fd, uint64_t addr_key, int status);

/*
 * Subscribes c to pattern[0..len) (borrowed): validates it (topic limits),
 * enforces max-subscriptions and, for a pattern new to this worker, the
 * broker's per-link pattern limit (announced in WELCOME), adds c to the
 * worker's trie and, when the pattern is new to this worker, sends SUB to
 * the broker. Subscribing twice to one pattern succeeds once. Returns 0, or
 * -1 with *code ("bad_topic", "unauthorized", "token_expired", "forbidden",
 * "too_many_subscriptions") and *err (static). The one gate every
 * subscription passes (query string and JSON ops alike); its credential
 * half is client_may_subscribe.
 */
int client_subscribe(struct client *c, const char *pattern, size_t len, const char **code,
                     const char **err);

/*
 * Removes the subscription to pattern[0..len); UNSUB to the broker when no
 * local client holds it any more. Returns 0, or -1 with *code
 * "not_subscribed".
 */
int client_unsubscribe(struct client *c, const char *pattern, size_t len, const char **code,
                       const char **err);

/*
 * The fan-out's view of every client (common/sink.h): deliver queues a
 * reference to an event frame and puts the client on the worker's dirty
 * list, or closes it as a slow consumer (1008) when its queued output
 * would exceed send-queue-limit (replies, pongs and pings count against
 * the same limit); flush is client_flush.
 */
extern const struct sink_ops client_sink_ops;

/* The client whose sink s is (a subscriber of the worker's trie). */
static inline struct client *client_of_sink(struct sink *s)
{
    return (struct client *)((char *)s - offsetof(struct client, sink));
}

/*
 * Writes queued output. Returns 0, or -1 when c was closed (write error,
 * or a close-after-flush completed); the caller stops touching it.
 */
int client_flush(struct client *c);

/*
 * Closes c. Idempotent. For an OPEN connection with code != 0, a close
 * frame (code, reason) is sent after the queued output, which is flushed
 * for at most a couple of seconds; code 0 closes the socket at once.
 * Unsubscribes everything, returns borrowed buffers to the pool and hands
 * the struct to the worker's close list (freed on the next loop pass).
 */
void client_close(struct client *c, uint16_t code, const char *reason);

/* Removes every subscription of c (UNSUB for patterns it held last). client_subs.c. */
void client_unsubscribe_all(struct client *c);

/* Drops c's subscription to node without an UNSUB; false when c did not hold it. client_subs.c. */
bool client_forget(struct client *c, struct trie_node *node);

/*
 * The broker refused node's pattern (text: pattern[0..len), code its ERR
 * code): c loses that subscription without an UNSUB and is told with
 * {"op":"error","code":code,"topic":pattern,...}. Returns 0, or -1 when c
 * was closed (the reply took it past send-queue-limit).
 */
int client_refused(struct client *c, struct trie_node *node, const char *code, const char *pattern,
                   size_t len);

/* Sends a WebSocket ping (the sweep's keepalive). Returns 0, or -1 when c was closed. */
int client_ping(struct client *c);

/* Closes c at once, whatever its state (sweep deadlines, worker teardown). */
void client_abort(struct client *c);

/* Frees a closed client (the worker's close list). */
void client_free(struct client *c);

/* Bytes queued for c (pending frame + evbuffer). */
size_t client_queued(const struct client *c);

/* ---- TLS (client_tls.c, docs/architecture.md §4.10) ---- */

/*
 * c's SSL object on a TLS port (owned by c, kept in its hub's per-slot
 * array like its grant; borrowed until c is aborted), or NULL: on a plain
 * port, and once c is closed.
 */
struct ssl_st *client_ssl(const struct client *c);

/* ---- credentials (client_auth.c, docs/protocol.md §3.10) ---- */

/* c's grant (borrowed until c's next auth op or its close), or NULL. */
struct auth_grant *client_grant(const struct client *c);

/* Gives c the grant g (taken; NULL drops it), freeing the one it had. */
void client_set_grant(struct client *c, struct auth_grant *g);

/*
 * The gate's credential half, for pattern[0..len) (a valid pattern):
 * true when auth is not enforced and c has no grant, or c's grant is
 * current and covers the pattern; else false with *code ("unauthorized",
 * "token_expired", "forbidden") and *err.
 */
bool client_may_subscribe(struct client *c, const char *pattern, size_t len, const char **code,
                          const char **err);

/*
 * Verifies tok[0..len) (borrowed) with the configured key and, when good,
 * makes it c's grant (replacing any; the sweep files c again). Returns the
 * token's exp, or -1 with *code ("bad_request" when auth is off,
 * "token_expired", "unauthorized") and *err (static), c unchanged.
 */
int64_t client_authenticate(struct client *c, const char *tok, size_t len, const char **code,
                            const char **err);

/*
 * The subscriptions of c that its grant does not cover (after a refresh):
 * returns their count with a new array of their trie nodes in *out
 * (mem_free it; NULL when none). Each stays valid while c holds it.
 */
size_t client_uncovered(struct client *c, struct trie_node ***out);

/*
 * The sweep's credential deadline for an OPEN client: its token's exp, or
 * when auth is enforced and c has none, born_s + hs_timeout_s + 1.
 * Returns false when c has no such deadline; else the worker-clock second
 * in *due (clamped to 2^30 s ahead).
 */
bool client_auth_due(const struct client *c, uint32_t hs_timeout_s, uint32_t *due);

/*
 * Once the worker clock reached client_auth_due's deadline: the close
 * reason it calls for ("token expired", "authentication required"), or
 * NULL when the wall clock says exp is not reached after all.
 */
const char *client_auth_ending(const struct client *c);

/*
 * The sweep reached c's credential deadline (client_auth_due): with a
 * token, token_expired then close 4001 "token expired"; without, close 4001
 * "authentication required". Returns true when c was closed, false when the
 * deadline is not reached after all (c is filed again). client.c.
 */
bool client_auth_expire(struct client *c);

#endif

/*
 * resp.c - the RESP endpoint: Redis clients publishing and subscribing.
 *
 * I/O is done here, not by a bufferevent, so that a request costs one read
 * and one write as in Redis. A bufferevent asks the kernel how much is
 * readable (ioctl FIONREAD) before every read, and only writes on the pass
 * after output was queued; at one small request per wake-up that third
 * syscall was a fifth of the endpoint's system time. Each client has one
 * event for its socket (EV_READ while reading, EV_WRITE only while the
 * kernel has refused output), an input evbuffer that holds only what could
 * not be run yet, and an output evbuffer written with writev.
 *
 * Input: the read callback read(2)s into one server-wide buffer until a
 * short read (the socket is drained), RESP_READ_BUDGET bytes (fairness), a
 * pause or a close. Complete commands are parsed in place with the pure
 * parser (resp_parse.c) and dispatched through a small command table, with
 * no allocation per command (the argv views live in one scratch array on
 * the server); only an incomplete tail is copied to the client's input, and
 * when input is kept there the next read is appended and the whole is
 * pulled up and run once. After the callback has run its commands the
 * replies are written at once (Redis writes before it sleeps the same
 * way); only what the kernel refuses arms EV_WRITE.
 *
 * A client subscribes through two handles embedded in its struct, one per
 * delivery form: `channel` (SUBSCRIBE, `message`) and `pattern`
 * (PSUBSCRIBE, `pmessage`), so the same text may be both a channel and a
 * pattern of one client, as in Redis. Each handle's struct sink is the trie
 * subscriber in core->resp_subs.trie; the client also keeps one set of trie nodes
 * per kind (ptrset: O(1) membership), so UNSUBSCRIBE by name is a trie
 * lookup plus a set probe whatever the client holds, and UNSUBSCRIBE with
 * no argument and close remove exactly its entries. Invariant: a node is in
 * c->channels (c->patterns) iff the channel (pattern) handle is in that
 * trie node; both change together (Redis pubsub.c). A linear scan of the
 * client's list per name cost 69 s of CPU for 3,000 PUNSUBSCRIBE names
 * after 100,000 PSUBSCRIBE, stalling every other client.
 *
 * Fan-out: resp_deliver (the handles' sink_ops.deliver, registered in
 * core->resp_subs) appends the shared frame (common/outq.h) after any replies
 * and puts the subscriber on the server's dirty list (its channel handle's
 * sink stands for the client there) instead of writing, unless EV_WRITE is
 * armed (the write callback will get to it).
 * The list is written by flush_ev, an event made active when the list
 * becomes non-empty. libevent runs active events of one priority in order
 * and appends newly activated ones to the queue being run, so flush_ev runs
 * after every I/O callback of the current loop pass: many publishes in one
 * pass (a pipelined batch, several publishers, link or HTTP publishes) cost
 * one write per subscriber, as Redis's beforeSleep writes pending clients.
 * Rejected: giving flush_ev a lower priority; libevent only runs a lower
 * priority queue on a pass with no higher priority event active, so under
 * steady load the subscribers would never be written.
 *
 * Two bounds apply to output. Replies to the client's own commands are
 * backpressure: past RESP_OUT_HIGH the client is no longer read or parsed
 * until a write leaves the output at RESP_OUT_LOW or below. Deliveries are
 * fan-out and must not slow publishers: past client-output-limit the
 * subscriber is closed as a slow consumer.
 *
 * Authentication. With requirepass set a new client is listed as
 * unauthenticated (auth-timeout, max-unauthenticated; core.c)
 * until AUTH succeeds, may keep at most RESP_PREAUTH_PENDING bytes of an
 * incomplete command, and is closed when RESP_PREAUTH_OUT bytes of replies
 * wait unread. A failed AUTH holds the client (no reading, not even of
 * the commands already received) for RESP_AUTH_HOLD_MS, on its event's own
 * timeout, and the RESP_AUTH_MAX_FAILURES-th failure closes it; failures
 * are logged at most once a second (core_auth_failed).
 *
 * request-timeout: a command that has started arriving must be complete
 * within it (resp_server_sweep); a client with nothing pending may stay
 * idle for ever, as in Redis.
 *
 * Closing: client_close detaches from the trie (the fan-out collects
 * targets before delivering, so this is safe inside a delivery), marks its
 * handles closed (a flush skips it; freeing it prunes the dirty list first),
 * frees the event and closes the socket, and queues the struct on the
 * close list (core.c), which frees its buffers later: a command being run
 * points into the input buffer. Errors that Redis answers before closing (protocol
 * errors, QUIT, shutdown) use close-after-flush: reading stops, the handles
 * are marked closed so no more deliveries queue, and the client closes once
 * its output is written, or when its event (armed with a timeout while
 * closing) sees no progress for RESP_FLUSH_TIMEOUT.
 *
 * Rejected: a resumable parser state per client (the parser re-scans a
 * split command; see resp_parse.c).
 */
#include "broker/resp.h"

#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "broker/core.h"
#include "broker/resp_parse.h"
#include "broker/router.h"
#include "common/frame.h"
#include "common/listener.h"
#include "common/mem.h"
#include "common/net.h"
#include "common/outq.h"
#include "common/ptrset.h"
#include "common/sink.h"
#include "common/topic.h"
#include "common/trie.h"

#define RESP_MAX_ARGS          1024
#define RESP_MAX_INLINE        (64 * 1024)
#define RESP_BULK_SLACK        1024
#define RESP_PENDING_SLACK     (64 * 1024)
#define RESP_OUT_HIGH          (1024 * 1024)
#define RESP_OUT_LOW           (256 * 1024)
#define RESP_WRITE_EARLY       (64 * 1024) /* replies of one batch written before it ends */
#define RESP_READ_CHUNK        (64 * 1024)
#define RESP_READ_BUDGET       (256 * 1024) /* bytes read per client per callback */
#define RESP_FLUSH_TIMEOUT     10   /* seconds a closing client has to read its last replies */
#define RESP_PREAUTH_PENDING   4096 /* incomplete command kept before AUTH */
#define RESP_PREAUTH_OUT       (16 * 1024) /* unread replies before AUTH */
#define RESP_AUTH_MAX_FAILURES 3           /* failed AUTHs that close a connection */
#define RESP_AUTH_HOLD_MS      500         /* no reading after a failed AUTH */
#define RESP_VERSION           "0.1.0"

#define ERR_SUBSCRIBED_CTX                                                                         \
    "-ERR Can't execute '%s': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are "   \
    "allowed in this context"

struct resp_client;

/* A trie subscriber: sink first, so the fan-out's struct sink * is the handle. */
struct resp_handle {
    struct sink sink;
    struct resp_client *client;
};

struct resp_client {
    struct close_entry close;
    struct preauth preauth; /* listed as unauthenticated (core.c) until AUTH succeeds */
    struct resp_handle channel;
    struct resp_handle pattern;
    struct resp_server *srv;
    struct event *ev;     /* the socket's only event */
    struct evbuffer *in;  /* input not run yet: an incomplete command, or left by a pause */
    struct evbuffer *out; /* replies and deliveries not written yet */
    evutil_socket_t fd;
    struct resp_client *prev, *next;
    struct ptrset channels;    /* trie nodes holding the channel handle (SUBSCRIBE) */
    struct ptrset patterns;    /* trie nodes holding the pattern handle (PSUBSCRIBE) */
    uint64_t partial_since_ms; /* an incomplete command is kept since then; 0: none */
    uint32_t id;
    short armed; /* what ev waits for: EV_READ, EV_WRITE, EV_TIMEOUT (closing or held) */
    uint8_t auth_failures;
    bool authed;
    bool closed;  /* client_close ran; freed at the next close-list sweep */
    bool closing; /* close once the output is flushed */
    bool paused;  /* reading stopped: unread replies past RESP_OUT_HIGH */
    bool held;    /* reading stopped for RESP_AUTH_HOLD_MS after a failed AUTH */
    char peer[64];
};

struct resp_server {
    struct core *core;
    struct listener *listener;
    struct resp_client *clients;
    struct resp_limits limits;
    size_t max_pending; /* bytes of one incomplete command before a protocol error */
    uint32_t next_id;
    int port;
    uint64_t pubsub_clients; /* clients with at least one subscription */
    uint64_t channel_subs;   /* (channel, client) pairs */
    uint64_t pattern_subs;   /* (pattern, client) pairs */
    struct event *flush_ev;  /* writes the dirty list after this pass's I/O */
    struct dirty_list dirty; /* subscribers with deliveries to write (channel handles) */
    struct resp_arg argv[RESP_MAX_ARGS];
    char rbuf[RESP_READ_CHUNK]; /* every read lands here first */
};

typedef void resp_cmd_fn(struct resp_client *c, const struct resp_arg *argv, size_t argc);

#define CMD_PUBSUB 0x1 /* allowed while subscribed */
#define CMD_NOAUTH 0x2 /* allowed before AUTH */

struct resp_cmd {
    const char *name; /* lower case, as Redis names commands in errors */
    uint8_t len;
    int8_t arity; /* Redis's convention: n exactly n words, -n at least n */
    uint8_t flags;
    resp_cmd_fn *fn;
};

static void client_close(struct resp_client *c, const char *reason);
static void close_after_flush(struct resp_client *c, const char *reason);
static int resp_deliver(struct sink *s, struct frame *f);
static int resp_flush(struct sink *s);

/* Both handles of every client: the fan-out's view of a RESP subscriber. */
static const struct sink_ops resp_sink_ops = {.deliver = resp_deliver, .flush = resp_flush};

/* ---- replies ------------------------------------------------------------ */

static void reply_raw(struct resp_client *c, const void *p, size_t n)
{
    /* Allocation failure aborts everywhere else (mem.h); do the same here. */
    if (evbuffer_add(c->out, p, n) < 0) {
        log_error("oom", "where=resp_reply bytes=%zu", n);
        abort();
    }
    c->srv->core->stats.bytes_out += n;
}

#define REPLY_LIT(c, s) reply_raw((c), (s), sizeof(s) - 1)

/* Writes v in decimal at p; returns the digits written (at most 20). */
static size_t put_u64(char *p, uint64_t v)
{
    char tmp[20];
    size_t n = 0;

    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++)
        p[i] = tmp[n - 1 - i];
    return n;
}

/* ":<v>\r\n", or the "$<v>\r\n" header of a bulk when type is '$'. */
static void reply_u64(struct resp_client *c, char type, uint64_t v)
{
    char buf[24];
    size_t n = 1;

    buf[0] = type;
    n += put_u64(buf + 1, v);
    buf[n++] = '\r';
    buf[n++] = '\n';
    reply_raw(c, buf, n);
}

static void reply_bulk(struct resp_client *c, const char *p, size_t len)
{
    reply_u64(c, '$', len);
    reply_raw(c, p, len);
    REPLY_LIT(c, "\r\n");
}

/* fmt must begin with "-ERR " or another error prefix; CR and LF become spaces. */
__attribute__((format(printf, 2, 3))) static void reply_errorf(struct resp_client *c,
                                                               const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(buf, sizeof(buf) - 2, fmt, ap);
    va_end(ap);
    if (n < 0)
        n = 0;
    if ((size_t)n > sizeof(buf) - 3)
        n = (int)(sizeof(buf) - 3);
    for (int i = 0; i < n; i++) {
        if (buf[i] == '\r' || buf[i] == '\n')
            buf[i] = ' ';
    }
    buf[n++] = '\r';
    buf[n++] = '\n';
    reply_raw(c, buf, (size_t)n);
}

/* `*3 <kind> <name> :<count>`; name NULL gives a null bulk (UNSUBSCRIBE with none). */
static void reply_sub_event(struct resp_client *c, const char *kind, const char *name, size_t len,
                            uint64_t count)
{
    REPLY_LIT(c, "*3\r\n");
    reply_bulk(c, kind, strlen(kind));
    if (name)
        reply_bulk(c, name, len);
    else
        REPLY_LIT(c, "$-1\r\n");
    reply_u64(c, ':', count);
}

/* ---- argument helpers --------------------------------------------------- */

static bool arg_is(const struct resp_arg *a, const char *lower)
{
    size_t n = strlen(lower);

    return a->len == n && strncasecmp(a->ptr, lower, n) == 0;
}

/* Length to print of a Redis "%.128s" argument: capped, and C-string semantics at a NUL. */
static int print_len(const struct resp_arg *a, size_t cap)
{
    size_t n = a->len < cap ? a->len : cap;
    const char *nul = memchr(a->ptr, '\0', n);

    return (int)(nul ? (size_t)(nul - a->ptr) : n);
}

/* Strict decimal integer (optional '-'), as Redis's string2ll. */
static bool arg_ll(const struct resp_arg *a, long long *out)
{
    size_t i = 0;
    bool neg = false;
    unsigned long long v = 0;

    if (a->len == 0 || a->len > 19)
        return false;
    if (a->ptr[0] == '-') {
        neg = true;
        i = 1;
    }
    if (i == a->len)
        return false;
    for (; i < a->len; i++) {
        if (a->ptr[i] < '0' || a->ptr[i] > '9')
            return false;
        v = v * 10 + (unsigned long long)(a->ptr[i] - '0');
    }
    *out = neg ? -(long long)v : (long long)v;
    return true;
}

/* ---- subscriptions ------------------------------------------------------ */

static uint64_t *kind_counter(struct resp_server *srv, bool pattern)
{
    return pattern ? &srv->pattern_subs : &srv->channel_subs;
}

/* Subscriptions of both kinds (what Redis's replies count). */
static uint64_t nsubs(const struct resp_client *c)
{
    return (uint64_t)ptrset_count(&c->channels) + ptrset_count(&c->patterns);
}

static struct resp_handle *handle_of(struct resp_client *c, bool pattern)
{
    return pattern ? &c->pattern : &c->channel;
}

static struct ptrset *set_of(struct resp_client *c, bool pattern)
{
    return pattern ? &c->patterns : &c->channels;
}

/* The trie node of the client's subscription to name of this kind, or NULL: O(tokens). */
static struct trie_node *sub_find(struct resp_client *c, const struct resp_arg *name, bool pattern)
{
    return trie_find_sub(c->srv->core->resp_subs.trie, name->ptr, name->len,
                         &handle_of(c, pattern)->sink);
}

/*
 * Subscribes the client's handle of this kind to name (validated). Returns 0
 * when subscribed or already subscribed, -1 at max-subscriptions.
 */
static int sub_add(struct resp_client *c, const struct resp_arg *name, bool pattern)
{
    struct resp_server *srv = c->srv;
    struct resp_handle *h = handle_of(c, pattern);
    struct trie_node *node;

    if (sub_find(c, name, pattern))
        return 0;
    if (nsubs(c) >= (uint64_t)srv->core->conf->max_subscriptions)
        return -1;
    node = trie_subscribe(srv->core->resp_subs.trie, name->ptr, name->len, &h->sink, NULL, NULL);
    if (nsubs(c) == 0)
        srv->pubsub_clients++;
    ptrset_add(set_of(c, pattern), node);
    (*kind_counter(srv, pattern))++;
    return 0;
}

/* Removes the subscription held at node. */
static void sub_remove(struct resp_client *c, struct trie_node *node, bool pattern)
{
    struct resp_server *srv = c->srv;

    ptrset_remove(set_of(c, pattern), node);
    trie_unsubscribe_node(srv->core->resp_subs.trie, node, &handle_of(c, pattern)->sink, NULL);
    (*kind_counter(srv, pattern))--;
    if (nsubs(c) == 0)
        srv->pubsub_clients--;
}

/* Drops every subscription of this kind, replying for each when reply is set. */
static void sub_remove_all(struct resp_client *c, bool pattern, bool reply)
{
    struct resp_server *srv = c->srv;
    const char *kind = pattern ? "punsubscribe" : "unsubscribe";
    struct ptrset *set = set_of(c, pattern);
    uint64_t left = nsubs(c), had = ptrset_count(set);
    uint32_t nslots;
    void *const *nodes = ptrset_slots(set, &nslots);

    if (reply && had == 0)
        reply_sub_event(c, kind, NULL, 0, left);
    for (uint32_t i = 0; i < nslots; i++) {
        char name[TOPIC_MAX_LEN + 1];

        if (!nodes[i])
            continue;
        /* The text first: unsubscribing may prune the node. */
        if (reply)
            reply_sub_event(c, kind, name, trie_node_pattern(nodes[i], name, sizeof(name)), --left);
        trie_unsubscribe_node(srv->core->resp_subs.trie, nodes[i], &handle_of(c, pattern)->sink,
                              NULL);
    }
    ptrset_clear(set);
    *kind_counter(srv, pattern) -= had;
    if (had > 0 && nsubs(c) == 0)
        srv->pubsub_clients--;
}

static void do_subscribe(struct resp_client *c, const struct resp_arg *argv, size_t argc,
                         bool pattern)
{
    const struct topic_limits *lim = &c->srv->core->limits;
    const char *err;

    for (size_t i = 1; i < argc; i++) {
        bool ok = pattern ? topic_pattern_valid(argv[i].ptr, argv[i].len, lim, &err)
                          : topic_valid(argv[i].ptr, argv[i].len, lim, &err);

        if (!ok) {
            reply_errorf(c, "-ERR invalid %s: %s", pattern ? "pattern" : "topic", err);
            return;
        }
    }
    for (size_t i = 1; i < argc; i++) {
        if (sub_add(c, &argv[i], pattern) < 0) {
            REPLY_LIT(c, "-ERR max subscriptions reached\r\n");
            return;
        }
        reply_sub_event(c, pattern ? "psubscribe" : "subscribe", argv[i].ptr, argv[i].len,
                        nsubs(c));
    }
}

static void do_unsubscribe(struct resp_client *c, const struct resp_arg *argv, size_t argc,
                           bool pattern)
{
    if (argc == 1) {
        sub_remove_all(c, pattern, true);
        return;
    }
    for (size_t i = 1; i < argc; i++) {
        struct trie_node *node = sub_find(c, &argv[i], pattern);

        if (node)
            sub_remove(c, node, pattern);
        reply_sub_event(c, pattern ? "punsubscribe" : "unsubscribe", argv[i].ptr, argv[i].len,
                        nsubs(c));
    }
}

/* ---- commands ----------------------------------------------------------- */

static void cmd_publish(struct resp_client *c, const struct resp_arg *argv, size_t argc)
{
    struct core *core = c->srv->core;
    struct router_result res;
    const char *err;

    (void)argc;
    if (!topic_valid(argv[1].ptr, argv[1].len, &core->limits, &err)) {
        reply_errorf(c, "-ERR invalid topic: %s", err);
        return;
    }
    if (argv[2].len > core->conf->max_payload) {
        core->stats.drops[DROP_OVERSIZE]++;
        REPLY_LIT(c, "-ERR payload exceeds max-payload\r\n");
        return;
    }
    router_publish(core, argv[1].ptr, argv[1].len, argv[2].ptr, argv[2].len, &res);
    reply_u64(c, ':', res.receivers);
}

static void cmd_subscribe(struct resp_client *c, const struct resp_arg *argv, size_t argc)
{
    do_subscribe(c, argv, argc, false);
}

static void cmd_psubscribe(struct resp_client *c, const struct resp_arg *argv, size_t argc)
{
    do_subscribe(c, argv, argc, true);
}

static void cmd_unsubscribe(struct resp_client *c, const struct resp_arg *argv, size_t argc)
{
    do_unsubscribe(c, argv, argc, false);
}

static void cmd_punsubscribe(struct resp_client *c, const struct resp_arg *argv, size_t argc)
{
    do_unsubscribe(c, argv, argc, true);
}

static void cmd_ping(struct resp_client *c, const struct resp_arg *argv, size_t argc)
{
    if (argc > 2) {
        REPLY_LIT(c, "-ERR wrong number of arguments for 'ping' command\r\n");
        return;
    }
    if (nsubs(c) > 0) {
        /* Subscribed clients can only take push-shaped replies (Redis). */
        REPLY_LIT(c, "*2\r\n$4\r\npong\r\n");
        reply_bulk(c, argc == 2 ? argv[1].ptr : "", argc == 2 ? argv[1].len : 0);
    } else if (argc == 2) {
        reply_bulk(c, argv[1].ptr, argv[1].len);
    } else {
        REPLY_LIT(c, "+PONG\r\n");
    }
}

static void cmd_echo(struct resp_client *c, const struct resp_arg *argv, size_t argc)
{
    (void)argc;
    reply_bulk(c, argv[1].ptr, argv[1].len);
}

/* The first successful AUTH: counted under max-clients from now on, or refused. */
static bool promote(struct resp_client *c)
{
    struct core *core = c->srv->core;

    if (c->authed)
        return true;
    if (!core_admit(core)) {
        REPLY_LIT(c, "-ERR max number of clients reached\r\n");
        close_after_flush(c, "max_clients");
        return false;
    }
    core_preauth_leave(core, &c->preauth);
    c->authed = true;
    return true;
}

/*
 * Checks user (NULL: the default user) and password. On failure replies
 * -WRONGPASS, holds the client (no reading) for a moment, and closes it at
 * the RESP_AUTH_MAX_FAILURES-th failure.
 */
static bool auth_check(struct resp_client *c, const struct resp_arg *user,
                       const struct resp_arg *pass)
{
    struct core *core = c->srv->core;

    if ((!user || (user->len == 7 && memcmp(user->ptr, "default", 7) == 0)) &&
        core_auth_ok(core, pass->ptr, pass->len))
        return promote(c);
    core_auth_failed(core, EP_RESP, c->peer);
    REPLY_LIT(c, "-WRONGPASS invalid username-password pair or user is disabled.\r\n");
    if (++c->auth_failures >= RESP_AUTH_MAX_FAILURES)
        close_after_flush(c, "auth_failures");
    else
        c->held = true;
    return false;
}

static void cmd_auth(struct resp_client *c, const struct resp_arg *argv, size_t argc)
{
    if (argc > 3) {
        REPLY_LIT(c, "-ERR syntax error\r\n");
        return;
    }
    if (argc == 2 && !c->srv->core->conf->requirepass) {
        REPLY_LIT(c, "-ERR AUTH <password> called without any password configured for the "
                     "default user. Are you sure your configuration is correct?\r\n");
        return;
    }
    if (auth_check(c, argc == 3 ? &argv[1] : NULL, &argv[argc - 1]))
        REPLY_LIT(c, "+OK\r\n");
}

static void reply_hello(struct resp_client *c)
{
    REPLY_LIT(c, "*14\r\n$6\r\nserver\r\n$6\r\nherald\r\n$7\r\nversion\r\n");
    reply_bulk(c, RESP_VERSION, strlen(RESP_VERSION));
    REPLY_LIT(c, "$5\r\nproto\r\n:2\r\n$2\r\nid\r\n");
    reply_u64(c, ':', c->id);
    REPLY_LIT(c, "$4\r\nmode\r\n$10\r\nstandalone\r\n$4\r\nrole\r\n$6\r\nmaster\r\n"
                 "$7\r\nmodules\r\n*0\r\n");
}

static void cmd_hello(struct resp_client *c, const struct resp_arg *argv, size_t argc)
{
    const struct resp_arg *user = NULL, *pass = NULL;
    long long ver;
    size_t i = 1;

    if (argc >= 2) {
        if (!arg_ll(&argv[1], &ver)) {
            REPLY_LIT(c, "-ERR Protocol version is not an integer or out of range\r\n");
            return;
        }
        if (ver != 2) {
            REPLY_LIT(c, "-NOPROTO unsupported protocol version\r\n");
            return;
        }
        i = 2;
    }
    for (; i < argc; i++) {
        size_t more = argc - i - 1;

        if (arg_is(&argv[i], "auth") && more >= 2) {
            user = &argv[i + 1];
            pass = &argv[i + 2];
            i += 2;
        } else if (arg_is(&argv[i], "setname") && more >= 1) {
            i++;
        } else {
            reply_errorf(c, "-ERR Syntax error in HELLO option '%.*s'", print_len(&argv[i], 128),
                         argv[i].ptr);
            return;
        }
    }
    if (pass && !auth_check(c, user, pass))
        return;
    if (!c->authed) {
        REPLY_LIT(c, "-NOAUTH HELLO must be called with the client already authenticated, "
                     "otherwise the HELLO <proto> AUTH <user> <pass> option can be used to "
                     "authenticate the client and select the RESP protocol version at the same "
                     "time\r\n");
        return;
    }
    reply_hello(c);
}

static int info_server(const struct resp_server *srv, char *p, size_t cap)
{
    const struct core *core = srv->core;

    return snprintf(p, cap,
                    "# Server\r\nherald_version:%s\r\nprocess_id:%ld\r\ntcp_port:%d\r\n"
                    "uptime_in_seconds:%" PRIu64 "\r\n",
                    RESP_VERSION, (long)getpid(), srv->port,
                    (net_now_ms() - core->started_ms) / 1000u);
}

static int info_clients(const struct resp_server *srv, char *p, size_t cap)
{
    return snprintf(p, cap,
                    "# Clients\r\nconnected_clients:%" PRIu64 "\r\npubsub_clients:%" PRIu64 "\r\n",
                    srv->core->stats.conns_current[EP_RESP], srv->pubsub_clients);
}

static int info_stats(const struct resp_server *srv, char *p, size_t cap)
{
    const struct broker_stats *s = &srv->core->stats;

    return snprintf(p, cap,
                    "# Stats\r\ntotal_connections_received:%" PRIu64 "\r\n"
                    "pubsub_channels:%" PRIu64 "\r\npubsub_patterns:%" PRIu64 "\r\n"
                    "published:%" PRIu64 "\r\ndelivered:%" PRIu64 "\r\n"
                    "slow_consumers:%" PRIu64 "\r\n",
                    s->conns_total[EP_RESP], srv->channel_subs, srv->pattern_subs, s->published,
                    s->delivered, s->drops[DROP_SLOW_CONSUMER]);
}

typedef int info_section_fn(const struct resp_server *srv, char *p, size_t cap);

static bool info_wanted(const struct resp_arg *argv, size_t argc, const char *name)
{
    if (argc == 1)
        return true;
    for (size_t i = 1; i < argc; i++) {
        if (arg_is(&argv[i], name) || arg_is(&argv[i], "all") || arg_is(&argv[i], "default") ||
            arg_is(&argv[i], "everything"))
            return true;
    }
    return false;
}

static void cmd_info(struct resp_client *c, const struct resp_arg *argv, size_t argc)
{
    static const char *const names[] = {"server", "clients", "stats"};
    static info_section_fn *const fns[] = {info_server, info_clients, info_stats};
    char buf[1024];
    size_t off = 0;

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        int n;

        if (!info_wanted(argv, argc, names[i]))
            continue;
        if (off > 0)
            off += (size_t)snprintf(buf + off, sizeof(buf) - off, "\r\n");
        n = fns[i](c->srv, buf + off, sizeof(buf) - off);
        if (n > 0)
            off += (size_t)n;
        if (off >= sizeof(buf))
            off = sizeof(buf) - 1;
    }
    reply_bulk(c, buf, off);
}

static void cmd_quit(struct resp_client *c, const struct resp_arg *argv, size_t argc)
{
    (void)argv;
    (void)argc;
    REPLY_LIT(c, "+OK\r\n");
    close_after_flush(c, "quit");
}

static void cmd_empty_array(struct resp_client *c, const struct resp_arg *argv, size_t argc)
{
    (void)argv;
    (void)argc;
    REPLY_LIT(c, "*0\r\n");
}

static void reply_unknown_sub(struct resp_client *c, const struct resp_arg *argv, const char *upper)
{
    reply_errorf(c, "-ERR unknown subcommand '%.*s'. Try %s HELP.", print_len(&argv[1], 128),
                 argv[1].ptr, upper);
}

static void cmd_config(struct resp_client *c, const struct resp_arg *argv, size_t argc)
{
    if (!arg_is(&argv[1], "get")) {
        reply_unknown_sub(c, argv, "CONFIG");
        return;
    }
    if (argc < 3) {
        REPLY_LIT(c, "-ERR wrong number of arguments for 'config|get' command\r\n");
        return;
    }
    /* Nothing here is a Redis setting; redis-benchmark asks for save/appendonly. */
    REPLY_LIT(c, "*0\r\n");
}

static void cmd_client(struct resp_client *c, const struct resp_arg *argv, size_t argc)
{
    if (arg_is(&argv[1], "setname") || arg_is(&argv[1], "setinfo")) {
        if (argc < 3) {
            reply_errorf(c, "-ERR wrong number of arguments for 'client|%s' command",
                         arg_is(&argv[1], "setname") ? "setname" : "setinfo");
            return;
        }
        REPLY_LIT(c, "+OK\r\n");
    } else if (arg_is(&argv[1], "id")) {
        reply_u64(c, ':', c->id);
    } else {
        reply_unknown_sub(c, argv, "CLIENT");
    }
}

static void cmd_select(struct resp_client *c, const struct resp_arg *argv, size_t argc)
{
    long long db;

    (void)argc;
    if (!arg_ll(&argv[1], &db))
        REPLY_LIT(c, "-ERR value is not an integer or out of range\r\n");
    else if (db != 0)
        REPLY_LIT(c, "-ERR DB index is out of range\r\n");
    else
        REPLY_LIT(c, "+OK\r\n");
}

static void cmd_reset(struct resp_client *c, const struct resp_arg *argv, size_t argc)
{
    (void)argv;
    (void)argc;
    sub_remove_all(c, false, false);
    sub_remove_all(c, true, false);
    if (c->srv->core->conf->requirepass && c->authed) {
        /* Redis's RESET deauthenticates: back under auth-timeout. */
        c->authed = false;
        core_preauth_add(c->srv->core, &c->preauth);
    }
    REPLY_LIT(c, "+RESET\r\n");
}

#define CMD(name, arity, flags, fn)                                                                \
    {                                                                                              \
        name, sizeof(name) - 1, arity, flags, fn                                                   \
    }

/* PUBLISH first: it is the hot path and the table is scanned in order. */
static const struct resp_cmd commands[] = {
    CMD("publish", 3, 0, cmd_publish),
    CMD("subscribe", -2, CMD_PUBSUB, cmd_subscribe),
    CMD("unsubscribe", -1, CMD_PUBSUB, cmd_unsubscribe),
    CMD("psubscribe", -2, CMD_PUBSUB, cmd_psubscribe),
    CMD("punsubscribe", -1, CMD_PUBSUB, cmd_punsubscribe),
    CMD("ping", -1, CMD_PUBSUB, cmd_ping),
    CMD("echo", 2, 0, cmd_echo),
    CMD("auth", -2, CMD_NOAUTH, cmd_auth),
    CMD("hello", -1, CMD_NOAUTH, cmd_hello),
    CMD("info", -1, 0, cmd_info),
    CMD("quit", -1, CMD_PUBSUB | CMD_NOAUTH, cmd_quit),
    CMD("command", -1, 0, cmd_empty_array),
    CMD("config", -2, 0, cmd_config),
    CMD("select", 2, 0, cmd_select),
    CMD("client", -2, 0, cmd_client),
    CMD("reset", 1, CMD_PUBSUB | CMD_NOAUTH, cmd_reset),
};

/* ---- dispatch ----------------------------------------------------------- */

static const struct resp_cmd *cmd_lookup(const struct resp_arg *name)
{
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
        if (commands[i].len == name->len &&
            strncasecmp(commands[i].name, name->ptr, name->len) == 0)
            return &commands[i];
    }
    return NULL;
}

/* Redis's format: each argument quoted and followed by a space, up to ~128 bytes. */
static void reply_unknown(struct resp_client *c, const struct resp_arg *argv, size_t argc)
{
    char args[256];
    size_t off = 0;

    args[0] = '\0';
    for (size_t i = 1; i < argc && off < 128; i++) {
        int n = snprintf(args + off, sizeof(args) - off, "'%.*s' ", print_len(&argv[i], 128 - off),
                         argv[i].ptr);

        if (n > 0)
            off += (size_t)n;
    }
    reply_errorf(c, "-ERR unknown command '%.*s', with args beginning with: %s",
                 print_len(&argv[0], 128), argv[0].ptr, args);
}

static void dispatch(struct resp_client *c, const struct resp_arg *argv, size_t argc)
{
    const struct resp_cmd *cmd = cmd_lookup(&argv[0]);

    if (!cmd) {
        reply_unknown(c, argv, argc);
        return;
    }
    if ((cmd->arity > 0 && argc != (size_t)cmd->arity) ||
        (cmd->arity < 0 && argc < (size_t)-cmd->arity)) {
        reply_errorf(c, "-ERR wrong number of arguments for '%s' command", cmd->name);
        return;
    }
    if (!c->authed && !(cmd->flags & CMD_NOAUTH)) {
        c->srv->core->stats.drops[DROP_AUTH]++;
        REPLY_LIT(c, "-NOAUTH Authentication required.\r\n");
        return;
    }
    if (nsubs(c) > 0 && !(cmd->flags & CMD_PUBSUB)) {
        reply_errorf(c, ERR_SUBSCRIBED_CTX, cmd->name);
        return;
    }
    cmd->fn(c, argv, argc);
}

/* ---- output ------------------------------------------------------------- */

static void client_on_event(evutil_socket_t fd, short what, void *arg);

/*
 * Points c's event at what it needs: input unless paused or closing,
 * writability while output is pending, and the flush timeout while
 * closing. Changing it costs an event_del and an event_add, so it is only
 * done when that set changes. Closes c (check c->closed) if libevent fails.
 */
static void client_arm(struct resp_client *c)
{
    struct timeval flush = {RESP_FLUSH_TIMEOUT, 0};
    struct timeval hold = {0, RESP_AUTH_HOLD_MS * 1000};
    short want = 0;

    if (!c->closing && !c->paused && !c->held)
        want |= EV_READ;
    if (evbuffer_get_length(c->out) > 0)
        want |= EV_WRITE;
    if (c->closing || c->held)
        want |= EV_TIMEOUT;
    if (want == c->armed)
        return;
    event_del(c->ev);
    c->armed = want;
    if (want == 0)
        return;
    /* A held client with nothing to write waits on the timeout alone. */
    if (event_assign(c->ev, c->srv->core->base, c->fd, (short)((want & ~EV_TIMEOUT) | EV_PERSIST),
                     client_on_event, c) < 0 ||
        event_add(c->ev, c->closing ? &flush
                         : c->held  ? &hold
                                    : NULL) < 0)
        client_close(c, "error");
}

/* One writev of c's output. Returns 0, or -1 having closed c on a socket error. */
static int write_out(struct resp_client *c)
{
    if (evbuffer_write(c->out, c->fd) < 0 && errno != EAGAIN && errno != EWOULDBLOCK &&
        errno != EINTR) {
        client_close(c, "error");
        return -1;
    }
    return 0;
}

/* Puts c on the dirty list; the first entry of a pass activates flush_ev. */
static void mark_dirty(struct resp_client *c)
{
    struct resp_server *srv = c->srv;

    if (c->channel.sink.flags & SINK_DIRTY)
        return;
    if (srv->dirty.n == 0)
        event_active(srv->flush_ev, EV_TIMEOUT, 0);
    dirty_add(&srv->dirty, &c->channel.sink);
}

/* ---- input -------------------------------------------------------------- */

static void protocol_error(struct resp_client *c, const char *err)
{
    c->srv->core->stats.drops[DROP_PROTOCOL]++;
    reply_errorf(c, "-ERR %s", err);
    close_after_flush(c, "protocol");
}

/*
 * An unauthenticated client gets no backpressure budget: past
 * RESP_PREAUTH_OUT of replies it has not read, it is closed. Returns true
 * when c was closed.
 */
static bool preauth_unread(struct resp_client *c)
{
    if (evbuffer_get_length(c->out) <= RESP_PREAUTH_OUT)
        return false;
    if (!(c->armed & EV_WRITE) && write_out(c) < 0)
        return true;
    if (evbuffer_get_length(c->out) <= RESP_PREAUTH_OUT)
        return false;
    c->srv->core->stats.drops[DROP_PROTOCOL]++;
    client_close(c, "unauthenticated_unread");
    return true;
}

/*
 * Runs complete commands from buf; returns the bytes consumed. A batch's
 * replies past RESP_WRITE_EARLY are written before it ends, unless the
 * kernel is already refusing; past RESP_OUT_HIGH unwritten, c pauses.
 */
static size_t run_commands(struct resp_client *c, char *buf, size_t len, bool *incomplete)
{
    struct resp_server *srv = c->srv;
    size_t off = 0;

    while (off < len && !c->closing && !c->paused && !c->held) {
        const char *err = NULL;
        size_t argc = 0;
        ssize_t n = resp_parse_command(buf + off, len - off, &srv->limits, srv->argv, &argc, &err);

        if (n == -2) {
            *incomplete = true;
            break;
        }
        if (n < 0) {
            protocol_error(c, err);
            break;
        }
        off += (size_t)n;
        if (argc > 0)
            dispatch(c, srv->argv, argc);
        if (c->closed)
            break;
        if (evbuffer_get_length(c->out) >= RESP_WRITE_EARLY && !(c->armed & EV_WRITE)) {
            if (write_out(c) < 0)
                break;
            client_arm(c); /* EV_WRITE for what was refused */
            if (c->closed)
                break;
        }
        if (!c->authed && preauth_unread(c))
            break;
        if (evbuffer_get_length(c->out) > RESP_OUT_HIGH)
            c->paused = true; /* client_arm drops EV_READ when the callback ends */
    }
    return off;
}

/*
 * After a batch: an incomplete command larger than a request may be is an
 * error (before AUTH: a few KB). Also starts or stops request-timeout's clock.
 */
static void check_pending(struct resp_client *c, bool incomplete, size_t left)
{
    size_t max = c->authed ? c->srv->max_pending : RESP_PREAUTH_PENDING;

    if (incomplete && !c->closing && left > max)
        protocol_error(c, "Protocol error: request too large");
    if (c->closed || c->closing || c->paused || c->held || evbuffer_get_length(c->in) == 0)
        c->partial_since_ms = 0;
    else if (c->partial_since_ms == 0)
        c->partial_since_ms = net_now_ms();
}

/* Runs every complete command kept in c->in, then drains them at once. */
static void process_input(struct resp_client *c)
{
    size_t len = evbuffer_get_length(c->in), off;
    bool incomplete = false;

    if (len == 0)
        return;
    off = run_commands(c, (char *)evbuffer_pullup(c->in, -1), len, &incomplete);
    if (c->closed)
        return;
    c->srv->core->stats.bytes_in += off;
    evbuffer_drain(c->in, off);
    check_pending(c, incomplete, len - off);
}

static void add_or_abort(struct evbuffer *buf, const void *p, size_t n)
{
    /* Allocation failure aborts everywhere else (mem.h); do the same here. */
    if (evbuffer_add(buf, p, n) < 0) {
        log_error("oom", "where=resp_input bytes=%zu", n);
        abort();
    }
}

/* Runs n bytes just read, after any input kept from before; keeps what is left. */
static void consume(struct resp_client *c, char *p, size_t n)
{
    bool incomplete = false;
    size_t off;

    if (evbuffer_get_length(c->in) > 0) {
        add_or_abort(c->in, p, n);
        process_input(c);
        return;
    }
    off = run_commands(c, p, n, &incomplete);
    if (c->closed)
        return;
    c->srv->core->stats.bytes_in += off;
    if (off < n && !c->closing)
        add_or_abort(c->in, p + off, n - off);
    check_pending(c, incomplete, n - off);
}

/*
 * Reads and runs input until a short read (the socket is drained), the
 * budget is spent, or c pauses or closes. No FIONREAD: the bytes land in
 * the server's buffer and only what is left unrun is copied to c->in.
 */
static void client_read(struct resp_client *c)
{
    struct resp_server *srv = c->srv;
    size_t budget = RESP_READ_BUDGET;

    while (!c->closed && !c->closing && !c->paused && !c->held) {
        ssize_t n = read(c->fd, srv->rbuf, sizeof(srv->rbuf));

        if (n > 0) {
            consume(c, srv->rbuf, (size_t)n);
            if ((size_t)n < sizeof(srv->rbuf) || (size_t)n >= budget)
                return;
            budget -= (size_t)n;
        } else if (n == 0) {
            /* Half-closed after its last command (nc, shell pipes): answer it first. */
            if (evbuffer_get_length(c->out) > 0)
                close_after_flush(c, "eof");
            else
                client_close(c, "eof");
            return;
        } else if (errno != EINTR) {
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                client_close(c, "error");
            return;
        }
    }
}

/*
 * After c's input or output changed: writes its output (when try_write;
 * false when the kernel is known to be full), finishes a close-after-flush,
 * resumes a paused client whose output is down to RESP_OUT_LOW (running the
 * input it left, which may pause it again), then arms its event for the
 * rest.
 */
static void client_settle(struct resp_client *c, bool try_write)
{
    for (;;) {
        if (try_write && evbuffer_get_length(c->out) > 0) {
            if (write_out(c) < 0)
                return;
        }
        if (c->closing) {
            if (evbuffer_get_length(c->out) == 0) {
                client_close(c, NULL);
                return;
            }
            break;
        }
        if (!c->paused || evbuffer_get_length(c->out) > RESP_OUT_LOW)
            break;
        c->paused = false;
        process_input(c);
        if (c->closed)
            return;
        try_write = true;
    }
    client_arm(c);
}

static void client_on_event(evutil_socket_t fd, short what, void *arg)
{
    struct resp_client *c = arg;

    (void)fd;
    if ((what & EV_TIMEOUT) && c->held && !c->closing) {
        /* The hold after a failed AUTH is over: run what waited, read again. */
        c->held = false;
        process_input(c);
        if (c->closed)
            return;
        client_settle(c, true);
        return;
    }
    if (what & EV_TIMEOUT) {
        client_close(c, "timeout");
        return;
    }
    if ((what & EV_READ) && !c->closing && !c->paused) {
        client_read(c);
        if (c->closed)
            return;
    }
    client_settle(c, (what & EV_WRITE) || !(c->armed & EV_WRITE));
}

/* The handles' sink_ops.flush: writes the client's output. */
static int resp_flush(struct sink *s)
{
    struct resp_client *c = ((struct resp_handle *)s)->client;

    if (c->closed)
        return -1;
    client_settle(c, !(c->armed & EV_WRITE));
    return c->closed ? -1 : 0;
}

/*
 * flush_ev: writes every subscriber that deliveries made dirty in this
 * pass. A write may run a paused client's input, whose PUBLISH appends to
 * the list: it is re-read every round.
 */
static void resp_on_flush(evutil_socket_t fd, short what, void *arg)
{
    struct resp_server *srv = arg;

    (void)fd;
    (void)what;
    for (uint32_t i = 0; i < srv->dirty.n; i++) {
        struct sink *s = srv->dirty.v[i];

        s->flags &= (uint8_t)~SINK_DIRTY;
        resp_flush(s);
    }
    srv->dirty.n = 0;
}

/* ---- connection --------------------------------------------------------- */

static void mark_handles_closed(struct resp_client *c)
{
    c->channel.sink.flags |= SINK_CLOSED;
    c->pattern.sink.flags |= SINK_CLOSED;
}

/* Stops reading and deliveries; closes once the queued output is written. */
static void close_after_flush(struct resp_client *c, const char *reason)
{
    if (c->closed || c->closing)
        return;
    c->closing = true;
    mark_handles_closed(c);
    log_debug("resp_closing", "conn=%u peer=%s reason=%s", c->id, c->peer, reason);
    if (evbuffer_get_length(c->out) > 0 && !(c->armed & EV_WRITE) && write_out(c) < 0)
        return;
    if (evbuffer_get_length(c->out) == 0) {
        client_close(c, reason);
        return;
    }
    client_arm(c); /* EV_WRITE only, with the flush timeout */
}

static void list_unlink(struct resp_server *srv, struct resp_client *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        srv->clients = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
}

/* Frees the struct and its buffers (the close list, or a failed client_new). */
static void client_free(struct close_entry *e)
{
    struct resp_client *c = (struct resp_client *)e;

    if (c->channel.sink.flags & SINK_DIRTY) /* closed while a flush was due */
        dirty_prune(&c->srv->dirty);
    if (c->in)
        evbuffer_free(c->in);
    if (c->out)
        evbuffer_free(c->out);
    mem_free(c);
}

/* Frees the socket's event and closes the socket. */
static void client_close_io(struct resp_client *c)
{
    if (c->ev)
        event_free(c->ev);
    c->ev = NULL;
    close(c->fd);
}

/* Closes now (idempotent): detach, free the socket, free the struct later. reason NULL: flushed. */
static void client_close(struct resp_client *c, const char *reason)
{
    struct resp_server *srv = c->srv;
    struct core *core = srv->core;

    if (c->closed)
        return;
    c->closed = true;
    mark_handles_closed(c);
    sub_remove_all(c, false, false);
    sub_remove_all(c, true, false);
    client_close_io(c);
    list_unlink(srv, c);
    if (c->authed)
        log_info("resp_close", "conn=%u peer=%s reason=%s", c->id, c->peer,
                 reason ? reason : "done");
    else
        log_debug("resp_close", "conn=%u peer=%s reason=%s", c->id, c->peer,
                  reason ? reason : "done");
    core_preauth_leave(core, &c->preauth);
    core_conn_closed(core, EP_RESP);
    core_defer_free(core, &c->close);
}

/* core.c closes an unauthenticated client: auth-timeout passed, or a newer one needs its place.
 */
static void resp_expire(struct preauth *p, enum broker_drop why)
{
    struct resp_client *c =
        (struct resp_client *)((char *)p - offsetof(struct resp_client, preauth));

    c->srv->core->stats.drops[why]++;
    client_close(c, core_drop_name(why));
}

static struct resp_client *client_new(struct resp_server *srv, evutil_socket_t fd)
{
    struct core *core = srv->core;
    struct resp_client *c = mem_calloc(1, sizeof(*c));
    int one = 1;

    c->srv = srv;
    c->close.free_fn = client_free;
    c->channel.sink.form = SUB_FORM_MESSAGE;
    c->channel.client = c;
    c->pattern.sink.form = SUB_FORM_PMESSAGE;
    c->pattern.client = c;
    c->id = ++srv->next_id;
    c->authed = core->conf->requirepass == NULL;
    c->fd = fd;
    net_peer_name(fd, c->peer, sizeof(c->peer));
    /* Replies are small and latency-bound; Redis disables Nagle too. */
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    /* The listener made fd non-blocking. */
    c->in = evbuffer_new();
    c->out = evbuffer_new();
    c->ev = event_new(core->base, fd, EV_READ | EV_PERSIST, client_on_event, c);
    c->armed = EV_READ;
    if (!c->in || !c->out || !c->ev || event_add(c->ev, NULL) < 0) {
        client_close_io(c);
        client_free(&c->close);
        return NULL;
    }
    return c;
}

/* Refuses a connection over max-clients (core_admit counted it). */
static void refuse(struct core *core, evutil_socket_t fd)
{
    static const char msg[] = "-ERR max number of clients reached\r\n";

    log_warn("resp_refused", "reason=max_clients open=%" PRIu64, core_conn_count(core));
    /* Best effort: the socket is fresh, its send buffer is empty. */
    (void)send(fd, msg, sizeof(msg) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
    close(fd);
}

static void resp_on_accept(int fd, struct sockaddr *sa, int salen, void *arg)
{
    struct resp_server *srv = arg;
    struct core *core = srv->core;
    struct resp_client *c;

    (void)sa;
    (void)salen;
    if (core->stopping) {
        close(fd);
        return;
    }
    /* Without requirepass a client is authenticated from its first byte. */
    if (!core->conf->requirepass && !core_admit(core)) {
        refuse(core, fd);
        return;
    }
    c = client_new(srv, fd);
    if (!c) {
        log_warn("resp_accept_failed", "reason=event");
        return;
    }
    c->next = srv->clients;
    if (srv->clients)
        srv->clients->prev = c;
    srv->clients = c;
    core->stats.conns_current[EP_RESP]++;
    core->stats.conns_total[EP_RESP]++;
    c->preauth.expire = resp_expire;
    if (!c->authed)
        core_preauth_add(core, &c->preauth);
    log_debug("resp_open", "conn=%u peer=%s", c->id, c->peer);
}

/* ---- exported ----------------------------------------------------------- */

struct resp_server *resp_server_start(struct core *core, const char **err)
{
    struct resp_server *srv = mem_calloc(1, sizeof(*srv));

    srv->core = core;
    srv->limits.max_args = RESP_MAX_ARGS;
    srv->limits.max_bulk = core->conf->max_payload + RESP_BULK_SLACK;
    srv->limits.max_inline = RESP_MAX_INLINE;
    srv->max_pending = core->conf->max_payload + RESP_PENDING_SLACK;
    srv->flush_ev = event_new(core->base, -1, 0, resp_on_flush, srv);
    if (!srv->flush_ev) {
        mem_free(srv);
        *err = "event_new failed";
        return NULL;
    }
    srv->listener =
        core_listen(core, EP_RESP, core->conf->resp_port, resp_on_accept, srv, &srv->port, err);
    if (!srv->listener) {
        event_free(srv->flush_ev);
        mem_free(srv);
        return NULL;
    }
    core->resp_subs.ops = &resp_sink_ops;
    return srv;
}

void resp_server_shutdown(struct resp_server *srv)
{
    struct resp_client *c, *next;

    if (!srv)
        return;
    listener_free(srv->listener);
    srv->listener = NULL;
    for (c = srv->clients; c; c = next) {
        next = c->next;
        close_after_flush(c, "shutdown");
    }
}

void resp_server_sweep(struct resp_server *srv, uint64_t now_ms)
{
    struct resp_client *c, *next;

    if (!srv)
        return;
    for (c = srv->clients; c; c = next) {
        next = c->next;
        if (c->partial_since_ms == 0 ||
            now_ms - c->partial_since_ms < (uint64_t)srv->core->conf->request_timeout)
            continue;
        srv->core->stats.drops[DROP_REQUEST_TIMEOUT]++;
        log_info("request_timeout", "endpoint=resp conn=%u peer=%s", c->id, c->peer);
        client_close(c, "request_timeout");
    }
}

void resp_server_free(struct resp_server *srv)
{
    struct resp_client *c, *next;

    if (!srv)
        return;
    listener_free(srv->listener);
    /* Clients still open after the loop (shutdown timeout): only free them. */
    dirty_free(&srv->dirty); /* no client is written again */
    for (c = srv->clients; c; c = next) {
        next = c->next;
        client_close_io(c);
        ptrset_clear(&c->channels);
        ptrset_clear(&c->patterns);
        client_free(&c->close);
    }
    srv->core->resp_subs.ops = NULL;
    event_free(srv->flush_ev);
    mem_free(srv);
}

/* The handles' sink_ops.deliver: a `message` or `pmessage` for the fan-out. */
static int resp_deliver(struct sink *s, struct frame *f)
{
    struct resp_client *c = ((struct resp_handle *)s)->client;
    struct core *core = c->srv->core;
    size_t queued;

    if (c->closed || c->closing)
        return 0;
    queued = evbuffer_get_length(c->out);
    if (!outq_fits(queued, f->len, core->conf->client_output_limit)) {
        log_warn("slow_consumer", "conn=%u peer=%s queued=%zu", c->id, c->peer, queued + f->len);
        core->stats.drops[DROP_SLOW_CONSUMER]++;
        client_close(c, "slow_consumer");
        return -1;
    }
    if (outq_append(c->out, f, 0) < 0) {
        client_close(c, "error");
        return -1;
    }
    core->stats.bytes_out += f->len;
    /* Written after this pass's I/O; with EV_WRITE armed the write callback gets it. */
    if (!(c->armed & EV_WRITE))
        mark_dirty(c);
    return 0;
}

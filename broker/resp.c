/*
 * resp.c - the RESP endpoint: Redis clients publishing and subscribing.
 *
 * One bufferevent per client. A read callback pulls the whole input up into
 * one contiguous block, parses every complete command in it with the pure
 * parser (resp_parse.c), dispatches each through a small command table and
 * drains what was consumed once: a pipelined batch costs one pullup, one
 * drain and one append per reply, with no allocation per command (the argv
 * views live in one scratch array on the server). The batch's replies
 * collect in a server-wide scratch evbuffer and are written straight to the
 * socket at the end when nothing is queued ahead of them (Redis writes
 * before it sleeps the same way): a request costs a read and a write, not
 * also arming and disarming a write event. Only what the kernel refuses
 * goes to the bufferevent.
 *
 * A client subscribes through two handles embedded in its struct, one per
 * delivery form: `channel` (SUBSCRIBE, `message`) and `pattern`
 * (PSUBSCRIBE, `pmessage`), so the same text may be both a channel and a
 * pattern of one client, as in Redis. Each handle's sub_target is the trie
 * subscriber in b->resp_trie; the client also keeps its own list of
 * (node, kind) so UNSUBSCRIBE with no argument and close remove exactly its
 * entries. Invariant: an entry is in c->subs iff the handle is in that
 * trie node; both change together (Redis pubsub.c).
 *
 * Output: deliveries go to the bufferevent's output by reference to the
 * shared frame, after any replies not yet written. Two bounds apply.
 * Replies to the client's own commands are backpressure: past RESP_OUT_HIGH
 * the client is no longer read or parsed until the write callback sees the
 * output below RESP_OUT_LOW. Deliveries are fan-out and must not slow publishers:
 * past client-output-limit the subscriber is closed as a slow consumer.
 *
 * Closing: client_close detaches from the trie (the router collects targets
 * before delivering, so this is safe inside a delivery), frees the
 * bufferevent and queues the struct on the broker's close list. Errors that
 * Redis answers before closing (protocol errors, QUIT, shutdown) use
 * close-after-flush: reading stops, the handles are marked closed so no
 * more deliveries queue, and the write callback closes once the output is
 * empty (or a write timeout passes).
 *
 * Rejected: a per-client dict of subscriptions (UNSUBSCRIBE by name scans
 * the client's list; unsubscribing by name is rare next to close and
 * UNSUBSCRIBE-all, which are linear anyway), and a resumable parser state
 * per client (the parser re-scans a split command; see resp_parse.c).
 */
#include "broker/resp.h"

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
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "broker/resp_parse.h"
#include "broker/router.h"
#include "common/frame.h"
#include "common/outbuf.h"
#include "common/mem.h"
#include "common/net.h"
#include "common/trie.h"

#define RESP_MAX_ARGS      1024
#define RESP_MAX_INLINE    (64 * 1024)
#define RESP_BULK_SLACK    1024
#define RESP_PENDING_SLACK (64 * 1024)
#define RESP_OUT_HIGH      (1024 * 1024)
#define RESP_OUT_LOW       (256 * 1024)
#define RESP_SCRATCH_FLUSH (64 * 1024)
#define RESP_FLUSH_TIMEOUT 10 /* seconds a closing client has to read its last replies */
#define RESP_VERSION       "0.1.0"

#define ERR_SUBSCRIBED_CTX                                                                         \
    "-ERR Can't execute '%s': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are "   \
    "allowed in this context"

struct resp_client;

/* A trie subscriber: target first, so the router's sub_target * is the handle. */
struct resp_handle {
    struct sub_target target;
    struct resp_client *client;
};

/* One of the client's subscriptions: the trie node holding one of its handles. */
struct resp_sub {
    struct trie_node *node;
    uint32_t len; /* pattern length, to skip most entries without a memcmp */
    bool pattern; /* the pattern handle (PSUBSCRIBE), else the channel handle */
};

struct resp_client {
    struct close_entry close;
    struct resp_handle channel;
    struct resp_handle pattern;
    struct resp_server *srv;
    struct bufferevent *bev;
    struct resp_client *prev, *next;
    struct resp_sub *subs;
    uint32_t nsubs, subs_cap;
    uint32_t id;
    bool authed;
    bool closed;  /* client_close ran; freed at the next close-list sweep */
    bool closing; /* close once the output is flushed */
    bool paused;  /* reading stopped: unread replies past RESP_OUT_HIGH */
    char peer[64];
};

struct resp_server {
    struct broker *b;
    struct evconnlistener *listener;
    struct resp_client *clients;
    struct resp_limits limits;
    size_t max_pending; /* bytes of one incomplete command before a protocol error */
    uint32_t next_id;
    int port;
    uint64_t pubsub_clients;           /* clients with at least one subscription */
    uint64_t channel_subs;             /* (channel, client) pairs */
    uint64_t pattern_subs;             /* (pattern, client) pairs */
    struct evbuffer *scratch;          /* replies of the batch being run (see flush_replies) */
    struct resp_client *scratch_owner; /* whose batch, or NULL */
    struct resp_arg argv[RESP_MAX_ARGS];
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
static void process_input(struct resp_client *c);

/* ---- replies ------------------------------------------------------------ */

/* Where c's replies go: the batch scratch while c's input is being run, else its output. */
static struct evbuffer *reply_buf(struct resp_client *c)
{
    if (c->srv->scratch_owner == c)
        return c->srv->scratch;
    return bufferevent_get_output(c->bev);
}

static void reply_raw(struct resp_client *c, const void *p, size_t n)
{
    /* Allocation failure aborts everywhere else (mem.h); do the same here. */
    if (evbuffer_add(reply_buf(c), p, n) < 0) {
        log_error("oom", "where=resp_reply bytes=%zu", n);
        abort();
    }
    c->srv->b->stats.bytes_out += n;
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

/* Index of the client's subscription to name of this kind, or -1. */
static long sub_find(const struct resp_client *c, const struct resp_arg *name, bool pattern)
{
    for (uint32_t i = 0; i < c->nsubs; i++) {
        const struct resp_sub *s = &c->subs[i];
        size_t len;

        if (s->pattern != pattern || s->len != name->len)
            continue;
        if (memcmp(trie_node_pattern(s->node, &len), name->ptr, name->len) == 0)
            return (long)i;
    }
    return -1;
}

/*
 * Subscribes the client's handle of this kind to name (validated). Returns 0
 * when subscribed or already subscribed, -1 at max-subscriptions.
 */
static int sub_add(struct resp_client *c, const struct resp_arg *name, bool pattern)
{
    struct resp_server *srv = c->srv;
    struct resp_handle *h = pattern ? &c->pattern : &c->channel;
    int64_t max = srv->b->conf->max_subscriptions;
    struct trie_node *node;
    bool first, added;

    node = trie_subscribe(srv->b->resp_trie, name->ptr, name->len, &h->target, &first, &added);
    if (!added)
        return 0;
    if (max > 0 && c->nsubs >= (uint64_t)max) {
        trie_unsubscribe_node(srv->b->resp_trie, node, &h->target, &first);
        return -1;
    }
    if (c->nsubs == c->subs_cap) {
        c->subs_cap = c->subs_cap ? c->subs_cap * 2 : 4;
        c->subs = mem_realloc(c->subs, c->subs_cap * sizeof(*c->subs));
    }
    c->subs[c->nsubs].node = node;
    c->subs[c->nsubs].len = (uint32_t)name->len;
    c->subs[c->nsubs].pattern = pattern;
    if (c->nsubs++ == 0)
        srv->pubsub_clients++;
    (*kind_counter(srv, pattern))++;
    return 0;
}

/* Removes subscription i (order is not kept). */
static void sub_remove(struct resp_client *c, uint32_t i)
{
    struct resp_server *srv = c->srv;
    struct resp_sub *s = &c->subs[i];
    struct resp_handle *h = s->pattern ? &c->pattern : &c->channel;
    bool last;

    trie_unsubscribe_node(srv->b->resp_trie, s->node, &h->target, &last);
    (*kind_counter(srv, s->pattern))--;
    c->subs[i] = c->subs[--c->nsubs];
    if (c->nsubs == 0)
        srv->pubsub_clients--;
}

/* Drops every subscription of this kind, replying for each when reply is set. */
static void sub_remove_all(struct resp_client *c, bool pattern, bool reply)
{
    const char *kind = pattern ? "punsubscribe" : "unsubscribe";
    bool any = false;

    for (uint32_t i = c->nsubs; i-- > 0;) {
        size_t len;
        const char *name;

        if (c->subs[i].pattern != pattern)
            continue;
        any = true;
        if (reply) {
            name = trie_node_pattern(c->subs[i].node, &len);
            reply_sub_event(c, kind, name, len, c->nsubs - 1u);
        }
        sub_remove(c, i);
    }
    if (reply && !any)
        reply_sub_event(c, kind, NULL, 0, c->nsubs);
}

static void do_subscribe(struct resp_client *c, const struct resp_arg *argv, size_t argc,
                         bool pattern)
{
    const struct topic_limits *lim = &c->srv->b->limits;
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
                        c->nsubs);
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
        long at = sub_find(c, &argv[i], pattern);

        if (at >= 0)
            sub_remove(c, (uint32_t)at);
        reply_sub_event(c, pattern ? "punsubscribe" : "unsubscribe", argv[i].ptr, argv[i].len,
                        c->nsubs);
    }
}

/* ---- commands ----------------------------------------------------------- */

static void cmd_publish(struct resp_client *c, const struct resp_arg *argv, size_t argc)
{
    struct broker *b = c->srv->b;
    struct router_result res;
    const char *err;

    (void)argc;
    if (!topic_valid(argv[1].ptr, argv[1].len, &b->limits, &err)) {
        reply_errorf(c, "-ERR invalid topic: %s", err);
        return;
    }
    if (argv[2].len > b->conf->max_payload) {
        b->stats.drops[DROP_OVERSIZE]++;
        REPLY_LIT(c, "-ERR payload exceeds max-payload\r\n");
        return;
    }
    router_publish(b, argv[1].ptr, argv[1].len, argv[2].ptr, argv[2].len, &res);
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
    if (c->nsubs > 0) {
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

/* Checks user (NULL: the default user) and password; replies -WRONGPASS on failure. */
static bool auth_check(struct resp_client *c, const struct resp_arg *user,
                       const struct resp_arg *pass)
{
    struct broker *b = c->srv->b;

    if ((!user || (user->len == 7 && memcmp(user->ptr, "default", 7) == 0)) &&
        broker_auth_ok(b, pass->ptr, pass->len)) {
        c->authed = true;
        return true;
    }
    b->stats.drops[DROP_AUTH]++;
    log_info("resp_auth_failed", "conn=%u peer=%s", c->id, c->peer);
    REPLY_LIT(c, "-WRONGPASS invalid username-password pair or user is disabled.\r\n");
    return false;
}

static void cmd_auth(struct resp_client *c, const struct resp_arg *argv, size_t argc)
{
    if (argc > 3) {
        REPLY_LIT(c, "-ERR syntax error\r\n");
        return;
    }
    if (argc == 2 && !c->srv->b->conf->requirepass) {
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
    const struct broker *b = srv->b;

    return snprintf(p, cap,
                    "# Server\r\nherald_version:%s\r\nprocess_id:%ld\r\ntcp_port:%d\r\n"
                    "uptime_in_seconds:%" PRIu64 "\r\n",
                    RESP_VERSION, (long)getpid(), srv->port,
                    (net_now_ms() - b->started_ms) / 1000u);
}

static int info_clients(const struct resp_server *srv, char *p, size_t cap)
{
    return snprintf(p, cap,
                    "# Clients\r\nconnected_clients:%" PRIu64 "\r\npubsub_clients:%" PRIu64 "\r\n",
                    srv->b->stats.conns_current[EP_RESP], srv->pubsub_clients);
}

static int info_stats(const struct resp_server *srv, char *p, size_t cap)
{
    const struct broker_stats *s = &srv->b->stats;

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
    c->authed = c->srv->b->conf->requirepass == NULL;
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
        c->srv->b->stats.drops[DROP_AUTH]++;
        REPLY_LIT(c, "-NOAUTH Authentication required.\r\n");
        return;
    }
    if (c->nsubs > 0 && !(cmd->flags & CMD_PUBSUB)) {
        reply_errorf(c, ERR_SUBSCRIBED_CTX, cmd->name);
        return;
    }
    cmd->fn(c, argv, argc);
}

/* ---- connection --------------------------------------------------------- */

static void pause_reading(struct resp_client *c)
{
    c->paused = true;
    bufferevent_disable(c->bev, EV_READ);
    /* The write callback now fires once the output drains below the low mark. */
    bufferevent_setwatermark(c->bev, EV_WRITE, RESP_OUT_LOW, 0);
}

static void protocol_error(struct resp_client *c, const char *err)
{
    c->srv->b->stats.drops[DROP_PROTOCOL]++;
    reply_errorf(c, "-ERR %s", err);
    close_after_flush(c, "protocol");
}

/*
 * Moves the batch's replies to c's output. When nothing is queued ahead of
 * them they are written to the socket at once, as Redis does before it
 * sleeps: most replies fit the socket buffer, and this skips arming a write
 * event and a loop pass per request. What the kernel refuses is queued on
 * the bufferevent, which also reports any socket error.
 */
static void flush_replies(struct resp_client *c)
{
    struct resp_server *srv = c->srv;
    struct evbuffer *out;

    if (srv->scratch_owner != c || evbuffer_get_length(srv->scratch) == 0)
        return;
    out = bufferevent_get_output(c->bev);
    if (evbuffer_get_length(out) == 0)
        (void)evbuffer_write(srv->scratch, bufferevent_getfd(c->bev));
    if (evbuffer_get_length(srv->scratch) > 0 && evbuffer_add_buffer(out, srv->scratch) < 0) {
        log_error("oom", "where=resp_flush bytes=%zu", evbuffer_get_length(srv->scratch));
        abort();
    }
}

/* Runs complete commands from buf; returns the bytes consumed. */
static size_t run_commands(struct resp_client *c, char *buf, size_t len, bool *incomplete)
{
    struct resp_server *srv = c->srv;
    size_t off = 0;

    while (off < len && !c->closing && !c->paused) {
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
        if (evbuffer_get_length(srv->scratch) >= RESP_SCRATCH_FLUSH)
            flush_replies(c);
        if (evbuffer_get_length(bufferevent_get_output(c->bev)) > RESP_OUT_HIGH)
            pause_reading(c);
    }
    return off;
}

/* Parses and runs every complete command in the input, then drains them at once. */
static void process_input(struct resp_client *c)
{
    struct resp_server *srv = c->srv;
    struct evbuffer *in = bufferevent_get_input(c->bev);
    size_t len = evbuffer_get_length(in), off;
    bool incomplete = false;

    if (len == 0)
        return;
    srv->scratch_owner = c;
    off = run_commands(c, (char *)evbuffer_pullup(in, -1), len, &incomplete);
    if (!c->closed) {
        srv->b->stats.bytes_in += off;
        evbuffer_drain(in, off);
        if (incomplete && !c->closing && len - off > srv->max_pending)
            protocol_error(c, "Protocol error: request too large");
    }
    if (!c->closed)
        flush_replies(c);
    srv->scratch_owner = NULL;
}

static void resp_on_read(struct bufferevent *bev, void *arg)
{
    (void)bev;
    process_input(arg);
}

static void resp_on_write(struct bufferevent *bev, void *arg)
{
    struct resp_client *c = arg;
    size_t left = evbuffer_get_length(bufferevent_get_output(bev));

    if (c->closing) {
        if (left == 0)
            client_close(c, NULL);
        return;
    }
    if (c->paused && left <= RESP_OUT_LOW) {
        c->paused = false;
        bufferevent_setwatermark(bev, EV_WRITE, 0, 0);
        bufferevent_enable(bev, EV_READ);
        process_input(c);
    }
}

static void resp_on_event(struct bufferevent *bev, short what, void *arg)
{
    struct resp_client *c = arg;

    if ((what & BEV_EVENT_EOF) && !(what & BEV_EVENT_ERROR) &&
        evbuffer_get_length(bufferevent_get_output(bev)) > 0) {
        /* Half-closed after its last command (nc, shell pipes): answer it first. */
        close_after_flush(c, "eof");
        return;
    }
    client_close(c, (what & BEV_EVENT_TIMEOUT) ? "timeout"
                    : (what & BEV_EVENT_EOF)   ? "eof"
                                               : "error");
}

static void mark_handles_closed(struct resp_client *c)
{
    c->channel.target.closed = true;
    c->pattern.target.closed = true;
}

/* Stops reading and deliveries; closes once the queued output is written. */
static void close_after_flush(struct resp_client *c, const char *reason)
{
    struct timeval tv = {RESP_FLUSH_TIMEOUT, 0};

    if (c->closed || c->closing)
        return;
    c->closing = true;
    mark_handles_closed(c);
    log_debug("resp_closing", "conn=%u peer=%s reason=%s", c->id, c->peer, reason);
    flush_replies(c);
    if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0) {
        client_close(c, reason);
        return;
    }
    bufferevent_disable(c->bev, EV_READ);
    bufferevent_setwatermark(c->bev, EV_WRITE, 0, 0);
    bufferevent_set_timeouts(c->bev, NULL, &tv);
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

static void client_free(struct close_entry *e)
{
    struct resp_client *c = (struct resp_client *)e;

    mem_free(c->subs);
    mem_free(c);
}

/* Closes now (idempotent): detach, free the socket, free the struct later. reason NULL: flushed. */
static void client_close(struct resp_client *c, const char *reason)
{
    struct resp_server *srv = c->srv;
    struct broker *b = srv->b;

    if (c->closed)
        return;
    c->closed = true;
    mark_handles_closed(c);
    sub_remove_all(c, false, false);
    sub_remove_all(c, true, false);
    if (srv->scratch_owner == c)
        evbuffer_drain(srv->scratch, evbuffer_get_length(srv->scratch));
    bufferevent_free(c->bev);
    c->bev = NULL;
    list_unlink(srv, c);
    log_info("resp_close", "conn=%u peer=%s reason=%s", c->id, c->peer, reason ? reason : "done");
    broker_conn_closed(b, EP_RESP);
    broker_defer_free(b, &c->close);
}

static struct resp_client *client_new(struct resp_server *srv, evutil_socket_t fd)
{
    struct broker *b = srv->b;
    struct resp_client *c = mem_calloc(1, sizeof(*c));
    int one = 1;

    c->srv = srv;
    c->close.free_fn = client_free;
    c->channel.target.kind = SUB_RESP_CHANNEL;
    c->channel.client = c;
    c->pattern.target.kind = SUB_RESP_PATTERN;
    c->pattern.client = c;
    c->id = ++srv->next_id;
    c->authed = b->conf->requirepass == NULL;
    net_peer_name(fd, c->peer, sizeof(c->peer));
    /* Replies are small and latency-bound; Redis disables Nagle too. */
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    c->bev = bufferevent_socket_new(b->base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (!c->bev) {
        close(fd);
        mem_free(c);
        return NULL;
    }
    /* libevent writes at most 16 KiB per pass by default; a subscriber
     * behind a busy topic needs whole socket buffers per write. */
    bufferevent_set_max_single_write(c->bev, 1 << 20);
    bufferevent_setcb(c->bev, resp_on_read, resp_on_write, resp_on_event, c);
    if (bufferevent_enable(c->bev, EV_READ | EV_WRITE) < 0) {
        bufferevent_free(c->bev);
        mem_free(c);
        return NULL;
    }
    return c;
}

static void refuse(struct broker *b, evutil_socket_t fd)
{
    static const char msg[] = "-ERR max number of clients reached\r\n";

    b->stats.drops[DROP_MAX_CLIENTS]++;
    log_warn("resp_refused", "reason=max_clients open=%" PRIu64, broker_conn_count(b));
    /* Best effort: the socket is fresh, its send buffer is empty. */
    (void)send(fd, msg, sizeof(msg) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
    close(fd);
}

static void resp_on_accept(struct evconnlistener *lev, evutil_socket_t fd, struct sockaddr *sa,
                           int salen, void *arg)
{
    struct resp_server *srv = arg;
    struct broker *b = srv->b;
    struct resp_client *c;

    (void)lev;
    (void)sa;
    (void)salen;
    if (b->stopping) {
        close(fd);
        return;
    }
    if (b->conf->max_clients > 0 && broker_conn_count(b) >= (uint64_t)b->conf->max_clients) {
        refuse(b, fd);
        return;
    }
    c = client_new(srv, fd);
    if (!c) {
        log_warn("resp_accept_failed", "reason=bufferevent");
        return;
    }
    c->next = srv->clients;
    if (srv->clients)
        srv->clients->prev = c;
    srv->clients = c;
    b->stats.conns_current[EP_RESP]++;
    b->stats.conns_total[EP_RESP]++;
    log_info("resp_open", "conn=%u peer=%s", c->id, c->peer);
}

static void resp_on_accept_error(struct evconnlistener *lev, void *arg)
{
    (void)lev;
    (void)arg;
    /* EMFILE and friends: libevent retries on the next readiness. */
    log_warn("resp_accept_error", "errno=%d", EVUTIL_SOCKET_ERROR());
}

/* ---- exported ----------------------------------------------------------- */

int resp_server_start(struct broker *b, const char **err)
{
    struct resp_server *srv;
    int fd;

    if (b->conf->resp_port == 0)
        return 0;
    fd = net_listen(b->conf->bind, (int)b->conf->resp_port, false, 511, err);
    if (fd < 0)
        return -1;
    srv = mem_calloc(1, sizeof(*srv));
    srv->b = b;
    srv->port = net_local_port(fd);
    srv->limits.max_args = RESP_MAX_ARGS;
    srv->limits.max_bulk = b->conf->max_payload + RESP_BULK_SLACK;
    srv->limits.max_inline = RESP_MAX_INLINE;
    srv->max_pending = b->conf->max_payload + RESP_PENDING_SLACK;
    srv->scratch = evbuffer_new();
    if (!srv->scratch) {
        close(fd);
        mem_free(srv);
        *err = "evbuffer_new failed";
        return -1;
    }
    /* Backlog 0: net_listen already called listen(511); keep that backlog. */
    srv->listener = evconnlistener_new(b->base, resp_on_accept, srv,
                                       LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 0, fd);
    if (!srv->listener) {
        close(fd);
        evbuffer_free(srv->scratch);
        mem_free(srv);
        *err = "evconnlistener_new failed";
        return -1;
    }
    evconnlistener_set_error_cb(srv->listener, resp_on_accept_error);
    b->resp = srv;
    log_info("resp_listen", "bind=%s port=%d", b->conf->bind ? b->conf->bind : "*", srv->port);
    return 0;
}

void resp_server_shutdown(struct broker *b)
{
    struct resp_server *srv = b->resp;
    struct resp_client *c, *next;

    if (!srv)
        return;
    if (srv->listener) {
        evconnlistener_free(srv->listener);
        srv->listener = NULL;
    }
    for (c = srv->clients; c; c = next) {
        next = c->next;
        close_after_flush(c, "shutdown");
    }
}

void resp_server_free(struct broker *b)
{
    struct resp_server *srv = b->resp;
    struct resp_client *c, *next;

    if (!srv)
        return;
    if (srv->listener)
        evconnlistener_free(srv->listener);
    /* Clients still open after the loop (shutdown timeout): only free them. */
    for (c = srv->clients; c; c = next) {
        next = c->next;
        bufferevent_free(c->bev);
        client_free(&c->close);
    }
    evbuffer_free(srv->scratch);
    mem_free(srv);
    b->resp = NULL;
}

int resp_deliver(struct sub_target *t, struct frame *f)
{
    struct resp_client *c = ((struct resp_handle *)t)->client;
    struct broker *b = c->srv->b;
    struct evbuffer *out;
    size_t queued;

    if (c->closed || c->closing)
        return 0;
    /* Keep order with replies of c's own batch, should it be running. */
    flush_replies(c);
    out = bufferevent_get_output(c->bev);
    if (outbuf_add_frame(out, f) < 0) {
        client_close(c, "error");
        return -1;
    }
    b->stats.bytes_out += f->len;
    queued = evbuffer_get_length(out);
    if (queued > b->conf->client_output_limit) {
        log_warn("slow_consumer", "conn=%u peer=%s queued=%zu", c->id, c->peer, queued);
        b->stats.drops[DROP_SLOW_CONSUMER]++;
        client_close(c, "slow_consumer");
        return -1;
    }
    return 0;
}

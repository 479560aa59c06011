/*
 * resp_cmd.c - the RESP endpoint's commands: the table and the handlers.
 *
 * Commands: PUBLISH, SUBSCRIBE, UNSUBSCRIBE, PSUBSCRIBE, PUNSUBSCRIBE,
 * PING, ECHO, AUTH, INFO, QUIT, HELLO, COMMAND, CONFIG GET, SELECT, CLIENT
 * (SETNAME/SETINFO/ID), RESET. resp_conn.c parses each command in place
 * and hands its argument views to resp_cmd_dispatch, which scans the table
 * (PUBLISH first: the hot path), checks the arity (Redis's convention), AUTH
 * and the subscribed context, and runs the handler. Replies and errors are
 * Redis's, word for word, so client libraries and redis-benchmark work
 * unchanged. A handler does no I/O: it appends its reply to c->out and
 * changes the client's state; when the client must go after its reply
 * (QUIT, the last failed AUTH, max-clients at AUTH) it sets c->close_after,
 * and resp_conn.c closes it once the reply is written.
 *
 * A client subscribes through two handles embedded in its struct, one per
 * delivery form: `channel` (SUBSCRIBE, `message`) and `pattern`
 * (PSUBSCRIBE, `pmessage`), so the same text may be both a channel and a
 * pattern of one client, as in Redis. Each handle's struct sink is the trie
 * subscriber in core->resp_subs.trie; the client also keeps one set of trie
 * nodes per kind (ptrset: O(1) membership), so UNSUBSCRIBE by name is a
 * trie lookup plus a set probe whatever the client holds, and UNSUBSCRIBE
 * with no argument and close remove exactly its entries. Invariant: a node
 * is in c->channels (c->patterns) iff the channel (pattern) handle is in
 * that trie node; both change together (Redis pubsub.c). A linear scan of
 * the client's list per name cost 69 s of CPU for 3,000 PUNSUBSCRIBE names
 * after 100,000 PSUBSCRIBE, stalling every other client.
 *
 * Authentication. AUTH (or HELLO's AUTH option) checks requirepass in
 * constant time (core.c); the first success takes the client off the
 * unauthenticated list and counts it under max-clients, or refuses it
 * there. A failed AUTH replies -WRONGPASS and holds the client (c->held:
 * resp_conn.c reads and runs nothing of it for a moment), and the
 * RESP_AUTH_MAX_FAILURES-th failure closes it; failures are logged at most
 * once a second (core_auth_failed). RESET deauthenticates: the client is
 * back under auth-timeout.
 */
#include "broker/resp_internal.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "broker/router.h"
#include "common/log.h"
#include "common/net.h"
#include "common/topic.h"
#include "common/trie.h"

#define RESP_AUTH_MAX_FAILURES 3 /* failed AUTHs that close a connection */
#define RESP_VERSION           "0.1.0"

#define ERR_SUBSCRIBED_CTX                                                                         \
    "-ERR Can't execute '%s': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are "   \
    "allowed in this context"

typedef void resp_cmd_fn(struct resp_conn *c, const struct resp_arg *argv, size_t argc);

#define CMD_PUBSUB 0x1 /* allowed while subscribed */
#define CMD_NOAUTH 0x2 /* allowed before AUTH */

struct resp_cmd {
    const char *name; /* lower case, as Redis names commands in errors */
    uint8_t len;
    int8_t arity; /* Redis's convention: n exactly n words, -n at least n */
    uint8_t flags;
    resp_cmd_fn *fn;
};

/* ---- replies ------------------------------------------------------------ */

static void reply_raw(struct resp_conn *c, const void *p, size_t n)
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
static void reply_u64(struct resp_conn *c, char type, uint64_t v)
{
    char buf[24];
    size_t n = 1;

    buf[0] = type;
    n += put_u64(buf + 1, v);
    buf[n++] = '\r';
    buf[n++] = '\n';
    reply_raw(c, buf, n);
}

static void reply_bulk(struct resp_conn *c, const char *p, size_t len)
{
    reply_u64(c, '$', len);
    reply_raw(c, p, len);
    REPLY_LIT(c, "\r\n");
}

/* fmt must begin with "-ERR " or another error prefix; CR and LF become spaces. */
__attribute__((format(printf, 2, 3))) static void reply_errorf(struct resp_conn *c, const char *fmt,
                                                               ...)
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
static void reply_sub_event(struct resp_conn *c, const char *kind, const char *name, size_t len,
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

void resp_cmd_reply_error(struct resp_conn *c, const char *err)
{
    reply_errorf(c, "-ERR %s", err);
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
static uint64_t nsubs(const struct resp_conn *c)
{
    return (uint64_t)ptrset_count(&c->channels) + ptrset_count(&c->patterns);
}

static struct resp_handle *handle_of(struct resp_conn *c, bool pattern)
{
    return pattern ? &c->pattern : &c->channel;
}

static struct ptrset *set_of(struct resp_conn *c, bool pattern)
{
    return pattern ? &c->patterns : &c->channels;
}

/* The trie node of the client's subscription to name of this kind, or NULL: O(tokens). */
static struct trie_node *sub_find(struct resp_conn *c, const struct resp_arg *name, bool pattern)
{
    return trie_find_sub(c->srv->core->resp_subs.trie, name->ptr, name->len,
                         &handle_of(c, pattern)->sink);
}

/*
 * Subscribes the client's handle of this kind to name (validated). Returns 0
 * when subscribed or already subscribed, -1 at max-subscriptions.
 */
static int sub_add(struct resp_conn *c, const struct resp_arg *name, bool pattern)
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
static void sub_remove(struct resp_conn *c, struct trie_node *node, bool pattern)
{
    struct resp_server *srv = c->srv;

    ptrset_remove(set_of(c, pattern), node);
    trie_unsubscribe_node(srv->core->resp_subs.trie, node, &handle_of(c, pattern)->sink, NULL);
    (*kind_counter(srv, pattern))--;
    if (nsubs(c) == 0)
        srv->pubsub_clients--;
}

/* Drops every subscription of this kind, replying for each when reply is set. */
static void sub_remove_all(struct resp_conn *c, bool pattern, bool reply)
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

static void do_subscribe(struct resp_conn *c, const struct resp_arg *argv, size_t argc,
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

static void do_unsubscribe(struct resp_conn *c, const struct resp_arg *argv, size_t argc,
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

void resp_cmd_unsubscribe_all(struct resp_conn *c)
{
    sub_remove_all(c, false, false);
    sub_remove_all(c, true, false);
}

/* ---- commands ----------------------------------------------------------- */

static void cmd_publish(struct resp_conn *c, const struct resp_arg *argv, size_t argc)
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

static void cmd_subscribe(struct resp_conn *c, const struct resp_arg *argv, size_t argc)
{
    do_subscribe(c, argv, argc, false);
}

static void cmd_psubscribe(struct resp_conn *c, const struct resp_arg *argv, size_t argc)
{
    do_subscribe(c, argv, argc, true);
}

static void cmd_unsubscribe(struct resp_conn *c, const struct resp_arg *argv, size_t argc)
{
    do_unsubscribe(c, argv, argc, false);
}

static void cmd_punsubscribe(struct resp_conn *c, const struct resp_arg *argv, size_t argc)
{
    do_unsubscribe(c, argv, argc, true);
}

static void cmd_ping(struct resp_conn *c, const struct resp_arg *argv, size_t argc)
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

static void cmd_echo(struct resp_conn *c, const struct resp_arg *argv, size_t argc)
{
    (void)argc;
    reply_bulk(c, argv[1].ptr, argv[1].len);
}

/* The first successful AUTH: counted under max-clients from now on, or refused. */
static bool promote(struct resp_conn *c)
{
    struct core *core = c->srv->core;

    if (c->authed)
        return true;
    if (!core_admit(core)) {
        REPLY_LIT(c, "-ERR max number of clients reached\r\n");
        c->close_after = "max_clients";
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
static bool auth_check(struct resp_conn *c, const struct resp_arg *user,
                       const struct resp_arg *pass)
{
    struct core *core = c->srv->core;

    if ((!user || (user->len == 7 && memcmp(user->ptr, "default", 7) == 0)) &&
        core_auth_ok(core, pass->ptr, pass->len))
        return promote(c);
    core_auth_failed(core, EP_RESP, c->peer);
    REPLY_LIT(c, "-WRONGPASS invalid username-password pair or user is disabled.\r\n");
    if (++c->auth_failures >= RESP_AUTH_MAX_FAILURES)
        c->close_after = "auth_failures";
    else
        c->held = true;
    return false;
}

static void cmd_auth(struct resp_conn *c, const struct resp_arg *argv, size_t argc)
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

static void reply_hello(struct resp_conn *c)
{
    REPLY_LIT(c, "*14\r\n$6\r\nserver\r\n$6\r\nherald\r\n$7\r\nversion\r\n");
    reply_bulk(c, RESP_VERSION, strlen(RESP_VERSION));
    REPLY_LIT(c, "$5\r\nproto\r\n:2\r\n$2\r\nid\r\n");
    reply_u64(c, ':', c->id);
    REPLY_LIT(c, "$4\r\nmode\r\n$10\r\nstandalone\r\n$4\r\nrole\r\n$6\r\nmaster\r\n"
                 "$7\r\nmodules\r\n*0\r\n");
}

static void cmd_hello(struct resp_conn *c, const struct resp_arg *argv, size_t argc)
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

static void cmd_info(struct resp_conn *c, const struct resp_arg *argv, size_t argc)
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

static void cmd_quit(struct resp_conn *c, const struct resp_arg *argv, size_t argc)
{
    (void)argv;
    (void)argc;
    REPLY_LIT(c, "+OK\r\n");
    c->close_after = "quit";
}

static void cmd_empty_array(struct resp_conn *c, const struct resp_arg *argv, size_t argc)
{
    (void)argv;
    (void)argc;
    REPLY_LIT(c, "*0\r\n");
}

static void reply_unknown_sub(struct resp_conn *c, const struct resp_arg *argv, const char *upper)
{
    reply_errorf(c, "-ERR unknown subcommand '%.*s'. Try %s HELP.", print_len(&argv[1], 128),
                 argv[1].ptr, upper);
}

static void cmd_config(struct resp_conn *c, const struct resp_arg *argv, size_t argc)
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

static void cmd_client(struct resp_conn *c, const struct resp_arg *argv, size_t argc)
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

static void cmd_select(struct resp_conn *c, const struct resp_arg *argv, size_t argc)
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

static void cmd_reset(struct resp_conn *c, const struct resp_arg *argv, size_t argc)
{
    (void)argv;
    (void)argc;
    resp_cmd_unsubscribe_all(c);
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
static void reply_unknown(struct resp_conn *c, const struct resp_arg *argv, size_t argc)
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

void resp_cmd_dispatch(struct resp_conn *c, const struct resp_arg *argv, size_t argc)
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

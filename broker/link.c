/*
 * link.c - the broker's link endpoint: msgpack frames over TCP.
 *
 * Owns the link listener and every struct link_conn. Links are few (one per
 * edge worker, CLI or C publisher), so each gets its own bufferevent for its
 * whole life, and its own streaming decoder (link_codec.c) with a frame
 * limit of max-payload + 4096 bytes of framing.
 *
 * A link_conn starts with its struct sub_target (kind SUB_LINK): that
 * pointer is what it subscribes into b->link_trie, and what the router hands
 * back to link_deliver(). The link also keeps the trie nodes it subscribed
 * to (an array, swap-removed on UNSUB), so closing unsubscribes every
 * pattern without a trie walk; the count is capped by max-subscriptions.
 *
 * States: HELLO (only a HELLO is accepted), READY, CLOSING (an ERR or the
 * shutdown is being flushed: reading is off, the patterns are already gone
 * from the trie, and the write callback closes once the output is empty;
 * a write timeout bounds the wait). link_close() is the one way out: it
 * detaches from the trie and the server's list, frees the bufferevent
 * (libevent finalizes it later, so queued frame references drop then) and
 * queues the struct on the broker's close list: never freed in a callback.
 *
 * Input is fed to the decoder one chunk at a time and decoded in between, so
 * the decoder never buffers more than one chunk beyond a frame. Request/
 * reply backpressure (STYLE.md §8): when a request's reply (a PUBACK, say,
 * that the link is not reading) takes the output past a high mark, reading
 * stops with the rest of its input left queued; the write callback resumes
 * at the low mark. A PING never pauses, nor does a frame that queued no
 * reply, however long the output already is with fan-out. Fan-out never
 * waits: link_deliver() closes a link past client-output-limit.
 *
 * Rejected: the edge's pooled, bufferevent-less connections (links are too
 * few to matter), and a per-link timer (the bufferevent's own write timeout
 * serves the close-after-flush wait).
 */
#include "broker/link.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <msgpack.h>

#include "broker/router.h"
#include "common/frame.h"
#include "common/outbuf.h"
#include "common/link_codec.h"
#include "common/mem.h"
#include "common/net.h"
#include "common/topic.h"
#include "common/trie.h"

#define LINK_FRAME_SLACK  4096       /* framing around the largest payload */
#define LINK_READ_CHUNK   (64 << 10) /* bytes fed to the decoder between decodes */
#define LINK_PAUSE_HIGH   (256 << 10)
#define LINK_CLOSE_WAIT_S 2 /* how long an ERR or shutdown flush may take */
#define LINK_STATS_MAX    2048

enum link_state {
    LINK_STATE_HELLO,
    LINK_STATE_READY,
    LINK_STATE_CLOSING,
};

struct link_conn {
    struct sub_target target; /* first: the trie subscriber (SUB_LINK) */
    struct close_entry close_entry;
    struct broker *b;
    struct link_server *srv;
    struct link_conn *prev, *next; /* the server's list of live links */
    struct bufferevent *bev;
    struct link_decoder *dec;
    struct trie_node **subs; /* nodes of b->link_trie holding this link */
    size_t nsubs, subs_cap;
    enum link_state state;
    bool paused; /* reading stopped: replies over the high mark */
    const char *close_reason;
    size_t output_limit; /* edge-output-limit for edges, else client-output-limit */
    uint32_t id;
    char peer[64];
    char role[16];
    char node[64];
};

struct link_server {
    struct broker *b;
    struct evconnlistener *listener;
    struct link_conn *links;
    uint32_t next_id;
    size_t pause_high, pause_low;
    msgpack_sbuffer sb; /* reply scratch, cleared before each encode */
};

static void link_close(struct link_conn *l, const char *reason);
static void process_input(struct link_conn *l);

/* ---- replies and closing ---------------------------------------------- */

/* Appends the reply encoded in the server's scratch buffer to l's output. */
static void send_scratch(struct link_conn *l)
{
    msgpack_sbuffer *sb = &l->srv->sb;

    if (evbuffer_add(bufferevent_get_output(l->bev), sb->data, sb->size) == 0)
        l->b->stats.bytes_out += sb->size;
}

static msgpack_sbuffer *scratch(struct link_conn *l)
{
    msgpack_sbuffer_clear(&l->srv->sb);
    return &l->srv->sb;
}

static void send_err(struct link_conn *l, const char *code, const char *text)
{
    link_encode_err(scratch(l), code, text);
    send_scratch(l);
}

static void unsubscribe_all(struct link_conn *l)
{
    for (size_t i = 0; i < l->nsubs; i++) {
        bool last;

        trie_unsubscribe_node(l->b->link_trie, l->subs[i], l, &last);
    }
    l->nsubs = 0;
}

/*
 * Stops reading and closes l once its output is flushed (at once when it is
 * already empty). Its patterns leave the trie now: no event is queued
 * behind an ERR. Always returns -1 (l may be closed).
 */
static int close_after_flush(struct link_conn *l, const char *reason)
{
    struct timeval tv = {LINK_CLOSE_WAIT_S, 0};

    if (l->state == LINK_STATE_CLOSING)
        return -1;
    l->state = LINK_STATE_CLOSING;
    l->close_reason = reason;
    unsubscribe_all(l);
    bufferevent_disable(l->bev, EV_READ);
    if (evbuffer_get_length(bufferevent_get_output(l->bev)) == 0) {
        link_close(l, reason);
        return -1;
    }
    bufferevent_setwatermark(l->bev, EV_WRITE, 0, 0);
    bufferevent_set_timeouts(l->bev, NULL, &tv);
    return -1;
}

/* Sends ERR code/text, counts drop, and closes after the flush. Returns -1. */
static int fail(struct link_conn *l, const char *code, const char *text, enum broker_drop drop)
{
    l->b->stats.drops[drop]++;
    log_info("link_error", "conn=%u peer=%s code=%s reason=\"%s\"", l->id, l->peer, code, text);
    send_err(l, code, text);
    return close_after_flush(l, code);
}

static void free_entry(struct close_entry *e)
{
    struct link_conn *l = (struct link_conn *)((char *)e - offsetof(struct link_conn, close_entry));

    mem_free(l->subs);
    mem_free(l);
}

static void list_remove(struct link_conn *l)
{
    if (l->prev)
        l->prev->next = l->next;
    else
        l->srv->links = l->next;
    if (l->next)
        l->next->prev = l->prev;
    l->prev = l->next = NULL;
}

/* The one way a link ends; idempotent. The struct is freed on a later loop pass. */
static void link_close(struct link_conn *l, const char *reason)
{
    if (l->target.closed)
        return;
    l->target.closed = true;
    l->state = LINK_STATE_CLOSING;
    unsubscribe_all(l);
    log_info("link_close", "conn=%u peer=%s reason=%s", l->id, l->peer, reason);
    link_decoder_free(l->dec);
    l->dec = NULL;
    bufferevent_free(l->bev);
    l->bev = NULL;
    list_remove(l);
    broker_conn_closed(l->b, EP_LINK);
    l->close_entry.free_fn = free_entry;
    broker_defer_free(l->b, &l->close_entry);
}

/* ---- frame handlers: each returns 0, or -1 when l is closing ---------- */

/* Copies a peer string for logs: bounded, and no byte that would break a key=value line. */
static void copy_name(char *dst, size_t cap, const struct link_str *s)
{
    size_t n = s->len < cap - 1 ? s->len : cap - 1;

    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s->ptr[i];

        dst[i] = c > 0x20 && c < 0x7f && c != '"' && c != '=' ? (char)c : '_';
    }
    dst[n] = '\0';
}

static int on_hello(struct link_conn *l, const struct link_frame *f)
{
    struct broker *b = l->b;
    const char *node = b->conf->node_id ? b->conf->node_id : "broker";

    if (f->version != LINK_VERSION)
        return fail(l, "protocol", "unsupported link version", DROP_PROTOCOL);
    if (!broker_auth_ok(b, f->has_secret ? f->secret.ptr : "", f->has_secret ? f->secret.len : 0))
        return fail(l, "auth", f->has_secret ? "invalid secret" : "secret required", DROP_AUTH);
    copy_name(l->role, sizeof(l->role), &f->role);
    copy_name(l->node, sizeof(l->node), &f->node);
    /* An edge carries the events of thousands of browsers: it gets its own,
     * larger bound, so a burst it is still draining is not mistaken for a
     * dead subscriber. */
    if (strcmp(l->role, "edge") == 0)
        l->output_limit = b->conf->edge_output_limit;
    l->state = LINK_STATE_READY;
    log_info("link_hello", "conn=%u peer=%s role=%s node=%s", l->id, l->peer, l->role, l->node);
    link_encode_welcome(scratch(l), node, b->epoch);
    send_scratch(l);
    return 0;
}

/* Index of l's node for pattern, or -1. Linear: only UNSUB and SUB at the cap use it. */
static long find_sub(const struct link_conn *l, const struct link_str *p)
{
    for (size_t i = 0; i < l->nsubs; i++) {
        size_t len;
        const char *pat = trie_node_pattern(l->subs[i], &len);

        if (len == p->len && memcmp(pat, p->ptr, len) == 0)
            return (long)i;
    }
    return -1;
}

static int on_sub(struct link_conn *l, const struct link_frame *f)
{
    struct broker *b = l->b;
    struct trie_node *node;
    const char *err = "invalid pattern";
    bool first, added;

    if (!topic_pattern_valid(f->topic.ptr, f->topic.len, &b->limits, &err)) {
        send_err(l, "bad_topic", err);
        return 0;
    }
    if (b->conf->max_subscriptions > 0 && l->nsubs >= (size_t)b->conf->max_subscriptions) {
        if (find_sub(l, &f->topic) < 0)
            send_err(l, "too_many_subscriptions", "max-subscriptions reached");
        return 0;
    }
    node = trie_subscribe(b->link_trie, f->topic.ptr, f->topic.len, l, &first, &added);
    if (!added)
        return 0;
    if (l->nsubs == l->subs_cap) {
        l->subs_cap = l->subs_cap ? l->subs_cap * 2 : 8;
        l->subs = mem_realloc(l->subs, l->subs_cap * sizeof(*l->subs));
    }
    l->subs[l->nsubs++] = node;
    return 0;
}

static int on_unsub(struct link_conn *l, const struct link_frame *f)
{
    const char *err = "invalid pattern";
    long i;
    bool last;

    if (!topic_pattern_valid(f->topic.ptr, f->topic.len, &l->b->limits, &err)) {
        send_err(l, "bad_topic", err);
        return 0;
    }
    i = find_sub(l, &f->topic);
    if (i < 0)
        return 0; /* like Redis: unsubscribing what is not subscribed is no error */
    trie_unsubscribe_node(l->b->link_trie, l->subs[i], l, &last);
    l->subs[i] = l->subs[--l->nsubs];
    return 0;
}

static int on_pub(struct link_conn *l, const struct link_frame *f)
{
    struct broker *b = l->b;
    struct router_result res;
    const char *err = "invalid topic";

    if (!topic_valid(f->topic.ptr, f->topic.len, &b->limits, &err)) {
        send_err(l, "bad_topic", err);
        return 0;
    }
    if (f->payload.len > b->conf->max_payload)
        return fail(l, "oversize", "payload over max-payload", DROP_OVERSIZE);
    router_publish(b, f->topic.ptr, f->topic.len, f->payload.ptr, f->payload.len, &res);
    /* A link subscribed to its own topic may just have been closed as a slow consumer. */
    if (l->target.closed || l->state == LINK_STATE_CLOSING)
        return -1;
    if (f->has_req_id) {
        link_encode_puback(scratch(l), f->req_id, res.receivers, res.seq);
        send_scratch(l);
    }
    return 0;
}

/* Appends "name value\n" to buf at *off, never past cap. */
static void stat_line(char *buf, size_t cap, size_t *off, const char *name, uint64_t v)
{
    int n = snprintf(buf + *off, cap - *off, "%s %llu\n", name, (unsigned long long)v);

    if (n > 0 && (size_t)n < cap - *off)
        *off += (size_t)n;
}

static int on_stats(struct link_conn *l)
{
    const struct broker *b = l->b;
    const struct broker_stats *s = &b->stats;
    char buf[LINK_STATS_MAX], name[64];
    size_t off = 0, subs = 0, pats = 0;
    uint64_t now = net_now_ms();

    for (int ep = 0; ep < EP_HTTP; ep++) {
        snprintf(name, sizeof(name), "connections_%s", broker_endpoint_name(ep));
        stat_line(buf, sizeof(buf), &off, name, s->conns_current[ep]);
        snprintf(name, sizeof(name), "connections_%s_total", broker_endpoint_name(ep));
        stat_line(buf, sizeof(buf), &off, name, s->conns_total[ep]);
    }
    /* HTTP requests are not held connections: only their total, like /metrics. */
    stat_line(buf, sizeof(buf), &off, "connections_http_total", s->http_requests);
    stat_line(buf, sizeof(buf), &off, "published", s->published);
    stat_line(buf, sizeof(buf), &off, "delivered", s->delivered);
    stat_line(buf, sizeof(buf), &off, "bytes_in", s->bytes_in);
    stat_line(buf, sizeof(buf), &off, "bytes_out", s->bytes_out);
    for (int d = 0; d < DROP_COUNT; d++) {
        snprintf(name, sizeof(name), "drops_%s", broker_drop_name(d));
        stat_line(buf, sizeof(buf), &off, name, s->drops[d]);
    }
    stat_line(buf, sizeof(buf), &off, "slow_consumers", s->drops[DROP_SLOW_CONSUMER]);
    subs = trie_subscription_count(b->link_trie) +
           (b->resp_trie ? trie_subscription_count(b->resp_trie) : 0);
    pats = trie_pattern_count(b->link_trie) + (b->resp_trie ? trie_pattern_count(b->resp_trie) : 0);
    stat_line(buf, sizeof(buf), &off, "subscriptions", subs);
    stat_line(buf, sizeof(buf), &off, "patterns", pats);
    stat_line(buf, sizeof(buf), &off, "epoch", b->epoch);
    stat_line(buf, sizeof(buf), &off, "uptime_s",
              now > b->started_ms ? (now - b->started_ms) / 1000 : 0);
    link_encode_statsr(scratch(l), buf, off);
    send_scratch(l);
    return 0;
}

static int dispatch(struct link_conn *l, const struct link_frame *f)
{
    if (l->state == LINK_STATE_HELLO) {
        if (f->type != LINK_HELLO)
            return fail(l, "protocol", "expected HELLO", DROP_PROTOCOL);
        return on_hello(l, f);
    }
    switch (f->type) {
    case LINK_SUB:
        return on_sub(l, f);
    case LINK_UNSUB:
        return on_unsub(l, f);
    case LINK_PUB:
        return on_pub(l, f);
    case LINK_PING:
        link_encode_pong(scratch(l), f->token);
        send_scratch(l);
        return 0;
    case LINK_PONG:
        return 0;
    case LINK_STATS:
        return on_stats(l);
    case LINK_HELLO:
        return fail(l, "protocol", "duplicate HELLO", DROP_PROTOCOL);
    default:
        return fail(l, "protocol", "frame type not accepted by the broker", DROP_PROTOCOL);
    }
}

/* ---- reading, backpressure, events ------------------------------------ */

/* Stops reading l while its unread replies are over the high mark; true when paused. */
static bool maybe_pause(struct link_conn *l)
{
    struct link_server *srv = l->srv;

    if (evbuffer_get_length(bufferevent_get_output(l->bev)) <= srv->pause_high)
        return false;
    l->paused = true;
    bufferevent_disable(l->bev, EV_READ);
    bufferevent_setwatermark(l->bev, EV_WRITE, srv->pause_low, 0);
    return true;
}

/* Decodes every buffered frame. Returns 0 when more bytes are needed, -1 to stop. */
static int decode_all(struct link_conn *l)
{
    struct link_frame f;
    const char *err = "malformed frame";
    int r;

    while ((r = link_decoder_next(l->dec, &f, &err)) == 1) {
        size_t before = evbuffer_get_length(bufferevent_get_output(l->bev));

        if (dispatch(l, &f) < 0)
            return -1;
        /* Only a request whose reply was queued can pause reading: an
         * edge's output is mostly its fan-out, and a PING or SUB that it
         * sends while behind on that must still be read (unanswered PINGs
         * make the edge drop the link and lose what is published while it
         * re-links). A PONG is a few bytes; the output limit bounds those. */
        if (f.type != LINK_PING && evbuffer_get_length(bufferevent_get_output(l->bev)) > before &&
            maybe_pause(l))
            return -1;
    }
    if (r < 0)
        return fail(l, "protocol", err, DROP_PROTOCOL);
    return 0;
}

/* Feeds one chunk of l's input to the decoder. Returns 0, or -1 when l is closing. */
static int feed_chunk(struct link_conn *l, struct evbuffer *in)
{
    struct evbuffer_iovec v;
    const char *err = "frame over the size limit";
    size_t len;

    if (evbuffer_peek(in, LINK_READ_CHUNK, NULL, &v, 1) < 1)
        return -1;
    len = v.iov_len < LINK_READ_CHUNK ? v.iov_len : LINK_READ_CHUNK;
    if (link_decoder_feed(l->dec, v.iov_base, len, &err) < 0)
        return fail(l, "oversize", err, DROP_OVERSIZE);
    evbuffer_drain(in, len);
    l->b->stats.bytes_in += len;
    return 0;
}

static void process_input(struct link_conn *l)
{
    struct evbuffer *in = bufferevent_get_input(l->bev);

    for (;;) {
        if (decode_all(l) < 0)
            return;
        if (evbuffer_get_length(in) == 0)
            return;
        if (feed_chunk(l, in) < 0)
            return;
    }
}

static void link_on_read(struct bufferevent *bev, void *arg)
{
    struct link_conn *l = arg;

    (void)bev;
    if (l->state != LINK_STATE_CLOSING && !l->paused)
        process_input(l);
}

static void link_on_write(struct bufferevent *bev, void *arg)
{
    struct link_conn *l = arg;
    struct evbuffer *out = bufferevent_get_output(bev);

    if (l->state == LINK_STATE_CLOSING) {
        if (evbuffer_get_length(out) == 0)
            link_close(l, l->close_reason ? l->close_reason : "closed");
        return;
    }
    if (l->paused && evbuffer_get_length(out) <= l->srv->pause_low) {
        l->paused = false;
        bufferevent_setwatermark(bev, EV_WRITE, 0, 0);
        if (bufferevent_enable(bev, EV_READ) < 0) {
            link_close(l, "error");
            return;
        }
        process_input(l); /* what arrived while paused is already queued: no read callback */
    }
}

static void link_on_event(struct bufferevent *bev, short what, void *arg)
{
    struct link_conn *l = arg;

    (void)bev;
    if (what & BEV_EVENT_EOF)
        link_close(l, "eof");
    else if (what & BEV_EVENT_TIMEOUT)
        link_close(l, "timeout");
    else if (what & BEV_EVENT_ERROR)
        link_close(l, "error");
}

/* ---- accepting ---------------------------------------------------------- */

static struct link_conn *link_new(struct link_server *srv, evutil_socket_t fd)
{
    struct broker *b = srv->b;
    struct link_conn *l = mem_calloc(1, sizeof(*l));
    int one = 1;

    l->target.kind = SUB_LINK;
    l->output_limit = b->conf->client_output_limit;
    l->b = b;
    l->srv = srv;
    l->id = ++srv->next_id;
    net_peer_name(fd, l->peer, sizeof(l->peer));
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    l->bev = bufferevent_socket_new(b->base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (!l->bev) {
        close(fd);
        mem_free(l);
        return NULL;
    }
    /* libevent writes at most 16 KiB per pass by default; a subscriber
     * behind a busy topic needs whole socket buffers per write. */
    bufferevent_set_max_single_write(l->bev, 1 << 20);
    l->dec = link_decoder_new(b->conf->max_payload + LINK_FRAME_SLACK);
    bufferevent_setcb(l->bev, link_on_read, link_on_write, link_on_event, l);
    if (bufferevent_enable(l->bev, EV_READ | EV_WRITE) < 0) {
        link_decoder_free(l->dec);
        bufferevent_free(l->bev);
        mem_free(l);
        return NULL;
    }
    return l;
}

static void link_on_accept(struct evconnlistener *lev, evutil_socket_t fd, struct sockaddr *sa,
                           int salen, void *arg)
{
    struct link_server *srv = arg;
    struct broker *b = srv->b;
    struct link_conn *l;

    (void)lev;
    (void)sa;
    (void)salen;
    if (b->stopping ||
        (b->conf->max_clients > 0 && broker_conn_count(b) >= (uint64_t)b->conf->max_clients)) {
        b->stats.drops[DROP_MAX_CLIENTS]++;
        close(fd);
        return;
    }
    l = link_new(srv, fd);
    if (!l) {
        log_warn("link_accept_failed", "reason=bufferevent");
        return;
    }
    l->next = srv->links;
    if (srv->links)
        srv->links->prev = l;
    srv->links = l;
    b->stats.conns_current[EP_LINK]++;
    b->stats.conns_total[EP_LINK]++;
    log_info("link_open", "conn=%u peer=%s", l->id, l->peer);
}

static void link_on_accept_error(struct evconnlistener *lev, void *arg)
{
    (void)lev;
    (void)arg;
    /* EMFILE and friends: libevent retries on the next readiness; just say so. */
    log_warn("link_accept_error", "errno=%d", EVUTIL_SOCKET_ERROR());
}

/* ---- exported ----------------------------------------------------------- */

int link_server_start(struct broker *b, const char **err)
{
    struct link_server *srv;
    int fd;

    if (b->conf->link_port == 0)
        return 0;
    fd = net_listen(b->conf->bind, (int)b->conf->link_port, false, 511, err);
    if (fd < 0)
        return -1;
    srv = mem_calloc(1, sizeof(*srv));
    srv->b = b;
    srv->pause_high = LINK_PAUSE_HIGH;
    if (b->conf->client_output_limit / 2 < srv->pause_high)
        srv->pause_high = b->conf->client_output_limit / 2;
    srv->pause_low = srv->pause_high / 4;
    srv->listener = evconnlistener_new(b->base, link_on_accept, srv,
                                       LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, -1, fd);
    if (!srv->listener) {
        close(fd);
        mem_free(srv);
        *err = "evconnlistener_new failed";
        return -1;
    }
    evconnlistener_set_error_cb(srv->listener, link_on_accept_error);
    msgpack_sbuffer_init(&srv->sb);
    b->link = srv;
    log_info("link_listen", "bind=%s port=%d", b->conf->bind ? b->conf->bind : "*",
             net_local_port(fd));
    return 0;
}

void link_server_shutdown(struct broker *b)
{
    struct link_server *srv = b->link;
    struct link_conn *l, *next;

    if (!srv)
        return;
    if (srv->listener) {
        evconnlistener_free(srv->listener);
        srv->listener = NULL;
    }
    for (l = srv->links; l; l = next) {
        next = l->next;
        if (l->state != LINK_STATE_CLOSING)
            close_after_flush(l, "shutdown");
    }
}

void link_server_free(struct broker *b)
{
    struct link_server *srv = b->link;
    struct link_conn *l, *next;

    if (!srv)
        return;
    if (srv->listener)
        evconnlistener_free(srv->listener);
    /* Links still open after the loop: the trie may be gone already, so only free. */
    for (l = srv->links; l; l = next) {
        next = l->next;
        link_decoder_free(l->dec);
        bufferevent_free(l->bev);
        mem_free(l->subs);
        mem_free(l);
    }
    msgpack_sbuffer_destroy(&srv->sb);
    mem_free(srv);
    b->link = NULL;
}

int link_deliver(struct link_conn *l, struct frame *f)
{
    struct evbuffer *out;
    size_t queued;

    if (l->target.closed || l->state == LINK_STATE_CLOSING)
        return 0;
    out = bufferevent_get_output(l->bev);
    if (outbuf_add_frame(out, f) < 0) {
        link_close(l, "error");
        return -1;
    }
    l->b->stats.bytes_out += f->len;
    queued = evbuffer_get_length(out);
    if (queued > l->output_limit) {
        log_warn("slow_consumer", "conn=%u peer=%s role=%s queued=%zu", l->id, l->peer, l->role,
                 queued);
        l->b->stats.drops[DROP_SLOW_CONSUMER]++;
        link_close(l, "slow_consumer");
        return -1;
    }
    return 0;
}

/*
 * client.c - one WebSocket connection on the edge port.
 *
 * Owns: struct client, the connection's read path (request head, then
 * RFC 6455 frames and the JSON ops), its output queue and its close. Its
 * subscriptions are in client_subs.c, the HTTP answers in edge_http.c.
 * Its credentials are decided in client_auth.c (docs/protocol.md §3.10)
 * and said and done here: the 401s at the upgrade, the auth op's replies, a
 * refresh's drops, the 4001 closes; so are the refusals at accept (429, 503,
 * client_accept) and max-ops-per-second (1008).
 *
 * An idle connection owns no buffer (docs/architecture.md §4.1), and no
 * bufferevent either (§9.1: an earlier plan lent one from the pool): the
 * connection embeds its one `struct event` for the fd (EV_READ|EV_PERSIST,
 * EV_WRITE added only while output waits) and borrows from the worker's
 * pool only a chunk (an incomplete frame or head, c->in; a fragmented
 * message, c->msg) and an output evbuffer (c->out). Nothing is
 * re-registered with the kernel when a buffer is borrowed or returned, and
 * an idle connection is this struct plus its subscription array: no chunk,
 * no evbuffer, no pending frame once a callback returns.
 *
 * Read path. Bytes are read into the worker's scratch (after any held
 * c->in, which goes back to the pool), every complete unit is parsed in
 * place (masks removed in place), and only an incomplete tail is copied
 * into a borrowed chunk. The scratch is max-message-size + 14 bytes or
 * more, so any frame the limits allow fits. Fragments of a text message
 * are appended to c->msg; UTF-8 is validated incrementally across them
 * (c->utf8), so a bad byte closes with 1007 as soon as it arrives.
 *
 * Echo. A connection opened on echo-path (CLIENT_F_ECHO, docs/protocol.md
 * §3.11) takes the same read path and checks; only on_complete differs:
 * each complete message, text or binary, is queued back as one frame with
 * its opcode (counted against send-queue-limit) instead of parsed as an op.
 * It never subscribes, so nothing else is ever delivered to it.
 *
 * Output. Deliveries and replies are refcounted frames (docs/architecture.md
 * §4.2),
 * and every one of them - events, JSON replies, pongs, keepalive pings -
 * counts against send-queue-limit (queue_counted): a client that sends
 * pings or ops and never reads the answers is a slow consumer like one
 * that never reads its events, closed with 1008 once the limit is reached.
 * Only the close frame and the handshake's own answer are exempt (one
 * bounded frame each, on a connection that is ending or just starting).
 * The first frame queued goes into c->pending (one reference, no
 * allocation); a second one, or the part of a frame the kernel refused,
 * moves everything into a borrowed evbuffer: by reference
 * (evbuffer_add_reference + frame_cleanup) for frames over OUTQ_COPY_MAX
 * bytes, by copy up to that (common/outq.h says why and how it was
 * measured). A flush writes the pending frame with one send() or the evbuffer with evbuffer_write,
 * arms EV_WRITE for the rest, and returns the evbuffer once it drains. A delivery that would push
 * the queue past send-queue-limit closes the client as a slow consumer (1008).
 *
 * Closing. client_close() unsubscribes at once (no further deliveries),
 * queues the close frame (or the HTTP response) and enters CLOSING: the
 * output is flushed, the write side is shut, and input is read and
 * discarded until EOF so the peer never gets a RST over unread bytes; the
 * sweep aborts it after CLOSE_LINGER_S. client_abort() ends it: event
 * deleted, buffers returned, fd closed, struct handed to the worker's close
 * list and freed on the next loop pass (callers up the stack, e.g. a
 * fan-out's target vector, may still hold the pointer until then).
 *
 * TLS (a port with tls-cert-file). The same layers run on plaintext: only
 * the syscall layer below them changes (read_some, write_pending,
 * write_out, closing_drained, drain_closing; client_new and client_abort
 * make and free the SSL object, which the hub keeps per slot, not the
 * struct: client_ssl), calling client_tls.c instead of read(),
 * send(), evbuffer_write() and shutdown(). A TLS read may need the socket
 * writable (handshake messages, a KeyUpdate's answer): it then waits on
 * EV_WRITE alone (tls_read_waits) and a writable socket retries it. A
 * close sends close_notify once the output has drained, before the write
 * side is shut (docs/architecture.md §4.10).
 *
 * Rejected: a bufferevent per connection (~1 KB of RSS each, measured), a
 * timer event per connection (the worker's 1 s sweep reads the uint32
 * timestamps here), keeping an http_parser per connection across reads
 * (the head is re-parsed from the start: it is small and bounded).
 */
#include "edge/client.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "common/frame.h"
#include "common/log.h"
#include "common/mem.h"
#include "common/net.h"
#include "common/outq.h"
#include "common/topic.h"
#include "common/trie.h"
#include "common/utf8.h"
#include "common/ws/ws_frame.h"
#include "common/ws/ws_out.h"
#include "edge/addr_limit.h"
#include "edge/browser_proto.h"
#include "edge/client_tls.h"
#include "edge/edge_http.h"
#include "edge/hub.h"
#include "edge/pool.h"
#include "edge/ws_handshake.h"

#define CLOSE_LINGER_S 2   /* how long a closing connection may take to flush and see EOF */
#define REPLY_MAX      512 /* JSON replies: ids are <= 48 bytes, messages are static */
#define PEER_MAX       64
#define REFUSED_MAX    1024 /* refusals (429, 503) lingering per worker; past it: closed at once */

static void client_on_event(evutil_socket_t fd, short what, void *arg);

static int client_fd(const struct client *c)
{
    return (int)event_get_fd(&c->ev);
}

static void peer_of(const struct client *c, char *buf, size_t len)
{
    net_peer_name(client_fd(c), buf, len);
}

/* Re-assigns c's event for what (EV_PERSIST and EV_READ/EV_WRITE) when its set changes. */
static void set_events(struct client *c, short what)
{
    if (what == event_get_events(&c->ev))
        return;
    event_del(&c->ev);
    event_assign(&c->ev, c->h->base, client_fd(c), what, client_on_event, c);
    if (event_add(&c->ev, NULL) < 0)
        log_error("event_add_failed", "conn=%u", c->id);
    c->flags =
        (uint8_t)(what & EV_WRITE ? c->flags | CLIENT_F_WRITING : c->flags & ~CLIENT_F_WRITING);
}

/*
 * Adds or removes EV_WRITE. EV_READ is on, except while a TLS read waits
 * for the socket to drain (tls_read_waits): it stays off as long as
 * something still waits to be written.
 */
static void want_write(struct client *c, bool on)
{
    short what = EV_PERSIST | (on ? EV_WRITE : 0);

    if (!on || (event_get_events(&c->ev) & EV_READ))
        what |= EV_READ;
    set_events(c, what);
}

/*
 * TLS: a read that must write first (handshake messages, a KeyUpdate's
 * answer) and found the socket full waits for EV_WRITE alone. With EV_READ
 * on, the peer's unread bytes would wake the loop again and again and no
 * read could take them before the socket drains: a spin until idle-timeout.
 * A read that got on (waits false) turns EV_READ back on.
 */
static void tls_read_waits(struct client *c, bool waits)
{
    short what = event_get_events(&c->ev);

    if (waits)
        set_events(c, EV_WRITE | EV_PERSIST);
    else if (!(what & EV_READ))
        set_events(c, (short)(what | EV_READ));
}

struct client *client_new(struct hub *h, int fd)
{
    struct client *c = mem_calloc(1, sizeof(*c));
    struct ssl_st *ssl = NULL;

    c->h = h;
    c->id = ++h->next_conn_id;
    c->born_s = c->last_rx_s = c->last_ping_s = h->now_s;
    if (event_assign(&c->ev, h->base, fd, EV_READ | EV_PERSIST, client_on_event, c) < 0 ||
        event_add(&c->ev, NULL) < 0) {
        log_error("event_add_failed", "conn=%u", c->id);
        goto fail;
    }
    /* Last before hub_add_client, so that no failure has an SSL object to free. */
    if (h->tls && !(ssl = client_tls_new(c, fd))) { /* logged there */
        event_del(&c->ev);
        goto fail;
    }
    c->state = CLIENT_HANDSHAKE;
    hub_add_client(h, c);
    if (ssl)
        client_tls_attach(c, ssl); /* into the slot hub_add_client gave c */
    if (log_enabled(LOG_LEVEL_DEBUG)) {
        char peer[PEER_MAX];

        peer_of(c, peer, sizeof(peer));
        log_debug("client_open", "conn=%u peer=%s tls=%s", c->id, peer, ssl ? "yes" : "no");
    }
    return c;
fail:
    close(fd);
    mem_free(c);
    return NULL;
}

/* ---------- output queue ---------- */

size_t client_queued(const struct client *c)
{
    size_t n = c->pending ? c->pending->len : 0;

    if (c->out)
        n += evbuffer_get_length(c->out);
    return n;
}

/*
 * Takes over the reference f and appends f->data[skip..) to c->out: copied
 * or referenced by the project's one rule (common/outq.h, OUTQ_COPY_MAX).
 */
static void add_ref(struct client *c, struct frame *f, size_t skip)
{
    if (outq_append(c->out, f, skip) < 0)
        log_error("evbuffer_add_failed", "conn=%u", c->id);
    frame_unref(&f);
}

/* Moves the pending frame (minus skip bytes already written) into c->out. */
static void spill_pending(struct client *c, size_t skip)
{
    struct frame *f = c->pending;

    if (!c->out)
        c->out = pool_get_evbuffer(c->h->pool);
    if (f) {
        c->pending = NULL;
        add_ref(c, f, skip);
    }
}

/*
 * Takes a reference to f and queues it after everything already queued,
 * outside send-queue-limit: only for the close frame and the handshake's
 * answer. Everything else goes through queue_counted.
 */
static void queue_frame(struct client *c, struct frame *f)
{
    if (c->state == CLIENT_OPEN)
        c->h->stats.frames_out++;
    if (!c->pending && !c->out) {
        c->pending = f;
        return;
    }
    spill_pending(c, 0);
    add_ref(c, f, 0);
}

/* Drops all queued output (references go back to their frames). */
static void drop_output(struct client *c)
{
    frame_unref(&c->pending);
    if (c->out)
        pool_put_evbuffer(c->h->pool, &c->out);
}

static bool soft_error(int err)
{
    return err == EAGAIN || err == EWOULDBLOCK || err == EINTR;
}

/*
 * Writes buf[0..len) as far as the socket takes it: one send(), or on TLS
 * one record after another until the socket is full. Returns the bytes
 * taken, or -1 when the connection is broken.
 */
static ssize_t send_some(struct client *c, const char *buf, size_t len)
{
    size_t off = 0;
    ssize_t n;

    if (!client_ssl(c)) {
        n = send(client_fd(c), buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0)
            return soft_error(errno) ? 0 : -1;
        return n;
    }
    while (off < len && (n = client_tls_write(c, buf + off, len - off)) != 0) {
        if (n < 0)
            return -1;
        off += (size_t)n;
    }
    return (ssize_t)off;
}

/* Writes c->pending with one send(); what the kernel refuses moves to c->out. */
static int write_pending(struct client *c)
{
    struct frame *f = c->pending;
    ssize_t n = send_some(c, f->data, f->len);

    if (n < 0)
        return -1;
    c->h->stats.bytes_out += (uint64_t)n;
    if ((size_t)n == f->len)
        frame_unref(&c->pending);
    else
        spill_pending(c, (size_t)n);
    return 0;
}

static int write_out(struct client *c)
{
    int n;

    if (client_ssl(c)) {
        ssize_t t = client_tls_write_evbuffer(c, c->out);

        if (t < 0)
            return -1;
        c->h->stats.bytes_out += (uint64_t)t;
        return 0;
    }
    n = evbuffer_write(c->out, client_fd(c));

    if (n < 0) {
        if (!soft_error(errno))
            return -1;
        n = 0;
    }
    c->h->stats.bytes_out += (uint64_t)n;
    return 0;
}

/*
 * CLOSING and drained: close_notify on TLS (EV_WRITE while the socket is
 * full), shut the write side, then wait for EOF (or the sweep's cap).
 */
static int closing_drained(struct client *c)
{
    int rc;

    if (c->flags & CLIENT_F_SHUT_WR)
        return 0;
    if (client_ssl(c) && (rc = client_tls_close_notify(c)) <= 0) {
        if (rc < 0) {
            client_abort(c);
            return -1;
        }
        want_write(c, true);
        return 0;
    }
    c->flags |= CLIENT_F_SHUT_WR;
    if (shutdown(client_fd(c), SHUT_WR) < 0) {
        client_abort(c);
        return -1;
    }
    return 0;
}

int client_flush(struct client *c)
{
    if (c->state == CLIENT_CLOSED)
        return -1;
    if (!c->out && c->pending && write_pending(c) < 0)
        goto broken;
    if (c->out) {
        spill_pending(c, 0);
        if (write_out(c) < 0)
            goto broken;
        if (evbuffer_get_length(c->out) == 0)
            pool_put_evbuffer(c->h->pool, &c->out);
    }
    want_write(c, c->out != NULL || client_tls_wants_write(c));
    if (!c->out && c->state == CLIENT_CLOSING)
        return closing_drained(c);
    return 0;
broken:
    client_abort(c);
    return -1;
}

/* True when len more bytes would take c past send-queue-limit. */
static bool over_limit(const struct client *c, size_t len)
{
    return client_queued(c) + len > c->h->conf->send_queue_limit;
}

/* c's output is full: close it 1008 and count it. Returns -1. */
static int slow_consumer(struct client *c)
{
    struct hub *h = c->h;
    char peer[PEER_MAX];

    peer_of(c, peer, sizeof(peer));
    log_warn("slow_consumer", "conn=%u peer=%s queued=%zu", c->id, peer, client_queued(c));
    h->stats.slow_consumers++;
    h->stats.closes[CLOSE_R_1008]++;
    /* Deliveries stop here (client_close unsubscribes). The close frame
     * goes after what is queued, which ends on a frame boundary, and the
     * closing grace period bounds how long that queue (at most
     * send-queue-limit) may take to drain before the socket is cut. */
    client_close(c, WS_CLOSE_POLICY, "slow consumer");
    return -1;
}

/*
 * Takes f (a reference the caller owns) and queues it, unless that would
 * take c past send-queue-limit: then f is dropped and c is closed as a slow
 * consumer. Returns 0, or -1 when c was closed.
 */
static int queue_counted(struct client *c, struct frame *f)
{
    if (over_limit(c, f->len)) {
        frame_unref(&f);
        return slow_consumer(c);
    }
    queue_frame(c, f);
    return 0;
}

static int client_deliver(struct sink *s, struct frame *f)
{
    struct client *c = client_of_sink(s);
    struct hub *h = c->h;

    if (c->state != CLIENT_OPEN)
        return 0;
    if (over_limit(c, f->len))
        return slow_consumer(c);
    queue_frame(c, frame_ref(f));
    h->stats.deliveries++;
    if (!(c->sink.flags & SINK_DIRTY)) /* once per fan-out: skip the call on the hot path */
        hub_mark_dirty(h, c);
    return 0;
}

static int client_sink_flush(struct sink *s)
{
    return client_flush(client_of_sink(s));
}

const struct sink_ops client_sink_ops = {.deliver = client_deliver, .flush = client_sink_flush};

int client_ping(struct client *c)
{
    struct hub *h = c->h;

    /* Made here, not in worker_new: frame accounting is per thread, and
     * worker_new runs on the main thread. */
    if (!h->ping_frame)
        h->ping_frame = ws_frame_new(WS_OP_PING, NULL, 0);
    if (queue_counted(c, frame_ref(h->ping_frame)) < 0)
        return -1;
    c->last_ping_s = c->h->now_s;
    return client_flush(c);
}

/* Queues a JSON text reply. Returns 0, or -1 when c was closed (over its limit). */
static int queue_text(struct client *c, const char *s, size_t len)
{
    return queue_counted(c, browser_encode_text(s, len));
}

/* Returns 0, or -1 when c was closed (over its limit). */
static int send_error(struct client *c, const char *id_text, const char *code, const char *msg)
{
    char buf[REPLY_MAX];
    size_t n = browser_reply_error(buf, sizeof(buf), id_text, code, msg);

    return n < sizeof(buf) ? queue_text(c, buf, n) : 0;
}

/* ---------- credentials: what client_auth.c decides, said and done ---------- */

/* Drops node (held by c, not covered by its new grant) with UNSUB when last, and tells c. */
static int drop_forbidden(struct client *c, struct trie_node *node)
{
    char pattern[TOPIC_MAX_LEN + 1], buf[2 * TOPIC_MAX_LEN + REPLY_MAX];
    size_t len = trie_node_pattern(node, pattern, sizeof(pattern)), n;
    const char *code, *err;

    client_unsubscribe(c, pattern, len, &code, &err);
    n = browser_reply_refused(buf, sizeof(buf), "forbidden", pattern, len,
                              "the new token does not allow this pattern");
    return n < sizeof(buf) ? queue_text(c, buf, n) : 0;
}

/*
 * The auth op (docs/protocol.md §3.10): ok with the token's exp, then each
 * subscription the new grant does not cover dropped and reported, like the
 * broker's refusals. Returns 0, or -1 when c was closed.
 */
static int auth_op(struct client *c, const struct browser_op *op)
{
    const char *code, *err;
    int64_t exp = client_authenticate(c, op->token, op->token_len, &code, &err);
    struct trie_node **gone;
    char buf[REPLY_MAX];
    size_t n;
    int rc = 0;

    if (exp < 0)
        return send_error(c, op->id_text, code, err);
    n = browser_reply_auth_ok(buf, sizeof(buf), op->id_text, exp);
    if (n < sizeof(buf) && queue_text(c, buf, n) < 0)
        return -1;
    n = client_uncovered(c, &gone);
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = drop_forbidden(c, gone[i]);
    mem_free(gone);
    return rc;
}

bool client_auth_expire(struct client *c)
{
    const char *why = client_auth_ending(c);

    if (!why)
        return false;
    c->h->stats.closes[CLOSE_R_4001]++;
    log_debug("auth_close", "conn=%u reason=\"%s\"", c->id, why);
    if (client_grant(c) && send_error(c, "", "token_expired", "the token expired") < 0)
        return true;
    client_close(c, CLIENT_CLOSE_AUTH, why);
    return true;
}

/* ---------- the broker refused a subscription ---------- */

int client_refused(struct client *c, struct trie_node *node, const char *code, const char *pattern,
                   size_t len)
{
    char buf[2 * TOPIC_MAX_LEN + REPLY_MAX]; /* the pattern, JSON-escaped */
    size_t n;

    if (!client_forget(c, node))
        return 0;
    n = browser_reply_refused(buf, sizeof(buf), code, pattern, len,
                              "the broker refused this subscription");
    if (n >= sizeof(buf))
        return 0;
    if (queue_text(c, buf, n) < 0)
        return -1;
    /* Not in c's own callback: written with the fan-out's dirty list. */
    hub_mark_dirty(c->h, c);
    return 0;
}

/* ---------- closing ---------- */

/* Gives back what c holds outside its struct: its grant, its address's count, its refusal slot. */
static void release_extras(struct client *c)
{
    struct hub *h = c->h;

    client_set_grant(c, NULL);
    if (h->addr_keys) {
        addr_limit_release(h->addr, h->addr_keys[c->index], net_now_ms());
        h->addr_keys[c->index] = ADDR_KEY_NONE;
    }
    if (c->flags & CLIENT_F_REFUSED) {
        c->flags &= (uint8_t)~CLIENT_F_REFUSED;
        h->nrefused--;
    }
}

void client_abort(struct client *c)
{
    struct hub *h = c->h;

    if (c->state == CLIENT_CLOSED)
        return;
    client_unsubscribe_all(c);
    release_extras(c);
    event_del(&c->ev);
    drop_output(c);
    pool_put(h->pool, &c->in);
    pool_put(h->pool, &c->msg);
    client_tls_detach(c); /* freed here, once: c's slot is another client's after retiring */
    close(client_fd(c));
    c->state = CLIENT_CLOSED;
    c->sink.flags |= SINK_CLOSED;
    log_debug("client_close", "conn=%u", c->id);
    hub_retire_client(h, c);
}

/* Output queued: flush it, then shut and linger (see the design note). */
static void enter_closing(struct client *c)
{
    c->state = CLIENT_CLOSING;
    c->last_ping_s = c->h->now_s + CLOSE_LINGER_S;
    hub_sweep_soon(c->h, c);
    pool_put(c->h->pool, &c->in);
    pool_put(c->h->pool, &c->msg);
    c->msg_op = 0;
    client_flush(c);
}

void client_close(struct client *c, uint16_t code, const char *reason)
{
    if (c->state == CLIENT_CLOSED || c->state == CLIENT_CLOSING)
        return;
    client_unsubscribe_all(c);
    if (c->state != CLIENT_OPEN || code == 0) {
        client_abort(c);
        return;
    }
    queue_frame(c, browser_encode_close(code, reason ? reason : ""));
    enter_closing(c);
}

void client_free(struct client *c)
{
    mem_free(c);
}

static uint64_t *close_counter(struct hub *h, uint16_t code)
{
    switch (code) {
    case WS_CLOSE_PROTOCOL:
        return &h->stats.closes[CLOSE_R_1002];
    case WS_CLOSE_UNSUPPORTED:
        return &h->stats.closes[CLOSE_R_1003];
    case WS_CLOSE_INVALID_DATA:
        return &h->stats.closes[CLOSE_R_1007];
    case WS_CLOSE_POLICY:
        return &h->stats.closes[CLOSE_R_1008];
    case CLIENT_CLOSE_AUTH:
        return &h->stats.closes[CLOSE_R_4001];
    default:
        return &h->stats.closes[CLOSE_R_1009];
    }
}

/* The peer broke the protocol: count, log at info, close with code. Returns -1. */
static int protocol_close(struct client *c, uint16_t code, const char *why)
{
    (*close_counter(c->h, code))++;
    if (log_enabled(LOG_LEVEL_INFO)) {
        char peer[PEER_MAX];

        peer_of(c, peer, sizeof(peer));
        log_info("protocol_error", "conn=%u peer=%s code=%u reason=\"%s\"", c->id, peer, code, why);
    }
    client_close(c, code, why);
    return -1;
}

/* ---------- HTTP answers (edge_http.c builds them) ---------- */

/* Queues a complete HTTP response (taking over f) and closes once it is written. */
static void http_answer(struct client *c, struct frame *f)
{
    queue_frame(c, f);
    enter_closing(c);
}

static void http_error(struct client *c, int status, const char *why)
{
    log_debug("handshake_failed", "conn=%u status=%d reason=\"%s\"", c->id, status, why ? why : "");
    http_answer(c, edge_http_error(c->h, status, why));
}

struct client *client_accept(struct hub *h, int fd, uint64_t addr_key, int status)
{
    struct client *c;

    if (status && h->nrefused >= REFUSED_MAX) { /* the answers must not become the flood */
        close(fd);
        return NULL;
    }
    c = client_new(h, fd);
    if (!c) {
        if (!status && h->addr)
            addr_limit_release(h->addr, addr_key, net_now_ms());
        return NULL;
    }
    if (!status) {
        if (h->addr_keys)
            h->addr_keys[c->index] = addr_key;
        return c;
    }
    c->flags |= CLIENT_F_REFUSED;
    h->nrefused++;
    log_debug("connection_refused", "conn=%u status=%d", c->id, status);
    http_answer(c, edge_http_error(h, status,
                                   status == 429 ? "too many connections from your "
                                                   "address, retry later"
                                                 : "server busy, retry later"));
    return c;
}

/* ---------- handshake ---------- */

static void open_websocket(struct client *c, const struct ws_request *req)
{
    struct hub *h = c->h;
    char resp[512];
    size_t n = ws_handshake_response(req, resp, sizeof(resp));
    const char *code, *err;

    queue_frame(c, frame_from(resp, n));
    c->state = CLIENT_OPEN;
    if (req->raw)
        c->sink.form = CLIENT_FORM_RAW;
    if (req->subprotocol)
        c->flags |= CLIENT_F_SUBPROTO;
    c->last_rx_s = h->now_s;
    /* Each connection's keepalive gets its own phase of the interval, so
     * clients that connected in the same second are not all pinged (and do
     * not all answer) in one sweep: 15,000 at once stalled delivery ~0.3 s. */
    c->last_ping_s = h->now_s - c->id % h->ping_interval_s;
    hub_sweep_soon(h, c); /* its timers are now the open state's */
    h->stats.handshakes_ok++;
    if (req->too_many_topics &&
        send_error(c, "", "too_many_subscriptions", "too many topics in the query string") < 0)
        return;
    for (size_t i = 0; i < req->ntopics; i++) {
        if (client_subscribe(c, req->topics[i], req->topic_lens[i], &code, &err) < 0 &&
            send_error(c, "", code, err) < 0)
            return;
    }
}

/* Answers 401 and closes (RFC 6750 3.1: error="invalid_token" only when a token was given). */
static int unauthorized(struct client *c, bool invalid_token, const char *why)
{
    log_debug("handshake_failed", "conn=%u status=401 reason=\"%s\"", c->id, why);
    http_answer(c, edge_http_unauthorized(c->h, invalid_token, why));
    return -1;
}

/*
 * docs/protocol.md §3.10 at the upgrade: a token given is verified (401 when
 * bad) and becomes c's grant; without one, auth enforced and ?topic= asked
 * is a 401, and no ?topic= opens an unauthenticated WebSocket. With auth
 * off tokens are not looked at. Returns 0, or -1 when c is closing.
 */
static int upgrade_auth(struct client *c, const struct ws_request *req)
{
    const struct edge_conf *conf = c->h->conf;
    const char *code, *err;

    if (!conf->auth_on)
        return 0;
    if (!req->has_token) {
        if (!conf->auth_enforced || (req->ntopics == 0 && !req->too_many_topics))
            return 0;
        return unauthorized(c, false, "a token is required to subscribe");
    }
    if (req->token_too_long) {
        c->h->stats.auth_failed++;
        return unauthorized(c, true, "token is too long");
    }
    if (client_authenticate(c, req->token, req->token_len, &code, &err) < 0)
        return unauthorized(c, true, err);
    return 0;
}

/* Returns the head's length, 0 when incomplete, -1 when c is closing. */
static ssize_t on_head(struct client *c, const uint8_t *buf, size_t len)
{
    const struct edge_conf *conf = c->h->conf;
    const struct ws_hs_policy policy = {conf->allowed_origins, conf->echo_path};
    struct ws_request req;
    ssize_t r = ws_handshake_parse((const char *)buf, len, conf->max_header_size, &policy, &req);

    if (r == -2)
        return 0;
    if (r < 0 || req.kind == WS_REQ_ERROR) {
        http_error(c, req.status, req.err);
        return -1;
    }
    if (req.kind == WS_REQ_HEALTHZ) {
        http_answer(c, edge_http_healthz(c->h));
        return -1;
    }
    if (req.kind == WS_REQ_METRICS) {
        http_answer(c, edge_http_metrics(c->h));
        return -1;
    }
    if (req.kind == WS_REQ_ECHO)
        c->flags |=
            CLIENT_F_ECHO; /* public: main.c refuses echo-path with auth unless echo-path-public */
    else if (upgrade_auth(c, &req) < 0)
        return -1;
    open_websocket(c, &req);
    return c->state == CLIENT_OPEN ? r : -1; /* its first replies may have filled the queue */
}

/* ---------- frames ---------- */

static int on_control(struct client *c, uint8_t opcode, const uint8_t *p, size_t len)
{
    uint16_t code = 0, fail;

    if (opcode == WS_OP_PING)
        return queue_counted(c, ws_frame_new(WS_OP_PONG, p, len));
    if (opcode == WS_OP_PONG)
        return 0;
    /* A bad code is a protocol error (1002); a good code with a reason that
     * is not UTF-8 is invalid text (1007, RFC 6455 8.1). */
    fail = ws_close_payload_check(p, len, &code);
    if (fail == WS_CLOSE_INVALID_DATA)
        return protocol_close(c, fail, "invalid UTF-8 in close reason");
    if (fail)
        return protocol_close(c, fail, "invalid close frame");
    c->flags |= CLIENT_F_PEER_CLOSED;
    /* RFC 6455 5.5.1: echo the status; a close without one is answered with 1000. */
    client_close(c, code == WS_CLOSE_NO_STATUS ? WS_CLOSE_NORMAL : code, "");
    return -1;
}

/* Runs one parsed op and queues its reply. Returns 0, or -1 when c was closed. */
static int run_op(struct client *c, const struct browser_op *op)
{
    const char *code = "bad_request", *err = "malformed op";
    char buf[REPLY_MAX];
    size_t n;
    int rc;

    if (op->kind == BROWSER_OP_PING) {
        n = browser_reply_pong(buf, sizeof(buf), op->id_text);
        return n < sizeof(buf) ? queue_text(c, buf, n) : 0;
    }
    if (op->kind == BROWSER_OP_AUTH)
        return auth_op(c, op);
    /* docs/protocol.md §3.10: until it authenticates, only auth and ping are served. */
    if (c->h->conf->auth_enforced && !client_grant(c))
        return send_error(c, op->id_text, "unauthorized", "send an auth op first");
    if (op->kind == BROWSER_OP_SUB)
        rc = client_subscribe(c, op->topic, op->topic_len, &code, &err);
    else
        rc = client_unsubscribe(c, op->topic, op->topic_len, &code, &err);
    if (rc < 0)
        return send_error(c, op->id_text, code, err);
    n = browser_reply_ok(buf, sizeof(buf), op->id_text);
    return n < sizeof(buf) ? queue_text(c, buf, n) : 0;
}

/*
 * max-ops-per-second: every text message counts, valid or not, in windows
 * of one second of the monotonic clock. c->ops_sec holds the low byte of
 * the window's second and is brought up to date by every frame (on_frame),
 * so a stale count could only be taken for the current one after a
 * connection sent no frame at all - not even a pong - for a multiple of
 * 256 s, which idle-timeout (75 s) forbids unless raised. Not the worker
 * clock: the sweep advances it up to a timer slack late, and its first
 * second can last almost two.
 */
static void ops_window(struct client *c)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    if (c->ops_sec != (uint8_t)ts.tv_sec) {
        c->ops_sec = (uint8_t)ts.tv_sec;
        c->ops = 0;
    }
}

static bool over_ops_limit(struct client *c)
{
    int64_t limit = c->h->conf->max_ops_per_second;

    if (c->ops < UINT16_MAX)
        c->ops++;
    return limit > 0 && c->ops > limit;
}

/* One complete text message: a JSON op. Returns 0, or -1 when c was closed. */
static int on_message(struct client *c, const char *msg, size_t len)
{
    struct browser_op op;
    const char *code = "bad_request", *err = "malformed op";
    int rc;

    if (over_ops_limit(c))
        return protocol_close(c, WS_CLOSE_POLICY, "too many ops");
    memset(&op, 0, sizeof(op));
    if (browser_op_parse(msg, len, &op, &code, &err) < 0)
        rc = send_error(c, op.id_text, code, err);
    else
        rc = run_op(c, &op);
    browser_op_release(&op);
    return rc;
}

/*
 * One complete message of opcode op. On an echo connection (docs/protocol.md
 * §3.11) it goes back whole with its opcode, a frame counted against
 * send-queue-limit like any reply; elsewhere it is a JSON op. Returns 0, or
 * -1 when c was closed.
 */
static int on_complete(struct client *c, uint8_t op, const uint8_t *p, size_t len)
{
    if (c->flags & CLIENT_F_ECHO)
        return queue_counted(c, ws_frame_new(op, p, len));
    return on_message(c, (const char *)p, len);
}

/* Appends p[0..len) to the fragmented message being assembled in c->msg. */
static void append_msg(struct client *c, const uint8_t *p, size_t len)
{
    struct pool *pool = c->h->pool;
    size_t have = c->msg ? c->msg->len : 0;

    if (!c->msg) {
        c->msg = pool_get(pool, len);
    } else if (have + len > c->msg->cap) {
        size_t want = (size_t)c->msg->cap * 2;

        if (want < have + len)
            want = have + len;
        if (want > c->h->conf->max_message_size)
            want = c->h->conf->max_message_size;
        pool_grow(pool, &c->msg, want);
    }
    memcpy(c->msg->data + have, p, len);
    c->msg->len = (uint32_t)(have + len);
}

static int on_data(struct client *c, const struct ws_frame_header *h, const uint8_t *p, size_t len)
{
    size_t have = c->msg ? c->msg->len : 0;
    uint8_t op;
    int rc;

    if (h->opcode == WS_OP_CONT && !c->msg_op)
        return protocol_close(c, WS_CLOSE_PROTOCOL, "continuation without a message");
    if (h->opcode != WS_OP_CONT) {
        if (c->msg_op)
            return protocol_close(c, WS_CLOSE_PROTOCOL, "data frame inside a fragmented message");
        c->msg_op = h->opcode;
        c->utf8 = UTF8_ACCEPT;
    }
    if (c->msg_op == WS_OP_BINARY && !(c->flags & CLIENT_F_ECHO))
        return protocol_close(c, WS_CLOSE_UNSUPPORTED, "binary messages are not supported");
    if (have + len > c->h->conf->max_message_size)
        return protocol_close(c, WS_CLOSE_TOO_BIG, "message too big");
    if (c->msg_op == WS_OP_TEXT &&
        (!utf8_feed(&c->utf8, p, len) || (h->fin && !utf8_complete(c->utf8))))
        return protocol_close(c, WS_CLOSE_INVALID_DATA, "invalid UTF-8");
    if (!h->fin) {
        append_msg(c, p, len);
        return 0;
    }
    op = c->msg_op;
    c->msg_op = 0;
    if (c->msg) {
        struct chunk *m;

        append_msg(c, p, len);
        m = c->msg;
        c->msg = NULL;
        rc = on_complete(c, op, m->data, m->len);
        pool_put(c->h->pool, &m);
        return rc;
    }
    return on_complete(c, op, p, len);
}

/* Returns the frame's length, 0 when incomplete, -1 when c is closing. */
static ssize_t on_frame(struct client *c, uint8_t *buf, size_t len)
{
    struct hub *h = c->h;
    struct ws_frame_header fh;
    uint16_t code = WS_CLOSE_PROTOCOL;
    const char *err = "bad frame";
    ssize_t hl = ws_frame_parse_header(buf, len, h->conf->max_message_size, &fh, &code, &err);
    uint8_t *p;
    int rc;

    if (hl == -2)
        return 0;
    if (hl < 0)
        return protocol_close(c, code, err);
    if (len - (size_t)hl < fh.payload_len)
        return 0;
    p = buf + hl;
    ws_unmask(p, (size_t)fh.payload_len, fh.mask, 0);
    h->stats.frames_in++;
    ops_window(c);
    c->last_rx_s = h->now_s;
    if (fh.opcode >= WS_OP_CLOSE)
        rc = on_control(c, fh.opcode, p, (size_t)fh.payload_len);
    else
        rc = on_data(c, &fh, p, (size_t)fh.payload_len);
    return rc < 0 ? -1 : hl + (ssize_t)fh.payload_len;
}

/* Consumes every complete unit of buf; returns bytes used or -1 when c is closing. */
static ssize_t parse_units(struct client *c, uint8_t *buf, size_t len)
{
    size_t off = 0;

    while (off < len) {
        ssize_t r = c->state == CLIENT_HANDSHAKE ? on_head(c, buf + off, len - off)
                                                 : on_frame(c, buf + off, len - off);

        if (r < 0)
            return -1;
        if (r == 0)
            break;
        off += (size_t)r;
    }
    return (ssize_t)off;
}

/* ---------- read path ---------- */

/* Moves a held incomplete unit to the front of the scratch; returns its length. */
static size_t restore_input(struct client *c)
{
    size_t n;

    if (!c->in)
        return 0;
    n = c->in->len;
    memcpy(c->h->scratch, c->in->data, n);
    pool_put(c->h->pool, &c->in);
    return n;
}

static void save_input(struct client *c, const uint8_t *buf, size_t n)
{
    c->in = pool_get(c->h->pool, n);
    memcpy(c->in->data, buf, n);
    c->in->len = (uint32_t)n;
}

/* CLOSING: read and discard until EOF so closing never resets unread bytes. */
static void drain_closing(struct client *c)
{
    for (;;) {
        ssize_t n;

        if (client_ssl(c)) { /* the peer's close_notify, EOF or an error end it */
            n = client_tls_read(c, c->h->scratch, c->h->scratch_cap);
            if (n > 0)
                continue;
            if (n < 0)
                client_abort(c);
            else
                tls_read_waits(c, client_tls_wants_write(c));
            return;
        }
        n = read(client_fd(c), c->h->scratch, c->h->scratch_cap);

        if (n > 0)
            continue;
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        client_abort(c);
        return;
    }
}

/* Reads into the scratch; returns bytes read, 0 at EAGAIN, -1 when c was closed. */
static ssize_t read_some(struct client *c, size_t have)
{
    struct hub *h = c->h;

    for (;;) {
        ssize_t n;

        if (client_ssl(c)) { /* plaintext: one record and what OpenSSL holds already */
            n = client_tls_read(c, h->scratch + have, h->scratch_cap - have);
            if (n < 0) {
                client_abort(c);
                return -1;
            }
            tls_read_waits(c, n == 0 && client_tls_wants_write(c));
            h->stats.bytes_in += (uint64_t)n;
            return n;
        }
        n = read(client_fd(c), h->scratch + have, h->scratch_cap - have);
        if (n > 0) {
            h->stats.bytes_in += (uint64_t)n;
            return n;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        client_abort(c); /* EOF, ECONNRESET, ... */
        return -1;
    }
}

static void client_on_read(struct client *c)
{
    struct hub *h = c->h;
    size_t have = restore_input(c);

    for (;;) {
        size_t room = h->scratch_cap - have;
        ssize_t n = read_some(c, have), used;

        if (n < 0)
            return;
        if (n == 0)
            break;
        have += (size_t)n;
        used = parse_units(c, h->scratch, have);
        if (used < 0)
            return;
        memmove(h->scratch, h->scratch + used, have - (size_t)used);
        have -= (size_t)used;
        if ((size_t)n < room)
            break;
        if (have == h->scratch_cap) {
            protocol_close(c, WS_CLOSE_TOO_BIG, "unit larger than the read area");
            return;
        }
    }
    if (have)
        save_input(c, h->scratch, have);
    client_flush(c);
}

static void client_on_event(evutil_socket_t fd, short what, void *arg)
{
    struct client *c = arg;

    (void)fd;
    if ((what & EV_WRITE) && client_flush(c) < 0)
        return;
    /* TLS: a read that waited for the socket to take handshake bytes resumes. */
    if (!(what & EV_READ) && !((what & EV_WRITE) && client_ssl(c)))
        return;
    if (c->state == CLIENT_CLOSING)
        drain_closing(c);
    else if (c->state != CLIENT_CLOSED)
        client_on_read(c);
}

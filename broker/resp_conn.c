/*
 * resp_conn.c - the RESP endpoint's connections: accept, I/O, flush, close.
 *
 * Redis clients (redis-cli, redis-benchmark, client libraries) publish and
 * subscribe here. This file moves their bytes; the commands are
 * resp_cmd.c's, and resp_internal.h holds what the two share.
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
 * parser (resp_parse.c) and dispatched through the command table
 * (resp_cmd.c), with no allocation per command (the argv views live in one
 * scratch array on the server); only an incomplete tail is copied to the
 * client's input, and when input is kept there the next read is appended
 * and the whole is pulled up and run once. After the callback has run its
 * commands the replies are written at once (Redis writes before it sleeps
 * the same way); only what the kernel refuses arms EV_WRITE.
 *
 * Fan-out: a client subscribes through two handles, channel and pattern
 * (resp_cmd.c). resp_deliver (the handles' sink_ops.deliver, registered in
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
 * wait unread. A failed AUTH (resp_cmd.c) holds the client (no reading, not
 * even of the commands already received) for RESP_AUTH_HOLD_MS, on its
 * event's own timeout.
 *
 * request-timeout: a command that has started arriving must be complete
 * within it (resp_conn_sweep); a client with nothing pending may stay
 * idle for ever, as in Redis.
 *
 * Closing: conn_close detaches from the trie (the fan-out collects
 * targets before delivering, so this is safe inside a delivery), marks its
 * handles closed (a flush skips it; freeing it prunes the dirty list first),
 * frees the event and closes the socket, and queues the struct on the
 * close list (core.c), which frees its buffers later: a command being run
 * points into the input buffer. Errors that Redis answers before closing
 * (protocol errors, QUIT, shutdown) use close-after-flush: reading stops,
 * the handles are marked closed so no more deliveries queue, and the
 * client closes once its output is written, or when its event (armed with
 * a timeout while closing) sees no progress for RESP_FLUSH_TIMEOUT. A
 * command asks for it with c->close_after, acted on as soon as it returns.
 *
 * Rejected: a resumable parser state per client (the parser re-scans a
 * split command; see resp_parse.c).
 */
#include "broker/resp_conn.h"

#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "broker/core.h"
#include "broker/resp_internal.h"
#include "broker/resp_parse.h"
#include "common/frame.h"
#include "common/listener.h"
#include "common/log.h"
#include "common/mem.h"
#include "common/net.h"
#include "common/outq.h"
#include "common/ptrset.h"
#include "common/sink.h"

#define RESP_MAX_INLINE      (64 * 1024)
#define RESP_BULK_SLACK      1024
#define RESP_PENDING_SLACK   (64 * 1024)
#define RESP_OUT_HIGH        (1024 * 1024)
#define RESP_OUT_LOW         (256 * 1024)
#define RESP_WRITE_EARLY     (64 * 1024)  /* replies of one batch written before it ends */
#define RESP_READ_BUDGET     (256 * 1024) /* bytes read per client per callback */
#define RESP_FLUSH_TIMEOUT   10          /* seconds a closing client has to read its last replies */
#define RESP_PREAUTH_PENDING 4096        /* incomplete command kept before AUTH */
#define RESP_PREAUTH_OUT     (16 * 1024) /* unread replies before AUTH */
#define RESP_AUTH_HOLD_MS    500         /* no reading after a failed AUTH */

static void conn_close(struct resp_conn *c, const char *reason);
static void close_after_flush(struct resp_conn *c, const char *reason);
static int resp_deliver(struct sink *s, struct frame *f);
static int resp_flush(struct sink *s);

/* Both handles of every client: the fan-out's view of a RESP subscriber. */
static const struct sink_ops resp_sink_ops = {.deliver = resp_deliver, .flush = resp_flush};

/* ---- output ------------------------------------------------------------- */

static void conn_on_event(evutil_socket_t fd, short what, void *arg);

/*
 * Points c's event at what it needs: input unless paused or closing,
 * writability while output is pending, and the flush timeout while
 * closing. Changing it costs an event_del and an event_add, so it is only
 * done when that set changes. Closes c (check c->closed) if libevent fails.
 */
static void conn_arm(struct resp_conn *c)
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
                     conn_on_event, c) < 0 ||
        event_add(c->ev, c->closing ? &flush
                         : c->held  ? &hold
                                    : NULL) < 0)
        conn_close(c, "error");
}

/* One writev of c's output. Returns 0, or -1 having closed c on a socket error. */
static int write_out(struct resp_conn *c)
{
    if (evbuffer_write(c->out, c->fd) < 0 && errno != EAGAIN && errno != EWOULDBLOCK &&
        errno != EINTR) {
        conn_close(c, "error");
        return -1;
    }
    return 0;
}

/* Puts c on the dirty list; the first entry of a pass activates flush_ev. */
static void mark_dirty(struct resp_conn *c)
{
    struct resp_server *srv = c->srv;

    if (c->channel.sink.flags & SINK_DIRTY)
        return;
    if (srv->dirty.n == 0)
        event_active(srv->flush_ev, EV_TIMEOUT, 0);
    dirty_add(&srv->dirty, &c->channel.sink);
}

/* ---- input -------------------------------------------------------------- */

static void protocol_error(struct resp_conn *c, const char *err)
{
    c->srv->core->stats.drops[DROP_PROTOCOL]++;
    resp_cmd_reply_error(c, err);
    close_after_flush(c, "protocol");
}

/*
 * An unauthenticated client gets no backpressure budget: past
 * RESP_PREAUTH_OUT of replies it has not read, it is closed. Returns true
 * when c was closed.
 */
static bool preauth_unread(struct resp_conn *c)
{
    if (evbuffer_get_length(c->out) <= RESP_PREAUTH_OUT)
        return false;
    if (!(c->armed & EV_WRITE) && write_out(c) < 0)
        return true;
    if (evbuffer_get_length(c->out) <= RESP_PREAUTH_OUT)
        return false;
    c->srv->core->stats.drops[DROP_PROTOCOL]++;
    conn_close(c, "unauthenticated_unread");
    return true;
}

/*
 * Runs complete commands from buf; returns the bytes consumed. A batch's
 * replies past RESP_WRITE_EARLY are written before it ends, unless the
 * kernel is already refusing; past RESP_OUT_HIGH unwritten, c pauses.
 */
static size_t run_commands(struct resp_conn *c, char *buf, size_t len, bool *incomplete)
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
        if (argc > 0) {
            resp_cmd_dispatch(c, srv->argv, argc);
            if (c->close_after)
                close_after_flush(c, c->close_after);
        }
        if (c->closed)
            break;
        if (evbuffer_get_length(c->out) >= RESP_WRITE_EARLY && !(c->armed & EV_WRITE)) {
            if (write_out(c) < 0)
                break;
            conn_arm(c); /* EV_WRITE for what was refused */
            if (c->closed)
                break;
        }
        if (!c->authed && preauth_unread(c))
            break;
        if (evbuffer_get_length(c->out) > RESP_OUT_HIGH)
            c->paused = true; /* conn_arm drops EV_READ when the callback ends */
    }
    return off;
}

/*
 * After a batch: an incomplete command larger than a request may be is an
 * error (before AUTH: a few KB). Also starts or stops request-timeout's clock.
 */
static void check_pending(struct resp_conn *c, bool incomplete, size_t left)
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
static void process_input(struct resp_conn *c)
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
static void consume(struct resp_conn *c, char *p, size_t n)
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
static void conn_read(struct resp_conn *c)
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
                conn_close(c, "eof");
            return;
        } else if (errno != EINTR) {
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                conn_close(c, "error");
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
static void conn_settle(struct resp_conn *c, bool try_write)
{
    for (;;) {
        if (try_write && evbuffer_get_length(c->out) > 0) {
            if (write_out(c) < 0)
                return;
        }
        if (c->closing) {
            if (evbuffer_get_length(c->out) == 0) {
                conn_close(c, NULL);
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
    conn_arm(c);
}

static void conn_on_event(evutil_socket_t fd, short what, void *arg)
{
    struct resp_conn *c = arg;

    (void)fd;
    if ((what & EV_TIMEOUT) && c->held && !c->closing) {
        /* The hold after a failed AUTH is over: run what waited, read again. */
        c->held = false;
        process_input(c);
        if (c->closed)
            return;
        conn_settle(c, true);
        return;
    }
    if (what & EV_TIMEOUT) {
        conn_close(c, "timeout");
        return;
    }
    if ((what & EV_READ) && !c->closing && !c->paused) {
        conn_read(c);
        if (c->closed)
            return;
    }
    conn_settle(c, (what & EV_WRITE) || !(c->armed & EV_WRITE));
}

/* The handles' sink_ops.flush: writes the client's output. */
static int resp_flush(struct sink *s)
{
    struct resp_conn *c = ((struct resp_handle *)s)->conn;

    if (c->closed)
        return -1;
    conn_settle(c, !(c->armed & EV_WRITE));
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

static void mark_handles_closed(struct resp_conn *c)
{
    c->channel.sink.flags |= SINK_CLOSED;
    c->pattern.sink.flags |= SINK_CLOSED;
}

/* Stops reading and deliveries; closes once the queued output is written. */
static void close_after_flush(struct resp_conn *c, const char *reason)
{
    if (c->closed || c->closing)
        return;
    c->closing = true;
    mark_handles_closed(c);
    log_debug("resp_closing", "conn=%u peer=%s reason=%s", c->id, c->peer, reason);
    if (evbuffer_get_length(c->out) > 0 && !(c->armed & EV_WRITE) && write_out(c) < 0)
        return;
    if (evbuffer_get_length(c->out) == 0) {
        conn_close(c, reason);
        return;
    }
    conn_arm(c); /* EV_WRITE only, with the flush timeout */
}

static void list_unlink(struct resp_server *srv, struct resp_conn *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        srv->clients = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
}

/* Frees the struct and its buffers (the close list, or a failed conn_new). */
static void conn_free(struct close_entry *e)
{
    struct resp_conn *c = (struct resp_conn *)e;

    if (c->channel.sink.flags & SINK_DIRTY) /* closed while a flush was due */
        dirty_prune(&c->srv->dirty);
    if (c->in)
        evbuffer_free(c->in);
    if (c->out)
        evbuffer_free(c->out);
    mem_free(c);
}

/* Frees the socket's event and closes the socket. */
static void conn_close_io(struct resp_conn *c)
{
    if (c->ev)
        event_free(c->ev);
    c->ev = NULL;
    close(c->fd);
}

/* Closes now (idempotent): detach, free the socket, free the struct later. reason NULL: flushed. */
static void conn_close(struct resp_conn *c, const char *reason)
{
    struct resp_server *srv = c->srv;
    struct core *core = srv->core;

    if (c->closed)
        return;
    c->closed = true;
    mark_handles_closed(c);
    resp_cmd_unsubscribe_all(c);
    conn_close_io(c);
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
static void conn_expire(struct preauth *p, enum broker_drop why)
{
    struct resp_conn *c = (struct resp_conn *)((char *)p - offsetof(struct resp_conn, preauth));

    c->srv->core->stats.drops[why]++;
    conn_close(c, core_drop_name(why));
}

static struct resp_conn *conn_new(struct resp_server *srv, evutil_socket_t fd)
{
    struct core *core = srv->core;
    struct resp_conn *c = mem_calloc(1, sizeof(*c));
    int one = 1;

    c->srv = srv;
    c->close.free_fn = conn_free;
    c->channel.sink.form = SUB_FORM_MESSAGE;
    c->channel.conn = c;
    c->pattern.sink.form = SUB_FORM_PMESSAGE;
    c->pattern.conn = c;
    c->id = ++srv->next_id;
    c->authed = core->conf->requirepass == NULL;
    c->fd = fd;
    net_peer_name(fd, c->peer, sizeof(c->peer));
    /* Replies are small and latency-bound; Redis disables Nagle too. */
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    /* The listener made fd non-blocking. */
    c->in = evbuffer_new();
    c->out = evbuffer_new();
    c->ev = event_new(core->base, fd, EV_READ | EV_PERSIST, conn_on_event, c);
    c->armed = EV_READ;
    if (!c->in || !c->out || !c->ev || event_add(c->ev, NULL) < 0) {
        conn_close_io(c);
        conn_free(&c->close);
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
    struct resp_conn *c;

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
    c = conn_new(srv, fd);
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
    c->preauth.expire = conn_expire;
    if (!c->authed)
        core_preauth_add(core, &c->preauth);
    log_debug("resp_open", "conn=%u peer=%s", c->id, c->peer);
}

/* ---- exported ----------------------------------------------------------- */

struct resp_server *resp_conn_start(struct core *core, const char **err)
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

void resp_conn_shutdown(struct resp_server *srv)
{
    struct resp_conn *c, *next;

    if (!srv)
        return;
    listener_free(srv->listener);
    srv->listener = NULL;
    for (c = srv->clients; c; c = next) {
        next = c->next;
        close_after_flush(c, "shutdown");
    }
}

void resp_conn_sweep(struct resp_server *srv, uint64_t now_ms)
{
    struct resp_conn *c, *next;

    if (!srv)
        return;
    for (c = srv->clients; c; c = next) {
        next = c->next;
        if (!core_request_late(srv->core, c->partial_since_ms, now_ms))
            continue;
        core_request_timeout(srv->core, EP_RESP, c->id, c->peer);
        conn_close(c, "request_timeout");
    }
}

void resp_conn_free(struct resp_server *srv)
{
    struct resp_conn *c, *next;

    if (!srv)
        return;
    listener_free(srv->listener);
    /* Clients still open after the loop (shutdown timeout): only free them. */
    dirty_free(&srv->dirty); /* no client is written again */
    for (c = srv->clients; c; c = next) {
        next = c->next;
        conn_close_io(c);
        ptrset_clear(&c->channels);
        ptrset_clear(&c->patterns);
        conn_free(&c->close);
    }
    srv->core->resp_subs.ops = NULL;
    event_free(srv->flush_ev);
    mem_free(srv);
}

/* The handles' sink_ops.deliver: a `message` or `pmessage` for the fan-out. */
static int resp_deliver(struct sink *s, struct frame *f)
{
    struct resp_conn *c = ((struct resp_handle *)s)->conn;
    struct core *core = c->srv->core;
    size_t queued;

    if (c->closed || c->closing)
        return 0;
    queued = evbuffer_get_length(c->out);
    if (!outq_fits(queued, f->len, core->conf->client_output_limit)) {
        log_warn("slow_consumer", "conn=%u peer=%s queued=%zu", c->id, c->peer, queued + f->len);
        core->stats.drops[DROP_SLOW_CONSUMER]++;
        conn_close(c, "slow_consumer");
        return -1;
    }
    if (outq_append(c->out, f, 0) < 0) {
        conn_close(c, "error");
        return -1;
    }
    core->stats.bytes_out += f->len;
    /* Written after this pass's I/O; with EV_WRITE armed the write callback gets it. */
    if (!(c->armed & EV_WRITE))
        mark_dirty(c);
    return 0;
}

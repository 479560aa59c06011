/*
 * linksrv.c - the broker's link endpoint: msgpack frames over TCP.
 *
 * Owns the link listener (struct linksrv) and every link connection
 * (struct lconn; the link_* names belong to the codec, common/link_codec.c).
 * Links are few (one per edge worker, CLI or C publisher), so each gets its
 * own bufferevent for its whole life, and its own streaming decoder with a
 * frame limit of max-payload + 4096 bytes of framing.
 *
 * A struct lconn starts with its struct sink (form SUB_FORM_MSG): that
 * pointer is what it subscribes into core->link_subs.trie, and what the
 * fan-out hands back to lconn_deliver() through the ops this endpoint
 * registers in core->link_subs. The link also keeps the set of trie nodes it
 * subscribed to (a ptrset: O(1) membership, so SUB and UNSUB of any pattern
 * cost a trie lookup whatever the link holds), so closing unsubscribes
 * every pattern without a trie walk; the count is capped by
 * max-subscriptions, which WELCOME announces so an edge never asks for
 * more. A SUB past the cap, or with a bad pattern, is refused with an ERR
 * naming the pattern: the pattern is refused, never the link.
 *
 * Authentication. Until its HELLO is accepted a link is listed as
 * unauthenticated (core.c: auth-timeout, max-unauthenticated)
 * and its decoder takes no frame over LINKSRV_PREAUTH_FRAME bytes; HELLO
 * raises that to max-payload plus framing. The output limit follows what
 * the peer proved, not what it claims: role "edge"
 * gets edge-output-limit with a credential (edge-secret, or requirepass
 * when no edge-secret is set), from an edge-allow address, or reserved
 * from edge-output-limit-total while that budget lasts; otherwise it is a
 * client with client-output-limit like any other. An edge proven by secret
 * or address is also admitted past max-clients.
 *
 * States: HELLO (only a HELLO is accepted), READY, CLOSING (an ERR or the
 * shutdown is being flushed: reading is off, the patterns are already gone
 * from the trie, and the write callback closes once the output is empty;
 * a write timeout bounds the wait). lconn_close() is the one way out: it
 * detaches from the trie and the server's list, frees the bufferevent
 * (libevent finalizes it later, so queued frame references drop then) and
 * queues the struct on the close list (core.c): never freed in a callback.
 *
 * Input is fed to the decoder one chunk at a time and decoded in between, so
 * the decoder never buffers more than one chunk beyond a frame. Request/
 * reply backpressure: when a request's reply (a PUBACK, say,
 * that the link is not reading) takes the output past a high mark, reading
 * stops with the rest of its input left queued; the write callback resumes
 * at the low mark. A PING never pauses, nor does a frame that queued no
 * reply, however long the output already is with fan-out. Every byte
 * queued counts against the link's output limit, replies (PONGs included)
 * as much as fan-out: past it the link is a slow consumer and is closed,
 * so a peer that sends PINGs and never reads costs at most its limit.
 * Fan-out never waits: lconn_deliver() closes a link past its limit.
 *
 * Close now, free later: lconn_close() drops the link from the trie, the
 * socket and the lists at once, but its decoder - whose buffer the topic
 * and payload of a PUB being routed point into - is freed only from the
 * close list, after the callback chain has returned. A link that
 * publishes to its own topic until it is cut off as a slow consumer is
 * closed in the middle of router_publish(), which still reads both.
 *
 * request-timeout: a frame that has started arriving must be complete
 * within it (linksrv_sweep, from the broker's tick); a link with no
 * partial frame may stay silent for ever.
 *
 * TLS (link-tls-cert-file and link-tls-key-file set): every link is a
 * bufferevent_openssl accepting on the socket, with an SSL made from the
 * current context of a reloadable struct tls_server (common/tls.h:
 * released record buffers, no session cache). Everything above holds
 * unchanged over the decrypted stream; what TLS adds is bounded by the
 * same rules: a link is listed as unauthenticated from accept, so a peer
 * that stalls its handshake or sends garbage is closed by auth-timeout or
 * evicted at max-unauthenticated like a silent TCP peer; what it may send
 * before the handshake is done is capped at LINKSRV_TLS_HANDSHAKE bytes by
 * a callback on the socket's BIO (OpenSSL alone would buffer a ClientHello
 * of up to 128 KiB; a real one is a few hundred bytes, and no client
 * certificate is asked for), and the same callback refuses a ClientHello
 * header declaring more than TLS_HELLO_MAX (hello_scan: OpenSSL
 * allocates what it declares), so it holds at most that plus one record; a
 * TLS record that has started arriving counts for request-timeout like a
 * partial frame (SSL_has_pending), so a trickled record cannot pin its
 * buffer after HELLO either. A failed handshake is counted and logged at
 * most once a second. A close after a flush (an ERR, the shutdown) sends
 * close_notify; a cut (slow consumer, timeout) does not, so the peer
 * cannot take a cut stream for a complete one. linksrv_reload_tls()
 * (SIGHUP) swaps the context for new links; open links keep theirs.
 *
 * Rejected: the edge's pooled, bufferevent-less connections (links are too
 * few to matter), and a per-link timer (the bufferevent's own write timeout
 * serves the close-after-flush wait).
 */
#include "broker/linksrv.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <msgpack.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "broker/broker_metrics.h"
#include "broker/core.h"
#include "broker/history.h"
#include "broker/router.h"
#include "broker/seq_map.h"
#include "common/frame.h"
#include "common/link_codec.h"
#include "common/listener.h"
#include "common/log.h"
#include "common/mem.h"
#include "common/net.h"
#include "common/outq.h"
#include "common/ptrset.h"
#include "common/sink.h"
#include "common/tls.h"
#include "common/topic.h"
#include "common/trie.h"

#define LINKSRV_FRAME_SLACK   4096       /* framing around the largest payload */
#define LINKSRV_PREAUTH_FRAME 4096       /* largest frame before HELLO is accepted */
#define LINKSRV_READ_CHUNK    (64 << 10) /* bytes fed to the decoder between decodes */
#define LINKSRV_PAUSE_HIGH    (256 << 10)
#define LINKSRV_CLOSE_WAIT_S  2 /* how long an ERR or shutdown flush may take */
#define LINKSRV_STATS_MAX     2048
#define LINKSRV_TLS_HANDSHAKE                                                                      \
    (16 << 10) /* bytes a TLS client may send before its handshake is done */

/*
 * The pre-handshake record reader of hello_scan(): where the client's byte
 * stream is, record by record, so the first handshake header of each
 * plaintext handshake record can be judged before OpenSSL reads it.
 */
struct hello_scan {
    uint8_t hdr[9]; /* a record header, then (handshake records) the handshake header */
    uint8_t have;   /* bytes of hdr collected for the current record */
    uint32_t left;  /* bytes of the current record's body still to pass */
};

enum lconn_state {
    LCONN_HELLO,
    LCONN_READY,
    LCONN_CLOSING,
};

struct lconn {
    struct sink sink; /* first: the trie subscriber (SUB_FORM_MSG) */
    struct close_entry close_entry;
    struct preauth preauth; /* listed as unauthenticated (core.c) until HELLO is accepted */
    struct core *core;
    struct linksrv *srv;
    struct lconn *prev, *next; /* the server's list of live links */
    struct bufferevent *bev;
    struct link_decoder *dec; /* freed with the struct: router views point into it */
    struct ptrset subs;       /* nodes of core->link_subs.trie holding this link */
    enum lconn_state state;
    bool paused;  /* reading stopped: replies over the high mark */
    bool allowed; /* the peer's address is in edge-allow */
    bool tls_up;  /* TLS: the handshake completed (OpenSSL's own state resets on an error) */
    struct hello_scan hello; /* TLS, until the handshake is done */
    const char *close_reason;
    size_t output_limit;       /* edge-output-limit for granted edges, else client-output-limit */
    size_t budget;             /* bytes reserved from edge-output-limit-total, 0 when none */
    uint64_t partial_since_ms; /* a frame is partly received since then; 0: none */
    uint32_t id;
    char peer[64];
    char role[16];
    char node[64];
};

struct linksrv {
    struct core *core;
    struct listener *listener;
    struct lconn *links;
    uint32_t next_id;
    size_t pause_high, pause_low;
    size_t edge_budget_used;      /* of edge-output-limit-total */
    msgpack_sbuffer sb;           /* reply scratch, cleared before each encode */
    bool tls_on;                  /* link-tls-cert-file set: every link speaks TLS */
    struct tls_server tls;        /* its reloadable context */
    struct log_rate tls_fail_log; /* failed handshakes: a line a second at most */
};

static void lconn_close(struct lconn *l, const char *reason);
static void process_input(struct lconn *l);
static int lconn_deliver(struct sink *s, struct frame *f);

/* Every link's sink: the bufferevent writes, so there is no flush. */
static const struct sink_ops lconn_sink_ops = {.deliver = lconn_deliver};

/* ---- replies and closing ---------------------------------------------- */

/* l is a slow consumer: closed and counted. Returns -1. */
static int slow_consumer(struct lconn *l, size_t queued)
{
    log_warn("slow_consumer", "conn=%u peer=%s role=%s queued=%zu", l->id, l->peer, l->role,
             queued);
    l->core->stats.drops[DROP_SLOW_CONSUMER]++;
    lconn_close(l, "slow_consumer");
    return -1;
}

/*
 * Appends f to l's output unless that would take it past l's output limit
 * (then l is a slow consumer, closed). Replies and fan-out count alike.
 * Borrows f. Returns 0, or -1 when l was closed.
 */
static int queue_frame(struct lconn *l, struct frame *f)
{
    struct evbuffer *out = bufferevent_get_output(l->bev);
    size_t queued = evbuffer_get_length(out);

    if (!outq_fits(queued, f->len, l->output_limit))
        return slow_consumer(l, queued + f->len);
    if (outq_append(out, f, 0) < 0) {
        lconn_close(l, "error");
        return -1;
    }
    l->core->stats.bytes_out += f->len;
    return 0;
}

/*
 * Appends the reply encoded in the server's scratch buffer to l's output;
 * replies count against the output limit like fan-out. Returns 0, or -1
 * when l was closed (over its limit, or out of memory).
 */
static int send_scratch(struct lconn *l)
{
    msgpack_sbuffer *sb = &l->srv->sb;
    struct evbuffer *out;
    size_t queued;

    if (sink_closed(&l->sink))
        return -1;
    out = bufferevent_get_output(l->bev);
    queued = evbuffer_get_length(out);
    if (!outq_fits(queued, sb->size, l->output_limit))
        return slow_consumer(l, queued + sb->size);
    if (evbuffer_add(out, sb->data, sb->size) < 0) {
        lconn_close(l, "error");
        return -1;
    }
    l->core->stats.bytes_out += sb->size;
    return 0;
}

static msgpack_sbuffer *scratch(struct lconn *l)
{
    msgpack_sbuffer_clear(&l->srv->sb);
    return &l->srv->sb;
}

static int send_err(struct lconn *l, const char *code, const char *text)
{
    link_encode_err(scratch(l), code, text);
    return send_scratch(l);
}

/* An ERR about one pattern or topic: that request is refused, the link stays. */
static int send_err_topic(struct lconn *l, const char *code, const char *text,
                          const struct link_str *topic)
{
    link_encode_err_topic(scratch(l), code, text, topic->ptr, topic->len);
    return send_scratch(l);
}

/* The link's SSL, or NULL on a plain link. */
static SSL *lconn_ssl(const struct lconn *l)
{
    return l->bev ? bufferevent_openssl_get_ssl(l->bev) : NULL;
}

/*
 * Closes l whose output has all been written: a TLS link first sends
 * close_notify (one small record, written straight to the socket; a full
 * socket buffer only loses it), so its peer knows nothing was cut.
 */
static void close_flushed(struct lconn *l, const char *reason)
{
    SSL *ssl = lconn_ssl(l);

    if (ssl && SSL_is_init_finished(ssl)) {
        (void)SSL_shutdown(ssl);
        ERR_clear_error();
    }
    lconn_close(l, reason);
}

static void unsubscribe_all(struct lconn *l)
{
    uint32_t nslots;
    void *const *nodes = ptrset_slots(&l->subs, &nslots);

    for (uint32_t i = 0; i < nslots; i++) {
        if (nodes[i])
            trie_unsubscribe_node(l->core->link_subs.trie, nodes[i], l, NULL);
    }
    ptrset_clear(&l->subs);
}

/*
 * Stops reading and closes l once its output is flushed (at once when it is
 * already empty). Its patterns leave the trie now: no event is queued
 * behind an ERR. Always returns -1 (l may be closed).
 */
static int close_after_flush(struct lconn *l, const char *reason)
{
    struct timeval tv = {LINKSRV_CLOSE_WAIT_S, 0};

    if (l->state == LCONN_CLOSING)
        return -1;
    l->state = LCONN_CLOSING;
    l->close_reason = reason;
    unsubscribe_all(l);
    bufferevent_disable(l->bev, EV_READ);
    if (evbuffer_get_length(bufferevent_get_output(l->bev)) == 0) {
        close_flushed(l, reason);
        return -1;
    }
    bufferevent_setwatermark(l->bev, EV_WRITE, 0, 0);
    bufferevent_set_timeouts(l->bev, NULL, &tv);
    return -1;
}

/*
 * Sends ERR code/text, counts drop (DROP_COUNT: already counted), and
 * closes after the flush. Returns -1.
 */
static int fail(struct lconn *l, const char *code, const char *text, enum broker_drop drop)
{
    if (drop != DROP_COUNT)
        l->core->stats.drops[drop]++;
    log_info("link_error", "conn=%u peer=%s code=%s reason=\"%s\"", l->id, l->peer, code, text);
    if (send_err(l, code, text) < 0)
        return -1;
    return close_after_flush(l, code);
}

static void free_entry(struct close_entry *e)
{
    struct lconn *l = (struct lconn *)((char *)e - offsetof(struct lconn, close_entry));

    link_decoder_free(l->dec);
    mem_free(l);
}

static void list_remove(struct lconn *l)
{
    if (l->prev)
        l->prev->next = l->next;
    else
        l->srv->links = l->next;
    if (l->next)
        l->next->prev = l->prev;
    l->prev = l->next = NULL;
}

/*
 * The one way a link ends; idempotent. Detaches it from the trie, the
 * socket and every list now; the struct and its decoder are freed on a
 * later loop pass (see the top comment).
 */
static void lconn_close(struct lconn *l, const char *reason)
{
    if (sink_closed(&l->sink))
        return;
    l->sink.flags |= SINK_CLOSED;
    l->state = LCONN_CLOSING;
    unsubscribe_all(l);
    if (l->preauth.listed)
        log_debug("link_close", "conn=%u peer=%s reason=%s", l->id, l->peer, reason);
    else
        log_info("link_close", "conn=%u peer=%s reason=%s", l->id, l->peer, reason);
    core_preauth_leave(l->core, &l->preauth);
    l->srv->edge_budget_used -= l->budget;
    l->budget = 0;
    bufferevent_free(l->bev);
    l->bev = NULL;
    list_remove(l);
    core_conn_closed(l->core, EP_LINK);
    l->close_entry.free_fn = free_entry;
    core_defer_free(l->core, &l->close_entry);
}

/* core.c closes an unauthenticated link: auth-timeout passed, or a newer one needs its place. */
static void lconn_expire(struct preauth *p, enum broker_drop why)
{
    struct lconn *l = (struct lconn *)((char *)p - offsetof(struct lconn, preauth));

    l->core->stats.drops[why]++;
    lconn_close(l, core_drop_name(why));
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

static bool is_edge(const struct lconn *l)
{
    return strcmp(l->role, "edge") == 0;
}

/*
 * Decides l's output limit from what it proved (see the top comment).
 * credential: its HELLO carried the secret that grants the edge role.
 * Returns how it was granted, for the log.
 */
static const char *grant_output_limit(struct lconn *l, bool credential)
{
    struct core *core = l->core;
    const struct broker_conf *conf = core->conf;
    size_t want = conf->edge_output_limit;

    if (!is_edge(l))
        return "none";
    if (credential || l->allowed) {
        l->output_limit = want;
        return credential ? "secret" : "allow";
    }
    if (conf->edge_output_limit_total - l->srv->edge_budget_used >= want) {
        l->srv->edge_budget_used += want;
        l->budget = want;
        l->output_limit = want;
        return "budget";
    }
    log_warn("edge_role_refused",
             "conn=%u peer=%s reason=\"no credential, not in edge-allow, "
             "edge-output-limit-total spent\" output_limit=%zu",
             l->id, l->peer, l->output_limit);
    return "none";
}

/* Checks the HELLO's secret. Returns 0 with *edge_cred, or -1 (l is closing). */
static int authenticate(struct lconn *l, const struct link_frame *f, bool *edge_cred)
{
    struct core *core = l->core;
    const char *secret = f->has_secret ? f->secret.ptr : NULL;
    size_t len = f->has_secret ? f->secret.len : 0;

    *edge_cred = false;
    if (core_secret_eq(core->conf->edge_secret, secret, len)) {
        *edge_cred = true;
        return 0;
    }
    if (core_auth_ok(core, secret, len)) {
        /* Without an edge-secret the link secret is the edge credential. */
        *edge_cred = !core->conf->edge_secret && core->conf->requirepass;
        return 0;
    }
    core_auth_failed(core, EP_LINK, l->peer);
    return fail(l, "auth", f->has_secret ? "invalid secret" : "secret required", DROP_COUNT);
}

static int on_hello(struct lconn *l, const struct link_frame *f)
{
    struct core *core = l->core;
    const char *node = core->conf->node_id ? core->conf->node_id : "broker";
    const char *grant;
    bool edge_cred;

    if (f->version != LINK_VERSION)
        return fail(l, "protocol", "unsupported link version", DROP_PROTOCOL);
    if (authenticate(l, f, &edge_cred) < 0)
        return -1;
    copy_name(l->role, sizeof(l->role), &f->role);
    copy_name(l->node, sizeof(l->node), &f->node);
    /* An edge proven by secret or address is admitted even at max-clients:
     * edges are few, and clients filling the broker must not cut every
     * browser off. */
    if (!(is_edge(l) && (edge_cred || l->allowed)) && !core_admit(core))
        return fail(l, "max_clients", "max number of clients reached", DROP_COUNT);
    core_preauth_leave(core, &l->preauth);
    link_decoder_set_max(l->dec, core->conf->max_payload + LINKSRV_FRAME_SLACK);
    grant = grant_output_limit(l, edge_cred);
    l->state = LCONN_READY;
    log_info("link_hello", "conn=%u peer=%s role=%s node=%s output_limit=%zu grant=%s", l->id,
             l->peer, l->role, l->node, l->output_limit, grant);
    link_encode_welcome_epoch(scratch(l), node, core->epoch,
                              (uint64_t)core->conf->max_subscriptions, core->history_epoch);
    return send_scratch(l);
}

static int on_sub(struct lconn *l, const struct link_frame *f)
{
    struct core *core = l->core;
    struct trie_node *node;
    const char *err = "invalid pattern";

    if (!topic_pattern_valid(f->topic.ptr, f->topic.len, &core->limits, &err))
        return send_err_topic(l, "bad_topic", err, &f->topic);
    if (trie_find_sub(l->core->link_subs.trie, f->topic.ptr, f->topic.len, l))
        return 0;
    if (ptrset_count(&l->subs) >= (uint64_t)core->conf->max_subscriptions)
        return send_err_topic(l, "too_many_subscriptions", "max-subscriptions reached", &f->topic);
    node = trie_subscribe(core->link_subs.trie, f->topic.ptr, f->topic.len, l, NULL, NULL);
    ptrset_add(&l->subs, node);
    return 0;
}

static int on_unsub(struct lconn *l, const struct link_frame *f)
{
    const char *err = "invalid pattern";
    struct trie_node *node;

    if (!topic_pattern_valid(f->topic.ptr, f->topic.len, &l->core->limits, &err))
        return send_err_topic(l, "bad_topic", err, &f->topic);
    node = trie_find_sub(l->core->link_subs.trie, f->topic.ptr, f->topic.len, l);
    if (!node)
        return 0; /* like Redis: unsubscribing what is not subscribed is no error */
    ptrset_remove(&l->subs, node);
    trie_unsubscribe_node(l->core->link_subs.trie, node, l, NULL);
    return 0;
}

static int on_pub(struct lconn *l, const struct link_frame *f)
{
    struct core *core = l->core;
    struct router_result res;
    const char *err = "invalid topic";

    if (!topic_valid(f->topic.ptr, f->topic.len, &core->limits, &err))
        return send_err_topic(l, "bad_topic", err, &f->topic);
    if (f->payload.len > core->conf->max_payload)
        return fail(l, "oversize", "payload over max-payload", DROP_OVERSIZE);
    router_publish(core, f->topic.ptr, f->topic.len, f->payload.ptr, f->payload.len, &res);
    /* A link subscribed to its own topic may just have been closed as a slow consumer. */
    if (sink_closed(&l->sink) || l->state == LCONN_CLOSING)
        return -1;
    if (!f->has_req_id)
        return 0;
    link_encode_puback(scratch(l), f->req_id, res.receivers, res.seq);
    return send_scratch(l);
}

/* history_range's callback: queues one retained MSG frame, by reference. */
struct history_out {
    struct lconn *l;
    uint64_t sent;
    bool closed;
};

static void history_queue(void *arg, struct frame *f)
{
    struct history_out *o = arg;

    if (o->closed)
        return;
    if (queue_frame(o->l, f) < 0)
        o->closed = true;
    else
        o->sent++;
}

/*
 * HISTORY (docs/protocol.md section 2.3): HISTR, then the retained MSGs of
 * (after, head] when all of them are there and the epoch is ours. The HISTR
 * says how many follow, so it is encoded after the range is known to be
 * covered; the frames are queued after it, by reference.
 */
static int on_history(struct lconn *l, const struct link_frame *f)
{
    struct core *core = l->core;
    const char *err = "invalid topic";
    uint64_t head;
    bool ours;
    struct history_out out = {l, 0, false};
    struct link_history_reply r;

    if (!topic_valid(f->topic.ptr, f->topic.len, &core->limits, &err))
        return send_err_topic(l, "bad_topic", err, &f->topic);
    head = seq_map_last(core->seqs, f->topic.ptr, f->topic.len);
    ours = f->has_history_epoch && f->history_epoch.len == strlen(core->history_epoch) &&
           memcmp(f->history_epoch.ptr, core->history_epoch, f->history_epoch.len) == 0;
    r = (struct link_history_reply){f->req_id, f->topic, {core->history_epoch, 16}, head, false, 0};
    r.recovered = ours && f->has_after &&
                  history_range(core->history, f->topic.ptr, f->topic.len, f->after, head,
                                net_now_ms(), NULL, NULL);
    if (r.recovered)
        r.count = head - f->after;
    core->stats.history_requests++;
    core->stats.history_recovered += r.recovered;
    link_encode_histr(scratch(l), &r);
    if (send_scratch(l) < 0)
        return -1;
    if (r.count == 0)
        return 0;
    history_range(core->history, f->topic.ptr, f->topic.len, f->after, head, net_now_ms(),
                  history_queue, &out);
    core->stats.history_events_sent += out.sent;
    return out.closed ? -1 : 0;
}

static int on_stats(struct lconn *l)
{
    char buf[LINKSRV_STATS_MAX];
    size_t len = broker_metrics_stats(l->core, buf, sizeof(buf));

    link_encode_statsr(scratch(l), buf, len);
    return send_scratch(l);
}

static int dispatch(struct lconn *l, const struct link_frame *f)
{
    if (l->state == LCONN_HELLO) {
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
        return send_scratch(l);
    case LINK_PONG:
        return 0;
    case LINK_STATS:
        return on_stats(l);
    case LINK_HISTORY:
        return on_history(l, f);
    case LINK_HELLO:
        return fail(l, "protocol", "duplicate HELLO", DROP_PROTOCOL);
    default:
        return fail(l, "protocol", "frame type not accepted by the broker", DROP_PROTOCOL);
    }
}

/* ---- reading, backpressure, events ------------------------------------ */

/* Stops reading l while its unread replies are over the high mark; true when paused. */
static bool maybe_pause(struct lconn *l)
{
    struct linksrv *srv = l->srv;

    if (evbuffer_get_length(bufferevent_get_output(l->bev)) <= srv->pause_high)
        return false;
    l->paused = true;
    bufferevent_disable(l->bev, EV_READ);
    bufferevent_setwatermark(l->bev, EV_WRITE, srv->pause_low, 0);
    return true;
}

/* Decodes every buffered frame. Returns 0 when more bytes are needed, -1 to stop. */
static int decode_all(struct lconn *l)
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
static int feed_chunk(struct lconn *l, struct evbuffer *in)
{
    struct evbuffer_iovec v;
    const char *err = "frame over the size limit";
    size_t len;

    if (evbuffer_peek(in, LINKSRV_READ_CHUNK, NULL, &v, 1) < 1)
        return -1;
    len = v.iov_len < LINKSRV_READ_CHUNK ? v.iov_len : LINKSRV_READ_CHUNK;
    if (link_decoder_feed(l->dec, v.iov_base, len, &err) < 0)
        return fail(l, "oversize", err, DROP_OVERSIZE);
    evbuffer_drain(in, len);
    l->core->stats.bytes_in += len;
    return 0;
}

/* True when part of a frame, or of a TLS record, has been received. */
static bool input_partial(const struct lconn *l)
{
    SSL *ssl = lconn_ssl(l);

    return link_decoder_pending(l->dec) > 0 || (ssl && SSL_has_pending(ssl));
}

/*
 * Starts or stops request-timeout's clock: a frame or a TLS record is
 * partly received, and we are reading. Called after each read, and by the
 * sweep: a TLS record's first bytes run no read callback (no plaintext yet).
 */
static void note_partial(struct lconn *l)
{
    if (sink_closed(&l->sink) || l->state == LCONN_CLOSING || l->paused || !input_partial(l))
        l->partial_since_ms = 0;
    else if (l->partial_since_ms == 0)
        l->partial_since_ms = net_now_ms();
}

static void process_input(struct lconn *l)
{
    struct evbuffer *in = bufferevent_get_input(l->bev);

    for (;;) {
        if (decode_all(l) < 0)
            break;
        if (evbuffer_get_length(in) == 0)
            break;
        if (feed_chunk(l, in) < 0)
            break;
    }
    note_partial(l);
}

static void lconn_on_read(struct bufferevent *bev, void *arg)
{
    struct lconn *l = arg;

    (void)bev;
    if (l->state != LCONN_CLOSING && !l->paused)
        process_input(l);
}

static void lconn_on_write(struct bufferevent *bev, void *arg)
{
    struct lconn *l = arg;
    struct evbuffer *out = bufferevent_get_output(bev);

    if (l->state == LCONN_CLOSING) {
        if (evbuffer_get_length(out) == 0)
            close_flushed(l, l->close_reason ? l->close_reason : "closed");
        return;
    }
    if (l->paused && evbuffer_get_length(out) <= l->srv->pause_low) {
        l->paused = false;
        bufferevent_setwatermark(bev, EV_WRITE, 0, 0);
        if (bufferevent_enable(bev, EV_READ) < 0) {
            lconn_close(l, "error");
            return;
        }
        process_input(l); /* what arrived while paused is already queued: no read callback */
    }
}

/*
 * A TLS link whose handshake failed (plaintext, garbage, an unsupported
 * version): counted, and logged once a second at most with the count and
 * the last peer's reason. Returns false when l is not such a link.
 */
static bool tls_handshake_failed(struct lconn *l)
{
    struct linksrv *srv = l->srv;
    SSL *ssl = lconn_ssl(l);
    unsigned long e, first = 0;
    const char *why;
    uint64_t n;

    if (!ssl || l->tls_up)
        return false;
    while ((e = bufferevent_get_openssl_error(l->bev)) != 0) {
        if (!first)
            first = e;
    }
    why = first ? ERR_reason_error_string(first) : NULL;
    l->core->stats.link_tls_handshake_failures++;
    n = log_rate_tick(&srv->tls_fail_log, net_now_ms(), 1000);
    if (n)
        log_warn("tls_handshake_failed", "endpoint=link count=%llu conn=%u peer=%s reason=\"%s\"",
                 (unsigned long long)n, l->id, l->peer, why ? why : "connection error");
    return true;
}

static void lconn_on_event(struct bufferevent *bev, short what, void *arg)
{
    struct lconn *l = arg;

    (void)bev;
    if (what & BEV_EVENT_CONNECTED) {
        /* A TLS link's handshake is done: its input is bounded by the link's
         * own limits from now on. */
        l->tls_up = true;
        BIO_set_callback_ex(SSL_get_rbio(lconn_ssl(l)), NULL);
        return;
    }
    if ((what & BEV_EVENT_ERROR) && tls_handshake_failed(l))
        lconn_close(l, "tls_handshake");
    else if (what & BEV_EVENT_EOF)
        lconn_close(l, "eof");
    else if (what & BEV_EVENT_TIMEOUT)
        lconn_close(l, "timeout");
    else if (what & BEV_EVENT_ERROR)
        lconn_close(l, "error");
}

/* ---- accepting ---------------------------------------------------------- */

/*
 * Follows p[0..n), bytes the socket BIO just read, through the client's
 * records. A plaintext handshake record read while OpenSSL waits for a
 * ClientHello (the first, or the second after a HelloRetryRequest) must
 * open with a ClientHello header declaring at most TLS_HELLO_MAX
 * bytes: OpenSSL allocates what the header declares (up to 131,396 bytes,
 * ~210 KB with its buffer's growth) as soon as it has read it, and keeps it
 * until the handshake ends, so nine bytes would otherwise pin that much.
 * Real clients send their ClientHello whole, in one record. Returns false
 * when the stream must be refused. Encrypted records, the dummy
 * ChangeCipherSpec and records after the ClientHello states pass.
 */
static bool hello_scan(struct hello_scan *h, const SSL *ssl, const uint8_t *p, size_t n)
{
    OSSL_HANDSHAKE_STATE st = SSL_get_state(ssl);
    bool hello_state = st == TLS_ST_BEFORE || st == TLS_ST_EARLY_DATA;

    while (n > 0) {
        size_t want, k, rec_len;

        if (h->left > 0) {
            k = n < h->left ? n : h->left;
            h->left -= (uint32_t)k;
            p += k;
            n -= k;
            continue;
        }
        want = h->have < 5 ? 5 : 9;
        k = want - h->have < n ? want - h->have : n;
        memcpy(h->hdr + h->have, p, k);
        h->have = (uint8_t)(h->have + k);
        p += k;
        n -= k;
        if (h->have < want)
            return true; /* the rest of the header comes with a later read */
        rec_len = (size_t)h->hdr[3] << 8 | h->hdr[4];
        if (h->have == 5 && (h->hdr[0] != 22 || !hello_state)) {
            h->left = (uint32_t)rec_len;
            h->have = 0;
            continue;
        }
        if (h->have == 5) {
            if (rec_len < 4)
                return false; /* a ClientHello header split across records */
            continue;
        }
        if (tls_hello_check(h->hdr) != NULL)
            return false;
        h->left = (uint32_t)(rec_len - 4);
        h->have = 0;
    }
    return true;
}

/*
 * The socket BIO's callback until the handshake is done (its argument is
 * the link): a ClientHello must pass hello_scan(), and past
 * LINKSRV_TLS_HANDSHAKE bytes read in all the read fails. Either way the
 * read fails with an OpenSSL error, so the handshake fails (counted,
 * reason "excessive message size") before OpenSSL allocates anything for
 * what it was told.
 */
static long handshake_cap(BIO *b, int oper, const char *argp, size_t len, int argi, long argl,
                          int ret, size_t *processed)
{
    struct lconn *l = (struct lconn *)BIO_get_callback_arg(b);

    (void)len;
    (void)argi;
    (void)argl;
    if (oper != (BIO_CB_READ | BIO_CB_RETURN))
        return ret;
    if (BIO_number_read(b) > LINKSRV_TLS_HANDSHAKE ||
        (l && ret > 0 && processed &&
         !hello_scan(&l->hello, lconn_ssl(l), (const uint8_t *)argp, *processed))) {
        ERR_raise(ERR_LIB_SSL, SSL_R_EXCESSIVE_MESSAGE_SIZE);
        return -1;
    }
    return ret;
}

/*
 * A bufferevent on the accepted fd: plain, or a TLS server whose SSL comes
 * from the current context, its input capped until the handshake is done.
 * NULL on failure (fd still open).
 */
static struct bufferevent *link_bev_new(struct linksrv *srv, evutil_socket_t fd)
{
    struct event_base *base = srv->core->base;
    struct bufferevent *bev;
    SSL_CTX *ctx;
    SSL *ssl;

    if (!srv->tls_on)
        return bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
    ctx = tls_server_ctx(&srv->tls);
    ssl = SSL_new(ctx);
    SSL_CTX_free(ctx); /* the SSL holds its own reference */
    if (!ssl) {
        ERR_clear_error();
        return NULL;
    }
    /* Takes ssl (freed with the bufferevent, or here on failure). */
    bev = bufferevent_openssl_socket_new(base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING,
                                         BEV_OPT_CLOSE_ON_FREE);
    /* A peer that closes TCP without close_notify ends like a plain link
     * (eof): the link's framing, not TLS, tells a cut frame. */
    if (!bev)
        return NULL;
    bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
    BIO_set_callback_ex(SSL_get_rbio(ssl), handshake_cap);
    return bev;
}

static struct lconn *lconn_new(struct linksrv *srv, evutil_socket_t fd)
{
    struct core *core = srv->core;
    struct lconn *l = mem_calloc(1, sizeof(*l));
    int one = 1;

    l->sink.form = SUB_FORM_MSG;
    l->output_limit = core->conf->client_output_limit;
    l->core = core;
    l->srv = srv;
    l->id = ++srv->next_id;
    net_peer_name(fd, l->peer, sizeof(l->peer));
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    l->bev = link_bev_new(srv, fd);
    if (!l->bev) {
        close(fd);
        mem_free(l);
        return NULL;
    }
    if (srv->tls_on) /* hello_scan's state: the link */
        BIO_set_callback_arg(SSL_get_rbio(lconn_ssl(l)), (char *)l);
    /* libevent writes at most 16 KiB per pass by default; a subscriber
     * behind a busy topic needs whole socket buffers per write. */
    bufferevent_set_max_single_write(l->bev, 1 << 20);
    l->dec = link_decoder_new(LINKSRV_PREAUTH_FRAME);
    bufferevent_setcb(l->bev, lconn_on_read, lconn_on_write, lconn_on_event, l);
    if (bufferevent_enable(l->bev, EV_READ | EV_WRITE) < 0) {
        link_decoder_free(l->dec);
        bufferevent_free(l->bev);
        mem_free(l);
        return NULL;
    }
    return l;
}

static void linksrv_on_accept(int fd, struct sockaddr *sa, int salen, void *arg)
{
    struct linksrv *srv = arg;
    struct core *core = srv->core;
    struct lconn *l;

    (void)salen;
    if (core->stopping) {
        close(fd);
        return;
    }
    l = lconn_new(srv, fd);
    if (!l) {
        log_warn("link_accept_failed", "reason=bufferevent");
        return;
    }
    l->allowed = core_edge_allowed(core, sa);
    l->next = srv->links;
    if (srv->links)
        srv->links->prev = l;
    srv->links = l;
    core->stats.conns_current[EP_LINK]++;
    core->stats.conns_total[EP_LINK]++;
    l->preauth.expire = lconn_expire;
    core_preauth_add(core, &l->preauth);
    log_debug("link_open", "conn=%u peer=%s", l->id, l->peer);
}

/* ---- exported ----------------------------------------------------------- */

/* Loads the link certificate when one is configured. Returns 0, or -1 with *err (logged). */
static int tls_start(struct linksrv *srv, const char **err)
{
    const struct broker_conf *conf = srv->core->conf;
    char why[512];

    if (!conf->link_tls_cert_file)
        return 0;
    if (tls_server_init(&srv->tls, conf->link_tls_cert_file, conf->link_tls_key_file, why,
                        sizeof(why)) < 0) {
        log_error("link_tls_failed", "reason=\"%s\"", why);
        *err = "link-tls-cert-file or link-tls-key-file did not load";
        return -1;
    }
    srv->tls_on = true;
    log_info("link_tls", "cert=%s key=%s", conf->link_tls_cert_file, conf->link_tls_key_file);
    return 0;
}

struct linksrv *linksrv_start(struct core *core, const char **err)
{
    struct linksrv *srv = mem_calloc(1, sizeof(*srv));

    srv->core = core;
    if (tls_start(srv, err) < 0) {
        mem_free(srv);
        return NULL;
    }
    srv->pause_high = LINKSRV_PAUSE_HIGH;
    if (core->conf->client_output_limit / 2 < srv->pause_high)
        srv->pause_high = core->conf->client_output_limit / 2;
    srv->pause_low = srv->pause_high / 4;
    srv->listener =
        core_listen(core, EP_LINK, core->conf->link_port, linksrv_on_accept, srv, NULL, err);
    if (!srv->listener) {
        tls_server_free(&srv->tls);
        mem_free(srv);
        return NULL;
    }
    msgpack_sbuffer_init(&srv->sb);
    core->link_subs.ops = &lconn_sink_ops;
    return srv;
}

void linksrv_shutdown(struct linksrv *srv)
{
    struct lconn *l, *next;

    if (!srv)
        return;
    listener_free(srv->listener);
    srv->listener = NULL;
    for (l = srv->links; l; l = next) {
        next = l->next;
        if (l->state != LCONN_CLOSING)
            close_after_flush(l, "shutdown");
    }
}

void linksrv_sweep(struct linksrv *srv, uint64_t now_ms)
{
    struct lconn *l, *next;

    if (!srv)
        return;
    for (l = srv->links; l; l = next) {
        next = l->next;
        note_partial(l);
        if (!core_request_late(srv->core, l->partial_since_ms, now_ms))
            continue;
        core_request_timeout(srv->core, EP_LINK, l->id, l->peer);
        lconn_close(l, "request_timeout");
    }
}

void linksrv_free(struct linksrv *srv)
{
    struct lconn *l, *next;

    if (!srv)
        return;
    listener_free(srv->listener);
    /* Links still open after the loop (shutdown timeout): only free them. */
    for (l = srv->links; l; l = next) {
        next = l->next;
        link_decoder_free(l->dec);
        bufferevent_free(l->bev);
        ptrset_clear(&l->subs);
        mem_free(l);
    }
    srv->core->link_subs.ops = NULL;
    msgpack_sbuffer_destroy(&srv->sb);
    tls_server_free(&srv->tls);
    mem_free(srv);
}

int linksrv_reload_tls(struct linksrv *srv)
{
    struct core *core;
    char err[512];

    if (!srv || !srv->tls_on)
        return 0;
    core = srv->core;
    if (tls_server_reload(&srv->tls, err, sizeof(err)) < 0) {
        core->stats.link_tls_reload_failures++;
        log_warn("tls_reload_failed", "endpoint=link reason=\"%s\" action=\"old certificate kept\"",
                 err);
        return -1;
    }
    core->stats.link_tls_reloads++;
    log_info("tls_reloaded", "endpoint=link cert=%s", srv->tls.cert_file);
    return 0;
}

/* The link's sink_ops.deliver: a MSG for the fan-out. */
static int lconn_deliver(struct sink *s, struct frame *f)
{
    struct lconn *l = (struct lconn *)s;

    if (sink_closed(s) || l->state == LCONN_CLOSING)
        return 0;
    return queue_frame(l, f);
}

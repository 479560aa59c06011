#ifndef HERALD_EDGE_UPLINK_H
#define HERALD_EDGE_UPLINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/types.h>

/*
 * A worker's persistent link to the broker (common/link_codec.h over one
 * bufferevent): HELLO/WELCOME, SUB/UNSUB, MSG in, PING/PONG keepalive,
 * reconnect with exponential backoff and jitter. Clients are not touched
 * when the link drops; on reconnect the worker re-sends its interest. An
 * ERR refusing one pattern refuses that pattern (on_refused), not the link.
 * Optionally over TLS (broker-tls), verifying the broker's certificate.
 */

struct event_base;
struct link_frame;
struct uplink;

enum uplink_state {
    UPLINK_DOWN,       /* waiting for the backoff timer */
    UPLINK_CONNECTING, /* TCP connect (and the TLS handshake) in progress */
    UPLINK_HELLO,      /* HELLO sent, waiting for WELCOME */
    UPLINK_UP,         /* WELCOME received: SUBs flow, MSGs arrive */
};

struct uplink_handlers {
    /* A MSG arrived; the frame's views are borrowed during the call. */
    void (*on_msg)(void *arg, const struct link_frame *f);
    /* Every frame of one read was handled (the time to flush coalesced output). */
    void (*on_batch_end)(void *arg);
    /* WELCOME received: re-send interest now. */
    void (*on_up)(void *arg);
    /*
     * The broker refused one pattern (ERR naming it: code
     * "too_many_subscriptions" or "bad_topic"); the link stays up. The
     * views are borrowed during the call.
     */
    void (*on_refused)(void *arg, const char *code, const char *pattern, size_t len);
    void *arg;
};

struct uplink_config {
    const char *broker; /* "host:port", borrowed */
    const char *secret; /* HELLO secret or NULL, borrowed */
    const char *node;   /* this link's node id, copied */
    int64_t reconnect_min_ms;
    int64_t reconnect_max_ms;
    int64_t ping_interval_ms; /* keepalive tick */
    /*
     * TLS: a client context (common/tls.h: tls_client_ctx_new) the broker's
     * certificate is verified with; uplink_new takes its own reference.
     * NULL: plain TCP.
     */
    SSL_CTX *tls;
    const char *tls_server_name; /* the name the certificate must carry; NULL: broker's host */
};

/*
 * Returns a new uplink on base (borrowed) that starts connecting at once.
 * cfg strings are borrowed for the uplink's life except node (copied).
 * Returns NULL with *err when cfg->broker is not "host:port".
 */
struct uplink *uplink_new(struct event_base *base, const struct uplink_config *cfg,
                          const struct uplink_handlers *h, const char **err);

/* Closes the link and frees u (NULL is fine). */
void uplink_free(struct uplink *u);

/* Sends SUB/UNSUB when the link is up; otherwise does nothing (the resend covers it). */
void uplink_sub(struct uplink *u, const char *pattern, size_t len);
void uplink_unsub(struct uplink *u, const char *pattern, size_t len);

enum uplink_state uplink_state(const struct uplink *u);

/*
 * Reads, without waiting, what the broker has already sent (at most one
 * read-chunk) and hands its MSGs to on_msg, without on_batch_end: the
 * worker calls this between client writes while it flushes, so an event
 * that arrives during a long fan-out reaches the clients not yet written
 * in the same pass. EOF and errors are left to the link's read event.
 * Returns the bytes read (0: nothing waiting, the link is not up, it is a
 * TLS link, which only its bufferevent reads, or u is NULL).
 */
size_t uplink_poll(struct uplink *u);

/* The broker's per-link pattern limit from the last WELCOME; 0 before one, or when it did not say.
 */
uint64_t uplink_max_patterns(const struct uplink *u);

/* Reconnect attempts made after a failure or a dropped link. */
uint64_t uplink_reconnects(const struct uplink *u);

/* "down", "connecting", "hello", "up". */
const char *uplink_state_name(enum uplink_state s);

#endif

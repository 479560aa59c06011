#ifndef HERALD_BROKER_RESP_INTERNAL_H
#define HERALD_BROKER_RESP_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/util.h>

#include "broker/core.h"
#include "broker/resp_parse.h"
#include "common/outq.h"
#include "common/ptrset.h"
#include "common/sink.h"

/*
 * What the RESP endpoint's two files share: resp_conn.c (accept, I/O,
 * flush, close, the fan-out's sink ops) and resp_cmd.c (the command table
 * and its handlers). Calls go one way, resp_conn.c -> resp_cmd.c: a
 * command only replies into c->out and changes the client's state; when
 * the client must go after its reply it sets c->close_after, and
 * resp_conn.c closes it once that reply is written. Nothing outside the
 * endpoint includes this header (broker.c uses resp_conn.h).
 */

#define RESP_MAX_ARGS   1024
#define RESP_READ_CHUNK (64 * 1024)

struct event;
struct evbuffer;
struct listener;

struct resp_conn;

/* A trie subscriber: sink first, so the fan-out's struct sink * is the handle. */
struct resp_handle {
    struct sink sink;
    struct resp_conn *conn;
};

struct resp_conn {
    struct close_entry close;
    struct preauth preauth; /* listed as unauthenticated (core.c) until AUTH succeeds */
    struct resp_handle channel;
    struct resp_handle pattern;
    struct resp_server *srv;
    struct event *ev;     /* the socket's only event */
    struct evbuffer *in;  /* input not run yet: an incomplete command, or left by a pause */
    struct evbuffer *out; /* replies and deliveries not written yet */
    evutil_socket_t fd;
    struct resp_conn *prev, *next;
    struct ptrset channels;    /* trie nodes holding the channel handle (SUBSCRIBE) */
    struct ptrset patterns;    /* trie nodes holding the pattern handle (PSUBSCRIBE) */
    uint64_t partial_since_ms; /* an incomplete command is kept since then; 0: none */
    const char *close_after;   /* set by a command: close once its reply is written, why */
    uint32_t id;
    short armed; /* what ev waits for: EV_READ, EV_WRITE, EV_TIMEOUT (closing or held) */
    uint8_t auth_failures;
    bool authed;
    bool closed;  /* conn_close ran; freed at the next close-list sweep */
    bool closing; /* close once the output is flushed */
    bool paused;  /* reading stopped: unread replies past RESP_OUT_HIGH */
    bool held;    /* reading stopped for RESP_AUTH_HOLD_MS after a failed AUTH */
    char peer[64];
};

struct resp_server {
    struct core *core;
    struct listener *listener;
    struct resp_conn *clients;
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

/*
 * Runs one parsed command (argc > 0): looks it up, checks its arity, AUTH
 * and the subscribed context, and runs its handler, which replies into
 * c->out.
 */
void resp_cmd_dispatch(struct resp_conn *c, const struct resp_arg *argv, size_t argc);

/* Drops every subscription of c, channels and patterns, without replies (close, RESET). */
void resp_cmd_unsubscribe_all(struct resp_conn *c);

/* Replies "-ERR <err>" (CR and LF become spaces). */
void resp_cmd_reply_error(struct resp_conn *c, const char *err);

#endif

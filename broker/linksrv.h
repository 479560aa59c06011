#ifndef HERALD_BROKER_LINKSRV_H
#define HERALD_BROKER_LINKSRV_H

#include "broker/broker.h"

/*
 * The link endpoint (msgpack over TCP): edges, the herald CLI and C
 * publishers. One bufferevent per link (links are few: one per edge worker
 * or tool). Protocol: the first frame must be HELLO (with the secret when
 * requirepass is set) -> WELCOME; then SUB/UNSUB (pattern), PUB (-> PUBACK
 * when a req_id is given), PING (-> PONG), STATS (-> STATS reply). Framing
 * errors, unknown types, oversize frames, a missing HELLO or a bad secret:
 * ERR, then close after the ERR is flushed. A bad topic or pattern, or a
 * SUB past max-subscriptions, in an otherwise well-formed frame: ERR naming
 * the pattern (code "bad_topic" / "too_many_subscriptions"), the link stays.
 */

/* Binds and starts accepting when conf->link_port != 0. Returns 0, or -1 with *err. */
int linksrv_start(struct broker *b, const char **err);

/* Stops accepting; existing links flush their output and close. */
void linksrv_shutdown(struct broker *b);

/* Closes links whose partial frame is older than request-timeout (the broker's tick). */
void linksrv_sweep(struct broker *b, uint64_t now_ms);

/* Frees the server (after every link is closed and freed). NULL-safe. */
void linksrv_free(struct broker *b);

#endif

#ifndef HERALD_BROKER_LINKSRV_H
#define HERALD_BROKER_LINKSRV_H

#include <stdint.h>

struct core;
struct linksrv;

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

/*
 * Loads the link certificate when link-tls-cert-file is set (the endpoint
 * then speaks only TLS), binds link-port and starts accepting; registers
 * the links' sink ops with core. Returns the server, or NULL with *err.
 */
struct linksrv *linksrv_start(struct core *core, const char **err);

/* Stops accepting; existing links flush their output and close. NULL-safe. */
void linksrv_shutdown(struct linksrv *srv);

/* Closes links whose partial frame is older than request-timeout (the broker's tick). NULL-safe. */
void linksrv_sweep(struct linksrv *srv, uint64_t now_ms);

/*
 * SIGHUP: reads link-tls-cert-file and link-tls-key-file again; new links
 * get the new certificate, open links keep theirs. Logs event=tls_reloaded,
 * or event=tls_reload_failed and keeps the old certificate serving.
 * Returns 0 (also when the link has no TLS, or srv is NULL) or -1.
 */
int linksrv_reload_tls(struct linksrv *srv);

/* Frees the server and the links still open (after the loop). NULL-safe. */
void linksrv_free(struct linksrv *srv);

#endif

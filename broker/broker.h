#ifndef HERALD_BROKER_BROKER_H
#define HERALD_BROKER_BROKER_H

struct broker;
struct broker_conf;
struct event_base;

/*
 * The broker process's lifecycle (broker.c): the shared state (core.h),
 * the endpoints, the 1 s tick and the graceful stop. Opaque: what the
 * endpoints share is struct core.
 */

/*
 * Creates the broker on base and starts every enabled endpoint. Borrows
 * conf and base for the broker's lifetime. Returns NULL with *err on failure
 * (e.g. a port in use), having logged it.
 */
struct broker *broker_new(struct event_base *base, const struct broker_conf *conf,
                          const char **err);

/*
 * Graceful stop: stops accepting, asks every endpoint to flush and close,
 * and breaks the loop when all connections are gone or shutdown-timeout
 * passes.
 */
void broker_shutdown(struct broker *b);

/*
 * SIGHUP: reloads what can change without a restart, today the link's TLS
 * certificate (linksrv_reload_tls; nothing when the link has no TLS).
 */
void broker_reload(struct broker *b);

/* Frees everything; call after the loop has exited. NULL is fine. */
void broker_free(struct broker *b);

#endif

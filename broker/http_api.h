#ifndef HERALD_BROKER_HTTP_API_H
#define HERALD_BROKER_HTTP_API_H

#include "broker/broker.h"

/*
 * The HTTP endpoint (HTTP/1.1 on libhttp-parser): POST /v1/publish/<topic>,
 * GET /healthz, GET /metrics.
 */

/* Binds and starts serving when conf->http_port != 0. Returns 0, or -1 with *err. */
int http_api_start(struct broker *b, const char **err);

/* Closes connections past request-timeout (partial or idle); the broker's tick. */
void http_api_sweep(struct broker *b, uint64_t now_ms);

/* Stops accepting new connections and closes the idle ones. */
void http_api_shutdown(struct broker *b);

/* Frees the server. NULL-safe. */
void http_api_free(struct broker *b);

#endif

#ifndef HERALD_BROKER_HTTP_API_H
#define HERALD_BROKER_HTTP_API_H

#include "broker/broker.h"

/*
 * The HTTP endpoint (libevent evhttp): POST /v1/publish/<topic>,
 * GET /healthz, GET /metrics.
 */

/* Binds and starts serving when conf->http_port != 0. Returns 0, or -1 with *err. */
int http_api_start(struct broker *b, const char **err);

/* Stops accepting new connections. */
void http_api_shutdown(struct broker *b);

/* Frees the server. NULL-safe. */
void http_api_free(struct broker *b);

#endif

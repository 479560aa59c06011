#ifndef HERALD_BROKER_HTTP_API_H
#define HERALD_BROKER_HTTP_API_H

#include <stdint.h>

struct core;
struct http_api;

/*
 * The HTTP endpoint (HTTP/1.1 on libhttp-parser): POST /v1/publish/<topic>,
 * GET /healthz, GET /metrics.
 */

/* Binds http-port and starts serving. Returns the server, or NULL with *err. */
struct http_api *http_api_start(struct core *core, const char **err);

/* Closes connections past request-timeout (partial or idle); the broker's tick. NULL-safe. */
void http_api_sweep(struct http_api *api, uint64_t now_ms);

/* Stops accepting new connections and closes the idle ones. NULL-safe. */
void http_api_shutdown(struct http_api *api);

/* Frees the server. NULL-safe. */
void http_api_free(struct http_api *api);

#endif

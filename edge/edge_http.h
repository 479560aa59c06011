#ifndef HERALD_EDGE_EDGE_HTTP_H
#define HERALD_EDGE_EDGE_HTTP_H

#include <stdbool.h>

struct frame;
struct hub;

/*
 * The edge port's plain HTTP answers: errors for requests that are not a
 * valid WebSocket upgrade, GET /healthz and GET /metrics (docs/protocol.md
 * §3.2). Each returns a new frame (refcount 1, the caller's) holding a
 * complete HTTP/1.1 response with Connection: close, and counts the
 * request in h's stats; the connection (client.c) queues it and closes.
 */

/* A text/plain error: status and why (NULL: the status text), with Allow or Sec-WebSocket-Version
 * where the status calls for it, and Retry-After: 1 on 429 and 503. Handshake failures are counted
 * by status; 429 and 503 are refusals, counted by the accept path. */
struct frame *edge_http_error(struct hub *h, int status, const char *why);

/* 401 with WWW-Authenticate: Bearer, plus error="invalid_token" when a token was given and
 * refused (RFC 6750 3.1: none when the request had no token). */
struct frame *edge_http_unauthorized(struct hub *h, bool invalid_token, const char *why);

/* 200 {"status":"ok","broker":"up"} when every worker's uplink is up; 503 otherwise. */
struct frame *edge_http_healthz(struct hub *h);

/* 200 with the Prometheus text of the whole process (edge_metrics.c). */
struct frame *edge_http_metrics(struct hub *h);

#endif

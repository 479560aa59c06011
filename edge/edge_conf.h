#ifndef HERALD_EDGE_EDGE_CONF_H
#define HERALD_EDGE_EDGE_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/conf.h"
#include "common/log.h"

/* The edge's configuration; the directive table lives in edge_conf.c. */
struct edge_conf {
    char *bind;                   /* 127.0.0.1 */
    int64_t port;                 /* 8080 */
    char *tls_cert_file;          /* PEM chain: the port speaks TLS (wss); unset: plain */
    char *tls_key_file;           /* its private key (PEM); set with tls_cert_file */
    char *broker;                 /* host:port of the broker's link endpoint, 127.0.0.1:7400 */
    char *broker_secret;          /* HELLO secret (the broker's requirepass), unset: none */
    int64_t workers;              /* 0 = number of cores */
    size_t max_message_size;      /* 64kb: largest client message (all fragments) */
    size_t max_header_size;       /* 8kb: handshake request head */
    int64_t max_subscriptions;    /* 64 per connection */
    int64_t max_connections;      /* per worker, 100000 */
    size_t send_queue_limit;      /* 1mb: output queued per connection before 1008 */
    int64_t ping_interval;        /* ms, 25s */
    int64_t idle_timeout;         /* ms, 75s: no frame from the client for this long: closed */
    int64_t handshake_timeout;    /* ms, 10s */
    int64_t shutdown_timeout;     /* ms, 5s */
    int64_t max_topic_length;     /* 256 */
    int64_t max_topic_tokens;     /* 16 */
    char *allowed_origins;        /* comma-separated exact Origin values; unset: any */
    int64_t reconnect_min;        /* ms, 100: first broker reconnect delay */
    int64_t reconnect_max;        /* ms, 5s: backoff cap */
    int64_t broker_ping_interval; /* ms, 10s: link keepalive */
    size_t pool_cache;            /* 4mb: free pool memory kept per worker per class */
    enum log_level log_level;
};

extern const struct conf_directive edge_conf_table[];

#endif

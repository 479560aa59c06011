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
    bool broker_tls;              /* no: TLS to the broker's link endpoint */
    char *broker_tls_ca_file;     /* CAs that verify the broker; unset: the system's */
    char *broker_tls_server_name; /* name the broker's certificate must carry; unset: its host */
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
    char *auth_secret;            /* HS256 key of the tokens (docs/protocol.md §3.10), unset */
    char *auth_secret_file;       /* file holding the key instead, unset */
    char *auth_required;          /* "yes" or "no"; unset: yes when a secret is set */
    int64_t max_conns_per_ip;     /* open connections per address (IPv6: per /64), 0 = off */
    int64_t handshake_rate;       /* new connections per second per address, 0 = off */
    int64_t max_ops_per_second;   /* text messages per second per connection, 100; 0 = off */
    int64_t reconnect_min;        /* ms, 100: first broker reconnect delay */
    int64_t reconnect_max;        /* ms, 5s: backoff cap */
    int64_t broker_ping_interval; /* ms, 10s: link keepalive */
    size_t pool_cache;            /* 4mb: free pool memory kept per worker per class */
    char *echo_path;              /* unset: none; else the path echoing every message (§3.11) */
    bool echo_path_public;        /* no: echo-path may not be served while auth is required */
    enum log_level log_level;
    /* Not directives: set at start-up by auth_conf_resolve() (edge/auth.h). */
    bool auth_on;        /* a secret is set: tokens are verified (the key is auth_secret) */
    bool auth_enforced;  /* auth-required: a subscription needs a token */
    size_t auth_key_len; /* bytes of auth_secret */
};

extern const struct conf_directive edge_conf_table[];

/*
 * broker-tls-ca-file or broker-tls-server-name set while broker-tls is no
 * is an error (run after conf_load). Returns 0, or -1 with a message
 * naming the directives in err.
 */
int edge_conf_check_broker_tls(const struct edge_conf *conf, char *err, size_t errlen);

#endif

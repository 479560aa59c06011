#ifndef HERALD_BROKER_BROKER_CONF_H
#define HERALD_BROKER_BROKER_CONF_H

#include <stddef.h>
#include <stdint.h>

#include "common/conf.h"
#include "common/log.h"

/* The broker's configuration; the directive table lives in broker_conf.c. */
struct broker_conf {
    char *bind;
    int64_t link_port;
    int64_t resp_port;
    int64_t http_port;
    char *link_tls_cert_file; /* set (with the key): the link endpoint speaks only TLS */
    char *link_tls_key_file;
    char *requirepass;
    char *edge_secret; /* grants the edge role; unset: requirepass does */
    char *edge_allow;  /* addresses whose HELLO role "edge" needs no credential */
    size_t max_payload;
    size_t client_output_limit;
    size_t edge_output_limit;
    size_t edge_output_limit_total; /* budget for edges with neither credential nor edge-allow */
    int64_t max_topic_length;
    int64_t max_topic_tokens;
    int64_t max_subscriptions;
    int64_t max_clients;
    int64_t max_unauthenticated;
    int64_t auth_timeout;    /* ms */
    int64_t request_timeout; /* ms */
    int64_t http_max_connections;
    int64_t max_topics;
    int64_t topic_ttl;         /* ms */
    int64_t history_size;      /* events kept per topic; 0: off */
    int64_t history_ttl;       /* ms */
    size_t history_max_memory; /* all retained events together */
    char *history;             /* `pattern size ttl` overrides, one a line (CONF_LIST) */
    int64_t shutdown_timeout;
    char *node_id;
    enum log_level log_level;
};

extern const struct conf_directive broker_conf_table[];

struct history_rule;

/*
 * Parses one `history` override, "<pattern> <size> <ttl>", into *out: the
 * pattern a new string (released with mem_free), size within history-size's
 * bounds, ttl within history-ttl's. Returns 0, or -1 with *err (static).
 */
int broker_conf_history_rule(const char *line, struct history_rule *out, const char **err);

/*
 * What one directive cannot check alone (run after conf_load):
 * link-tls-cert-file and link-tls-key-file come together; topic-ttl (when
 * not 0) is at least every history ttl in use, so a topic's sequence is
 * never forgotten while it has history. Returns 0, or -1
 * with a message naming the directives in err.
 */
int broker_conf_check(const struct broker_conf *conf, char *err, size_t errlen);

#endif

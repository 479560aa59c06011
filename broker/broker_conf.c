/*
 * broker_conf.c - the broker's directive table.
 *
 * Defaults live only here; conf/broker.conf documents every directive and a
 * unit test (check_conf_files) checks that both list the same names.
 */
#include "broker/broker_conf.h"

#include <stddef.h>
#include <stdio.h>

#include "common/conf.h"
#include "common/net.h"
#include "common/topic.h"

#define F(field) offsetof(struct broker_conf, field)

/* edge-allow: a comma-separated list of addresses or CIDR blocks. */
static int validate_allow(const void *field, const char **err)
{
    struct net_cidr list[NET_CIDR_MAX];
    const char *s = *(char *const *)field;

    return s && net_cidr_parse(s, list, NET_CIDR_MAX, err) < 0 ? -1 : 0;
}

const struct conf_directive broker_conf_table[] = {
    {"bind", CONF_STRING, F(bind), "127.0.0.1", 0, 0, NULL, "listen address for all endpoints"},
    {"link-port", CONF_INT, F(link_port), "7400", 0, 65535, NULL,
     "msgpack link port for edges and the herald CLI (0 disables)"},
    {"resp-port", CONF_INT, F(resp_port), "6380", 0, 65535, NULL,
     "Redis protocol port (0 disables)"},
    {"http-port", CONF_INT, F(http_port), "8400", 0, 65535, NULL,
     "HTTP publish, /healthz and /metrics port (0 disables)"},
    {"link-tls-cert-file", CONF_STRING, F(link_tls_cert_file), NULL, 0, 0, NULL,
     "PEM certificate chain of the link endpoint, which then speaks only TLS (unset: plain TCP)"},
    {"link-tls-key-file", CONF_STRING, F(link_tls_key_file), NULL, 0, 0, NULL,
     "PEM private key of link-tls-cert-file (re-read with it on SIGHUP)"},
    {"requirepass", CONF_STRING, F(requirepass), NULL, 0, 0, NULL,
     "shared secret required on every endpoint (unset: none)"},
    {"edge-secret", CONF_STRING, F(edge_secret), NULL, 0, 0, NULL,
     "HELLO secret that authenticates an edge and grants it edge-output-limit (unset: "
     "requirepass does)"},
    {"edge-allow", CONF_STRING, F(edge_allow), NULL, 0, 0, validate_allow,
     "addresses or CIDR blocks whose HELLO role \"edge\" gets edge-output-limit without a "
     "secret"},
    {"max-payload", CONF_SIZE, F(max_payload), "1mb", 1, 64 << 20, NULL,
     "largest event payload accepted"},
    {"client-output-limit", CONF_SIZE, F(client_output_limit), "8mb", 4096, (int64_t)1 << 34, NULL,
     "output queued to one subscriber before it is cut off as a slow consumer"},
    {"edge-output-limit", CONF_SIZE, F(edge_output_limit), "256mb", 4096, (int64_t)1 << 34, NULL,
     "output queued to one edge link before it is cut off (edges proven by secret or address)"},
    {"edge-output-limit-total", CONF_SIZE, F(edge_output_limit_total), "1gb", 0, (int64_t)1 << 40,
     NULL, "edge-output-limit granted, in all, to edges with neither secret nor edge-allow"},
    {"max-topic-length", CONF_INT, F(max_topic_length), "256", 1, TOPIC_MAX_LEN, NULL,
     "longest topic or pattern, in bytes"},
    {"max-topic-tokens", CONF_INT, F(max_topic_tokens), "16", 1, TOPIC_MAX_TOKENS, NULL,
     "most dot-separated tokens in a topic or pattern"},
    {"max-subscriptions", CONF_INT, F(max_subscriptions), "100000", 1, 100000000, NULL,
     "patterns one link or RESP client may subscribe to"},
    {"max-clients", CONF_INT, F(max_clients), "10000", 1, 10000000, NULL,
     "authenticated link and RESP connections, all endpoints together"},
    {"max-unauthenticated", CONF_INT, F(max_unauthenticated), "1024", 1, 1000000, NULL,
     "connections not authenticated yet; at the cap the oldest is closed for a new one"},
    {"auth-timeout", CONF_TIME_MS, F(auth_timeout), "10s", 100, 3600000, NULL,
     "a link without HELLO, or a RESP client without AUTH (requirepass set), is closed after "
     "this"},
    {"request-timeout", CONF_TIME_MS, F(request_timeout), "10s", 100, 3600000, NULL,
     "a started RESP command, link frame or HTTP request must be complete within this"},
    {"http-max-connections", CONF_INT, F(http_max_connections), "256", 1, 1000000, NULL,
     "open HTTP connections; beyond it a new one gets 503"},
    {"max-topics", CONF_INT, F(max_topics), "1000000", 1, 1000000000, NULL,
     "topics whose sequence is remembered; past it the least recently published is forgotten"},
    {"topic-ttl", CONF_TIME_MS, F(topic_ttl), "24h", 0, (int64_t)365 * 24 * 3600 * 1000, NULL,
     "a topic not published for this long is forgotten: its seq starts again at 1 (0: never)"},
    {"shutdown-timeout", CONF_TIME_MS, F(shutdown_timeout), "5s", 0, 3600000, NULL,
     "how long SIGTERM waits for output to flush before exiting"},
    {"node-id", CONF_STRING, F(node_id), "broker", 0, 0, NULL,
     "name sent to links in WELCOME and shown in logs"},
    {"log-level", CONF_LOGLEVEL, F(log_level), "info", 0, 0, NULL, "debug, info, warn or error"},
    {NULL, 0, 0, NULL, 0, 0, NULL, NULL},
};

int broker_conf_check(const struct broker_conf *conf, char *err, size_t errlen)
{
    if (!conf->link_tls_cert_file != !conf->link_tls_key_file) {
        snprintf(err, errlen, "%s is set without %s: both or neither",
                 conf->link_tls_cert_file ? "link-tls-cert-file" : "link-tls-key-file",
                 conf->link_tls_cert_file ? "link-tls-key-file" : "link-tls-cert-file");
        return -1;
    }
    return 0;
}

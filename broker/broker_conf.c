/*
 * broker_conf.c - the broker's directive table.
 *
 * Defaults live only here; conf/broker.conf documents every directive and a
 * unit test (check_conf_files) checks that both list the same names.
 */
#include "broker/broker_conf.h"

#include <stddef.h>
#include <stdio.h>

#include <stdlib.h>
#include <string.h>

#include "broker/history.h"
#include "common/conf.h"
#include "common/mem.h"
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

#define HISTORY_SIZE_MAX 1000000
#define HISTORY_TTL_MIN  10
#define HISTORY_TTL_MAX  ((int64_t)30 * 24 * 3600 * 1000)

int broker_conf_history_rule(const char *line, struct history_rule *out, const char **err)
{
    struct topic_limits lim = {TOPIC_MAX_LEN, TOPIC_MAX_TOKENS};
    char pat[TOPIC_MAX_LEN + 1], size[32], ttl[32], extra[2];
    char *end;
    long long n;
    int64_t ms;

    if (sscanf(line, "%4096s %31s %31s %1s", pat, size, ttl, extra) != 3) {
        *err = "expected '<pattern> <size> <ttl>'";
        return -1;
    }
    if (!topic_pattern_valid(pat, strlen(pat), &lim, err))
        return -1;
    n = strtoll(size, &end, 10);
    if (*end != '\0' || end == size || n < 0 || n > HISTORY_SIZE_MAX) {
        *err = "size: expected an integer in [0, 1000000]";
        return -1;
    }
    if (conf_parse_time_ms(ttl, &ms) < 0 || ms < HISTORY_TTL_MIN || ms > HISTORY_TTL_MAX) {
        *err = "ttl: expected a time in [10ms, 30d], like 10m";
        return -1;
    }
    out->pattern = mem_strdup(pat);
    out->plen = strlen(pat);
    out->size = (size_t)n;
    out->ttl_ms = (uint64_t)ms;
    return 0;
}

static int validate_history_rule(const void *field, const char **err)
{
    struct history_rule r;

    if (broker_conf_history_rule(*(char *const *)field, &r, err) < 0)
        return -1;
    mem_free((char *)r.pattern);
    return 0;
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
    {"history-size", CONF_INT, F(history_size), "0", 0, HISTORY_SIZE_MAX, NULL,
     "events kept per topic for HISTORY (resume); 0: no history"},
    {"history-ttl", CONF_TIME_MS, F(history_ttl), "5m", HISTORY_TTL_MIN, HISTORY_TTL_MAX, NULL,
     "a retained event is dropped this long after it was published"},
    {"history-max-memory", CONF_SIZE, F(history_max_memory), "64mb", 0, (int64_t)1 << 40, NULL,
     "bytes all retained events may hold; past it the soonest to expire go first"},
    {"history", CONF_LIST, F(history), NULL, 0, 0, validate_history_rule,
     "'<pattern> <size> <ttl>' for the topics pattern matches (repeatable; most specific wins)"},
    {"shutdown-timeout", CONF_TIME_MS, F(shutdown_timeout), "5s", 0, 3600000, NULL,
     "how long SIGTERM waits for output to flush before exiting"},
    {"node-id", CONF_STRING, F(node_id), "broker", 0, 0, NULL,
     "name sent to links in WELCOME and shown in logs"},
    {"log-level", CONF_LOGLEVEL, F(log_level), "info", 0, 0, NULL, "debug, info, warn or error"},
    {NULL, 0, 0, NULL, 0, 0, NULL, NULL},
};

/* The longest ttl of history in use (0: none), over the default and the overrides. */
static int64_t longest_history_ttl(const struct broker_conf *conf)
{
    int64_t ttl = conf->history_size > 0 ? conf->history_ttl : 0;
    const char *p = conf->history;

    while (p && *p) {
        struct history_rule r;
        const char *err;
        char line[TOPIC_MAX_LEN + 80];
        size_t n = strcspn(p, "\n");

        snprintf(line, sizeof(line), "%.*s", (int)n, p);
        if (broker_conf_history_rule(line, &r, &err) == 0) {
            if (r.size > 0 && (int64_t)r.ttl_ms > ttl)
                ttl = (int64_t)r.ttl_ms;
            mem_free((char *)r.pattern);
        }
        p += n + (p[n] == '\n');
    }
    return ttl;
}

static int check_history_ttls(const struct broker_conf *conf, char *err, size_t errlen)
{
    int64_t ttl = longest_history_ttl(conf);

    if (conf->topic_ttl != 0 && ttl > conf->topic_ttl) {
        snprintf(err, errlen,
                 "topic-ttl (%lld ms) is shorter than a history ttl (%lld ms): a topic's seq "
                 "would start again while its history is kept",
                 (long long)conf->topic_ttl, (long long)ttl);
        return -1;
    }
    return 0;
}

int broker_conf_check(const struct broker_conf *conf, char *err, size_t errlen)
{
    if (!conf->link_tls_cert_file != !conf->link_tls_key_file) {
        snprintf(err, errlen, "%s is set without %s: both or neither",
                 conf->link_tls_cert_file ? "link-tls-cert-file" : "link-tls-key-file",
                 conf->link_tls_cert_file ? "link-tls-key-file" : "link-tls-cert-file");
        return -1;
    }
    return check_history_ttls(conf, err, errlen);
}

/*
 * broker_conf.c - the broker's directive table.
 *
 * Defaults live only here (STYLE.md §9); conf/broker.conf documents every
 * directive and a unit test checks that both list the same names.
 */
#include "broker/broker.h"

#include <stddef.h>

#include "common/conf.h"

#define F(field) offsetof(struct broker_conf, field)

const struct conf_directive broker_conf_table[] = {
    {"bind", CONF_STRING, F(bind), "127.0.0.1", 0, 0, NULL, "listen address for all endpoints"},
    {"link-port", CONF_INT, F(link_port), "7400", 0, 65535, NULL,
     "msgpack link port for edges and the herald CLI (0 disables)"},
    {"resp-port", CONF_INT, F(resp_port), "6380", 0, 65535, NULL,
     "Redis protocol port (0 disables)"},
    {"http-port", CONF_INT, F(http_port), "8400", 0, 65535, NULL,
     "HTTP publish, /healthz and /metrics port (0 disables)"},
    {"requirepass", CONF_STRING, F(requirepass), NULL, 0, 0, NULL,
     "shared secret required on every endpoint (unset: none)"},
    {"max-payload", CONF_SIZE, F(max_payload), "1mb", 1, 64 << 20, NULL,
     "largest event payload accepted"},
    {"client-output-limit", CONF_SIZE, F(client_output_limit), "8mb", 4096, (int64_t)1 << 34, NULL,
     "output queued to one subscriber before it is cut off as a slow consumer"},
    {"edge-output-limit", CONF_SIZE, F(edge_output_limit), "256mb", 4096, (int64_t)1 << 34, NULL,
     "output queued to one edge link (HELLO role \"edge\") before it is cut off"},
    {"max-topic-length", CONF_INT, F(max_topic_length), "256", 1, 4096, NULL,
     "longest topic or pattern, in bytes"},
    {"max-topic-tokens", CONF_INT, F(max_topic_tokens), "16", 1, 256, NULL,
     "most dot-separated tokens in a topic or pattern"},
    {"max-subscriptions", CONF_INT, F(max_subscriptions), "100000", 1, 100000000, NULL,
     "patterns one link or RESP client may subscribe to"},
    {"max-clients", CONF_INT, F(max_clients), "10000", 1, 10000000, NULL,
     "open link and RESP connections, all endpoints together"},
    {"shutdown-timeout", CONF_TIME_MS, F(shutdown_timeout), "5s", 0, 3600000, NULL,
     "how long SIGTERM waits for output to flush before exiting"},
    {"node-id", CONF_STRING, F(node_id), "broker", 0, 0, NULL,
     "name sent to links in WELCOME and shown in logs"},
    {"log-level", CONF_LOGLEVEL, F(log_level), "info", 0, 0, NULL, "debug, info, warn or error"},
    {NULL, 0, 0, NULL, 0, 0, NULL, NULL},
};

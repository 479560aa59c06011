/*
 * edge_conf.c - the edge's directive table.
 *
 * Defaults live only here (docs/architecture.md §8.1); conf/edge.conf
 * documents every directive and a unit test checks that both list the same
 * names. Bounds
 * keep each value in a range the code can honour (a timer of 0 ms or a
 * 1-byte message limit would only produce confusing failures later);
 * `broker` is checked as host:port here so a typo stops start-up instead
 * of surfacing as endless reconnects.
 */
#include "edge/edge_conf.h"

#include <stddef.h>

#include "common/net.h"
#include "common/topic.h"

#define F(field) offsetof(struct edge_conf, field)

/* Accepts "host:port" and "[v6]:port" as net_split_hostport() parses them. */
static int validate_hostport(const void *field, const char **err)
{
    const char *s = *(char *const *)field;
    char host[256];
    int port;

    if (s == NULL || net_split_hostport(s, host, sizeof(host), &port) < 0) {
        *err = "expected host:port (or [v6]:port) with a port in [1, 65535]";
        return -1;
    }
    return 0;
}

const struct conf_directive edge_conf_table[] = {
    {"bind", CONF_STRING, F(bind), "127.0.0.1", 0, 0, NULL, "WebSocket listen address"},
    {"port", CONF_INT, F(port), "8080", 0, 65535, NULL,
     "WebSocket, /healthz and /metrics port (0: an ephemeral port)"},
    {"tls-cert-file", CONF_STRING, F(tls_cert_file), NULL, 0, 0, NULL,
     "certificate chain (PEM, leaf first): the port then speaks only TLS (wss, https)"},
    {"tls-key-file", CONF_STRING, F(tls_key_file), NULL, 0, 0, NULL,
     "private key (PEM) of tls-cert-file; re-read with it on SIGHUP"},
    {"broker", CONF_STRING, F(broker), "127.0.0.1:7400", 0, 0, validate_hostport,
     "host:port of the broker's link endpoint"},
    {"broker-secret", CONF_STRING, F(broker_secret), NULL, 0, 0, NULL,
     "secret sent in HELLO (the broker's requirepass; unset: none)"},
    {"workers", CONF_INT, F(workers), "0", 0, 1024, NULL, "worker threads (0: number of cores)"},
    {"max-message-size", CONF_SIZE, F(max_message_size), "64kb", 125, 64 << 20, NULL,
     "largest client message, all fragments together (close 1009 beyond)"},
    {"max-header-size", CONF_SIZE, F(max_header_size), "8kb", 1024, 1 << 20, NULL,
     "largest handshake request head (HTTP 431 beyond)"},
    {"max-subscriptions", CONF_INT, F(max_subscriptions), "64", 1, 1000000, NULL,
     "patterns one connection may subscribe to"},
    {"max-connections", CONF_INT, F(max_connections), "100000", 1, 10000000, NULL,
     "open WebSocket connections per worker"},
    {"send-queue-limit", CONF_SIZE, F(send_queue_limit), "1mb", 4096, (int64_t)1 << 34, NULL,
     "output queued to one connection before it is closed as a slow consumer (1008)"},
    {"ping-interval", CONF_TIME_MS, F(ping_interval), "25s", 100, 3600000, NULL,
     "how often an idle connection is pinged"},
    {"idle-timeout", CONF_TIME_MS, F(idle_timeout), "75s", 100, 86400000, NULL,
     "a connection that sends no frame for this long is closed"},
    {"handshake-timeout", CONF_TIME_MS, F(handshake_timeout), "10s", 100, 600000, NULL,
     "time allowed to complete the WebSocket handshake"},
    {"shutdown-timeout", CONF_TIME_MS, F(shutdown_timeout), "5s", 0, 3600000, NULL,
     "how long SIGTERM waits for close frames to flush before exiting"},
    {"max-topic-length", CONF_INT, F(max_topic_length), "256", 1, TOPIC_MAX_LEN, NULL,
     "longest topic or pattern, in bytes"},
    {"max-topic-tokens", CONF_INT, F(max_topic_tokens), "16", 1, TOPIC_MAX_TOKENS, NULL,
     "most dot-separated tokens in a topic or pattern"},
    {"allowed-origins", CONF_STRING, F(allowed_origins), NULL, 0, 0, NULL,
     "comma-separated Origin values allowed to connect (unset: any)"},
    {"reconnect-min", CONF_TIME_MS, F(reconnect_min), "100", 1, 60000, NULL,
     "first delay before reconnecting to the broker"},
    {"reconnect-max", CONF_TIME_MS, F(reconnect_max), "5s", 1, 3600000, NULL,
     "cap of the doubling broker reconnect delay"},
    {"broker-ping-interval", CONF_TIME_MS, F(broker_ping_interval), "10s", 100, 600000, NULL,
     "PING to the broker this often; three intervals with nothing received drop the link"},
    {"pool-cache", CONF_SIZE, F(pool_cache), "4mb", 0, 1 << 30, NULL,
     "free buffer memory each worker keeps per size class"},
    {"log-level", CONF_LOGLEVEL, F(log_level), "info", 0, 0, NULL, "debug, info, warn or error"},
    {NULL, 0, 0, NULL, 0, 0, NULL, NULL},
};

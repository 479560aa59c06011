#ifndef HERALD_BROKER_BROKER_METRICS_H
#define HERALD_BROKER_BROKER_METRICS_H

#include <stddef.h>

struct core;
struct evbuffer;

/* Writes the Prometheus text of every broker metric into out (GET /metrics). */
void broker_metrics_prometheus(const struct core *core, struct evbuffer *out);

/*
 * Writes the counters as "name value\n" lines into buf (the link's STATS
 * reply) and returns their length; lines that do not fit in cap are left
 * out.
 */
size_t broker_metrics_stats(const struct core *core, char *buf, size_t cap);

#endif

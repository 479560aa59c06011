#ifndef HERALD_BROKER_BROKER_METRICS_H
#define HERALD_BROKER_BROKER_METRICS_H

struct core;
struct evbuffer;

/* Writes the Prometheus text of every broker metric into out (GET /metrics). */
void broker_metrics_prometheus(const struct core *core, struct evbuffer *out);

#endif

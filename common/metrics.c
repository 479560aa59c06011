/*
 * metrics.c - Prometheus text exposition helpers.
 *
 * Processes keep their own counters (plain integers owned by one thread,
 * or summed across workers at scrape time) and render them with these
 * helpers into an evbuffer that the HTTP handler sends. Nothing here
 * registers or stores metrics: a registry would be one more structure to
 * keep in sync with the code that counts.
 */
#include "common/metrics.h"

#include <inttypes.h>
#include <event2/buffer.h>

void metrics_family(struct evbuffer *out, const char *name, const char *type, const char *help)
{
    evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

void metrics_sample(struct evbuffer *out, const char *name, const char *labels, uint64_t value)
{
    if (labels && *labels)
        evbuffer_add_printf(out, "%s{%s} %" PRIu64 "\n", name, labels, value);
    else
        evbuffer_add_printf(out, "%s %" PRIu64 "\n", name, value);
}

void metrics_counter(struct evbuffer *out, const char *name, const char *help, uint64_t value)
{
    metrics_family(out, name, "counter", help);
    metrics_sample(out, name, NULL, value);
}

void metrics_gauge(struct evbuffer *out, const char *name, const char *help, uint64_t value)
{
    metrics_family(out, name, "gauge", help);
    metrics_sample(out, name, NULL, value);
}

#ifndef HERALD_COMMON_METRICS_H
#define HERALD_COMMON_METRICS_H

#include <stdint.h>

struct evbuffer;

/*
 * Prometheus text exposition (format 0.0.4) helpers. Every metric name is
 * prefixed herald_ by the caller. A family is announced once with
 * metrics_family(), followed by its samples.
 */

/* Appends "# HELP name help\n# TYPE name type\n"; type is "counter" or "gauge". */
void metrics_family(struct evbuffer *out, const char *name, const char *type, const char *help);

/* Appends "name{labels} value\n"; labels is e.g. "endpoint=\"resp\"" or NULL. */
void metrics_sample(struct evbuffer *out, const char *name, const char *labels, uint64_t value);

/* Family + one unlabelled sample. */
void metrics_counter(struct evbuffer *out, const char *name, const char *help, uint64_t value);
void metrics_gauge(struct evbuffer *out, const char *name, const char *help, uint64_t value);

#endif

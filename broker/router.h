#ifndef HERALD_BROKER_ROUTER_H
#define HERALD_BROKER_ROUTER_H

#include <stddef.h>
#include <stdint.h>

struct core;

struct router_result {
    uint64_t receivers; /* links (once each) + RESP deliveries (one per matching channel/pattern) */
    uint64_t seq;       /* this event's per-topic sequence, from 1 */
};

/*
 * Routes one event. The caller has validated topic (topic_valid) and payload
 * size (max-payload). Assigns the topic's next sequence, matches both tries,
 * encodes each wire form once into a refcounted frame (one link MSG, one
 * RESP `message`, one RESP `pmessage` per matching pattern), and adds a
 * reference to every matching subscriber's output. Subscribers past their
 * output limit are closed as slow consumers (deferred free, so the walk is
 * safe). Borrows topic and payload, which must stay valid for the whole
 * call even when a delivery closes the publisher itself (a link subscribed
 * to its own topic): endpoints free their parsers' memory only from the
 * close list (core.c), never in a close.
 */
void router_publish(struct core *core, const char *topic, size_t tlen, const void *payload,
                    size_t plen, struct router_result *out);

/* Frees the router's scratch space (at exit, after the loop). */
void router_cleanup(void);

#endif

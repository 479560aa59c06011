#ifndef HERALD_BROKER_HISTORY_H
#define HERALD_BROKER_HISTORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct frame;

/*
 * Per-topic history (docs/protocol.md section 1.2): the last `size` events
 * of each exact topic, for at most `ttl_ms`, all of them within max_bytes.
 * An event is kept as the link MSG frame the router made for the fan-out
 * (common/frame.h): one more reference, never a copy, and the frames a
 * HISTORY reply sends are those same bytes. Pure code: the caller passes
 * the time.
 */

/* A per-prefix override: topics matching pattern keep size events for ttl_ms. */
struct history_rule {
    const char *pattern; /* a valid pattern (common/topic.h); borrowed for the store's life */
    size_t plen;
    size_t size; /* 0: no history for these topics */
    uint64_t ttl_ms;
};

struct history_conf {
    size_t size;     /* events per topic without a matching rule; 0: off */
    uint64_t ttl_ms; /* >= 1 */
    size_t max_bytes;
    const struct history_rule *rules; /* borrowed for the store's life */
    size_t nrules;
};

/* Why retained events left the store, counted per reason. */
enum history_evict {
    HISTORY_EVICT_SIZE,   /* pushed out by a newer event of its topic */
    HISTORY_EVICT_TTL,    /* older than its topic's ttl */
    HISTORY_EVICT_MEMORY, /* history-max-memory reached */
    HISTORY_EVICT_RESET,  /* its topic's sequence started again (seq_map forgot it) */
    HISTORY_EVICT_COUNT,
};

struct history_stats {
    uint64_t events; /* retained now */
    uint64_t topics; /* with at least one retained event */
    size_t bytes;    /* everything the store holds, frames included (see history_bytes) */
    uint64_t evicted[HISTORY_EVICT_COUNT];
};

struct history;

/* Returns a new empty store; borrows c->rules (and their patterns) until history_free. */
struct history *history_new(const struct history_conf *c);

/* Drops every retained frame reference and frees the store. NULL is fine. */
void history_free(struct history *h);

/* Events kept per topic for topic[0..len): the most specific rule's size, or the default. */
size_t history_size_for(const struct history *h, const char *topic, size_t len);

/*
 * Retains event seq of topic[0..len), published at now_ms, as frame f: takes
 * one new reference to f (the caller keeps its own). A seq that does not
 * follow the last retained one (the topic's sequence started again) drops the
 * topic's older events first. May evict events (by size, then by memory,
 * soonest to expire first) before returning. A no-op when the topic's size
 * is 0.
 */
void history_add(struct history *h, const char *topic, size_t len, uint64_t seq, struct frame *f,
                 uint64_t now_ms);

/* Called with each retained frame of a range, in seq order; the frame is borrowed. */
typedef void history_each_fn(void *arg, struct frame *f);

/*
 * When every seq in (after, head] of topic[0..len) is retained and not
 * expired at now_ms, calls fn for each, in order, and returns true (also when
 * after == head, without calls; fn NULL: only checks). Returns false, calling nothing, otherwise
 * (and when after > head). Expired events of the topic are dropped first.
 */
bool history_range(struct history *h, const char *topic, size_t len, uint64_t after, uint64_t head,
                   uint64_t now_ms, history_each_fn *fn, void *arg);

/* Drops the events expired at now_ms (the broker's tick); returns how many. */
size_t history_expire(struct history *h, uint64_t now_ms);

/* Current counters. */
void history_stats(const struct history *h, struct history_stats *out);

/* Name of an eviction reason for metrics ("size", "ttl", "memory", "reset"). */
const char *history_evict_name(enum history_evict r);

#endif

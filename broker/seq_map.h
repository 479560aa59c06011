#ifndef HERALD_BROKER_SEQ_MAP_H
#define HERALD_BROKER_SEQ_MAP_H

#include <stddef.h>
#include <stdint.h>

/*
 * Per-topic sequence numbers: topic -> last sequence handed out. The
 * sequence is the event's position within its topic (from 1), the second
 * half of the {epoch, seq} position that history and resume will use.
 *
 * Bounded: at most max_topics topics are remembered, and a topic not
 * published for ttl_ms is forgotten. A forgotten topic's sequence starts
 * again at 1 (so a subscriber that sees a topic's seq go back knows the
 * broker forgot it). Pure code: the caller passes the time.
 */

struct seq_map;

/* Returns a new empty map holding at most max_topics (>= 1) topics; ttl_ms 0: no expiry. */
struct seq_map *seq_map_new(size_t max_topics, uint64_t ttl_ms);

/* Frees the map and its keys. NULL is fine. */
void seq_map_free(struct seq_map *m);

/*
 * Returns the next sequence of topic[0..len) (1 for a topic not remembered),
 * storing it as published at now_ms. Remembering a new topic at max_topics
 * forgets the least recently published one first.
 */
uint64_t seq_map_next(struct seq_map *m, const char *topic, size_t len, uint64_t now_ms);

/* Returns the last sequence of the topic, 0 if not remembered. */
uint64_t seq_map_last(const struct seq_map *m, const char *topic, size_t len);

/* Forgets the topics last published ttl_ms or more before now_ms; returns how many. */
size_t seq_map_expire(struct seq_map *m, uint64_t now_ms);

/* Number of topics held. */
size_t seq_map_count(const struct seq_map *m);

/* Heap bytes the map holds (entries and table). */
size_t seq_map_bytes(const struct seq_map *m);

/* Topics forgotten so far, by expiry or at max_topics. */
uint64_t seq_map_forgotten(const struct seq_map *m);

#endif

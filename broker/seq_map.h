#ifndef HERALD_BROKER_SEQ_MAP_H
#define HERALD_BROKER_SEQ_MAP_H

#include <stddef.h>
#include <stdint.h>

/*
 * Per-topic sequence numbers: topic -> last sequence handed out. The
 * sequence is the event's position within its topic (from 1), the second
 * half of the {epoch, seq} position that history and resume will use.
 * Pure code.
 */

struct seq_map;

/* Returns a new empty map. */
struct seq_map *seq_map_new(void);

/* Frees the map and its keys. NULL is fine. */
void seq_map_free(struct seq_map *m);

/* Returns the next sequence of topic[0..len) (1 for a topic never seen), storing it. */
uint64_t seq_map_next(struct seq_map *m, const char *topic, size_t len);

/* Returns the last sequence of the topic, 0 if never published. */
uint64_t seq_map_last(const struct seq_map *m, const char *topic, size_t len);

/* Number of topics held. */
size_t seq_map_count(const struct seq_map *m);

#endif

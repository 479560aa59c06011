#ifndef HERALD_COMMON_FANOUT_H
#define HERALD_COMMON_FANOUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct frame;
struct sink;
struct sink_ops;
struct trie;
struct trie_node;

/*
 * One event to every matching subscriber of a trie (docs/architecture.md
 * §5.2): the broker's router and the edge's workers both publish through
 * here. Subscribers are struct sink (sink.h).
 */

#define FANOUT_FORMS 4 /* distinct encodings one fan-out may need (sink->form < this) */

/*
 * Returns a new frame (refcount 1, the caller's) holding the event encoded
 * for form. node is the trie node whose pattern matched: forms listed in
 * the fan-out's per_node mask carry the pattern and are encoded once per
 * node; the others once per event, and ignore node.
 */
typedef struct frame *fanout_encode_fn(void *event, uint8_t form, const struct trie_node *node);

struct fanout_match {
    struct sink *sink;
    const struct trie_node *node;
};

/* One per thread: the target vector is scratch reused by every event. */
struct fanout {
    struct fanout_match *v;
    size_t n, cap;
};

/*
 * Delivers one event to the subscribers of t matching topic[0..tlen) and
 * returns how many deliveries were made (closed subscribers are skipped).
 * per_pattern false: a subscriber gets the event once however many of its
 * patterns match (edge clients, broker links); true: once per matching
 * pattern (RESP PSUBSCRIBE semantics). The targets are collected first, so
 * a delivery that closes a subscriber (which unsubscribes it) never
 * changes the trie under the walk; closed sinks stay valid until a later
 * loop pass. Each form is encoded at most once (per node for the forms in
 * per_node), lazily, by encode(event, ...), and handed to ops->deliver.
 * Per-node forms are meant for per_pattern true, where trie_match_each
 * reports one node's subscribers together; with per_pattern false they are
 * still correct but may be encoded once per target. A deliver op that
 * takes a sink out of the trie must keep the rest of the walk from using
 * it: the broker's endpoints mark it SINK_CLOSED first; an edge client
 * that is closing has its own deliver op ignore it (it stays on the dirty
 * list to flush its close frame, so it is marked closed only when freed).
 */
uint64_t fanout_publish(struct fanout *fo, struct trie *t, const char *topic, size_t tlen,
                        bool per_pattern, const struct sink_ops *ops, uint8_t per_node,
                        fanout_encode_fn *encode, void *event);

/*
 * Collects the subscribers of one trie node into fo->v (fo->n of them), for
 * a caller that acts on each and may unsubscribe them meanwhile. Returns
 * fo->n.
 */
size_t fanout_collect_node(struct fanout *fo, const struct trie_node *node);

/* Frees the target vector. */
void fanout_free(struct fanout *fo);

#endif

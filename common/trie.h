#ifndef HERALD_COMMON_TRIE_H
#define HERALD_COMMON_TRIE_H

#include <stdbool.h>
#include <stddef.h>

/*
 * Topic trie: pattern -> set of subscribers (opaque pointers the trie never
 * dereferences). Literal children live in a hash map per node, the `*` and
 * `>` children apart, so a match walks at most three branches per level.
 * Nodes that hold no subscriber and no child are pruned on unsubscribe.
 * Pure code: never includes event2/. Not thread-safe: one trie per thread.
 */

struct trie;
struct trie_node;

/* Returns a new empty trie. */
struct trie *trie_new(void);

/* Frees the trie and all nodes; subscribers are not touched. NULL is fine. */
void trie_free(struct trie *t);

/*
 * Adds sub to the pattern (which the caller has validated with
 * topic_pattern_valid; the trie does not re-check it). Returns the node that
 * now holds sub, borrowed until sub is unsubscribed from it or the trie is
 * freed. *first is set to true when the pattern had no subscriber before
 * (0 -> 1), false otherwise. Adding a sub already present is a no-op that
 * returns the node with *first false and *added false. added may be NULL.
 */
struct trie_node *trie_subscribe(struct trie *t, const char *pattern, size_t len, void *sub,
                                 bool *first, bool *added);

/*
 * Removes sub from the pattern. Returns 0 when removed, -1 when sub was not
 * subscribed to it. *last is set when the pattern now has no subscriber
 * (1 -> 0); empty nodes are pruned.
 */
int trie_unsubscribe(struct trie *t, const char *pattern, size_t len, void *sub, bool *last);

/* Same as trie_unsubscribe, by the node trie_subscribe returned. */
int trie_unsubscribe_node(struct trie *t, struct trie_node *node, void *sub, bool *last);

/*
 * Writes the node's full pattern text into buf (NUL-terminated) when it fits
 * in cap bytes, and returns its length either way (snprintf-like: a return
 * >= cap means nothing was written but buf[0] = '\0'). Nodes keep only their
 * own token, so this walks up to the root: for cold paths (UNSUB, resend,
 * a pmessage's pattern), not per subscriber. A pattern is at most
 * TOPIC_MAX_LEN bytes (common/topic.h).
 */
size_t trie_node_pattern(const struct trie_node *node, char *buf, size_t cap);

/*
 * The node holding subscribers for exactly this pattern, or NULL (no walk
 * creates anything). pattern need not be valid: a malformed one is not found.
 */
struct trie_node *trie_find(struct trie *t, const char *pattern, size_t len);

/*
 * The node of this pattern when sub is one of its subscribers, else NULL:
 * "is sub subscribed to pattern" in O(pattern tokens), whatever sub holds.
 * Borrowed like trie_subscribe's result.
 */
struct trie_node *trie_find_sub(struct trie *t, const char *pattern, size_t len, const void *sub);

/* Number of subscribers on this node's pattern. */
size_t trie_node_count(const struct trie_node *node);

/* Called once per delivery target. Return nonzero to stop the match early. */
typedef int trie_match_fn(void *sub, const struct trie_node *node, void *arg);

/*
 * Calls fn once per *distinct* subscriber whose patterns match the topic,
 * however many of its patterns match (node is one of them). Returns the
 * number of calls. The trie must not be modified during the walk: callers
 * that may unsubscribe from within fn must defer it.
 */
size_t trie_match(struct trie *t, const char *topic, size_t len, trie_match_fn *fn, void *arg);

/*
 * Calls fn once per matching (subscriber, pattern) pair: Redis pmessage
 * semantics. Returns the number of calls. Same no-modification rule.
 */
size_t trie_match_each(struct trie *t, const char *topic, size_t len, trie_match_fn *fn, void *arg);

/* Number of distinct patterns (nodes with subscribers) and of (pattern, sub) pairs. */
size_t trie_pattern_count(const struct trie *t);
size_t trie_subscription_count(const struct trie *t);

/* Heap bytes the trie holds for nodes, child tables and subscriber sets (not match scratch). */
size_t trie_bytes(const struct trie *t);

/*
 * Calls fn for each subscriber of node (the trie must not change meanwhile:
 * collect first, then act). Returns the number of calls.
 */
size_t trie_node_foreach(const struct trie_node *node, trie_match_fn *fn, void *arg);

/* Calls fn for every (sub, node) pair, e.g. to re-send SUBs after a reconnect. */
void trie_foreach(struct trie *t, trie_match_fn *fn, void *arg);

#endif

/*
 * interest.c - the union of a worker's client patterns, as seen by the broker.
 *
 * The worker's trie already counts subscribers per pattern, so this module
 * keeps no state of its own: trie_subscribe's `first` and the last holder
 * leaving a node are the 0 -> 1 and 1 -> 0 edges, and they become one SUB
 * or UNSUB on the uplink. After a (re)connect the broker knows nothing, so
 * every distinct pattern in the trie is sent again; trie_foreach visits a
 * node's subscribers one after another, so skipping repeats of the
 * previous node yields each pattern once.
 *
 * Rejected: a separate pattern -> count map (a second copy of what the trie
 * knows, to be kept in sync), and queueing SUB/UNSUB while the link is down
 * (the resend on connect states the whole truth; a queue could replay
 * stale UNSUBs).
 */
#include "edge/interest.h"

#include "common/topic.h"
#include "common/trie.h"
#include "edge/uplink.h"

void interest_gained(struct uplink *u, const char *pattern, size_t len)
{
    if (u)
        uplink_sub(u, pattern, len);
}

void interest_lost(struct uplink *u, const char *pattern, size_t len)
{
    if (u)
        uplink_unsub(u, pattern, len);
}

struct resend {
    struct uplink *u;
    const struct trie_node *prev;
    size_t sent;
};

static int resend_one(void *sub, const struct trie_node *node, void *arg)
{
    struct resend *r = arg;
    char pattern[TOPIC_MAX_LEN + 1];
    size_t len;

    (void)sub;
    if (node == r->prev)
        return 0;
    r->prev = node;
    len = trie_node_pattern(node, pattern, sizeof(pattern));
    uplink_sub(r->u, pattern, len);
    r->sent++;
    return 0;
}

size_t interest_resend(struct trie *t, struct uplink *u)
{
    struct resend r = {u, NULL, 0};

    if (!u)
        return 0;
    trie_foreach(t, resend_one, &r);
    return r.sent;
}

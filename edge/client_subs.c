/*
 * client_subs.c - an edge client's subscriptions.
 *
 * A connection's subscriptions are the trie nodes holding its sink, kept in
 * a ptrset on the connection (one subscription needs no allocation; O(1)
 * membership), so SUB and UNSUB of any pattern cost a trie lookup plus a
 * set probe, and closing drops exactly its entries. The worker's trie holds
 * the union of its clients' patterns: the uplink hears SUB when a pattern
 * gains its first local subscriber and UNSUB when it loses its last
 * (interest.c), so the broker sees one subscription per worker and
 * pattern, whatever the number of browsers behind it.
 *
 * client_subscribe is the one gate: the pattern's syntax, then the
 * connection's credentials (client_auth.c: a token must cover every topic
 * the pattern can match, docs/protocol.md §3.10), then the limits.
 */
#include "edge/client.h"

#include "common/topic.h"
#include "common/trie.h"
#include "edge/hub.h"
#include "edge/interest.h"
#include "edge/uplink.h"

/* True when a pattern new to this worker would pass the broker's per-link limit. */
static bool room_for_new_pattern(const struct hub *h)
{
    uint64_t limit = h->uplink ? uplink_max_patterns(h->uplink) : 0;

    return limit == 0 || trie_pattern_count(h->trie) < limit;
}

int client_subscribe(struct client *c, const char *pattern, size_t len, const char **code,
                     const char **err)
{
    struct hub *h = c->h;
    struct trie_node *node;
    bool first = false;

    if (!topic_pattern_valid(pattern, len, &h->limits, err)) {
        *code = "bad_topic";
        return -1;
    }
    if (!client_may_subscribe(c, pattern, len, code, err))
        return -1;
    node = trie_find(h->trie, pattern, len);
    if (node && ptrset_has(&c->subs, node))
        return 0;
    if (ptrset_count(&c->subs) >= (uint64_t)h->conf->max_subscriptions) {
        *code = "too_many_subscriptions";
        *err = "max-subscriptions reached for this connection";
        return -1;
    }
    if (!node && !room_for_new_pattern(h)) {
        h->stats.patterns_refused++;
        *code = "too_many_subscriptions";
        *err = "the server holds as many distinct patterns as its broker allows";
        return -1;
    }
    ptrset_add(&c->subs, trie_subscribe(h->trie, pattern, len, &c->sink, &first, NULL));
    if (first)
        interest_gained(h->uplink, pattern, len);
    return 0;
}

/* Removes c from node; the broker hears UNSUB when c was its last holder. */
static void drop_node(struct client *c, struct trie_node *node)
{
    /* UNSUB first: the node (and its pattern) is pruned with its last subscriber. */
    if (trie_node_count(node) == 1) {
        char p[TOPIC_MAX_LEN + 1];
        size_t len = trie_node_pattern(node, p, sizeof(p));

        interest_lost(c->h->uplink, p, len);
    }
    trie_unsubscribe_node(c->h->trie, node, &c->sink, NULL);
}

int client_unsubscribe(struct client *c, const char *pattern, size_t len, const char **code,
                       const char **err)
{
    struct trie_node *node = trie_find_sub(c->h->trie, pattern, len, &c->sink);

    if (!node) {
        *code = "not_subscribed";
        *err = "not subscribed to this topic";
        return -1;
    }
    ptrset_remove(&c->subs, node);
    drop_node(c, node);
    return 0;
}

bool client_forget(struct client *c, struct trie_node *node)
{
    if (!ptrset_remove(&c->subs, node))
        return false;
    /* No UNSUB: the broker never took the pattern. */
    trie_unsubscribe_node(c->h->trie, node, &c->sink, NULL);
    return true;
}

void client_unsubscribe_all(struct client *c)
{
    uint32_t nslots;
    void *const *nodes = ptrset_slots(&c->subs, &nslots);

    for (uint32_t i = 0; i < nslots; i++) {
        if (nodes[i])
            drop_node(c, nodes[i]);
    }
    ptrset_clear(&c->subs);
}

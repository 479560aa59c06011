/*
 * fanout.c - match, encode once, queue for each subscriber.
 *
 * The walk never delivers from inside the trie callback: a delivery may
 * close a slow consumer, which unsubscribes it and could free trie nodes
 * mid-walk. So the matching subscribers are collected into a vector first,
 * then each form is encoded the first time a target needs it and every
 * target is handed the same frame (docs/architecture.md §4.2: encode once,
 * share many). Per-node forms (a RESP `pmessage` names the pattern) are
 * encoded once per matching node: trie_match_each reports one node's
 * subscribers together, so one cached frame per form suffices.
 *
 * Rejected: encoding per subscriber (the cost this project exists to
 * avoid), a function pointer per subscriber (8 bytes on each of a million
 * idle connections; the ops come with the trie instead).
 */
#include "common/fanout.h"

#include <string.h>

#include "common/frame.h"
#include "common/mem.h"
#include "common/sink.h"
#include "common/trie.h"

static int collect(void *sub, const struct trie_node *node, void *arg)
{
    struct fanout *fo = arg;

    if (fo->n == fo->cap) {
        fo->cap = fo->cap ? fo->cap * 2 : 256;
        fo->v = mem_realloc(fo->v, fo->cap * sizeof(*fo->v));
    }
    fo->v[fo->n].sink = sub;
    fo->v[fo->n].node = node;
    fo->n++;
    return 0;
}

uint64_t fanout_publish(struct fanout *fo, struct trie *t, const char *topic, size_t tlen,
                        bool per_pattern, const struct sink_ops *ops, uint8_t per_node,
                        fanout_encode_fn *encode, void *event)
{
    struct frame *frames[FANOUT_FORMS] = {NULL};
    const struct trie_node *nodes[FANOUT_FORMS] = {NULL};
    uint64_t n = 0;

    fo->n = 0;
    if (per_pattern)
        trie_match_each(t, topic, tlen, collect, fo);
    else
        trie_match(t, topic, tlen, collect, fo);
    for (size_t i = 0; i < fo->n; i++) {
        struct sink *s = fo->v[i].sink;
        uint8_t form = s->form;

        if (s->flags & SINK_CLOSED)
            continue;
        if (frames[form] && (per_node & (1u << form)) && nodes[form] != fo->v[i].node)
            frame_unref(&frames[form]);
        if (!frames[form]) {
            frames[form] = encode(event, form, fo->v[i].node);
            nodes[form] = fo->v[i].node;
        }
        n++;
        ops->deliver(s, frames[form]);
    }
    for (size_t f = 0; f < FANOUT_FORMS; f++)
        frame_unref(&frames[f]);
    return n;
}

size_t fanout_collect_node(struct fanout *fo, const struct trie_node *node)
{
    fo->n = 0;
    trie_node_foreach(node, collect, fo);
    return fo->n;
}

void fanout_free(struct fanout *fo)
{
    mem_free(fo->v);
    memset(fo, 0, sizeof(*fo));
}

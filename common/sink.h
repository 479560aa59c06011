#ifndef HERALD_COMMON_SINK_H
#define HERALD_COMMON_SINK_H

#include <stdint.h>

struct frame;

/*
 * A subscriber of the fan-out (docs/architecture.md §2.5): what a trie holds
 * for a broker link, a RESP client's channel or pattern handle, and an edge
 * WebSocket client. It is embedded in the connection, and the trie's
 * subscriber pointer points at it. Two bytes, no pointer: every subscriber
 * of one trie shares one struct sink_ops, given to the fan-out with the
 * trie, so a million idle connections do not carry a million copies of it.
 */
#define SINK_CLOSED 0x01 /* takes no more deliveries; freed on a later loop pass */
#define SINK_DIRTY  0x02 /* on its dirty list (outq.h): output waits for a flush */

struct sink {
    uint8_t form;  /* which encoding of an event it receives (the fan-out's form index) */
    uint8_t flags; /* SINK_* */
};

struct sink_ops {
    /*
     * Queues f (borrowed: the sink takes its own reference or copies it) and
     * has the sink written later (its dirty list, or its own bufferevent).
     * Past the sink's output limit the sink is closed as a slow consumer
     * instead and -1 is returned; 0 otherwise. Never frees the sink: it may
     * close it (SINK_CLOSED), and the caller's target vector stays valid.
     */
    int (*deliver)(struct sink *s, struct frame *f);
    /* Writes what is queued. Returns 0, or -1 when the write closed the sink. */
    int (*flush)(struct sink *s);
};

static inline int sink_closed(const struct sink *s)
{
    return (s->flags & SINK_CLOSED) != 0;
}

#endif

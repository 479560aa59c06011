/*
 * outq.c - frames into output buffers, the output limit, dirty lists.
 *
 * Encode once, share many (docs/architecture.md §4.2) is about the encoding
 * and about large payloads. For a 60-byte RESP `message`, link MSG or
 * WebSocket event the reference itself is the expensive part:
 * evbuffer_add_reference allocates a chain per delivery, and profiling the
 * broker with 50 subscribers under pipelined PUBLISH showed half its time
 * in page faults of those chains, while on the edge 3.6M queued 58-byte
 * events took 2.5 GB by reference. So frames up to OUTQ_COPY_MAX are
 * copied into the buffer's current chain, larger ones referenced. Either
 * way the frame is encoded once per event.
 */
#include "common/outq.h"

#include <string.h>

#include <event2/buffer.h>

#include "common/frame.h"
#include "common/mem.h"
#include "common/sink.h"

int outq_append(struct evbuffer *out, struct frame *f, size_t skip)
{
    size_t len = skip < f->len ? f->len - skip : 0;

    if (len == 0)
        return 0;
    if (len <= OUTQ_COPY_MAX)
        return evbuffer_add(out, f->data + skip, len);
    frame_ref(f);
    if (evbuffer_add_reference(out, f->data + skip, len, frame_cleanup, f) < 0) {
        frame_unref(&f);
        return -1;
    }
    return 0;
}

void dirty_add(struct dirty_list *d, struct sink *s)
{
    if (s->flags & SINK_DIRTY)
        return;
    if (d->n == d->cap) {
        d->cap = d->cap ? d->cap * 2 : 64;
        d->v = mem_realloc(d->v, d->cap * sizeof(*d->v));
    }
    s->flags |= SINK_DIRTY;
    d->v[d->n++] = s;
}

void dirty_consume(struct dirty_list *d, uint32_t n)
{
    if (n >= d->n) {
        d->n = 0;
        return;
    }
    d->n -= n;
    memmove(d->v, d->v + n, d->n * sizeof(*d->v));
}

void dirty_prune(struct dirty_list *d)
{
    uint32_t kept = 0;

    for (uint32_t i = 0; i < d->n; i++) {
        if (d->v[i]->flags & SINK_CLOSED)
            d->v[i]->flags &= (uint8_t)~SINK_DIRTY;
        else
            d->v[kept++] = d->v[i];
    }
    d->n = kept;
}

void dirty_free(struct dirty_list *d)
{
    mem_free(d->v);
    memset(d, 0, sizeof(*d));
}

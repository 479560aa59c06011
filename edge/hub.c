/*
 * hub.c - the connection array, close list and dirty list of a worker.
 *
 * Clients live in an array (each knows its index: O(1) swap removal) that
 * the worker's 1 s sweep walks backwards, so removing the current entry
 * only moves an already-visited one. Per-slot arrays beside it hold the
 * sweep's deadlines (due_s) and what only some configurations need (grants,
 * addr_keys, ssls): a swap moves the last client's entries along with it,
 * so every entry follows its client, and a retired client's index names a
 * slot that is another client's now (client_abort released its own
 * entries first). Closed clients go on a close list freed by reap_ev on the
 * next loop pass ("close now, free later", docs/architecture.md §4.6): a
 * fan-out's target vector or the dirty list may still point at them until
 * the current callback returns.
 */
#include "edge/hub.h"

#include <event2/event.h>

#include "common/mem.h"
#include "common/sink.h"
#include "edge/addr_limit.h"
#include "edge/client.h"

static void vec_push(struct client ***v, uint32_t *n, uint32_t *cap, struct client *c)
{
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 64;
        *v = mem_realloc(*v, *cap * sizeof(**v));
    }
    (*v)[(*n)++] = c;
}

void hub_add_client(struct hub *h, struct client *c)
{
    uint32_t cap = h->clients_cap;

    c->index = h->nclients;
    vec_push(&h->clients, &h->nclients, &h->clients_cap, c);
    if (h->clients_cap != cap) {
        h->due_s = mem_realloc(h->due_s, h->clients_cap * sizeof(*h->due_s));
        if (h->conf->auth_on)
            h->grants = mem_realloc(h->grants, h->clients_cap * sizeof(*h->grants));
        if (h->addr)
            h->addr_keys = mem_realloc(h->addr_keys, h->clients_cap * sizeof(*h->addr_keys));
        if (h->tls)
            h->ssls = mem_realloc(h->ssls, h->clients_cap * sizeof(*h->ssls));
    }
    h->due_s[c->index] = 0;
    if (h->grants)
        h->grants[c->index] = NULL;
    if (h->addr_keys)
        h->addr_keys[c->index] = ADDR_KEY_NONE; /* counted nowhere yet */
    if (h->ssls)
        h->ssls[c->index] = NULL; /* client_new attaches it next */
    h->stats.conns_current++;
    h->stats.conns_total++;
}

void hub_retire_client(struct hub *h, struct client *c)
{
    struct client *last = h->clients[--h->nclients];

    last->index = c->index;
    h->clients[c->index] = last;
    h->due_s[c->index] = h->due_s[h->nclients];
    if (h->grants) /* c's own entries were released by client_abort */
        h->grants[c->index] = h->grants[h->nclients];
    if (h->addr_keys)
        h->addr_keys[c->index] = h->addr_keys[h->nclients];
    if (h->ssls) /* c's was freed by client_abort, before its fd was closed */
        h->ssls[c->index] = h->ssls[h->nclients];
    h->stats.conns_current--;
    vec_push(&h->closed, &h->nclosed, &h->closed_cap, c);
    if (h->reap_ev)
        event_active(h->reap_ev, EV_TIMEOUT, 0);
}

void hub_sweep_soon(struct hub *h, const struct client *c)
{
    h->due_s[c->index] = 0;
}

void hub_mark_dirty(struct hub *h, struct client *c)
{
    dirty_add(&h->dirty, &c->sink);
}

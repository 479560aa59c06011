#ifndef HERALD_EDGE_INTEREST_H
#define HERALD_EDGE_INTEREST_H

#include <stddef.h>

/*
 * What this worker asks the broker for: the union of its clients'
 * patterns, reference-counted by the worker's trie (docs/architecture.md
 * §1.2: SUB on 0 -> 1, UNSUB on 1 -> 0). The trie's first/last flags are the
 * counts; this module turns them into link frames and replays them when
 * the uplink (re)connects.
 */

struct trie;
struct uplink;

/* The pattern got its first local subscriber: SUB it (u may be NULL: no broker). */
void interest_gained(struct uplink *u, const char *pattern, size_t len);

/* The pattern lost its last local subscriber: UNSUB it (u may be NULL). */
void interest_lost(struct uplink *u, const char *pattern, size_t len);

/*
 * Sends one SUB per distinct pattern held in t (after a reconnect).
 * Returns the number of SUBs sent.
 */
size_t interest_resend(struct trie *t, struct uplink *u);

#endif

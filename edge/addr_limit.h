#ifndef HERALD_EDGE_ADDR_LIMIT_H
#define HERALD_EDGE_ADDR_LIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/*
 * Per-address connection counts and handshake rate, shared by every edge
 * worker (docs/protocol.md §3.2): `max-connections-per-ip` open
 * connections and `handshake-rate` new ones per second (a token bucket
 * whose burst is the rate) per client address, IPv4 by address and IPv6 by
 * /64 (a host owns a whole /64, so counting its single addresses would
 * count nothing). Thread-safe: one mutex around a small table.
 */

struct addr_limit;

/* An address as a table key: see addr_limit_key. ADDR_KEY_NONE: not limited (not IP). */
#define ADDR_KEY_NONE UINT64_MAX

enum addr_verdict {
    ADDR_OK,         /* admitted and counted: addr_limit_release it when it closes */
    ADDR_TOO_MANY,   /* the address holds max-connections-per-ip: 429 */
    ADDR_TOO_FAST,   /* the address's bucket is empty: 429 */
    ADDR_TABLE_FULL, /* a new address and the table holds max_entries: 503 */
    ADDR_VERDICT_COUNT,
};

/*
 * Returns a new table: max_conns open connections per address (0: no
 * count limit), rate handshakes per second per address (0: no rate limit),
 * at most max_entries addresses tracked at once.
 */
struct addr_limit *addr_limit_new(uint32_t max_conns, uint32_t rate, uint32_t max_entries);

/* Frees the table (NULL ok). No thread may use it any more. */
void addr_limit_free(struct addr_limit *a);

/*
 * The key of sa: an IPv4 address (also IPv4-mapped IPv6) as
 * 0xff00000000000000 | address, an IPv6 address as its first 64 bits.
 * Neither can be ADDR_KEY_NONE nor collide: a TCP peer is never in the
 * multicast range ff00::/8. ADDR_KEY_NONE for other families. Pure.
 */
uint64_t addr_limit_key(const struct sockaddr *sa, socklen_t len);

/*
 * Admits one new connection from key at now_ms (a monotonic clock): takes
 * a token from its bucket and counts it open, or refuses and counts
 * nothing. A refused handshake still takes no token (a client retrying
 * every millisecond gets its first admission as soon as the bucket allows).
 */
enum addr_verdict addr_limit_acquire(struct addr_limit *a, uint64_t key, uint64_t now_ms);

/* A connection admitted for key closed. ADDR_KEY_NONE is ignored. */
void addr_limit_release(struct addr_limit *a, uint64_t key, uint64_t now_ms);

/*
 * Forgets the addresses with no open connection whose bucket is full again
 * at now_ms (they would be admitted as new ones). One worker's sweep calls
 * it once a second. Returns the number forgotten.
 */
size_t addr_limit_expire(struct addr_limit *a, uint64_t now_ms);

/* Addresses tracked now. */
size_t addr_limit_entries(struct addr_limit *a);

/* Heap bytes of the table. */
size_t addr_limit_bytes(struct addr_limit *a);

#endif

#ifndef HERALD_COMMON_NET_H
#define HERALD_COMMON_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Sockets and addresses shared by broker, edge and tools.
 */

/*
 * Returns a new non-blocking listening TCP socket on host:port (IPv4 or
 * IPv6 literal or name), SO_REUSEADDR, and SO_REUSEPORT when reuseport.
 * port 0 binds an ephemeral port. Returns -1 with *err on failure.
 */
int net_listen(const char *host, int port, bool reuseport, int backlog, const char **err);

/* The local port a socket is bound to, or -1. */
int net_local_port(int fd);

/*
 * Splits "host:port" / "[v6]:port" into host (copied into hostbuf) and port.
 * Returns 0 or -1.
 */
int net_split_hostport(const char *s, char *hostbuf, size_t hostlen, int *port);

/* Formats the peer address of fd as "ip:port" into buf. */
void net_peer_name(int fd, char *buf, size_t len);

/* Resident set size of this process in bytes (from /proc/self/statm), 0 if unknown. */
uint64_t net_rss_bytes(void);

/* Monotonic clock in milliseconds and microseconds. */
uint64_t net_now_ms(void);
uint64_t net_now_us(void);

#endif

#ifndef HERALD_COMMON_NET_H
#define HERALD_COMMON_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct addrinfo;
struct sockaddr;

/*
 * Sockets and addresses shared by broker, edge and tools.
 */

/*
 * Returns a new non-blocking listening TCP socket on host:port (IPv4 or
 * IPv6 literal or name), SO_REUSEADDR, and SO_REUSEPORT when reuseport.
 * port 0 binds an ephemeral port. Returns -1 with *err on failure.
 */
int net_listen(const char *host, int port, bool reuseport, int backlog, const char **err);

/*
 * Resolves host:port (a name, or an IPv4 or IPv6 literal; port numeric)
 * for a TCP socket: family AF_UNSPEC for any, AF_INET or AF_INET6 for one.
 * Returns 0 with *res (at least one address; freeaddrinfo it), or
 * getaddrinfo's error code (gai_strerror tells it).
 */
int net_resolve(const char *host, int port, int family, struct addrinfo **res);

/*
 * Connects a blocking TCP socket (close-on-exec) to host:port, trying each
 * address host resolves to in turn. Returns the socket, or -1: with
 * *gai_err set to getaddrinfo's error code when host does not resolve,
 * else with *gai_err 0 and errno from the last failed attempt.
 */
int net_connect(const char *host, int port, int *gai_err);

/* The local port a socket is bound to, or -1. */
int net_local_port(int fd);

/*
 * Splits "host:port" / "[v6]:port" into host (copied into hostbuf) and port.
 * Returns 0 or -1.
 */
int net_split_hostport(const char *s, char *hostbuf, size_t hostlen, int *port);

/* Formats the peer address of fd as "ip:port" into buf. */
void net_peer_name(int fd, char *buf, size_t len);

/* One address block of an allow-list: family AF_INET or AF_INET6, the first `bits` bits of addr. */
struct net_cidr {
    int family;
    unsigned bits;
    uint8_t addr[16];
};

#define NET_CIDR_MAX 64 /* entries an allow-list may hold */

/*
 * Parses a comma-separated list of IPv4/IPv6 addresses or CIDR blocks
 * ("127.0.0.1, 10.0.0.0/8, ::1, fd00::/8"; spaces allowed) into out (at
 * most cap entries). Returns the number of entries, or -1 with *err
 * (static) on a malformed entry, a prefix too long for its family, or more
 * than cap entries. An empty list gives 0.
 */
int net_cidr_parse(const char *list, struct net_cidr *out, size_t cap, const char **err);

/* True when sa (AF_INET or AF_INET6; IPv4-mapped IPv6 counts as IPv4) is in one of list[0..n). */
bool net_cidr_match(const struct net_cidr *list, size_t n, const struct sockaddr *sa);

/* Resident set size of this process in bytes (from /proc/self/statm), 0 if unknown. */
uint64_t net_rss_bytes(void);

/* Monotonic clock in milliseconds and microseconds. */
uint64_t net_now_ms(void);
uint64_t net_now_us(void);

#endif

/*
 * net.c - listening and connecting sockets, address formatting, clocks
 * and RSS.
 *
 * Small helpers both processes and the tools need. Listeners are created
 * here rather than with evconnlistener so the edge can set SO_REUSEPORT on
 * every worker's socket and the broker can report the port actually bound
 * (port 0 in tests). Names are resolved with getaddrinfo in one place
 * (resolve): for a listener the first address that binds wins; for a
 * blocking connect (the herald CLI) the first that accepts. The edge's
 * uplink connects without blocking through its bufferevent, to the first
 * address net_resolve returns.
 */
#include "common/net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static int listen_one(const struct addrinfo *ai, bool reuseport, int backlog, const char **err)
{
    int one = 1;
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

    if (fd < 0) {
        *err = "socket() failed";
        return -1;
    }
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0)) {
        *err = "setsockopt(SO_REUSEADDR/SO_REUSEPORT) failed";
        goto fail;
    }
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
        *err = errno == EADDRINUSE ? "address already in use" : "bind() failed";
        goto fail;
    }
    if (listen(fd, backlog) < 0) {
        *err = "listen() failed";
        goto fail;
    }
    return fd;
fail:
    close(fd);
    return -1;
}

/* getaddrinfo for a TCP socket on a numeric port; 0 only with an address in *res. */
static int resolve(const char *host, int port, int family, int flags, struct addrinfo **res)
{
    struct addrinfo hints = {0};
    char portbuf[16];
    int rc;

    hints.ai_family = family;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = flags | AI_NUMERICSERV;
    snprintf(portbuf, sizeof(portbuf), "%d", port);
    *res = NULL;
    rc = getaddrinfo(host, portbuf, &hints, res);
    if (rc == 0 && !*res)
        rc = EAI_NONAME;
    return rc;
}

int net_resolve(const char *host, int port, int family, struct addrinfo **res)
{
    return resolve(host, port, family, 0, res);
}

int net_connect(const char *host, int port, int *gai_err)
{
    struct addrinfo *res = NULL;
    int fd = -1, saved;

    *gai_err = resolve(host, port, AF_UNSPEC, 0, &res);
    if (*gai_err != 0)
        return -1;
    errno = ECONNREFUSED;
    for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
            saved = errno;
            close(fd);
            fd = -1;
            errno = saved;
        }
    }
    saved = errno;
    freeaddrinfo(res);
    errno = saved;
    return fd;
}

int net_listen(const char *host, int port, bool reuseport, int backlog, const char **err)
{
    struct addrinfo *res = NULL;
    int fd = -1;

    if (resolve(host && *host ? host : NULL, port, AF_UNSPEC, AI_PASSIVE, &res) != 0) {
        *err = "cannot resolve bind address";
        return -1;
    }
    for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next)
        fd = listen_one(ai, reuseport, backlog, err);
    freeaddrinfo(res);
    return fd;
}

int net_local_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);

    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
        return -1;
    if (ss.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return -1;
}

int net_split_hostport(const char *s, char *hostbuf, size_t hostlen, int *port)
{
    const char *colon, *host = s;
    size_t hlen;
    char *end;
    long p;

    if (s[0] == '[') {
        const char *rb = strchr(s, ']');

        if (!rb || rb[1] != ':')
            return -1;
        host = s + 1;
        hlen = (size_t)(rb - host);
        colon = rb + 1;
    } else {
        colon = strrchr(s, ':');
        if (!colon)
            return -1;
        hlen = (size_t)(colon - s);
    }
    if (hlen == 0 || hlen >= hostlen)
        return -1;
    /* Digits only: strtol alone would skip spaces and take a sign. */
    errno = 0;
    p = strtol(colon + 1, &end, 10);
    if (colon[1] < '0' || colon[1] > '9' || errno || *end || p < 1 || p > 65535)
        return -1;
    memcpy(hostbuf, host, hlen);
    hostbuf[hlen] = '\0';
    *port = (int)p;
    return 0;
}

void net_peer_name(int fd, char *buf, size_t len)
{
    struct sockaddr_storage ss;
    socklen_t slen = sizeof(ss);
    char ip[INET6_ADDRSTRLEN] = "?";
    int port = 0;

    if (getpeername(fd, (struct sockaddr *)&ss, &slen) == 0) {
        if (ss.ss_family == AF_INET) {
            struct sockaddr_in *in = (struct sockaddr_in *)&ss;

            inet_ntop(AF_INET, &in->sin_addr, ip, sizeof(ip));
            port = ntohs(in->sin_port);
        } else if (ss.ss_family == AF_INET6) {
            struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;

            inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof(ip));
            port = ntohs(in6->sin6_port);
        }
    }
    snprintf(buf, len, "%s:%d", ip, port);
}

uint64_t net_rss_bytes(void)
{
    unsigned long size = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");

    if (!f)
        return 0;
    if (fscanf(f, "%lu %lu", &size, &resident) != 2)
        resident = 0;
    fclose(f);
    return (uint64_t)resident * (uint64_t)sysconf(_SC_PAGESIZE);
}

uint64_t net_now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

uint64_t net_now_ms(void)
{
    return net_now_us() / 1000u;
}

/* ---- allow-lists ---------------------------------------------------------- */

/* Parses one "addr" or "addr/bits" (NUL-terminated, trimmed) into *c. */
static int cidr_one(const char *s, struct net_cidr *c, const char **err)
{
    char addr[INET6_ADDRSTRLEN + 1];
    const char *slash = strchr(s, '/');
    size_t alen = slash ? (size_t)(slash - s) : strlen(s);
    unsigned max;

    if (alen == 0 || alen >= sizeof(addr)) {
        *err = "expected an IPv4 or IPv6 address, optionally /bits";
        return -1;
    }
    memcpy(addr, s, alen);
    addr[alen] = '\0';
    memset(c, 0, sizeof(*c));
    if (inet_pton(AF_INET, addr, c->addr) == 1) {
        c->family = AF_INET;
        max = 32;
    } else if (inet_pton(AF_INET6, addr, c->addr) == 1) {
        c->family = AF_INET6;
        max = 128;
    } else {
        *err = "expected an IPv4 or IPv6 address, optionally /bits";
        return -1;
    }
    c->bits = max;
    if (slash) {
        char *end;
        unsigned long bits = strtoul(slash + 1, &end, 10);

        if (end == slash + 1 || *end != '\0' || bits > max) {
            *err = "prefix length out of range for the address family";
            return -1;
        }
        c->bits = (unsigned)bits;
    }
    return 0;
}

int net_cidr_parse(const char *list, struct net_cidr *out, size_t cap, const char **err)
{
    size_t n = 0;
    const char *p = list ? list : "";

    while (*p) {
        char item[INET6_ADDRSTRLEN + 8];
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);

        while (len > 0 && (*p == ' ' || *p == '\t')) {
            p++;
            len--;
        }
        while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t'))
            len--;
        if (len >= sizeof(item)) {
            *err = "address too long";
            return -1;
        }
        if (len > 0) {
            if (n == cap) {
                *err = "too many addresses";
                return -1;
            }
            memcpy(item, p, len);
            item[len] = '\0';
            if (cidr_one(item, &out[n], err) < 0)
                return -1;
            n++;
        }
        if (!comma)
            break;
        p = comma + 1;
    }
    return (int)n;
}

static bool prefix_equal(const uint8_t *a, const uint8_t *b, unsigned bits)
{
    unsigned whole = bits / 8, rest = bits % 8;

    if (memcmp(a, b, whole) != 0)
        return false;
    if (rest == 0)
        return true;
    return ((a[whole] ^ b[whole]) & (uint8_t)(0xff << (8 - rest))) == 0;
}

bool net_cidr_match(const struct net_cidr *list, size_t n, const struct sockaddr *sa)
{
    static const uint8_t v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    uint8_t addr[16];
    int family;

    if (sa->sa_family == AF_INET) {
        family = AF_INET;
        memcpy(addr, &((const struct sockaddr_in *)sa)->sin_addr, 4);
    } else if (sa->sa_family == AF_INET6) {
        const uint8_t *a6 = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;

        family = AF_INET6;
        memcpy(addr, a6, 16);
        if (memcmp(a6, v4mapped, sizeof(v4mapped)) == 0) {
            family = AF_INET;
            memcpy(addr, a6 + 12, 4);
        }
    } else {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (list[i].family == family && prefix_equal(addr, list[i].addr, list[i].bits))
            return true;
    }
    return false;
}

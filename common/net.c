/*
 * net.c - listening sockets, address formatting, clocks and RSS.
 *
 * Small helpers both processes and the tools need. Listeners are created
 * here rather than with evconnlistener so the edge can set SO_REUSEPORT on
 * every worker's socket and the broker can report the port actually bound
 * (port 0 in tests). Names are resolved with getaddrinfo, first address
 * that binds wins.
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

int net_listen(const char *host, int port, bool reuseport, int backlog, const char **err)
{
    struct addrinfo hints = {0}, *res = NULL;
    char portbuf[16];
    int fd = -1;

    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    snprintf(portbuf, sizeof(portbuf), "%d", port);
    if (getaddrinfo(host && *host ? host : NULL, portbuf, &hints, &res) != 0 || !res) {
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

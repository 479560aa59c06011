/*
 * send_floor.c - the kernel floor for fan-out: one small send() on each of N
 * idle loopback TCP sockets, round-robin, as an edge does to deliver one
 * event to N subscribers.
 *
 *   send_floor N [ROUNDS] [BYTES] [SINK_CPU] [drain|idle]
 *                         (defaults 20 rounds, 66 bytes, no pinning, drain)
 *
 * The parent listens on 127.0.0.1, forks a sink that connects N sockets and
 * drains them with epoll (pinned to SINK_CPU, where a load generator would
 * run), accepts the N, then times ROUNDS rounds of one BYTES-byte send() per
 * socket, 100 ms apart so the sockets are idle between rounds. The sink holds
 * the other N descriptors, so N up to the per-process fd limit works.
 * "idle" makes the sink never read (ROUNDS x BYTES must fit a socket's
 * receive buffer): no reader wakes, so that is the bare send() cost, while
 * "drain" includes waking a reader blocked in epoll, as an edge's clients are.
 * 66 bytes is a 64-byte payload in a WebSocket frame. Prints one line:
 *   n=N rounds=R bytes=B send_ns_p50=.. round_us_p50=.. round_us_min=..
 * Built by bench/edge.sh with cc; not part of the CMake build.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

/* The child: connect n sockets, then read and discard until killed. */
static void sink(const struct sockaddr_in *addr, int n, int cpu, int drain)
{
    char buf[65536];
    struct epoll_event evs[256];
    int ep = epoll_create1(0);

    if (cpu >= 0) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(cpu, &set);
        sched_setaffinity(0, sizeof(set), &set);
    }
    for (int i = 0; i < n; i++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
        if (fd < 0 || connect(fd, (const struct sockaddr *)addr, sizeof(*addr)) < 0 ||
            epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
            perror("send_floor: sink");
            _exit(1);
        }
    }
    while (!drain)
        pause();
    for (;;) {
        int k = epoll_wait(ep, evs, 256, -1);
        for (int i = 0; i < k; i++) {
            if (read(evs[i].data.fd, buf, sizeof(buf)) <= 0)
                _exit(0);
        }
    }
}

static int accept_all(int lfd, int *fds, int n)
{
    for (int i = 0; i < n; i++) {
        fds[i] = accept(lfd, NULL, NULL);
        if (fds[i] < 0) {
            perror("send_floor: accept");
            return -1;
        }
    }
    return 0;
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 15000, rounds = argc > 2 ? atoi(argv[2]) : 20;
    int bytes = argc > 3 ? atoi(argv[3]) : 66, cpu = argc > 4 ? atoi(argv[4]) : -1;
    int drain = argc > 5 ? strcmp(argv[5], "idle") != 0 : 1;
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof(addr);
    int lfd = socket(AF_INET, SOCK_STREAM, 0), *fds = calloc((size_t)n, sizeof(int));
    double *per = calloc((size_t)rounds, sizeof(double)), *sorted;
    char payload[4096];
    pid_t child;

    if (n <= 0 || rounds <= 0 || bytes <= 0 || bytes > (int)sizeof(payload) || !fds || !per ||
        lfd < 0 || bind(lfd, (struct sockaddr *)&addr, sizeof(addr)) < 0 || listen(lfd, 4096) < 0 ||
        getsockname(lfd, (struct sockaddr *)&addr, &alen) < 0) {
        fprintf(stderr, "usage: send_floor N [ROUNDS] [BYTES<=4096] [SINK_CPU] [drain|idle]\n");
        return 2;
    }
    memset(payload, 'x', sizeof(payload));
    child = fork();
    if (child == 0)
        sink(&addr, n, cpu, drain);
    if (child < 0 || accept_all(lfd, fds, n) < 0)
        return 1;
    usleep(200000);
    for (int r = 0; r < rounds; r++) {
        double t0 = now_us();
        for (int i = 0; i < n; i++) {
            if (send(fds[i], payload, (size_t)bytes, MSG_DONTWAIT | MSG_NOSIGNAL) != bytes) {
                perror("send_floor: send");
                kill(child, SIGKILL);
                return 1;
            }
        }
        per[r] = now_us() - t0;
        usleep(100000);
    }
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
    sorted = per;
    qsort(sorted, (size_t)rounds, sizeof(double), cmp_double);
    printf("n=%d rounds=%d bytes=%d send_ns_p50=%.0f round_us_p50=%.0f round_us_min=%.0f\n", n,
           rounds, bytes, sorted[rounds / 2] * 1000.0 / n, sorted[rounds / 2], sorted[0]);
    free(per);
    free(fds);
    return 0;
}

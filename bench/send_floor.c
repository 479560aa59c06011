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
 *
 *   send_floor multi N PER [ROUNDS] [BYTES] [SINK_CPU] [SEND_CPU]
 *
 * The same over more sockets than one process may open (bench/scale.sh:
 * the fd limit is 20,000): P = ceil(N / PER) sender processes, each with its
 * own listener, PER sockets and its own draining sink, as ceil(N / 18000)
 * edge processes share a core to fan one event out to N. Each reader sends
 * one byte first and its sender reads it, as an edge reads a handshake (so
 * receive flow steering treats both alike). Senders pinned to
 * SEND_CPU, sinks to SINK_CPU. A round: the coordinator (on SINK_CPU, as the
 * broker is) wakes every sender through its pipe; each sends one BYTES-byte
 * message on each of its sockets and stamps its end time in shared memory;
 * the round lasts from the wake-up to the last sender's end. Before each
 * round the coordinator waits until the sinks read every byte sent so far,
 * then 100 ms, so every socket is idle and every reader blocked in
 * epoll_wait. Setup progress goes to stderr every 2 s; one line on stdout:
 *   n=N procs=P rounds=R bytes=B send_ns_p50=.. round_us_p50=.. round_us_min=..
 *   round_us_max=.. cpu_us_p50=..
 * (cpu_us: the senders' CPU time in a round, summed; unlike the round's
 * length it does not grow when other work shares SEND_CPU).
 *   send_floor ws N PORT [ROUNDS] [GAP_MS]
 *
 * The same sends to the load generator's own connections (bench/edge.sh):
 * listens on 127.0.0.1:PORT, answers N WebSocket upgrades (101, the
 * Sec-WebSocket-Accept from libcrypto's SHA-1, TCP_NODELAY as an edge sets),
 * then every GAP_MS (default 1000; 0: on each SIGUSR1, so that several
 * probes start a round together) sends one 66-byte binary frame on each,
 * round-robin: a 64-byte herald-loadgen payload (t= stamped once per round,
 * s= the round, c= ROUNDS), so the load generators count and time it as
 * they do an edge's events. It is the floor with the very receivers an
 * edge has (their reads, ACKs and wake-ups load the kernel exactly as
 * during an edge run, which the own-sink modes above do not quite do).
 * Exits after the last round (GAP_MS 0: on one more SIGUSR1 or when killed;
 * or after 120 s without all N connections):
 *   n=N rounds=R bytes=66 send_ns_p50=.. round_us_p50=.. round_us_min=..
 * Built by CMake (the target send_floor, beside the servers in the build
 * tree), linked with the edge's WebSocket codec (common/ws/) for the
 * Accept key and the frame header, so the probe answers and frames
 * exactly as the edge does.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <inttypes.h>

#include "common/ws/ws_frame.h"
#include "common/ws/ws_key.h"

static double clock_us(clockid_t id)
{
    struct timespec ts;

    clock_gettime(id, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static double now_us(void)
{
    return clock_us(CLOCK_MONOTONIC);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

static void pin(int cpu)
{
    cpu_set_t set;

    if (cpu < 0)
        return;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    sched_setaffinity(0, sizeof(set), &set);
}

/* Bytes the sink has read, in shared memory in multi mode (NULL: not counted). */
static volatile long *sink_bytes;

/* The child: connect n sockets, then read and discard until killed. */
static void sink(const struct sockaddr_in *addr, int n, int cpu, int drain)
{
    char buf[65536];
    struct epoll_event evs[256];
    int ep = epoll_create1(0);

    prctl(PR_SET_PDEATHSIG, SIGKILL);
    pin(cpu);
    for (int i = 0; i < n; i++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
        struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
        /* multi mode (bench/scale.sh): receive stamps on, as the load generators' --kernel-ts */
        if (sink_bytes && fd >= 0)
            setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof(one));
        if (fd < 0 || connect(fd, (const struct sockaddr *)addr, sizeof(*addr)) < 0 ||
            epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0 || (sink_bytes && write(fd, "h", 1) != 1)) {
            perror("send_floor: sink");
            _exit(1);
        }
    }
    while (!drain)
        pause();
    for (;;) {
        int k = epoll_wait(ep, evs, 256, -1);
        for (int i = 0; i < k; i++) {
            ssize_t got = read(evs[i].data.fd, buf, sizeof(buf));
            if (got <= 0)
                _exit(0);
            if (sink_bytes)
                __atomic_add_fetch(sink_bytes, got, __ATOMIC_RELAXED);
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

static int single_main(int argc, char **argv);

/* ------------------------------------------------------------ multi mode */

/* Shared between the coordinator, the senders and the sinks (MAP_SHARED before fork). */
struct shared {
    long read_bytes; /* by all sinks together */
    double *cpu_us;  /* per sender: CPU time of its latest round (after end_us) */
    double end_us[]; /* per sender: when its latest round ended */
};

static struct shared *shm;

#define MULTI_MAX_PROCS  1000
#define MULTI_MAX_ROUNDS 100

/* Listens on an ephemeral loopback port; returns the fd (address in *addr) or -1. */
static int listen_any(struct sockaddr_in *addr)
{
    socklen_t alen = sizeof(*addr);
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    addr->sin_family = AF_INET;
    addr->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr->sin_port = 0;
    if (fd < 0 || bind(fd, (struct sockaddr *)addr, sizeof(*addr)) < 0 || listen(fd, 4096) < 0 ||
        getsockname(fd, (struct sockaddr *)addr, &alen) < 0)
        return -1;
    return fd;
}

/*
 * Sender idx: its own sink on sink_cpu, n accepted sockets, then one byte on
 * `ready`, and per byte read from `go` one round of sends, its end stamped
 * in shm and one byte on `done`. Never returns.
 */
static void sender(int idx, int n, int bytes, int sink_cpu, int send_cpu, int go, int ready,
                   int done)
{
    struct sockaddr_in addr;
    int lfd = listen_any(&addr), *fds = calloc((size_t)n, sizeof(int));
    char payload[4096], c;

    prctl(PR_SET_PDEATHSIG, SIGKILL);
    memset(payload, 'x', sizeof(payload));
    sink_bytes = &shm->read_bytes;
    if (lfd < 0 || !fds || fork() == 0)
        sink(&addr, n, sink_cpu, 1); /* (or exits: the coordinator sees `ready` close) */
    pin(send_cpu);
    if (accept_all(lfd, fds, n) < 0)
        _exit(1);
    /* one byte in from each reader, as an edge reads a handshake: with
     * receive flow steering the socket's incoming packets (ACKs) are then
     * processed on this CPU, as an edge's are */
    for (int i = 0; i < n; i++) {
        if (read(fds[i], &c, 1) != 1)
            _exit(1);
    }
    if (write(ready, "r", 1) != 1)
        _exit(1);
    while (read(go, &c, 1) == 1) {
        double cpu0 = clock_us(CLOCK_PROCESS_CPUTIME_ID);
        for (int i = 0; i < n; i++) {
            if (send(fds[i], payload, (size_t)bytes, MSG_DONTWAIT | MSG_NOSIGNAL) != bytes) {
                perror("send_floor: send");
                _exit(1);
            }
        }
        shm->end_us[idx] = now_us();
        shm->cpu_us[idx] = clock_us(CLOCK_PROCESS_CPUTIME_ID) - cpu0;
        if (write(done, "d", 1) != 1)
            _exit(1);
    }
    _exit(0);
}

/*
 * Reads want bytes from fd within timeout_s, printing progress; -1 on EOF,
 * timeout or a sender's exit.
 */
static int await_bytes(int fd, int want, int timeout_s, const char *what)
{
    double t0 = now_us(), last = t0;
    char buf[256];
    int got = 0;

    while (got < want) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        ssize_t k;
        if (waitpid(-1, NULL, WNOHANG) > 0) {
            fprintf(stderr, "send_floor: %s: a sender exited\n", what);
            return -1;
        }
        if (now_us() - t0 > timeout_s * 1e6) {
            fprintf(stderr, "send_floor: %s: timed out (%d of %d)\n", what, got, want);
            return -1;
        }
        if (poll(&p, 1, 500) > 0) {
            k = read(fd, buf,
                     (size_t)(want - got) < sizeof(buf) ? (size_t)(want - got) : sizeof(buf));
            if (k <= 0)
                return -1;
            got += (int)k;
        }
        if (now_us() - last >= 2e6) {
            last = now_us();
            fprintf(stderr, "send_floor: %s: %d of %d, %.0f s\n", what, got, want,
                    (last - t0) / 1e6);
        }
    }
    return 0;
}

/* Waits until the sinks have read `want` bytes in all (at most 60 s); -1 on timeout. */
static int await_drained(long want)
{
    for (int i = 0; i < 60000; i++) {
        if (__atomic_load_n(&shm->read_bytes, __ATOMIC_RELAXED) >= want)
            return 0;
        usleep(1000);
    }
    fprintf(stderr, "send_floor: the sinks did not drain\n");
    return -1;
}

/*
 * One round: wakes every sender, waits for all; returns its length in µs or
 * -1, and the senders' CPU time in *cpu.
 */
static double multi_round(const int *go, int procs, int done, double *cpu)
{
    double t0 = now_us(), end = 0;

    for (int p = 0; p < procs; p++) {
        if (write(go[p], "g", 1) != 1)
            return -1;
    }
    if (await_bytes(done, procs, 120, "round") < 0)
        return -1;
    *cpu = 0;
    for (int p = 0; p < procs; p++) {
        end = shm->end_us[p] > end ? shm->end_us[p] : end;
        *cpu += shm->cpu_us[p];
    }
    return end - t0;
}

/* Forks the senders (each with PER sockets, the last with the rest); -1 on failure. */
static int multi_start(int n, int per, int bytes, int sink_cpu, int send_cpu, int *go, int ready[2],
                       int done[2])
{
    int procs = (n + per - 1) / per;

    for (int p = 0; p < procs; p++) {
        int g[2], cnt = p == procs - 1 ? n - p * per : per;
        pid_t pid;
        if (pipe(g) < 0 || (pid = fork()) < 0)
            return -1;
        if (pid == 0) {
            close(g[1]);
            sender(p, cnt, bytes, sink_cpu, send_cpu, g[0], ready[1], done[1]);
        }
        close(g[0]);
        go[p] = g[1];
    }
    close(ready[1]);
    close(done[1]);
    return procs;
}

static int multi_main(int argc, char **argv)
{
    int n = argc > 2 ? atoi(argv[2]) : 0, per = argc > 3 ? atoi(argv[3]) : 18000;
    int rounds = argc > 4 ? atoi(argv[4]) : 5, bytes = argc > 5 ? atoi(argv[5]) : 66;
    int sink_cpu = argc > 6 ? atoi(argv[6]) : -1, send_cpu = argc > 7 ? atoi(argv[7]) : -1;
    int procs = n > 0 && per > 0 ? (n + per - 1) / per : 0, ready[2], done[2];
    static int go[MULTI_MAX_PROCS];
    static double per_round[MULTI_MAX_ROUNDS], cpu_round[MULTI_MAX_ROUNDS];

    if (procs <= 0 || procs > MULTI_MAX_PROCS || rounds <= 0 || rounds > MULTI_MAX_ROUNDS ||
        bytes <= 0 || bytes > 4096 || pipe(ready) < 0 || pipe(done) < 0) {
        fprintf(stderr, "usage: send_floor multi N PER [ROUNDS<=100] [BYTES<=4096] [SINK_CPU] "
                        "[SEND_CPU]   (N / PER <= 1000)\n");
        return 2;
    }
    shm = mmap(NULL, sizeof(*shm) + 2 * (size_t)procs * sizeof(double), PROT_READ | PROT_WRITE,
               MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    signal(SIGPIPE, SIG_IGN);
    pin(sink_cpu);
    if (shm == MAP_FAILED)
        return 1;
    shm->cpu_us = shm->end_us + procs;
    if (multi_start(n, per, bytes, sink_cpu, send_cpu, go, ready, done) != procs ||
        await_bytes(ready[0], procs, 300, "senders ready") < 0)
        return 1;
    for (int r = 0; r < rounds; r++) {
        usleep(100000);
        if (await_drained((long)r * n * bytes) < 0 ||
            (per_round[r] = multi_round(go, procs, done[0], &cpu_round[r])) < 0)
            return 1;
        fprintf(stderr, "send_floor: round %d of %d: %.0f us (senders' CPU %.0f us)\n", r + 1,
                rounds, per_round[r], cpu_round[r]);
    }
    qsort(per_round, (size_t)rounds, sizeof(double), cmp_double);
    qsort(cpu_round, (size_t)rounds, sizeof(double), cmp_double);
    printf("n=%d procs=%d rounds=%d bytes=%d send_ns_p50=%.0f round_us_p50=%.0f round_us_min=%.0f "
           "round_us_max=%.0f cpu_us_p50=%.0f\n",
           n, procs, rounds, bytes, per_round[rounds / 2] * 1000.0 / n, per_round[rounds / 2],
           per_round[0], per_round[rounds - 1], cpu_round[rounds / 2]);
    return 0; /* the senders and their sinks die with us (PR_SET_PDEATHSIG) */
}

/* ------------------------------------------------------------ ws mode */

/* Reads one HTTP upgrade request on fd and answers 101. Returns 0 or -1. */
static int ws_upgrade(int fd)
{
    char req[4096], key[128], accept_key[WS_ACCEPT_LEN + 1], resp[256], *k;
    size_t got = 0, kl = 0;
    struct timeval tv = {10, 0};
    int one = 1, rl;

    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    while (!memmem(req, got, "\r\n\r\n", 4)) {
        ssize_t r = read(fd, req + got, sizeof(req) - 1 - got);
        if (r <= 0)
            return -1;
        got += (size_t)r;
    }
    req[got] = '\0';
    k = strcasestr(req, "\nSec-WebSocket-Key:");
    if (!k)
        return -1;
    for (k += 19; *k == ' '; k++)
        ;
    while (k[kl] && k[kl] != '\r' && kl < 60) {
        key[kl] = k[kl];
        kl++;
    }
    ws_accept_key(key, kl, accept_key);
    rl = snprintf(resp, sizeof(resp),
                  "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                  "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
                  accept_key);
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return write(fd, resp, (size_t)rl) == rl ? 0 : -1;
}

static int ws_main(int argc, char **argv)
{
    int n = argc > 2 ? atoi(argv[2]) : 0, port = argc > 3 ? atoi(argv[3]) : 0;
    int rounds = argc > 4 ? atoi(argv[4]) : 10, gap_ms = argc > 5 ? atoi(argv[5]) : 1000;
    struct sockaddr_in addr = {.sin_family = AF_INET,
                               .sin_port = htons((uint16_t)port),
                               .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int lfd = socket(AF_INET, SOCK_STREAM, 0), one = 1,
        *fds = calloc((size_t)(n > 0 ? n : 1), sizeof(int));
    double *per = calloc((size_t)(rounds > 0 ? rounds : 1), sizeof(double));
    struct pollfd pfd = {.fd = lfd, .events = POLLIN};
    sigset_t usr1;

    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    sigprocmask(SIG_BLOCK, &usr1, NULL); /* held until sigwait() when GAP_MS is 0 */

    if (n <= 0 || port <= 0 || rounds <= 0 || gap_ms < 0 || !fds || !per || lfd < 0 ||
        setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        bind(lfd, (struct sockaddr *)&addr, sizeof(addr)) < 0 || listen(lfd, 4096) < 0) {
        fprintf(stderr, "usage: send_floor ws N PORT [ROUNDS] [GAP_MS] (port free?)\n");
        return 2;
    }
    for (int i = 0; i < n; i++) {
        if (poll(&pfd, 1, 120000) != 1 || (fds[i] = accept(lfd, NULL, NULL)) < 0 ||
            ws_upgrade(fds[i]) < 0) {
            fprintf(stderr, "send_floor ws: connection %d of %d failed or never came\n", i + 1, n);
            return 1;
        }
    }
    fprintf(stderr, "send_floor ws: %d connected\n", n);
    if (gap_ms > 0)
        usleep(2000000);
    for (int r = 0; r < rounds; r++) {
        uint8_t frame[66]; /* a 2-byte header and the 64-byte payload */
        size_t hl = ws_frame_header_encode(frame, WS_OP_BINARY, true, 64);
        char text[80];
        struct timespec rt;
        double t0;
        int sig;

        if (gap_ms == 0 && sigwait(&usr1, &sig) != 0)
            return 1;

        clock_gettime(CLOCK_REALTIME, &rt);
        snprintf(text, sizeof(text), "t=%016" PRIu64 " s=%010d c=%010d r=%08x ",
                 (uint64_t)rt.tv_sec * 1000000u + (uint64_t)rt.tv_nsec / 1000u, r, rounds, 0u);
        memset(frame + hl, 'x', 64);
        memcpy(frame + hl, text, strlen(text));
        t0 = now_us();
        for (int i = 0; i < n; i++) {
            if (send(fds[i], frame, sizeof(frame), MSG_DONTWAIT | MSG_NOSIGNAL) !=
                (ssize_t)sizeof(frame)) {
                perror("send_floor ws: send");
                return 1;
            }
        }
        per[r] = now_us() - t0;
        if (gap_ms > 0)
            usleep((useconds_t)gap_ms * 1000);
    }
    qsort(per, (size_t)rounds, sizeof(double), cmp_double);
    printf("n=%d rounds=%d bytes=66 send_ns_p50=%.0f round_us_p50=%.0f round_us_min=%.0f\n", n,
           rounds, per[rounds / 2] * 1000.0 / n, per[rounds / 2], per[0]);
    fflush(stdout);
    if (gap_ms == 0) { /* stay until killed: closing now could cut the last round's retransmits */
        int sig;

        sigwait(&usr1, &sig);
    }
    for (int i = 0; i < n; i++)
        close(fds[i]);
    free(fds);
    free(per);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "multi") == 0)
        return multi_main(argc, argv);
    if (argc > 1 && strcmp(argv[1], "ws") == 0)
        return ws_main(argc, argv);
    return single_main(argc, argv);
}

static int single_main(int argc, char **argv)
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

/*
 * Sockets, addresses and clocks (common/net.c): the host:port splitting
 * table, listening on an ephemeral loopback port, SO_REUSEPORT sharing a
 * port only when both sockets ask for it, the peer name of an accepted
 * connection, the monotonic clock and the resident set size, and the
 * allow-lists of addresses and CIDR blocks (edge-allow). Every socket is on
 * 127.0.0.1.
 */
#include <arpa/inet.h>
#include <check.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/net.h"
#include "tests/support/check_main.h"

/* ---------------------------------------------------------------- split */

struct split_case {
    const char *in;
    int rc;
    const char *host;
    int port;
};

/* Host buffer of 16 bytes: hosts of up to 15 characters fit. */
static const struct split_case split_cases[] = {
    {"example.com:80", 0, "example.com", 80},
    {"127.0.0.1:6379", 0, "127.0.0.1", 6379},
    {"localhost:1", 0, "localhost", 1},
    {"h:65535", 0, "h", 65535},
    {"[::1]:80", 0, "::1", 80},
    {"[fe80::1:2]:8080", 0, "fe80::1:2", 8080},
    {"a:b:80", 0, "a:b", 80}, /* the last colon separates the port */
    {"::1:443", 0, "::1", 443},
    {"0123456789abcde:9", 0, "0123456789abcde", 9},
    {"0123456789abcdef:9", -1, NULL, 0}, /* host too long for the buffer */
    {"[0123456789abcdef]:9", -1, NULL, 0},
    {"a:b:c", -1, NULL, 0}, /* port "c" after the last colon */
    {"host", -1, NULL, 0},
    {"host:", -1, NULL, 0},
    {"host:0", -1, NULL, 0},
    {"host:65536", -1, NULL, 0},
    {"host:99999999999999999999", -1, NULL, 0},
    {"host:-1", -1, NULL, 0},
    {"host:80x", -1, NULL, 0},
    {"host:8 0", -1, NULL, 0},
    {"host: 80", -1, NULL, 0}, /* strtol would skip the space */
    {"host:\t80", -1, NULL, 0},
    {"host:+80", -1, NULL, 0},
    {"host:0080", 0, "host", 80},
    {":80", -1, NULL, 0},
    {"[]:80", -1, NULL, 0},
    {"[::1]", -1, NULL, 0},
    {"[::1]80", -1, NULL, 0},
    {"[::1:80", -1, NULL, 0},
    {"", -1, NULL, 0},
};

START_TEST(test_split_table)
{
    const struct split_case *c = &split_cases[_i];
    char host[16] = "unchanged";
    int port = -7;
    int rc = net_split_hostport(c->in, host, sizeof(host), &port);

    ck_assert_msg(rc == c->rc, "'%s': rc %d, want %d", c->in, rc, c->rc);
    if (c->rc == 0) {
        ck_assert_str_eq(host, c->host);
        ck_assert_int_eq(port, c->port);
    } else {
        ck_assert_int_eq(port, -7);
    }
}

END_TEST

/* ---------------------------------------------------------------- listen */

START_TEST(test_listen_ephemeral)
{
    const char *err = NULL;
    int fd = net_listen("127.0.0.1", 0, false, 16, &err);
    int port, fl;

    ck_assert_msg(fd >= 0, "net_listen: %s", err);
    port = net_local_port(fd);
    ck_assert_int_gt(port, 0);
    ck_assert_int_le(port, 65535);
    fl = fcntl(fd, F_GETFL);
    ck_assert(fl & O_NONBLOCK);
    ck_assert(fcntl(fd, F_GETFD) & FD_CLOEXEC);
    close(fd);
}

END_TEST

START_TEST(test_local_port_bad_fd)
{
    int fds[2];

    ck_assert_int_eq(net_local_port(-1), -1);
    /* Not an inet socket. */
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
    ck_assert_int_eq(net_local_port(fds[0]), -1);
    close(fds[0]);
    close(fds[1]);
}

END_TEST

START_TEST(test_reuseport_shares_port)
{
    const char *err = NULL;
    int a = net_listen("127.0.0.1", 0, true, 16, &err);
    int port, b, c;

    ck_assert_msg(a >= 0, "net_listen: %s", err);
    port = net_local_port(a);
    b = net_listen("127.0.0.1", port, true, 16, &err);
    ck_assert_msg(b >= 0, "second reuseport listener: %s", err);
    ck_assert_int_eq(net_local_port(b), port);
    /* A third socket that does not ask for SO_REUSEPORT may not join. */
    err = NULL;
    c = net_listen("127.0.0.1", port, false, 16, &err);
    ck_assert_int_eq(c, -1);
    ck_assert_str_eq(err, "address already in use");
    close(a);
    close(b);
}

END_TEST

START_TEST(test_no_reuseport_conflicts)
{
    const char *err = NULL;
    int a = net_listen("127.0.0.1", 0, false, 16, &err);
    int port, b;

    ck_assert_msg(a >= 0, "net_listen: %s", err);
    port = net_local_port(a);
    err = NULL;
    b = net_listen("127.0.0.1", port, false, 16, &err);
    ck_assert_int_eq(b, -1);
    ck_assert_str_eq(err, "address already in use");
    /* Asking for SO_REUSEPORT only on the second is not enough either. */
    err = NULL;
    b = net_listen("127.0.0.1", port, true, 16, &err);
    ck_assert_int_eq(b, -1);
    ck_assert_str_eq(err, "address already in use");
    close(a);
    /* Once the first is closed the port is free again (SO_REUSEADDR). */
    b = net_listen("127.0.0.1", port, false, 16, &err);
    ck_assert_msg(b >= 0, "rebind after close: %s", err);
    close(b);
}

END_TEST

START_TEST(test_listen_unavailable_address)
{
    /* 192.0.2.1 (TEST-NET-1) is not on this machine: bind fails, nothing
     * is sent anywhere. */
    const char *err = NULL;

    ck_assert_int_eq(net_listen("192.0.2.1", 0, false, 16, &err), -1);
    ck_assert_str_eq(err, "bind() failed");
}

END_TEST

/* ---------------------------------------------------------------- peers */

/* Connects a blocking client to 127.0.0.1:port and accepts it on lfd. */
static void connect_pair(int lfd, int port, int *client, int *server)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    struct pollfd p = {.fd = lfd, .events = POLLIN};

    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    *client = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(*client, 0);
    ck_assert_int_eq(connect(*client, (struct sockaddr *)&sa, sizeof(sa)), 0);
    ck_assert_int_eq(poll(&p, 1, 30000), 1);
    *server = accept(lfd, NULL, NULL);
    ck_assert_int_ge(*server, 0);
}

START_TEST(test_peer_name)
{
    const char *err = NULL;
    int lfd = net_listen("127.0.0.1", 0, false, 16, &err);
    int port = net_local_port(lfd);
    int client, server;
    char got[64], want[64];

    ck_assert_int_ge(lfd, 0);
    connect_pair(lfd, port, &client, &server);
    net_peer_name(server, got, sizeof(got));
    snprintf(want, sizeof(want), "127.0.0.1:%d", net_local_port(client));
    ck_assert_str_eq(got, want);
    net_peer_name(client, got, sizeof(got));
    snprintf(want, sizeof(want), "127.0.0.1:%d", port);
    ck_assert_str_eq(got, want);
    /* A short buffer is cut and terminated. */
    net_peer_name(server, got, 6);
    ck_assert_str_eq(got, "127.0");
    close(client);
    close(server);
    close(lfd);
}

END_TEST

START_TEST(test_peer_name_unconnected)
{
    char got[64];
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    ck_assert_int_ge(fd, 0);
    net_peer_name(fd, got, sizeof(got));
    ck_assert_str_eq(got, "?:0");
    close(fd);
}

END_TEST

/* ---------------------------------------------------------------- clocks, rss */

START_TEST(test_now_monotonic)
{
    struct timespec pause = {0, 20 * 1000 * 1000};
    uint64_t prev = net_now_ms(), start = prev, us;

    for (int i = 0; i < 10000; i++) {
        uint64_t now = net_now_ms();

        ck_assert_uint_ge(now, prev);
        prev = now;
    }
    nanosleep(&pause, NULL);
    prev = net_now_ms();
    ck_assert_uint_ge(prev - start, 20);
    ck_assert_uint_lt(prev - start, 5000);
    /* The two clocks agree. */
    us = net_now_us();
    ck_assert_uint_ge(us / 1000, prev);
    ck_assert_uint_le(us / 1000, net_now_ms());
}

END_TEST

START_TEST(test_rss)
{
    const size_t size = 64u << 20;
    long page = sysconf(_SC_PAGESIZE);
    uint64_t before = net_rss_bytes(), after;
    char *p;

    ck_assert_uint_gt(before, 0);
    ck_assert_uint_eq(before % (uint64_t)page, 0);
    /* Touching 64 MiB of fresh pages shows in the resident size. */
    p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ck_assert_ptr_ne(p, MAP_FAILED);
    memset(p, 1, size);
    after = net_rss_bytes();
    ck_assert_uint_ge(after, before + size - (4u << 20));
    munmap(p, size);
}

END_TEST

/* Seconds per test: generous, as the machine may be shared with load tests. */
#define TCASE_TIMEOUT 60

/* ---------------------------------------------------------------- allow-lists */

static struct sockaddr_storage addr4(const char *ip)
{
    struct sockaddr_storage ss;
    struct sockaddr_in *sin = (struct sockaddr_in *)&ss;

    memset(&ss, 0, sizeof(ss));
    sin->sin_family = AF_INET;
    ck_assert_int_eq(inet_pton(AF_INET, ip, &sin->sin_addr), 1);
    return ss;
}

static struct sockaddr_storage addr6(const char *ip)
{
    struct sockaddr_storage ss;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;

    memset(&ss, 0, sizeof(ss));
    sin6->sin6_family = AF_INET6;
    ck_assert_int_eq(inet_pton(AF_INET6, ip, &sin6->sin6_addr), 1);
    return ss;
}

START_TEST(test_cidr_parse_and_match)
{
    struct net_cidr list[NET_CIDR_MAX];
    struct sockaddr_storage a;
    const char *err = NULL;
    int n = net_cidr_parse(" 127.0.0.1 , 10.0.0.0/8,fd00::/8, ::1,192.168.1.128/25", list,
                           NET_CIDR_MAX, &err);

    ck_assert_int_eq(n, 5);
    a = addr4("127.0.0.1");
    ck_assert(net_cidr_match(list, 5, (struct sockaddr *)&a));
    a = addr4("127.0.0.2");
    ck_assert(!net_cidr_match(list, 5, (struct sockaddr *)&a));
    a = addr4("10.200.3.4");
    ck_assert(net_cidr_match(list, 5, (struct sockaddr *)&a));
    a = addr4("11.0.0.1");
    ck_assert(!net_cidr_match(list, 5, (struct sockaddr *)&a));
    a = addr4("192.168.1.200");
    ck_assert(net_cidr_match(list, 5, (struct sockaddr *)&a));
    a = addr4("192.168.1.100");
    ck_assert(!net_cidr_match(list, 5, (struct sockaddr *)&a));
    a = addr6("fd12::1");
    ck_assert(net_cidr_match(list, 5, (struct sockaddr *)&a));
    a = addr6("::1");
    ck_assert(net_cidr_match(list, 5, (struct sockaddr *)&a));
    a = addr6("::2");
    ck_assert(!net_cidr_match(list, 5, (struct sockaddr *)&a));
    /* An IPv4 peer on a dual-stack socket arrives IPv4-mapped: matched as IPv4. */
    a = addr6("::ffff:10.1.2.3");
    ck_assert(net_cidr_match(list, 5, (struct sockaddr *)&a));
    ck_assert_int_eq(net_cidr_parse("", list, NET_CIDR_MAX, &err), 0);
    ck_assert_int_eq(net_cidr_parse(NULL, list, NET_CIDR_MAX, &err), 0);
    ck_assert_int_eq(net_cidr_parse("0.0.0.0/0", list, NET_CIDR_MAX, &err), 1);
    a = addr4("8.8.8.8");
    ck_assert(net_cidr_match(list, 1, (struct sockaddr *)&a));
}

END_TEST

static const char *const bad_cidrs[] = {
    "127.0.0.1/33", "::1/129",     "10.0.0.0/",   "10.0.0.0/x", "host.example",
    "1.2.3",        "1.2.3.4/8/8", "10.0.0.0/-1", "/8",
};

START_TEST(test_cidr_bad)
{
    struct net_cidr list[2];
    const char *err = NULL;

    ck_assert_int_eq(net_cidr_parse(bad_cidrs[_i], list, 2, &err), -1);
    ck_assert_ptr_nonnull(err);
}

END_TEST

START_TEST(test_cidr_too_many)
{
    struct net_cidr list[2];
    const char *err = NULL;

    ck_assert_int_eq(net_cidr_parse("1.1.1.1,2.2.2.2", list, 2, &err), 2);
    ck_assert_int_eq(net_cidr_parse("1.1.1.1,2.2.2.2,3.3.3.3", list, 2, &err), -1);
    ck_assert_str_eq(err, "too many addresses");
}

END_TEST

static Suite *net_suite(void)
{
    Suite *s = suite_create("net");
    TCase *tc = tcase_create("split");
    tcase_add_loop_test(tc, test_split_table, 0, sizeof(split_cases) / sizeof(split_cases[0]));
    tcase_set_timeout(tc, TCASE_TIMEOUT);
    suite_add_tcase(s, tc);

    tc = tcase_create("listen");
    tcase_add_test(tc, test_listen_ephemeral);
    tcase_add_test(tc, test_local_port_bad_fd);
    tcase_add_test(tc, test_reuseport_shares_port);
    tcase_add_test(tc, test_no_reuseport_conflicts);
    tcase_add_test(tc, test_listen_unavailable_address);
    tcase_set_timeout(tc, TCASE_TIMEOUT);
    suite_add_tcase(s, tc);

    tc = tcase_create("peer");
    tcase_add_test(tc, test_peer_name);
    tcase_add_test(tc, test_peer_name_unconnected);
    tcase_set_timeout(tc, TCASE_TIMEOUT);
    suite_add_tcase(s, tc);

    tc = tcase_create("cidr");
    tcase_add_test(tc, test_cidr_parse_and_match);
    tcase_add_loop_test(tc, test_cidr_bad, 0, sizeof(bad_cidrs) / sizeof(bad_cidrs[0]));
    tcase_add_test(tc, test_cidr_too_many);
    suite_add_tcase(s, tc);

    tc = tcase_create("clock_rss");
    tcase_add_test(tc, test_now_monotonic);
    tcase_add_test(tc, test_rss);
    tcase_set_timeout(tc, TCASE_TIMEOUT);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return check_run_suite(net_suite());
}

/*
 * The edge's link to the broker (edge/uplink.c) against a broker played by
 * the test over real TCP on 127.0.0.1 (tests/support/link_peer.h): the
 * states CONNECTING -> HELLO -> UP, the HELLO it sends, what it drops before
 * WELCOME (SUB, UNSUB, MSG), SUB/UNSUB/MSG/PING once up, uplink_poll, the
 * keepalive (a PING per tick, three quiet ticks or no WELCOME drop the
 * link, any frame keeps it), an ERR refusing one pattern against an ERR
 * that ends the link, connect failures, and the reconnect backoff: doubling
 * from reconnect-min up to reconnect-max, jittered by +-20%, and back to
 * reconnect-min only after a link stayed up for broker-ping-interval.
 *
 * The backoff checks measure real time: each wait must be at least 80% of
 * its delay (less 5 ms) and at most 120% plus 100 ms (a loaded machine).
 * The delays are chosen so that a mutation (no doubling, no cap, a reset
 * on every WELCOME, no reset) lands outside those bounds.
 */
#include "edge/uplink.h"

#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "common/link_codec.h"
#include "common/log.h"
#include "common/net.h"
#include "tests/support/check_main.h"
#include "tests/support/link_peer.h"

/* What the handlers saw. */
struct seen {
    int ups;
    int msgs;
    int batches;
    int refusals;
    char topic[64];
    char payload[64];
    uint64_t seq;
    char code[64];
    char pattern[64];
};

static struct event_base *base;
static struct link_peer peer;
static struct uplink *u;
static struct seen seen;

static void copy_view(char *dst, size_t cap, const char *p, size_t len)
{
    ck_assert_uint_lt(len, cap);
    memcpy(dst, p, len);
    dst[len] = '\0';
}

static void on_msg(void *arg, const struct link_frame *f)
{
    struct seen *s = arg;

    s->msgs++;
    s->seq = f->seq;
    copy_view(s->topic, sizeof(s->topic), f->topic.ptr, f->topic.len);
    copy_view(s->payload, sizeof(s->payload), f->payload.ptr, f->payload.len);
}

static void on_batch_end(void *arg)
{
    ((struct seen *)arg)->batches++;
}

static void on_up(void *arg)
{
    ((struct seen *)arg)->ups++;
}

static void on_refused(void *arg, const char *code, const char *pattern, size_t len)
{
    struct seen *s = arg;

    s->refusals++;
    copy_view(s->code, sizeof(s->code), code, strlen(code));
    copy_view(s->pattern, sizeof(s->pattern), pattern, len);
}

static void setup(void)
{
    memset(&seen, 0, sizeof(seen));
    base = event_base_new();
    ck_assert_ptr_nonnull(base);
    link_peer_open(&peer, base);
    u = NULL;
}

static void teardown(void)
{
    uplink_free(u);
    u = NULL;
    link_peer_close(&peer);
    event_base_free(base);
}

/* A new uplink to broker with these times (ms) and secret. */
static struct uplink *start_to(const char *broker, const char *secret, int64_t min_ms,
                               int64_t max_ms, int64_t ping_ms)
{
    struct uplink_handlers h = {on_msg, on_batch_end, on_up, on_refused, &seen};
    struct uplink_config cfg = {broker, secret, "edge-test-1", min_ms, max_ms, ping_ms, NULL, NULL};
    const char *err = "";
    struct uplink *up = uplink_new(base, &cfg, &h, &err);

    ck_assert_msg(up != NULL, "uplink_new: %s", err);
    return up;
}

static struct uplink *start(int64_t min_ms, int64_t max_ms, int64_t ping_ms)
{
    return start_to(peer.addr, "s3cret", min_ms, max_ms, ping_ms);
}

/* Runs the loop until u is in state want, for at most 5 s. */
static void wait_state(enum uplink_state want)
{
    uint64_t end = net_now_ms() + 5000;

    while (uplink_state(u) != want && net_now_ms() < end)
        link_peer_step(&peer, peer.fd);
    ck_assert_msg(uplink_state(u) == want, "state %s, want %s", uplink_state_name(uplink_state(u)),
                  uplink_state_name(want));
}

/* Accepts the uplink and brings the link up. */
static void bring_up(uint64_t max_subscriptions)
{
    link_peer_welcome(&peer, max_subscriptions);
    wait_state(UPLINK_UP);
}

/* ---------- handshake ---------- */

START_TEST(test_hello_welcome_up)
{
    static const uint8_t msg_before_welcome[] = {0x94, 0x07, 0xa1, 'x', 0x01, 0xa1, 'y'};

    u = start(50, 400, 10000);
    ck_assert_int_eq(uplink_state(u), UPLINK_CONNECTING);
    ck_assert(link_peer_accept(&peer, 5000));
    link_peer_expect(&peer, LINK_HELLO);
    ck_assert_uint_eq(peer.f.version, LINK_VERSION);
    ck_assert_int_eq(peer.f.role.len, 4);
    ck_assert_int_eq(memcmp(peer.f.role.ptr, "edge", 4), 0);
    ck_assert_int_eq(peer.f.node.len, 11);
    ck_assert_int_eq(memcmp(peer.f.node.ptr, "edge-test-1", 11), 0);
    ck_assert(peer.f.has_secret);
    ck_assert_int_eq(peer.f.secret.len, 6);
    ck_assert_int_eq(memcmp(peer.f.secret.ptr, "s3cret", 6), 0);
    ck_assert_int_eq(uplink_state(u), UPLINK_HELLO);

    /* Before WELCOME: SUB and UNSUB are dropped (the resend after WELCOME
     * states the interest), a MSG is not handed on, no pattern limit yet. */
    uplink_sub(u, "early", 5);
    uplink_unsub(u, "early", 5);
    link_peer_write_raw(&peer, msg_before_welcome, sizeof(msg_before_welcome));
    ck_assert_uint_eq(uplink_max_patterns(u), 0);
    link_encode_welcome(&peer.sb, "test-broker", 7, 1000);
    link_peer_flush(&peer);
    wait_state(UPLINK_UP);
    link_peer_sync(&peer); /* the first frame after HELLO: "early" never went out */
    ck_assert_int_eq(seen.msgs, 0);
    ck_assert_int_eq(seen.ups, 1);
    ck_assert_uint_eq(uplink_max_patterns(u), 1000);
    ck_assert_uint_eq(uplink_reconnects(u), 0);

    uplink_sub(u, "late.*.x", 6);
    link_peer_expect_pattern(&peer, LINK_SUB, "late.*");
    uplink_unsub(u, "late.*", 6);
    link_peer_expect_pattern(&peer, LINK_UNSUB, "late.*");

    /* A second WELCOME on the same link changes nothing. */
    link_encode_welcome(&peer.sb, "test-broker", 8, 5);
    link_peer_flush(&peer);
    link_peer_sync(&peer);
    ck_assert_int_eq(seen.ups, 1);
    ck_assert_uint_eq(uplink_max_patterns(u), 1000);
}

END_TEST

START_TEST(test_hello_without_secret)
{
    u = start_to(peer.addr, NULL, 50, 400, 10000);
    ck_assert(link_peer_accept(&peer, 5000));
    link_peer_expect(&peer, LINK_HELLO);
    ck_assert(!peer.f.has_secret);
}

END_TEST

START_TEST(test_bad_broker_address)
{
    struct uplink_handlers h = {on_msg, on_batch_end, on_up, on_refused, &seen};
    struct uplink_config cfg = {"no-port-here", NULL, "n", 50, 400, 1000, NULL, NULL};
    const char *err = "";

    ck_assert_ptr_null(uplink_new(base, &cfg, &h, &err));
    ck_assert_str_eq(err, "broker must be host:port");
    uplink_free(NULL);
    ck_assert_str_eq(uplink_state_name(UPLINK_DOWN), "down");
    ck_assert_str_eq(uplink_state_name(UPLINK_CONNECTING), "connecting");
    ck_assert_str_eq(uplink_state_name(UPLINK_HELLO), "hello");
    ck_assert_str_eq(uplink_state_name(UPLINK_UP), "up");
}

END_TEST

/* ---------- once up ---------- */

START_TEST(test_msg_ping_and_batches)
{
    u = start(50, 400, 10000);
    bring_up(0);
    ck_assert_uint_eq(uplink_max_patterns(u), 0);
    link_encode_msg(&peer.sb, "a.b", 3, 9, "hi", 2);
    link_encode_msg(&peer.sb, "a.c", 3, 10, "yo", 2);
    link_peer_flush(&peer);
    link_peer_sync(&peer);
    ck_assert_int_eq(seen.msgs, 2);
    ck_assert_str_eq(seen.topic, "a.c");
    ck_assert_str_eq(seen.payload, "yo");
    ck_assert_uint_eq(seen.seq, 10);
    ck_assert_int_ge(seen.batches, 1);
    ck_assert_int_le(seen.batches, 2);

    peer.token = 41;
    link_peer_sync(&peer); /* PING 42, PONG 42 */
    ck_assert_uint_eq(peer.f.token, 42);
    ck_assert_int_eq(uplink_state(u), UPLINK_UP);
}

END_TEST

/* uplink_poll reads what is waiting without the loop, and does not end the batch. */
START_TEST(test_poll_reads_without_loop)
{
    u = start(50, 400, 10000);
    ck_assert(link_peer_accept(&peer, 5000));
    link_peer_expect(&peer, LINK_HELLO);
    /* Not up yet: nothing is read, even with bytes waiting. */
    link_encode_msg(&peer.sb, "early", 5, 1, "x", 1);
    link_peer_flush(&peer);
    usleep(10000);
    ck_assert_uint_eq(uplink_poll(u), 0);
    link_encode_welcome(&peer.sb, "test-broker", 1, 0);
    link_peer_flush(&peer);
    wait_state(UPLINK_UP);
    ck_assert_int_eq(seen.msgs, 0); /* the loop read it, before WELCOME: dropped */
    int batches = seen.batches;

    link_encode_msg(&peer.sb, "t", 1, 5, "polled", 6);
    link_peer_flush(&peer);
    size_t n = 0;
    for (int i = 0; i < 1000 && n == 0; i++) {
        n = uplink_poll(u);
        if (n == 0)
            usleep(1000);
    }
    ck_assert_uint_gt(n, 0);
    ck_assert_int_eq(seen.msgs, 1);
    ck_assert_str_eq(seen.payload, "polled");
    ck_assert_int_eq(seen.batches, batches);
    ck_assert_uint_eq(uplink_poll(u), 0); /* nothing more */
    ck_assert_uint_eq(uplink_poll(NULL), 0);
}

END_TEST

/* ---------- keepalive ---------- */

START_TEST(test_three_quiet_ticks_drop_the_link)
{
    u = start(50, 400, 100);
    bring_up(0);
    /* One PING per tick, the token counting up; after three unanswered, EOF. */
    for (uint64_t token = 1; token <= 3; token++) {
        link_peer_expect(&peer, LINK_PING);
        ck_assert_uint_eq(peer.f.token, token);
    }
    ck_assert_int_eq(link_peer_read(&peer, 1000), -1);
    ck_assert_int_ne(uplink_state(u), UPLINK_UP);
    /* And it comes back. */
    bring_up(0);
    ck_assert_uint_eq(uplink_reconnects(u), 1);
    ck_assert_int_eq(seen.ups, 2);
}

END_TEST

START_TEST(test_any_frame_keeps_the_link)
{
    int pings = 0;

    u = start(50, 400, 100);
    bring_up(0);
    /* Answer each PING with a MSG, not a PONG: any frame proves the broker alive. */
    for (uint64_t end = net_now_ms() + 900; net_now_ms() < end;) {
        int rc = link_peer_read(&peer, 50);

        ck_assert_int_ge(rc, 0);
        if (rc == 1) {
            ck_assert_int_eq(peer.f.type, LINK_PING);
            pings++;
            link_encode_msg(&peer.sb, "t", 1, (uint64_t)pings, "", 0);
            link_peer_flush(&peer);
        }
    }
    ck_assert_int_ge(pings, 6);
    ck_assert_int_eq(uplink_state(u), UPLINK_UP);
    ck_assert_uint_eq(uplink_reconnects(u), 0);
}

END_TEST

START_TEST(test_no_welcome_drops_the_link)
{
    u = start(50, 400, 100);
    ck_assert(link_peer_accept(&peer, 5000));
    link_peer_expect(&peer, LINK_HELLO);
    /* No PING before WELCOME; the link is closed after three ticks. */
    ck_assert_int_eq(link_peer_read(&peer, 2000), -1);
    ck_assert_uint_ge(net_now_ms() - peer.accepted_ms, 200);
    ck_assert_int_eq(seen.ups, 0);
}

END_TEST

/* ---------- ERR ---------- */

START_TEST(test_refusal_keeps_the_link)
{
    u = start(50, 400, 10000);
    bring_up(0);
    link_encode_err_topic(&peer.sb, "too_many_subscriptions", "limit", "a.*", 3);
    link_peer_flush(&peer);
    link_peer_sync(&peer); /* handled, and the link is still there */
    ck_assert_int_eq(seen.refusals, 1);
    ck_assert_str_eq(seen.code, "too_many_subscriptions");
    ck_assert_str_eq(seen.pattern, "a.*");
    link_encode_err_topic(&peer.sb, "bad_topic", "empty token", "x..y", 4);
    link_peer_flush(&peer);
    link_peer_sync(&peer);
    ck_assert_int_eq(seen.refusals, 2);
    ck_assert_str_eq(seen.code, "bad_topic");
    ck_assert_str_eq(seen.pattern, "x..y");
    ck_assert_int_eq(uplink_state(u), UPLINK_UP);
    ck_assert_uint_eq(uplink_reconnects(u), 0);
    /* Still working. */
    uplink_sub(u, "b", 1);
    link_peer_expect_pattern(&peer, LINK_SUB, "b");
}

END_TEST

/* Frames after which the broker is closing the link: the edge closes it too. */
static const struct {
    const char *what;
    const char *code;
    const char *topic; /* NULL: ERR without one */
    bool malformed;
} drops[] = {
    {"ERR without a pattern", "too_many_subscriptions", NULL, false},
    {"ERR with an empty pattern", "too_many_subscriptions", "", false},
    {"ERR of another kind naming a pattern", "auth", "a.b", false},
    {"ERR of another kind", "oversize", NULL, false},
    {"a malformed frame", NULL, NULL, true},
};

START_TEST(test_err_drops_the_link)
{
    static const uint8_t map[] = {0x81, 0x01, 0x02};

    u = start(50, 400, 10000);
    bring_up(0);
    if (drops[_i].malformed)
        link_peer_write_raw(&peer, map, sizeof(map));
    else if (drops[_i].topic)
        link_encode_err_topic(&peer.sb, drops[_i].code, "text", drops[_i].topic,
                              strlen(drops[_i].topic));
    else
        link_encode_err(&peer.sb, drops[_i].code, "text");
    link_peer_flush(&peer);
    ck_assert_msg(link_peer_wait_eof(&peer, 2000), "%s: the link stayed", drops[_i].what);
    ck_assert_int_eq(seen.refusals, 0);
    ck_assert_int_ne(uplink_state(u), UPLINK_UP);
    /* Retried after the backoff. */
    bring_up(0);
    ck_assert_uint_eq(uplink_reconnects(u), 1);
}

END_TEST

/* ---------- connect failures and backoff ---------- */

START_TEST(test_connect_refused_retries)
{
    char addr[32];
    const char *err = "";
    int fd = net_listen("127.0.0.1", 0, false, 1, &err);

    ck_assert_int_ge(fd, 0);
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", net_local_port(fd));
    close(fd); /* nothing listens there now: every connect is refused */
    u = start_to(addr, NULL, 20, 40, 10000);
    link_peer_run(&peer, 300);
    ck_assert_int_ne(uplink_state(u), UPLINK_UP);
    ck_assert_uint_ge(uplink_reconnects(u), 4);
    ck_assert_uint_le(uplink_reconnects(u), 300 / 16 + 1);
    ck_assert_int_eq(seen.ups, 0);
}

END_TEST

/* Checks that the wait since since_ms was delay_ms +-20%, with slack for a loaded machine. */
static void assert_waited(uint64_t since_ms, int64_t delay_ms, int attempt)
{
    int64_t waited = (int64_t)(peer.accepted_ms - since_ms);

    ck_assert_msg(waited >= delay_ms * 8 / 10 - 5 && waited <= delay_ms * 12 / 10 + 100,
                  "attempt %d: waited %lld ms, want %lld ms +-20%%", attempt, (long long)waited,
                  (long long)delay_ms);
}

/*
 * A broker that accepts and closes at once: the waits double from
 * reconnect-min (50) to reconnect-max (200) and stay there. Without the
 * cap the fifth wait would be 800 ms; without doubling the second 50 ms.
 */
START_TEST(test_backoff_doubles_up_to_max)
{
    static const int64_t want[] = {50, 100, 200, 200, 200};

    u = start(50, 200, 10000);
    ck_assert(link_peer_accept(&peer, 5000));
    for (int i = 0; i < 5; i++) {
        uint64_t dropped;

        link_peer_expect(&peer, LINK_HELLO);
        link_peer_drop(&peer);
        dropped = net_now_ms();
        ck_assert(link_peer_accept(&peer, 5000));
        assert_waited(dropped, want[i], i + 1);
        ck_assert_uint_eq(uplink_reconnects(u), (uint64_t)i + 1);
    }
    ck_assert_int_eq(seen.ups, 0);
}

END_TEST

/*
 * A broker that welcomes and drops the link at once is retried at the
 * doubling delay (50, 100, 200 ms), not hammered; a link that stayed up
 * for broker-ping-interval (300 ms) resets the delay: the next wait is 50
 * ms, not 400.
 */
START_TEST(test_backoff_resets_only_after_a_stable_link)
{
    static const int64_t want[] = {50, 100, 200};
    uint64_t dropped;

    u = start(50, 1600, 300);
    bring_up(0);
    for (int i = 0; i < 3; i++) {
        link_peer_drop(&peer);
        dropped = net_now_ms();
        bring_up(0);
        assert_waited(dropped, want[i], i + 1);
    }
    /* Up for longer than the ping interval this time. */
    link_peer_run(&peer, 400);
    ck_assert_int_eq(uplink_state(u), UPLINK_UP);
    link_peer_drop(&peer);
    dropped = net_now_ms();
    bring_up(0);
    assert_waited(dropped, 50, 4);
    ck_assert_int_eq(seen.ups, 5);
    ck_assert_uint_eq(uplink_reconnects(u), 4);
}

END_TEST

static Suite *uplink_suite(void)
{
    Suite *s = suite_create("uplink");
    TCase *tc = tcase_create("handshake");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_hello_welcome_up);
    tcase_add_test(tc, test_hello_without_secret);
    tcase_add_test(tc, test_bad_broker_address);
    suite_add_tcase(s, tc);

    tc = tcase_create("up");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_msg_ping_and_batches);
    tcase_add_test(tc, test_poll_reads_without_loop);
    suite_add_tcase(s, tc);

    tc = tcase_create("keepalive");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_three_quiet_ticks_drop_the_link);
    tcase_add_test(tc, test_any_frame_keeps_the_link);
    tcase_add_test(tc, test_no_welcome_drops_the_link);
    suite_add_tcase(s, tc);

    tc = tcase_create("err");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_refusal_keeps_the_link);
    tcase_add_loop_test(tc, test_err_drops_the_link, 0, (int)(sizeof(drops) / sizeof(drops[0])));
    suite_add_tcase(s, tc);

    tc = tcase_create("backoff");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_connect_refused_retries);
    tcase_add_test(tc, test_backoff_doubles_up_to_max);
    tcase_add_test(tc, test_backoff_resets_only_after_a_stable_link);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    log_init("check_uplink", LOG_LEVEL_ERROR);
    return check_run_suite(uplink_suite());
}

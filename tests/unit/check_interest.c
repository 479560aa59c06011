/*
 * What a worker asks the broker for (edge/interest.c), as the broker sees
 * it: a real uplink (edge/uplink.c) to a broker the test plays over
 * loopback TCP (tests/support/link_peer.h), and a worker trie driven the
 * way the worker drives it - interest_gained when trie_subscribe reports
 * the pattern's first subscriber, interest_lost when its last one leaves.
 *
 * Checked: the exact SUB and UNSUB frames (len bytes of the pattern, not up
 * to a NUL); that over random subscribes and unsubscribes of many
 * subscribers the broker gets one SUB per 0 -> 1 and one UNSUB per 1 -> 0,
 * never a repeat, so its view is always the union of the trie's patterns;
 * that after a reconnect interest_resend sends each distinct pattern once
 * however many subscribers hold it (forty on one pattern, nested and
 * wildcard patterns) and returns that count; that interest gained or lost
 * while the link is down or not yet welcomed is not queued but stated by
 * that resend; and that no uplink (NULL) is fine.
 */
#include "edge/interest.h"

#include <check.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "common/link_codec.h"
#include "common/log.h"
#include "common/net.h"
#include "common/trie.h"
#include "edge/uplink.h"
#include "tests/support/check_main.h"
#include "tests/support/link_peer.h"

static struct event_base *base;
static struct link_peer peer;
static struct uplink *u;
static struct trie *trie;
static size_t resent;  /* interest_resend's result at the last WELCOME */
static int ups;        /* WELCOMEs seen */
static char subs[256]; /* fake subscribers: the trie never dereferences them */

#define SUBSCRIBER(i) ((void *)&subs[i])

static void on_msg(void *arg, const struct link_frame *f)
{
    (void)arg;
    (void)f;
}

/* What the worker does on WELCOME. */
static void on_up(void *arg)
{
    (void)arg;
    ups++;
    resent = interest_resend(trie, u);
}

static void setup(void)
{
    struct uplink_handlers h = {on_msg, NULL, on_up, NULL, NULL};
    struct uplink_config cfg = {NULL, NULL, "edge-test-1", 20, 40, 10000, NULL, NULL};
    const char *err = "";

    base = event_base_new();
    ck_assert_ptr_nonnull(base);
    link_peer_open(&peer, base);
    trie = trie_new();
    resent = 0;
    ups = 0;
    cfg.broker = peer.addr;
    u = uplink_new(base, &cfg, &h, &err);
    ck_assert_msg(u != NULL, "uplink_new: %s", err);
}

static void teardown(void)
{
    uplink_free(u);
    u = NULL;
    trie_free(trie);
    trie = NULL;
    link_peer_close(&peer);
    event_base_free(base);
}

/* Answers the HELLO already read with WELCOME and waits until the uplink is up (and has resent). */
static void welcome(void)
{
    int before = ups;
    uint64_t end = net_now_ms() + 5000;

    link_encode_welcome(&peer.sb, "test-broker", 1, 0);
    link_peer_flush(&peer);
    while (ups == before && net_now_ms() < end)
        link_peer_step(&peer, peer.fd);
    ck_assert_int_eq(uplink_state(u), UPLINK_UP);
}

/* Accepts the uplink, reads its HELLO, welcomes it. */
static void bring_up(void)
{
    ck_assert_msg(link_peer_accept(&peer, 5000), "the uplink did not connect");
    link_peer_expect(&peer, LINK_HELLO);
    welcome();
}

/* Drops the link and waits until the uplink has noticed. */
static void take_down(void)
{
    uint64_t end = net_now_ms() + 5000;

    link_peer_drop(&peer);
    while (uplink_state(u) == UPLINK_UP && net_now_ms() < end)
        link_peer_step(&peer, -1);
    ck_assert_int_ne(uplink_state(u), UPLINK_UP);
}

/* The worker's subscribe and unsubscribe: SUB on the first subscriber, UNSUB on the last. */
static void subscribe(const char *pattern, int who)
{
    bool first = false;

    trie_subscribe(trie, pattern, strlen(pattern), SUBSCRIBER(who), &first, NULL);
    if (first)
        interest_gained(u, pattern, strlen(pattern));
}

static void unsubscribe(const char *pattern, int who)
{
    bool last = false;

    if (trie_unsubscribe(trie, pattern, strlen(pattern), SUBSCRIBER(who), &last) == 0 && last)
        interest_lost(u, pattern, strlen(pattern));
}

/* The broker's view of one link: the patterns it was asked for. */
#define VIEW_MAX 64

struct view {
    char pattern[VIEW_MAX][32];
    int sent[VIEW_MAX]; /* SUB frames for it, since the last reset */
    bool held[VIEW_MAX];
    size_t n;
};

static int view_find(struct view *v, const struct link_str *p)
{
    for (size_t i = 0; i < v->n; i++) {
        if (strlen(v->pattern[i]) == p->len && memcmp(v->pattern[i], p->ptr, p->len) == 0)
            return (int)i;
    }
    ck_assert_uint_lt(v->n, VIEW_MAX);
    ck_assert_uint_lt(p->len, sizeof(v->pattern[0]));
    memcpy(v->pattern[v->n], p->ptr, p->len);
    v->pattern[v->n][p->len] = '\0';
    return (int)v->n++;
}

/*
 * Applies every SUB and UNSUB the uplink sent before it answered a PING
 * (link_peer.h: no quiet period to wait out). A SUB for a pattern the
 * broker holds, or an UNSUB for one it does not, is a failure: each 0 -> 1
 * and 1 -> 0 must be told exactly once.
 */
static void view_read(struct view *v)
{
    link_peer_ping(&peer);
    for (;;) {
        int i;

        link_peer_next(&peer);
        if (peer.f.type == LINK_PONG && peer.f.token == peer.token)
            return;
        ck_assert_msg(peer.f.type == LINK_SUB || peer.f.type == LINK_UNSUB, "got %s",
                      link_type_name(peer.f.type));
        i = view_find(v, &peer.f.topic);
        if (peer.f.type == LINK_SUB) {
            ck_assert_msg(!v->held[i], "SUB %s twice", v->pattern[i]);
            v->held[i] = true;
            v->sent[i]++;
        } else {
            ck_assert_msg(v->held[i], "UNSUB %s, which the broker does not hold", v->pattern[i]);
            v->held[i] = false;
        }
    }
}

/* Checks that the broker holds exactly the patterns that have a subscriber in the trie. */
static void view_check(struct view *v, const char *const *patterns, size_t npatterns)
{
    for (size_t p = 0; p < npatterns; p++) {
        struct link_str s = {patterns[p], strlen(patterns[p])};
        int i = view_find(v, &s);
        bool live = trie_find(trie, patterns[p], s.len) != NULL;

        ck_assert_msg(v->held[i] == live, "pattern %s: broker %s, trie %s", patterns[p],
                      v->held[i] ? "holds it" : "does not", live ? "has subscribers" : "none");
    }
}

/* ---------- frames ---------- */

START_TEST(test_gained_and_lost_send_sub_and_unsub)
{
    bring_up();
    link_peer_sync(&peer); /* an empty trie resends nothing */
    ck_assert_uint_eq(resent, 0);
    interest_gained(u, "a.b.c", 3); /* len bytes: "a.b" */
    link_peer_expect_pattern(&peer, LINK_SUB, "a.b");
    interest_lost(u, "x.*.q", 3);
    link_peer_expect_pattern(&peer, LINK_UNSUB, "x.*");
    link_peer_sync(&peer);
}

END_TEST

START_TEST(test_no_uplink)
{
    trie_subscribe(trie, "a.b", 3, SUBSCRIBER(1), NULL, NULL);
    interest_gained(NULL, "a.b", 3);
    interest_lost(NULL, "a.b", 3);
    ck_assert_uint_eq(interest_resend(trie, NULL), 0);
}

END_TEST

/* ---------- reference counting ---------- */

static const char *const patterns[] = {
    "news", "news.*", "news.>", ">", "*", "user.1", "user.*", "user.1.mail", "a.b.c", "*.b.*",
};

#define NPATTERNS (sizeof(patterns) / sizeof(patterns[0]))
#define NWHO      12

START_TEST(test_broker_holds_the_union)
{
    struct view *v = calloc(1, sizeof(*v));

    bring_up();
    srand(2024);
    for (int round = 0; round < 40; round++) {
        for (int op = 0; op < 25; op++) {
            const char *p = patterns[(size_t)rand() % NPATTERNS];
            int who = rand() % NWHO;

            if (rand() % 3)
                subscribe(p, who);
            else
                unsubscribe(p, who);
        }
        view_read(v);
        view_check(v, patterns, NPATTERNS);
    }
    /* Everyone leaves: the broker is told to drop every pattern. */
    for (size_t p = 0; p < NPATTERNS; p++) {
        for (int who = 0; who < NWHO; who++)
            unsubscribe(patterns[p], who);
    }
    view_read(v);
    ck_assert_uint_eq(trie_pattern_count(trie), 0);
    view_check(v, patterns, NPATTERNS);
    free(v);
}

END_TEST

/* ---------- resend ---------- */

START_TEST(test_resend_sends_each_pattern_once)
{
    static const char *const held[] = {"solo", "crowd", "a", "a.b", "a.>", "*.b", ">"};
    struct view *v = calloc(1, sizeof(*v));
    size_t nheld = sizeof(held) / sizeof(held[0]);

    bring_up();
    subscribe("solo", 0);
    for (int who = 0; who < 40; who++)
        subscribe("crowd", who);
    for (size_t p = 2; p < nheld; p++) {
        subscribe(held[p], 1);
        subscribe(held[p], 2);
    }
    subscribe("gone", 3);
    unsubscribe("gone", 3);
    view_read(v);

    /* The broker restarts: it knows nothing, the whole interest is resent. */
    take_down();
    memset(v, 0, sizeof(*v));
    bring_up();
    view_read(v);
    ck_assert_uint_eq(resent, nheld);
    for (size_t p = 0; p < nheld; p++) {
        struct link_str s = {held[p], strlen(held[p])};
        int i = view_find(v, &s);

        ck_assert_msg(v->sent[i] == 1, "%s sent %d times", held[p], v->sent[i]);
    }
    ck_assert_uint_eq(v->n, nheld); /* nothing else, "gone" included */
    free(v);
}

END_TEST

/*
 * Interest gained or lost while the link is down (no socket) or not yet up
 * (HELLO sent, no WELCOME) is not sent nor queued: the resend after WELCOME
 * states it. A queue would repeat a SUB or UNSUB a pattern the broker never
 * held.
 */
START_TEST(test_interest_while_down_is_resent)
{
    struct view *v = calloc(1, sizeof(*v));
    static const char *const all[] = {"kept", "gone", "gone2", "late", "later"};

    bring_up();
    subscribe("kept", 1);
    subscribe("gone", 1);
    subscribe("gone2", 1);
    view_read(v);
    take_down();
    subscribe("late", 2);
    unsubscribe("gone", 1);
    ck_assert(link_peer_accept(&peer, 5000));
    link_peer_expect(&peer, LINK_HELLO);
    ck_assert_int_eq(uplink_state(u), UPLINK_HELLO);
    subscribe("later", 2);
    unsubscribe("gone2", 1);
    memset(v, 0, sizeof(*v));
    welcome();
    view_read(v);
    ck_assert_uint_eq(resent, 3);
    view_check(v, all, 5);
    free(v);
}

END_TEST

static Suite *interest_suite(void)
{
    Suite *s = suite_create("interest");
    TCase *tc = tcase_create("frames");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_gained_and_lost_send_sub_and_unsub);
    tcase_add_test(tc, test_no_uplink);
    suite_add_tcase(s, tc);

    tc = tcase_create("refcount");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_broker_holds_the_union);
    suite_add_tcase(s, tc);

    tc = tcase_create("resend");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_resend_sends_each_pattern_once);
    tcase_add_test(tc, test_interest_while_down_is_resent);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    log_init("check_interest", LOG_LEVEL_ERROR);
    return check_run_suite(interest_suite());
}

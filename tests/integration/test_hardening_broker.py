"""Broker hardening (docs/architecture.md §4.7; attacks F1, F4, F5, F6a, F11, F12): one client must
never crash the broker, grow its memory without bound, or slow it down for
everyone else.

  1. A link subscribed to its own topic that publishes past its output limit
     is closed as a slow consumer, and the broker lives on (before: a
     heap-use-after-free of the publisher's freed decode buffer).
  4. A link that floods PINGs and never reads is closed when its PONGs pass
     its output limit (before: the broker queued PONGs without bound).
  5. HELLO's role "edge" alone does not buy edge-output-limit: a credential
     (requirepass, edge-secret), edge-allow, or a reservation from
     edge-output-limit-total does; the grant is logged.
  6a. The topic -> sequence map is bounded by max-topics (least recently
      published forgotten first) and topic-ttl; a forgotten topic restarts
      at seq 1.
  11. UNSUBSCRIBE / PUNSUBSCRIBE / link UNSUB of names not held after 100,000
      subscriptions cost O(1) each (before: a scan of every subscription).
  12. AUTH brute force: the third failure closes a RESP connection, failures
      are delayed and logged at a rate; an HTTP 401 closes its connection.

Each test drives a real herald-broker, asserts what a client sees (replies,
closes, /metrics, log lines) and ends with a clean exit (0, no sanitizer
report)."""
import json
import os
import socket
import struct
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "support"))
from harness import (Broker, LinkClient, RespClient, RespError, closed_within, drops, http,
                     mp_pack, resp_cmd, wait_until, ERR, HELLO, MSG, PING, PONG, PUB, SUB, UNSUB)
from harness import broker_sample as m


def log_fields(line):
    """key=value pairs of a log line."""
    out = {}
    for tok in line.split():
        if "=" in tok:
            k, v = tok.split("=", 1)
            out[k] = v
    return out


def hello_fields(b, node, timeout=5):
    """The fields of the broker's event=link_hello line for the link whose HELLO named node."""
    found = []

    def look():
        for line in list(b.lines):
            if "event=link_hello" in line:
                f = log_fields(line)
                if f.get("node") == node:
                    found.append(f)
                    return True
        return False

    assert wait_until(look, timeout), "no event=link_hello line for node=%s; log:\n%s" % (
        node, b.log()[-3000:])
    return found[0]


def link_hello(port, role, node, secret=None, rcvbuf=None):
    """A LinkClient whose HELLO names node (so its log line can be found)."""
    return LinkClient(port, secret=secret, role=role, rcvbuf=rcvbuf, node=node)


def abort(sock):
    """Closes sock with a reset (SO_LINGER 0): the broker stops reading what
    it has not read yet."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
    except OSError:
        pass


def send_async(sock, data):
    """Sends data from a thread (the peer may stop reading for a while, or
    close); returns the thread."""
    def run():
        try:
            sock.sendall(data)
        except OSError:
            pass
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def drain_msgs(link, n, timeout=20):
    """Reads n MSG frames from link; returns them."""
    out = []
    deadline = time.time() + timeout
    while len(out) < n:
        f = link.frame(max(0.5, deadline - time.time()))
        assert f[0] == MSG, f[:2]
        out.append(f)
    return out


# ------------------------------------------------------------------- F1


class SelfPublishUseAfterFree(unittest.TestCase):
    def test_issue10_f1_self_publish_past_output_limit_does_not_crash(self):
        """A link subscribed to self.t publishes events larger than its
        output limit to self.t: each such link is closed as a slow consumer
        during its own publish, the broker lives on (today: ASan
        heap-use-after-free: the router reads the topic from the closed
        link's freed decoder), and another subscriber of self.t gets every
        event, in sequence."""
        b = Broker("--client-output-limit", "64kb", "--edge-output-limit", "16mb",
                   "--requirepass", "s3cret")
        try:
            # The other subscriber of self.t: an edge (requirepass + role
            # "edge": edge-output-limit), so the 100 kB events fit its limit.
            victim = LinkClient(b.link_port, secret="s3cret", role="edge")
            victim.sub("self.>")
            victim.sync()
            # A RESP pattern subscriber: the router walks the RESP trie with
            # the topic after the link deliveries.
            r = RespClient(b.resp_port)
            self.assertEqual(r.call("AUTH", "s3cret"), b"OK")
            self.assertEqual(r.call("PSUBSCRIBE", "self.*.x"), [b"psubscribe", b"self.*.x", 1])
            payload = b"x" * 100000
            for rnd in range(3):
                me = LinkClient(b.link_port, secret="s3cret", role="cli", rcvbuf=4096)
                me.sub("self.t")
                me.sync()
                # Round 1 asks for a PUBACK, round 2 does not, round 3 sends
                # the PUB behind a PING in one write.
                if rnd == 0:
                    me.send([PUB, "self.t", payload, 1])
                elif rnd == 1:
                    me.send([PUB, "self.t", payload, None])
                else:
                    me.sock.sendall(mp_pack([PING, 3]) + mp_pack([PUB, "self.t", payload, 9]))
                self.assertTrue(closed_within(me.sock, 10),
                                "round %d: self-publishing link not closed" % rnd)
                me.close()
                self.assertTrue(b.alive(), "broker died in round %d:\n%s" % (rnd, b.log()[-6000:]))
                self.assertEqual(m(b, "herald_slow_consumers_total"), rnd + 1)
                self.assertEqual(drops(b, "slow_consumer"), rnd + 1)
                f = victim.frame()
                self.assertEqual((f[0], f[1], f[2], len(f[3])), (MSG, "self.t", rnd + 1, len(payload)))
            # The broker still routes to everyone.
            pub = LinkClient(b.link_port, secret="s3cret")
            ack = pub.publish("self.t", b"after", req_id=42)
            self.assertEqual(ack[2:], [1, 4])
            self.assertEqual(victim.frame()[1:4], ["self.t", 4, b"after"])
            self.assertEqual(pub.publish("self.a.x", b"pm", req_id=43)[2], 2)
            self.assertEqual(r.reply(), [b"pmessage", b"self.*.x", b"self.a.x", b"pm"])
            self.assertEqual(victim.frame()[1:4], ["self.a.x", 1, b"pm"])
            pub.close()
            victim.close()
            r.close()
        finally:
            b.check_clean_exit(self)


# ------------------------------------------------------------------- F4


class PingFlood(unittest.TestCase):
    def test_issue10_f4_ping_flood_past_output_limit_closes_link(self):
        """A link that sends up to 16 MB of PINGs and never reads is closed
        once its PONGs pass client-output-limit (slow consumer) and the
        flood stops there (today: PING is exempt from the read pause and
        every PONG is queued: the link stays open and RSS grows with the
        flood, +40 MB for 16 MB sent with a 16 MB ASan quarantine, +340 MB
        for 24 MB with the default one). The RSS bound is a generous
        backstop; the close and the counters are the assertion."""
        asan = os.environ.get("ASAN_OPTIONS", "detect_leaks=1") + ":quarantine_size_mb=16"
        b = Broker("--client-output-limit", "256kb", env={"ASAN_OPTIONS": asan})
        try:
            by = LinkClient(b.link_port)
            by.sub("by.stander")
            by.sync()
            rss0 = m(b, "herald_rss_bytes")
            atk = LinkClient(b.link_port, rcvbuf=4096)
            chunk = mp_pack([PING, 7]) * 20000  # 60 kB of PINGs per write
            sent, cut = 0, False
            atk.sock.settimeout(10)
            deadline = time.time() + 60
            while sent < 16 * 1000 * 1000 and time.time() < deadline:
                try:
                    atk.sock.sendall(chunk)
                except (BrokenPipeError, ConnectionResetError):
                    cut = True
                    break
                except socket.timeout:
                    break  # the broker stopped reading: it may be closing the link
                sent += len(chunk)
            self.assertTrue(wait_until(lambda: drops(b, "slow_consumer") >= 1, 5),
                            "PING flood of %d bytes never closed the link (cut=%s); "
                            "herald_rss_bytes %d -> %d"
                            % (sent, cut, rss0, m(b, "herald_rss_bytes")))
            self.assertEqual(drops(b, "slow_consumer"), 1)
            self.assertEqual(m(b, "herald_slow_consumers_total"), 1)
            self.assertTrue(closed_within(atk.sock, 10, max_bytes=16 << 20),
                            "flooding link not closed")
            atk.close()
            grown = m(b, "herald_rss_bytes") - rss0
            self.assertLess(grown, 64 << 20, "RSS grew by %d bytes" % grown)
            by.sync()
            pub = LinkClient(b.link_port)
            self.assertEqual(pub.publish("by.stander", b"ok")[2], 1)
            self.assertEqual(by.frame()[3], b"ok")
            pub.close()
            by.close()
        finally:
            b.check_clean_exit(self)


# ------------------------------------------------------------------- F5


EDGE_LIMIT = 64 << 20
CLIENT_LIMIT = 256 << 10


def flood_until_cut(b, pub, topic, cuts, max_events=512, size=16384):
    """Publishes size-byte events (each acknowledged) to topic until
    herald_slow_consumers_total reaches cuts or max_events are sent; returns
    the number published."""
    payload = b"p" * size
    for i in range(max_events):
        pub.publish(topic, payload, req_id=i)
        if i % 16 == 15 and m(b, "herald_slow_consumers_total") >= cuts:
            return i + 1
    return max_events


class EdgeRoleByCredential(unittest.TestCase):
    def check_grant(self, b, node, limit, grant):
        f = hello_fields(b, node)
        self.assertEqual(f.get("role"), "edge", f)
        self.assertEqual((f.get("output_limit"), f.get("grant")), (str(limit), grant),
                         "link_hello fields for node=%s: %r" % (node, f))

    def test_issue10_f5_edge_role_claim_alone_is_capped_by_budget(self):
        """Directives today's broker knows, default edge-output-limit-total
        (1gb): with edge-output-limit 512mb only two uncredentialed "edge"
        claims get it (grant=budget); the third gets client-output-limit
        (grant=none) and is cut off under a backlog that the first two hold.
        Closing one releases its reservation for the next. (Today every
        claim gets 512mb: none is cut.)"""
        big = 512 << 20
        b = Broker("--client-output-limit", "256kb", "--edge-output-limit", "512mb")
        edges = []
        try:
            for n in ("e1", "e2", "e3"):
                e = link_hello(b.link_port, "edge", n, rcvbuf=4096)
                e.sub("burst.>")
                e.sync()
                edges.append(e)
            pub = LinkClient(b.link_port)
            n = flood_until_cut(b, pub, "burst.x", 1)
            self.assertEqual(m(b, "herald_slow_consumers_total"), 1,
                             "after %d events of 16 kB, no role-edge claim was cut off at "
                             "client-output-limit: every claim got edge-output-limit" % n)
            self.assertTrue(edges[2].closed_by_server(10), "the third edge claim was not cut off")
            for e in edges[:2]:
                msgs = drain_msgs(e, n)
                self.assertEqual([f[2] for f in msgs], list(range(1, n + 1)))
            self.check_grant(b, "e1", big, "budget")
            self.check_grant(b, "e2", big, "budget")
            self.check_grant(b, "e3", CLIENT_LIMIT, "none")
            # The reservation comes back when a link closes.
            conn = hello_fields(b, "e1")["conn"]
            edges[0].close()
            self.assertTrue(b.wait_log("event=link_close conn=%s " % conn, 5))
            e4 = link_hello(b.link_port, "edge", "e4")
            self.check_grant(b, "e4", big, "budget")
            e5 = link_hello(b.link_port, "edge", "e5")
            self.check_grant(b, "e5", CLIENT_LIMIT, "none")
            for c in (e4, e5, pub, edges[1], edges[2]):
                c.close()
        finally:
            b.check_clean_exit(self)

    def test_issue10_f5_edge_output_limit_total_zero(self):
        """edge-output-limit-total 0: an "edge" claim without credential gets
        client-output-limit and is cut off like any subscriber."""
        b = Broker("--client-output-limit", "256kb", "--edge-output-limit", "64mb",
                   "--edge-output-limit-total", "0")
        try:
            e = link_hello(b.link_port, "edge", "claim", rcvbuf=4096)
            e.sub("burst.>")
            e.sync()
            pub = LinkClient(b.link_port)
            n = flood_until_cut(b, pub, "burst.x", 1)
            self.assertEqual(m(b, "herald_slow_consumers_total"), 1,
                             "an uncredentialed edge claim held %d events of 16 kB" % n)
            self.assertTrue(e.closed_by_server(10))
            self.check_grant(b, "claim", CLIENT_LIMIT, "none")
            pub.close()
        finally:
            b.check_clean_exit(self)

    def test_issue10_f5_requirepass_grants_edge_limit_without_edge_secret(self):
        """requirepass set, edge-secret unset, budget 0: role "edge" with the
        valid requirepass gets edge-output-limit (grant=secret) and holds a
        backlog that cuts a role "cli" link with the same secret."""
        b = Broker("--client-output-limit", "256kb", "--edge-output-limit", "64mb",
                   "--edge-output-limit-total", "0", "--requirepass", "s3cret")
        try:
            edge = link_hello(b.link_port, "edge", "real-edge", secret="s3cret", rcvbuf=4096)
            cli = link_hello(b.link_port, "cli", "a-cli", secret="s3cret", rcvbuf=4096)
            for c in (edge, cli):
                c.sub("burst.>")
                c.sync()
            pub = LinkClient(b.link_port, secret="s3cret")
            n = flood_until_cut(b, pub, "burst.x", 1)
            self.assertEqual(m(b, "herald_slow_consumers_total"), 1)
            self.assertTrue(cli.closed_by_server(10))
            self.assertEqual(len(drain_msgs(edge, n)), n)
            self.check_grant(b, "real-edge", EDGE_LIMIT, "secret")
            pub.close()
            edge.close()
        finally:
            b.check_clean_exit(self)

    def test_issue10_f5_edge_secret_authenticates_and_grants(self):
        """edge-secret set: a HELLO carrying it is authenticated (it is not
        requirepass) and gets edge-output-limit (grant=secret); role "edge"
        with only requirepass is authenticated but gets client-output-limit
        (budget 0) and is cut; a wrong secret gets ERR auth."""
        b = Broker("--client-output-limit", "256kb", "--edge-output-limit", "64mb",
                   "--edge-output-limit-total", "0", "--requirepass", "s3cret",
                   "--edge-secret", "edge-s3cret")
        try:
            edge = link_hello(b.link_port, "edge", "by-edge-secret", secret="edge-s3cret",
                              rcvbuf=4096)
            claim = link_hello(b.link_port, "edge", "by-requirepass", secret="s3cret", rcvbuf=4096)
            for c in (edge, claim):
                c.sub("burst.>")
                c.sync()
            self.check_grant(b, "by-edge-secret", EDGE_LIMIT, "secret")
            self.check_grant(b, "by-requirepass", CLIENT_LIMIT, "none")
            bad = LinkClient(b.link_port, hello=False)
            bad.send([HELLO, 1, "edge", "bad", "guess"])
            self.assertEqual(bad.frame()[:2], [ERR, "auth"])
            self.assertTrue(bad.closed_by_server())
            pub = LinkClient(b.link_port, secret="s3cret")
            n = flood_until_cut(b, pub, "burst.x", 1)
            self.assertEqual(m(b, "herald_slow_consumers_total"), 1)
            self.assertTrue(claim.closed_by_server(10))
            self.assertEqual(len(drain_msgs(edge, n)), n)
            pub.close()
            edge.close()
        finally:
            b.check_clean_exit(self)

    def test_issue10_f5_edge_allow_by_address(self):
        """edge-allow lists 127.0.0.1 (with a CIDR that does not match): an
        uncredentialed "edge" claim from it gets edge-output-limit
        (grant=allow) with budget 0 and holds the backlog that cuts a "cli";
        on a broker whose edge-allow does not cover 127.0.0.1 the same claim
        gets grant=none; 127.0.0.0/8 covers it."""
        b = Broker("--client-output-limit", "256kb", "--edge-output-limit", "64mb",
                   "--edge-output-limit-total", "0", "--edge-allow", "10.0.0.0/8,127.0.0.1")
        try:
            edge = link_hello(b.link_port, "edge", "allowed", rcvbuf=4096)
            cli = link_hello(b.link_port, "cli", "a-cli", rcvbuf=4096)
            for c in (edge, cli):
                c.sub("burst.>")
                c.sync()
            pub = LinkClient(b.link_port)
            n = flood_until_cut(b, pub, "burst.x", 1)
            self.assertEqual(m(b, "herald_slow_consumers_total"), 1)
            self.assertTrue(cli.closed_by_server(10))
            self.assertEqual(len(drain_msgs(edge, n)), n)
            self.check_grant(b, "allowed", EDGE_LIMIT, "allow")
            pub.close()
            edge.close()
        finally:
            b.check_clean_exit(self)
        for allow, grant, limit in (("10.0.0.0/8,::1", "none", CLIENT_LIMIT),
                                    ("127.0.0.0/8", "allow", EDGE_LIMIT)):
            b = Broker("--client-output-limit", "256kb", "--edge-output-limit", "64mb",
                       "--edge-output-limit-total", "0", "--edge-allow", allow)
            try:
                c = link_hello(b.link_port, "edge", "probe")
                self.check_grant(b, "probe", limit, grant)
                c.close()
            finally:
                b.check_clean_exit(self)


# ------------------------------------------------------------------ F6a


class TopicMapBounded(unittest.TestCase):
    def test_issue10_f6a_max_topics_forgets_least_recently_published(self):
        """max-topics 1000: herald_topics never exceeds 1000 while 6,000
        distinct topics are published; herald_topics_evicted_total counts
        each topic forgotten; the least recently published goes first; a
        remembered topic's seq continues, a forgotten one restarts at 1.
        (Today: every topic is kept forever.)"""
        b = Broker("--max-topics", "1000")
        try:
            pub = LinkClient(b.link_port)

            def seq(topic, rid=1):
                return pub.publish(topic, b"x", req_id=rid)[3]

            def burst(topics):
                pub.sock.sendall(b"".join(mp_pack([PUB, t, b"x", None]) for t in topics))
                pub.sync()

            burst(["t.%d" % i for i in range(1000)])
            self.assertEqual(m(b, "herald_topics"), 1000)
            self.assertEqual(m(b, "herald_topics_evicted_total"), 0)
            self.assertEqual(seq("t.0"), 2)  # t.0 is now the most recent
            self.assertEqual(seq("t.new"), 1)  # evicts t.1, the least recently published
            self.assertEqual(m(b, "herald_topics"), 1000)
            self.assertEqual(m(b, "herald_topics_evicted_total"), 1)
            self.assertEqual(seq("t.0"), 3)
            self.assertEqual(seq("t.2"), 2)
            self.assertEqual(seq("t.1"), 1)  # forgotten: starts again (and evicts t.3)
            self.assertEqual(m(b, "herald_topics_evicted_total"), 2)
            for k in range(6):
                burst(["u.%d.%d" % (k, i) for i in range(1000)])
                self.assertLessEqual(m(b, "herald_topics"), 1000)
            self.assertEqual(m(b, "herald_topics"), 1000)
            self.assertEqual(m(b, "herald_topics_evicted_total"), 6002)
            self.assertEqual(seq("t.0"), 1)
            self.assertEqual(seq("u.5.999"), 2)
            pub.close()
        finally:
            b.check_clean_exit(self)

    def test_issue10_f6a_idle_topics_forgotten_after_topic_ttl(self):
        """topic-ttl 2s: topics not published for that long are forgotten
        (herald_topics falls back, their seq restarts at 1) while a topic
        published every 0.5 s keeps its sequence."""
        b = Broker("--topic-ttl", "2s")
        try:
            pub = LinkClient(b.link_port)
            pub.sock.sendall(b"".join(mp_pack([PUB, "idle.%d" % i, b"x", None]) for i in range(200)))
            pub.sync()
            self.assertEqual(pub.publish("idle.0", b"x")[3], 2)
            self.assertEqual(m(b, "herald_topics"), 200)
            # live.t is published every 0.5 s throughout and keeps its sequence;
            # the 200 idle topics are forgotten once topic-ttl has passed.
            live, forgotten = 0, False
            t0 = time.time()
            while time.time() - t0 < 20:
                live += 1
                self.assertEqual(pub.publish("live.t", b"x", req_id=live)[3], live)
                if time.time() - t0 > 2.5 and m(b, "herald_topics") <= 1:
                    forgotten = True
                    break
                time.sleep(0.5)
            self.assertTrue(forgotten, "herald_topics %d, 20 s after the last publish of 200 topics "
                            "(topic-ttl 2s)" % m(b, "herald_topics"))
            self.assertEqual(pub.publish("idle.0", b"x")[3], 1)
            self.assertEqual(pub.publish("live.t", b"x")[3], live + 1)
            pub.close()
        finally:
            b.check_clean_exit(self)


# ------------------------------------------------------------------ F11


HELD = 100000
UNKNOWN = 10000
PREFIX = "x" * 240  # long names: a scan compares ~250 bytes per held subscription


class LinearUnsubscribe(unittest.TestCase):
    def test_issue10_f11_resp_punsubscribe_unknown_after_100k_is_not_linear(self):
        """A RESP client holding 100,000 patterns PUNSUBSCRIBEs 10,000 names
        it does not hold: all 10,000 replies arrive within 20 s (O(1) each:
        about a second under ASan; today each scans every subscription,
        ~6.5 ms each under ASan: over a minute). The set stays right: a held
        name still unsubscribes."""
        b = Broker()
        c = None
        try:
            c = RespClient(b.resp_port, timeout=60)
            data = b"".join(resp_cmd("PSUBSCRIBE", *[PREFIX + ".%06d" % j for j in range(i, i + 1000)])
                            for i in range(0, HELD, 1000))
            t = send_async(c.sock, data)
            for _ in range(HELD):
                r = c.reply()
            t.join()
            self.assertEqual(r[2], HELD)
            data = b"".join(resp_cmd("PUNSUBSCRIBE", *[PREFIX + ".u%05d" % j for j in range(i, i + 100)])
                            for i in range(0, UNKNOWN, 100))
            t0 = time.time()
            t = send_async(c.sock, data)
            got = 0
            while got < UNKNOWN:
                left = 20 - (time.time() - t0)
                if left <= 0:
                    break
                c.sock.settimeout(left)
                try:
                    r = c.reply()
                except socket.timeout:
                    break
                got += 1
                self.assertEqual((r[0], r[2]), (b"punsubscribe", HELD), r[:1] + r[2:])
            took = time.time() - t0
            self.assertEqual(got, UNKNOWN, "only %d of %d PUNSUBSCRIBE replies in %.1f s (limit 20 s)"
                             % (got, UNKNOWN, took))
            t.join(5)
            c.sock.settimeout(10)
            self.assertEqual(c.call("PUNSUBSCRIBE", PREFIX + ".000007"),
                             [b"punsubscribe", (PREFIX + ".000007").encode(), HELD - 1])
            self.assertEqual(m(b, "herald_subscriptions"), HELD - 1)
        finally:
            if c:
                abort(c.sock)
            b.check_clean_exit(self)

    def test_issue10_f11_link_unsub_unknown_after_100k_is_not_linear(self):
        """The same on a link: 100,000 SUBs, then 10,000 UNSUBs of names not
        held and a PING: the PONG arrives within 20 s (today: over a
        minute under ASan). A held pattern still unsubscribes."""
        b = Broker()
        lk = None
        try:
            lk = LinkClient(b.link_port)
            lk.sock.settimeout(120)
            send_async(lk.sock, b"".join(mp_pack([SUB, PREFIX + ".%06d" % j]) for j in range(HELD))
                       + mp_pack([PING, 1])).join(120)
            self.assertEqual(lk.frame(60), [PONG, 1])
            self.assertEqual(m(b, "herald_subscriptions"), HELD)
            t0 = time.time()
            send_async(lk.sock, b"".join(mp_pack([UNSUB, PREFIX + ".u%05d" % j])
                                         for j in range(UNKNOWN)) + mp_pack([PING, 2]))
            try:
                f = lk.frame(max(1, 20 - (time.time() - t0)))
            except socket.timeout:
                self.fail("no PONG within 20 s after %d UNSUBs of unknown names" % UNKNOWN)
            self.assertEqual(f, [PONG, 2])
            self.assertEqual(m(b, "herald_subscriptions"), HELD)
            lk.send([UNSUB, PREFIX + ".000007"])
            lk.sync()
            self.assertEqual(m(b, "herald_subscriptions"), HELD - 1)
            pub = LinkClient(b.link_port)
            self.assertEqual(pub.publish(PREFIX + ".000007", b"x")[2], 0)
            self.assertEqual(pub.publish(PREFIX + ".000008", b"x")[2], 1)
            pub.close()
        finally:
            if lk:
                abort(lk.sock)
            b.check_clean_exit(self)


# ------------------------------------------------------------------ F12


WRONGPASS = "WRONGPASS"


class AuthBruteForce(unittest.TestCase):
    def test_issue10_f12_third_failed_auth_closes_resp_connection(self):
        """Failed AUTH and HELLO AUTH count together: the first two are
        answered -WRONGPASS with the connection open, the third is answered
        -WRONGPASS and the connection closed; herald_drops_total{reason="auth"}
        counts each. A fresh connection still authenticates. (Today: any
        number of guesses on one connection.)"""
        b = Broker("--requirepass", "s3cret")
        try:
            c = RespClient(b.resp_port)
            r = c.call("AUTH", "guess1")
            self.assertIsInstance(r, RespError)
            self.assertTrue(str(r).startswith(WRONGPASS), r)
            r = c.call("HELLO", "2", "AUTH", "default", "guess2")
            self.assertIsInstance(r, RespError)
            self.assertTrue(str(r).startswith(WRONGPASS), r)
            self.assertFalse(c.closed_by_server(0.2), "closed after two failures")
            c.sock.settimeout(10)  # closed_by_server left 0.2 s; the answer waits for the hold
            r = c.call("AUTH", "guess3")
            self.assertIsInstance(r, RespError)
            self.assertTrue(str(r).startswith(WRONGPASS), r)
            self.assertTrue(c.closed_by_server(5), "connection open after the third failed AUTH")
            self.assertEqual(drops(b, "auth"), 3)
            ok = RespClient(b.resp_port)
            self.assertEqual(ok.call("AUTH", "s3cret"), b"OK")
            self.assertEqual(ok.call("PUBLISH", "a.b", "x"), 0)
            ok.close()
        finally:
            b.check_clean_exit(self)

    def test_issue10_f12_pipelined_guesses_are_delayed_and_cut_at_three(self):
        """1,000 AUTH guesses in one write: at most three are answered, the
        connection is closed, only three failures are counted, and the
        close comes after the failure delays (two pauses of ~0.5-1 s; today
        1,000 -WRONGPASS at once and the connection stays)."""
        b = Broker("--requirepass", "s3cret")
        try:
            s = socket.create_connection(("127.0.0.1", b.resp_port))
            t0 = time.time()
            s.sendall(b"".join(resp_cmd("AUTH", "guess%d" % i) for i in range(1000)))
            data, closed = b"", False
            s.settimeout(10)
            try:
                while time.time() - t0 < 10:
                    chunk = s.recv(65536)
                    if not chunk:
                        closed = True
                        break
                    data += chunk
            except (ConnectionResetError, BrokenPipeError):
                closed = True
            except socket.timeout:
                pass
            took = time.time() - t0
            s.close()
            answers = data.count(b"-WRONGPASS")
            self.assertTrue(closed, "not closed after %d -WRONGPASS answers" % answers)
            self.assertLessEqual(answers, 3)
            self.assertEqual(drops(b, "auth"), 3)
            self.assertGreaterEqual(took, 0.7, "three failures answered without delay")
        finally:
            b.check_clean_exit(self)

    def test_issue10_f12_auth_failures_logged_at_a_rate(self):
        """80 failed AUTHs over 40 connections within a couple of seconds are
        logged as event=auth_failed endpoint=resp count=N at most once a
        second (today: one log line per failure)."""
        b = Broker("--requirepass", "s3cret")
        try:
            before = sum(1 for l in list(b.lines) if "auth_failed" in l)
            conns = [socket.create_connection(("127.0.0.1", b.resp_port), timeout=10)
                     for _ in range(40)]
            t0 = time.time()
            for rnd in range(2):
                for s in conns:
                    s.sendall(resp_cmd("AUTH", "guess%d" % rnd))
                for s in conns:
                    got = b""
                    while b"\r\n" not in got:
                        chunk = s.recv(4096)
                        self.assertTrue(chunk, "closed after %d failures" % (rnd + 1))
                        got += chunk
                    self.assertTrue(got.startswith(b"-WRONGPASS"), got)
            took = time.time() - t0
            self.assertEqual(drops(b, "auth"), 80)
            self.assertTrue(b.wait_log("event=auth_failed endpoint=resp count=", 3),
                            "no rate-limited auth_failed line")
            time.sleep(1.2)
            lines = [l for l in list(b.lines) if "auth_failed" in l][before:]
            self.assertLessEqual(len(lines), int(took + 1.2) + 2,
                                 "%d auth_failed lines for 80 failures in %.1f s"
                                 % (len(lines), took))
            for s in conns:
                s.close()
        finally:
            b.check_clean_exit(self)

    def test_issue10_f12_http_401_closes_connection(self):
        """A keep-alive POST with a wrong bearer gets 401 and the connection
        is closed (no second guess on it); counted as reason="auth". Today the
        connection stays open for the next guess."""
        b = Broker("--requirepass", "s3cret")
        try:
            s = socket.create_connection(("127.0.0.1", b.http_port), timeout=5)
            s.sendall(b"POST /v1/publish/a.b HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: keep-alive\r\n"
                      b"Authorization: Bearer guess\r\nContent-Length: 2\r\n\r\nhi")
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = s.recv(4096)
                self.assertTrue(chunk, "closed without a reply")
                data += chunk
            self.assertTrue(data.startswith(b"HTTP/1.1 401"), data)
            self.assertTrue(closed_within(s, 5), "connection open after 401")
            s.close()
            self.assertEqual(drops(b, "auth"), 1)
            st, _, body = http(b.http_port, "POST", "/v1/publish/a.b", body=b"x",
                               headers={"Authorization": "Bearer s3cret"})
            self.assertEqual(st, 200)
            self.assertEqual(json.loads(body)["seq"], 1)
        finally:
            b.check_clean_exit(self)


if __name__ == "__main__":
    unittest.main(verbosity=2)

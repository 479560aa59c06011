"""Edge: real WebSocket clients (Node's `ws` package, installed from npm into
tests/integration/node/) subscribe through herald-edge and receive events
published with redis-cli and curl; the exact envelope, the JSON ops,
?format=raw, the herald.v1 subprotocol, a broker killed and restarted under
open WebSockets, 5,000 connections receiving one broadcast, 3,000 receiving
a sustained stream in order while some drop, /healthz and /metrics, and
the SIGTERM drain (close 1012, exit 0 within shutdown-timeout).

Node and npm are required: `make test` installs them (tools/install-deps.sh
test). Missing, the tests fail rather than skip."""
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "support"))
from harness import (Broker, Edge, LinkClient, NODE_DIR, Process, RespClient, binary,
                     ensure_node_modules, http, metric, run_cli, wait_until)
from rawws import RawWs

class NodeWs:
    """node driver.js: WebSocket connections by id, events read in a thread."""

    def __init__(self):
        self.proc = subprocess.Popen(["node", os.path.join(NODE_DIR, "driver.js")], cwd=NODE_DIR,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)
        self.queues = {}
        self.lock = threading.Lock()
        self.all = []
        threading.Thread(target=self._read, daemon=True).start()

    def _queue(self, cid):
        with self.lock:
            return self.queues.setdefault(cid, queue.Queue())

    def _read(self):
        for line in self.proc.stdout:
            ev = json.loads(line)
            self.all.append(ev)
            self._queue(ev.get("id")).put(ev)

    def cmd(self, **kw):
        self.proc.stdin.write((json.dumps(kw) + "\n").encode())
        self.proc.stdin.flush()

    def open(self, cid, url, protocols=None):
        self.cmd(cmd="open", id=cid, url=url, protocols=protocols or [])
        ev = self.next(cid)
        if ev["ev"] != "open":
            raise AssertionError("connection %s did not open: %r" % (cid, ev))
        return ev

    def send(self, cid, obj):
        self.cmd(cmd="send", id=cid, text=obj if isinstance(obj, str) else json.dumps(obj))

    def next(self, cid, timeout=10):
        try:
            return self._queue(cid).get(timeout=timeout)
        except queue.Empty:
            raise AssertionError("no event for %s within %ss; all events: %r; stderr: %s"
                                 % (cid, timeout, self.all[-20:], self._stderr()))

    def msg(self, cid, timeout=10):
        """The next message's text; fails on any other event."""
        ev = self.next(cid, timeout)
        if ev["ev"] != "msg" or ev["binary"]:
            raise AssertionError("expected a text message on %s, got %r" % (cid, ev))
        return ev["text"]

    def pending(self, cid):
        """Events already received for cid, not yet consumed."""
        q = self._queue(cid)
        out = []
        while True:
            try:
                out.append(q.get_nowait())
            except queue.Empty:
                return out

    def _stderr(self):
        if self.proc.poll() is None:
            return "(running)"
        return self.proc.stderr.read().decode(errors="replace")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def envelope(topic, seq, data):
    return '{"op":"msg","topic":"%s","seq":%d,"data":%s}' % (topic, seq, data)


def broker_metric(b, name, labels=None):
    st, _, body = http(b.http_port, "GET", "/metrics")
    return metric(body.decode(), name, labels)


def edge_metric(e, name, labels=None):
    st, _, body = http(e.port, "GET", "/metrics")
    return metric(body.decode(), name, labels)


def edge_connections(e):
    """herald_edge_connections less the /metrics request asking for it."""
    return edge_metric(e, "herald_edge_connections") - 1


def redis_publish(b, topic, payload):
    """PUBLISH with the real redis-cli; returns the receiver count it printed."""
    out = run_cli("redis-cli", "-p", str(b.resp_port), "PUBLISH", topic, payload)
    return int(out.stdout.strip())


def start_broker_on(link, resp, http_port, tries=50):
    """A broker on fixed ports (a restart): retried while the old sockets linger."""
    argv = [binary("herald-broker"), "--bind", "127.0.0.1", "--link-port", str(link),
            "--resp-port", str(resp), "--http-port", str(http_port)]
    for _ in range(tries):
        try:
            p = Process(argv, timeout=20)
        except AssertionError:
            time.sleep(0.2)
            continue
        p.link_port, p.resp_port, p.http_port, p.conf_path = link, resp, http_port, None
        return p
    raise AssertionError("broker could not be restarted on %d/%d/%d" % (link, resp, http_port))


class EdgeWs(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        ensure_node_modules()
        cls.b = Broker()
        cls.e = Edge(cls.b.link_port)

    @classmethod
    def tearDownClass(cls):
        cls.e.check_clean_exit()
        cls.b.check_clean_exit()

    def setUp(self):
        self.node = NodeWs()
        self.url = "ws://127.0.0.1:%d/ws" % self.e.port

    def tearDown(self):
        # Barrier: every connection of this test is gone at the edge and every
        # pattern at the broker, so the next test starts from zero.
        self.node.stop()
        self.assertTrue(wait_until(lambda: edge_connections(self.e) == 0, 60),
                        "edge connections left: %s" % edge_connections(self.e))
        self.assertTrue(wait_until(lambda: broker_metric(self.b, "herald_subscriptions") == 0, 10))

    def wait_subs(self, n, b=None):
        b = b or self.b
        ok = wait_until(lambda: broker_metric(b, "herald_subscriptions") == n, 10)
        self.assertTrue(ok, "broker subscriptions %s, want %d" % (broker_metric(b, "herald_subscriptions"), n))

    def test_envelope_from_redis_cli_and_curl(self):
        ev = self.node.open("a", self.url + "?topic=mail.user.42.>", ["herald.v1"])
        self.assertEqual(ev["protocol"], "herald.v1")
        self.assertEqual(ev["extensions"], "")  # ws offers permessage-deflate; not negotiated
        self.wait_subs(1)
        self.assertEqual(redis_publish(self.b, "mail.user.42.inbox", '{"from":"a@b"}'), 1)
        self.assertEqual(self.node.msg("a"),
                         '{"op":"msg","topic":"mail.user.42.inbox","seq":1,"data":{"from":"a@b"}}')
        out = run_cli("curl", "-sS", "-d", '{"from":"c@d","n":[1,2]}',
                      "http://127.0.0.1:%d/v1/publish/mail.user.42.inbox" % self.b.http_port)
        reply = json.loads(out.stdout)
        self.assertEqual((reply["receivers"], reply["seq"]), (1, 2))
        self.assertEqual(self.node.msg("a"),
                         envelope("mail.user.42.inbox", 2, '{"from":"c@d","n":[1,2]}'))
        # Not JSON: data becomes a JSON string.
        self.assertEqual(redis_publish(self.b, "mail.user.42.inbox", 'hi "there"'), 1)
        self.assertEqual(self.node.msg("a"), envelope("mail.user.42.inbox", 3, '"hi \\"there\\""'))
        # Other users' topics never reach this connection; deeper topics do.
        self.assertEqual(redis_publish(self.b, "mail.user.43.inbox", '{"x":1}'), 0)
        self.assertEqual(redis_publish(self.b, "mail.user.42.folders.spam", "7"), 1)
        self.assertEqual(self.node.msg("a"), envelope("mail.user.42.folders.spam", 1, "7"))
        self.assertEqual(self.node.pending("a"), [])

    def test_two_clients_one_pattern_one_broker_subscription(self):
        self.node.open("a", self.url + "?topic=news.*")
        self.node.open("b", self.url + "?topic=news.*&topic=news.sport")
        self.wait_subs(2)  # edge tells the broker each pattern once
        self.assertEqual(edge_metric(self.e, "herald_edge_subscriptions"), 3)
        self.assertEqual(edge_metric(self.e, "herald_edge_patterns"), 2)
        self.assertEqual(redis_publish(self.b, "news.sport", '"goal"'), 1)
        want = envelope("news.sport", 1, '"goal"')
        self.assertEqual(self.node.msg("a"), want)
        self.assertEqual(self.node.msg("b"), want)  # once, though two patterns match
        self.assertEqual(redis_publish(self.b, "news.weather", "{}"), 1)
        self.assertEqual(self.node.msg("b"), envelope("news.weather", 1, "{}"))
        self.assertEqual(self.node.msg("a"), envelope("news.weather", 1, "{}"))
        self.assertEqual(self.node.pending("a") + self.node.pending("b"), [])

    def test_json_ops_sub_unsub_ping(self):
        ev = self.node.open("c", self.url)
        self.assertEqual(ev["protocol"], "")  # none offered, none echoed
        self.node.send("c", '{"op":"ping","id":1}')
        self.assertEqual(self.node.msg("c"), '{"op":"pong","id":1}')
        self.node.send("c", '{"op":"sub","topic":"ops.a.*","id":2}')
        self.assertEqual(self.node.msg("c"), '{"op":"ok","id":2}')
        self.wait_subs(1)
        self.assertEqual(redis_publish(self.b, "ops.a.x", "1"), 1)
        self.assertEqual(self.node.msg("c"), envelope("ops.a.x", 1, "1"))
        self.node.send("c", '{"op":"unsub","topic":"ops.a.*","id":"u-1"}')
        self.assertEqual(self.node.msg("c"), '{"op":"ok","id":"u-1"}')
        self.wait_subs(0)
        self.assertEqual(redis_publish(self.b, "ops.a.x", "2"), 0)
        self.node.send("c", '{"op":"unsub","topic":"ops.a.*","id":3}')
        err = json.loads(self.node.msg("c"))
        self.assertEqual((err["op"], err["id"], err["code"]), ("error", 3, "not_subscribed"))
        self.assertEqual(sorted(err), ["code", "id", "message", "op"])
        self.assertIsInstance(err["message"], str)
        self.node.send("c", '{"op":"sub","topic":"ops..bad","id":4}')
        err = json.loads(self.node.msg("c"))
        self.assertEqual((err["op"], err["id"], err["code"]), ("error", 4, "bad_topic"))
        self.node.send("c", '{"op":"sub","topic":"ops.>.x","id":5}')
        err = json.loads(self.node.msg("c"))
        self.assertEqual((err["op"], err["id"], err["code"]), ("error", 5, "bad_topic"))
        self.node.send("c", "not json")
        err = json.loads(self.node.msg("c"))
        self.assertEqual((err["op"], err["code"]), ("error", "bad_request"))
        self.assertNotIn("id", err)
        self.node.send("c", '{"op":"fly","id":6}')
        err = json.loads(self.node.msg("c"))
        self.assertEqual((err["op"], err["id"], err["code"]), ("error", 6, "bad_request"))
        # Still open and working after all of that.
        self.node.send("c", '{"op":"sub","topic":"ops.>","id":7}')
        self.assertEqual(self.node.msg("c"), '{"op":"ok","id":7}')
        self.wait_subs(1)
        self.assertEqual(redis_publish(self.b, "ops.b", "x"), 1)
        self.assertEqual(self.node.msg("c"), envelope("ops.b", 1, '"x"'))
        self.assertEqual(self.node.pending("c"), [])

    def test_format_raw(self):
        self.node.open("r", self.url + "?topic=raw.t&format=raw", ["chat", "herald.v1"])
        self.wait_subs(1)
        self.assertEqual(redis_publish(self.b, "raw.t", '{"k":1}'), 1)
        self.assertEqual(self.node.msg("r"), '{"k":1}')
        self.assertEqual(redis_publish(self.b, "raw.t", "plain text"), 1)
        self.assertEqual(self.node.msg("r"), "plain text")
        link = LinkClient(self.b.link_port)
        link.publish("raw.t", b"\xff\x00\x01")
        link.close()
        ev = self.node.next("r")
        self.assertEqual((ev["ev"], ev["binary"], ev["hex"]), ("msg", True, "ff0001"))
        # JSON ops still answer in JSON on a raw connection.
        self.node.send("r", '{"op":"ping","id":"p"}')
        self.assertEqual(self.node.msg("r"), '{"op":"pong","id":"p"}')

    def test_subprotocol_echoed_raw_socket(self):
        ws = RawWs(self.e.port, "/ws?topic=sp.x", protocols=["herald.v1"])
        self.assertEqual(ws.headers.get("sec-websocket-protocol"), "herald.v1")
        self.assertNotIn("sec-websocket-extensions", ws.headers)
        ws.close()
        ws = RawWs(self.e.port, "/ws?topic=sp.x")
        self.assertNotIn("sec-websocket-protocol", ws.headers)
        ws.close()

    def test_healthz_and_metrics(self):
        self.assertTrue(wait_until(lambda: http(self.e.port, "GET", "/healthz")[0] == 200, 10))
        st, hdrs, body = http(self.e.port, "GET", "/healthz")
        self.assertEqual(st, 200)
        self.assertEqual(json.loads(body), {"status": "ok", "broker": "up"})
        self.node.open("m", self.url + "?topic=met.a&topic=met.b")
        st, hdrs, body = http(self.e.port, "GET", "/metrics")
        self.assertEqual(st, 200)
        self.assertTrue(hdrs["content-type"].startswith("text/plain"), hdrs)
        text = body.decode()
        self.assertIn("# TYPE herald_edge_connections gauge", text)
        self.assertEqual(metric(text, "herald_edge_connections"), 2)  # node + this request
        self.assertEqual(metric(text, "herald_edge_subscriptions"), 2)
        self.assertEqual(metric(text, "herald_edge_broker_links_up"), 1)
        self.assertEqual(metric(text, "herald_edge_workers"), 1)
        self.assertGreater(metric(text, "herald_edge_rss_bytes"), 0)
        self.assertGreaterEqual(metric(text, "herald_edge_http_requests_total", 'path="/healthz"'), 2)
        st, _, _ = http(self.e.port, "GET", "/nope")
        self.assertEqual(st, 404)

    def test_5000_connections_receive_one_broadcast(self):
        n = 5000
        t0 = time.time()
        many, events = self._spawn_many("many.js", self.url + "?topic=fanout.all", n)
        try:
            ev = self._next_many(events, "opened", 150)
            self.assertEqual(ev["n"], n)
            opened_s = time.time() - t0
            self.assertTrue(wait_until(
                lambda: edge_metric(self.e, "herald_edge_subscriptions") == n, 30))
            self.assertEqual(edge_connections(self.e), n)
            self.wait_subs(1)
            t1 = time.time()
            self.assertEqual(redis_publish(self.b, "fanout.all", '{"to":"everyone"}'), 1)
            ev = self._next_many(events, "received", 60)
            self.assertEqual(ev, {"ev": "received", "n": n, "closed": 0,
                                  "distinct": [envelope("fanout.all", 1, '{"to":"everyone"}')]})
            sys.stderr.write("5000 connections: opened in %.1fs, broadcast received in %.2fs\n"
                             % (opened_s, time.time() - t1))
            self.assertEqual(many.wait(30), 0)
        finally:
            self._stop_many(many)

    def test_sustained_fanout_in_order_while_clients_drop(self):
        # 3,000 connections, 200 events paced 2 ms apart: a pass over every
        # client takes longer than that, so events arrive while the edge is
        # writing and join the pass in progress (herald_edge_flush_polls_total).
        # Every 10th connection drops itself (TCP close) a quarter of the way
        # in, so clients close while they sit on the edge's pending list.
        # Each of the others must get all 200 envelopes, seq 1..200 in order.
        n, k, drop = 3000, 200, 10
        many, events = self._spawn_many("stream.js", self.url + "?topic=stream.all", n, k, drop)
        try:
            ev = self._next_many(events, "opened", 150)
            self.assertEqual(ev["n"], n)
            self.assertTrue(wait_until(
                lambda: edge_metric(self.e, "herald_edge_subscriptions") == n, 30))
            self.wait_subs(1)
            polls0 = edge_metric(self.e, "herald_edge_flush_polls_total")
            delivered0 = edge_metric(self.e, "herald_edge_deliveries_total")
            pub = RespClient(self.b.resp_port)
            for i in range(k):
                pub.send("PUBLISH", "stream.all", '{"i":%d}' % i)
                time.sleep(0.002)
            for _ in range(k):
                self.assertEqual(pub.reply(), 1)
            pub.close()
            ev = self._next_many(events, "done", 120)
            self.assertEqual(ev, {"ev": "done", "complete": n - n // drop, "dropped": n // drop,
                                  "bad": [], "closed": 0})
            self.assertEqual(many.wait(30), 0)
            self.assertGreater(edge_metric(self.e, "herald_edge_flush_polls_total"), polls0)
            # The dropped ones got frames queued until the edge saw them go.
            delivered = edge_metric(self.e, "herald_edge_deliveries_total") - delivered0
            self.assertGreaterEqual(delivered, (n - n // drop) * k + (n // drop) * (k // 4))
            self.assertLessEqual(delivered, n * k)
        finally:
            self._stop_many(many)
        self.assertTrue(wait_until(lambda: edge_connections(self.e) == 0, 10))

    def _spawn_many(self, script, *args):
        """Starts a node script that prints one JSON event per line; returns
        the process and a queue its lines are parsed into."""
        proc = subprocess.Popen(["node", os.path.join(NODE_DIR, script)] + [str(a) for a in args],
                                cwd=NODE_DIR, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
        events = queue.Queue()
        threading.Thread(target=lambda: [events.put(json.loads(l)) for l in proc.stdout],
                         daemon=True).start()
        return proc, events

    @staticmethod
    def _stop_many(proc):
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    def _next_many(self, events, kind, timeout):
        deadline = time.time() + timeout
        while True:
            try:
                ev = events.get(timeout=max(0.01, deadline - time.time()))
            except queue.Empty:
                raise AssertionError("many.js: no %r event within %ss" % (kind, timeout))
            if ev["ev"] == kind:
                return ev
            raise AssertionError("many.js reported %r while waiting for %r" % (ev, kind))

    def test_broker_killed_and_restarted_websocket_stays_open(self):
        b2 = Broker()
        e2 = Edge(b2.link_port, "--reconnect-min", "50ms", "--reconnect-max", "300ms")
        url = "ws://127.0.0.1:%d/ws?topic=restart.>" % e2.port
        try:
            self.node.open("k", url)
            self.wait_subs(1, b2)
            self.assertEqual(redis_publish(b2, "restart.one", '{"n":1}'), 1)
            self.assertEqual(self.node.msg("k"), envelope("restart.one", 1, '{"n":1}'))
            self.assertEqual(b2.stop(signal.SIGKILL), -signal.SIGKILL)
            self.assertTrue(wait_until(lambda: http(e2.port, "GET", "/healthz")[0] == 503, 10),
                            "edge /healthz still 200 with the broker dead")
            st, _, body = http(e2.port, "GET", "/healthz")
            self.assertEqual(json.loads(body), {"status": "degraded", "broker": "down"})
            time.sleep(0.5)  # a few failed reconnects while the broker is down
            b3 = start_broker_on(b2.link_port, b2.resp_port, b2.http_port)
            try:
                self.wait_subs(1, b3)  # the edge re-sent its SUB on the new link
                self.assertEqual(redis_publish(b3, "restart.two", '{"n":2}'), 1)
                self.assertEqual(self.node.msg("k"), envelope("restart.two", 1, '{"n":2}'))
                self.assertEqual(self.node.pending("k"), [])  # no close, no error
                self.assertTrue(wait_until(lambda: http(e2.port, "GET", "/healthz")[0] == 200, 10))
                self.assertGreaterEqual(edge_metric(e2, "herald_edge_broker_reconnects_total"), 1)
                self.node.stop()
                e2.check_clean_exit(self)
            finally:
                b3.check_clean_exit(self)
        finally:
            if e2.alive():
                e2.stop(signal.SIGKILL)
            if b2.alive():
                b2.stop(signal.SIGKILL)

    def test_sigterm_drains_with_1012(self):
        """SIGTERM: the listener closes, every client gets 1012 "service
        restart" (reconnect now), the edge waits for their EOF within
        shutdown-timeout and exits 0 as soon as the last one is gone."""
        e3 = Edge(self.b.link_port, "--shutdown-timeout", "20s")
        try:
            url = "ws://127.0.0.1:%d/ws?topic=term.x" % e3.port
            self.node.open("t1", url)
            self.node.open("t2", url)
            ws = RawWs(e3.port, "/ws?topic=term.x")
            self.wait_subs(1)
            e3.proc.send_signal(signal.SIGTERM)
            for cid in ("t1", "t2"):
                ev = self.node.next(cid)
                self.assertEqual((ev["ev"], ev["code"], ev["reason"]),
                                 ("close", 1012, "service restart"), ev)
            self.assertEqual(ws.expect_close(), (1012, "service restart"))
            # Draining: the raw client has not closed its end, so the edge
            # waits for it, and accepts nobody meanwhile.
            self.assertTrue(e3.alive(), e3.log())
            with self.assertRaises(ConnectionRefusedError):
                socket.create_connection(("127.0.0.1", e3.port), timeout=5).close()
            t0 = time.time()
            ws.close()
            e3.check_clean_exit(self)  # exit 0, no sanitizer report
            self.assertLess(time.time() - t0, 10, "the drain did not end with its last client")
            self.assertIn("event=drain", e3.log())
            self.assertNotIn("event=shutdown_forced", e3.log())
        finally:
            if e3.alive():
                e3.stop(signal.SIGKILL)

    def test_sigterm_drain_ends_at_shutdown_timeout(self):
        """A client that never reads nor closes holds the drain only until
        shutdown-timeout; the edge still exits 0."""
        e4 = Edge(self.b.link_port, "--shutdown-timeout", "1s")
        try:
            ws = RawWs(e4.port, "/ws?topic=term.y", rcvbuf=4096)
            self.wait_subs(1)
            t0 = time.time()
            e4.check_clean_exit(self)
            took = time.time() - t0
            self.assertGreaterEqual(took, 0.9)
            self.assertLess(took, 10)
            self.assertIn("event=shutdown_forced", e4.log())
            ws.close()
        finally:
            if e4.alive():
                e4.stop(signal.SIGKILL)

if __name__ == "__main__":
    unittest.main(verbosity=2)

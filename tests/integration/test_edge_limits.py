"""Edge: per-address limits, max-connections and the ops limit against the
real binary (docs/protocol.md §3.2, §3.8). Clients come from distinct
loopback addresses (127.0.0.2, .3, ...: Linux routes all of 127/8 to lo), so
one test can be the over-eager address and another an innocent one, and
/metrics is always read from an address of its own. Checked: 429 with
Retry-After: 1 past max-connections-per-ip (counted across two workers)
and past handshake-rate, 503 with Retry-After: 1 at max-connections, the
refused socket closed after its answer, the count given back when a
connection closes, and close 1008 "too many ops" past max-ops-per-second
while a client within it stays."""
import base64
import http.client
import os
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "support"))
from harness import Broker, Edge, metric, wait_until
from rawws import OP_CLOSE, RawWs, frame, OP_TEXT

METRICS_FROM = "127.0.0.99"


def raw_from(port, source, timeout=10):
    """A RawWs whose TCP connection comes from source (a 127/8 address)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.bind((source, 0))
    s.connect(("127.0.0.1", port))
    ws = RawWs.__new__(RawWs)
    ws.port, ws.sock, ws.buf, ws.headers = port, s, b"", {}
    return ws


def upgrade_from(port, source, target="/ws"):
    """Sends an upgrade from source: (status, headers, body, ws)."""
    ws = raw_from(port, source)
    key = base64.b64encode(os.urandom(16)).decode()
    ws.send(RawWs.upgrade_head(target, key))
    status, headers, body = ws.read_http(body=True)
    return status, headers, body, ws


def edge_metric(e, name, labels=None):
    c = http.client.HTTPConnection("127.0.0.1", e.port, timeout=10,
                                   source_address=(METRICS_FROM, 0))
    c.request("GET", "/metrics")
    r = c.getresponse()
    body = r.read().decode()
    c.close()
    if r.status != 200:
        raise AssertionError("GET /metrics answered %d" % r.status)
    v = metric(body, name, labels)
    return 0 if v is None else v


def connections(e):
    """The edge's open connections (the asking one included), or None while it answers 503."""
    try:
        return edge_metric(e, "herald_edge_connections")
    except AssertionError:
        return None


class Limits(unittest.TestCase):
    def start(self, *args, workers=1):
        b = Broker()
        self.addCleanup(b.check_clean_exit)
        e = Edge(b.link_port, *args, workers=workers)
        self.addCleanup(e.check_clean_exit)
        return e

    def opened(self, e, source, n):
        conns = []
        for _ in range(n):
            st, _, body, ws = upgrade_from(e.port, source)
            self.addCleanup(ws.close)
            self.assertEqual(st, 101, body)
            conns.append(ws)
        return conns

    def assert_refused(self, e, source, status):
        st, headers, body, ws = upgrade_from(e.port, source)
        self.addCleanup(ws.close)
        self.assertEqual(st, status, body)
        self.assertEqual(headers.get("retry-after"), "1")
        self.assertEqual(headers.get("connection"), "close")
        self.assertTrue(ws.wait_eof(5), "the refused connection stayed open")
        return body

    def test_max_connections_per_ip_429_across_workers(self):
        e = self.start("--max-connections-per-ip", "3", workers=2)
        conns = self.opened(e, "127.0.0.2", 3)
        body = self.assert_refused(e, "127.0.0.2", 429)
        self.assertIn(b"too many connections", body)
        self.opened(e, "127.0.0.3", 3)  # another address has its own count
        # Counted by whichever worker refused it: other workers' counters reach
        # /metrics with their once-a-second snapshot.
        self.assertTrue(wait_until(lambda: edge_metric(e, "herald_edge_connections_limited_total",
                                                       'reason="per_ip"') == 1, 5))
        # One closes: its address may connect again once the edge has seen it go.
        conns[0].close()
        deadline = time.time() + 10
        while True:
            st, _, _, ws = upgrade_from(e.port, "127.0.0.2")
            self.addCleanup(ws.close)
            if st == 101 or time.time() > deadline:
                break
            time.sleep(0.1)
        self.assertEqual(st, 101)
        self.assertGreaterEqual(edge_metric(e, "herald_edge_addr_entries"), 2)

    def test_handshake_rate_429_then_refills(self):
        e = self.start("--handshake-rate", "5")
        t0 = time.time()
        ok = refused = 0
        for _ in range(20):
            st, headers, _, ws = upgrade_from(e.port, "127.0.0.4")
            ws.close()
            if st == 101:
                ok += 1
            else:
                self.assertEqual((st, headers.get("retry-after")), (429, "1"))
                refused += 1
        elapsed = time.time() - t0
        # A burst of 5, then one more every 200 ms of the time the loop took.
        self.assertGreaterEqual(ok, 5)
        self.assertLessEqual(ok, 5 + int(elapsed * 5) + 1, "elapsed %.2fs" % elapsed)
        self.assertGreater(refused, 0)
        self.assertEqual(edge_metric(e, "herald_edge_connections_limited_total", 'reason="rate"'),
                         refused)
        # Another address is not slowed; this one gets a token back within 200 ms.
        self.opened(e, "127.0.0.5", 5)
        time.sleep(0.5)
        self.opened(e, "127.0.0.4", 1)

    def test_max_connections_503(self):
        e = self.start("--max-connections", "3")
        conns = self.opened(e, "127.0.0.6", 3)
        body = self.assert_refused(e, "127.0.0.7", 503)
        self.assertIn(b"busy", body)
        for ws in conns:
            ws.close()
        asks = []  # /metrics itself is refused (503) until the edge has seen them go
        self.assertTrue(wait_until(lambda: asks.append(connections(e)) or asks[-1] == 1, 10))
        self.assertEqual(edge_metric(e, "herald_edge_connections_rejected_total"),
                         1 + asks.count(None))
        self.opened(e, "127.0.0.7", 1)

    def test_ops_flood_closed_1008(self):
        e = self.start("--max-ops-per-second", "20")
        flood = RawWs(e.port, "/ws")
        self.addCleanup(flood.close)
        flood.send(b"".join(frame(OP_TEXT, '{"op":"ping","id":%d}' % i) for i in range(60)))
        pongs = 0
        while True:
            fin, op, payload = flood.read_frame()
            if op == OP_CLOSE:
                break
            pongs += 1
        self.assertEqual((int.from_bytes(payload[:2], "big"), payload[2:]),
                         (1008, b"too many ops"))
        self.assertGreaterEqual(pongs, 20)
        self.assertLess(pongs, 60)
        self.assertTrue(flood.wait_eof(5))
        self.assertEqual(edge_metric(e, "herald_edge_closes_total", 'reason="1008"'), 1)
        # Within the limit, a client is never closed.
        calm = RawWs(e.port, "/ws")
        self.addCleanup(calm.close)
        for second in range(3):
            for i in range(10):
                calm.send_text('{"op":"ping","id":%d}' % i)
                self.assertEqual(calm.recv_text(), '{"op":"pong","id":%d}' % i)
            time.sleep(1)
        calm.send_text('{"op":"ping","id":"last"}')
        self.assertEqual(calm.recv_text(), '{"op":"pong","id":"last"}')


if __name__ == "__main__":
    unittest.main(verbosity=2)

"""Edge: bad input from raw sockets. Every case closes only the offending
connection, with the RFC 6455 close code or HTTP status of docs/protocol.md
§3.7 and §3.2, and counts it in /metrics, while a bystander
connection on the same edge keeps receiving events. Control frames (ping,
close) are answered as the RFC says; the handshake, idle and slow-consumer
limits close what exceeds them.

The frames are built byte by byte (tests/support/rawws.py): no WebSocket
library sends unmasked frames, reserved bits or broken UTF-8."""
import json
import os
import socket
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "support"))
from fakebroker import FakeBroker
from harness import Broker, Edge, LinkClient, MSG, PUBACK, http, metric, wait_until
from rawws import (OP_BINARY, OP_CLOSE, OP_CONT, OP_PING, OP_PONG, OP_TEXT, Closed, RawWs,
                   close_payload, frame)

MAX_MESSAGE = 1024


def envelope(topic, seq, data):
    return '{"op":"msg","topic":"%s","seq":%d,"data":%s}' % (topic, seq, data)


def edge_metric(e, name, labels=None):
    st, _, body = http(e.port, "GET", "/metrics")
    return metric(body.decode(), name, labels) or 0


def wait_broker_subs(b, n):
    def count():
        st, _, body = http(b.http_port, "GET", "/metrics")
        return metric(body.decode(), "herald_subscriptions")
    if not wait_until(lambda: count() == n, 10):
        raise AssertionError("broker subscriptions %s, want %d" % (count(), n))


class BadInput(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.b = Broker()
        cls.e = Edge(cls.b.link_port, "--handshake-timeout", "1s",
                     "--max-message-size", str(MAX_MESSAGE), "--max-header-size", "2kb",
                     "--send-queue-limit", "64kb")
        cls.pub = LinkClient(cls.b.link_port)
        cls.bystander = RawWs(cls.e.port, "/ws?topic=bystander.t")
        cls.seq = 0
        wait_broker_subs(cls.b, 1)

    @classmethod
    def tearDownClass(cls):
        cls.bystander.close()
        cls.pub.close()
        cls.e.check_clean_exit()
        cls.b.check_clean_exit()

    def tearDown(self):
        self.check_bystander()

    def check_bystander(self):
        """The bystander is still open and receiving, and answers keep it un-idle."""
        cls = type(self)
        cls.seq += 1
        self.bystander.send_frame(OP_PING, b"still-there")
        ack = self.pub.publish("bystander.t", str(cls.seq), req_id=cls.seq)
        self.assertEqual(ack[:3], [PUBACK, cls.seq, 1])
        self.assertEqual(self.bystander.recv_text(), envelope("bystander.t", cls.seq, cls.seq))

    def victim(self, path="/ws?topic=victim.t"):
        return RawWs(self.e.port, path)

    def assert_closed_with(self, data, code, label=None):
        """Sends data on a fresh connection; expects close `code` and the metric."""
        label = label or str(code)
        before = edge_metric(self.e, "herald_edge_closes_total", 'reason="%s"' % label)
        ws = self.victim()
        ws.send(data)
        got, reason = ws.expect_close()
        ws.close()
        self.assertEqual(got, code, "reason %r" % reason)
        self.assertEqual(edge_metric(self.e, "herald_edge_closes_total", 'reason="%s"' % label),
                         before + 1)

    # ------------------------------------------------------------ 1002

    def test_unmasked_frame_1002(self):
        self.assert_closed_with(frame(OP_TEXT, '{"op":"ping"}', mask=False), 1002)

    def test_reserved_bits_1002(self):
        for rsv in (4, 2, 1):
            with self.subTest(rsv=rsv):
                self.assert_closed_with(frame(OP_TEXT, '{"op":"ping"}', rsv=rsv), 1002)

    def test_reserved_opcode_1002(self):
        for op in (0x3, 0x7, 0xB, 0xF):
            with self.subTest(opcode=op):
                self.assert_closed_with(frame(op, b"x"), 1002)

    def test_continuation_without_start_1002(self):
        self.assert_closed_with(frame(OP_CONT, '{"op":"ping"}'), 1002)

    def test_control_frame_over_125_1002(self):
        self.assert_closed_with(frame(OP_PING, b"p" * 126), 1002)

    def test_fragmented_control_frame_1002(self):
        self.assert_closed_with(frame(OP_PING, b"half", fin=False), 1002)

    def test_new_message_inside_fragmented_one_1002(self):
        self.assert_closed_with(frame(OP_TEXT, '{"op":', fin=False) + frame(OP_TEXT, "{}"), 1002)

    def test_invalid_close_code_1002(self):
        for payload in (close_payload(1005), close_payload(999), close_payload(2000),
                        close_payload(1016), b"\x03"):
            with self.subTest(payload=payload):
                self.assert_closed_with(frame(OP_CLOSE, payload), 1002)

    # ------------------------------------------------------------ 1007, 1009, 1003

    def test_invalid_utf8_1007(self):
        for bad in (b'{"a":"\xc3\x28"}', b"\xc0\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xff"):
            with self.subTest(text=bad):
                self.assert_closed_with(frame(OP_TEXT, bad), 1007)

    def test_invalid_utf8_split_across_fragments_1007(self):
        data = frame(OP_TEXT, b'{"a":"\xe2\x82', fin=False) + frame(OP_CONT, b'\x28"}')
        self.assert_closed_with(data, 1007)
        # Truncated at the end of the message.
        self.assert_closed_with(frame(OP_TEXT, b'{"a":', fin=False) + frame(OP_CONT, b"\xe2\x82"),
                                1007)

    def test_valid_utf8_split_across_fragments_is_accepted(self):
        ws = self.victim()
        ws.send(frame(OP_TEXT, b'{"op":"ping","id":"\xe2\x82', fin=False) +
                frame(OP_CONT, b'\xac"}'))
        self.assertEqual(json.loads(ws.recv_text()), {"op": "pong", "id": "\u20ac"})
        ws.close()

    def test_message_over_max_message_size_1009(self):
        self.assert_closed_with(frame(OP_TEXT, b" " * (MAX_MESSAGE + 1)), 1009)
        third = MAX_MESSAGE // 3 + 1
        data = (frame(OP_TEXT, b" " * third, fin=False) + frame(OP_CONT, b" " * third, fin=False) +
                frame(OP_CONT, b" " * third))
        self.assert_closed_with(data, 1009)

    def test_message_of_exactly_max_message_size_is_accepted(self):
        ws = self.victim()
        op = b'{"op":"ping","id":1}'
        ws.send(frame(OP_TEXT, op + b" " * (MAX_MESSAGE - len(op))))
        self.assertEqual(ws.recv_text(), '{"op":"pong","id":1}')
        half = MAX_MESSAGE // 2
        body = op + b" " * (MAX_MESSAGE - len(op))
        ws.send(frame(OP_TEXT, body[:half], fin=False) + frame(OP_CONT, body[half:]))
        self.assertEqual(ws.recv_text(), '{"op":"pong","id":1}')
        ws.close()

    def test_binary_message_1003(self):
        self.assert_closed_with(frame(OP_BINARY, b"\x00\x01"), 1003)

    # ------------------------------------------------------------ control frames

    def test_ping_answered_with_same_payload(self):
        ws = self.victim()
        ws.send_frame(OP_PING, b"hello\x00\xff")
        self.assertEqual(ws.read_frame(), (True, OP_PONG, b"hello\x00\xff"))
        ws.send_frame(OP_PING, b"")
        self.assertEqual(ws.read_frame(), (True, OP_PONG, b""))
        ws.send_frame(OP_PING, b"m" * 125)
        self.assertEqual(ws.read_frame(), (True, OP_PONG, b"m" * 125))
        # A ping between the fragments of a message is answered at once.
        ws.send(frame(OP_TEXT, '{"op":"pi', fin=False) + frame(OP_PING, b"mid") +
                frame(OP_CONT, 'ng","id":9}'))
        self.assertEqual(ws.read_frame(), (True, OP_PONG, b"mid"))
        self.assertEqual(ws.read_frame(), (True, OP_TEXT, b'{"op":"pong","id":9}'))
        # Unsolicited pongs are ignored.
        ws.send_frame(OP_PONG, b"whatever")
        ws.send_text('{"op":"ping","id":10}')
        self.assertEqual(ws.read_frame(), (True, OP_TEXT, b'{"op":"pong","id":10}'))
        ws.close()

    def test_close_is_echoed(self):
        for code in (1000, 1001, 4001):
            with self.subTest(code=code):
                ws = self.victim()
                ws.send_frame(OP_CLOSE, close_payload(code, b"bye"))
                got, _ = ws.expect_close()
                self.assertEqual(got, code)
                ws.close()
        ws = self.victim()
        ws.send_frame(OP_CLOSE, b"")
        got, _ = ws.expect_close()
        self.assertIn(got, (None, 1000))
        ws.close()

    # ------------------------------------------------------------ handshake

    def http_error(self, head, status, label):
        before = edge_metric(self.e, "herald_edge_handshake_failures_total", 'reason="%s"' % label)
        ws = RawWs(self.e.port)
        ws.send(head)
        got, headers, body = ws.read_http()
        self.assertEqual(got, status, body)
        self.assertTrue(ws.wait_eof(5), "connection left open after HTTP %d" % status)
        ws.close()
        self.assertEqual(edge_metric(self.e, "herald_edge_handshake_failures_total",
                                     'reason="%s"' % label), before + 1)
        return headers

    def test_handshake_missing_key_400(self):
        self.http_error(RawWs.upgrade_head("/ws?topic=a", None), 400, "400")

    def test_handshake_bad_key_400(self):
        self.http_error(RawWs.upgrade_head("/ws?topic=a", "short"), 400, "400")

    def test_handshake_version_8_426(self):
        headers = self.http_error(RawWs.upgrade_head("/ws", "dGhlIHNhbXBsZSBub25jZQ==", version="8"),
                                  426, "426")
        self.assertEqual(headers.get("sec-websocket-version"), "13")

    def test_handshake_headers_over_max_431(self):
        pad = "".join("X-Pad-%d: %s\r\n" % (i, "a" * 100) for i in range(30))
        self.http_error(RawWs.upgrade_head("/ws", "dGhlIHNhbXBsZSBub25jZQ==", extra=pad), 431, "431")

    def test_unknown_path_404(self):
        self.http_error(b"GET /nothing-here HTTP/1.1\r\nHost: x\r\n\r\n", 404, "404")

    def test_handshake_timeout_closes(self):
        before = edge_metric(self.e, "herald_edge_handshake_failures_total", 'reason="timeout"')
        partial = RawWs(self.e.port)
        partial.send(b"GET /ws?topic=a HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        silent = RawWs(self.e.port)
        t0 = time.time()
        self.assertTrue(partial.wait_eof(6), "half a request head still open after 6 s")
        self.assertTrue(silent.wait_eof(6), "silent connection still open")
        took = time.time() - t0
        # The edge's timers run on a 1 s sweep with a whole-second clock and
        # never fire early: a 1 s timeout fires in (1, 3] s.
        self.assertGreaterEqual(took, 0.9)
        self.assertLess(took, 5)
        partial.close()
        silent.close()
        self.assertEqual(edge_metric(self.e, "herald_edge_handshake_failures_total",
                                     'reason="timeout"'), before + 2)

    # ------------------------------------------------------------ slow consumer

    def test_slow_consumer_closed_fast_client_keeps_receiving(self):
        before = edge_metric(self.e, "herald_edge_slow_consumers_total")
        before_1008 = edge_metric(self.e, "herald_edge_closes_total", 'reason="1008"')
        slow = RawWs(self.e.port, rcvbuf=4096)
        slow.handshake("/ws?topic=flood.t")
        fast = RawWs(self.e.port, "/ws?topic=flood.t")
        wait_broker_subs(self.b, 2)
        got = []
        errors = []

        def read_fast():
            try:
                while True:
                    text = fast.recv_text(timeout=20)
                    got.append(json.loads(text)["seq"])
            except Closed:
                pass
            except Exception as e:  # reported below
                errors.append(repr(e))

        reader = threading.Thread(target=read_fast, daemon=True)
        reader.start()
        payload = '"%s"' % ("x" * 16000)
        published = 0
        for i in range(1, 2001):
            ack = self.pub.publish("flood.t", payload, req_id=i)
            published = i
            if i % 10 == 0 and edge_metric(self.e, "herald_edge_slow_consumers_total") > before:
                break
        self.assertEqual(edge_metric(self.e, "herald_edge_slow_consumers_total"), before + 1,
                         "no slow consumer after %d events of 16 kB" % published)
        self.assertEqual(edge_metric(self.e, "herald_edge_closes_total", 'reason="1008"'),
                         before_1008 + 1)
        # The slow one, read at once (the edge gives its queue a 2 s grace
        # period): whole events, then close 1008 "slow consumer".
        ending = None
        try:
            while True:
                fin, op, data = slow.read_frame(timeout=10)
                if op == OP_CLOSE:
                    ending = int.from_bytes(data[:2], "big")
                    self.assertEqual(data[2:], b"slow consumer")
                    break
        except Closed:
            ending = "cut"
        self.assertEqual(ending, 1008)
        sys.stderr.write("slow consumer: closed after %d events of 16 kB, ending %s\n"
                         % (published, ending))
        # The fast client got every event, in order.
        self.assertTrue(wait_until(lambda: len(got) >= published or errors, 30))
        self.assertEqual(errors, [])
        self.assertEqual(got, list(range(1, published + 1)))
        self.assertTrue(slow.wait_eof(5))
        slow.close()
        fast.close()
        wait_broker_subs(self.b, 1)


class IdleTimeout(unittest.TestCase):
    def test_pings_spread_over_the_interval(self):
        # 40 connections opened together, ping-interval 4 s: each is pinged
        # within the interval (plus the 1 s sweep), at its own phase, so the
        # first pings land in several different seconds, not in one sweep.
        b = Broker()
        e = Edge(b.link_port, "--ping-interval", "4s", "--idle-timeout", "60s")
        conns = []
        try:
            conns = [RawWs(e.port, "/ws?topic=ping.t") for _ in range(40)]
            t0 = time.time()
            first = {}
            while time.time() - t0 < 7 and len(first) < len(conns):
                for i, c in enumerate(conns):
                    if i in first:
                        continue
                    try:
                        fin, op, data = c.read_frame(timeout=0.02)
                    except socket.timeout:
                        continue
                    self.assertEqual(op, OP_PING)
                    first[i] = time.time() - t0
            self.assertEqual(len(first), len(conns), "not every connection was pinged in 7 s")
            self.assertLessEqual(max(first.values()), 6.0)
            seconds = {int(t) for t in first.values()}
            self.assertGreaterEqual(len(seconds), 3, "first pings all in %s" % sorted(seconds))
            e.check_clean_exit()
            b.check_clean_exit()
        finally:
            for c in conns:
                c.close()
            for p in (e, b):
                if p.alive():
                    p.stop()

    def test_idle_connection_closed_active_one_kept(self):
        b = Broker()
        e = Edge(b.link_port, "--ping-interval", "1s", "--idle-timeout", "3s")
        try:
            quiet = RawWs(e.port, "/ws?topic=idle.t")
            chatty = RawWs(e.port, "/ws?topic=idle.t")
            t0 = time.time()
            code, pings = None, 0
            while time.time() - t0 < 10 and code is None:
                chatty.send_frame(OP_PONG, b"")  # any frame counts as life
                try:
                    fin, op, data = quiet.read_frame(timeout=0.3)
                except socket.timeout:
                    continue
                if op == OP_PING:
                    pings += 1
                elif op == OP_CLOSE:
                    code = int.from_bytes(data[:2], "big")
            took = time.time() - t0
            self.assertEqual(code, 1001, "quiet connection not closed in 10 s")
            self.assertGreaterEqual(took, 2.8)  # 3 s, never early: (3, 5] s on a 1 s sweep
            self.assertGreaterEqual(pings, 1, "the edge never pinged the quiet connection")
            self.assertTrue(quiet.wait_eof(5))
            quiet.close()
            self.assertEqual(edge_metric(e, "herald_edge_closes_total", 'reason="idle_timeout"'), 1)
            pub = LinkClient(b.link_port)
            self.assertEqual(pub.publish("idle.t", "1")[:3], [PUBACK, 1, 1])
            self.assertEqual(chatty.recv_text(), envelope("idle.t", 1, 1))
            pub.close()
            chatty.close()
            e.check_clean_exit()
            b.check_clean_exit()
        finally:
            for p in (e, b):
                if p.alive():
                    p.stop()


class BrokerKeepalive(unittest.TestCase):
    """The edge's link keepalive: a PING every broker-ping-interval, and the
    link dropped after three intervals with nothing received. Any frame
    counts: a broker whose PONGs wait behind a long fan-out backlog is busy,
    not dead, and dropping it loses what is published while re-linking."""

    def start(self):
        fake = FakeBroker()
        e = Edge(fake.port, "--broker-ping-interval", "300ms", "--reconnect-min", "50ms",
                 "--reconnect-max", "100ms")
        self.addCleanup(fake.close)
        self.addCleanup(lambda: e.alive() and e.stop())
        self.assertTrue(wait_until(lambda: len(fake.conns) == 1, 5), "the edge never linked")
        return fake, e

    def test_link_kept_while_events_flow_without_pongs(self):
        fake, e = self.start()
        ws = RawWs(e.port, "/ws?topic=ka.t&format=raw")
        self.addCleanup(ws.close)
        for i in range(30):  # 3 s = 10 intervals, an event every 100 ms, never a PONG
            fake.send([MSG, "ka.t", i + 1, b"e%d" % i])
            self.assertEqual(ws.recv_data()[1], b"e%d" % i)
            time.sleep(0.1)
        self.assertGreaterEqual(fake.pings, 5, "the edge stopped pinging")
        self.assertEqual(len(fake.conns), 1, "the edge dropped a link that was sending events")
        self.assertEqual(edge_metric(e, "herald_edge_broker_reconnects_total"), 0)
        self.assertEqual(http(e.port, "GET", "/healthz")[0], 200)
        e.check_clean_exit()

    def test_link_dropped_after_three_silent_intervals(self):
        fake, e = self.start()
        t0 = time.time()
        self.assertTrue(wait_until(lambda: len(fake.conns) >= 2, 5),
                        "the edge kept a link on which nothing came back")
        self.assertGreaterEqual(time.time() - t0, 0.6)  # 3 intervals of 300 ms, less the first
        self.assertTrue(e.wait_log('reason="ping timeout"', 2))
        e.check_clean_exit()


if __name__ == "__main__":
    unittest.main(verbosity=2)

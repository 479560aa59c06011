"""Broker: bad input on every port gets its error and only that connection
is closed; slow consumers are cut off while fast ones keep receiving; the
HTTP API's status codes; requirepass on all endpoints; 1,000 subscribers x
1,000 events in order; SIGTERM exits 0 with clients connected."""
import json
import os
import signal
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "support"))
from harness import (Broker, LinkClient, RespClient, RespError, http, run_cli, metric, mp_pack,
                     wait_until, MSG, ERR, HELLO, PING, PONG, PUB, SUB, WELCOME)


class BadInput(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.b = Broker("--max-payload", "4kb")

    @classmethod
    def tearDownClass(cls):
        cls.b.check_clean_exit(cls)

    def setUp(self):
        # A bystander on each subscriber endpoint must keep receiving.
        self.link = LinkClient(self.b.link_port)
        self.link.sub("by.stander")
        self.link.sync()
        self.resp = RespClient(self.b.resp_port)
        self.assertEqual(self.resp.call("SUBSCRIBE", "by.stander"), [b"subscribe", b"by.stander", 1])

    def tearDown(self):
        pub = LinkClient(self.b.link_port)
        self.assertEqual(pub.publish("by.stander", b"still here")[2], 2)
        pub.close()
        self.assertEqual(self.link.frame()[3], b"still here")
        self.assertEqual(self.resp.reply(), [b"message", b"by.stander", b"still here"])
        self.link.close()
        self.resp.close()

    def expect_link_err(self, raw, code, hello=True):
        l = LinkClient(self.b.link_port, hello=hello)
        l.sock.sendall(raw)
        f = l.frame()
        self.assertEqual(f[0], ERR, f)
        self.assertEqual(f[1], code, f)
        self.assertTrue(l.closed_by_server(), "link not closed after ERR")

    def test_link_garbage(self):
        self.expect_link_err(b"\xc1\xc1\xc1garbage", "protocol")

    def test_link_not_an_array(self):
        self.expect_link_err(mp_pack("hello"), "protocol")

    def test_link_unknown_type(self):
        self.expect_link_err(mp_pack([99, "x"]), "protocol")

    def test_link_wrong_types(self):
        self.expect_link_err(mp_pack([SUB, 42]), "protocol")

    def test_link_pub_before_hello(self):
        self.expect_link_err(mp_pack([PUB, "a.b", b"x", 1]), "protocol", hello=False)

    def test_link_oversize_payload(self):
        self.expect_link_err(mp_pack([PUB, "a.b", b"x" * 5000, 1]), "oversize")

    def test_link_oversize_frame_incomplete(self):
        # A bin header announcing 1 GiB: the broker must refuse it from the
        # header alone, before any of the payload arrives. (Only the header is
        # sent: a close with unread input would reset the connection and
        # could eat the ERR.)
        l = LinkClient(self.b.link_port)
        l.sock.sendall(b"\x94\x05\xa3a.b\xc6\x40\x00\x00\x00")
        f = l.frame()
        self.assertEqual(f[0], ERR)
        self.assertTrue(l.closed_by_server())

    def test_link_bad_topic_keeps_link(self):
        l = LinkClient(self.b.link_port)
        l.send([SUB, "a..b"])
        f = l.frame()
        self.assertEqual(f[:2], [ERR, "bad_topic"])
        l.send([PUB, "a.*", b"x", 5])
        self.assertEqual(l.frame()[:2], [ERR, "bad_topic"])
        l.sync()
        l.close()

    def test_resp_protocol_error(self):
        c = RespClient(self.b.resp_port)
        c.send_raw(b"*1\r\n$x\r\n")
        r = c.reply()
        self.assertIsInstance(r, RespError)
        self.assertTrue(str(r).startswith("ERR Protocol error"), r)
        self.assertTrue(c.closed_by_server())

    def test_resp_oversize_payload(self):
        c = RespClient(self.b.resp_port)
        r = c.call("PUBLISH", "a.b", "x" * 5000)
        self.assertIsInstance(r, RespError)
        self.assertEqual(c.call("PING"), b"PONG")
        c.close()

    def test_http_errors(self):
        p = self.b.http_port
        self.assertEqual(http(p, "POST", "/v1/publish/a..b", body=b"x")[0], 400)
        self.assertEqual(http(p, "POST", "/v1/publish/a.*", body=b"x")[0], 400)
        self.assertEqual(http(p, "POST", "/v1/publish/", body=b"x")[0], 400)
        self.assertEqual(http(p, "POST", "/v1/publish/a.b", body=b"x" * 5000)[0], 413)
        st, hdrs, _ = http(p, "GET", "/v1/publish/a.b")
        self.assertEqual(st, 405)
        self.assertEqual(http(p, "GET", "/nope")[0], 404)
        st, _, body = http(p, "GET", "/healthz")
        self.assertEqual(st, 200)
        self.assertEqual(json.loads(body)["status"], "ok")
        st, hdrs, body = http(p, "GET", "/metrics")
        self.assertEqual(st, 200)
        self.assertTrue(hdrs["content-type"].startswith("text/plain"))
        text = body.decode()
        for name in ("herald_connections", "herald_subscriptions", "herald_events_published_total",
                     "herald_events_delivered_total", "herald_bytes_out_total", "herald_drops_total"):
            self.assertIn("# TYPE " + name + " ", text)

    def test_http_garbage(self):
        s = socket.create_connection(("127.0.0.1", self.b.http_port), timeout=5)
        s.sendall(b"\x00\x01garbage garbage\r\n\r\n")
        data = s.recv(4096)
        s.close()
        self.assertTrue(data == b"" or data.startswith(b"HTTP/1.1 400"), data)


class SlowConsumer(unittest.TestCase):
    def test_slow_subscriber_is_cut_off_fast_ones_keep_receiving(self):
        b = Broker("--client-output-limit", "256kb")
        try:
            slow = socket.socket()
            slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            slow.connect(("127.0.0.1", b.resp_port))
            slow.sendall(b"SUBSCRIBE big.topic\r\n")
            time.sleep(0.2)
            fast = LinkClient(b.link_port)
            fast.sub("big.topic")
            fast.sync()
            pub = RespClient(b.resp_port)
            payload = b"p" * 16384
            received = 0
            n_events = 400
            for i in range(n_events):
                pub.call("PUBLISH", "big.topic", payload)
                f = fast.frame()
                self.assertEqual((f[0], f[2]), (MSG, i + 1))
                received += 1
            self.assertEqual(received, n_events)
            st, _, body = http(b.http_port, "GET", "/metrics")
            self.assertEqual(metric(body.decode(), "herald_slow_consumers_total"), 1)
            # The slow socket is closed by the broker: reading drains then hits EOF.
            slow.settimeout(5)
            total = 0
            while True:
                chunk = slow.recv(1 << 20)
                if not chunk:
                    break
                total += len(chunk)
            self.assertLess(total, n_events * len(payload))
            self.assertTrue(b.alive())
            fast.close()
            pub.close()
        finally:
            b.check_clean_exit(self)


    def test_edge_links_get_edge_output_limit(self):
        """An edge link (role "edge") is bounded by edge-output-limit, a CLI
        link by client-output-limit: the same backlog cuts only the latter."""
        b = Broker("--client-output-limit", "256kb", "--edge-output-limit", "64mb")
        try:
            edge = LinkClient(b.link_port, role="edge", rcvbuf=4096)
            edge.sub("burst.>")
            edge.sync()
            cli = LinkClient(b.link_port, role="cli", rcvbuf=4096)
            cli.sub("burst.>")
            cli.sync()
            pub = LinkClient(b.link_port)
            for i in range(200):  # ~3 MiB: over 256kb plus socket buffers, far under 64mb
                pub.publish("burst.x", b"p" * 16384, req_id=i)
            st, _, body = http(b.http_port, "GET", "/metrics")
            self.assertEqual(metric(body.decode(), "herald_slow_consumers_total"), 1)
            self.assertTrue(cli.closed_by_server(5))
            got = 0
            while got < 200:
                f = edge.frame()
                self.assertEqual(f[0], MSG)
                got += 1
            pub.close()
            edge.close()
        finally:
            b.check_clean_exit(self)


    def test_edge_behind_on_fanout_still_has_pings_and_subs_read(self):
        """An edge far behind on its fan-out (output over the 256 KiB mark at
        which a link's reading pauses) still has its PING and the SUB after
        it read: only a request whose reply is queued pauses reading. (When
        every frame paused it, the PING went unanswered until the edge caught
        up, and an edge drops a link after 30 s without a PONG.)"""
        b = Broker()
        try:
            edge = LinkClient(b.link_port, role="edge", rcvbuf=4096)
            edge.sub("burst.>")
            edge.sync()
            pub = LinkClient(b.link_port)
            for i in range(200):  # ~3 MiB queued to the edge, which reads nothing meanwhile
                pub.publish("burst.x", b"p" * 16384, req_id=i)
            edge.send([PING, 5])
            edge.send([SUB, "later.x"])
            self.assertTrue(wait_until(lambda: pub.publish("later.x", b"hi", req_id=9)[2] == 1, 5),
                            "the SUB sent behind the PING was not applied")
            bursts, pongs, later = 0, 0, 0
            while later == 0:
                f = edge.frame()
                if f[0] == PONG:
                    self.assertEqual((f[1], bursts), (5, 200))  # in order, after the backlog
                    pongs += 1
                elif f[0] == MSG and f[1] == "burst.x":
                    bursts += 1
                elif f[0] == MSG and f[1] == "later.x":
                    later += 1
                else:
                    self.fail("unexpected frame %r" % (f[:2],))
            self.assertEqual((bursts, pongs), (200, 1))
            pub.close()
            edge.close()
        finally:
            b.check_clean_exit(self)


class Auth(unittest.TestCase):
    def test_requirepass_on_every_endpoint(self):
        b = Broker("--requirepass", "s3cret")
        try:
            c = RespClient(b.resp_port)
            self.assertEqual(c.call("PUBLISH", "a.b", "x"), RespError("NOAUTH Authentication required."))
            self.assertIsInstance(c.call("AUTH", "wrong"), RespError)
            self.assertEqual(c.call("AUTH", "s3cret"), b"OK")
            self.assertEqual(c.call("PUBLISH", "a.b", "x"), 0)
            c.close()
            st, _, _ = http(b.http_port, "POST", "/v1/publish/a.b", body=b"x")
            self.assertEqual(st, 401)
            st, _, _ = http(b.http_port, "POST", "/v1/publish/a.b", body=b"x",
                            headers={"Authorization": "Bearer s3cret"})
            self.assertEqual(st, 200)
            l = LinkClient(b.link_port, hello=False)
            l.send([HELLO, 1, "test", "t", "nope"])
            self.assertEqual(l.frame()[:2], [ERR, "auth"])
            self.assertTrue(l.closed_by_server())
            l = LinkClient(b.link_port, secret="s3cret")
            self.assertEqual(l.publish("a.b", b"x")[0], 6)
            l.close()
            p = run_cli("herald", "--broker", "127.0.0.1:%d" % b.link_port, "publish", "a.b", "x",
                        check=False)
            self.assertEqual(p.returncode, 1)
        finally:
            b.check_clean_exit(self)


class FanOut(unittest.TestCase):
    def test_1000_subscribers_1000_events_in_order(self):
        import selectors
        b = Broker("--max-clients", "5000")
        n_subs, n_events = 1000, 1000
        socks = []
        try:
            for _ in range(n_subs):
                s = socket.create_connection(("127.0.0.1", b.resp_port))
                s.sendall(b"SUBSCRIBE fan.out\r\n")
                socks.append(s)
            expect_sub = b"*3\r\n$9\r\nsubscribe\r\n$7\r\nfan.out\r\n:1\r\n"
            for s in socks:
                s.settimeout(10)
                got = b""
                while len(got) < len(expect_sub):
                    got += s.recv(len(expect_sub) - len(got))
                self.assertEqual(got, expect_sub)
                s.setblocking(False)
            pub = LinkClient(b.link_port)
            # Publish in batches: PUB without req_id needs no reply.
            batch = b"".join(mp_pack([PUB, "fan.out", b"%06d" % i, None]) for i in range(n_events))
            pub.sock.sendall(batch)
            pub.sync()
            expected = b"".join(b"*3\r\n$7\r\nmessage\r\n$7\r\nfan.out\r\n$6\r\n%06d\r\n" % i
                                for i in range(n_events))
            sel = selectors.DefaultSelector()
            bufs = {}
            for s in socks:
                sel.register(s, selectors.EVENT_READ)
                bufs[s] = bytearray()
            done = 0
            deadline = time.time() + 120
            while done < n_subs and time.time() < deadline:
                for key, _ in sel.select(1):
                    s = key.fileobj
                    chunk = s.recv(1 << 20)
                    if not chunk:
                        self.fail("subscriber closed early")
                    bufs[s] += chunk
                    if len(bufs[s]) >= len(expected):
                        sel.unregister(s)
                        done += 1
            self.assertEqual(done, n_subs)
            for s in socks:
                self.assertEqual(bytes(bufs[s]), expected)
            st, _, body = http(b.http_port, "GET", "/metrics")
            self.assertEqual(metric(body.decode(), "herald_events_delivered_total"), n_subs * n_events)
            pub.close()
        finally:
            for s in socks:
                s.close()
            b.check_clean_exit(self)


class Signals(unittest.TestCase):
    def test_sigterm_with_clients_connected_exits_0(self):
        b = Broker()
        l = LinkClient(b.link_port)
        l.sub("x.>")
        l.sync()
        c = RespClient(b.resp_port)
        c.call("PSUBSCRIBE", "x.>")
        b.check_clean_exit(self, signal.SIGTERM)
        self.assertTrue(l.closed_by_server(2))
        self.assertTrue(c.closed_by_server(2))

    def test_sigint_exits_0(self):
        b = Broker()
        b.check_clean_exit(self, signal.SIGINT)

    def test_bad_config_names_file_and_line(self):
        import subprocess, tempfile
        from harness import binary
        with tempfile.NamedTemporaryFile("w", suffix=".conf", delete=False) as f:
            f.write("# comment\nlink-port 7400\nno-such-directive 1\n")
        p = subprocess.run([binary("herald-broker"), f.name], capture_output=True, timeout=10)
        os.unlink(f.name)
        self.assertEqual(p.returncode, 2)
        self.assertIn(("%s:3" % f.name).encode(), p.stderr)
        self.assertIn(b"no-such-directive", p.stderr)

    def test_help(self):
        import subprocess
        from harness import binary
        p = subprocess.run([binary("herald-broker"), "--help"], capture_output=True, timeout=10)
        self.assertEqual(p.returncode, 0)
        for d in (b"--link-port", b"--resp-port", b"--http-port", b"--requirepass",
                  b"--client-output-limit", b"--max-payload"):
            self.assertIn(d, p.stdout)


if __name__ == "__main__":
    unittest.main(verbosity=2)

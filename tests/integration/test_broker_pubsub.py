"""Broker: events published over RESP, HTTP and the link reach subscribers on
RESP, the link and the herald CLI; wildcards; one delivery per link with
overlapping patterns, one pmessage per matching pattern on RESP."""
import json
import os
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "support"))
from harness import (Broker, LinkClient, RespClient, RespError, http, run_cli, binary, MSG,
                     SUB, UNSUB, PUB, PUBACK, ERR, wait_until, metric)


class PubSub(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.b = Broker()

    @classmethod
    def tearDownClass(cls):
        cls.b.check_clean_exit(cls)

    def resp_sub(self, cmd, *patterns):
        c = RespClient(self.b.resp_port)
        c.send(cmd, *patterns)
        for i, p in enumerate(patterns):
            r = c.reply()
            self.assertEqual(r, [cmd.lower().encode(), p.encode(), i + 1])
        return c

    def link_sub(self, *patterns):
        l = LinkClient(self.b.link_port)
        for p in patterns:
            l.sub(p)
        l.sync()
        return l

    def test_redis_cli_publish_reaches_link_resp_and_cli_subscribers(self):
        link = self.link_sub("user.42.mail")
        resp = self.resp_sub("SUBSCRIBE", "user.42.mail")
        before = self._subscriptions()
        cli = subprocess.Popen([binary("herald"), "--broker", "127.0.0.1:%d" % self.b.link_port,
                                "subscribe", "--count", "1", "--timeout", "10", "user.*.mail"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        # The CLI subscribes asynchronously: publish until it has joined.
        self.assertTrue(wait_until(lambda: self._subscriptions() >= before + 1, 10))
        out = run_cli("redis-cli", "-p", str(self.b.resp_port), "PUBLISH", "user.42.mail", "hi")
        self.assertEqual(out.stdout.strip(), b"3")
        f = link.frame()
        self.assertEqual(f[0], MSG)
        self.assertEqual(f[1], "user.42.mail")
        self.assertEqual(f[3], b"hi")
        seq = f[2]
        self.assertEqual(resp.reply(), [b"message", b"user.42.mail", b"hi"])
        cli_out, cli_err = cli.communicate(timeout=15)
        self.assertEqual(cli.returncode, 0, cli_err)
        self.assertEqual(cli_out.decode().strip(), "user.42.mail %d hi" % seq)
        link.close()
        resp.close()

    def _subscriptions(self):
        st, _, body = http(self.b.http_port, "GET", "/metrics")
        return metric(body.decode(), "herald_subscriptions") or 0

    def test_http_publish_and_link_publish(self):
        link = self.link_sub("orders.>")
        st, hdrs, body = http(self.b.http_port, "POST", "/v1/publish/orders.eu.7", body=b'{"n":1}')
        self.assertEqual(st, 200, body)
        reply = json.loads(body)
        self.assertEqual(reply["receivers"], 1)
        self.assertEqual(reply["seq"], 1)
        f = link.frame()
        self.assertEqual(f, [MSG, "orders.eu.7", 1, b'{"n":1}'])
        pub = LinkClient(self.b.link_port)
        ack = pub.publish("orders.eu.7", b"second", req_id=99)
        self.assertEqual(ack, [PUBACK, 99, 1, 2])
        self.assertEqual(link.frame(), [MSG, "orders.eu.7", 2, b"second"])
        out = run_cli("herald", "--broker", "127.0.0.1:%d" % self.b.link_port, "publish",
                      "orders.eu.7", "-", input=b"third")
        self.assertEqual(out.stdout.decode().strip(), "receivers=1 seq=3")
        self.assertEqual(link.frame(), [MSG, "orders.eu.7", 3, b"third"])
        pub.close()
        link.close()

    def test_wildcards(self):
        cases = [
            ("a.*.c", "a.b.c", True), ("a.*.c", "a.b.b.c", False), ("a.>", "a.b", True),
            ("a.>", "a.b.c.d", True), ("a.>", "a", False), (">", "x", True),
            ("*", "x", True), ("*", "x.y", False), ("a.*", "a.b.c", False),
        ]
        for pattern, topic, want in cases:
            with self.subTest(pattern=pattern, topic=topic):
                l = self.link_sub(pattern)
                pub = LinkClient(self.b.link_port)
                pub.publish(topic, b"x")
                pub.close()
                if want:
                    self.assertEqual(l.frame()[1], topic)
                else:
                    l.sync()  # nothing queued before the PONG
                l.send([UNSUB, pattern])
                l.close()

    def test_link_gets_one_delivery_with_overlapping_patterns(self):
        link = self.link_sub("ov.x.y", "ov.*.y", "ov.>", "ov.x.>")
        resp = self.resp_sub("PSUBSCRIBE", "ov.*.y", "ov.>")
        pub = LinkClient(self.b.link_port)
        ack = pub.publish("ov.x.y", b"once")
        pub.close()
        self.assertEqual(ack[2], 1 + 2)  # one link + two RESP pattern matches
        self.assertEqual(link.frame()[1:], ["ov.x.y", 1, b"once"])
        link.sync()  # no second MSG before the PONG
        got = sorted([tuple(resp.reply()), tuple(resp.reply())])
        self.assertEqual(got, [(b"pmessage", b"ov.*.y", b"ov.x.y", b"once"),
                               (b"pmessage", b"ov.>", b"ov.x.y", b"once")])
        link.close()
        resp.close()

    def test_resp_commands(self):
        c = RespClient(self.b.resp_port)
        self.assertEqual(c.call("PING"), b"PONG")
        self.assertEqual(c.call("ECHO", "hey"), b"hey")
        self.assertEqual(c.call("PUBLISH", "nobody.listens", "x"), 0)
        self.assertEqual(c.call("NOSUCH", "a"), RespError("ERR unknown command 'NOSUCH', with args beginning with: 'a' "))
        self.assertEqual(c.call("PUBLISH", "x"), RespError("ERR wrong number of arguments for 'publish' command"))
        r = c.call("PUBLISH", "a.*", "x")
        self.assertIsInstance(r, RespError)
        self.assertTrue(str(r).startswith("ERR invalid topic"), r)
        self.assertIsInstance(c.call("HELLO", "3"), RespError)
        self.assertIn(b"# Server", c.call("INFO"))
        # inline command and pipelining
        c.send_raw(b"PING\r\nECHO two\r\n*1\r\n$4\r\nPING\r\n")
        self.assertEqual([c.reply(), c.reply(), c.reply()], [b"PONG", b"two", b"PONG"])
        # subscribed mode restrictions
        c.call("SUBSCRIBE", "m.n")
        r = c.call("PUBLISH", "m.n", "x")
        self.assertIsInstance(r, RespError)
        self.assertEqual(c.call("PING"), [b"pong", b""])
        self.assertEqual(c.call("UNSUBSCRIBE"), [b"unsubscribe", b"m.n", 0])
        self.assertEqual(c.call("QUIT"), b"OK")
        self.assertTrue(c.closed_by_server())

    def test_redis_cli_psubscribe(self):
        p = subprocess.Popen(["redis-cli", "-p", str(self.b.resp_port), "PSUBSCRIBE", "user.*.mail"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            def published():
                r = RespClient(self.b.resp_port).call("PUBLISH", "user.7.mail", "ping")
                return r == 1
            self.assertTrue(wait_until(published, 10))
            time.sleep(0.3)
        finally:
            p.terminate()
            out, _ = p.communicate(timeout=5)
        self.assertIn(b"pmessage", out)
        self.assertIn(b"user.7.mail", out)

    def test_sequence_per_topic(self):
        pub = LinkClient(self.b.link_port)
        self.assertEqual(pub.publish("seq.a", b"1")[3], 1)
        self.assertEqual(pub.publish("seq.b", b"1")[3], 1)
        self.assertEqual(pub.publish("seq.a", b"2")[3], 2)
        pub.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)

"""Edge: signed subscription tokens (docs/protocol.md §3.10) against the
real binaries. Good tokens come from `herald token` (the operators' tool,
its secret file shared with the edge's auth-secret-file); malformed ones
from the HS256 signer below (the standard library's hmac), which can put
anything in the header and the claims. Raw sockets check the exact HTTP
answers; Node's `ws` package checks what a browser sees, end to end: a
client holding user 42's token never receives an event of user 43's,
whatever it asks for. Also refresh before expiry, expiry while connected
(token_expired, close 4001), the deadline to authenticate (4001), and the
start-up checks of the auth directives."""
import base64
import hashlib
import hmac
import json
import os
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "support"))
sys.path.insert(0, os.path.dirname(__file__))
from harness import (Broker, Edge, Process, binary, ensure_node_modules, free_port, run_cli,
                     wait_until)
from rawws import RawWs
from test_edge_ws import NodeWs, broker_metric, edge_metric, envelope, redis_publish

SECRET = b"integration-test-secret-of-40-bytes-long"


def b64url(data):
    if isinstance(data, str):
        data = data.encode()
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hs256(header, claims, key=SECRET, sig=None):
    """A compact JWS over header and claims (dicts or raw text) signed with
    HMAC-SHA256 under key, whatever the header says; sig replaces the signature."""
    h = b64url(header if isinstance(header, str) else json.dumps(header))
    c = b64url(claims if isinstance(claims, str) else json.dumps(claims))
    if sig is None:
        sig = b64url(hmac.new(key, (h + "." + c).encode(), hashlib.sha256).digest())
    return "%s.%s.%s" % (h, c, sig)


def flip_sig(tok):
    """tok with one character of its signature changed (still base64url)."""
    c = tok[-2]
    return tok[:-2] + ("A" if c != "A" else "B") + tok[-1]


FAR = 4000000000
GOOD = {"sub": "42", "exp": FAR, "topics": ["mail.user.{sub}.>"]}
HS = {"alg": "HS256", "typ": "JWT"}

# (name, token, the error code an auth op gets)
BAD_TOKENS = [
    ("expired", hs256(HS, dict(GOOD, exp=1000)), "token_expired"),
    ("not yet valid", hs256(HS, dict(GOOD, nbf=FAR - 10)), "unauthorized"),
    ("bad signature", hs256(HS, GOOD, key=b"another-secret-of-forty-bytes-in-length!"),
     "unauthorized"),
    ("signature changed", flip_sig(hs256(HS, GOOD)), "unauthorized"),
    ("alg none", hs256({"alg": "none"}, GOOD, sig=""), "unauthorized"),
    ("alg none, signed", hs256({"alg": "none"}, GOOD), "unauthorized"),
    ("alg HS384", hs256({"alg": "HS384"}, GOOD), "unauthorized"),
    ("alg RS256", hs256({"alg": "RS256", "typ": "JWT"}, GOOD), "unauthorized"),
    ("alg hs256", hs256({"alg": "hs256"}, GOOD), "unauthorized"),
    ("no alg", hs256({"typ": "JWT"}, GOOD), "unauthorized"),
    ("no sub", hs256(HS, {"exp": FAR, "topics": ["a"]}), "unauthorized"),
    ("no exp", hs256(HS, {"sub": "42", "topics": ["a"]}), "unauthorized"),
    ("no topics", hs256(HS, {"sub": "42", "exp": FAR}), "unauthorized"),
    ("exp a string", hs256(HS, dict(GOOD, exp=str(FAR))), "unauthorized"),
    ("topics not a list", hs256(HS, dict(GOOD, topics="mail.>")), "unauthorized"),
    ("sub a wildcard", hs256(HS, dict(GOOD, sub="*")), "unauthorized"),
    ("sub with a dot", hs256(HS, dict(GOOD, sub="42.x")), "unauthorized"),
    ("two parts", ".".join(hs256(HS, GOOD).split(".")[:2]), "unauthorized"),
    ("not base64", "###." + hs256(HS, GOOD).split(".", 1)[1], "unauthorized"),
]


class EdgeAuth(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        ensure_node_modules()
        cls.tmp = tempfile.TemporaryDirectory()
        cls.secret_file = os.path.join(cls.tmp.name, "token.key")
        with open(cls.secret_file, "wb") as f:
            f.write(SECRET + b"\n")
        cls.b = Broker()
        cls.e = Edge(cls.b.link_port, "--auth-secret-file", cls.secret_file,
                     "--handshake-timeout", "2s")

    @classmethod
    def tearDownClass(cls):
        try:
            cls.e.check_clean_exit()
            cls.b.check_clean_exit()
        finally:
            cls.tmp.cleanup()

    def setUp(self):
        self.node = NodeWs()
        self.url = "ws://127.0.0.1:%d/ws" % self.e.port

    def tearDown(self):
        self.node.stop()
        self.doCleanups()  # raw sockets too, before the barrier
        self.assertTrue(wait_until(lambda: edge_metric(self.e, "herald_edge_connections") == 1, 30))
        self.assertTrue(wait_until(lambda: broker_metric(self.b, "herald_subscriptions") == 0, 10))

    def token(self, sub, topics, ttl="1h"):
        out = run_cli("herald", "token", "--secret-file", self.secret_file, "--sub", sub,
                      "--topics", topics, "--ttl", ttl)
        return out.stdout.decode().strip()

    def wait_subs(self, n):
        self.assertTrue(wait_until(lambda: broker_metric(self.b, "herald_subscriptions") == n, 10),
                        "broker subscriptions %s, want %d"
                        % (broker_metric(self.b, "herald_subscriptions"), n))

    def upgrade(self, target, extra=""):
        """A raw upgrade: (status, headers, body, socket)."""
        ws = RawWs(self.e.port)
        self.addCleanup(ws.close)
        key = base64.b64encode(os.urandom(16)).decode()
        ws.send(RawWs.upgrade_head(target, key, extra=extra))
        status, headers, body = ws.read_http()
        return status, headers, body, ws

    def assert_401(self, target, extra="", invalid=True):
        st, headers, body, ws = self.upgrade(target, extra)
        self.assertEqual(st, 401, body)
        want = 'Bearer error="invalid_token"' if invalid else "Bearer"
        self.assertEqual(headers.get("www-authenticate"), want)
        self.assertEqual(headers.get("connection"), "close")
        self.assertTrue(ws.wait_eof(5), "the edge kept the connection after 401")
        return body

    # ------------------------------------------------------------------ start

    def test_ready_says_required_and_no_open_warning(self):
        self.assertTrue(self.e.wait_log("auth=required", 1), self.e.log())
        self.assertNotIn("event=auth_off", self.e.log())

    # ------------------------------------------------------------------ upgrade

    def test_bad_tokens_refused_at_the_upgrade_401(self):
        failed0 = edge_metric(self.e, "herald_edge_auth_total", 'result="refused"')
        for name, tok, _ in BAD_TOKENS:
            with self.subTest(name):
                self.assert_401("/ws?token=%s&topic=mail.user.42.inbox" % tok)
                self.assert_401("/ws", "Authorization: Bearer %s\r\n" % tok)
        self.assertEqual(edge_metric(self.e, "herald_edge_auth_total", 'result="refused"'),
                         failed0 + 2 * len(BAD_TOKENS))
        self.assertGreaterEqual(edge_metric(self.e, "herald_edge_handshake_failures_total",
                                            'reason="401"'), 2 * len(BAD_TOKENS))

    def test_topic_without_token_401_and_two_tokens_400(self):
        body = self.assert_401("/ws?topic=mail.user.42.inbox", invalid=False)
        self.assertIn(b"token", body)
        tok = self.token("42", "mail.user.{sub}.>")
        st, _, body, _ = self.upgrade("/ws?token=%s" % tok, "Authorization: Bearer %s\r\n" % tok)
        self.assertEqual((st, body), (400, b"more than one token\n"))

    def test_node_ws_sees_401(self):
        self.node.cmd(cmd="open", id="x", url=self.url + "?token=" + BAD_TOKENS[0][1])
        ev = self.node.next("x")
        self.assertEqual(ev["ev"], "error")
        self.assertIn("401", ev["message"])

    def test_good_token_by_header_and_query(self):
        tok = self.token("42", "mail.user.{sub}.>")
        st, headers, _, ws = self.upgrade("/ws?topic=mail.user.42.hq",
                                          "Authorization: bearer %s\r\n" % tok)
        self.assertEqual(st, 101)
        ev = self.node.open("q", self.url + "?token=%s&topic=mail.user.42.>" % tok)
        self.assertEqual(ev["ev"], "open")
        self.wait_subs(2)
        self.assertEqual(redis_publish(self.b, "mail.user.42.hq", "1"), 1)
        self.assertEqual(ws.recv_text(), envelope("mail.user.42.hq", 1, "1"))
        self.assertEqual(self.node.msg("q"), envelope("mail.user.42.hq", 1, "1"))

    # ------------------------------------------------------------------ end to end

    def test_user_42_never_receives_user_43s_events(self):
        """Node ws clients for users 42 and 43 with tokens from `herald
        token --topics 'mail.user.{sub}.>'`: each asks for the other's topics
        every way it can and is refused; events published to both users
        reach exactly their owner."""
        t42 = self.token("42", "mail.user.{sub}.>")
        t43 = self.token("43", "mail.user.{sub}.>")
        self.node.open("u42", self.url + "?token=%s&topic=mail.user.42.>" % t42)
        self.node.open("u43", self.url + "?token=%s" % t43)
        self.node.send("u43", {"op": "sub", "topic": "mail.user.43.>", "id": 1})
        self.assertEqual(self.node.msg("u43"), '{"op":"ok","id":1}')
        for i, pattern in enumerate(["mail.user.43.inbox", "mail.user.43.>", "mail.user.*.inbox",
                                     "mail.user.*.>", "mail.>", ">", "*.user.43.inbox",
                                     "mail.user.4*.inbox"], 10):
            self.node.send("u42", {"op": "sub", "topic": pattern, "id": i})
            reply = json.loads(self.node.msg("u42"))
            if pattern == "mail.user.4*.inbox":  # a literal token "4*" is not a pattern
                self.assertEqual(reply["code"], "bad_topic", reply)
                continue
            self.assertEqual((reply["op"], reply["id"], reply["code"]), ("error", i, "forbidden"),
                             pattern)
        # The 42 client can still widen within its own subtree.
        self.node.send("u42", {"op": "sub", "topic": "mail.user.42.*", "id": 2})
        self.assertEqual(self.node.msg("u42"), '{"op":"ok","id":2}')
        self.wait_subs(3)
        events = [("mail.user.43.inbox", "a"), ("mail.user.42.inbox", "b"),
                  ("mail.user.43.x.y", "c"), ("mail.user.42.x.y", "d"), ("mail.user.43.inbox", "e"),
                  ("mail.user.42.inbox", "f")]
        for topic, data in events:
            redis_publish(self.b, topic, '"%s"' % data)
        got42 = [json.loads(self.node.msg("u42")) for _ in range(3)]
        got43 = [json.loads(self.node.msg("u43")) for _ in range(3)]
        self.assertEqual([(m["topic"], m["data"]) for m in got42],
                         [("mail.user.42.inbox", "b"), ("mail.user.42.x.y", "d"),
                          ("mail.user.42.inbox", "f")])
        self.assertEqual([(m["topic"], m["data"]) for m in got43],
                         [("mail.user.43.inbox", "a"), ("mail.user.43.x.y", "c"),
                          ("mail.user.43.inbox", "e")])
        # Barrier: one more event each, and nothing else came first.
        redis_publish(self.b, "mail.user.42.end", "1")
        redis_publish(self.b, "mail.user.43.end", "1")
        self.assertEqual(json.loads(self.node.msg("u42"))["topic"], "mail.user.42.end")
        self.assertEqual(json.loads(self.node.msg("u43"))["topic"], "mail.user.43.end")
        self.assertEqual(self.node.pending("u42") + self.node.pending("u43"), [])
        self.assertGreaterEqual(edge_metric(self.e, "herald_edge_forbidden_total"), 7)

    # ------------------------------------------------------------------ the auth op

    def test_auth_op_then_subscribe(self):
        self.node.open("a", self.url)
        self.node.send("a", {"op": "sub", "topic": "mail.user.42.inbox", "id": 1})
        self.assertEqual(json.loads(self.node.msg("a"))["code"], "unauthorized")
        self.node.send("a", {"op": "ping", "id": 2})
        self.assertEqual(self.node.msg("a"), '{"op":"pong","id":2}')
        for name, tok, code in BAD_TOKENS:
            with self.subTest(name):
                self.node.send("a", {"op": "auth", "token": tok, "id": name})
                reply = json.loads(self.node.msg("a"))
                self.assertEqual((reply["op"], reply["id"], reply["code"]), ("error", name, code))
        now = int(time.time())
        self.node.send("a", {"op": "auth", "token": self.token("42", "mail.user.{sub}.>"),
                             "id": 3})
        reply = json.loads(self.node.msg("a"))
        self.assertEqual((reply["op"], reply["id"]), ("ok", 3))
        self.assertTrue(now + 3500 <= reply["exp"] <= now + 3700, reply)
        self.node.send("a", {"op": "sub", "topic": "mail.user.42.op", "id": 4})
        self.assertEqual(self.node.msg("a"), '{"op":"ok","id":4}')
        self.wait_subs(1)
        self.assertEqual(redis_publish(self.b, "mail.user.42.op", "5"), 1)
        self.assertEqual(self.node.msg("a"), envelope("mail.user.42.op", 1, "5"))

    def test_subject_substitution(self):
        tok = self.token("alice", "user.{sub}.>,shared.{sub}.{sub}")
        self.node.open("s", self.url + "?token=" + tok)
        for i, (pattern, ok) in enumerate([("user.alice.x", True), ("shared.alice.alice", True),
                                           ("user.bob.x", False), ("shared.alice.bob", False),
                                           ("user.{sub}.x", False)]):
            self.node.send("s", {"op": "sub", "topic": pattern, "id": i})
            reply = json.loads(self.node.msg("s"))
            self.assertEqual(reply["op"] == "ok", ok, (pattern, reply))

    # ------------------------------------------------------------------ time

    def test_refresh_before_expiry_keeps_the_connection(self):
        self.node.open("r", self.url + "?token=%s&topic=mail.user.42.refresh"
                       % self.token("42", "mail.user.{sub}.>", ttl="3s"))
        self.wait_subs(1)
        time.sleep(1)
        self.node.send("r", {"op": "auth", "token": self.token("42", "mail.user.{sub}.>"),
                             "id": 1})
        self.assertEqual(json.loads(self.node.msg("r"))["op"], "ok")
        time.sleep(4)  # past the first token's exp and a sweep or two
        self.assertEqual(redis_publish(self.b, "mail.user.42.refresh", "1"), 1)
        self.assertEqual(self.node.msg("r"), envelope("mail.user.42.refresh", 1, "1"))
        self.assertEqual(self.node.pending("r"), [])

    def test_refresh_with_narrower_token_drops_and_reports(self):
        self.node.open("n", self.url + "?token=%s&topic=mail.user.42.inbox&topic=mail.user.42.>"
                       % self.token("42", "mail.user.{sub}.>"))
        self.wait_subs(2)
        self.node.send("n", {"op": "auth", "token": self.token("42", "mail.user.{sub}.inbox"),
                             "id": 1})
        self.assertEqual(json.loads(self.node.msg("n"))["op"], "ok")
        self.assertEqual(json.loads(self.node.msg("n")),
                         {"op": "error", "code": "forbidden", "topic": "mail.user.42.>",
                          "message": "the new token does not allow this pattern"})
        self.wait_subs(1)

    def test_expiry_while_connected_token_expired_then_4001(self):
        self.node.open("x", self.url + "?token=%s&topic=mail.user.42.inbox"
                       % self.token("42", "mail.user.{sub}.>", ttl="2s"))
        self.assertEqual(json.loads(self.node.msg("x", timeout=10)),
                         {"op": "error", "code": "token_expired", "message": "the token expired"})
        ev = self.node.next("x", timeout=10)
        self.assertEqual((ev["ev"], ev["code"], ev["reason"]), ("close", 4001, "token expired"))
        self.wait_subs(0)
        self.assertGreaterEqual(edge_metric(self.e, "herald_edge_closes_total", 'reason="4001"'), 1)

    def test_unauthenticated_deadline_4001(self):
        self.node.open("d", self.url)
        ev = self.node.next("d", timeout=10)
        self.assertEqual((ev["ev"], ev["code"], ev["reason"]),
                         ("close", 4001, "authentication required"))


class AuthStartup(unittest.TestCase):
    """The auth directives checked before the edge starts (exit 2 naming the
    problem), and the warnings it logs when it does start."""

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self.tmp.cleanup)

    def file(self, content):
        fd, path = tempfile.mkstemp(dir=self.tmp.name)
        with os.fdopen(fd, "wb") as f:
            f.write(content)
        return path

    def edge_argv(self, *extra):
        return [binary("herald-edge"), "--bind", "127.0.0.1", "--port", "0", "--workers", "1",
                "--broker", "127.0.0.1:1"] + list(extra)

    def test_refused_combinations_exit_2(self):
        cases = [
            (["--auth-required", "yes"], "needs auth-secret"),
            (["--auth-secret", "x" * 40, "--auth-secret-file", self.file(b"y" * 40)], "both set"),
            (["--auth-secret-file", self.file(b"\n")], "empty"),
            (["--auth-secret-file", os.path.join(self.tmp.name, "missing")], "cannot open"),
            (["--auth-required", "maybe"], "expected yes or no"),
            (["--auth-secret", "x" * 40, "--echo-path", "/echo"], "set echo-path-public yes"),
        ]
        for argv, want in cases:
            with self.subTest(want):
                p = subprocess.run(self.edge_argv(*argv), stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, timeout=20)
                self.assertEqual(p.returncode, 2, p.stderr)
                self.assertIn(want, p.stderr.decode())

    def test_public_echo_path_beside_required_tokens(self):
        """echo-path-public yes: /echo needs no token and is not closed at the
        authentication deadline, while /ws still requires one."""
        port = free_port()
        argv = self.edge_argv("--auth-secret", "x" * 40, "--echo-path", "/echo",
                              "--echo-path-public", "yes", "--handshake-timeout", "1s")
        argv[argv.index("--port") + 1] = str(port)
        e = Process(argv)
        self.addCleanup(e.stop)
        echo = RawWs(port, "/echo")
        ws = RawWs(port, "/ws")
        time.sleep(2.5)  # past handshake-timeout and a sweep
        echo.send_text("still here")
        self.assertEqual(echo.recv_text(), "still here")
        self.assertEqual(ws.expect_close(), (4001, "authentication required"))
        echo.close()
        ws.close()
        e.check_clean_exit()

    def test_warnings(self):
        e = Process(self.edge_argv())
        self.assertIn("event=auth_off", e.log())
        self.assertIn("anyone may subscribe to anything", e.log())
        self.assertIn("auth=off", e.log())
        e.check_clean_exit()
        e = Process(self.edge_argv("--auth-secret", "short"))
        self.assertIn("event=auth_secret_short bytes=5 min=32", e.log())
        self.assertNotIn("event=auth_off", e.log())
        e.check_clean_exit()
        e = Process(self.edge_argv("--auth-secret", "x" * 32, "--auth-required", "no"))
        self.assertIn("auth=optional", e.log())
        self.assertNotIn("event=auth_", e.log())
        e.check_clean_exit()


if __name__ == "__main__":
    unittest.main(verbosity=2)

"""`herald token` (tools/herald_token.c): the tokens it prints are checked
here with an independent HS256 verifier (the standard library's hmac,
hashlib, base64 and json), for each way of giving the key (--secret-file
with its trailing newline stripped, --secret, $HERALD_AUTH_SECRET),
--topics comma-separated and repeated, --ttl in each unit, --nbf and
--now; then every usage error exits 2 with a message naming the problem,
an unreadable secret file exits 1, and no broker is needed (HERALD_BROKER
points at a closed port throughout)."""
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
from harness import binary, free_port

SECRET = b"an-edge-secret-of-more-than-32-bytes!"


def b64url_decode(part):
    if "=" in part or "+" in part or "/" in part:
        raise ValueError("not unpadded base64url: %r" % part)
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def verify(token, key):
    """The token's (header, claims) when its HS256 signature under key is good."""
    head, body, sig = token.split(".")
    want = hmac.new(key, (head + "." + body).encode(), hashlib.sha256).digest()
    if not hmac.compare_digest(b64url_decode(sig), want):
        raise AssertionError("bad signature")
    return json.loads(b64url_decode(head)), json.loads(b64url_decode(body))


class HeraldToken(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.secret_file = self.path("secret", SECRET + b"\n")
        # Nothing listens there: the command must not try to reach a broker.
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("HERALD_")}
        self.env["HERALD_BROKER"] = "127.0.0.1:%d" % free_port()

    def tearDown(self):
        self.tmp.cleanup()

    def path(self, name, content):
        p = os.path.join(self.tmp.name, name)
        with open(p, "wb") as f:
            f.write(content)
        return p

    def run_token(self, *args, env=None, pre=()):
        e = dict(self.env)
        e.update(env or {})
        return subprocess.run([binary("herald")] + list(pre) + ["token"] + list(args),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=e, timeout=60)

    def mint(self, *args, key=SECRET, **kw):
        p = self.run_token(*args, **kw)
        self.assertEqual(p.returncode, 0, p.stderr)
        out = p.stdout.decode()
        self.assertTrue(out.endswith("\n") and out.count("\n") == 1, out)
        return verify(out.strip(), key)

    def usage_error(self, *args, want, **kw):
        p = self.run_token(*args, **kw)
        self.assertEqual(p.returncode, 2, (args, p.stdout, p.stderr))
        self.assertEqual(p.stdout, b"")
        self.assertIn(want, p.stderr.decode(), args)
        return p

    # ---- tokens ----------------------------------------------------------

    def test_issue_example(self):
        before = int(time.time())
        header, claims = self.mint("--secret-file", self.secret_file, "--sub", "42",
                                   "--topics", "mail.user.{sub}.>", "--ttl", "1h")
        after = int(time.time())
        self.assertEqual(header, {"alg": "HS256", "typ": "JWT"})
        self.assertEqual(sorted(claims), ["exp", "iat", "sub", "topics"])
        self.assertEqual(claims["sub"], "42")
        self.assertEqual(claims["topics"], ["mail.user.{sub}.>"])
        self.assertTrue(before <= claims["iat"] <= after, claims)
        self.assertEqual(claims["exp"] - claims["iat"], 3600)

    def test_secret_file_strips_one_newline(self):
        f = self.path("two", SECRET + b"\n\n")
        self.mint("--secret-file", f, "--sub", "a", "--topics", "x", key=SECRET + b"\n")
        f = self.path("none", SECRET)
        self.mint("--secret-file", f, "--sub", "a", "--topics", "x", key=SECRET)
        f = self.path("binary", b"\x00\xff" * 20 + b"\n")
        self.mint("--secret-file", f, "--sub", "a", "--topics", "x", key=b"\x00\xff" * 20)
        # The file's newline is part of nothing: the key without it verifies, with it does not.
        p = self.run_token("--secret-file", self.secret_file, "--sub", "a", "--topics", "x")
        with self.assertRaises(AssertionError):
            verify(p.stdout.decode().strip(), SECRET + b"\n")

    def test_secret_sources(self):
        self.mint("--secret", "from-the-command-line-0123456789ab", "--sub", "a", "--topics", "x",
                  key=b"from-the-command-line-0123456789ab")
        env = {"HERALD_AUTH_SECRET": "from-the-environment-0123456789abc"}
        self.mint("--sub", "a", "--topics", "x", env=env,
                  key=b"from-the-environment-0123456789abc")
        # An option beats the environment.
        self.mint("--secret-file", self.secret_file, "--sub", "a", "--topics", "x", env=env)
        self.mint("--secret", SECRET.decode(), "--sub", "a", "--topics", "x", env=env)

    def test_broker_secret_is_not_a_signing_key(self):
        env = {"HERALD_SECRET": "the-broker-requirepass-0123456789"}
        self.usage_error("--sub", "a", "--topics", "x", env=env, want="no secret")
        self.usage_error("--sub", "a", "--topics", "x", pre=("--secret", "requirepass-0123456789"),
                         want="no secret")

    def test_short_secret_warns(self):
        p = self.run_token("--secret", "short", "--sub", "a", "--topics", "x")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn(b"shorter than 32 bytes", p.stderr)
        verify(p.stdout.decode().strip(), b"short")
        p = self.run_token("--secret-file", self.secret_file, "--sub", "a", "--topics", "x")
        self.assertEqual(p.stderr, b"")

    def test_topics_lists(self):
        _, claims = self.mint("--secret-file", self.secret_file, "--sub", "u7",
                              "--topics", "a.{sub},b.*", "--topics", ">", "--topics", "c.{sub}.>")
        self.assertEqual(claims["topics"], ["a.{sub}", "b.*", ">", "c.{sub}.>"])
        self.assertEqual(claims["sub"], "u7")
        many = ",".join("t%d" % i for i in range(32))
        _, claims = self.mint("--secret-file", self.secret_file, "--sub", "a", "--topics", many)
        self.assertEqual(len(claims["topics"]), 32)

    def test_ttl_units(self):
        for ttl, seconds in (("30s", 30), ("5m", 300), ("2h", 7200), ("1d", 86400),
                             ("90", 90), ("1", 1), ("365d", 365 * 86400)):
            _, claims = self.mint("--secret-file", self.secret_file, "--sub", "a",
                                  "--topics", "x", "--ttl", ttl)
            self.assertEqual(claims["exp"] - claims["iat"], seconds, ttl)
        _, claims = self.mint("--secret-file", self.secret_file, "--sub", "a", "--topics", "x")
        self.assertEqual(claims["exp"] - claims["iat"], 3600, "default ttl")

    def test_nbf_and_now(self):
        _, claims = self.mint("--secret-file", self.secret_file, "--sub", "a", "--topics", "x",
                              "--now", "1000", "--ttl", "1h", "--nbf", "10m")
        self.assertEqual((claims["iat"], claims["nbf"], claims["exp"]), (1000, 1600, 4600))
        _, claims = self.mint("--secret-file", self.secret_file, "--sub", "a", "--topics", "x",
                              "--now", "0", "--ttl", "5s")
        self.assertEqual((claims["iat"], claims["exp"]), (0, 5))
        self.assertNotIn("nbf", claims)

    def test_odd_subjects_and_patterns(self):
        _, claims = self.mint("--secret-file", self.secret_file, "--sub", 'q"\\{}',
                              "--topics", 'a"b.c\\d.{sub}')
        self.assertEqual(claims["sub"], 'q"\\{}')
        self.assertEqual(claims["topics"], ['a"b.c\\d.{sub}'])
        _, claims = self.mint("--secret-file", self.secret_file, "--sub", "s" * 128, "--topics", "x")
        self.assertEqual(claims["sub"], "s" * 128)

    # ---- errors ----------------------------------------------------------

    def test_usage_errors(self):
        s = ("--secret-file", self.secret_file)
        cases = [
            ((), "--sub is required"),
            (s + ("--topics", "x"), "--sub is required"),
            (s + ("--sub", "a"), "--topics is required"),
            (("--sub", "a", "--topics", "x"), "no secret"),
            (s + ("--secret", "x" * 40, "--sub", "a", "--topics", "x"), "not both"),
            (s + ("--sub", "a.b", "--topics", "x"), "bad --sub"),
            (s + ("--sub", "*", "--topics", "x"), "bad --sub"),
            (s + ("--sub", ">", "--topics", "x"), "bad --sub"),
            (s + ("--sub", "a b", "--topics", "x"), "bad --sub"),
            (s + ("--sub", "", "--topics", "x"), "bad --sub"),
            (s + ("--sub", "s" * 129, "--topics", "x"), "bad --sub"),
            (s + ("--sub", "a", "--topics", "a..b"), "bad pattern 'a..b'"),
            (s + ("--sub", "a", "--topics", "a,,b"), "bad pattern ''"),
            (s + ("--sub", "a", "--topics", "a,"), "bad pattern ''"),
            (s + ("--sub", "a", "--topics", ""), "bad pattern ''"),
            (s + ("--sub", "a", "--topics", "a.>.b"), "bad pattern 'a.>.b'"),
            (s + ("--sub", "a", "--topics", "a*"), "bad pattern 'a*'"),
            (s + ("--sub", "a", "--topics", ",".join("t%d" % i for i in range(33))),
             "more than 32 patterns"),
            (s + ("--sub", "a", "--topics", "x", "--ttl", "1y"), "bad --ttl '1y'"),
            (s + ("--sub", "a", "--topics", "x", "--ttl", "0"), "bad --ttl '0'"),
            (s + ("--sub", "a", "--topics", "x", "--ttl", "0s"), "bad --ttl '0s'"),
            (s + ("--sub", "a", "--topics", "x", "--ttl", "-5s"), "bad --ttl '-5s'"),
            (s + ("--sub", "a", "--topics", "x", "--ttl", "h"), "bad --ttl 'h'"),
            (s + ("--sub", "a", "--topics", "x", "--ttl", ""), "bad --ttl ''"),
            (s + ("--sub", "a", "--topics", "x", "--ttl", "1.5h"), "bad --ttl '1.5h'"),
            (s + ("--sub", "a", "--topics", "x", "--ttl", "99999999999999999999"), "bad --ttl"),
            (s + ("--sub", "a", "--topics", "x", "--nbf", "soon"), "bad --nbf 'soon'"),
            (s + ("--sub", "a", "--topics", "x", "--now", "-1"), "bad --now '-1'"),
            (s + ("--sub", "a", "--topics", "x", "--now", "yesterday"), "bad --now"),
            (s + ("--sub", "a", "--topics", "x", "--ttl"), "missing value: '--ttl'"),
            (s + ("--sub", "a", "--topics", "x", "--expires", "1h"), "unknown option"),
            (s + ("--sub", "a", "--topics", "x", "extra"), "unexpected argument 'extra'"),
            # 32 patterns of 200 bytes: valid each, too long together.
            (s + ("--sub", "a", "--topics", ",".join(["p" * 200] * 32)), "longer than 4096"),
            # {sub} replaced past TOPIC_MAX_LEN (4096 bytes).
            (s + ("--sub", "s" * 128, "--topics", ".".join(["{sub}"] * 40)), "once {sub}"),
        ]
        for args, want in cases:
            with self.subTest(args=args[2:] if args[:1] == ("--secret-file",) else args):
                self.usage_error(*args, want=want)

    def test_secret_problems(self):
        empty = self.path("empty", b"")
        newline = self.path("newline", b"\n")
        big = self.path("big", b"k" * 65537)
        self.usage_error("--secret-file", empty, "--sub", "a", "--topics", "x", want="empty")
        self.usage_error("--secret-file", newline, "--sub", "a", "--topics", "x", want="empty")
        self.usage_error("--secret", "", "--sub", "a", "--topics", "x", want="empty")
        self.usage_error("--sub", "a", "--topics", "x", env={"HERALD_AUTH_SECRET": ""},
                         want="empty")
        self.usage_error("--secret-file", big, "--sub", "a", "--topics", "x",
                         want="larger than 65536 bytes")
        self.mint("--secret-file", self.path("max", b"k" * 65536), "--sub", "a", "--topics", "x",
                  key=b"k" * 65536)
        for path in (os.path.join(self.tmp.name, "missing"), self.tmp.name):
            p = self.run_token("--secret-file", path, "--sub", "a", "--topics", "x")
            self.assertEqual(p.returncode, 1, p.stderr)
            self.assertIn(b"cannot read secret file", p.stderr)
            self.assertEqual(p.stdout, b"")

    def test_help(self):
        p = self.run_token("--help")
        self.assertEqual(p.returncode, 0)
        self.assertIn(b"usage: herald token", p.stdout)
        p = subprocess.run([binary("herald"), "help"], stdout=subprocess.PIPE, timeout=60)
        self.assertIn(b"token ARGS", p.stdout)


if __name__ == "__main__":
    unittest.main(verbosity=2)

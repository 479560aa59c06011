"""Broker RESP endpoint driven by a real Redis client library: ioredis (from
npm, pinned in tests/integration/node/package-lock.json) runs
node/ioredis_check.js, which psubscribes and subscribes on one connection,
publishes from another (single commands and a 100-command pipeline), and
checks PING, ECHO and QUIT; then the same with requirepass and a password,
and a wrong password failing with WRONGPASS.

Node and npm are required (`make test-deps`); missing, the tests fail."""
import json
import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "support"))
from harness import Broker, NODE_DIR, ensure_node_modules

def run_check(port, *extra):
    """Runs ioredis_check.js; returns (exit code, parsed JSON, stderr)."""
    p = subprocess.run(["node", os.path.join(NODE_DIR, "ioredis_check.js"), str(port)] + list(extra),
                       cwd=NODE_DIR, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
    out = p.stdout.decode(errors="replace").strip()
    try:
        res = json.loads(out.splitlines()[-1]) if out else None
    except ValueError:
        res = None
    return p.returncode, res, "stdout: %s\nstderr: %s" % (out, p.stderr.decode(errors="replace"))


EXPECTED = {
    "ok": True,
    "psubscribe": 1,
    "subscribe": 2,
    "publish": [1, 1, 0],
    "pmessages": [["user.*.mail", "user.42.mail", "hi"]],
    "messages": [["news", "n"]],
    "ping": "PONG",
    "echo": "h\u00e9llo w\u00f6rld \r\n $5 *2",
    "pipelineLength": 100,
    "pipelineAllOk": True,
    "quit": ["OK", "OK"],
    "errors": [],
}


class ClientLibTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        ensure_node_modules()

    def test_ioredis_pubsub(self):
        b = Broker()
        try:
            rc, res, detail = run_check(b.resp_port)
            self.assertEqual(rc, 0, detail)
            self.assertEqual(res, EXPECTED, detail)
        finally:
            b.check_clean_exit()
        # Both connections ended with QUIT, not by being dropped.
        self.assertEqual(b.log().count("reason=quit"), 2, b.log())

    def test_ioredis_requirepass(self):
        b = Broker("--requirepass", "s3cret")
        try:
            rc, res, detail = run_check(b.resp_port, "--password", "s3cret")
            self.assertEqual(rc, 0, detail)
            self.assertEqual(res, EXPECTED, detail)

            rc, res, detail = run_check(b.resp_port, "--password", "wrong", "--expect-wrongpass")
            self.assertEqual(rc, 0, detail)
            self.assertEqual(res["errorEvents"],
                             ["WRONGPASS invalid username-password pair or user is disabled."],
                             detail)
            self.assertIsNotNone(res["connectError"], detail)
            self.assertNotIn("ping", res, detail)

            # The check itself fails when the password is right after all.
            rc, res, detail = run_check(b.resp_port, "--password", "s3cret", "--expect-wrongpass")
            self.assertEqual(rc, 1, detail)
            self.assertEqual(res["ok"], False, detail)
        finally:
            b.check_clean_exit()
        self.assertEqual(b.log().count("event=auth_failed endpoint=resp"), 1, b.log())


if __name__ == "__main__":
    unittest.main(verbosity=2)

"""Edge: a real browser. Headless Chromium (Debian's `chromium`, installed by
`make test`) loads a page from a local http.server whose script opens
`new WebSocket("ws://127.0.0.1:EDGE/ws?topic=...", ["herald.v1"])`, sends a
JSON ping op and a sub op, and writes the first event it receives into the
DOM. The test publishes with redis-cli once the page has subscribed, and
reads the DOM that `chromium --dump-dom` prints.

How the dump waits for the event: --dump-dom prints the DOM when the page's
load event fires, and the page holds an <img> whose URL this test's server
answers only after the page has posted its result (or after a timeout), so
the load event comes after the message is in the DOM.

Chromium missing is a failure, not a skip."""
import html
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "support"))
from harness import Broker, Edge, http, metric, run_cli, wait_until

CHROMIUM = os.environ.get("HERALD_CHROMIUM", "/usr/bin/chromium")
RESULT_TIMEOUT = 40

PAGE = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>waiting</title></head>
<body>
<pre id="log"></pre>
<pre id="event"></pre>
<script>
const log = (s) => { document.getElementById("log").textContent += s + "\\n"; };
const post = (path, body) => fetch(path, {method: "POST", body: body});
const ws = new WebSocket("ws://127.0.0.1:%(edge)d/ws?topic=browser.user.7.>", ["herald.v1"]);
ws.onopen = () => {
  log("open protocol=" + ws.protocol + " extensions=" + ws.extensions);
  ws.send(JSON.stringify({op: "ping", id: 1}));
  ws.send(JSON.stringify({op: "sub", topic: "browser.news", id: "s2"}));
};
ws.onmessage = (m) => {
  log("recv " + m.data);
  const obj = JSON.parse(m.data);
  if (obj.op === "ok" && obj.id === "s2") post("/ready", "subscribed");
  if (obj.op === "msg" && obj.topic === "browser.user.7.inbox") {
    document.getElementById("event").textContent = m.data;
    document.title = "got " + obj.seq;
  }
  if (obj.op === "msg" && obj.topic === "browser.news") {
    log("news " + JSON.stringify(obj.data));
    post("/result", document.getElementById("event").textContent);
  }
};
ws.onclose = (e) => { log("close " + e.code); post("/result", "closed " + e.code); };
ws.onerror = () => log("error");
</script>
<img src="/hold.png" alt="">
</body></html>
"""

# 1x1 transparent PNG.
PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000"
                    "1f15c4890000000d49444154789c6360000002000100e221bc330000000049454e44ae426082")


class PageServer(ThreadingHTTPServer):
    """Serves the page; records /ready and /result posts; holds /hold.png until a result."""
    daemon_threads = True

    def __init__(self, page):
        self.page = page.encode()
        self.ready = threading.Event()
        self.result = None
        self.done = threading.Event()
        super().__init__(("127.0.0.1", 0), Handler)


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def _send(self, status, ctype, body):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path == "/":
            self._send(200, "text/html; charset=utf-8", self.server.page)
        elif self.path == "/hold.png":
            self.server.done.wait(RESULT_TIMEOUT)
            self._send(200, "image/png", PNG)
        else:
            self._send(404, "text/plain", b"no\n")

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0"))).decode()
        if self.path == "/ready":
            self.server.ready.set()
        elif self.path == "/result" and self.server.result is None:
            self.server.result = body
            self.server.done.set()
        self._send(204, "text/plain", b"")


def broker_subs(b):
    st, _, body = http(b.http_port, "GET", "/metrics")
    return metric(body.decode(), "herald_subscriptions")


class Browser(unittest.TestCase):
    def test_chromium_receives_event_through_edge(self):
        self.assertTrue(os.access(CHROMIUM, os.X_OK),
                        "%s missing: run tools/install-deps.sh test" % CHROMIUM)
        b = Broker()
        e = Edge(b.link_port)
        server = PageServer(PAGE % {"edge": e.port})
        threading.Thread(target=server.serve_forever, daemon=True).start()
        profile = tempfile.mkdtemp(prefix="herald-chromium-")
        url = "http://127.0.0.1:%d/" % server.server_address[1]
        argv = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
                "--disable-background-networking", "--disable-quic", "--no-first-run",
                "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
                "--user-data-dir=" + profile, "--dump-dom", url]
        t0 = time.time()
        browser = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            ready = server.ready.wait(RESULT_TIMEOUT)
            if not ready:
                server.done.set()
                out, err = browser.communicate(timeout=30)
                self.fail("page never subscribed; DOM:\n%s\nchromium stderr:\n%s"
                          % (out.decode(errors="replace"), err.decode(errors="replace")[-3000:]))
            started_s = time.time() - t0
            # Both patterns (query string, sub op) are at the broker.
            self.assertTrue(wait_until(lambda: broker_subs(b) == 2, 10), broker_subs(b))
            out = run_cli("redis-cli", "-p", str(b.resp_port), "PUBLISH",
                          "browser.user.7.inbox", '{"from":"a@b"}')
            self.assertEqual(out.stdout.strip(), b"1")
            out = run_cli("redis-cli", "-p", str(b.resp_port), "PUBLISH", "browser.news", "done")
            self.assertEqual(out.stdout.strip(), b"1")
            self.assertTrue(server.done.wait(RESULT_TIMEOUT), "page posted no result")
            dom, err = browser.communicate(timeout=60)
            dom = dom.decode()
            sys.stderr.write("chromium: page subscribed %.1fs after start, total %.1fs\n"
                             % (started_s, time.time() - t0))
            event = '{"op":"msg","topic":"browser.user.7.inbox","seq":1,"data":{"from":"a@b"}}'
            self.assertEqual(server.result, event)
            self.assertIn("<title>got 1</title>", dom)
            self.assertIn('<pre id="event">%s</pre>' % html.escape(event, quote=False), dom)
            m = re.search(r'<pre id="log">(.*?)</pre>', dom, re.S)
            self.assertIsNotNone(m, dom)
            self.assertEqual(html.unescape(m.group(1)).splitlines(), [
                "open protocol=herald.v1 extensions=",
                'recv {"op":"pong","id":1}',
                'recv {"op":"ok","id":"s2"}',
                "recv " + event,
                'recv {"op":"msg","topic":"browser.news","seq":1,"data":"done"}',
                'news "done"',
            ])
            self.assertEqual(browser.returncode, 0, err.decode(errors="replace")[-3000:])
            e.check_clean_exit()
            b.check_clean_exit()
        finally:
            server.done.set()
            if browser.poll() is None:
                browser.kill()
                browser.wait()
            server.shutdown()
            server.server_close()
            shutil.rmtree(profile, ignore_errors=True)
            for p in (e, b):
                if p.alive():
                    p.stop()


if __name__ == "__main__":
    unittest.main(verbosity=2)

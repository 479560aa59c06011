"""Edge over TLS (wss; docs/architecture.md §4.10, docs/protocol.md §3.1):
a herald-edge with tls-cert-file/tls-key-file and a certificate this test
makes with the `openssl` command, driven by real clients:

  - Node's `ws` client trusting only the test certificate (its `ca`
    option) subscribes over wss, receives what redis-cli PUBLISHes, and
    runs JSON ops;
  - SIGHUP with a new certificate: new connections get it (Python's ssl,
    getpeercert), the connection opened before keeps working; SIGHUP with a
    broken file: logged (event=tls_reload_failed), the old one still served;
  - attackers: plaintext HTTP to the TLS port, a TCP connection that never
    starts TLS, a ClientHello that stalls, garbage TLS records after the
    handshake, a TLS client that never reads (1008 as on plain ports);
    each is closed and counted and the edge lives;
  - 300 idle TLS connections hold no pool chunk or evbuffer;
  - start-up refuses half a TLS configuration and unreadable files (exit 2).

Node, npm, redis-cli and openssl are required (make test installs them).
"""
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "support"))
from harness import (Broker, Edge, RespClient, binary, closed_within, connect, ensure_node_modules,
                     metric, run_cli, wait_until)
from rawws import OP_CLOSE, RawWs, frame
from test_edge_ws import NodeWs


def make_cert(directory, serial, cert="cert.pem", key="key.pem"):
    """A self-signed P-256 certificate for localhost and 127.0.0.1 (openssl CLI)."""
    run_cli("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-nodes", "-keyout", os.path.join(directory, key), "-out",
            os.path.join(directory, cert), "-days", "2", "-subj", "/CN=localhost",
            "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-set_serial", str(serial))


def der_of(path):
    with open(path) as f:
        return ssl.PEM_cert_to_DER_cert(f.read())


def client_context(ca):
    ctx = ssl.create_default_context(cafile=ca)
    ctx.check_hostname = True
    return ctx


def tls_socket(port, ca, timeout=10, rcvbuf=None):
    """A verified TLS connection to 127.0.0.1:port (Python's ssl)."""
    raw = connect(port, rcvbuf=rcvbuf, timeout=timeout)
    return client_context(ca).wrap_socket(raw, server_hostname="localhost")


def https_get(port, ca, path):
    """GET path over TLS; returns (status, body)."""
    s = tls_socket(port, ca)
    s.sendall(("GET %s HTTP/1.1\r\nHost: localhost\r\n\r\n" % path).encode())
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), body.decode()


class Wss(RawWs):
    """RawWs over TLS (Python's ssl): the handshake and frames on top of it."""

    def __init__(self, port, ca, path=None, rcvbuf=None, timeout=10):
        super().__init__(port, rcvbuf=rcvbuf, timeout=timeout)
        self.sock = client_context(ca).wrap_socket(self.sock, server_hostname="localhost")
        if path is not None:
            self.handshake(path)


class EdgeTls(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        ensure_node_modules()
        cls.dir = tempfile.mkdtemp(prefix="herald-tls-")
        cls.cert = os.path.join(cls.dir, "cert.pem")
        cls.key = os.path.join(cls.dir, "key.pem")
        make_cert(cls.dir, 1)
        cls.ca = os.path.join(cls.dir, "ca-1.pem")  # what clients trust: the first certificate
        shutil.copy(cls.cert, cls.ca)
        cls.b = Broker()
        cls.e = Edge(cls.b.link_port, "--tls-cert-file", cls.cert, "--tls-key-file", cls.key,
                     "--handshake-timeout", "1s", "--send-queue-limit", "64kb")
        cls.node = NodeWs()

    @classmethod
    def tearDownClass(cls):
        cls.node.stop()
        try:
            cls.e.check_clean_exit()
        finally:
            cls.b.check_clean_exit()
            shutil.rmtree(cls.dir, ignore_errors=True)

    def setUp(self):
        self.assertTrue(self.e.alive(), "edge died:\n%s" % self.e.log()[-4000:])

    def tearDown(self):
        self.assertTrue(self.e.alive(), "edge died:\n%s" % self.e.log()[-4000:])

    # ------------------------------------------------------------ helpers

    def metric(self, name, labels=None, ca=None):
        """A sample of the edge's /metrics, read over https."""
        status, body = https_get(self.e.port, ca or self.current_ca(), "/metrics")
        self.assertEqual(status, 200)
        v = metric(body, name, labels)
        return 0 if v is None else v

    def current_ca(self):
        return getattr(type(self), "serving_ca", self.ca)

    def publish(self, topic, payload):
        out = run_cli("redis-cli", "-p", str(self.b.resp_port), "PUBLISH", topic, payload)
        return int(out.stdout.strip())

    def node_open(self, cid, path):
        """A Node `ws` client on wss://127.0.0.1 trusting only the certificate served now."""
        self.node.cmd(cmd="open", id=cid, url="wss://127.0.0.1:%d%s" % (self.e.port, path),
                      ca=self.current_ca())
        ev = self.node.next(cid)
        self.assertEqual(ev["ev"], "open", ev)
        return ev

    def sighup(self, event):
        n = sum(1 for l in self.e.log().splitlines() if "event=%s " % event in l + " ")
        self.e.proc.send_signal(signal.SIGHUP)
        self.assertTrue(wait_until(
            lambda: sum(1 for l in self.e.log().splitlines()
                        if "event=%s " % event in l + " ") > n, 10),
            "no event=%s after SIGHUP:\n%s" % (event, self.e.log()[-3000:]))

    def served_der(self, ca):
        s = tls_socket(self.e.port, ca)
        der = s.getpeercert(binary_form=True)
        s.close()
        return der

    # ------------------------------------------------------------ wss end to end

    def test_01_wss_end_to_end_with_node_ws(self):
        self.node_open("a", "/ws?topic=news.>")
        self.assertTrue(wait_until(lambda: self.publish("news.1", '{"n":1}') == 1, 10))
        self.assertEqual(self.node.msg("a"), '{"op":"msg","topic":"news.1","seq":1,"data":{"n":1}}')
        self.node.send("a", {"op": "sub", "topic": "alerts.*", "id": 7})
        self.assertEqual(self.node.msg("a"), '{"op":"ok","id":7}')
        self.assertTrue(wait_until(lambda: self.publish("alerts.x", '"big"') == 1, 10))
        self.assertEqual(self.node.msg("a"), '{"op":"msg","topic":"alerts.x","seq":1,"data":"big"}')
        # A 40 KB event (send-queue-limit is 64kb here) crosses three TLS records.
        payload = '"%s"' % ("z" * 40000)
        self.assertEqual(self.publish("news.big", payload), 1)
        self.assertEqual(self.node.msg("a"),
                         '{"op":"msg","topic":"news.big","seq":1,"data":%s}' % payload)
        self.assertGreaterEqual(self.metric("herald_edge_tls_handshakes_total"), 1)

    def test_02_node_refuses_an_untrusted_certificate(self):
        other = tempfile.mkdtemp(prefix="herald-tls-other-")
        self.addCleanup(shutil.rmtree, other, True)
        make_cert(other, 77)
        failures = self.metric("herald_edge_tls_handshake_failures_total")
        self.node.cmd(cmd="open", id="untrusted", url="wss://127.0.0.1:%d/ws" % self.e.port,
                      ca=os.path.join(other, "cert.pem"))
        ev = self.node.next("untrusted")
        self.assertEqual(ev["ev"], "error", ev)
        self.assertIn("certificate", ev["message"])
        self.assertTrue(wait_until(
            lambda: self.metric("herald_edge_tls_handshake_failures_total") > failures, 5))

    # ------------------------------------------------------------ SIGHUP

    def test_03_sighup_new_certificate_for_new_connections(self):
        self.node_open("before", "/ws?topic=keep.>")
        make_cert(self.dir, 2)
        ca2 = os.path.join(self.dir, "ca-2.pem")
        shutil.copy(self.cert, ca2)
        self.sighup("tls_reloaded")
        type(self).serving_ca = ca2
        self.assertEqual(self.served_der(ca2), der_of(ca2))
        with self.assertRaises(ssl.SSLCertVerificationError):
            self.served_der(self.ca)  # the first certificate is no longer served
        # The connection made before the reload keeps working on its old session.
        self.assertEqual(self.publish("keep.1", "1"), 1)
        self.assertEqual(self.node.msg("before"), '{"op":"msg","topic":"keep.1","seq":1,"data":1}')
        self.node.send("before", {"op": "ping", "id": 1})
        self.assertEqual(self.node.msg("before"), '{"op":"pong","id":1}')
        self.assertEqual(self.metric("herald_edge_tls_reloads_total", 'result="ok"'), 1)

    def test_04_sighup_broken_file_keeps_old_certificate(self):
        ca = self.current_ca()
        with open(self.cert) as f:
            good = f.read()
        with open(self.cert, "w") as f:
            f.write("-----BEGIN CERTIFICATE-----\nbroken\n-----END CERTIFICATE-----\n")
        try:
            self.sighup("tls_reload_failed")
        finally:
            with open(self.cert, "w") as f:
                f.write(good)
        self.assertIn(self.cert, [l for l in self.e.log().splitlines()
                                  if "event=tls_reload_failed" in l][-1])
        self.assertEqual(self.served_der(ca), der_of(ca))
        self.assertEqual(self.metric("herald_edge_tls_reloads_total", 'result="failed"'), 1)
        # A key that does not match the certificate is refused the same way.
        with open(self.key) as f:
            good_key = f.read()
        make_cert(self.dir, 3, cert="unused.pem", key="key.pem")
        try:
            self.sighup("tls_reload_failed")
        finally:
            with open(self.key, "w") as f:
                f.write(good_key)
        self.assertEqual(self.served_der(ca), der_of(ca))

    # ------------------------------------------------------------ attackers

    def test_05_plaintext_http_to_tls_port_closed(self):
        failures = self.metric("herald_edge_tls_handshake_failures_total")
        s = connect(self.e.port)
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        t0 = time.time()
        self.assertTrue(closed_within(s, 3))
        self.assertLess(time.time() - t0, 0.9)  # at once, not at handshake-timeout
        s.close()
        self.assertEqual(self.metric("herald_edge_tls_handshake_failures_total"), failures + 1)

    def test_06_tcp_that_never_starts_tls_closed_at_handshake_timeout(self):
        timeouts = self.metric("herald_edge_handshake_failures_total", 'reason="timeout"')
        idle = connect(self.e.port)
        stalled = connect(self.e.port)  # a ClientHello header within the limit, then nothing
        stalled.sendall(bytes([0x16, 3, 1, 0x02, 0x00, 1, 0, 0x01, 0xfc]))
        t0 = time.time()
        self.assertTrue(closed_within(idle, 6))
        self.assertTrue(closed_within(stalled, 6))
        self.assertGreater(time.time() - t0, 0.9)
        idle.close()
        stalled.close()
        self.assertEqual(self.metric("herald_edge_handshake_failures_total", 'reason="timeout"'),
                         timeouts + 2)

    def test_07_oversized_client_hello_refused_at_once(self):
        s = connect(self.e.port)
        s.sendall(bytes([0x16, 3, 1, 0, 4, 1, 0x02, 0x01, 0x44]))  # declares 131,396 bytes
        t0 = time.time()
        self.assertTrue(closed_within(s, 3))
        self.assertLess(time.time() - t0, 0.9)
        s.close()

    def test_08_garbage_records_after_handshake_closed(self):
        errors = self.metric("herald_edge_tls_errors_total")
        raw = connect(self.e.port)
        inbio, outbio = ssl.MemoryBIO(), ssl.MemoryBIO()
        obj = client_context(self.current_ca()).wrap_bio(inbio, outbio,
                                                         server_hostname="localhost")
        raw.settimeout(5)
        while True:
            try:
                obj.do_handshake()
                break
            except ssl.SSLWantReadError:
                if outbio.pending:
                    raw.sendall(outbio.read())
                inbio.write(raw.recv(65536))
        if outbio.pending:
            raw.sendall(outbio.read())
        raw.sendall(bytes([23, 3, 3, 0, 64]) + os.urandom(64))
        self.assertTrue(closed_within(raw, 3))
        raw.close()
        self.assertTrue(wait_until(lambda: self.metric("herald_edge_tls_errors_total") == errors + 1,
                                   5))

    def test_09_tls_client_that_never_reads_closed_1008(self):
        slow0 = self.metric("herald_edge_slow_consumers_total")
        ws = Wss(self.e.port, self.current_ca(), "/ws?topic=flood", rcvbuf=4096)
        self.addCleanup(ws.close)
        pub = RespClient(self.b.resp_port)
        self.addCleanup(pub.close)
        chunk = b"".join(b"*3\r\n$7\r\nPUBLISH\r\n$5\r\nflood\r\n$8192\r\n" + b"f" * 8192 + b"\r\n"
                         for _ in range(64))
        sent, deadline = 0, time.time() + 60
        while self.metric("herald_edge_slow_consumers_total") == slow0 and time.time() < deadline:
            pub.send_raw(chunk)
            for _ in range(64):
                pub.reply()
            sent += 64 * 8192
            self.assertLess(sent, 256 << 20, "never closed as a slow consumer")
        self.assertEqual(self.metric("herald_edge_slow_consumers_total"), slow0 + 1)
        # What was queued drains, then close 1008 (or the linger cap cuts it).
        code = None
        try:
            while True:
                _, op, payload = ws.read_frame(timeout=10)
                if op == OP_CLOSE:
                    code = int.from_bytes(payload[:2], "big")
                    break
        except Exception:  # the edge's 2 s linger may cut a reader this slow
            pass
        if code is not None:
            self.assertEqual(code, 1008)

    # ------------------------------------------------------------ memory

    def test_10_idle_tls_connections_hold_no_buffers(self):
        n = 300
        rss0 = self.metric("herald_edge_rss_bytes")
        socks = []
        for i in range(n):
            socks.append(Wss(self.e.port, self.current_ca(), "/ws?topic=idle.%d" % i))
        self.addCleanup(lambda: [s.close() for s in socks])
        self.assertTrue(wait_until(lambda: self.metric("herald_edge_connections") >= n + 1, 10))
        self.assertEqual(self.metric("herald_edge_pool_chunks_in_use"), 0)
        self.assertEqual(self.metric("herald_edge_pool_evbuffers_in_use"), 0)
        rss = self.metric("herald_edge_rss_bytes")
        sys.stderr.write("idle TLS connections: %d, edge RSS %+.1f KB each (sanitized build)\n"
                         % (n, (rss - rss0) / n / 1024.0))
        ws = socks[0]
        self.assertEqual(self.publish("idle.0", "0"), 1)
        self.assertEqual(ws.recv_text(), '{"op":"msg","topic":"idle.0","seq":1,"data":0}')

    # ------------------------------------------------------------ start-up

    def test_11_startup_refuses_half_a_configuration(self):
        base = [binary("herald-edge"), "--port", "0", "--workers", "1"]
        cases = [
            (["--tls-cert-file", self.cert], "tls-cert-file is set without tls-key-file"),
            (["--tls-key-file", self.key], "tls-key-file is set without tls-cert-file"),
            (["--tls-cert-file", os.path.join(self.dir, "missing.pem"), "--tls-key-file", self.key],
             "missing.pem"),
            (["--tls-cert-file", self.cert, "--tls-key-file", self.cert], "tls-key-file"),
        ]
        for extra, want in cases:
            p = subprocess.run(base + extra, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               timeout=20)
            self.assertEqual(p.returncode, 2, (extra, p.stderr))
            self.assertIn(want, p.stderr.decode(), extra)


if __name__ == "__main__":
    unittest.main(verbosity=2)

"""herald-loadgen over TLS (wss://, --tls, --ca), against a small WebSocket
server written here with Python's ssl module, so the load generator's TLS is
checked on its own (bench/edge.sh then points it at herald-edge and nginx).

The server answers the upgrade, sends one event in the generator's payload
format and a ping, and records the pong it gets back: the generator must
complete the TLS handshake, upgrade, count the event (received == expected)
and answer the ping through TLS. Then: a certificate signed by another key
(--ca) and one naming another host fail verification; without --ca nothing is
verified; a server that does not speak TLS fails the handshake; and the
option combinations that make no sense are usage errors (exit 2). Last, the
way bench/edge.sh uses it: subscribers over wss to a real herald-edge with
tls-cert-file receive every event published to the broker.
Certificates are made by the test with the openssl CLI."""
import base64
import hashlib
import os
import re
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "support"))
from harness import Broker, Edge, RespClient, binary, wait_until

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
CONNS = 20


def make_cert(path, san):
    """A self-signed EC P-256 certificate for SAN into path.{crt,key}."""
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-days", "2", "-subj", "/CN=herald-test", "-addext",
                    "subjectAltName=" + san, "-keyout", path + ".key", "-out", path + ".crt"],
                   check=True, capture_output=True, timeout=30)
    return path + ".crt", path + ".key"


def payload(seq, count, seed):
    """herald-loadgen's 64-byte event payload (tools/loadgen.c payload_format)."""
    t = int(time.time() * 1e6)
    s = "t=%016d s=%010d c=%010d r=%08x " % (t, seq, count, seed)
    return (s + "x" * (64 - len(s))).encode()


def server_frame(opcode, data):
    assert len(data) <= 125
    return bytes([0x80 | opcode, len(data)]) + data


def read_exact(conn, n):
    buf = b""
    while len(buf) < n:
        chunk = conn.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    return buf


def read_client_frame(conn):
    """One masked client frame: (opcode, payload)."""
    b0, b1 = read_exact(conn, 2)
    n = b1 & 0x7F
    if n == 126:
        n = int.from_bytes(read_exact(conn, 2), "big")
    elif n == 127:
        n = int.from_bytes(read_exact(conn, 8), "big")
    mask = read_exact(conn, 4) if b1 & 0x80 else b"\0\0\0\0"
    data = bytes(c ^ mask[i % 4] for i, c in enumerate(read_exact(conn, n)))
    return b0 & 0x0F, data


class WsServer:
    """WebSocket over TLS (ctx) or plain TCP (ctx None) on 127.0.0.1, one thread a connection."""

    def __init__(self, ctx):
        self.ctx = ctx
        self.lock = threading.Lock()
        self.pongs = 0
        self.upgrades = 0
        self.stop = threading.Event()
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(256)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.conns = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            self.conns.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, raw):
        try:
            raw.settimeout(15)
            if self.ctx is None:
                raw.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")
                return
            conn = self.ctx.wrap_socket(raw, server_side=True)
            self.conns.append(conn)
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                head += chunk
            key = re.search(rb"(?i)\r\nSec-WebSocket-Key: *([^\r]+)", head).group(1)
            accept = base64.b64encode(hashlib.sha1(key + GUID.encode()).digest())
            conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                         b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n")
            with self.lock:
                self.upgrades += 1
            # one event (count 1: every connection expects one) and a ping in one write
            conn.sendall(server_frame(1, payload(0, 1, 0x5eed)) + server_frame(9, b"tls-ping"))
            opcode, data = read_client_frame(conn)
            if opcode == 10 and data == b"tls-ping":
                with self.lock:
                    self.pongs += 1
            while not self.stop.is_set() and conn.recv(4096):
                pass
        except (OSError, ssl.SSLError, ConnectionError, AttributeError):
            pass

    def close(self):
        self.stop.set()
        self.thread.join(5)
        for c in self.conns:
            try:
                c.close()
            except OSError:
                pass
        self.sock.close()


def server_ctx(crt, key):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(crt, key)
    return ctx


def loadgen(*args, timeout=30):
    """Runs herald-loadgen hold; returns (returncode, stdout, stderr)."""
    p = subprocess.run([binary("herald-loadgen"), "hold", "--proto", "nchan", "--connections",
                        str(CONNS), "--progress-ms", "200"] + list(args),
                       capture_output=True, text=True, timeout=timeout)
    return p.returncode, p.stdout, p.stderr


def field(text, prefix, name):
    line = next(l for l in text.splitlines() if l.startswith(prefix))
    return re.search(r"(?:^| )%s=(\S+)" % name, line).group(1)


class LoadgenTls(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        d = cls.tmp.name
        cls.crt, cls.key = make_cert(os.path.join(d, "good"), "IP:127.0.0.1,DNS:localhost")
        cls.other_crt, _ = make_cert(os.path.join(d, "other"), "IP:127.0.0.1")
        cls.wrong_crt, cls.wrong_key = make_cert(os.path.join(d, "wrong"), "DNS:example.invalid")

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def serve(self, crt=None, key=None):
        srv = WsServer(server_ctx(crt or self.crt, key or self.key) if crt is not False else None)
        self.addCleanup(srv.close)
        return srv

    def test_verified_wss_upgrades_counts_events_and_answers_pings(self):
        srv = self.serve()
        rc, out, err = loadgen("--url", "wss://127.0.0.1:%d/sub" % srv.port, "--ca", self.crt,
                               "--source-ips", "127.0.0.2,127.0.0.3", "--duration", "3")
        self.assertEqual(rc, 0, err)
        self.assertEqual(field(out, "ready", "connected"), str(CONNS), out + err)
        self.assertEqual(field(out, "ready", "failed"), "0")
        self.assertEqual(field(out, "ready", "tls"), "TLSv1.3")
        self.assertEqual(field(out, "window=0", "received"), str(CONNS), out)
        self.assertEqual(field(out, "window=0", "expected"), str(CONNS))
        self.assertEqual(field(out, "window=0", "short"), "0")
        self.assertEqual(field(out, "window=0", "bad"), "0")
        with srv.lock:
            self.assertEqual(srv.upgrades, CONNS)
            self.assertEqual(srv.pongs, CONNS)

    def test_localhost_name_verified(self):
        srv = self.serve()
        rc, out, err = loadgen("--url", "wss://localhost:%d/sub" % srv.port, "--ca", self.crt,
                               "--duration", "2")
        self.assertEqual(rc, 0, err)
        self.assertEqual(field(out, "ready", "connected"), str(CONNS), out + err)

    def test_without_ca_nothing_is_verified(self):
        srv = self.serve(self.wrong_crt, self.wrong_key)
        rc, out, err = loadgen("--tls", "--url", "ws://127.0.0.1:%d/sub" % srv.port,
                               "--duration", "2")
        self.assertEqual(rc, 0, err)
        self.assertEqual(field(out, "ready", "connected"), str(CONNS), out + err)

    def assert_all_failed(self, out, err, reason, detail):
        self.assertEqual(field(out, "ready", "connected"), "0", out + err)
        self.assertEqual(field(out, "ready", "failed"), str(CONNS))
        self.assertIn("last_error=" + reason, err)
        self.assertIn(detail, err)

    def test_other_ca_fails_verification(self):
        srv = self.serve()
        rc, out, err = loadgen("--url", "wss://127.0.0.1:%d/sub" % srv.port, "--ca", self.other_crt,
                               "--duration", "2")
        self.assertEqual(rc, 0, err)
        self.assert_all_failed(out, err, "tls_verify_failed", "certificate verification")
        self.assertEqual(srv.upgrades, 0)

    def test_certificate_for_another_host_fails_verification(self):
        srv = self.serve(self.wrong_crt, self.wrong_key)
        rc, out, err = loadgen("--url", "wss://127.0.0.1:%d/sub" % srv.port, "--ca", self.wrong_crt,
                               "--duration", "2")
        self.assertEqual(rc, 0, err)
        self.assert_all_failed(out, err, "tls_verify_failed", "IP address mismatch")

    def test_server_without_tls_fails_the_handshake(self):
        srv = self.serve(False)
        rc, out, err = loadgen("--url", "wss://127.0.0.1:%d/sub" % srv.port, "--duration", "2")
        self.assertEqual(rc, 0, err)
        self.assert_all_failed(out, err, "tls_handshake_failed", "TLS handshake failed")

    def test_herald_edge_wss_delivers_every_event(self):
        broker = Broker()
        self.addCleanup(broker.stop)
        edge = Edge(broker.link_port, "--tls-cert-file", self.crt, "--tls-key-file", self.key)
        self.addCleanup(edge.stop)
        out = tempfile.TemporaryFile(mode="w+")
        err = tempfile.TemporaryFile(mode="w+")
        self.addCleanup(out.close)
        self.addCleanup(err.close)
        sub = subprocess.Popen([binary("herald-loadgen"), "sub", "--proto", "herald", "--raw",
                                "--url", "wss://127.0.0.1:%d/ws" % edge.port, "--ca", self.crt,
                                "--connections", str(CONNS), "--topic", "bench.tls",
                                "--progress-ms", "200", "--duration", "60"],
                               stdout=out, stderr=err, text=True)
        self.addCleanup(lambda: sub.poll() is None and sub.kill())

        def text(f):
            f.seek(0)
            return f.read()

        self.assertTrue(wait_until(lambda: "ready" in text(out), 30), text(out) + text(err))
        self.assertEqual(field(text(out), "ready", "connected"), str(CONNS), text(err))
        resp = RespClient(broker.resp_port)
        self.addCleanup(resp.sock.close)
        self.assertTrue(wait_until(lambda: resp.call("PUBLISH", "bench.tls", "probe") == 1, 10))
        pub = subprocess.run([binary("herald-loadgen"), "publish", "--resp",
                              "127.0.0.1:%d" % broker.resp_port, "--topic", "bench.tls",
                              "--count", "20", "--rate", "200"],
                             capture_output=True, text=True, timeout=30)
        self.assertEqual(pub.returncode, 0, pub.stdout + pub.stderr)
        wait_until(lambda: "received=%d " % (20 * CONNS) in text(err).rsplit("loadgen:", 1)[-1], 15)
        sub.terminate()
        self.assertEqual(sub.wait(30), 0, text(err))
        summary = text(out)
        self.assertEqual(field(summary, "window=0", "received"), str(20 * CONNS), summary)
        self.assertEqual(field(summary, "window=0", "expected"), str(20 * CONNS))
        self.assertEqual(field(summary, "window=0", "short"), "0")
        self.assertEqual(field(summary, "window=0", "closed"), "0")
        edge.check_clean_exit(self)
        broker.check_clean_exit(self)

    def test_usage_errors(self):
        for args in (["hold", "--ca", self.crt],
                     ["hold", "--url", "wss://127.0.0.1:1/x", "--kernel-ts"],
                     ["publish", "--tls"],
                     ["hold", "--url", "wss://127.0.0.1:1/x", "--ca", "/nonexistent.pem"]):
            p = subprocess.run([binary("herald-loadgen")] + args, capture_output=True, text=True,
                               timeout=10)
            self.assertEqual(p.returncode, 2, (args, p.stdout, p.stderr))


if __name__ == "__main__":
    unittest.main()

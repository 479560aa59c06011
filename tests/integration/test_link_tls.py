"""The broker's link over TLS (link-tls-cert-file / link-tls-key-file) and
the edge's TLS uplink (broker-tls, broker-tls-ca-file,
broker-tls-server-name): events flow end to end; a certificate the edge
does not trust is refused with a clear log line while /healthz says the
broker is down, and the edge comes up once the broker serves one it
trusts; the server name is verified; SIGHUP reloads the certificate (a
broken file keeps the old one); peers that speak plaintext, stall the
handshake, or trickle a record are closed by the same bounds as plain
links (auth-timeout, max-unauthenticated, request-timeout); bad TLS
configuration stops start-up.

Certificates are made here with the openssl command-line tool: two CAs
(the one the edge trusts and another), leaf certificates for 127.0.0.1
and broker.test signed by each.
"""
import json
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
from harness import (Broker, Edge, LinkClient, NeedMore, binary, closed_within, connect, drops,
                     free_port,
                     broker_sample, http, metric, metrics_text, mp_pack, mp_unpack, run_cli,
                     wait_until, HELLO, MSG, PING, PONG, PUBACK, SUB, WELCOME)
from rawws import RawWs


def openssl(*args, cwd):
    p = subprocess.run(["openssl"] + list(args), cwd=cwd, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=60)
    if p.returncode != 0:
        raise AssertionError("openssl %s: %s" % (" ".join(args), p.stdout.decode(errors="replace")))


class Pki:
    """CAs and leaf certificates (P-256 keys) in a temporary directory."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="herald-link-tls-")

    def path(self, name):
        return os.path.join(self.dir, name)

    def ca(self, name):
        openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", name + ".key", "-out", name + ".crt", "-days", "2", "-subj",
                "/CN=herald test " + name, "-addext", "basicConstraints=critical,CA:TRUE",
                "-addext", "keyUsage=critical,keyCertSign", cwd=self.dir)
        return self.path(name + ".crt")

    def leaf(self, name, ca, san="IP:127.0.0.1,DNS:broker.test"):
        """A certificate for san signed by CA ca; returns (cert, key) paths."""
        with open(self.path(name + ".ext"), "w") as f:
            f.write("subjectAltName=%s\nbasicConstraints=CA:FALSE\n" % san)
        openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", name + ".key", "-out", name + ".csr", "-subj", "/CN=" + name,
                cwd=self.dir)
        openssl("x509", "-req", "-in", name + ".csr", "-CA", ca + ".crt", "-CAkey", ca + ".key",
                "-CAcreateserial", "-days", "2", "-out", name + ".crt", "-extfile", name + ".ext",
                cwd=self.dir)
        return self.path(name + ".crt"), self.path(name + ".key")

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)


def make_pki():
    """trusted CA "ca" with leaves "good" and "good2"; CA "other" with leaf "rogue"."""
    pki = Pki()
    pki.ca_file = pki.ca("ca")
    pki.other_ca_file = pki.ca("other")
    pki.good = pki.leaf("good", "ca")
    pki.good2 = pki.leaf("good2", "ca")
    pki.rogue = pki.leaf("rogue", "other")
    return pki


def tls_broker(cert, *extra, **kw):
    return Broker("--link-tls-cert-file", cert[0], "--link-tls-key-file", cert[1], *extra, **kw)


def tls_edge(broker_port, ca_file, *extra):
    return Edge(broker_port, "--broker-tls", "yes", "--broker-tls-ca-file", ca_file,
                "--reconnect-min", "50ms", "--reconnect-max", "300ms", *extra)


def client_context(ca_file):
    ctx = ssl.create_default_context(cafile=ca_file)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


class TlsLinkClient(LinkClient):
    """LinkClient over TLS, verifying the broker against ca_file for 127.0.0.1."""

    def __init__(self, port, ca_file, hello=True, role="test", timeout=10):
        raw = connect(port, timeout=timeout)
        self.sock = client_context(ca_file).wrap_socket(raw, server_hostname="127.0.0.1")
        self.buf = b""
        if hello:
            self.send([HELLO, 1, role, "pytest-tls-%d" % os.getpid(), None])
            w = self.frame()
            assert w[0] == WELCOME, w


class MemoryTls:
    """A TLS client whose records go through memory (ssl.MemoryBIO), so a test
    can send part of a record: the bytes a peer can make the broker hold
    inside OpenSSL."""

    def __init__(self, port, ca_file):
        self.sock = connect(port)
        self.inc, self.out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.obj = client_context(ca_file).wrap_bio(self.inc, self.out,
                                                    server_hostname="127.0.0.1")
        self.buf = b""
        while True:
            try:
                self.obj.do_handshake()
                break
            except ssl.SSLWantReadError:
                self._flush()
                self._fill()
        self._flush()

    def _flush(self):
        data = self.out.read()
        if data:
            self.sock.sendall(data)

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed by broker")
        self.inc.write(chunk)

    def records(self, frame):
        """The TLS records carrying one link frame, not sent."""
        self.obj.write(mp_pack(frame))
        return self.out.read()

    def send(self, frame):
        self.sock.sendall(self.records(frame))

    def frame(self):
        while True:
            try:
                obj, n = mp_unpack(self.buf)
                self.buf = self.buf[n:]
                return obj
            except NeedMore:
                pass
            try:
                self.buf += self.obj.read(65536)
            except ssl.SSLWantReadError:
                self._fill()


def client_hello():
    """The first flight of a real TLS client (a ClientHello), as bytes."""
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ssl.create_default_context().wrap_bio(inc, out, server_hostname="broker.test")
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return out.read()


def healthz(edge):
    st, _, body = http(edge.port, "GET", "/healthz")
    return st, json.loads(body)


def broker_up(edge):
    return healthz(edge) == (200, {"status": "ok", "broker": "up"})


def served_cert(port, ca_file=None):
    """The DER certificate the link port presents (unverified when ca_file is None)."""
    if ca_file:
        ctx = client_context(ca_file)
    else:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    with ctx.wrap_socket(connect(port), server_hostname="127.0.0.1") as s:
        return s.getpeercert(binary_form=True)


def der(cert_path):
    with open(cert_path) as f:
        return ssl.PEM_cert_to_DER_cert(f.read())


class LinkTls(unittest.TestCase):
    """One TLS broker (short auth-timeout and request-timeout) for the
    tests that share it."""

    @classmethod
    def setUpClass(cls):
        cls.pki = make_pki()
        cls.b = tls_broker(cls.pki.good, "--auth-timeout", "4s", "--request-timeout", "1s",
                           "--max-unauthenticated", "8")

    @classmethod
    def tearDownClass(cls):
        try:
            cls.b.check_clean_exit()
        finally:
            cls.pki.cleanup()

    def metric(self, name, labels=None):
        return broker_sample(self.b, name, labels)

    def handshake_failures(self):
        return self.metric("herald_tls_handshake_failures_total", 'endpoint="link"')

    def test_link_client_publish_and_subscribe_over_tls(self):
        sub = TlsLinkClient(self.b.link_port, self.pki.ca_file)
        sub.sub("tls.direct.>")
        sub.sync()
        pub = TlsLinkClient(self.b.link_port, self.pki.ca_file)
        ack = pub.publish("tls.direct.1", b"over tls", req_id=5)
        self.assertEqual(ack[:3], [PUBACK, 5, 1])
        self.assertEqual(sub.frame(), [MSG, "tls.direct.1", ack[3], b"over tls"])
        out = run_cli("redis-cli", "-p", str(self.b.resp_port), "PUBLISH", "tls.direct.2", "resp")
        self.assertEqual(out.stdout.strip(), b"1")
        self.assertEqual(sub.frame()[1:], ["tls.direct.2", 1, b"resp"])
        sub.close()
        pub.close()

    def test_herald_cli_over_tls(self):
        broker = "127.0.0.1:%d" % self.b.link_port
        sub = subprocess.Popen([binary("herald"), "--broker", broker, "--ca-file",
                                self.pki.ca_file, "subscribe", "--count", "1", "--timeout", "10",
                                "tls.cli"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.assertTrue(wait_until(lambda: self.metric("herald_subscriptions") >= 1, 10))
        out = run_cli("herald", "--broker", broker, "--tls", "--ca-file", self.pki.ca_file,
                      "--server-name", "broker.test", "publish", "tls.cli", "hello")
        self.assertRegex(out.stdout.decode(), r"^receivers=1 seq=\d+\n$")
        sub_out, sub_err = sub.communicate(timeout=15)
        self.assertEqual(sub.returncode, 0, sub_err)
        self.assertRegex(sub_out.decode(), r"^tls.cli \d+ hello\n$")
        # Refused: a CA that did not sign the certificate, a name it does not carry.
        p = run_cli("herald", "--broker", broker, "--ca-file", self.pki.other_ca_file, "stats",
                    check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn(b"herald: TLS handshake: broker certificate not verified: "
                      b"unable to get local issuer certificate", p.stderr)
        p = run_cli("herald", "--broker", broker, "--ca-file", self.pki.ca_file,
                    "--server-name", "other.test", "stats", check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn(b"broker certificate not verified: hostname mismatch", p.stderr)
        # Plaintext to the TLS port: closed (request-timeout), no answer.
        p = run_cli("herald", "--broker", broker, "stats", check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn(b"connection closed by broker", p.stderr)

    def test_edge_events_flow_end_to_end(self):
        e = tls_edge(self.b.link_port, self.pki.ca_file, "--workers", "2")
        try:
            self.assertTrue(wait_until(lambda: broker_up(e), 10), e.log())
            ws = RawWs(e.port, "/ws?topic=tls.e2e.>")
            self.assertTrue(wait_until(lambda: self.metric("herald_subscriptions") >= 1, 10))
            for i in range(3):
                run_cli("redis-cli", "-p", str(self.b.resp_port), "PUBLISH", "tls.e2e.%d" % i,
                        "payload-%d" % i)
            got = [json.loads(ws.recv_text()) for _ in range(3)]
            self.assertEqual([(g["topic"], g["data"]) for g in got],
                             [("tls.e2e.%d" % i, "payload-%d" % i) for i in range(3)])
            ws.close()
            self.assertIn("event=uplink_up", e.log())
        finally:
            e.check_clean_exit()

    def test_edge_verifies_the_server_name(self):
        good = tls_edge(self.b.link_port, self.pki.ca_file, "--broker-tls-server-name",
                        "broker.test")
        bad = tls_edge(self.b.link_port, self.pki.ca_file, "--broker-tls-server-name",
                       "other.test")
        try:
            self.assertTrue(wait_until(lambda: broker_up(good), 10), good.log())
            self.assertTrue(bad.wait_log('reason="TLS: broker certificate not verified: '
                                         'hostname mismatch (expected name other.test)"', 10),
                            bad.log())
            self.assertEqual(healthz(bad), (503, {"status": "degraded", "broker": "down"}))
        finally:
            good.check_clean_exit()
            bad.check_clean_exit()

    def test_plaintext_edge_to_tls_broker_stays_down(self):
        before = self.handshake_failures()
        e = Edge(self.b.link_port, "--reconnect-min", "50ms", "--reconnect-max", "300ms")
        try:
            # Its HELLO is not a ClientHello: the broker closes it (at once, or
            # at auth-timeout when the bytes look like the start of a record).
            self.assertTrue(e.wait_log("event=uplink_down", 10), e.log())
            self.assertEqual(healthz(e)[0], 503)
            time.sleep(1)
            self.assertFalse(broker_up(e))
        finally:
            e.check_clean_exit()
        self.assertTrue(self.b.alive())
        self.assertGreaterEqual(self.handshake_failures(), before)

    def test_plaintext_clients_are_closed_and_counted(self):
        before = self.handshake_failures()
        # HTTP to the link port: not a TLS record, refused at once.
        s = connect(self.b.link_port)
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertTrue(closed_within(s, 2))
        s.close()
        self.assertTrue(wait_until(lambda: self.handshake_failures() >= before + 1, 5))
        # A plaintext HELLO: its first byte reads as the length of an
        # SSLv2-style record, so OpenSSL waits for the rest: a partial record,
        # closed by request-timeout (1 s, swept each second).
        partial_before = drops(self.b, "request_timeout")
        p = LinkClient(self.b.link_port, hello=False)
        p.send([HELLO, 1, "test", "plain", None])
        t0 = time.time()
        self.assertTrue(p.closed_by_server(6))
        self.assertLess(time.time() - t0, 3.5)
        self.assertEqual(p.buf, b"")  # no plaintext reply ever
        p.close()
        self.assertGreaterEqual(drops(self.b, "request_timeout"), partial_before + 1)
        # The broker lives and serves TLS links.
        TlsLinkClient(self.b.link_port, self.pki.ca_file).close()
        self.assertTrue(self.b.alive())
        self.assertIn("event=tls_handshake_failed endpoint=link", self.b.log())

    def test_garbage_records_after_the_handshake_are_refused(self):
        m = MemoryTls(self.b.link_port, self.pki.ca_file)
        m.send([HELLO, 1, "test", "garbage", None])
        self.assertEqual(m.frame()[0], WELCOME)
        rec = bytearray(m.records([PING, 1]))
        rec[-1] ^= 0x55  # the record's authentication tag no longer matches
        m.sock.sendall(bytes(rec))
        self.assertTrue(closed_within(m.sock, 5))
        m.sock.close()
        self.assertTrue(self.b.alive())

    def test_an_oversized_client_hello_is_refused_at_16_kib(self):
        before = self.handshake_failures()
        s = connect(self.b.link_port)
        # A ClientHello announcing 100,000 bytes (OpenSSL would buffer up to
        # 128 KiB of one), sent as whole 16 KiB handshake records: no partial
        # record for request-timeout to see, so only the handshake cap can
        # close it before auth-timeout (4 s).
        body = bytes([1]) + (100000).to_bytes(3, "big") + b"\x03\x03" + os.urandom(16378)
        first = b"\x16\x03\x01" + len(body).to_bytes(2, "big") + body
        rest = b"\x16\x03\x01\x40\x00" + os.urandom(16384)
        t0 = time.time()
        try:
            s.sendall(first + rest + rest)
        except (ConnectionResetError, BrokenPipeError):
            pass
        self.assertTrue(closed_within(s, 5))
        self.assertLess(time.time() - t0, 1.5)
        s.close()
        self.assertTrue(wait_until(lambda: self.handshake_failures() >= before + 1, 3))
        self.assertTrue(wait_until(lambda: 'reason="excessive message size"' in self.b.log(), 3),
                        self.b.log()[-2000:])

    def test_nine_bytes_declaring_a_large_client_hello_are_refused_at_once(self):
        # The record header and a ClientHello header declaring 131,056 bytes:
        # OpenSSL would allocate that much (~210 KB with its buffer's growth)
        # on reading them and hold it until a timeout. The guard refuses the
        # header itself, before request-timeout or auth-timeout could.
        before = self.handshake_failures()
        before_partial = drops(self.b, "request_timeout")
        s = connect(self.b.link_port)
        t0 = time.time()
        s.sendall(b"\x16\x03\x01\x40\x00" + b"\x01\x01\xff\xf0")
        self.assertTrue(closed_within(s, 5))
        self.assertLess(time.time() - t0, 0.9)
        s.close()
        self.assertTrue(wait_until(lambda: self.handshake_failures() >= before + 1, 3))
        self.assertEqual(drops(self.b, "request_timeout"), before_partial)
        # A ClientHello header split across two records is refused too.
        s = connect(self.b.link_port)
        s.sendall(b"\x16\x03\x01\x00\x02" + b"\x01\x00")
        self.assertTrue(closed_within(s, 5))
        s.close()
        # Real clients still get through (MemoryTls: a whole ClientHello).
        m = MemoryTls(self.b.link_port, self.pki.ca_file)
        m.send([HELLO, 1, "test", "after-guard", None])
        self.assertEqual(m.frame()[0], WELCOME)
        m.sock.close()

    def test_stalled_handshakes_are_closed(self):
        before = drops(self.b, "auth_timeout")
        before_partial = drops(self.b, "request_timeout")
        silent = connect(self.b.link_port)
        partial = connect(self.b.link_port)
        hello = client_hello()
        partial.sendall(hello[:len(hello) // 2])  # half a ClientHello, then nothing
        t0 = time.time()
        # Half a record is a started request: request-timeout (1 s, swept
        # each second) closes it before auth-timeout (4 s) does.
        self.assertTrue(closed_within(partial, 6))
        self.assertLess(time.time() - t0, 3.5)
        self.assertGreaterEqual(drops(self.b, "request_timeout"), before_partial + 1)
        # Nothing at all: auth-timeout.
        self.assertTrue(closed_within(silent, 9))
        self.assertGreater(time.time() - t0, 3.5)
        self.assertLess(time.time() - t0, 7)
        silent.close()
        partial.close()
        self.assertGreaterEqual(drops(self.b, "auth_timeout"), before + 1)

    def test_stalled_handshakes_are_evicted_at_max_unauthenticated(self):
        # Other tests' unauthenticated sockets are gone first.
        self.assertTrue(wait_until(
            lambda: self.metric("herald_unauthenticated_connections") == 0, 8))
        before = drops(self.b, "unauthenticated")
        socks = [connect(self.b.link_port) for _ in range(8)]
        self.assertTrue(wait_until(
            lambda: self.metric("herald_unauthenticated_connections") == 8, 2))
        # A ninth (a real client) takes the place of the oldest at once.
        newest = TlsLinkClient(self.b.link_port, self.pki.ca_file)
        self.assertTrue(closed_within(socks[0], 1))
        self.assertGreaterEqual(drops(self.b, "unauthenticated"), before + 1)
        newest.sync()
        newest.close()
        for s in socks:
            s.close()

    def test_a_trickled_record_after_hello_meets_request_timeout(self):
        before = drops(self.b, "request_timeout")
        idle = MemoryTls(self.b.link_port, self.pki.ca_file)
        idle.send([HELLO, 1, "test", "idle", None])
        self.assertEqual(idle.frame()[0], WELCOME)
        m = MemoryTls(self.b.link_port, self.pki.ca_file)
        m.send([HELLO, 1, "test", "trickle", None])
        self.assertEqual(m.frame()[0], WELCOME)
        m.send([PING, 3])
        self.assertEqual(m.frame(), [PONG, 3])
        rec = m.records([PING, 4])
        m.sock.sendall(rec[:-4])  # the record's last bytes never come
        t0 = time.time()
        self.assertTrue(closed_within(m.sock, 6))
        self.assertLess(time.time() - t0, 4)  # request-timeout 1 s, swept each second
        self.assertGreaterEqual(drops(self.b, "request_timeout"), before + 1)
        # A TLS link with nothing half-sent is never closed by it.
        idle.send([PING, 9])
        self.assertEqual(idle.frame(), [PONG, 9])
        idle.sock.close()
        m.sock.close()


class EdgeRecovers(unittest.TestCase):
    """The edge meets a certificate it does not trust: refused and logged,
    /healthz down, retried; it comes up when the broker is restarted with a
    certificate its CA signed."""

    def test_wrong_ca_then_broker_restarted_with_the_right_one(self):
        pki = make_pki()
        b = tls_broker(pki.rogue)
        port = b.link_port
        e = tls_edge(port, pki.ca_file)
        try:
            self.assertTrue(e.wait_log('event=uplink_down broker=127.0.0.1:%d reason="TLS: broker '
                                       'certificate not verified: unable to get local issuer '
                                       'certificate (expected name 127.0.0.1)"' % port, 10),
                            e.log())
            self.assertEqual(healthz(e), (503, {"status": "degraded", "broker": "down"}))

            def refused():
                return broker_sample(b, "herald_tls_handshake_failures_total", 'endpoint="link"')
            self.assertTrue(wait_until(lambda: refused() >= 3, 10))  # it keeps retrying
            reconnects = metric(metrics_text(e.port), "herald_edge_broker_reconnects_total")
            self.assertGreaterEqual(reconnects, 2)
            self.assertIn("tlsv1 alert unknown ca", b.log())
            b.check_clean_exit()
            b = tls_broker(pki.good, "--link-port", str(port))
            self.assertTrue(wait_until(lambda: broker_up(e), 10), e.log())
            ws = RawWs(e.port, "/ws?topic=recovered")
            self.assertTrue(wait_until(
                lambda: broker_sample(b, "herald_subscriptions") >= 1, 10))
            run_cli("redis-cli", "-p", str(b.resp_port), "PUBLISH", "recovered", "yes")
            self.assertEqual(json.loads(ws.recv_text())["data"], "yes")
            ws.close()
        finally:
            e.check_clean_exit()
            b.check_clean_exit()
            pki.cleanup()

    def test_tls_edge_to_plaintext_broker(self):
        pki = make_pki()
        b = Broker()
        e = tls_edge(b.link_port, pki.ca_file)
        try:
            self.assertTrue(e.wait_log('reason="TLS: handshake failed: ', 10), e.log())
            self.assertEqual(healthz(e)[0], 503)
            p = run_cli("herald", "--broker", "127.0.0.1:%d" % b.link_port, "--tls", "stats",
                        check=False)
            self.assertEqual(p.returncode, 1)
            self.assertIn(b"herald: TLS handshake failed: ", p.stderr)
        finally:
            e.check_clean_exit()
            b.check_clean_exit()
            pki.cleanup()


class Reload(unittest.TestCase):
    """SIGHUP reads the certificate files again."""

    def test_sighup_swaps_the_certificate_and_keeps_links(self):
        pki = make_pki()
        cert, key = pki.path("live.crt"), pki.path("live.key")
        shutil.copy(pki.good[0], cert)
        shutil.copy(pki.good[1], key)
        b = tls_broker((cert, key))
        e = tls_edge(b.link_port, pki.ca_file)
        try:
            self.assertTrue(wait_until(lambda: broker_up(e), 10), e.log())
            ws = RawWs(e.port, "/ws?topic=reload.>")
            self.assertTrue(wait_until(lambda: broker_sample(b, "herald_subscriptions") >= 1, 10))
            self.assertEqual(served_cert(b.link_port, pki.ca_file), der(pki.good[0]))

            # A new certificate (the same CA): new connections see it.
            shutil.copy(pki.good2[0], cert)
            shutil.copy(pki.good2[1], key)
            b.proc.send_signal(signal.SIGHUP)
            self.assertTrue(b.wait_log("event=tls_reloaded endpoint=link", 10), b.log())
            self.assertEqual(served_cert(b.link_port, pki.ca_file), der(pki.good2[0]))
            self.assertEqual(broker_sample(b, "herald_tls_reloads_total",
                                           'endpoint="link",result="ok"'), 1)
            # The edge's link, made with the old certificate, still carries events.
            run_cli("redis-cli", "-p", str(b.resp_port), "PUBLISH", "reload.1", "after")
            self.assertEqual(json.loads(ws.recv_text())["data"], "after")
            self.assertEqual(metric(metrics_text(e.port), "herald_edge_broker_reconnects_total"),
                             0)

            # A broken key file: logged, the certificate in use goes on serving.
            with open(key, "w") as f:
                f.write("-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n")
            b.proc.send_signal(signal.SIGHUP)
            self.assertTrue(b.wait_log("event=tls_reload_failed endpoint=link", 10), b.log())
            self.assertEqual(served_cert(b.link_port, pki.ca_file), der(pki.good2[0]))
            self.assertEqual(broker_sample(b, "herald_tls_reloads_total",
                                           'endpoint="link",result="failed"'), 1)
            TlsLinkClient(b.link_port, pki.ca_file).sync()
            run_cli("redis-cli", "-p", str(b.resp_port), "PUBLISH", "reload.2", "still")
            self.assertEqual(json.loads(ws.recv_text())["data"], "still")
            ws.close()
        finally:
            e.check_clean_exit()
            b.check_clean_exit()
            pki.cleanup()

    def test_sighup_without_tls_is_harmless(self):
        b = Broker()
        try:
            b.proc.send_signal(signal.SIGHUP)
            self.assertTrue(b.wait_log("event=signal signal=1 action=reload", 10), b.log())
            LinkClient(b.link_port).sync()
        finally:
            b.check_clean_exit()


class StartupErrors(unittest.TestCase):
    """TLS configuration that cannot work stops start-up, naming the directive."""

    @classmethod
    def setUpClass(cls):
        cls.pki = make_pki()

    @classmethod
    def tearDownClass(cls):
        cls.pki.cleanup()

    def run_bin(self, name, *args):
        p = subprocess.run([binary(name)] + list(args), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=20)
        return p.returncode, p.stderr.decode(errors="replace")

    def test_broker_cert_without_key(self):
        rc, err = self.run_bin("herald-broker", "--link-port", str(free_port()), "--resp-port", "0",
                               "--http-port", "0", "--link-tls-cert-file", self.pki.good[0])
        self.assertEqual(rc, 2, err)
        self.assertIn("link-tls-cert-file is set without link-tls-key-file", err)

    def test_broker_key_that_does_not_match(self):
        rc, err = self.run_bin("herald-broker", "--link-port", str(free_port()), "--resp-port", "0",
                               "--http-port", "0", "--link-tls-cert-file", self.pki.good[0],
                               "--link-tls-key-file", self.pki.rogue[1])
        self.assertEqual(rc, 1, err)
        self.assertIn("event=link_tls_failed", err)
        self.assertIn("key values mismatch", err)

    def test_broker_missing_cert_file(self):
        rc, err = self.run_bin("herald-broker", "--link-port", str(free_port()), "--resp-port", "0",
                               "--http-port", "0", "--link-tls-cert-file",
                               self.pki.path("nope.crt"), "--link-tls-key-file", self.pki.good[1])
        self.assertEqual(rc, 1, err)
        self.assertIn("tls-cert-file %s" % self.pki.path("nope.crt"), err)

    def test_edge_ca_file_without_broker_tls(self):
        rc, err = self.run_bin("herald-edge", "--port", "0", "--broker-tls-ca-file",
                               self.pki.ca_file)
        self.assertEqual(rc, 2, err)
        self.assertIn("broker-tls-ca-file is set but broker-tls is no", err)
        rc, err = self.run_bin("herald-edge", "--port", "0", "--broker-tls-server-name", "x")
        self.assertEqual(rc, 2, err)
        self.assertIn("broker-tls-server-name is set but broker-tls is no", err)

    def test_edge_unreadable_ca_file(self):
        bad = self.pki.path("bad-ca.crt")
        with open(bad, "w") as f:
            f.write("not a certificate\n")
        for path in (bad, self.pki.path("missing.crt")):
            rc, err = self.run_bin("herald-edge", "--port", "0", "--broker-tls", "yes",
                                   "--broker-tls-ca-file", path)
            self.assertEqual(rc, 2, err)
            self.assertIn("broker-tls-ca-file: CA file %s" % path, err)


if __name__ == "__main__":
    unittest.main(verbosity=2)

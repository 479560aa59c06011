"""Integration-test harness: start the real herald-broker / herald-edge on
free loopback ports (optionally with extra environment variables or a
lower RLIMIT_NOFILE), wait for event=ready, talk to them with real clients,
stop them with SIGTERM and require exit 0 (under ASan that also means no
leaks) and no sanitizer report in their logs.

Only the Python standard library is used. msgpack is spoken with the small
codec below (the subset the link protocol uses), RESP with a command encoder
(resp_cmd) and a reply parser. Raw-socket helpers (connect, closed_within),
/metrics readers (metrics_text, metric, broker_sample, drops) and a process's
CPU time (proc_cpu_seconds) serve the tests that misbehave on purpose;
bench/soak_abuse.py imports some of them too.
"""
import fcntl
import os
import select
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest

BUILD = os.environ.get("HERALD_BUILD_DIR", os.path.join(os.path.dirname(__file__), "..", "..", "build-test"))
SOURCE = os.environ.get("HERALD_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")


def binary(name):
    path = os.path.join(BUILD, name)
    if not os.path.exists(path):
        raise unittest.SkipTest("%s not built" % path) if False else FileNotFoundError(path)
    return path


def free_port():
    """A port that was free a moment ago on 127.0.0.1 (the kernel's pick)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Process:
    """A herald process with its stderr collected in a thread. env: variables
    added to (or replacing ones of) the environment it inherits. nofile: run
    it with RLIMIT_NOFILE soft = hard = nofile (set by a Python shim that
    then execs argv: same pid, no extra tool needed)."""

    NOFILE_SHIM = ("import os, resource, sys; "
                   "resource.setrlimit(resource.RLIMIT_NOFILE, (int(sys.argv[1]), int(sys.argv[1]))); "
                   "os.execv(sys.argv[2], sys.argv[2:])")

    def __init__(self, argv, ready="event=ready", timeout=20, env=None, nofile=None):
        self.argv = argv
        self.lines = []
        self._cond = threading.Condition()
        full_env = dict(os.environ)
        full_env.setdefault("ASAN_OPTIONS", "detect_leaks=1")
        if env:
            full_env.update(env)
        if nofile is not None:
            argv = [sys.executable, "-c", self.NOFILE_SHIM, str(nofile)] + list(argv)
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     env=full_env)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        if ready and not self.wait_log(ready, timeout):
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("%s not ready in %ss; log:\n%s" % (argv[0], timeout, self.log()))

    def _read(self):
        for raw in self.proc.stderr:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            with self._cond:
                self.lines.append(line)
                self._cond.notify_all()

    def log(self):
        with self._cond:
            return "\n".join(self.lines)

    def wait_log(self, needle, timeout=10):
        deadline = time.time() + timeout
        with self._cond:
            while True:
                if any(needle in l for l in self.lines):
                    return True
                left = deadline - time.time()
                if left <= 0 or (self.proc.poll() is not None and not self._reader.is_alive()):
                    return any(needle in l for l in self.lines)
                self._cond.wait(min(left, 0.2))

    def alive(self):
        return self.proc.poll() is None

    def stop(self, sig=signal.SIGTERM, timeout=30):
        """Signals the process, waits, returns its exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("%s did not exit within %ss after signal %d; log:\n%s"
                                 % (self.argv[0], timeout, sig, self.log()))
        self._reader.join(5)
        return rc

    def check_clean_exit(self, testcase=None, sig=signal.SIGTERM):
        """Stops the process; raises AssertionError unless it exited 0 with a
        clean log (no sanitizer report). testcase is accepted for call-site
        symmetry and unused."""
        rc = self.stop(sig)
        log = self.log()
        for mark in SANITIZER_MARKS:
            if mark in log:
                raise AssertionError("sanitizer report in %s log:\n%s" % (self.argv[0], log[-20000:]))
        if rc != 0:
            raise AssertionError("%s exit code %s; log:\n%s" % (self.argv[0], rc, log[-4000:]))


class Broker(Process):
    def __init__(self, *extra, link=True, resp=True, http=True, conf=None, env=None, nofile=None):
        self.link_port = free_port() if link else 0
        self.resp_port = free_port() if resp else 0
        self.http_port = free_port() if http else 0
        argv = [binary("herald-broker")]
        self.conf_path = None
        if conf is not None:
            fd, self.conf_path = tempfile.mkstemp(suffix=".conf")
            with os.fdopen(fd, "w") as f:
                f.write(conf)
            argv.append(self.conf_path)
        argv += ["--bind", "127.0.0.1", "--link-port", str(self.link_port),
                 "--resp-port", str(self.resp_port), "--http-port", str(self.http_port)]
        argv += list(extra)
        super().__init__(argv, env=env, nofile=nofile)

    def stop(self, *a, **kw):
        try:
            return super().stop(*a, **kw)
        finally:
            if self.conf_path and os.path.exists(self.conf_path):
                os.unlink(self.conf_path)


class Edge(Process):
    def __init__(self, broker_port, *extra, workers=1, port=None, env=None, nofile=None):
        self.port = port or free_port()
        argv = [binary("herald-edge"), "--bind", "127.0.0.1", "--port", str(self.port),
                "--broker", "127.0.0.1:%d" % broker_port, "--workers", str(workers)]
        argv += list(extra)
        super().__init__(argv, env=env, nofile=nofile)


def run_cli(*argv, input=None, timeout=20, check=True):
    """Runs the herald CLI (or any command when argv[0] is absolute); returns CompletedProcess."""
    cmd = list(argv)
    if not os.path.isabs(cmd[0]) and cmd[0] == "herald":
        cmd[0] = binary("herald")
    p = subprocess.run(cmd, input=input, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError("%s exited %d: %s" % (cmd, p.returncode, p.stderr.decode(errors="replace")))
    return p


def http(port, method, path, body=None, headers=None, timeout=10):
    """Minimal HTTP/1.1 request; returns (status, headers dict (lower-case), body bytes)."""
    import http.client
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    c.request(method, path, body=body, headers=headers or {})
    r = c.getresponse()
    data = r.read()
    hdrs = {k.lower(): v for k, v in r.getheaders()}
    c.close()
    return r.status, hdrs, data


# ---------------------------------------------------------------- raw sockets


def connect(port, rcvbuf=None, timeout=10, linger0=False):
    """A TCP socket connected to 127.0.0.1:port. rcvbuf: SO_RCVBUF set before
    connecting (a small one makes a reader that falls behind); linger0: its
    close() resets the connection."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        if rcvbuf:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        if linger0:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.settimeout(timeout)
        s.connect(("127.0.0.1", port))
    except OSError:
        s.close()
        raise
    return s


def closed_within(sock, timeout, max_bytes=1 << 26):
    """Reads (and discards) until the peer closes or resets: True; False when
    timeout passes or more than max_bytes arrive first."""
    deadline = time.time() + timeout
    got = 0
    while True:
        left = deadline - time.time()
        if left <= 0 or got > max_bytes:
            return False
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            return True
        except socket.timeout:
            return False
        if not chunk:
            return True
        got += len(chunk)


def proc_cpu_seconds(pid):
    """utime + stime of a process (all its threads), in seconds."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------- RESP


def resp_cmd(*args):
    """One RESP command (an array of bulk strings) from str, bytes or int arguments."""
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        if isinstance(a, str):
            a = a.encode()
        elif isinstance(a, int):
            a = str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


class SocketClient:
    """What the RESP and link clients share: a socket, bytes read ahead."""

    def close(self):
        self.sock.close()

    def closed_by_server(self, timeout=5):
        """True when the server closes the connection (after any pending bytes)."""
        self.sock.settimeout(timeout)
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
                self.buf += chunk
        except (ConnectionResetError, BrokenPipeError):
            return True
        except socket.timeout:
            return False


class RespClient(SocketClient):
    """A raw RESP2 client: send commands, read replies (bytes, int, list, RespError)."""

    def __init__(self, port, timeout=10):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""

    def send_raw(self, data):
        self.sock.sendall(data)

    def send(self, *args):
        self.sock.sendall(resp_cmd(*args))

    def call(self, *args):
        self.send(*args)
        return self.reply()

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("connection closed by server")
        self.buf += chunk

    def _line(self):
        while b"\r\n" not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def reply(self):
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest
        if kind == b"-":
            return RespError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            while len(self.buf) < n + 2:
                self._fill()
            data, self.buf = self.buf[:n], self.buf[n + 2:]
            return data
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self.reply() for _ in range(n)]
        raise AssertionError("bad RESP reply line %r" % line)


class RespError(Exception):
    def __eq__(self, other):
        return isinstance(other, RespError) and str(self) == str(other)

    def __hash__(self):
        return hash(str(self))


# ---------------------------------------------------------------- msgpack / link


def mp_pack(obj):
    """Packs None, bool, int (>= 0 or negative), str, bytes, list."""
    if obj is None:
        return b"\xc0"
    if obj is True:
        return b"\xc3"
    if obj is False:
        return b"\xc2"
    if isinstance(obj, int):
        if 0 <= obj < 128:
            return bytes([obj])
        if obj >= 0:
            return b"\xcf" + struct.pack(">Q", obj)
        return b"\xd3" + struct.pack(">q", obj)
    if isinstance(obj, str):
        b = obj.encode()
        if len(b) < 32:
            return bytes([0xa0 | len(b)]) + b
        return b"\xdb" + struct.pack(">I", len(b)) + b
    if isinstance(obj, (bytes, bytearray)):
        return b"\xc6" + struct.pack(">I", len(obj)) + bytes(obj)
    if isinstance(obj, (list, tuple)):
        head = bytes([0x90 | len(obj)]) if len(obj) < 16 else b"\xdd" + struct.pack(">I", len(obj))
        return head + b"".join(mp_pack(x) for x in obj)
    raise TypeError(obj)


class NeedMore(Exception):
    pass


def mp_unpack(buf, i=0):
    """Returns (object, next index); raises NeedMore when buf is short."""
    def need(n):
        if i + n > len(buf):
            raise NeedMore()
    need(1)
    b = buf[i]
    i += 1
    if b < 0x80:
        return b, i
    if 0x90 <= b <= 0x9f or b in (0xdc, 0xdd):
        if b <= 0x9f:
            n = b & 0x0f
        else:
            w = 2 if b == 0xdc else 4
            need(w)
            n = int.from_bytes(buf[i:i + w], "big")
            i += w
        out = []
        for _ in range(n):
            x, i = mp_unpack(buf, i)
            out.append(x)
        return out, i
    if 0xa0 <= b <= 0xbf or b in (0xd9, 0xda, 0xdb, 0xc4, 0xc5, 0xc6):
        if b <= 0xbf:
            n = b & 0x1f
        else:
            w = {0xd9: 1, 0xda: 2, 0xdb: 4, 0xc4: 1, 0xc5: 2, 0xc6: 4}[b]
            need(w)
            n = int.from_bytes(buf[i:i + w], "big")
            i += w
        need(n)
        data = bytes(buf[i:i + n])
        return (data.decode("utf-8", "replace") if (b <= 0xbf or b in (0xd9, 0xda, 0xdb)) else data), i + n
    if b == 0xc0:
        return None, i
    if b in (0xc2, 0xc3):
        return b == 0xc3, i
    if b in (0xcc, 0xcd, 0xce, 0xcf):
        w = {0xcc: 1, 0xcd: 2, 0xce: 4, 0xcf: 8}[b]
        need(w)
        return int.from_bytes(buf[i:i + w], "big"), i + w
    if b in (0xd0, 0xd1, 0xd2, 0xd3):
        w = {0xd0: 1, 0xd1: 2, 0xd2: 4, 0xd3: 8}[b]
        need(w)
        return int.from_bytes(buf[i:i + w], "big", signed=True), i + w
    if b >= 0xe0:
        return b - 256, i
    raise ValueError("unsupported msgpack byte 0x%02x" % b)


HELLO, WELCOME, SUB, UNSUB, PUB, PUBACK, MSG, PING, PONG, ERR = range(1, 11)


class LinkClient(SocketClient):
    """Speaks the link protocol like an edge or the CLI would. With hello, it
    sends HELLO (role, node: the name the broker logs, secret) and requires WELCOME."""

    def __init__(self, port, secret=None, hello=True, timeout=10, role="test", rcvbuf=None,
                 node=None):
        self.sock = connect(port, rcvbuf=rcvbuf, timeout=timeout)
        self.buf = b""
        if hello:
            self.send([HELLO, 1, role, node or "pytest-%d" % os.getpid(), secret])
            w = self.frame()
            assert w[0] == WELCOME, w

    def send(self, frame):
        self.sock.sendall(mp_pack(frame))

    def frame(self, timeout=10):
        self.sock.settimeout(timeout)
        while True:
            try:
                obj, n = mp_unpack(self.buf)
                self.buf = self.buf[n:]
                return obj
            except NeedMore:
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise ConnectionError("link closed by broker")
                self.buf += chunk

    def sub(self, pattern):
        self.send([SUB, pattern])

    def publish(self, topic, payload, req_id=1):
        self.send([PUB, topic, payload if isinstance(payload, bytes) else payload.encode(), req_id])
        f = self.frame()
        assert f[0] == PUBACK, f
        return f  # [PUBACK, req_id, receivers, seq]

    def sync(self):
        """Round trip: everything sent before has been processed by the broker."""
        self.send([PING, 7])
        while True:
            f = self.frame()
            if f[0] == PONG:
                return
            raise AssertionError("unexpected frame before PONG: %r" % (f,))


def metric(text, name, labels=None):
    """Value of a Prometheus sample in text (labels like 'reason="x"'), or None."""
    want = name + ("{%s}" % labels if labels else "")
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        parts = line.rsplit(" ", 1)
        if len(parts) == 2 and parts[0] == want:
            return float(parts[1])
    return None


def metrics_text(port):
    """The body of GET /metrics on port (a broker's http_port, an edge's port)."""
    st, _, body = http(port, "GET", "/metrics")
    if st != 200:
        raise AssertionError("GET /metrics answered %d" % st)
    return body.decode()


def broker_sample(b, name, labels=None):
    """A sample's value in broker b's /metrics, 0 while the broker does not export it."""
    v = metric(metrics_text(b.http_port), name, labels)
    return 0 if v is None else v


def drops(b, reason):
    """Broker b's herald_drops_total{reason="..."} (0 before the first such drop)."""
    return broker_sample(b, "herald_drops_total", 'reason="%s"' % reason)


def wait_until(pred, timeout=10, interval=0.05):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return True
        time.sleep(interval)
    return pred()


# ---------------------------------------------------------------- npm

NODE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration", "node")
PACKAGES = ("ws", "ioredis")


def ensure_node_modules():
    """Installs the npm packages the tests drive (pinned by
    tests/integration/node/package-lock.json) once, under a file lock shared
    by every test: `npm ci` into an empty node_modules; when an older install
    lacks a package, `npm install` adds it from the lock file without
    removing what another test may be using."""
    def missing():
        return [p for p in PACKAGES
                if not os.path.exists(os.path.join(NODE_DIR, "node_modules", p, "package.json"))]

    with open(os.path.join(NODE_DIR, ".install.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not missing():
            return
        fresh = not os.path.isdir(os.path.join(NODE_DIR, "node_modules"))
        cmd = ["npm", "ci" if fresh else "install", "--no-audit", "--no-fund"]
        p = subprocess.run(cmd, cwd=NODE_DIR, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=240)
        if p.returncode != 0 or missing():
            raise AssertionError("%s failed (missing %s):\n%s"
                                 % (" ".join(cmd), missing(), p.stdout.decode(errors="replace")))


def main():
    unittest.main(verbosity=2)

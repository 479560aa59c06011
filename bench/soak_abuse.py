#!/usr/bin/env python3
"""The attacker of bench/soak.sh: the hardening tests' abuse, in rotation, against one
herald-broker and one herald-edge on 127.0.0.1.

    soak_abuse.py --link P --resp P --http P --edge P --duration S [options]

Two lanes run side by side, each a thread: the broker lane and the edge lane
cycle through their attacks, each attack one slice (--slice seconds), until
--duration has passed. Every attack is one function below, bounded in time
(its slice) and in count or bytes (the knobs), talks only to 127.0.0.1, and
closes every socket it opened before it returns. Its counters (what was sent,
how the server answered, how the connection ended) go, one JSON line per
slice, to --log; the per-attack sums, as a Markdown table, to --summary.
--slices gets a row per slice. --state is rewritten with the attacks running
now (soak.sh's sampler reads it). Python 3 standard library only; the msgpack
and RESP encoders, connect(), the /metrics parser and the WebSocket client
frames and upgrade request come from the integration tests'
tests/support/harness.py and rawws.py.

Broker lane (default order; the attacks that crash or bloat today's broker
come last, so one full cycle of the others is measured before them):
  idle_sockets        hundreds of idle connections to the link and RESP ports,
                      held for the slice (link: no HELLO)
  slowloris           1 byte/s on RESP, link and HTTP (head and body)
  malformed           RESP and link garbage, one fresh connection each
  http_dup_length     HTTP POSTs with two Content-Length headers (or CL + TE)
  auth_brute          pipelined AUTH guesses on one RESP connection
  distinct_topics     PUBLISH to 100,000 distinct topics per slice (RESP, pipelined)
  psub_punsub         PSUBSCRIBE 100,000 patterns, then PUNSUBSCRIBE names not held
  link_ping_flood     link PINGs as fast as the broker reads them, never reading
  edge_role_hog       links that HELLO with role "edge", SUB ">" and never read,
                      while the lane publishes 64 KB events to abuse.hog.*
  link_self_publish   links that SUB t, let RESP fill their output, then PUB t
                      past their own output limit, never reading
Edge lane:
  ws_ping_noread      WebSocket pings, {"op":"ping"} and bad ops, never reading
  ws_churn            connect, subscribe, disconnect, CHURN_RATE a second
  ws_slow_consumers   subscribers of the broadcast topic that never read, while
                      the lane publishes 32 KB events to a topic they also hold
  ws_handshake_slowloris  the upgrade request at 1 byte/s
  ws_many_patterns    connections with 64 long distinct 16-token patterns each
                      (1,600 of them by default: past the broker's 100,000
                      patterns per link)
"""
import argparse
import collections
import errno
import json
import os
import random
import selectors
import socket
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "support"))
from harness import (HELLO, PING, PUB, SUB, UNSUB, WELCOME, NeedMore, connect, metric, mp_pack,
                     resp_cmd)
from rawws import RawWs, frame

SMALL_RCVBUF = 4096

# ------------------------------------------------------------------ helpers


def now():
    return time.monotonic()


def close_all(socks):
    for s in socks:
        try:
            s.close()
        except OSError:
            pass
    del socks[:]


def tcp_state(s):
    try:
        return s.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)[0]
    except OSError:
        return 0


def server_closed(s, drain_bytes=0, drain_s=0.0):
    """True when the server has ended s: FIN or RST seen, or (reading at most
    drain_bytes for drain_s seconds) EOF after what it had queued."""
    if tcp_state(s) in (7, 8):
        return True
    deadline = now() + drain_s
    got = 0
    s.setblocking(False)
    try:
        while True:
            try:
                d = s.recv(1 << 16)
            except BlockingIOError:
                if now() >= deadline or got >= drain_bytes:
                    return False
                time.sleep(0.005)
                continue
            if not d:
                return True
            got += len(d)
            if got >= drain_bytes and now() >= deadline:
                return False
    except OSError:
        return True


def count_end(st, s, drain_bytes, drain_s, suffix=""):
    """Counts s, at the end of a slice, as closed_by_server<suffix> or
    open_at_end<suffix> (server_closed reading at most drain_bytes for drain_s seconds)."""
    closed = server_closed(s, drain_bytes=drain_bytes, drain_s=drain_s)
    st[("closed_by_server" if closed else "open_at_end") + suffix] += 1


def send_some(s, data):
    """Non-blocking send: bytes sent (0 when the kernel buffer is full); raises on a closed peer."""
    try:
        return s.send(data, socket.MSG_DONTWAIT | socket.MSG_NOSIGNAL)
    except BlockingIOError:
        return 0


def sleep_until(t):
    d = t - now()
    if d > 0:
        time.sleep(d)


# ---- link (msgpack frames: harness.mp_pack)


def link_hello(port, role="cli", rcvbuf=None, timeout=5.0):
    """A link after HELLO/WELCOME (the WELCOME read and discarded)."""
    s = connect(port, rcvbuf=rcvbuf, timeout=timeout)
    s.sendall(mp_pack([HELLO, 1, role, "soak-%d" % os.getpid(), None]))
    d = s.recv(4096)
    if not d or d[1:2] != b"\x02":  # fixarray, then type 2 (WELCOME)
        s.close()
        raise ConnectionError("no WELCOME: %r" % d[:32])
    return s


def link_sync(s, timeout=5.0):
    """PING, then reads until its PONG (the token 77 ends a 3-byte [9, 77] frame)."""
    s.settimeout(timeout)
    s.sendall(mp_pack([PING, 77]))
    buf = b""
    while not buf.endswith(b"\x92\x09\x4d"):
        d = s.recv(65536)
        if not d:
            raise ConnectionError("link closed")
        buf = (buf + d)[-64:]


# ---- RESP (commands: harness.resp_cmd)


def resp_parse(buf, i=0):
    """One reply from buf at i: (value, next index); raises NeedMore when buf
    is short. Errors come back as ('ERR', text)."""
    j = buf.find(b"\r\n", i)
    if j < 0:
        raise NeedMore()
    kind, line = buf[i:i + 1], buf[i + 1:j]
    i = j + 2
    if kind == b"+":
        return line, i
    if kind == b"-":
        return ("ERR", line), i
    if kind == b":":
        return int(line), i
    if kind == b"$":
        n = int(line)
        if n < 0:
            return None, i
        if len(buf) < i + n + 2:
            raise NeedMore()
        return buf[i:i + n], i + n + 2
    if kind == b"*":
        n = int(line)
        out = []
        for _ in range(max(n, 0)):
            v, i = resp_parse(buf, i)
            out.append(v)
        return out, i
    raise ValueError("bad RESP byte %r" % kind)


class RespConn:
    """A RESP connection that pipelines and reads replies as they come."""

    def __init__(self, port, timeout=10.0):
        self.sock = connect(port, timeout=timeout)
        self.buf = b""
        self.pending = 0

    def send(self, data, n_replies=1):
        self.sock.sendall(data)
        self.pending += n_replies

    def read(self, want, timeout=10.0):
        """Reads until `want` replies are complete (or timeout); returns them."""
        out = []
        deadline = now() + timeout
        pos = 0
        while len(out) < want:
            try:
                while len(out) < want:
                    v, pos = resp_parse(self.buf, pos)
                    out.append(v)
            except NeedMore:
                pass
            if len(out) >= want:
                break
            left = deadline - now()
            if left <= 0:
                break
            self.sock.settimeout(left)
            try:
                d = self.sock.recv(1 << 20)
            except socket.timeout:
                break
            if not d:
                self.buf = self.buf[pos:]
                raise ConnectionError("RESP connection closed by server")
            self.buf = self.buf[pos:] + d
            pos = 0
        self.buf = self.buf[pos:]
        self.pending -= len(out)
        return out

    def close(self):
        self.sock.close()


class Publisher:
    """Publishes payloads on one RESP connection, keeping at most `window` replies outstanding."""

    def __init__(self, port, st, window=64):
        self.c = RespConn(port)
        self.st = st
        self.window = window

    def publish(self, topic, payload):
        self.c.send(resp_cmd("PUBLISH", topic, payload))
        self.st["published"] += 1
        self.st["published_bytes"] += len(payload)
        if self.c.pending > self.window:
            self.collect(self.c.pending - self.window // 2)

    def collect(self, n, timeout=10.0):
        for r in self.c.read(n, timeout):
            if isinstance(r, int):
                self.st["publish_receivers"] += r
            else:
                self.st["publish_error_replies"] += 1

    def close(self):
        try:
            if self.c.pending:
                self.collect(self.c.pending, timeout=2.0)
        except OSError:
            pass
        self.c.close()


# ---- WebSocket


WS_KEY = "c29hay1hYnVzZS0wMDAwMA=="  # any 16 bytes, base64


def ws_frame(opcode, payload=b""):
    """A final client frame, masked with the all-zero key (legal: the payload goes as it is)."""
    return frame(opcode, payload, mask_key=b"\0\0\0\0")


def ws_open(port, path, rcvbuf=None, timeout=5.0, linger0=False):
    """A WebSocket after a 101; returns (socket, bytes already read past the head)."""
    s = connect(port, rcvbuf=rcvbuf, timeout=timeout, linger0=linger0)
    try:
        s.sendall(RawWs.upgrade_head(path, WS_KEY))
        buf = b""
        while b"\r\n\r\n" not in buf:
            d = s.recv(4096)
            if not d:
                raise ConnectionError("closed during the handshake")
            buf += d
        head, rest = buf.split(b"\r\n\r\n", 1)
        if not head.startswith(b"HTTP/1.1 101"):
            raise ConnectionError("handshake answered %r" % head[:40])
        return s, rest
    except Exception:
        s.close()
        raise


def ws_frames(buf):
    """Complete server frames at the head of buf: ([(opcode, payload)], rest)."""
    out = []
    i = 0
    while len(buf) - i >= 2:
        b1 = buf[i + 1] & 0x7F
        hl = 2
        if b1 == 126:
            if len(buf) - i < 4:
                break
            b1 = struct.unpack(">H", buf[i + 2:i + 4])[0]
            hl = 4
        elif b1 == 127:
            if len(buf) - i < 10:
                break
            b1 = struct.unpack(">Q", buf[i + 2:i + 10])[0]
            hl = 10
        if len(buf) - i < hl + b1:
            break
        out.append((buf[i] & 0x0F, buf[i + hl:i + hl + b1]))
        i += hl + b1
    return out, buf[i:]


def count_ws_frame(st, op, payload):
    if op == 0x1:
        if b'"op":"ok"' in payload:
            st["ok_replies"] += 1
        elif b'"op":"error"' in payload:
            st["error_replies"] += 1
            if b"too_many_subscriptions" in payload:
                st["error_too_many_subscriptions"] += 1
        elif b'"op":"msg"' in payload:
            st["events"] += 1
        else:
            st["other_text"] += 1
    elif op == 0x8:
        code = struct.unpack(">H", payload[:2])[0] if len(payload) >= 2 else 0
        st["close_frames_%d" % code] += 1


# ------------------------------------------------------------------ context


class Ctx:
    def __init__(self, a):
        self.a = a
        self.link, self.resp, self.http, self.edge = a.link, a.resp, a.http, a.edge
        self.slice_no = 0


def run_idle_unavailable(deadline, st, what):
    """When a port refuses connections (the process is gone), wait out the slice."""
    st["connect_refused_" + what] += 1
    sleep_until(deadline)


def publish_to_nonreaders(ctx, deadline, st, open_socks, publish, drain_bytes, drain_s):
    """What edge_role_hog and ws_slow_consumers share: open_socks(socks) opens
    the connections that never read (appending each to socks), publish(pub)
    sends events on a Publisher (RESP) so that their output piles up, then
    the slice is waited out and each connection counted closed_by_server or
    open_at_end (count_end). A connection error is counted as error_<type>;
    the connections and the publisher are closed on return."""
    socks = []
    pub = None
    try:
        open_socks(socks)
        try:
            pub = Publisher(ctx.resp, st)
        except OSError:
            return run_idle_unavailable(deadline, st, "resp")
        publish(pub)
        pub.close()
        pub = None
        sleep_until(deadline)
        for s in socks:
            count_end(st, s, drain_bytes, drain_s)
    except (ConnectionError, OSError) as e:
        st["error_" + type(e).__name__] += 1
    finally:
        if pub:
            try:
                pub.close()
            except OSError:
                pass
        close_all(socks)


# ------------------------------------------------------------------ broker lane


def idle_sockets(ctx, deadline, st):
    """IDLE_SOCKETS connections each to the link and the RESP port, no bytes sent;
    every second, counts how many the broker has closed; a probe client checks
    that real clients still get in (RESP PING, link HELLO)."""
    n = ctx.a.idle_sockets
    held = {"link": [], "resp": []}
    opened_at = {}
    try:
        for kind, port in (("link", ctx.link), ("resp", ctx.resp)):
            for _ in range(n):
                if now() >= deadline:
                    break
                try:
                    s = connect(port, timeout=2.0)
                    held[kind].append(s)
                    opened_at[s] = now()
                    st["opened_" + kind] += 1
                except OSError as e:
                    st["connect_failed_%s_%s" % (kind, errno.errorcode.get(e.errno, "x"))] += 1
        closed = set()
        close_s = []
        next_probe = now()
        while now() < deadline:
            for kind in held:
                for s in held[kind]:
                    if s in closed:
                        continue
                    if server_closed(s):
                        closed.add(s)
                        st["closed_by_server_" + kind] += 1
                        close_s.append(now() - opened_at[s])
            if now() >= next_probe:
                next_probe = now() + 3
                try:
                    c = RespConn(ctx.resp, timeout=3)
                    c.send(resp_cmd("PING"))
                    r = c.read(1, timeout=3)
                    c.close()
                    st["probe_resp_ok" if r == [b"PONG"] else "probe_resp_failed"] += 1
                except OSError:
                    st["probe_resp_failed"] += 1
                try:
                    link_hello(ctx.link, timeout=3).close()
                    st["probe_link_ok"] += 1
                except OSError:
                    st["probe_link_failed"] += 1
            time.sleep(min(1.0, max(0.0, deadline - now())))
        for kind in held:
            st["open_at_end_" + kind] += sum(1 for s in held[kind] if s not in closed)
        if close_s:
            close_s.sort()
            st["closed_after_s_median"] = round(close_s[len(close_s) // 2], 1)
    finally:
        close_all(held["link"])
        close_all(held["resp"])


def slowloris(ctx, deadline, st):
    """SLOWLORIS connections per port, each sending one byte a second of a request
    that never completes: RESP (a PUBLISH), link (a HELLO), HTTP (half the head,
    half the body of a POST with Content-Length). Counts the ones the broker
    closes and after how long."""
    n = ctx.a.slowloris
    big = "x" * 4000
    reqs = {
        "resp": resp_cmd("PUBLISH", "abuse.slow", big),
        "link": mp_pack([HELLO, 1, "cli", "slow" + big, None]),
        "http_head": ("POST /v1/publish/abuse.slow HTTP/1.1\r\nHost: x\r\nX-Pad: %s\r\n"
                      "Content-Length: 10\r\n\r\n0123456789" % big).encode(),
        "http_body": None,
    }
    body_head = b"POST /v1/publish/abuse.slow HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n"
    conns = []  # [sock, kind, data, pos, opened, closed]
    try:
        for kind, port in (("resp", ctx.resp), ("link", ctx.link), ("http_head", ctx.http),
                           ("http_body", ctx.http)):
            for _ in range(n // 2 if kind.startswith("http") else n):
                try:
                    s = connect(port, timeout=2.0)
                except OSError:
                    st["connect_failed_" + kind] += 1
                    continue
                data = reqs[kind]
                if kind == "http_body":
                    s.sendall(body_head)  # the head at once, then the body byte by byte
                    data = b"b" * 100000
                conns.append([s, kind, data, 0, now(), None])
                st["opened_" + kind] += 1
        while now() < deadline:
            t = now()
            for c in conns:
                if c[5] is not None:
                    continue
                s = c[0]
                try:
                    if server_closed(s):
                        raise ConnectionError()
                    if c[3] < len(c[2]) and send_some(s, c[2][c[3]:c[3] + 1]) == 1:
                        c[3] += 1
                        st["bytes_sent"] += 1
                except OSError:
                    c[5] = now() - c[4]
                    st["closed_by_server_" + c[1]] += 1
            sleep_until(t + 1.0)
        after = sorted(c[5] for c in conns if c[5] is not None)
        if after:
            st["closed_after_s_median"] = round(after[len(after) // 2], 1)
            st["closed_after_s_max"] = round(after[-1], 1)
        for c in conns:
            if c[5] is None:
                st["open_at_end_" + c[1]] += 1
    finally:
        for c in conns:
            c[0].close()


RESP_GARBAGE = [
    b"\x00\xff\xfe garbage \x01\x02\r\n",
    b"*-5\r\n",
    b"*2\r\n$3\r\nGET\r\n$-9\r\n",
    b"$99999999999\r\n",
    b"*1000000000\r\n",
    b"*3\r\n$7\r\nPUBLISH\r\n$3\r\nabc\r\n$5\r\nx\r\n",
    b"*1\r\n$4\r\nPINGXX\r\n",
    b"*2\r\n:5\r\n+OK\r\n",
    b"NOSUCHCOMMAND a b c\r\n",
    b"PUBLISH abuse.inline x" + b" y" * 2000 + b"\r\n",
    b"*3\r\n$7\r\nPUBLISH\r\n$9\r\nabuse.*.x\r\n$1\r\nx\r\n",
    b"*2\r\n$9\r\nSUBSCRIBE\r\n$0\r\n\r\n",
    b"*1\r\n" * 50000,
    b"\r\n" * 10000,
    b"*1\r\n$" + b"9" * 40 + b"\r\n",
]
LINK_GARBAGE = [
    b"\xff\xff\xff\xff",
    b"\x05",  # not an array
    mp_pack([99]),
    mp_pack([HELLO, "one", 3, None, None]),
    mp_pack([PUB, "abuse.t", b"x", 1]),  # before HELLO
    b"\x91" * 100000,  # deeply nested arrays
    b"\xdd\xff\xff\xff\xff",  # an array of 4 billion elements
    b"\x94\x01\x01\xa3cli\xc6\xff\xff\xff\xf0",  # a 4 GB bin announced
    mp_pack([HELLO, 1, "cli", "x", None]) + mp_pack([SUB, "a..b"]) + mp_pack([PUB, "a.*", b"x", 1])
    + mp_pack([UNSUB, ""]) + mp_pack([HELLO, 1, "cli", "x", None]),
    mp_pack([HELLO, 1, "cli", "x", None]) + mp_pack([SUB, "abuse." + "t." * 40 + "x"]),
    mp_pack([HELLO, 1, "cli", "x", None]) + mp_pack([WELCOME, 1, "x", 1]),
    bytes(random.Random(7).getrandbits(8) for _ in range(4096)),
]


def malformed(ctx, deadline, st):
    """Garbage to RESP and the link, each sample on a fresh connection, up to
    MALFORMED_RATE connections a second; counts error replies and closes."""
    samples = [("resp", ctx.resp, g) for g in RESP_GARBAGE] + [("link", ctx.link, g) for g in LINK_GARBAGE]
    i = 0
    gap = 1.0 / max(1, ctx.a.malformed_rate)
    while now() < deadline:
        kind, port, data = samples[i % len(samples)]
        i += 1
        t = now()
        try:
            s = connect(port, timeout=1.0)
        except OSError:
            st["connect_failed_" + kind] += 1
            sleep_until(t + 0.2)
            continue
        try:
            st["sent_" + kind] += 1
            try:
                s.sendall(data)
            except OSError:
                st["closed_while_sending_" + kind] += 1
                continue
            got = b""
            end = now() + 0.3
            closed = False
            while now() < end:
                s.settimeout(max(0.01, end - now()))
                try:
                    d = s.recv(65536)
                except socket.timeout:
                    break
                except OSError:
                    closed = True
                    break
                if not d:
                    closed = True
                    break
                got += d
            if kind == "resp":
                st["error_replies_resp"] += got.count(b"\r\n-") + got.startswith(b"-")
            else:
                st["err_frames_link"] += got.count(b"\x93\x0a")  # [10, code, text]
            st[("closed_by_server_" if closed else "left_open_") + kind] += 1
        finally:
            s.close()
        sleep_until(t + gap)


def http_dup_length(ctx, deadline, st):
    """POSTs with two Content-Length headers (equal, different) or Content-Length
    plus Transfer-Encoding, up to HTTP_DUP_RATE a second; counts the status codes
    (200 means the broker published it)."""
    variants = [
        ("cl_equal", b"Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello"),
        ("cl_differ", b"Content-Length: 5\r\nContent-Length: 10\r\n\r\nhellohello"),
        ("cl_te", b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"),
    ]
    i = 0
    gap = 1.0 / max(1, ctx.a.http_dup_rate)
    while now() < deadline:
        name, tail = variants[i % len(variants)]
        i += 1
        t = now()
        try:
            s = connect(ctx.http, timeout=2.0)
        except OSError:
            st["connect_failed"] += 1
            sleep_until(t + 0.2)
            continue
        try:
            s.sendall(b"POST /v1/publish/abuse.smuggle HTTP/1.1\r\nHost: x\r\n" + tail)
            got = b""
            while b"\r\n" not in got:
                d = s.recv(4096)
                if not d:
                    break
                got += d
            status = got.split(b" ")[1].decode() if got.startswith(b"HTTP/") else "none"
            st["%s_status_%s" % (name, status)] += 1
        except socket.timeout:
            st["%s_no_reply_2s" % name] += 1
        except OSError:
            st["%s_error" % name] += 1
        finally:
            s.close()
        sleep_until(t + gap)


def auth_brute(ctx, deadline, st):
    """AUTH guesses pipelined on one RESP connection, AUTH_MAX at most; counts the
    replies by kind and whether the broker ends the connection."""
    try:
        c = RespConn(ctx.resp)
    except OSError:
        return run_idle_unavailable(deadline, st, "resp")
    try:
        batch = 500
        while now() < deadline and st["guesses"] < ctx.a.auth_max:
            data = b"".join(resp_cmd("AUTH", "guess%d" % (st["guesses"] + k)) for k in range(batch))
            c.send(data, batch)
            st["guesses"] += batch
            for r in c.read(batch, timeout=max(0.1, deadline - now())):
                if isinstance(r, tuple):
                    st["reply_" + r[1].split(b" ")[0].decode(errors="replace")] += 1
                else:
                    st["reply_ok"] += 1
    except (ConnectionError, OSError):
        st["closed_by_server"] += 1
    finally:
        c.close()


def distinct_topics(ctx, deadline, st):
    """PUBLISH to DISTINCT_TOPICS topics never published before (abuse.topic.<run>.<slice>.<n>),
    pipelined in batches of 1,000 on one RESP connection."""
    try:
        c = RespConn(ctx.resp)
    except OSError:
        return run_idle_unavailable(deadline, st, "resp")
    try:
        n, batch = ctx.a.distinct_topics, 1000
        base = "abuse.topic.%d.%d.%s." % (os.getpid(), ctx.slice_no, "t" * 48)  # ~80-byte topics
        for start in range(0, n, batch):
            if now() >= deadline:
                break
            c.send(b"".join(resp_cmd("PUBLISH", base + str(k), "x") for k in range(start, min(n, start + batch))),
                   min(batch, n - start))
            st["published"] += min(batch, n - start)
            for r in c.read(min(batch, n - start), timeout=max(0.1, deadline - now())):
                st["ok_replies" if isinstance(r, int) else "error_replies"] += 1
    except (ConnectionError, OSError):
        st["closed_by_server"] += 1
    finally:
        c.close()


def psub_punsub(ctx, deadline, st):
    """PSUBSCRIBE PSUB_PATTERNS patterns (1,000 per command), then PUNSUBSCRIBE
    names not held (1,000 per command) until the slice ends; the time each phase
    took is the cost (today: a linear scan of every subscription per name)."""
    try:
        c = RespConn(ctx.resp)
    except OSError:
        return run_idle_unavailable(deadline, st, "resp")
    try:
        base = "abuse.ps.%d.%d." % (os.getpid(), ctx.slice_no)
        n, batch = ctx.a.psub_patterns, 1000
        t0 = now()
        for start in range(0, n, batch):
            if now() >= deadline:
                break
            names = [base + "p%d.*" % k for k in range(start, min(n, start + batch))]
            c.send(resp_cmd("PSUBSCRIBE", *names), len(names))
            got = c.read(len(names), timeout=max(0.1, deadline - now()))
            st["psubscribed"] += len(got)
            if len(got) < len(names):
                st["psubscribe_replies_missing_at_deadline"] += len(names) - len(got)
                break
        st["psubscribe_s"] = round(now() - t0, 2)
        t1 = now()
        k = 0
        while now() < deadline:
            names = [base + "never%d" % (k + j) for j in range(1000)]
            k += 1000
            c.send(resp_cmd("PUNSUBSCRIBE", *names), len(names))
            st["punsubscribe_sent"] += len(names)
            got = c.read(len(names), timeout=max(0.1, deadline - now()))
            st["punsubscribe_replied"] += len(got)
            if len(got) < len(names):
                break
        dt = now() - t1
        st["punsubscribe_s"] = round(dt, 2)
        if st["punsubscribe_replied"]:
            st["punsubscribe_per_s"] = int(st["punsubscribe_replied"] / max(dt, 1e-3))
    except (ConnectionError, OSError):
        st["closed_by_server"] += 1
    finally:
        c.close()


def link_ping_flood(ctx, deadline, st):
    """One link (HELLO role "cli", small receive buffer) sends PINGs as fast as the
    broker reads them, PING_FLOOD_MB at most, and never reads a PONG."""
    try:
        s = link_hello(ctx.link, rcvbuf=SMALL_RCVBUF)
    except OSError:
        return run_idle_unavailable(deadline, st, "link")
    chunk = mp_pack([PING, 7]) * 20000
    limit = ctx.a.ping_flood_mb << 20
    off = 0  # into chunk: a partial send continues where it stopped, frames stay whole
    try:
        while now() < deadline and st["bytes_sent"] < limit:
            n = send_some(s, chunk[off:])
            off = (off + n) % len(chunk)
            st["bytes_sent"] += n
            if n == 0:
                st["send_blocked_ms"] += 10
                time.sleep(0.01)
        st["pings_sent"] = st["bytes_sent"] // 3
        sleep_until(deadline - 0.5)  # hold what the broker queued for the rest of the slice
        count_end(st, s, 16 << 20, 0.5)
    except OSError:
        st["pings_sent"] = st["bytes_sent"] // 3
        st["closed_by_server"] += 1
    finally:
        s.close()


def edge_role_hog(ctx, deadline, st):
    """HOGS links HELLO with role "edge" (no credential), SUB ">" and never read;
    meanwhile 64 KB events go to abuse.hog.<n> (HOG_MB per slice, spread over two
    thirds of it), so each hog's output grows to whatever limit it was given."""
    def open_hogs(hogs):
        for _ in range(ctx.a.hogs):
            try:
                s = link_hello(ctx.link, role="edge", rcvbuf=SMALL_RCVBUF)
                s.sendall(mp_pack([SUB, ">"]))
                hogs.append(s)
                st["hogs"] += 1
            except OSError:
                st["hog_connect_failed"] += 1

    def publish(pub):
        payload = b"h" * 65536
        total = ctx.a.hog_mb << 4  # 64 KB events
        t0 = now()
        span = max(1.0, (deadline - t0) * 2 / 3)
        for k in range(total):
            if now() >= deadline:
                break
            sleep_until(t0 + span * k / total)
            pub.publish("abuse.hog.%d" % (k % 16), payload)

    publish_to_nonreaders(ctx, deadline, st, open_hogs, publish, 32 << 20, 0.3)


def broker_metric(ctx, name):
    """A value from the broker's /metrics (None when it does not answer)."""
    try:
        s = connect(ctx.http, timeout=3.0)
        try:
            s.sendall(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")
            buf = b""
            while True:
                d = s.recv(65536)
                if not d:
                    break
                buf += d
        finally:
            s.close()
    except OSError:
        return None
    return metric(buf.decode(errors="replace"), name)


def link_self_publish(ctx, deadline, st):
    """Attack F1 (a link that publishes to its own topic) with the default limits: for k = 14..24, a link (small
    receive buffer, never reading) subscribes to its own topic, RESP publishes
    k x 512 KB to that topic (fan-out is not paused, so the link's output grows
    toward client-output-limit), then the link publishes a 1 MB event to its
    own topic: for the k whose output then passes the limit, the delivery to
    itself closes it inside its own PUB (today: use-after-free, the broker
    crashes; a RESP client holds a pattern that makes the router read the
    topic after the link deliveries). How each link ended is read from
    herald_slow_consumers_total around each step."""
    links = []
    watcher = None
    try:
        pub = Publisher(ctx.resp, st, window=8)
        # A RESP pattern that shares the topics' first tokens but matches none of
        # them: after the link deliveries the router walks the RESP trie with the
        # topic, which (today) lives in the decoder the self-close just freed.
        watcher = RespConn(ctx.resp)
        watcher.send(resp_cmd("PSUBSCRIBE", "abuse.self.*.*.none"))
        watcher.read(1, timeout=5)
    except OSError:
        if watcher:
            watcher.close()
        return run_idle_unavailable(deadline, st, "resp")
    slow = "herald_slow_consumers_total"
    tipped = []
    try:
        half = b"f" * (512 << 10)
        own = b"o" * 1000000
        ks = list(range(14, 25))
        i = 0
        while now() < deadline - 1:
            if i == len(ks):  # a full sweep done: repeat the fills that tipped, to the end
                if not tipped:
                    break
                ks += tipped
            k = ks[i]
            i += 1
            topic = "abuse.self.%d.%d.%d" % (os.getpid(), ctx.slice_no, k)
            try:
                s = link_hello(ctx.link, rcvbuf=SMALL_RCVBUF)
                s.sendall(mp_pack([SUB, topic]))
                link_sync(s)
            except OSError:
                st["link_connect_failed"] += 1
                time.sleep(0.2)
                continue
            links.append(s)
            st["links"] += 1
            m0 = broker_metric(ctx, slow)
            for _ in range(k):
                pub.publish(topic, half)
            pub.collect(pub.c.pending)
            m1 = broker_metric(ctx, slow)
            if m0 is not None and m1 is not None and m1 > m0:
                st["closed_during_fill"] += 1
                s.close()
                links.remove(s)
                continue
            try:
                s.settimeout(5.0)
                s.sendall(mp_pack([PUB, topic, own, 1]))
                st["own_pubs"] += 1
            except OSError:
                st["send_failed_own_pub"] += 1
                continue
            time.sleep(0.2)
            m2 = broker_metric(ctx, slow)
            if m2 is None:
                st["broker_gone_after_own_pub_k%d" % k] += 1
                break
            s.close()  # done with it (its queued output goes with it)
            links.remove(s)
            if m1 is not None and m2 > m1:
                st["closed_by_own_pub"] += 1
                if len(tipped) < 3 and k not in tipped:
                    tipped.append(k)
            else:
                st["open_after_own_pub"] += 1
        sleep_until(deadline)
    except (ConnectionError, OSError) as e:
        st["error_" + type(e).__name__] += 1
    finally:
        try:
            pub.close()
        except OSError:
            pass
        watcher.close()
        close_all(links)


# ------------------------------------------------------------------ edge lane


def ws_ping_noread(ctx, deadline, st):
    """Three connections (small receive buffers), one sending WebSocket pings with
    125-byte payloads, one {"op":"ping"}, one bad ops; none reads. WS_FLOOD_MB per
    slice in all; a connection the edge closes is reopened (counted)."""
    kinds = [
        ("ping", ws_frame(0x9, b"p" * 125)),
        ("op_ping", ws_frame(0x1, b'{"op":"ping"}')),
        ("bad_op", ws_frame(0x1, b'{"op":"nope","id":1}')),
    ]
    limit = ctx.a.ws_flood_mb << 20
    conns = {}
    offs = collections.Counter()  # per kind: where the last partial send stopped
    try:
        while now() < deadline and st["bytes_sent"] < limit:
            progressed = False
            for name, fr in kinds:
                s = conns.get(name)
                if s is None:
                    if st["reopened"] > 30:
                        continue
                    try:
                        s, _ = ws_open(ctx.edge, "/ws", rcvbuf=SMALL_RCVBUF)
                        conns[name] = s
                        st["opened_" + name] += 1
                    except OSError:
                        st["connect_failed"] += 1
                        continue
                chunk = fr * (16384 // len(fr))
                try:
                    n = send_some(s, chunk[offs[name]:])
                    offs[name] = (offs[name] + n) % len(chunk)
                except OSError:
                    st["closed_by_server_" + name] += 1
                    st["reopened"] += 1
                    s.close()
                    conns[name] = None
                    offs[name] = 0
                    continue
                st["bytes_sent"] += n
                st["frames_sent_" + name] += n // len(fr)
                progressed = progressed or n > 0
            if not progressed:
                time.sleep(0.01)
        sleep_until(deadline)
        for name, s in conns.items():
            if s is not None:
                count_end(st, s, 8 << 20, 0.3, "_" + name)
    finally:
        close_all([s for s in conns.values() if s])


def ws_churn(ctx, deadline, st):
    """Connect, subscribe (?topic= and a sub op), read the ok, disconnect (half
    with a close frame, half with a reset), up to CHURN_RATE a second."""
    gap = 1.0 / max(1, ctx.a.churn_rate)
    i = 0
    while now() < deadline:
        t = now()
        i += 1
        try:
            s, rest = ws_open(ctx.edge, "/ws?topic=abuse.churn.%d" % (i % 1000), timeout=2.0, linger0=(i % 2 == 0))
        except OSError:
            st["handshake_failed"] += 1
            sleep_until(t + 0.05)
            continue
        st["handshakes"] += 1
        try:
            s.sendall(ws_frame(0x1, b'{"op":"sub","topic":"abuse.churn.x.%d","id":1}' % i))
            buf = rest
            s.settimeout(2.0)
            frames = []
            while not frames:
                d = s.recv(4096)
                if not d:
                    raise ConnectionError()
                frames, buf = ws_frames(buf + d)
            for op, p in frames:
                count_ws_frame(st, op, p)
            if i % 2:
                s.sendall(ws_frame(0x8, struct.pack(">H", 1000)))
                st["closed_with_frame"] += 1
            else:
                st["closed_with_reset"] += 1
        except OSError:
            st["failed_after_handshake"] += 1
        finally:
            s.close()
        sleep_until(t + gap)


def ws_slow_consumers(ctx, deadline, st):
    """SLOW_CONSUMERS connections on the well-behaved broadcast topic (?topic=...)
    that also subscribe to abuse.bulk.<slice>, small receive buffers, never read;
    32 KB events go to abuse.bulk.<slice> at BULK_RATE a second, so their queues
    pass send-queue-limit. Counts the ones the edge closed."""
    topic = "abuse.bulk.%d" % ctx.slice_no

    def open_consumers(conns):
        for _ in range(ctx.a.slow_consumers):
            try:
                s, _ = ws_open(ctx.edge, "/ws?topic=%s" % ctx.a.broadcast_topic, rcvbuf=SMALL_RCVBUF)
                s.sendall(ws_frame(0x1, b'{"op":"sub","topic":"%s","id":1}' % topic.encode()))
                conns.append(s)
                st["opened"] += 1
            except OSError:
                st["connect_failed"] += 1
        time.sleep(0.3)

    def publish(pub):
        payload = b"b" * 32768
        gap = 1.0 / max(1, ctx.a.bulk_rate)
        t0 = now()
        k = 0
        while now() < deadline - 1.0:
            sleep_until(t0 + k * gap)
            pub.publish(topic, payload)
            k += 1

    publish_to_nonreaders(ctx, deadline, st, open_consumers, publish, 4 << 20, 0.2)


def ws_handshake_slowloris(ctx, deadline, st):
    """HS_SLOWLORIS connections send the upgrade request one byte a second;
    counts the ones the edge closes and after how long."""
    head = RawWs.upgrade_head("/ws?topic=abuse.hs" + "&pad=" + "x" * 200, WS_KEY)
    conns = []
    try:
        for _ in range(ctx.a.hs_slowloris):
            try:
                conns.append([connect(ctx.edge, timeout=2.0), 0, now(), None])
                st["opened"] += 1
            except OSError:
                st["connect_failed"] += 1
        while now() < deadline:
            t = now()
            for c in conns:
                if c[3] is not None:
                    continue
                try:
                    if server_closed(c[0]):
                        raise ConnectionError()
                    if send_some(c[0], head[c[1]:c[1] + 1]) == 1:
                        c[1] += 1
                except OSError:
                    c[3] = now() - c[2]
                    st["closed_by_server"] += 1
            sleep_until(t + 1.0)
        after = sorted(c[3] for c in conns if c[3] is not None)
        if after:
            st["closed_after_s_median"] = round(after[len(after) // 2], 1)
        st["open_at_end"] += sum(1 for c in conns if c[3] is None)
    finally:
        for c in conns:
            c[0].close()


def long_pattern(slice_no, conn, k):
    p = "abuse.p%d.c%d.k%d" % (slice_no, conn, k)
    for i in range(12):  # 16 tokens, ~250 bytes (max-topic-length 256, max-topic-tokens 16)
        p += ".tok%02d%s" % (i, "x" * 13)
    return p


def ws_many_patterns(ctx, deadline, st):
    """PATTERN_CONNS connections subscribe 64 distinct 16-token patterns each
    (~230 bytes), read the replies, hold them until the slice ends, then close.
    The patterns are new every slice."""
    sel = selectors.DefaultSelector()
    conns = {}
    try:
        t0 = now()
        for i in range(ctx.a.pattern_conns):
            if now() >= deadline - 2:
                st["not_opened_time"] += ctx.a.pattern_conns - i
                break
            try:
                s, rest = ws_open(ctx.edge, "/ws", timeout=3.0)
            except OSError:
                st["connect_failed"] += 1
                continue
            frames = b"".join(ws_frame(0x1, ('{"op":"sub","topic":"%s","id":%d}' % (
                long_pattern(ctx.slice_no, i, k), k)).encode()) for k in range(64))
            try:
                s.sendall(frames)
            except OSError:
                st["closed_while_subscribing"] += 1
                s.close()
                continue
            st["subs_sent"] += 64
            s.setblocking(False)
            conns[s] = rest
            sel.register(s, selectors.EVENT_READ)
            # read what is ready already, so the edge never waits on us
            for key, _ in sel.select(0):
                _ws_read(key.fileobj, conns, sel, st)
        st["open_s"] = round(now() - t0, 1)
        st["opened"] = len(conns) + st["closed_by_server"]
        while now() < deadline:
            for key, _ in sel.select(max(0.0, min(0.5, deadline - now()))):
                _ws_read(key.fileobj, conns, sel, st)
        st["open_at_end"] = len(conns)
    finally:
        for s in list(conns):
            s.close()
        sel.close()


def _ws_read(s, conns, sel, st):
    try:
        d = s.recv(1 << 16)
    except BlockingIOError:
        return
    except OSError:
        d = b""
    if not d:
        st["closed_by_server"] += 1
        sel.unregister(s)
        s.close()
        del conns[s]
        return
    frames, conns[s] = ws_frames(conns[s] + d)
    for op, p in frames:
        if op == 0x9:
            try:
                s.send(ws_frame(0xA, p), socket.MSG_DONTWAIT)
            except OSError:
                pass
        count_ws_frame(st, op, p)


BROKER_ATTACKS = ["idle_sockets", "slowloris", "malformed", "http_dup_length", "auth_brute",
                  "distinct_topics", "psub_punsub", "link_ping_flood", "edge_role_hog",
                  "link_self_publish"]
EDGE_ATTACKS = ["ws_ping_noread", "ws_churn", "ws_slow_consumers", "ws_handshake_slowloris",
                "ws_many_patterns"]


# ------------------------------------------------------------------ driver


class Run:
    def __init__(self, a):
        self.a = a
        self.lock = threading.Lock()
        self.now_running = {}
        self.rows = []
        self.t_start = now()  # monotonic, like every deadline
        self.log = open(a.log, "w") if a.log else None

    def set_state(self, lane, name):
        with self.lock:
            if name:
                self.now_running[lane] = name
            else:
                self.now_running.pop(lane, None)
            if self.a.state:
                tmp = self.a.state + ".tmp"
                with open(tmp, "w") as f:
                    f.write(" ".join(self.now_running[k] for k in sorted(self.now_running)) or "-")
                    f.write("\n")
                os.replace(tmp, self.a.state)

    def record(self, lane, name, slice_no, t0, t1, st, exc):
        row = {"lane": lane, "attack": name, "slice": slice_no,
               "start_s": round(t0 - self.t_start, 1), "end_s": round(t1 - self.t_start, 1),
               "counts": dict(st)}
        if exc:
            row["exception"] = exc
        with self.lock:
            self.rows.append(row)
            if self.log:
                self.log.write(json.dumps(row) + "\n")
                self.log.flush()
        print("soak_abuse: %6.1fs %-6s %-22s %s%s" % (t1 - self.t_start, lane, name,
              " ".join("%s=%s" % kv for kv in sorted(st.items())), (" EXC " + exc) if exc else ""),
              file=sys.stderr, flush=True)


def lane(run, ctx, lane_name, attacks, end):
    i = 0
    while now() < end - 1 and attacks:
        name = attacks[i % len(attacks)]
        i += 1
        with run.lock:
            ctx.slice_no += 1
            slice_no = ctx.slice_no
        t0 = now()
        deadline = min(end, t0 + run.a.slice)
        st = collections.Counter()
        run.set_state(lane_name, name)
        exc = None
        c = Ctx(run.a)
        c.slice_no = slice_no
        try:
            globals()[name](c, deadline, st)
        except Exception as e:  # an attack must never end the soak
            exc = "%s: %s" % (type(e).__name__, e)
        t1 = now()
        run.record(lane_name, name, slice_no, t0, t1, st, exc)
        if t1 < deadline:
            sleep_until(deadline)  # a slice that ended early (a refused port) still takes its time
    run.set_state(lane_name, None)


def summary(run, path):
    agg = collections.OrderedDict()
    for r in run.rows:
        key = (r["lane"], r["attack"])
        a = agg.setdefault(key, {"slices": 0, "seconds": 0.0, "counts": collections.Counter(),
                                 "maxes": {}, "exceptions": []})
        a["slices"] += 1
        a["seconds"] += r["end_s"] - r["start_s"]
        for k, v in r["counts"].items():
            if k.endswith(("_median", "_max", "_s", "_per_s")):
                a["maxes"][k] = max(a["maxes"].get(k, v), v)  # reported as the worst slice
            else:
                a["counts"][k] += v
        if "exception" in r:
            a["exceptions"].append(r["exception"])
    lines = ["| lane | attack | slices | seconds | counts (summed over its slices; times: the worst slice) |",
             "|---|---|---|---|---|"]
    for (ln, name), a in agg.items():
        items = ["%s=%s" % kv for kv in sorted(a["counts"].items())]
        items += ["%s=%s" % kv for kv in sorted(a["maxes"].items())]
        if a["exceptions"]:
            items.append("exceptions: " + "; ".join(sorted(set(a["exceptions"])))[:300])
        lines.append("| %s | %s | %d | %.0f | %s |" % (ln, name, a["slices"], a["seconds"],
                                                       " ".join(items).replace("|", "/")))
    text = "\n".join(lines) + "\n"
    if path:
        with open(path, "w") as f:
            f.write(text)
    return text


def slices_table(run, path):
    lines = ["| start s | end s | lane | attack | counts |", "|---|---|---|---|---|"]
    for r in sorted(run.rows, key=lambda r: (r["start_s"], r["lane"])):
        items = " ".join("%s=%s" % kv for kv in sorted(r["counts"].items()))
        if "exception" in r:
            items += " exception: " + r["exception"][:200]
        lines.append("| %.0f | %.0f | %s | %s | %s |" % (r["start_s"], r["end_s"], r["lane"], r["attack"],
                                                        items.replace("|", "/")))
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--link", type=int, required=True)
    p.add_argument("--resp", type=int, required=True)
    p.add_argument("--http", type=int, required=True)
    p.add_argument("--edge", type=int, required=True)
    p.add_argument("--duration", type=float, default=300)
    p.add_argument("--slice", type=float, default=15)
    p.add_argument("--broker-attacks", default=",".join(BROKER_ATTACKS),
                   help="comma-separated, in rotation order ('' or 'none': no broker lane)")
    p.add_argument("--edge-attacks", default=",".join(EDGE_ATTACKS))
    p.add_argument("--broadcast-topic", default="soak.all")
    p.add_argument("--state", help="file rewritten with the attacks running now")
    p.add_argument("--log", help="JSON line per slice")
    p.add_argument("--summary", help="Markdown table of the per-attack sums")
    p.add_argument("--slices", help="Markdown table, a row per slice")
    p.add_argument("--seed", type=int, default=1)
    # knobs: counts and bytes per slice
    p.add_argument("--idle-sockets", type=int, default=300, help="per port (link, RESP)")
    p.add_argument("--slowloris", type=int, default=40, help="per port (RESP, link, HTTP)")
    p.add_argument("--malformed-rate", type=int, default=100, help="connections/s")
    p.add_argument("--http-dup-rate", type=int, default=100, help="requests/s")
    p.add_argument("--auth-max", type=int, default=2000000, help="AUTH guesses per slice at most")
    p.add_argument("--distinct-topics", type=int, default=100000)
    p.add_argument("--psub-patterns", type=int, default=100000)
    p.add_argument("--ping-flood-mb", type=int, default=128)
    p.add_argument("--hogs", type=int, default=5)
    p.add_argument("--hog-mb", type=int, default=200)
    p.add_argument("--ws-flood-mb", type=int, default=256)
    p.add_argument("--churn-rate", type=int, default=200)
    p.add_argument("--slow-consumers", type=int, default=20)
    p.add_argument("--bulk-rate", type=int, default=50, help="32 KB events/s")
    p.add_argument("--hs-slowloris", type=int, default=100)
    p.add_argument("--pattern-conns", type=int, default=1600)
    a = p.parse_args()
    random.seed(a.seed)

    def names(s, known):
        out = [x for x in s.split(",") if x and x != "none"]
        bad = [x for x in out if x not in known]
        if bad:
            p.error("unknown attack(s) %s; known: %s" % (",".join(bad), ",".join(known)))
        return out

    broker = names(a.broker_attacks, BROKER_ATTACKS)
    edge = names(a.edge_attacks, EDGE_ATTACKS)
    run = Run(a)
    ctx = Ctx(a)
    end = now() + a.duration
    threads = [threading.Thread(target=lane, args=(run, ctx, n, l, end), daemon=True)
               for n, l in (("broker", broker), ("edge", edge)) if l]
    for t in threads:
        t.start()
    for t in threads:
        # each slice ends by its deadline plus its cleanup; a hung lane is abandoned
        t.join(max(1.0, end - now() + 12))
    hung = [t for t in threads if t.is_alive()]
    print(summary(run, a.summary), end="")
    if a.slices:
        slices_table(run, a.slices)
    if hung:
        print("soak_abuse: %d lane(s) still running at the end, abandoned" % len(hung), file=sys.stderr)
        os._exit(3)
    return 0


if __name__ == "__main__":
    sys.exit(main())

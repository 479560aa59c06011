"""A raw RFC 6455 client over a plain socket, for the edge integration tests.

No WebSocket library sends unmasked frames, reserved bits or broken UTF-8,
so the bad-input tests build every byte themselves with frame() below and
read the server's frames with RawWs.read_frame(), which also checks that
the server follows the RFC (frames unmasked, no reserved bits).

Only the Python standard library is used.
"""
import base64
import hashlib
import os
import socket
import struct
import time

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


def accept_for(key):
    """Sec-WebSocket-Accept the server must answer for key (str)."""
    return base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()


def frame(opcode, payload=b"", fin=True, mask=True, rsv=0, mask_key=None):
    """One client frame: header (7/16/64-bit length as needed), mask, masked
    payload. The payload is masked without a per-byte Python loop (one XOR
    of two big integers): tests and the soak build hundreds of thousands."""
    if isinstance(payload, str):
        payload = payload.encode()
    head = bytes([(0x80 if fin else 0) | (rsv << 4) | opcode])
    n = len(payload)
    mbit = 0x80 if mask else 0
    if n < 126:
        head += bytes([mbit | n])
    elif n < 65536:
        head += bytes([mbit | 126]) + struct.pack(">H", n)
    else:
        head += bytes([mbit | 127]) + struct.pack(">Q", n)
    if not mask:
        return head + payload
    key = mask_key or os.urandom(4)
    stream = (key * (n // 4 + 1))[:n]
    body = (int.from_bytes(payload, "big") ^ int.from_bytes(stream, "big")).to_bytes(n, "big")
    return head + key + body


def close_payload(code, reason=b""):
    return struct.pack(">H", code) + reason


class Closed(Exception):
    """The server closed the TCP connection (EOF or reset)."""


class RawWs:
    """One TCP connection to the edge: an HTTP head, then WebSocket frames."""

    def __init__(self, port, path=None, protocols=None, rcvbuf=None, timeout=10):
        self.port = port
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.connect(("127.0.0.1", port))
        self.buf = b""
        self.headers = {}
        if path is not None:
            self.handshake(path, protocols)

    def close(self):
        """Ends the connection (shutdown first: it also wakes a recv in another thread)."""
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        try:
            self.sock.close()
        except OSError:
            pass

    # ---------------------------------------------------------- HTTP

    @staticmethod
    def upgrade_head(path, key, protocols=None, version="13", extra=""):
        head = ("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                "Connection: Upgrade\r\n" % path)
        if key is not None:
            head += "Sec-WebSocket-Key: %s\r\n" % key
        if version is not None:
            head += "Sec-WebSocket-Version: %s\r\n" % version
        if protocols:
            head += "Sec-WebSocket-Protocol: %s\r\n" % ", ".join(protocols)
        return (head + extra + "\r\n").encode()

    def handshake(self, path, protocols=None):
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(self.upgrade_head(path, key, protocols))
        status, headers, _ = self.read_http(body=False)
        if status != 101:
            raise AssertionError("handshake for %s answered %d %r" % (path, status, headers))
        if headers.get("sec-websocket-accept") != accept_for(key):
            raise AssertionError("bad Sec-WebSocket-Accept in %r" % headers)
        self.headers = headers

    def _fill(self):
        try:
            chunk = self.sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError) as e:
            raise Closed(str(e))
        if not chunk:
            raise Closed("EOF")
        self.buf += chunk

    def read_http(self, body=True):
        """Reads one response head (and its Content-Length body): (status, headers, body)."""
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        headers = {}
        for line in lines[1:]:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
        data = b""
        if body:
            n = int(headers.get("content-length", "0"))
            while len(self.buf) < n:
                self._fill()
            data, self.buf = self.buf[:n], self.buf[n:]
        return status, headers, data

    # ---------------------------------------------------------- frames

    def send(self, data):
        self.sock.sendall(data)

    def send_frame(self, opcode, payload=b"", **kw):
        self.sock.sendall(frame(opcode, payload, **kw))

    def send_text(self, text):
        self.send_frame(OP_TEXT, text)

    def read_frame(self, timeout=10):
        """Next server frame as (fin, opcode, payload); raises Closed, socket.timeout."""
        self.sock.settimeout(timeout)
        while len(self.buf) < 2:
            self._fill()
        b0, b1 = self.buf[0], self.buf[1]
        if b1 & 0x80:
            raise AssertionError("server frame is masked: %r" % self.buf[:16])
        if b0 & 0x70:
            raise AssertionError("server frame has reserved bits: %r" % self.buf[:16])
        n, hl = b1 & 0x7F, 2
        if n == 126:
            while len(self.buf) < 4:
                self._fill()
            n, hl = struct.unpack(">H", self.buf[2:4])[0], 4
        elif n == 127:
            while len(self.buf) < 10:
                self._fill()
            n, hl = struct.unpack(">Q", self.buf[2:10])[0], 10
        while len(self.buf) < hl + n:
            self._fill()
        payload = self.buf[hl:hl + n]
        self.buf = self.buf[hl + n:]
        return bool(b0 & 0x80), b0 & 0x0F, payload

    def recv_data(self, timeout=10):
        """Next data frame as (opcode, payload), skipping pings and pongs."""
        deadline = time.time() + timeout
        while True:
            fin, op, payload = self.read_frame(max(0.01, deadline - time.time()))
            if op in (OP_PING, OP_PONG):
                continue
            if op == OP_CLOSE:
                raise AssertionError("unexpected close frame %r" % payload)
            if not fin:
                raise AssertionError("the edge sent a fragmented message")
            return op, payload

    def recv_text(self, timeout=10):
        op, payload = self.recv_data(timeout)
        if op != OP_TEXT:
            raise AssertionError("expected a text frame, got opcode %d %r" % (op, payload[:64]))
        return payload.decode("utf-8")

    def expect_close(self, timeout=10):
        """Reads until the server's close frame; returns (code, reason) and
        requires the TCP connection to end right after it."""
        deadline = time.time() + timeout
        while True:
            fin, op, payload = self.read_frame(max(0.01, deadline - time.time()))
            if op == OP_CLOSE:
                break
        code = struct.unpack(">H", payload[:2])[0] if len(payload) >= 2 else None
        reason = payload[2:].decode("utf-8")
        if not self.wait_eof(max(1.0, deadline - time.time())):
            raise AssertionError("connection still open after close frame %d" % code)
        return code, reason

    def wait_eof(self, timeout=5):
        """True when the server ends the TCP connection within timeout (bytes are discarded)."""
        self.sock.settimeout(timeout)
        deadline = time.time() + timeout
        try:
            while time.time() < deadline:
                self.sock.settimeout(max(0.01, deadline - time.time()))
                if not self.sock.recv(65536):
                    return True
        except (ConnectionResetError, BrokenPipeError):
            return True
        except socket.timeout:
            return False
        return False

"""A fake broker for the edge integration tests: a link endpoint on
127.0.0.1 that the test drives instead of a real herald-broker, to send the
edge frames a real broker would not (or not on cue) and to see exactly what
the edge sends it.

Only the Python standard library is used (and the msgpack codec of
harness.py).
"""
import socket
import threading
import time

from harness import HELLO, PING, SUB, UNSUB, WELCOME, NeedMore, mp_pack, mp_unpack


class FakeBroker:
    """Listens on a free port (self.port), serves each connection in a
    thread, decodes its msgpack frames and answers each HELLO with the first
    release's 4-element WELCOME (no pattern limit announced) naming `name`.
    It never answers a PING. What it saw, kept under self.lock:

      connects  the time.time() at which each connection was accepted
      conns     the connections that sent HELLO, oldest first
      welcomed  how many WELCOMEs it sent
      pings     how many PINGs it got
      subs      the SUB and UNSUB frames it got, as (SUB or UNSUB, pattern)

    send() writes a frame to the newest connection in conns. With
    close_after_welcome, each connection is closed after its first frame (a
    WELCOME sent if that was HELLO) or after 5 s without one, and is not
    kept in conns: a broker that welcomes and drops the link."""

    def __init__(self, name="fake", close_after_welcome=False):
        self.name = name
        self.close_after_welcome = close_after_welcome
        self.lsock = socket.socket()
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(64)
        self.port = self.lsock.getsockname()[1]
        self.lock = threading.Lock()
        self.connects, self.conns, self.subs = [], [], []
        self.welcomed, self.pings = 0, 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.lsock.accept()
            except OSError:
                return
            with self.lock:
                self.connects.append(time.time())
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        buf = b""
        if self.close_after_welcome:
            c.settimeout(5)
        try:
            while True:
                chunk = c.recv(65536)
                if not chunk:
                    return
                buf += chunk
                while True:
                    try:
                        f, n = mp_unpack(buf)
                    except NeedMore:
                        break
                    buf = buf[n:]
                    self._frame(c, f)
                    if self.close_after_welcome:
                        return
        except OSError:
            return
        finally:
            if self.close_after_welcome:
                c.close()

    def _frame(self, c, f):
        if f[0] == HELLO:
            c.sendall(mp_pack([WELCOME, 1, self.name, 1]))
            with self.lock:
                self.welcomed += 1
                if not self.close_after_welcome:
                    self.conns.append(c)
            return
        with self.lock:
            if f[0] == PING:
                self.pings += 1
            elif f[0] in (SUB, UNSUB):
                self.subs.append((f[0], f[1]))

    def send(self, frame):
        with self.lock:
            c = self.conns[-1]
        c.sendall(mp_pack(frame))

    def close(self):
        self.lsock.close()
        with self.lock:
            for c in self.conns:
                c.close()

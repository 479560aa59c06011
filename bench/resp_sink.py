#!/usr/bin/env python3
"""Holds N RESP subscribers on one channel and discards what they receive.

    resp_sink.py PORT CHANNEL N SECONDS

Used by bench/broker.sh so that both servers fan out to real sockets that
are read promptly. Exits after SECONDS (bounded) or when the server closes
every socket; prints the bytes it read.
"""
import selectors
import socket
import sys
import time

port, channel, n, seconds = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
sel = selectors.DefaultSelector()
for _ in range(n):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"SUBSCRIBE %s\r\n" % channel.encode())
    s.setblocking(False)
    sel.register(s, selectors.EVENT_READ)
print("ready", flush=True)
total, open_socks, deadline = 0, n, time.time() + seconds
while open_socks and time.time() < deadline:
    for key, _ in sel.select(0.5):
        try:
            chunk = key.fileobj.recv(1 << 20)
        except BlockingIOError:
            continue
        if not chunk:
            sel.unregister(key.fileobj)
            open_socks -= 1
        total += len(chunk)
print("bytes", total, flush=True)

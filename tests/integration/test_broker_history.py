"""Broker history over a raw link (docs/protocol.md sections 1.2 and 2.3):
WELCOME carries the epoch string; HISTORY answers HISTR followed by exactly
the missed MSGs when they are all retained (recovered true), and recovered
false with no MSGs when the size, the ttl or the memory cap dropped one, when
the epoch is another (a restart) or missing, and when after is past the head;
a pattern or a bad topic gets ERR bad_topic naming it and the link stays.
/metrics counts what is retained and why events left."""
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "support"))
from harness import (Broker, LinkClient, HELLO, WELCOME, MSG, PUB, PING, PONG, ERR,
                     broker_sample, metrics_text, metric)

HISTORY, HISTR = 13, 14


def link(b):
    """A link client and the broker's epoch string from its WELCOME."""
    c = LinkClient(b.link_port, hello=False)
    c.send([HELLO, 1, "test", "pytest-history", None])
    w = c.frame()
    assert w[0] == WELCOME and len(w) == 6, w
    assert len(w[5]) == 16 and all(ch in "0123456789abcdef" for ch in w[5]), w
    return c, w[5]


def publish(c, topic, n, start=1):
    """Publishes n events "e<seq>" fire-and-forget, then syncs."""
    for i in range(start, start + n):
        c.send([PUB, topic, ("e%d" % i).encode(), None])
    c.send([PING, 1])
    assert c.frame()[0] == PONG


def history(c, topic, epoch, after, req_id=9):
    """Sends HISTORY; returns (HISTR frame, [MSG frames that followed])."""
    c.send([HISTORY, req_id, topic, epoch, after])
    r = c.frame()
    if r[0] != HISTR:
        return r, []
    msgs = [c.frame() for _ in range(r[6])]
    return r, msgs


class History(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        # A long default ttl, so that a loaded machine never expires what a test
        # expects; ttl.> has a short one of its own.
        cls.b = Broker("--history-size", "5", "--history-ttl", "1h",
                       "--history", "small.> 2 1h", "--history", "off.> 0 1h",
                       "--history", "ttl.> 5 400ms")

    @classmethod
    def tearDownClass(cls):
        cls.b.check_clean_exit(cls)

    def test_recovered_exact_events(self):
        c, epoch = link(self.b)
        publish(c, "rec.a", 8)
        r, msgs = history(c, "rec.a", epoch, 5)
        self.assertEqual(r[:7], [HISTR, 9, "rec.a", epoch, 8, True, 3])
        self.assertEqual([(m[0], m[1], m[2], m[3]) for m in msgs],
                         [(MSG, "rec.a", s, b"e%d" % s) for s in (6, 7, 8)])
        # Up to date: recovered with nothing to send.
        r, msgs = history(c, "rec.a", epoch, 8)
        self.assertEqual(r[4:7], [8, True, 0])
        # Position only.
        r, msgs = history(c, "rec.a", None, None)
        self.assertEqual(r[3:7], [epoch, 8, False, 0])
        # A topic never published: head 0, recovered from 0.
        r, _ = history(c, "rec.never", epoch, 0)
        self.assertEqual(r[4:7], [0, True, 0])
        c.close()

    def test_size_gives_not_recovered(self):
        c, epoch = link(self.b)
        publish(c, "size.a", 9)
        r, msgs = history(c, "size.a", epoch, 3)  # 4 was pushed out by 9
        self.assertEqual(r[4:7], [9, False, 0])
        self.assertEqual(msgs, [])
        r, msgs = history(c, "size.a", epoch, 4)
        self.assertEqual((r[5], [m[2] for m in msgs]), (True, [5, 6, 7, 8, 9]))
        # The override: small.> keeps 2.
        publish(c, "small.x", 4)
        self.assertEqual(history(c, "small.x", epoch, 1)[0][5], False)
        self.assertEqual([m[2] for m in history(c, "small.x", epoch, 2)[1]], [3, 4])
        publish(c, "off.x", 2)
        self.assertEqual(history(c, "off.x", epoch, 1)[0][4:7], [2, False, 0])
        self.assertGreater(broker_sample(self.b, "herald_history_evictions_total",
                                         'reason="size"'), 0)
        c.close()

    def test_ttl_gives_not_recovered(self):
        c, epoch = link(self.b)
        publish(c, "ttl.a", 2)
        time.sleep(0.6)
        r, msgs = history(c, "ttl.a", epoch, 0)
        self.assertEqual(r[4:7], [2, False, 0])
        self.assertEqual(msgs, [])
        c.close()

    def test_epoch_and_position_give_not_recovered(self):
        c, epoch = link(self.b)
        publish(c, "ep.a", 3)
        other = "0123456789abcdef" if epoch != "0123456789abcdef" else "fedcba9876543210"
        self.assertEqual(history(c, "ep.a", other, 1)[0][3:7], [epoch, 3, False, 0])
        self.assertEqual(history(c, "ep.a", None, 1)[0][5], False)
        # after beyond the head: the position is from a sequence the broker forgot.
        self.assertEqual(history(c, "ep.a", epoch, 7)[0][4:7], [3, False, 0])
        c.close()

    def test_pattern_and_bad_topic_refused_link_stays(self):
        c, epoch = link(self.b)
        for topic in ("a.*", "a.>", "a..b", ""):
            r, _ = history(c, topic, epoch, 0)
            self.assertEqual((r[0], r[1], r[3]), (ERR, "bad_topic", topic))
        publish(c, "still.up", 1)
        self.assertTrue(history(c, "still.up", epoch, 0)[0][5])
        c.close()

    def test_metrics_count_retained(self):
        c, epoch = link(self.b)
        publish(c, "met.a", 3)
        text = metrics_text(self.b.http_port)
        self.assertGreaterEqual(metric(text, "herald_history_events"), 3)
        self.assertGreater(metric(text, "herald_history_bytes"), 0)
        self.assertIsNotNone(metric(text, "herald_history_evictions_total", 'reason="memory"'))
        self.assertGreaterEqual(metric(text, "herald_history_requests_total",
                                       'recovered="true"'), 0)
        c.close()


class Restart(unittest.TestCase):
    def test_restart_changes_epoch(self):
        b = Broker("--history-size", "10")
        c, epoch = link(b)
        publish(c, "r.a", 3)
        c.close()
        b.check_clean_exit(self)
        b2 = Broker("--history-size", "10")
        try:
            c, epoch2 = link(b2)
            self.assertNotEqual(epoch, epoch2)
            r, msgs = history(c, "r.a", epoch, 3)
            self.assertEqual(r[3:7], [epoch2, 0, False, 0])
            c.close()
        finally:
            b2.check_clean_exit(self)


class MemoryCap(unittest.TestCase):
    def test_memory_cap_gives_not_recovered(self):
        b = Broker("--history-size", "1000", "--history-max-memory", "64kb")
        try:
            c, epoch = link(b)
            payload = b"x" * 1000
            for i in range(200):
                c.send([PUB, "mem.a", payload, None])
            c.send([PING, 1])
            self.assertEqual(c.frame()[0], PONG)
            text = metrics_text(b.http_port)
            self.assertLessEqual(metric(text, "herald_history_bytes"), 64 * 1024)
            self.assertGreater(metric(text, "herald_history_evictions_total",
                                      'reason="memory"'), 0)
            kept = int(metric(text, "herald_history_events"))
            self.assertTrue(0 < kept < 200)
            self.assertFalse(history(c, "mem.a", epoch, 0)[0][5])
            r, msgs = history(c, "mem.a", epoch, 200 - kept)
            self.assertTrue(r[5])
            self.assertEqual([m[2] for m in msgs], list(range(201 - kept, 201)))
            c.close()
        finally:
            b.check_clean_exit(self)


if __name__ == "__main__":
    unittest.main()

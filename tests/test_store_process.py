"""The history written by a child process (the daemon's default on 2+ cores)."""

import os
import signal
import sqlite3

from twisted.internet import defer, reactor
from twisted.trial import unittest

from s2proxy.store import DB_NAME, ProcessStore
from tests.common import eventually
from tests.test_store import message_event, session_event


class ProcessStoreTests(unittest.TestCase):

    def make_store(self, **kw):
        d = os.path.abspath(self.mktemp())
        os.makedirs(d)
        s = ProcessStore(os.path.join(d, DB_NAME), reactor, **kw)
        s.startService()
        self.addCleanup(lambda: s.running and s.stopService())
        return s

    def rows(self, store):
        conn = sqlite3.connect(store.path)
        try:
            return conn.execute("SELECT seq, event FROM records ORDER BY id").fetchall()
        finally:
            conn.close()

    @defer.inlineCallbacks
    def test_records_reach_the_database_in_order(self):
        s = self.make_store()
        s(session_event("session_started", 1))
        for seq in range(2, 1202):
            s(message_event(seq))
        yield s.flushed()
        self.assertEqual(s.queued, 0)
        self.assertEqual(s.written, 1201)
        self.assertEqual(s.last_seq, 1201)
        rows = self.rows(s)
        self.assertEqual([r[0] for r in rows], list(range(1, 1202)))
        self.assertEqual(rows[0][1], "session_started")

    @defer.inlineCallbacks
    def test_a_dead_writer_is_restarted_and_loses_nothing(self):
        s = self.make_store()
        s(session_event("session_started", 1))
        yield s.flushed()
        old = s._writer.transport.pid
        os.kill(old, signal.SIGKILL)
        for seq in range(2, 502):
            s(message_event(seq))
        yield eventually(lambda: s._writer is not None and s._writer.transport is not None
                         and s._writer.transport.pid != old)
        yield s.flushed()
        self.assertEqual([r[0] for r in self.rows(s)], list(range(1, 502)))
        self.assertEqual(s.writer_restarts, 1)
        self.flushLoggedErrors()

    @defer.inlineCallbacks
    def test_stop_writes_everything_and_closes_sessions(self):
        s = self.make_store()
        s(session_event("session_started", 1))
        for seq in range(2, 300):
            s(message_event(seq))
        yield s.stopService()
        self.assertEqual(len(self.rows(s)), 299)
        conn = sqlite3.connect(s.path)
        self.assertEqual(conn.execute("SELECT end_reason FROM sessions").fetchall(), [("proxy stopped",)])
        conn.close()

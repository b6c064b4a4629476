"""The history store: schema versions, batches, late findings, retention, backpressure, deep paging."""

import json
import os
import shutil
import sqlite3
import time

from twisted.internet import defer, reactor, threads
from twisted.trial import unittest

from s2proxy import store as store_mod
from s2proxy.store import DB_NAME, Store, StoreError, db_bytes, open_database, parse_duration, parse_size
from tests.common import eventually
from tests.test_api import base, get_json, history_proxy, open_pair, session_of


def message_event(seq, session_id="s1", t=None, raw='{"message_type": "X"}', kind="forwarded", findings=()):
    return {"event": kind, "seq": seq, "time": time.time() if t is None else t, "session_id": session_id,
            "rm_id": "rm1", "cem_id": "cem1", "origin": "RM", "raw": raw, "binary": False,
            "size": len(raw), "message_type": "X", "message_id": "m%d" % seq,
            "format_findings": [], "findings": list(findings), "valid": True, "obj": None}


def session_event(kind, seq, session_id="s1", t=None, **extra):
    event = {"event": kind, "seq": seq, "time": time.time() if t is None else t,
             "session_id": session_id, "rm_id": "rm1", "cem_id": "cem1"}
    event.update(extra)
    return event


class RecordingRegistry:
    """Stands in for the registry's pause/resume (the store's only call into it here)."""

    def __init__(self):
        self.calls = []

    def pause_all(self, reason):
        self.calls.append(("pause", reason))

    def resume_all(self, reason):
        self.calls.append(("resume", reason))

    def conversation_by_session(self, session_id):
        return None


class StoreTestCase(unittest.TestCase):

    def make_store(self, **kw):
        d = os.path.abspath(self.mktemp())
        os.makedirs(d)
        s = Store(os.path.join(d, DB_NAME), reactor, **kw)
        s.startService()
        self.addCleanup(self.stop, s)
        return s

    @staticmethod
    def stop(s):
        if s.running:
            return s.stopService()

    def rows(self, s, sql, *args):
        conn = sqlite3.connect(s.path)
        try:
            return conn.execute(sql, args).fetchall()
        finally:
            conn.close()


class SchemaTests(StoreTestCase):

    def test_new_database_is_current_version_in_wal_mode(self):
        s = self.make_store()
        self.assertEqual(self.rows(s, "SELECT version FROM version"), [(store_mod.SCHEMA_VERSION,)])
        self.assertEqual(self.rows(s, "PRAGMA journal_mode"), [("wal",)])
        self.assertEqual(self.rows(s, "PRAGMA auto_vacuum"), [(2,)])   # incremental

    def test_newer_database_is_refused(self):
        d = os.path.abspath(self.mktemp())
        os.makedirs(d)
        path = os.path.join(d, DB_NAME)
        open_database(path).close()
        conn = sqlite3.connect(path)
        conn.execute("UPDATE version SET version=99")
        conn.commit()
        conn.close()
        e = self.assertRaises(StoreError, open_database, path)
        self.assertIn("newer", str(e))
        self.assertIn("--data-dir", str(e))

    def test_not_a_history(self):
        d = os.path.abspath(self.mktemp())
        os.makedirs(d)
        path = os.path.join(d, DB_NAME)
        with open(path, "wb") as f:
            f.write(b"SQLite format 3\x00" + b"garbage" * 100)
        self.assertRaises(StoreError, open_database, path)

    def test_upgrade_scripts_run_in_order_and_keep_data(self):
        schema = os.path.abspath(self.mktemp())
        os.makedirs(schema)
        shutil.copy(os.path.join(store_mod.SCHEMA_DIR, "v1.sql"), schema)
        with open(os.path.join(schema, "upgrade-to-v2.sql"), "w") as f:
            f.write("ALTER TABLE records ADD COLUMN note TEXT;\nUPDATE records SET note = 'old';\n")
        d = os.path.abspath(self.mktemp())
        os.makedirs(d)
        path = os.path.join(d, DB_NAME)
        conn = open_database(path, schema, 1)
        conn.execute("INSERT INTO records (seq, time, event) VALUES (1, 0, 'forwarded')")
        conn.close()
        conn = open_database(path, schema, 2)
        self.assertEqual(conn.execute("SELECT version FROM version").fetchone(), (2,))
        self.assertEqual(conn.execute("SELECT seq, note FROM records").fetchall(), [(1, "old")])
        conn.close()

    def test_open_sessions_are_closed_as_interrupted_at_start(self):
        s = self.make_store()
        self.t0 = t0 = time.time() - 10
        s(session_event("session_started", 1, t=t0))
        s(message_event(2, t=t0 + 1))
        s(message_event(3, t=t0 + 2.5))
        d = s.flushed()
        # Simulate a crash: the writer is stopped without the graceful stop record.
        d.addCallback(lambda _: self._crash_and_reopen(s))
        return d

    def _crash_and_reopen(self, s):
        s._queue.clear()
        conn = sqlite3.connect(s.path)
        self.assertEqual(conn.execute("SELECT ended FROM sessions").fetchall(), [(None,)])
        conn.close()
        again = Store(s.path, reactor).open()
        conn = sqlite3.connect(s.path)
        self.assertEqual(conn.execute("SELECT ended, end_reason, messages FROM sessions").fetchall(),
                         [(self.t0 + 2.5, "interrupted", 2)])
        conn.close()
        again._conn.close()


class WriteTests(StoreTestCase):

    @defer.inlineCallbacks
    def test_late_findings_attach_to_their_message_and_count(self):
        s = self.make_store()
        s(session_event("session_started", 1))
        s(message_event(2, findings=[{"rule": "R-010", "severity": "warning", "text": "w"}]))
        late = [{"rule": "R-038", "severity": "error", "text": "no status", "ref": 2}]
        s(session_event("finding", 3, ref_seq=2, findings=late))
        s(session_event("finding", 4, ref_seq=None, findings=[{"rule": "R-009", "severity": "info", "text": "i"}]))
        yield s.flushed()
        (findings, errors, warnings, rules), = self.rows(
            s, "SELECT findings, errors, warnings, rules FROM records WHERE seq=2")
        self.assertEqual([f["rule"] for f in json.loads(findings)], ["R-010", "R-038"])
        self.assertEqual((errors, warnings), (1, 1))
        self.assertEqual(rules, " R-010 R-038 ")
        # A finding about no message is a record of its own.
        self.assertEqual(self.rows(s, "SELECT event, seq FROM records WHERE event='finding'"), [("finding", 4)])

    @defer.inlineCallbacks
    def test_event_dicts_are_not_changed(self):
        s = self.make_store()
        events = [session_event("session_started", 1), message_event(2), session_event("finding", 3, ref_seq=2,
                  findings=[{"rule": "R-1", "severity": "error"}])]
        copies = json.dumps(events, sort_keys=True)
        for e in events:
            s(e)
        yield s.flushed()
        self.assertEqual(json.dumps(events, sort_keys=True), copies)

    @defer.inlineCallbacks
    def test_graceful_stop_ends_live_sessions(self):
        s = self.make_store()
        s(session_event("session_started", 1))
        yield s.stopService()
        self.assertEqual(self.rows(s, "SELECT end_reason FROM sessions"), [("proxy stopped",)])


class RetentionTests(StoreTestCase):

    @defer.inlineCallbacks
    def test_by_age(self):
        s = self.make_store(max_age=0, max_bytes=0)
        now = time.time()
        s(session_event("session_started", 1, "old", t=now - 7200))
        s(message_event(2, "old", t=now - 7100))
        s(session_event("session_ended", 3, "old", t=now - 7000, counts={"messages": 1}))
        s(session_event("session_started", 4, "new", t=now - 10))
        s(message_event(5, "new", t=now - 5))
        yield s.stopService()
        conn = open_database(s.path)
        s.max_age = 3600
        deleted = s.apply_retention(conn, now)
        self.assertEqual(deleted, 3)
        self.assertEqual(conn.execute("SELECT seq FROM records ORDER BY id").fetchall(), [(4,), (5,)])
        self.assertEqual(conn.execute("SELECT session_id FROM sessions").fetchall(), [("new",)])
        conn.close()

    @defer.inlineCallbacks
    def test_by_size_keeps_the_newest(self):
        s = self.make_store(max_age=0, max_bytes=0)
        raw = json.dumps({"message_type": "X", "pad": "y" * 4000})
        for i in range(1, 1001):
            s(message_event(i, raw=raw))
        yield s.stopService()
        conn = open_database(s.path)
        before = db_bytes(conn)
        self.assertGreater(before, 4000 * 1000)
        s.max_bytes = 1024 * 1024
        s.apply_retention(conn, time.time())
        self.assertLessEqual(db_bytes(conn), 1024 * 1024)
        seqs = [r[0] for r in conn.execute("SELECT seq FROM records ORDER BY id")]
        self.assertTrue(seqs)
        self.assertEqual(seqs, list(range(1001 - len(seqs), 1001)))
        conn.close()
        # The file itself shrank (incremental vacuum).
        self.assertLess(os.path.getsize(s.path), before)


class BackpressureTests(unittest.TestCase):
    """A stalled disk pauses the devices; nothing is dropped; they resume when it drains."""

    @defer.inlineCallbacks
    def test_devices_paused_while_the_database_is_locked(self):
        proxy = history_proxy(self, store_queue_max=50)
        rm, cem = yield open_pair(self, proxy)
        rm.send('{"message_type": "first"}')
        yield cem.wait_for(1)
        yield proxy.store.flushed()
        # Another process holds the write lock: the writer cannot commit.
        blocker = sqlite3.connect(proxy.store.path, isolation_level=None, check_same_thread=False)
        blocker.execute("BEGIN IMMEDIATE")
        self.addCleanup(blocker.close)   # (rolls back if the test fails before COMMIT)
        count = 400
        for i in range(count):
            rm.send(json.dumps({"message_type": "PowerMeasurement", "i": i}))
        yield eventually(lambda: proxy.store.paused)
        side = proxy.registry.conversations[("rm1", "cem1")].sides["RM"]
        self.assertIn("store", side.gate.holders)
        self.assertEqual(proxy.store.pauses, 1)
        yield threads.deferToThread(blocker.execute, "COMMIT")
        blocker.close()
        yield cem.wait_for(count + 1, timeout=30)
        yield eventually(lambda: not proxy.store.paused)
        self.assertNotIn("store", side.gate.holders)
        yield proxy.store.flushed()
        code, records, _ = yield get_json(base(proxy) + "/backend/history-filter/?event=forwarded&limit=10000")
        self.assertEqual(len(records), count + 1)
        self.assertEqual([json.loads(r["raw"]).get("i") for r in records[1:]], list(range(count)))


class DeepPagingTests(unittest.TestCase):

    timeout = 240

    @defer.inlineCallbacks
    def test_paging_over_ten_thousand_records(self):
        proxy = history_proxy(self)
        rm, cem = yield open_pair(self, proxy)
        count = 10000
        for i in range(count):
            rm.send('{"message_type": "PowerMeasurement", "i": %d}' % i)
        yield cem.wait_for(count, timeout=120)
        sid = session_of(proxy)
        bare = base(proxy) + "/backend/history-filter/?session_id=%s&event=forwarded" % sid
        url = bare + "&limit=1000"
        seen, cursor, pages = [], None, 0
        while True:
            code, page, headers = yield get_json(url + ("&after_id=%s" % cursor if cursor else ""))
            self.assertEqual(code, 200)
            pages += 1
            seen.extend(page)
            nxt = headers.getRawHeaders(b"x-next-after-id")
            if not nxt:
                break
            cursor = nxt[0].decode()
            self.assertEqual(int(cursor), page[-1]["id"])
        self.assertEqual(pages, 10)
        self.assertEqual([json.loads(r["raw"])["i"] for r in seen], list(range(count)))
        # offset paging gives the same deep page
        code, deep, _ = yield get_json(bare + "&offset=9500&limit=10")
        self.assertEqual(deep, seen[9500:9510])
        code, everything, _ = yield get_json(bare + "&limit=10000")
        self.assertEqual(len(everything), count)


class FlagValueTests(unittest.TestCase):

    def test_durations_and_sizes(self):
        self.assertEqual(parse_duration("30d"), 30 * 86400)
        self.assertEqual(parse_duration("90m"), 5400)
        self.assertEqual(parse_duration("0"), 0)
        self.assertEqual(parse_size("1G"), 1 << 30)
        self.assertEqual(parse_size("500M"), 500 << 20)
        self.assertEqual(parse_size("4096"), 4096)
        self.assertEqual(parse_size("2KiB"), 2048)
        for bad in ("soon", "-1d", "1x"):
            self.assertRaises(ValueError, parse_duration, bad)
        for bad in ("big", "-1M"):
            self.assertRaises(ValueError, parse_size, bad)


class OptionTests(unittest.TestCase):
    """The issue-4 flags of `twistd s2analyzer`: values parsed, bad ones name the flag."""

    def parse(self, *args):
        from s2proxy import tap
        options = tap.Options()
        options.parseOptions(["--no-validate"] + list(args))
        return tap.settings_from_options(options)

    def test_values(self):
        d = os.path.abspath(self.mktemp())
        os.makedirs(d)
        token_file = os.path.join(d, "token")
        with open(token_file, "w") as f:
            f.write("tok-123\n")
        settings = self.parse("--data-dir", d, "--history-max-age", "2h", "--history-max-bytes", "10M",
                              "--store-queue-max", "100", "--api-allow", "10.0.0.0/8", "--api-token-file",
                              token_file, "--api-origins", "https://a.example", "--feed-max-buffer", "1M")
        self.assertEqual((settings["store"], settings["data_dir"]), (True, d))
        self.assertEqual((settings["history_max_age"], settings["history_max_bytes"]), (7200, 10 << 20))
        self.assertEqual((settings["api_token"], settings["feed_max_buffer"]), ("tok-123", 1 << 20))
        self.assertTrue(os.path.exists(os.path.join(d, DB_NAME)))
        settings = self.parse("--no-store", "--data-dir", "/nonexistent/x")
        self.assertFalse(settings["store"])

    def test_bad_values_name_the_flag(self):
        from twisted.python import usage
        for args, flag in ((["--data-dir", "/nonexistent/x"], "--data-dir"),
                           (["--history-max-age", "soon"], "--history-max-age"),
                           (["--history-max-bytes", "lots"], "--history-max-bytes"),
                           (["--api-allow", "10.0.0.300/8"], "--api-allow"),
                           (["--api-origins", "dash.example.com"], "--api-origins"),
                           (["--api-token-file", "/nonexistent/t"], "--api-token-file"),
                           (["--store-flush-interval", "0"], "--store-flush-interval")):
            e = self.assertRaises(usage.UsageError, self.parse, *args)
            self.assertIn(flag, str(e))

"""The history: every event of every conversation, kept durably in SQLite.

The store is one observer of the event hub. On the reactor thread it only appends the event to an
in-memory queue (no encoding, no I/O), so forwarding never waits on the disk. One writer thread
takes the queue in batches and writes each batch in one transaction (WAL). When the queue grows past
its bound the registry stops reading from every device until it drains (backpressure: records are
never dropped). Reads for the API run on a small thread pool with their own connections.

Schema: ``store_schema/vN.sql`` creates a new database at version N; ``upgrade-to-vN.sql`` moves an
existing one from N-1 to N (the magic-wormhole mailbox server's scheme). See docs/history.md.
"""

import itertools
import json
import os
import sqlite3
import threading
import time
from collections import deque
from datetime import datetime, timezone

from twisted.application import service
from twisted.internet import defer, protocol, threads
from twisted.python.threadpool import ThreadPool

from s2proxy import logs
from s2proxy.events import MESSAGE_EVENTS

_log = logs.make_logger("s2proxy.store")

SCHEMA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "store_schema")
SCHEMA_VERSION = 1
DB_NAME = "s2proxy-history.sqlite"

# s2-analyzer's record types (its MessageType enum), plus two for connection events.
ANALYZER_TYPE = {
    "session_started": "SESSION_STARTED",
    "session_ended": "SESSION_ENDED",
    "injected": "MSG_INJECTED",
    "opened": "CONNECTION_OPENED",
    "closed": "CONNECTION_CLOSED",
    "connection_refused": "CONNECTION_REFUSED",
    "connector": "CONNECTOR",
}
# Events that become a record of their own; "finding" normally updates the record it is about.
RECORDED = frozenset(MESSAGE_EVENTS | {"opened", "closed", "delivered", "discarded",
                                       "session_started", "session_ended", "finding",
                                       # outside any session: a refused device, a connector's state
                                       "connection_refused", "connector"})
# Kinds that are one new row and touch no other.
_PLAIN_INSERTS = frozenset(("forwarded", "kept", "refused", "injected", "opened", "closed",
                            "connection_refused", "connector"))
# Kinds whose message the checker saw at once (a kept one: when it was delivered).
CHECKED_AT_ONCE = frozenset(("forwarded", "injected"))

_json = json.JSONEncoder(separators=(",", ":"), default=repr).encode


class StoreError(Exception):
    """The database cannot be used (newer schema, unreadable file); the text says what to do."""


# -- time ------------------------------------------------------------------------------------

def iso(t):
    """Epoch seconds -> '2025-06-02T10:00:00.123456Z' (UTC, microseconds); None stays None."""
    if t is None:
        return None
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text):
    """ISO-8601 (naive means UTC) or epoch seconds -> epoch seconds; ValueError when neither."""
    text = text.strip()
    try:
        return float(text)
    except ValueError:
        pass
    value = text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text
    dt = datetime.fromisoformat(value)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.timestamp()


# -- schema ----------------------------------------------------------------------------------

def _read_sql(schema_dir, name):
    with open(os.path.join(schema_dir, name), encoding="utf-8") as f:
        return f.read()


def open_database(path, schema_dir=SCHEMA_DIR, target=SCHEMA_VERSION):
    """Open (create or upgrade) the history at ``path``; return a connection for the writer."""
    new = not os.path.exists(path) or os.path.getsize(path) == 0
    try:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        if new:
            # Must come before anything is written: freed pages can then be given back to the
            # file system after retention.
            conn.execute("PRAGMA auto_vacuum=INCREMENTAL")
        conn.execute("PRAGMA journal_mode=WAL")
    except sqlite3.Error as e:
        raise StoreError("cannot open the history %s: %s (check --data-dir)" % (path, e))
    conn.execute("PRAGMA synchronous=NORMAL")
    if new:
        conn.executescript("BEGIN;" + _read_sql(schema_dir, "v%d.sql" % target) + "COMMIT;")
    else:
        try:
            version = conn.execute("SELECT version FROM version").fetchone()[0]
        except sqlite3.Error as e:
            conn.close()
            raise StoreError("%s is not an s2proxy history (%s); move it away or use another "
                             "--data-dir" % (path, e))
        if version > target:
            conn.close()
            raise StoreError("%s has schema version %d, newer than this s2proxy understands (%d); "
                             "upgrade s2proxy or use another --data-dir" % (path, version, target))
        for v in range(version + 1, target + 1):
            _log.info("upgrading the history {path} to schema version {v}", path=path, v=v)
            conn.executescript("BEGIN;" + _read_sql(schema_dir, "upgrade-to-v%d.sql" % v)
                               + "UPDATE version SET version=%d;COMMIT;" % v)
    return conn


def schema_version(conn):
    return conn.execute("SELECT version FROM version").fetchone()[0]


# -- events -> rows --------------------------------------------------------------------------

_INSERT = ("INSERT INTO records (seq, session_id, rm_id, cem_id, time, event, origin, s2_msg_type,"
           " message_id, raw, binary, size, valid, format_findings, findings, rules, errors, warnings,"
           " ref_seq, reason, checked_seq, checked_time, detail)"
           " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)")


def _count(findings, counts):
    errors, warnings = counts
    for f in findings:
        sev = f.get("severity")
        if sev == "error":
            errors += 1
        elif sev == "warning":
            warnings += 1
    return errors, warnings


def _rules(*lists):
    rules = {f.get("rule") for findings in lists for f in findings if f.get("rule")}
    return (" %s " % " ".join(sorted(rules))) if rules else None


def _detail(event):
    kind = event["event"]
    if kind == "opened":
        return {"peer": event.get("peer"), "tls": event.get("tls"), "direction": event.get("direction")}
    if kind == "closed":
        return {"code": event.get("code"), "reason": event.get("reason"),
                "closed_by": event.get("closed_by"), "clean": event.get("clean")}
    if kind == "session_ended":
        return {"undelivered": event.get("undelivered"), "counts": event.get("counts")}
    if kind == "connection_refused":
        return {"peer": event.get("peer"), "status": event.get("status"),
                "direction": event.get("direction")}
    if kind == "connector":
        return {key: event.get(key) for key in ("connector_id", "connection_id", "state", "url",
                                                 "last_error", "next_attempt", "attempts")}
    return None


def event_row(event):
    """The insert tuple for one event (runs on the writer thread; never changes the event)."""
    kind = event["event"]
    ff = event.get("format_findings") or ()
    sf = event.get("findings") or ()
    errors, warnings = _count(sf, _count(ff, (0, 0)))
    valid = event.get("valid")
    detail = _detail(event)
    return (event["seq"], event.get("session_id"), event.get("rm_id"), event.get("cem_id"),
            event["time"], kind, event.get("origin"), event.get("message_type"),
            event.get("message_id"), event.get("raw"),
            None if "binary" not in event else int(bool(event["binary"])), event.get("size"),
            None if valid is None else int(bool(valid)),
            _json(list(ff)) if ff else None, _json(list(sf)) if sf else None, _rules(ff, sf),
            errors, warnings, event.get("ref_seq"), event.get("reason"),
            event["seq"] if kind in CHECKED_AT_ONCE else None,
            event["time"] if kind in CHECKED_AT_ONCE else None,
            _json(detail) if detail is not None else None)


# -- rows and events -> the API's RECORD shape -----------------------------------------------

def _validation_errors(format_findings):
    return [{"type": f.get("rule"), "loc": f.get("path"), "msg": f.get("text"),
             "severity": f.get("severity")} for f in format_findings]


def _finding_out(f):
    return {"rule": f.get("rule"), "severity": f.get("severity"), "text": f.get("text"),
            "message_id": f.get("message_id")}


def _no_constant(name):
    raise ValueError("%s is not JSON" % name)


_STRICT = json.JSONDecoder(parse_constant=_no_constant)
MAX_SHOWN_DEPTH = 64


def _parse_raw(raw):
    """The parsed message for display (``s2_msg``), or None when it is not (strict) JSON or nests
    deeper than any S2 message does (so that answering with it can never fail)."""
    if raw is None:
        return None
    try:
        value = _STRICT.decode(raw)
    except (ValueError, RecursionError):
        return None
    return value if _shallow(value) else None


def _shallow(value):
    """True when ``value`` nests at most MAX_SHOWN_DEPTH containers deep."""
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_SHOWN_DEPTH:
            return False
        if type(node) is dict:
            stack.extend((v, depth + 1) for v in node.values() if type(v) in (dict, list))
        elif type(node) is list:
            stack.extend((v, depth + 1) for v in node if type(v) in (dict, list))
    return True


def make_record(id, seq, session_id, rm_id, cem_id, time_, kind, origin, s2_msg_type, message_id,
                raw, binary, size, valid, format_findings, findings, errors, warnings, ref_seq,
                reason, delivered_at, discarded, detail, s2_msg=None):
    return {
        "id": id, "seq": seq, "session_id": session_id, "rm_id": rm_id, "cem_id": cem_id,
        "origin": origin,
        "message_type": ANALYZER_TYPE.get(kind, "S2" if raw is not None else kind.upper()),
        "event": kind, "timestamp": iso(time_),
        "s2_msg": s2_msg, "s2_msg_type": s2_msg_type, "message_id": message_id,
        "raw": raw, "binary": binary, "size": size, "valid": valid,
        "validation_errors": _validation_errors(format_findings),
        "findings": [_finding_out(f) for f in findings],
        "errors": errors, "warnings": warnings, "ref_seq": ref_seq, "reason": reason,
        "delivered_at": iso(delivered_at), "discarded": discarded, "detail": detail,
    }


_SELECT = ("SELECT id, seq, session_id, rm_id, cem_id, time, event, origin, s2_msg_type, message_id,"
           " raw, binary, size, valid, format_findings, findings, errors, warnings, ref_seq, reason,"
           " delivered_at, discarded, detail FROM records")


def row_record(row):
    (id, seq, session_id, rm_id, cem_id, t, kind, origin, s2_msg_type, message_id, raw, binary,
     size, valid, ff, sf, errors, warnings, ref_seq, reason, delivered_at, discarded, detail) = row
    return make_record(id, seq, session_id, rm_id, cem_id, t, kind, origin, s2_msg_type, message_id,
                       raw, None if binary is None else bool(binary), size,
                       None if valid is None else bool(valid),
                       json.loads(ff) if ff else [], json.loads(sf) if sf else [], errors, warnings,
                       ref_seq, reason, delivered_at, discarded,
                       json.loads(detail) if detail else None, s2_msg=_parse_raw(raw))


def event_record(event):
    """The RECORD shape of a live event (for the debugger feed; ``id`` is not known yet)."""
    kind = event["event"]
    ff = event.get("format_findings") or ()
    sf = event.get("findings") or ()
    errors, warnings = _count(sf, _count(ff, (0, 0)))
    obj = None
    if "raw" in event:
        obj = event.get("obj")
        if obj is None or not _shallow(obj):
            # Analysed in the worker process (the parsed message stays there), or too deep to show.
            obj = _parse_raw(event["raw"])
    return make_record(None, event["seq"], event.get("session_id"), event.get("rm_id"),
                       event.get("cem_id"), event["time"], kind, event.get("origin"),
                       event.get("message_type"), event.get("message_id"), event.get("raw"),
                       event.get("binary"), event.get("size"), event.get("valid"), ff, sf, errors,
                       warnings, event.get("ref_seq"), event.get("reason"), None, None,
                       _detail(event), s2_msg=obj)


# -- the store service -----------------------------------------------------------------------

class Store(service.Service):
    """The history observer, its writer thread and its readers."""

    def __init__(self, path, reactor, registry=None, queue_max=20000, flush_interval=0.05,
                 batch_size=500, max_age=30 * 86400.0, max_bytes=1 << 30, retention_interval=60.0,
                 schema_dir=SCHEMA_DIR, target_version=SCHEMA_VERSION):
        self.path = path
        self.reactor = reactor
        self.registry = registry
        self.queue_max = queue_max
        self.flush_interval = flush_interval
        self.batch_size = batch_size
        self.max_age = max_age
        self.max_bytes = max_bytes
        self.retention_interval = retention_interval
        self.schema_dir = schema_dir
        self.target_version = target_version
        self.paused = False
        self.shutting_down = False   # the reactor is stopping: sessions that end now end by it
        self.shutdown_trigger = None
        self.enqueued = 0        # reactor thread only
        self.written = 0         # writer thread only (read elsewhere: an int is read atomically)
        self.last_seq = 0        # highest event seq committed (writer thread only)
        self.pauses = 0
        self._queue = deque()
        self._wake = threading.Event()
        self._stopping = False
        self._thread = None
        self._flush_waiters = []
        self._readers = None
        self._local = threading.local()
        self._conn = None
        self._version = None

    # -- lifecycle --------------------------------------------------------------------------

    def open(self):
        """Open or create the database now (start-up errors should stop start-up)."""
        if self._conn is None:
            self._conn = open_database(self.path, self.schema_dir, self.target_version)
            self._version = schema_version(self._conn)
            self._close_interrupted(self._conn)
        return self

    def startService(self):
        service.Service.startService(self)
        self.open()
        self._stopping = False
        self._readers = ThreadPool(minthreads=0, maxthreads=2, name="s2proxy-history-reader")
        self._readers.start()
        self._thread = threading.Thread(target=self._run, name="s2proxy-history-writer", daemon=True)
        self._thread.start()

    def _begin_stop(self):
        """Common start of both stops; False when the store was not running."""
        service.Service.stopService(self)
        if self.shutdown_trigger is not None:
            self.reactor.removeSystemEventTrigger(self.shutdown_trigger)
            self.shutdown_trigger = None
        if self._thread is None:
            return False
        # Sessions still live are recorded as ended by the stop (docs/history.md, "Sessions").
        self._queue.append({"event": "_stop", "time": time.time()})
        self.enqueued += 1
        self._stopping = True
        return True

    def stopService(self):
        if not self._begin_stop():
            return None
        self._wake.set()
        thread, self._thread = self._thread, None
        readers, self._readers = self._readers, None
        d = defer.Deferred()

        def join():
            thread.join()
            readers.stop()
            self.reactor.callFromThread(d.callback, None)
        threading.Thread(target=join, name="s2proxy-history-stop", daemon=True).start()
        if self.paused and self.registry is not None:
            self.paused = False
            self.registry.resume_all("store")
        return d

    # -- the observer (reactor thread, hot path) --------------------------------------------

    def __call__(self, event):
        kind = event["event"]
        if kind not in RECORDED or self._thread is None:
            return
        if kind == "session_ended":
            # The registry puts the checker's last summary into the event.
            if self.shutting_down:
                event = dict(event, end_reason="proxy stopped")
        queue = self._queue
        queue.append(event)
        self.enqueued += 1
        n = len(queue)
        if n >= self.batch_size:
            self._wake.set()
        if n > self.queue_max and not self.paused:
            if self.registry is not None:
                self.paused = True
                self.pauses += 1
                _log.warn("the history is {n} records behind (--store-queue-max={m}); devices are "
                          "paused until it catches up", n=n, m=self.queue_max)
                self.registry.pause_all("store")

    def watch_shutdown(self):
        """Sessions that end once the reactor begins to stop end because of the stop."""
        def stopping():
            self.shutdown_trigger = None
            self.shutting_down = True
        self.shutdown_trigger = self.reactor.addSystemEventTrigger("before", "shutdown", stopping)

    @property
    def queued(self):
        return len(self._queue)

    def flushed(self):
        """A Deferred that fires once everything recorded so far is committed."""
        target = self.enqueued
        if self.written >= target or self._thread is None:
            return defer.succeed(None)
        d = defer.Deferred()
        self._flush_waiters.append((target, d))
        self._wake.set()
        return d

    def _after_write(self):
        # Reactor thread: resume devices, fire flush waiters.
        if self.paused and len(self._queue) <= self.queue_max // 2:
            self.paused = False
            _log.info("the history caught up; devices resume")
            if self.registry is not None:
                self.registry.resume_all("store")
        if self._flush_waiters:
            written = self.written
            ready = [d for target, d in self._flush_waiters if written >= target]
            self._flush_waiters = [(t, d) for t, d in self._flush_waiters if written < t]
            for d in ready:
                d.callback(None)

    # -- the writer thread ------------------------------------------------------------------

    def _run(self):
        conn = self._conn
        next_retention = 0.0
        while True:
            self._wake.wait(self.flush_interval)
            self._wake.clear()
            wrote = False
            while self._queue:
                batch = []
                queue = self._queue
                while queue and len(batch) < self.batch_size:
                    batch.append(queue.popleft())
                self._write_batch(conn, batch)
                self.written += len(batch)
                self.last_seq = max([self.last_seq] + [e["seq"] for e in batch if "seq" in e])
                wrote = True
            if wrote:
                self.reactor.callFromThread(self._after_write)
            now = time.monotonic()
            if now >= next_retention:
                next_retention = now + self.retention_interval
                self._retention_safely(conn)
            if self._stopping and not self._queue:
                break
        conn.close()
        self._conn = None

    def _write_batch(self, conn, batch):
        delay = 0.1
        while True:
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    self._apply(conn, batch)
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
                return
            except sqlite3.OperationalError as e:
                # Disk full, locked by another process, ...: keep the batch and try again; the
                # queue grows meanwhile and pauses the devices (never drop).
                _log.error("cannot write the history ({e}); retrying in {delay} s", e=e, delay=delay)
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
            except Exception:
                # One bad record must not cost the batch: write them one by one, a record that
                # still fails with its text fields made storable, and log what cannot be written.
                _log.failure("a history batch of {n} records failed; writing it record by record",
                             n=len(batch))
                self._write_each(conn, batch)
                return

    def _write_each(self, conn, batch):
        for event in batch:
            for attempt in (event, _storable(event)):
                try:
                    conn.execute("BEGIN IMMEDIATE")
                    try:
                        self._apply(conn, [attempt])
                    except BaseException:
                        conn.execute("ROLLBACK")
                        raise
                    conn.execute("COMMIT")
                    break
                except Exception:
                    continue
            else:
                _log.error("history record {seq} ({kind}) could not be written and is lost",
                           seq=event.get("seq"), kind=event.get("event"))

    def _apply(self, conn, batch):
        rows = []
        execute = conn.execute
        for event in batch:
            kind = event["event"]
            if kind in _PLAIN_INSERTS:
                rows.append(event_row(event))
                continue
            # Everything else reads or updates earlier rows: write the pending inserts first.
            if rows:
                conn.executemany(_INSERT, rows)
                rows = []
            if kind == "finding":
                if not self._attach_findings(conn, event):
                    execute(_INSERT, event_row(event))
            elif kind == "delivered":
                execute(_INSERT, event_row(event))
                execute("UPDATE records SET delivered_at=?, checked_seq=?, checked_time=?"
                        " WHERE session_id=? AND seq=?",
                        (event["time"], event["seq"], event["time"], event["session_id"],
                         event["ref_seq"]))
            elif kind == "discarded":
                execute(_INSERT, event_row(event))
                execute("UPDATE records SET discarded=? WHERE session_id=? AND seq=?",
                        (event.get("reason") or "discarded", event["session_id"], event["ref_seq"]))
            elif kind == "session_started":
                execute(_INSERT, event_row(event))
                execute("INSERT OR IGNORE INTO sessions (session_id, rm_id, cem_id, started)"
                        " VALUES (?,?,?,?)",
                        (event["session_id"], event["rm_id"], event["cem_id"], event["time"]))
            elif kind == "session_ended":
                execute(_INSERT, event_row(event))
                counts = event.get("counts") or {}
                summary = event.get("summary")
                execute("UPDATE sessions SET ended=?, end_reason=?, messages=?,"
                        " errors=?, warnings=?, undelivered=?, summary=? WHERE session_id=?",
                        (event["time"], event.get("end_reason", "disconnected"),
                         counts.get("messages"), counts.get("errors"),
                         counts.get("warnings"), event.get("undelivered"),
                         _json(summary) if summary is not None else None, event["session_id"]))
            elif kind == "_stop":
                self._close_open_sessions(conn, "proxy stopped", event["time"])
        if rows:
            conn.executemany(_INSERT, rows)

    @staticmethod
    def _attach_findings(conn, event):
        ref = event.get("ref_seq")
        if ref is None or event.get("session_id") is None:
            return False
        row = conn.execute("SELECT id, findings, format_findings, errors, warnings FROM records"
                           " WHERE session_id=? AND seq=? AND raw IS NOT NULL",
                           (event["session_id"], ref)).fetchone()
        if row is None:
            return False
        rid, sf, ff, errors, warnings = row
        new = list(event.get("findings") or ())
        findings = (json.loads(sf) if sf else []) + new
        errors, warnings = _count(new, (errors, warnings))
        conn.execute("UPDATE records SET findings=?, rules=?, errors=?, warnings=? WHERE id=?",
                     (_json(findings), _rules(json.loads(ff) if ff else [], findings),
                      errors, warnings, rid))
        return True

    @staticmethod
    def _close_open_sessions(conn, reason, when):
        """End every session that is still open; ``when`` None: at its last record."""
        conn.execute(
            "UPDATE sessions SET end_reason=?,"
            " ended=COALESCE(?, (SELECT MAX(time) FROM records r WHERE r.session_id=sessions.session_id), started),"
            " messages=(SELECT COUNT(*) FROM records r WHERE r.session_id=sessions.session_id"
            "           AND r.event IN ('forwarded','kept','refused','injected')),"
            " errors=(SELECT COALESCE(SUM(errors),0) FROM records r WHERE r.session_id=sessions.session_id),"
            " warnings=(SELECT COALESCE(SUM(warnings),0) FROM records r WHERE r.session_id=sessions.session_id)"
            " WHERE ended IS NULL", (reason, when))

    def _close_interrupted(self, conn):
        conn.execute("BEGIN IMMEDIATE")
        self._close_open_sessions(conn, "interrupted", None)
        conn.execute("COMMIT")

    # -- retention (writer thread) ----------------------------------------------------------

    def _retention_safely(self, conn):
        try:
            self.apply_retention(conn, time.time())
        except Exception:
            _log.failure("history retention failed; it is tried again later")

    def apply_retention(self, conn, now):
        deleted = 0
        if self.max_age:
            cutoff = now - self.max_age
            while True:
                conn.execute("BEGIN IMMEDIATE")
                n = conn.execute("DELETE FROM records WHERE id IN (SELECT id FROM records"
                                 " WHERE time < ? ORDER BY id LIMIT 5000)", (cutoff,)).rowcount
                conn.execute("COMMIT")
                deleted += n
                if n < 5000:
                    break
            conn.execute("DELETE FROM sessions WHERE ended IS NOT NULL AND ended < ?", (cutoff,))
        if self.max_bytes:
            for _ in range(100):
                used = db_bytes(conn)
                if used <= self.max_bytes:
                    break
                total = conn.execute("SELECT COUNT(*) FROM records").fetchone()[0]
                if not total:
                    break
                goal = self.max_bytes * 0.9
                n = max(100, int(total * (used - goal) / used) + 1)
                conn.execute("BEGIN IMMEDIATE")
                conn.execute("DELETE FROM records WHERE id IN (SELECT id FROM records ORDER BY id"
                             " LIMIT ?)", (n,))
                conn.execute("COMMIT")
                deleted += n
            conn.execute("DELETE FROM sessions WHERE ended IS NOT NULL AND NOT EXISTS"
                         " (SELECT 1 FROM records r WHERE r.session_id=sessions.session_id)")
        if deleted:
            conn.execute("PRAGMA incremental_vacuum")
            _log.info("history retention deleted {n} records", n=deleted)
        return deleted

    # -- reading (reader threads) -----------------------------------------------------------

    def read(self, fn, *args):
        """Run ``fn(conn, *args)`` on a reader thread with its own connection; a Deferred."""
        if self._readers is None:
            return defer.fail(StoreError("the history is stopped"))
        return threads.deferToThreadPool(self.reactor, self._readers, self._read, fn, args)

    def _read(self, fn, args):
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect("file:%s?mode=ro" % self.path, uri=True, isolation_level=None,
                                   check_same_thread=False)
            self._local.conn = conn
        conn.execute("BEGIN")
        try:
            return fn(conn, *args)
        finally:
            conn.execute("COMMIT")

    def status(self):
        return {"enabled": True, "path": self.path, "queued": len(self._queue),
                "written": self.written, "last_seq": self.last_seq, "enqueued": self.enqueued,
                "paused": self.paused, "pauses": self.pauses,
                "schema_version": self._version, "max_age": self.max_age,
                "max_bytes": self.max_bytes}


def db_bytes(conn):
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    free = conn.execute("PRAGMA freelist_count").fetchone()[0]
    return (pages - free) * page_size


def _storable(value):
    """A copy of ``value`` whose strings all encode as UTF-8 (lone surrogates backslash-escaped)."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
            return value
        except UnicodeEncodeError:
            return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, dict):
        return {_storable(k): _storable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_storable(v) for v in value]
    return value


# -- the history written by a child process --------------------------------------------------

class _WriterProcess(protocol.ProcessProtocol):
    def __init__(self, store):
        self.store = store
        self.buffer = bytearray()
        self.ended = defer.Deferred()

    def childDataReceived(self, fd, data):
        if fd != 1:
            return
        from s2proxy.store_writer import ACK
        buffer = self.buffer
        buffer += data
        size = ACK.size
        while len(buffer) >= size:
            (count,) = ACK.unpack_from(buffer)
            del buffer[:size]
            self.store._acknowledged(count)

    def processEnded(self, reason):
        self.store._writer_ended(self, reason)
        self.ended.callback(None)


class ProcessStore(Store):
    """The history, written by a child process instead of a thread.

    The reactor's only work per event stays appending it to the queue; every flush interval the
    events not yet handed over go to the writer process as one pickled batch. Events leave the
    queue when the writer acknowledges their commit, so ``queued`` (and with it the backpressure
    that pauses the devices) counts everything not yet on disk. A writer that dies is restarted
    and gets the unacknowledged events again. The SQLite work thus never holds the reactor's GIL.
    """

    def __init__(self, *args, **kw):
        Store.__init__(self, *args, **kw)
        self._sent = 0           # events at the head of the queue already handed to the writer
        self._writer = None
        self._flush_call = None
        self._flusher = None
        self.writer_restarts = 0

    def startService(self):
        service.Service.startService(self)
        self.open()
        # The writer process has its own connection; readers have theirs.
        self._conn.close()
        self._conn = None
        self._stopping = False
        self._readers = ThreadPool(minthreads=0, maxthreads=2, name="s2proxy-history-reader")
        self._readers.start()
        self._thread = True      # "running", for the observer
        self._wake = _SendSoon(self)
        self._spawn()
        from twisted.internet.task import LoopingCall
        self._flusher = LoopingCall(self._send)
        self._flusher.clock = self.reactor
        self._flusher.start(self.flush_interval, now=False)

    def _spawn(self):
        import sys
        from s2proxy.analysis import pack
        env = dict(os.environ)
        package_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        env["PYTHONPATH"] = package_root + os.pathsep + env.get("PYTHONPATH", "")
        self._writer = _WriterProcess(self)
        self.reactor.spawnProcess(self._writer, sys.executable,
                                  [sys.executable, "-m", "s2proxy.store_writer"],
                                  env=env, childFDs={0: "w", 1: "r", 2: 2})
        self._writer.transport.write(pack({
            "path": self.path, "max_age": self.max_age, "max_bytes": self.max_bytes,
            "retention_interval": self.retention_interval, "schema_dir": self.schema_dir,
            "target_version": self.target_version}))
        self._sent = 0           # (re)send everything not acknowledged

    def _send(self):
        self._flush_call = None
        writer = self._writer
        if writer is None or writer.transport is None:
            return
        from s2proxy.analysis import pack
        queue = self._queue
        while self._sent < len(queue):
            batch = list(itertools.islice(queue, self._sent, self._sent + self.batch_size))
            writer.transport.write(pack(batch))
            self._sent += len(batch)

    def _acknowledged(self, count):
        queue = self._queue
        last = self.last_seq
        for _ in range(count):
            event = queue.popleft()
            seq = event.get("seq")
            if seq is not None and seq > last:
                last = seq
        self.last_seq = last
        self._sent -= count
        self.written += count
        self._after_write()

    def _writer_ended(self, writer, reason):
        if writer is not self._writer:
            return
        self._writer = None
        if self._stopping:
            return
        self.writer_restarts += 1
        _log.error("the history writer process ended ({reason}); restarting it with the {n} "
                   "records not yet written", reason=reason.getErrorMessage(), n=len(self._queue))
        self.reactor.callLater(1.0 if self.writer_restarts > 1 else 0, self._restart)

    def _restart(self):
        if not self._stopping and self._writer is None:
            self._spawn()
            self._send()

    def stopService(self):
        if not self._begin_stop():
            return None
        self._thread = None
        if self._flusher is not None and self._flusher.running:
            self._flusher.stop()
        if self._flush_call is not None and self._flush_call.active():
            self._flush_call.cancel()
        self._send()
        writer = self._writer
        readers, self._readers = self._readers, None
        if writer is None or writer.transport is None:
            ended = defer.succeed(None)
        else:
            ended = writer.ended
            writer.transport.closeStdin()    # it writes what it has, then exits

        def stopped(_):
            readers.stop()
            if self.paused and self.registry is not None:
                self.paused = False
                self.registry.resume_all("store")
        return ended.addCallback(stopped)


class _SendSoon:
    """Stands in for the writer thread's wake-up event: hand the queue over on the next turn."""

    def __init__(self, store):
        self.store = store

    def set(self):
        store = self.store
        if store._flush_call is None or not store._flush_call.active():
            store._flush_call = store.reactor.callLater(0, store._send)


# -- queries (reader threads) ----------------------------------------------------------------

def query_history(conn, f):
    """Records matching the filter dict ``f`` (see api.py); returns (records, next_after_id)."""
    where, args = [], []
    for col in ("session_id", "rm_id", "cem_id", "origin", "message_id"):
        if f.get(col) is not None:
            where.append("%s = ?" % col)
            args.append(f[col])
    for col, key in (("s2_msg_type", "s2_msg_type"), ("event", "events")):
        values = f.get(key)
        if values:
            where.append("%s IN (%s)" % (col, ",".join("?" * len(values))))
            args.extend(values)
    if f.get("start") is not None:
        # Timestamps are shown to the microsecond: compare with half a microsecond of slack.
        where.append("time >= ?")
        args.append(f["start"] - 5e-7)
    if f.get("end") is not None:
        where.append("time <= ?")
        args.append(f["end"] + 5e-7)
    if f.get("valid") is not None:
        where.append("valid = ?")
        args.append(1 if f["valid"] else 0)
    if f.get("rule"):
        where.append("rules LIKE ?")
        args.append("%% %s %%" % f["rule"])
    if f.get("after_id") is not None:
        where.append("id > ?")
        args.append(f["after_id"])
    sql = _SELECT + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY id LIMIT ? OFFSET ?"
    limit = f["limit"]
    rows = conn.execute(sql, args + [limit + 1, f.get("offset") or 0]).fetchall()
    more = len(rows) > limit
    rows = rows[:limit]
    records = [row_record(r) for r in rows]
    return records, (records[-1]["id"] if more and records else None)


_SESSION_COLS = ("session_id, rm_id, cem_id, started, ended, end_reason, messages, errors, warnings,"
                 " undelivered")


def session_item(row):
    (session_id, rm_id, cem_id, started, ended, end_reason, messages, errors, warnings,
     undelivered) = row
    return {"kind": "session", "session_id": session_id, "rm_id": rm_id, "cem_id": cem_id,
            "start_timestamp": iso(started), "end_timestamp": iso(ended),
            "state": "open" if ended is None else "closed", "end_reason": end_reason,
            "connected": {"RM": False, "CEM": False},
            "counts": {"messages": messages or 0, "errors": errors or 0, "warnings": warnings or 0},
            "undelivered": undelivered or 0, "_started": started}


def query_sessions(conn, f):
    where, args = [], []
    for col in ("rm_id", "cem_id"):
        if f.get(col) is not None:
            where.append("%s = ?" % col)
            args.append(f[col])
    if f.get("state") == "open":
        where.append("ended IS NULL")
    elif f.get("state") == "closed":
        where.append("ended IS NOT NULL")
    sql = ("SELECT " + _SESSION_COLS + " FROM sessions" + (" WHERE " + " AND ".join(where) if where else "")
           + " ORDER BY started DESC LIMIT ? OFFSET ?")
    return [session_item(r) for r in conn.execute(sql, args + [f["limit"], f.get("offset") or 0])]


def query_session(conn, session_id):
    row = conn.execute("SELECT " + _SESSION_COLS + ", summary FROM sessions WHERE session_id=?",
                       (session_id,)).fetchone()
    if row is None:
        return None
    item = session_item(row[:-1])
    item["summary"] = json.loads(row[-1]) if row[-1] else None
    return item


def query_transcript(conn, session_id):
    """The transcript lines (bytes) of a session, in the order the checker saw its messages."""
    lines = []
    for origin, raw, checked_time in conn.execute(
            "SELECT origin, raw, checked_time FROM records WHERE session_id=? AND checked_seq IS NOT NULL"
            " AND raw IS NOT NULL ORDER BY checked_seq", (session_id,)):
        lines.append(json.dumps({"sender": origin, "message": raw, "time": iso(checked_time)}))
    ended = conn.execute("SELECT ended FROM sessions WHERE session_id=?", (session_id,)).fetchone()
    if ended is not None and ended[0] is not None:
        # The checker's conversation ended there (its deadlines are settled at that time).
        lines.append(json.dumps({"closed": True, "time": iso(ended[0])}))
    return ("\n".join(lines) + "\n").encode("utf-8") if lines else b""


# -- flag values -----------------------------------------------------------------------------

_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_SIZE_UNITS = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_duration(text):
    """'30d', '12h', '90m', '3600' (seconds) -> seconds; ValueError naming the accepted forms."""
    value = str(text).strip().lower()
    scale = _DURATION_UNITS.get(value[-1:], None)
    number = value[:-1] if scale else value
    try:
        seconds = float(number) * (scale or 1)
    except ValueError:
        raise ValueError("%r is not a duration (a number with s, m, h, d or w; 0 = off)" % text)
    if seconds < 0:
        raise ValueError("%r is negative" % text)
    return seconds


def parse_size(text):
    """'1G', '500M', '4096' (bytes) -> bytes; ValueError naming the accepted forms."""
    value = str(text).strip().lower().rstrip("b").rstrip("i")
    scale = _SIZE_UNITS.get(value[-1:], None)
    number = value[:-1] if scale else value
    try:
        size = int(float(number) * (scale or 1))
    except ValueError:
        raise ValueError("%r is not a size (a number with K, M, G or T; 0 = off)" % text)
    if size < 0:
        raise ValueError("%r is negative" % text)
    return size


def default_data_dir():
    """systemd's StateDirectory (the first when several) or the working directory."""
    state = os.environ.get("STATE_DIRECTORY")
    if state:
        return state.split(":")[0]
    return os.getcwd()

"""Live WebSocket feeds for people: the debugger feed (every event) and session updates.

The feeds observe the event hub like the store does. A viewer never slows the devices: events are
encoded once per event (only when someone watches) and written to each viewer; a viewer whose
socket stops taking data gets a bounded backlog (``--feed-max-buffer`` bytes) and is disconnected
when it overflows. History replay is paced by the viewer's socket (a producer), page by page.
"""

import json
from collections import deque

from autobahn.twisted.resource import WebSocketResource
from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from twisted.web import resource

from s2proxy import logs
from s2proxy.apiguard import Denied
from s2proxy.store import event_record, iso, row_record, _SELECT

_log = logs.make_logger("s2proxy.feed")

_encode = json.JSONEncoder(separators=(",", ":"), default=repr).encode
HISTORY_PAGE = 1000


def live_session_item(conv, started=None):
    """The session item (docs/history.md) of a live Conversation (``started``: its event's time)."""
    return {"kind": "session", "session_id": conv.session_id, "rm_id": conv.rm_id,
            "cem_id": conv.cem_id, "start_timestamp": iso(started or conv.started), "end_timestamp": None,
            "state": "open", "end_reason": None,
            "connected": {"RM": conv.sides["RM"] is not None, "CEM": conv.sides["CEM"] is not None},
            "counts": dict(conv.counts),
            "undelivered": 0}


def ended_session_item(event):
    counts = event.get("counts") or {}
    return {"kind": "session", "session_id": event["session_id"], "rm_id": event["rm_id"],
            "cem_id": event["cem_id"], "start_timestamp": None, "end_timestamp": iso(event["time"]),
            "state": "closed", "end_reason": event.get("end_reason") or "disconnected",
            "connected": {"RM": False, "CEM": False},
            "counts": {"messages": counts.get("messages", 0), "errors": counts.get("errors", 0),
                       "warnings": counts.get("warnings", 0)},
            "undelivered": event.get("undelivered") or 0}


class Feeds:
    """The hub observer that fans events out to the connected viewers."""

    def __init__(self, app, max_buffer=4 * 1024 * 1024):
        self.app = app
        self.max_buffer = max_buffer
        self.debuggers = set()
        self.session_viewers = set()
        self.dropped = 0
        self._dirty = set()
        self._counts_timer = None
        self._started = {}   # session_id -> start time, for the closed session message

    def session_item(self, conv):
        # The time of the session_started event, as in the history (conv.started is a bit earlier).
        return live_session_item(conv, self._started.get(conv.session_id))

    def viewer_count(self):
        return len(self.debuggers) + len(self.session_viewers)

    def __call__(self, event):
        kind = event["event"]
        if kind == "session_started":
            self._started[event["session_id"]] = event["time"]
        elif kind == "session_ended":
            started = self._started.pop(event["session_id"], None)
        if self.debuggers:
            payload = None
            for viewer in tuple(self.debuggers):
                if viewer.matches(event):
                    if payload is None:
                        payload = _encode(event_record(event)).encode("utf-8")
                    viewer.push(payload, event.get("session_id"), event["seq"])
        if self.session_viewers:
            item = None
            if kind == "session_ended":
                item = ended_session_item(event)
                item["start_timestamp"] = iso(started)
                self._dirty.discard(event["session_id"])
            elif kind in ("session_started", "opened", "closed"):
                conv = self.app.registry.conversation_by_session(event["session_id"])
                if conv is not None:
                    item = self.session_item(conv)
            elif "raw" in event or kind == "finding":
                if event.get("session_id") is not None:
                    self._dirty.add(event["session_id"])
                    if self._counts_timer is None:
                        self._counts_timer = self.app.reactor.callLater(1.0, self._send_counts)
            if item is not None:
                payload = _encode(item).encode("utf-8")
                for viewer in tuple(self.session_viewers):
                    viewer.push(payload, None, None)

    def _send_counts(self):
        self._counts_timer = None
        dirty, self._dirty = self._dirty, set()
        for session_id in dirty:
            conv = self.app.registry.conversation_by_session(session_id)
            if conv is None:
                continue
            payload = _encode(self.session_item(conv)).encode("utf-8")
            for viewer in tuple(self.session_viewers):
                viewer.push(payload, None, None)

    def add(self, viewer):
        (self.session_viewers if viewer.kind == "sessions" else self.debuggers).add(viewer)

    def remove(self, viewer):
        self.debuggers.discard(viewer)
        self.session_viewers.discard(viewer)
        if not self.session_viewers:
            self._stop_timer()

    def _stop_timer(self):
        if self._counts_timer is not None and self._counts_timer.active():
            self._counts_timer.cancel()
        self._counts_timer = None
        self._dirty.clear()

    def close_all(self):
        for viewer in tuple(self.debuggers) + tuple(self.session_viewers):
            viewer.dropConnection(abort=True)
        self._stop_timer()

    def slow(self, viewer):
        self.dropped += 1
        metrics = getattr(self.app, "metrics", None)
        if metrics is not None:
            metrics.feed_dropped.inc()
        _log.warn("dropped a slow {kind} viewer from {peer}: more than {n} bytes waited for it "
                  "(--feed-max-buffer)", kind=viewer.kind, peer=viewer.peer, n=self.max_buffer)


class _SocketProducer:
    """Told by the viewer's transport when its write buffer is full or drained."""

    def __init__(self, viewer):
        self.viewer = viewer

    def pauseProducing(self):
        self.viewer.paused = True

    def resumeProducing(self):
        self.viewer.paused = False
        self.viewer.pump()

    def stopProducing(self):
        self.viewer.paused = True


def _first(params, name):
    values = params.get(name)
    return values[0] if values else None


class ViewerProtocol(WebSocketServerProtocol):
    """One browser (or script) watching a feed; it only receives."""

    kind = "debugger"
    paused = False
    peer = None

    def onConnect(self, request):
        factory = self.factory
        self.kind = factory.kind
        self.peer = request.peer
        params = request.params
        self.filters = {}
        for name in ("session_id", "rm_id", "cem_id"):
            value = _first(params, name)
            if value:
                self.filters[name] = value
        history = (_first(params, "include_session_history") or "true").lower()
        self.want_history = (self.kind == "debugger" and "session_id" in self.filters
                             and history not in ("false", "0", "no"))
        return None

    def onOpen(self):
        try:
            self._opened()
        except Exception:
            _log.failure("could not start a {kind} viewer", kind=self.kind)
            self.dropConnection(abort=True)

    def _opened(self):
        feeds = self.factory.feeds
        self.backlog = deque()
        self.backlog_bytes = 0
        self.closed = False
        self.history = deque()
        self.history_seqs = None
        self.history_done = not self.want_history
        self.loading = False
        self.cursor = 0
        try:
            self.transport.registerProducer(_SocketProducer(self), True)
        except RuntimeError:
            self.transport.unregisterProducer()
            self.transport.registerProducer(_SocketProducer(self), True)
        feeds.add(self)
        if self.kind == "sessions":
            for conv in list(feeds.app.registry.conversations.values()):
                self.push(_encode(feeds.session_item(conv)).encode("utf-8"), None, None)
        elif self.want_history:
            store = getattr(feeds.app, "store", None)
            if store is None:
                self.history_done = True
            else:
                self.history_seqs = set()
                self.loading = True
                # Everything emitted before this viewer joined is in the history once flushed.
                d = store.flushed()
                d.addCallback(lambda _: self._load())
                d.addErrback(self._history_failed)

    def matches(self, event):
        for name, value in self.filters.items():
            if event.get(name) != value:
                return False
        return True

    # -- sending ----------------------------------------------------------------------------

    def push(self, payload, session_id, seq):
        if self.closed:
            return
        if not self.history_done or self.paused or self.backlog:
            self.backlog.append((payload, session_id, seq))
            self.backlog_bytes += len(payload)
            if self.backlog_bytes > self.factory.feeds.max_buffer:
                self._drop_slow()
            return
        self.sendMessage(payload, False)

    def pump(self):
        """Send what waits (history first) while the socket takes it."""
        while not self.closed and not self.paused:
            if self.history:
                self.sendMessage(self.history.popleft(), False)
                continue
            if not self.history_done:
                if not self.loading:
                    self._load()
                return
            if self.backlog:
                payload, session_id, seq = self.backlog.popleft()
                self.backlog_bytes -= len(payload)
                if self.history_seqs and session_id == self.filters.get("session_id") \
                        and seq in self.history_seqs:
                    continue  # already sent as part of the history
                self.sendMessage(payload, False)
                continue
            return

    def _load(self):
        store = self.factory.feeds.app.store
        self.loading = True
        d = store.read(_history_page, self.filters, self.cursor)
        d.addCallbacks(self._loaded, self._history_failed)

    def _loaded(self, page):
        self.loading = False
        if self.closed:
            return
        for record_id, seq, payload in page:
            self.cursor = record_id
            self.history_seqs.add(seq)
            self.history.append(payload)
        if len(page) < HISTORY_PAGE:
            self.history_done = True
        self.pump()

    def _history_failed(self, failure):
        self.loading = False
        _log.failure("could not read the history for a debugger viewer", failure)
        self.history_done = True
        self.pump()

    def _drop_slow(self):
        self.closed = True
        self.backlog.clear()
        self.history.clear()
        self.factory.feeds.remove(self)
        self.factory.feeds.slow(self)
        self.dropConnection(abort=True)

    def onMessage(self, payload, isBinary):
        pass  # viewers only listen

    def onClose(self, wasClean, code, reason):
        self.closed = True
        self.factory.feeds.remove(self)


def _history_page(conn, filters, cursor):
    where = ["id > ?"]
    args = [cursor]
    for name, value in filters.items():
        where.append("%s = ?" % name)
        args.append(value)
    rows = conn.execute(_SELECT + " WHERE " + " AND ".join(where) + " ORDER BY id LIMIT ?",
                        args + [HISTORY_PAGE]).fetchall()
    return [(r[0], r[1], _encode(row_record(r)).encode("utf-8")) for r in rows]


class ViewerFactory(WebSocketServerFactory):
    protocol = ViewerProtocol

    def __init__(self, feeds, kind, max_message_size):
        WebSocketServerFactory.__init__(self)
        self.feeds = feeds
        self.kind = kind
        # Autobahn applies the limit to what it sends too: a record holds a device message twice
        # (raw and parsed), so leave room for that.
        limit = 4 * max_message_size + 64 * 1024
        self.setProtocolOptions(
            maxMessagePayloadSize=limit, maxFramePayloadSize=limit,
            autoPingInterval=50.0, autoPingTimeout=20.0, openHandshakeTimeout=10.0,
            closeHandshakeTimeout=2, webStatus=False, failByDrop=False,
            perMessageCompressionAccept=None)


class FeedResource(resource.Resource):
    """The twisted.web side of a feed: the API guard and Origin check, then the WebSocket upgrade."""

    isLeaf = True

    def __init__(self, app, feeds, kind):
        resource.Resource.__init__(self)
        self.app = app
        self.factory = ViewerFactory(feeds, kind, app.settings["max_message_size"])
        self._socket = WebSocketResource(self.factory)

    def render(self, request):
        guard = getattr(self.app, "api_guard", None)
        if guard is not None:
            try:
                guard.check(request, browser_socket=True)
            except Denied as e:
                request.setResponseCode(e.status)
                request.setHeader(b"content-type", b"application/json")
                return _encode({"error": e.text}).encode("utf-8")
        if request.getHeader(b"upgrade") is None:
            request.setResponseCode(426)
            request.setHeader(b"content-type", b"application/json")
            return b'{"error": "this is a WebSocket feed: connect with ws://"}'
        return self._socket.render(request)

"""The HTTP API (twisted.web, JSON): history, sessions, connections, inject, validate, health, metrics.

Paths and shapes follow flexiblepower/s2-analyzer (docs/history.md). Every answer is JSON, errors
included; a malformed parameter or body is a 400 that names it. Database reads run on the store's
reader threads and are encoded to JSON there, so a large page never blocks the reactor.
"""

import json
import time
from urllib.parse import urlencode

from twisted.internet import defer
from twisted.web import resource, server

from s2proxy import logs
from s2proxy.apiguard import Denied
from s2proxy.registry import NoLiveConnection
from s2proxy.store import (ANALYZER_TYPE, ProcessStore, parse_time, query_history,
                           query_session, query_sessions, query_transcript)

_log = logs.make_logger("s2proxy.api")

MAX_BODY = 1024 * 1024
_encode = json.JSONEncoder(separators=(",", ":"), default=repr).encode

# s2-analyzer's record types -> our event kinds (for the message_type filter).
_TYPE_EVENTS = {"S2": ("forwarded", "kept", "refused")}
for _kind, _type in ANALYZER_TYPE.items():
    _TYPE_EVENTS.setdefault(_type, ())
    _TYPE_EVENTS[_type] += (_kind,)
for _kind in ("delivered", "discarded", "finding"):
    _TYPE_EVENTS[_kind.upper()] = (_kind,)
EVENTS = ("forwarded", "kept", "refused", "injected", "delivered", "discarded", "opened", "closed",
          "session_started", "session_ended", "finding")


class BadRequest(Exception):
    def __init__(self, status, text, **extra):
        Exception.__init__(self, text)
        self.status = status
        self.text = text
        self.extra = extra


def _json_body(request, status, obj):
    request.setResponseCode(status)
    request.setHeader(b"content-type", b"application/json")
    request.setHeader(b"cache-control", b"no-store")
    return obj if isinstance(obj, bytes) else _encode(obj).encode("utf-8")


def _error(request, status, text, **extra):
    body = {"error": text}
    body.update(extra)
    return _json_body(request, status, body)


def arg(request, name):
    values = request.args.get(name.encode("ascii"))
    if not values:
        return None
    try:
        value = values[0].decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest(400, "parameter %s is not UTF-8" % name)
    return value if value != "" else None


def int_arg(request, name, default=None, low=0, high=None):
    value = arg(request, name)
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise BadRequest(400, "parameter %s: %r is not an integer" % (name, value))
    if number < low or (high is not None and number > high):
        raise BadRequest(400, "parameter %s: %d is out of range %d..%s" % (name, number, low, high))
    return number


def bool_arg(request, name, default=None):
    value = arg(request, name)
    if value is None:
        return default
    if value.lower() in ("true", "1", "yes"):
        return True
    if value.lower() in ("false", "0", "no"):
        return False
    raise BadRequest(400, "parameter %s: expected true or false, got %r" % (name, value))


def time_arg(request, name):
    value = arg(request, name)
    if value is None:
        return None
    try:
        return parse_time(value)
    except (ValueError, OverflowError):
        raise BadRequest(400, "parameter %s: %r is not an ISO-8601 time or epoch seconds" % (name, value))


def list_arg(request, name, allowed=None):
    value = arg(request, name)
    if value is None:
        return None
    items = [v.strip() for v in value.split(",") if v.strip()]
    if allowed is not None:
        for item in items:
            if item not in allowed:
                raise BadRequest(400, "parameter %s: unknown value %r (known: %s)"
                                 % (name, item, ", ".join(sorted(allowed))))
    return items


def read_json_body(request):
    length = request.getHeader(b"content-length")
    if length is not None and length.isdigit() and int(length) > MAX_BODY:
        raise BadRequest(413, "the body is larger than %d bytes" % MAX_BODY)
    data = request.content.read(MAX_BODY + 1) if request.content is not None else b""
    if len(data) > MAX_BODY:
        raise BadRequest(413, "the body is larger than %d bytes" % MAX_BODY)
    try:
        body = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise BadRequest(400, "the body is not JSON: %s" % e)
    if not isinstance(body, dict):
        raise BadRequest(400, "the body must be a JSON object")
    return body


class JsonResource(resource.Resource):
    """Dispatch by method; answer every error as JSON; allow Deferred results."""

    methods = ("GET",)
    changes = ()          # methods that change something (guarded)

    def __init__(self, app):
        resource.Resource.__init__(self)
        self.app = app

    def getChild(self, path, request):
        if path == b"":
            return self
        return _NotFound()

    def render(self, request):
        method = request.method.decode("ascii", "replace")
        if method == "HEAD":
            method = "GET"
        if method not in self.methods:
            request.setHeader(b"allow", ", ".join(self.methods).encode("ascii"))
            return _error(request, 405, "method %s is not allowed here (allowed: %s)"
                          % (method, ", ".join(self.methods)))
        guard = getattr(self.app, "api_guard", None)
        try:
            if guard is not None:
                guard.check(request, changes=method in self.changes)
            result = getattr(self, "do_" + method)(request)
        except Denied as e:
            return _error(request, e.status, e.text)
        except BadRequest as e:
            return _error(request, e.status, e.text, **e.extra)
        except Exception:
            _log.failure("API request {method} {path} failed", method=method, path=request.path)
            return _error(request, 500, "internal error (see the proxy's log)")
        if isinstance(result, defer.Deferred):
            finished = []
            request.notifyFinish().addBoth(finished.append)

            def write(body):
                if not finished:
                    request.write(body)
                    request.finish()

            def failed(f):
                if f.check(BadRequest):
                    e = f.value
                    return write(_error(request, e.status, e.text, **e.extra))
                _log.failure("API request {method} {path} failed", f, method=method,
                             path=request.path)
                return write(_error(request, 500, "internal error (see the proxy's log)"))
            result.addCallbacks(write, failed)
            return server.NOT_DONE_YET
        return result

    def store(self):
        store = getattr(self.app, "store", None)
        if store is None:
            raise BadRequest(503, "the history is off (--no-store)")
        return store


class _NotFound(resource.Resource):
    isLeaf = True

    def render(self, request):
        return _error(request, 404, "not found")


# -- history ---------------------------------------------------------------------------------

class HistoryResource(JsonResource):
    """GET /backend/history-filter/: records in time order, in pages."""

    def do_GET(self, request):
        f = {name: arg(request, name) for name in ("session_id", "rm_id", "cem_id", "message_id")}
        origin = arg(request, "origin")
        if origin is not None and origin.upper() not in ("RM", "CEM"):
            raise BadRequest(400, "parameter origin: expected RM or CEM, got %r" % origin)
        f["origin"] = origin.upper() if origin else None
        f["s2_msg_type"] = list_arg(request, "s2_msg_type")
        events = set()
        types = list_arg(request, "message_type", allowed=_TYPE_EVENTS)
        kinds = list_arg(request, "event", allowed=EVENTS)
        if types:
            events.update(k for t in types for k in _TYPE_EVENTS[t])
        if kinds:
            events = events.intersection(kinds) if types else set(kinds)
        f["events"] = sorted(events) if (types or kinds) else None
        if (types or kinds) and not events:
            f["events"] = ["-none-"]
        f["start"] = time_arg(request, "start_date")
        f["end"] = time_arg(request, "end_date")
        f["valid"] = bool_arg(request, "valid")
        f["rule"] = arg(request, "rule")
        f["limit"] = int_arg(request, "limit", 1000, low=1, high=10000)
        f["offset"] = int_arg(request, "offset", 0)
        f["after_id"] = int_arg(request, "after_id")
        store = self.store()

        def query(conn):
            records, next_after = query_history(conn, f)
            return _encode(records).encode("utf-8"), next_after

        def answer(result):
            body, next_after = result
            if next_after is not None:
                request.setHeader(b"x-next-after-id", str(next_after).encode("ascii"))
                params = [(k.decode("utf-8"), v[0].decode("utf-8", "replace"))
                          for k, v in request.args.items() if k not in (b"after_id", b"offset")]
                params.append(("after_id", str(next_after)))
                request.setHeader(b"link", ('<%s?%s>; rel="next"' % (
                    request.path.decode("utf-8", "replace"), urlencode(params))).encode("utf-8"))
            return _json_body(request, 200, body)
        # Read what happened before this request: wait for the writer to commit it.
        d = store.flushed()
        d.addCallback(lambda _: store.read(query))
        return d.addCallback(answer)


# -- sessions and connections ----------------------------------------------------------------

def _connectors(app):
    connectors = getattr(app, "connectors", None)
    if connectors is None:
        return []
    items = []
    for d in connectors.describe():
        rm_id, cem_id = d.get("rm_id"), d.get("cem_id")
        conv = app.registry.conversations.get((rm_id, cem_id)) if rm_id and cem_id else None
        items.append({"kind": "connector", "session_id": conv.session_id if conv else None,
                      "rm_id": rm_id, "cem_id": cem_id, "state": "connector",
                      "start_timestamp": None, "end_timestamp": None, "connector": d})
    return items


class ConnectionsResource(JsonResource):
    """GET: sessions (live and recorded) and connectors; POST/DELETE: the connectors (issue 5)."""

    methods = ("GET", "POST")
    changes = ("POST", "DELETE")

    def getChild(self, path, request):
        if path == b"":
            return self
        return ConnectorResource(self.app, path.decode("utf-8", "replace"))

    @defer.inlineCallbacks
    def do_GET(self, request):
        f = {"rm_id": arg(request, "rm_id"), "cem_id": arg(request, "cem_id"),
             "state": arg(request, "state"),
             "limit": int_arg(request, "limit", 100, low=1, high=10000),
             "offset": int_arg(request, "offset", 0)}
        if f["state"] not in (None, "open", "closed"):
            raise BadRequest(400, "parameter state: expected open or closed, got %r" % f["state"])
        live = {}
        if f["state"] != "closed":
            for conv in list(self.app.registry.conversations.values()):
                if f["rm_id"] not in (None, conv.rm_id) or f["cem_id"] not in (None, conv.cem_id):
                    continue
                live[conv.session_id] = self.app.feeds.session_item(conv)
        store = getattr(self.app, "store", None)
        items = []
        if store is not None:
            yield store.flushed()
            rows = yield store.read(query_sessions, f)
            for item in rows:
                del item["_started"]
                items.append(live.pop(item["session_id"], item))
        if f["offset"] == 0:
            items.extend(live.values())
        items.sort(key=lambda i: i["start_timestamp"] or "", reverse=True)
        items = items[:f["limit"]]
        return _json_body(request, 200, items + _connectors(self.app))

    def do_POST(self, request):
        connectors = getattr(self.app, "connectors", None)
        body = read_json_body(request)
        if connectors is None:
            raise BadRequest(503, "outbound connectors are not available in this proxy")
        try:
            result = connectors.add(body.get("rm_id"), body.get("cem_id"),
                                    rm_uri=body.get("rm_uri"), cem_uri=body.get("cem_uri"))
        except ValueError as e:
            raise BadRequest(400, str(e))
        except TypeError as e:
            raise BadRequest(400, "bad connector body: %s" % e)
        return _json_body(request, 200, result)


class ConnectorResource(JsonResource):
    """DELETE /backend/connections/{connector_id}."""

    methods = ("DELETE",)
    changes = ("DELETE",)
    isLeaf = True

    def __init__(self, app, connector_id):
        JsonResource.__init__(self, app)
        self.connector_id = connector_id

    def do_DELETE(self, request):
        connectors = getattr(self.app, "connectors", None)
        if connectors is None:
            raise BadRequest(503, "outbound connectors are not available in this proxy")
        if not connectors.remove(self.connector_id):
            raise BadRequest(404, "no connector %r" % self.connector_id)
        return _json_body(request, 200, {"removed": self.connector_id})


class SessionsResource(JsonResource):
    """/backend/sessions/{session_id}[/transcript]"""

    def getChild(self, path, request):
        if path == b"":
            return _NotFound()
        return SessionResource(self.app, path.decode("utf-8", "replace"))

    def do_GET(self, request):
        raise BadRequest(404, "use /backend/connections/ for the list, /backend/sessions/{session_id} for one")


class SessionResource(JsonResource):
    def __init__(self, app, session_id):
        JsonResource.__init__(self, app)
        self.session_id = session_id

    def getChild(self, path, request):
        if path == b"":
            return self
        if path == b"transcript":
            return TranscriptResource(self.app, self.session_id)
        return _NotFound()

    @defer.inlineCallbacks
    def do_GET(self, request):
        conv = self.app.registry.conversation_by_session(self.session_id)
        if conv is not None:
            item = self.app.feeds.session_item(conv)
            item["summary"] = yield self.app.registry.summary(conv)
            return _json_body(request, 200, item)
        store = getattr(self.app, "store", None)
        item = None
        if store is not None:
            yield store.flushed()
            item = yield store.read(query_session, self.session_id)
        if item is None:
            raise BadRequest(404, "unknown session %r" % self.session_id)
        del item["_started"]
        return _json_body(request, 200, item)


class TranscriptResource(JsonResource):
    isLeaf = True

    def __init__(self, app, session_id):
        JsonResource.__init__(self, app)
        self.session_id = session_id

    @defer.inlineCallbacks
    def do_GET(self, request):
        store = self.store()
        yield store.flushed()
        item = yield store.read(query_session, self.session_id)
        if item is None:
            raise BadRequest(404, "unknown session %r" % self.session_id)
        body = yield store.read(query_transcript, self.session_id)
        request.setResponseCode(200)
        request.setHeader(b"content-type", b"application/x-ndjson")
        request.setHeader(b"content-disposition",
                          ('attachment; filename="s2-session-%s.jsonl"' % self.session_id[:40]
                           .replace('"', "")).encode("utf-8"))
        return body


# -- inject and validate ---------------------------------------------------------------------

def _message_payload(body):
    if "message" not in body:
        raise BadRequest(400, "the body has no 'message'")
    message = body["message"]
    if isinstance(message, str):
        return message.encode("utf-8")
    return _encode(message).encode("utf-8")


def _validation_errors(findings):
    return [{"type": f.get("rule"), "loc": f.get("path"), "msg": f.get("text"),
             "severity": f.get("severity")} for f in findings]


class ValidateResource(JsonResource):
    methods = ("POST",)

    def do_POST(self, request):
        body = read_json_body(request)
        payload = _message_payload(body)
        validator = self.app.validator
        if validator is None:
            raise BadRequest(503, "validation is off (--no-validate)")
        a = validator.analyse(payload, False)
        return _json_body(request, 200, {"message": body["message"], "s2_msg_type": a.message_type,
                                         "valid": a.valid, "errors": _validation_errors(a.findings)})


class InjectResource(JsonResource):
    methods = ("POST",)
    changes = ("POST",)

    @defer.inlineCallbacks
    def do_POST(self, request):
        body = read_json_body(request)
        for name in ("origin_id", "dest_id"):
            if not isinstance(body.get(name), str) or not body[name]:
                raise BadRequest(400, "the body needs %s (a string)" % name)
        payload = _message_payload(body)
        if bool_arg(request, "validate", True) and self.app.validator is not None:
            a = self.app.validator.analyse(payload, False)
            if not a.valid:
                raise BadRequest(400, "the message fails the format rules (add ?validate=false to "
                                      "send it anyway)", errors=_validation_errors(a.findings))
        try:
            conv, event = self.app.registry.inject(body["origin_id"], body["dest_id"], payload)
        except NoLiveConnection as e:
            raise BadRequest(409, str(e))
        yield self.app.registry.event_published(event)
        return _json_body(request, 200, {
            "session_id": conv.session_id, "seq": event["seq"], "origin": event["origin"],
            "s2_msg_type": event.get("message_type"), "valid": event.get("valid"),
            "validation_errors": _validation_errors(event.get("format_findings") or ()),
            "findings": [{"rule": f.get("rule"), "severity": f.get("severity"), "text": f.get("text")}
                         for f in event.get("findings") or ()]})


# -- health and metrics ----------------------------------------------------------------------

class HealthResource(JsonResource):
    isLeaf = True

    def do_GET(self, request):
        app = self.app
        store = getattr(app, "store", None)
        status = store.status() if store is not None else {"enabled": False}
        return _json_body(request, 200, {
            "status": "healthy", "uptime": round(time.time() - app.started, 3),
            "open_connections": app.registry.open_connections,
            "sessions": len(app.registry.conversations),
            "store_queue": status.get("queued", 0), "store": status})


class MetricsResource(JsonResource):
    isLeaf = True

    def do_GET(self, request):
        metrics = self.app.metrics
        body = metrics.render()
        request.setResponseCode(200)
        request.setHeader(b"content-type", metrics.content_type.encode("ascii"))
        return body


def add_api(app, backend, root):
    """Put the API resources into the tree (called from web.build_root)."""
    history = HistoryResource(app)
    backend.putChild(b"history-filter", history)
    backend.putChild(b"history", history)
    backend.putChild(b"connections", ConnectionsResource(app))
    backend.putChild(b"sessions", SessionsResource(app))
    backend.putChild(b"validate-message", ValidateResource(app))
    backend.putChild(b"inject", InjectResource(app))
    backend.putChild(b"health", HealthResource(app))
    if getattr(app, "metrics", None) is not None:
        root.putChild(b"metrics", MetricsResource(app))
    feeds = getattr(app, "feeds", None)
    if feeds is not None:
        from s2proxy.feed import FeedResource
        backend.putChild(b"debugger", FeedResource(app, feeds, "debugger"))
        backend.putChild(b"session-updates", FeedResource(app, feeds, "sessions"))


def wire(app, settings, reactor):
    """Make the history, the feeds, the metrics and the API guard of ``app`` (an S2Proxy)."""
    import os

    from s2proxy.apiguard import ApiGuard
    from s2proxy.feed import Feeds
    from s2proxy.metrics import Metrics
    from s2proxy.store import DB_NAME, Store, default_data_dir

    app.api_guard = ApiGuard(allow=settings["api_allow"], token=settings["api_token"],
                             origins=settings["api_origins"], guard_reads=settings["api_guard_reads"])
    known = app.validator.message_types if app.validator is not None else ()
    app.metrics = Metrics(app, known)
    app.hub.subscribe(app.metrics)
    app.feeds = Feeds(app, max_buffer=settings["feed_max_buffer"])
    app.hub.subscribe(app.feeds)
    app.store = None
    if settings["store"]:
        data_dir = settings["data_dir"] or default_data_dir()
        writer = settings.get("store_writer")
        if writer is None:
            writer = "process" if (os.cpu_count() or 1) > 1 else "thread"
        store_class = ProcessStore if writer == "process" else Store
        app.store = store_class(os.path.join(data_dir, DB_NAME), reactor, registry=app.registry,
                          queue_max=settings["store_queue_max"],
                          flush_interval=settings["store_flush_interval"],
                          max_age=settings["history_max_age"], max_bytes=settings["history_max_bytes"])
        # Opened now: a database that cannot be used stops start-up with its message.
        app.store.open()
        # Registered before twistd registers the service's own stop, so it runs first.
        app.store.watch_shutdown()
        app.store.setServiceParent(app)
        app.hub.subscribe(app.store)


def check_options(config):
    """The issue-4 part of tap.Options.postOptions: every bad value names its flag."""
    import os

    from twisted.python import usage

    from s2proxy.apiguard import GuardConfigError, parse_networks, parse_origins
    from s2proxy.store import (DB_NAME, StoreError, default_data_dir, open_database,
                               parse_duration, parse_size)
    for flag, parse in (("history-max-age", parse_duration), ("history-max-bytes", parse_size),
                        ("feed-max-buffer", parse_size)):
        try:
            config[flag] = parse(config[flag])
        except ValueError as e:
            raise usage.UsageError("--%s: %s" % (flag, e))
    try:
        parse_networks(config["api-allow"])
        parse_origins(config["api-origins"])
    except GuardConfigError as e:
        raise usage.UsageError(str(e))
    if config["api-token-file"]:
        try:
            with open(config["api-token-file"], encoding="utf-8") as f:
                config["api-token"] = f.readline().strip()
        except OSError as e:
            raise usage.UsageError("--api-token-file: %s" % e)
        if not config["api-token"]:
            raise usage.UsageError("--api-token-file: the first line is empty")
    if config["store-flush-interval"] <= 0 or config["store-flush-interval"] > 10:
        raise usage.UsageError("--store-flush-interval: must be more than 0 and at most 10 seconds")
    if config["no-store"]:
        return
    data_dir = os.path.abspath(os.path.expanduser(config["data-dir"] or default_data_dir()))
    if not os.path.isdir(data_dir):
        raise usage.UsageError("--data-dir: %s is not a folder" % data_dir)
    config["data-dir"] = data_dir
    try:
        open_database(os.path.join(data_dir, DB_NAME)).close()
    except (StoreError, OSError) as e:
        raise usage.UsageError("--data-dir: %s" % e)

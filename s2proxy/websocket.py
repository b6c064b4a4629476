"""Autobahn glue for device connections: URL routing, the server protocol, flow control.

The protocols only translate between Autobahn callbacks and the registry (which knows S2
conversations); they know nothing about S2 itself. The same :class:`DeviceSide` mixin serves the
inbound server protocol here and the outbound client protocol of the connectors.
"""

import json
import re
from collections import deque

from autobahn.twisted.resource import WebSocketResource
from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from autobahn.websocket.protocol import WebSocketProtocol
from autobahn.websocket.types import ConnectionDeny
from twisted.internet.interfaces import ISSLTransport
from twisted.web import resource

from s2proxy import logs
from s2proxy.registry import CEM, RM

_log = logs.make_logger("s2proxy.websocket")

ID_PATTERN = re.compile(r"[A-Za-z0-9_.:-]{1,64}\Z")
ID_RULE = "1 to 64 characters from [A-Za-z0-9_.:-]"


class BadDevicePath(Exception):
    """The URL is not a device URL; ``status`` is the HTTP status to answer with."""

    def __init__(self, status, text):
        Exception.__init__(self, text)
        self.status = status
        self.text = text


def parse_device_path(path):
    """Map a device URL path to (role, rm_id, cem_id).

    ``/backend/rm/{rm_id}/cem/{cem_id}/ws`` is an RM, ``/backend/cem/{cem_id}/rm/{rm_id}/ws`` a CEM
    (the URLs of flexiblepower/s2-analyzer). Raises BadDevicePath(404) for any other shape and
    BadDevicePath(400) for an id that breaks the id rule.
    """
    if isinstance(path, bytes):
        path = path.decode("latin-1")
    path = path.split("?", 1)[0]
    parts = path.split("/")
    # "", "backend", first, id, second, id, "ws" [, "" for a trailing slash]
    if len(parts) == 8 and parts[7] == "":
        parts = parts[:7]
    if len(parts) != 7 or parts[0] != "" or parts[1] != "backend" or parts[6] != "ws":
        raise BadDevicePath(404, "not a device URL: use /backend/rm/{rm_id}/cem/{cem_id}/ws "
                                 "or /backend/cem/{cem_id}/rm/{rm_id}/ws")
    first, first_id, second, second_id = parts[2], parts[3], parts[4], parts[5]
    if (first, second) == ("rm", "cem"):
        role, rm_id, cem_id = RM, first_id, second_id
    elif (first, second) == ("cem", "rm"):
        role, rm_id, cem_id = CEM, second_id, first_id
    else:
        raise BadDevicePath(404, "not a device URL: use /backend/rm/{rm_id}/cem/{cem_id}/ws "
                                 "or /backend/cem/{cem_id}/rm/{rm_id}/ws")
    for name, value in (("rm_id", rm_id), ("cem_id", cem_id)):
        if not ID_PATTERN.match(value):
            raise BadDevicePath(400, "invalid %s %r: an id is %s" % (name, value[:80], ID_RULE))
    return role, rm_id, cem_id


_STATE_OPEN = WebSocketProtocol.STATE_OPEN
_NO_QUEUE = ()
_HANDSHAKE_LEFTOVERS = ("http_request_data", "http_response_data", "http_headers", "http_status_line",
                        "http_response_body")


class PauseGate:
    """Counted pausing of one transport's reading: it reads only while nobody holds it paused.

    Two things may stop a device's reading at once (its partner's full write buffer, the
    history store's full queue); a plain pause/resume pair would let one undo the other.
    """

    def __init__(self, transport):
        self.transport = transport
        self.holders = set()

    def pause(self, holder):
        if holder in self.holders:
            return
        self.holders.add(holder)
        if len(self.holders) == 1:
            try:
                self.transport.pauseProducing()
            except Exception:
                pass

    def resume(self, holder):
        if holder not in self.holders:
            return
        self.holders.discard(holder)
        if not self.holders:
            try:
                self.transport.resumeProducing()
            except Exception:
                pass


class _PartnerProducer:
    """Registered on a side's transport so that a full write buffer pauses the partner's reading."""

    def __init__(self, gate):
        self.gate = gate

    def pauseProducing(self):
        self.gate.pause("partner")

    def resumeProducing(self):
        self.gate.resume("partner")

    def stopProducing(self):
        # The writer's transport is going away; that must not close the partner.
        self.gate.resume("partner")


def _register_producer(transport, producer):
    try:
        transport.registerProducer(producer, True)
    except RuntimeError:
        # twisted.web's HTTP channel stays registered on a transport that Autobahn took over.
        transport.unregisterProducer()
        transport.registerProducer(producer, True)


class DeviceSide:
    """The part of a device connection that the registry talks to (mixed into Autobahn protocols)."""

    role = None
    rm_id = None
    cem_id = None
    conversation = None
    direction = "inbound"
    tls = False
    gate = None
    _partner_producer = None

    # -- called by the protocol -------------------------------------------------------------

    def _side_opened(self):
        if not self.send_queue:
            # Autobahn queues only sync/chopsize writes, which the proxy never asks for once
            # open; its empty deque is 600 bytes per connection (1.2 MB for 1,000 idle pairs).
            self.send_queue = _NO_QUEUE
        # The opening handshake's texts are not needed once open (about 0.8 KB per connection).
        for name in _HANDSHAKE_LEFTOVERS:
            if getattr(self, name, None) is not None:
                setattr(self, name, None)
        self.gate = PauseGate(self.transport)
        self.tls = ISSLTransport.providedBy(self.transport)
        self.factory.registry.attach(self)

    def _side_closed(self, wasClean, code, reason):
        if self.conversation is None:
            return
        if self._partner_producer is not None:
            self.unwatch_partner()
        if getattr(self, "closedByMe", False) or getattr(self, "failedByMe", False):
            code, reason, closed_by = self.localCloseCode, self.localCloseReason, "proxy"
        else:
            code, reason, closed_by = self.remoteCloseCode, self.remoteCloseReason, "peer"
            if code is None:
                reason = reason or "connection lost without a close frame"
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", errors="replace")
        self.factory.registry.detach(self, code, reason or "", closed_by)

    # -- the side interface -----------------------------------------------------------------

    def send_frame(self, payload, binary):
        self.sendMessage(payload, binary)

    def close(self, code, reason):
        # Autobahn's sendClose only takes 1000 and 3000-4999; 1013 (try again later) and 1001
        # are legal for a server to send (RFC 6455 7.4.1, IANA registry), so build the frame here.
        self.sendCloseFrame(code=code, reasonUtf8=reason.encode("utf-8")[:123], isReply=False)

    def watch_partner(self, partner):
        self.unwatch_partner()
        self._partner_producer = _PartnerProducer(partner.gate)
        _register_producer(self.transport, self._partner_producer)

    def unwatch_partner(self):
        producer = self._partner_producer
        if producer is None:
            return
        self._partner_producer = None
        if self.transport is not None and getattr(self.transport, "producer", producer) is producer:
            try:
                self.transport.unregisterProducer()
            except Exception:
                pass
        producer.gate.resume("partner")

    # -- Autobahn hot path ------------------------------------------------------------------
    # Autobahn formats its debug-log arguments on every read and write even when debug logging
    # is off, and fires a "message" event (a Deferred) per message that nothing here listens
    # to. These overrides keep its behaviour and skip that work (about a third of its cost).

    def dataReceived(self, data):
        self._dataReceived(data)

    def onMessageEnd(self):
        if not self.failedByMe:
            payload = b"".join(self.message_data)
            if self.trackedTimings:
                self.trackedTimings.track("onMessage")
            self._onMessage(payload, self.message_is_binary)
        self.message_data = None

    def sendData(self, data, sync=False, chopsize=None):
        if chopsize or sync or self.send_queue or self.logOctets or self.state != _STATE_OPEN:
            if self.send_queue is _NO_QUEUE:
                self.send_queue = deque()
            return super().sendData(data, sync, chopsize)
        self.transport.write(data)
        self.trafficStats.outgoingOctetsWireLevel += len(data)

    # -- Autobahn callbacks shared by server and client -------------------------------------

    def onOpen(self):
        # Autobahn swallows exceptions raised here; log them instead.
        try:
            self._side_opened()
        except Exception:
            _log.failure("could not attach {role} connection rm_id={rm} cem_id={cem}",
                         role=self.role, rm=self.rm_id, cem=self.cem_id)
            self.sendClose(1011, "internal error")

    def onMessage(self, payload, isBinary):
        self.factory.registry.receive(self, payload, isBinary)

    def onPing(self, payload):
        super().onPing(payload)
        if self.conversation is not None:
            self.factory.registry.ping(self)

    def onClose(self, wasClean, code, reason):
        try:
            self._side_closed(wasClean, code, reason)
        except Exception:
            _log.failure("error while detaching {role} connection", role=self.role)


def cancel_batched_timers(factory):
    """Cancel an Autobahn factory's pending batched timers (its buckets outlive cancelled calls)."""
    timer = getattr(factory, "_batched_timer", None)
    buckets = getattr(timer, "_buckets", None)
    if not buckets:
        return
    for delayed_call, _ in list(buckets.values()):
        if delayed_call.active():
            delayed_call.cancel()
    buckets.clear()


class DeviceServerProtocol(DeviceSide, WebSocketServerProtocol):
    """An RM or CEM that connected to the proxy."""

    def onConnect(self, request):
        try:
            self.role, self.rm_id, self.cem_id = parse_device_path(request.path)
        except BadDevicePath as e:
            raise ConnectionDeny(e.status, e.text)
        factory = self.factory
        if factory.max_connections and factory.registry.open_connections >= factory.max_connections:
            raise ConnectionDeny(503, "connection limit reached (--max-connections=%d)"
                                 % factory.max_connections)
        if factory.authorize is not None:
            # May raise ConnectionDeny (401/403); see s2proxy.auth.
            factory.authorize(request, self.role, self.rm_id, self.cem_id)
        return None


class DeviceServerFactory(WebSocketServerFactory):
    protocol = DeviceServerProtocol

    def __init__(self, registry, max_connections=0, authorize=None, **kw):
        WebSocketServerFactory.__init__(self, **kw)
        self.registry = registry
        self.max_connections = max_connections
        self.authorize = authorize


class DeviceSocketResource(WebSocketResource):
    """Answers a device URL: plain HTTP 404/400 for a bad path, else the WebSocket upgrade."""

    def render(self, request):
        try:
            parse_device_path(request.path)
        except BadDevicePath as e:
            request.setResponseCode(e.status)
            request.setHeader(b"content-type", b"application/json")
            return json.dumps({"error": e.text}).encode("utf-8")
        return WebSocketResource.render(self, request)


class DeviceRoutes(resource.Resource):
    """``/backend/rm`` and ``/backend/cem``: every path below them is a device URL (or a 404/400)."""

    isLeaf = True

    def __init__(self, factory):
        resource.Resource.__init__(self)
        self._socket = DeviceSocketResource(factory)

    def render(self, request):
        return self._socket.render(request)

"""Outbound connectors: the proxy dials a listening RM or CEM and pairs it like an inbound one.

In S2 Connect the CEM is usually the WebSocket server, so to sit between a real RM and a real CEM
the proxy must often dial out. Each connector is a Twisted ``ClientService`` that keeps one
WebSocket connection to one URL, with exponential backoff and jitter between attempts. The
connection's protocol mixes in :class:`s2proxy.websocket.DeviceSide` with
``direction="outbound"``, so the registry pairs it with the other side (inbound or dialled too)
exactly as it pairs inbound connections.

A *connection* (one ``add()`` call, one POST) holds one or two connectors: ``<id>-rm`` dialling
the RM and ``<id>-cem`` dialling the CEM. ``remove()`` takes either id.

Why the backoff is counted here and not by ClientService: ClientService counts a TCP connection as
a success, but a peer that accepts TCP and then fails the TLS or WebSocket handshake (401, bad
certificate, timeout) has not been reached either. The connector counts such attempts as failures
and its retry policy grows the delay from its own count.
"""

import datetime
import inspect
import time
import uuid

from autobahn.twisted.websocket import WebSocketClientFactory, WebSocketClientProtocol
from autobahn.websocket.compress import (PerMessageDeflateOffer, PerMessageDeflateResponse,
                                         PerMessageDeflateResponseAccept)
from autobahn.websocket.util import parse_url
from twisted.application import service
from twisted.application.internet import ClientService, backoffPolicy
from twisted.internet import defer, endpoints
from twisted.internet.interfaces import IStreamClientEndpoint
from zope.interface import implementer

from s2proxy import logs, tls
from s2proxy.events import make_event
from s2proxy.registry import CEM, RM
from s2proxy.websocket import ID_PATTERN, ID_RULE, DeviceSide

_log = logs.make_logger("s2proxy.connectors")

CONNECTING = "connecting"
CONNECTED = "connected"
WAITING = "waiting"
STOPPED = "stopped"

ROLE_NAMES = {"rm": RM, "cem": CEM}

# Per-connector options accepted by add() and by entries of --connectors-file.
OPTION_KEYS = ("headers", "token", "token_file", "ca_file", "fingerprint", "client_cert",
               "client_key", "insecure")


class ConnectorError(ValueError):
    """A connector cannot be made; ``field`` names the offending setting (the API answers 400)."""

    def __init__(self, field, text):
        ValueError.__init__(self, "%s: %s" % (field, text))
        self.field = field
        self.text = text


def iso_time(epoch):
    if epoch is None:
        return None
    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).isoformat().replace(
        "+00:00", "Z")


def check_id(field, value):
    if not isinstance(value, str) or not ID_PATTERN.match(value):
        raise ConnectorError(field, "%r is not a valid id (%s)" % (value, ID_RULE))
    return value


def check_url(field, url):
    """Return (secure, host, port) of a ws:// or wss:// URL; ConnectorError naming ``field``."""
    if not isinstance(url, str) or not url:
        raise ConnectorError(field, "expected a ws:// or wss:// URL")
    try:
        secure, host, port, _resource, _path, _params = parse_url(url)
    except Exception as e:
        raise ConnectorError(field, "%r is not a ws:// or wss:// URL (%s)" % (url[:200], e))
    if host == "unix":
        raise ConnectorError(field, "Unix socket URLs are not supported")
    if "@" in url.split("//", 1)[1].split("/", 1)[0]:
        # Credentials in a URL end up in logs and listings; S2 uses a bearer token.
        raise ConnectorError(field, "credentials in the URL are not supported; give a token")
    return secure, host, port


def parse_connect_spec(spec):
    """``cem:CEM_ID:RM_ID:URL`` or ``rm:RM_ID:CEM_ID:URL`` (the URL may contain ':')."""
    parts = spec.split(":", 3)
    if len(parts) != 4 or parts[0].lower() not in ROLE_NAMES or "://" not in parts[3]:
        raise ConnectorError("--connect", "expected cem:CEM_ID:RM_ID:URL or rm:RM_ID:CEM_ID:URL, "
                                          "got %r" % spec)
    kind, own_id, peer_id, url = parts
    check_url("url", url)
    if kind.lower() == "cem":
        return {"role": "cem", "cem_id": own_id, "rm_id": peer_id, "url": url}
    return {"role": "rm", "rm_id": own_id, "cem_id": peer_id, "url": url}


def _client_options(settings):
    """Autobahn client options from the daemon's settings (the limits mirror the server's)."""
    opts = {
        "maxMessagePayloadSize": settings["max_message_size"],
        "maxFramePayloadSize": settings["max_frame_size"],
        "autoPingInterval": settings["auto_ping_interval"],
        "autoPingTimeout": settings["auto_ping_timeout"],
        # A peer that accepts TCP but never finishes TLS or the upgrade must not hang the attempt.
        "openHandshakeTimeout": settings["open_handshake_timeout"] or 10.0,
        "closeHandshakeTimeout": 5,
        "utf8validateIncoming": True,
        "failByDrop": False,
        # S2 peers should accept permessage-deflate; the inflated size is capped as inbound.
        "perMessageCompressionOffers": [PerMessageDeflateOffer()],
        "perMessageCompressionAccept": _accept_deflate_response,
    }
    accepted = inspect.signature(WebSocketClientFactory.setProtocolOptions).parameters
    for key, value in settings.get("websocket_protocol_options", {}).items():
        if key in accepted:
            opts[key] = value
    return opts


def _accept_deflate_response(response):
    if isinstance(response, PerMessageDeflateResponse):
        return PerMessageDeflateResponseAccept(response)
    return None


class ConnectorProtocol(DeviceSide, WebSocketClientProtocol):
    """The proxy's side of a dialled connection: to the registry, the RM or CEM it reached."""

    direction = "outbound"
    _lost_reason = None
    _was_opened = False

    def connectionMade(self):
        connector = self.factory.connector
        self.role, self.rm_id, self.cem_id = connector.role, connector.rm_id, connector.cem_id
        WebSocketClientProtocol.connectionMade(self)
        connector._transport_made(self)

    def onOpen(self):
        self._was_opened = True
        self.factory.connector._opened(self)
        DeviceSide.onOpen(self)

    def connectionLost(self, reason):
        # Autobahn turns the reason into text; keep the failure to name TLS errors precisely.
        self._lost_reason = reason
        WebSocketClientProtocol.connectionLost(self, reason)

    def onClose(self, wasClean, code, reason):
        DeviceSide.onClose(self, wasClean, code, reason)
        try:
            self.factory.connector._closed(self, wasClean, code, reason)
        except Exception:
            _log.failure("connector bookkeeping failed")


class ConnectorFactory(WebSocketClientFactory):
    protocol = ConnectorProtocol
    # Every attempt would log "Starting factory" / "Stopping factory" otherwise.
    noisy = False

    def __init__(self, connector, registry, url, headers, reactor):
        WebSocketClientFactory.__init__(self, url, headers=headers, reactor=reactor)
        self.connector = connector
        self.registry = registry


@implementer(IStreamClientEndpoint)
class _ObservedEndpoint:
    """Wraps the real endpoint to report each attempt and each failure to connect."""

    def __init__(self, connector, endpoint):
        self._connector = connector
        self._endpoint = endpoint

    def __repr__(self):
        # ClientService logs its endpoint when it schedules a retry.
        return "<connector %s to %s>" % (self._connector.id, self._connector.url)

    def connect(self, factory):
        self._connector._attempt_started()
        d = self._endpoint.connect(factory)

        def failed(failure):
            if not failure.check(defer.CancelledError):
                self._connector._attempt_failed(_describe_failure(failure))
            return failure
        d.addErrback(failed)
        return d


def _describe_failure(failure):
    value = failure.value
    text = str(value).strip() or value.__class__.__name__
    try:
        from OpenSSL import SSL
        if isinstance(value, SSL.Error):
            details = [item[2] for item in (value.args[0] if value.args else ())
                       if isinstance(item, tuple) and len(item) == 3]
            text = "TLS error: " + (", ".join(details) or text)
    except ImportError:
        pass
    if value.__class__.__name__ == "VerificationError":
        text = "TLS error: the certificate does not match the host name (%s)" % text
    elif isinstance(value, tls.PinMismatch):
        text = "TLS error: " + text
    return text[:500]


class Connector(service.Service):
    """One dialled URL, kept connected by a ClientService."""

    def __init__(self, owner, connector_id, connection_id, role, rm_id, cem_id, url, headers,
                 creator, verify):
        self.owner = owner
        self.id = connector_id
        self.connection_id = connection_id
        self.role = role
        self.rm_id = rm_id
        self.cem_id = cem_id
        self.url = url
        self.verify = verify  # "chain", "pin", "none" or None (ws://)
        self.state = STOPPED
        self.attempts = 0
        self.failures = 0
        self.last_error = None
        self.next_attempt = None
        self.retry_in = None
        self.connected_since = None
        self.protocol = None
        secure, host, port = check_url("url", url)
        self.factory = ConnectorFactory(self, owner.registry, url, headers, owner.reactor)
        self.factory.setProtocolOptions(**owner.client_options)
        endpoint = endpoints.HostnameEndpoint(owner.reactor, host, port,
                                              timeout=owner.connect_timeout)
        if secure:
            endpoint = endpoints.wrapClientTLS(creator, endpoint)
        self.client = ClientService(_ObservedEndpoint(self, endpoint), self.factory,
                                    retryPolicy=self._retry_delay, clock=owner.clock)

    # -- service ----------------------------------------------------------------------------

    def startService(self):
        service.Service.startService(self)
        self.client.startService()

    def stopService(self):
        service.Service.stopService(self)
        protocol = self.protocol
        closed = defer.succeed(None)
        if protocol is not None and protocol.state == WebSocketClientProtocol.STATE_OPEN:
            # Close the WebSocket properly first (bounded by closeHandshakeTimeout): cutting TCP
            # under a sent close frame would leave the peer guessing and a timer running.
            closed = defer.Deferred()
            protocol.is_closed.addBoth(lambda result: closed.callback(None))
            protocol.sendClose(1000, "connector stopped")
        self.state, self.next_attempt, self.retry_in = STOPPED, None, None
        self._emit()
        _log.info("connector {id} to {url} stopped", id=self.id, url=self.url)
        return closed.addCallback(lambda _: self.client.stopService())

    # -- bookkeeping (called by the endpoint, the protocol and ClientService) ---------------

    def _attempt_started(self):
        self.attempts += 1
        self.state, self.next_attempt, self.retry_in = CONNECTING, None, None
        self._emit()

    def _attempt_failed(self, text):
        self.failures += 1
        self.last_error = text
        _log.warn("connector {id}: attempt {n} to {url} failed: {error}",
                  id=self.id, n=self.attempts, url=self.url, error=text)

    def _transport_made(self, protocol):
        self.protocol = protocol
        if self.verify == "none":
            _log.warn("connector {id}: the certificate of {url} is NOT verified (insecure); "
                      "anyone on the path can read and change this S2 connection",
                      id=self.id, url=self.url)

    def _opened(self, protocol):
        self.failures = 0
        self.last_error = None
        self.state = CONNECTED if self.running else STOPPED
        self.connected_since = time.time()
        self._emit()
        _log.info("connector {id}: connected to {role} at {url} (rm_id={rm_id} cem_id={cem_id})",
                  id=self.id, role=self.role, url=self.url, rm_id=self.rm_id, cem_id=self.cem_id)

    def _closed(self, protocol, was_clean, code, reason):
        if protocol is self.protocol:
            self.protocol = None
        self.connected_since = None
        if not self.running:
            return
        if protocol._was_opened:
            # A working connection ended: the next attempt starts the backoff afresh.
            self.failures = 1
            self.last_error = "closed: code %s %s" % (code, protocol.remoteCloseReason
                                                      or protocol.localCloseReason or reason or "")
            self.last_error = self.last_error.strip()
            _log.info("connector {id}: connection to {url} ended ({error}); reconnecting",
                      id=self.id, url=self.url, error=self.last_error)
            return
        failure = protocol._lost_reason
        text = None
        if failure is not None and not _is_plain_close(failure):
            text = _describe_failure(failure)
        if not text or not text.startswith("TLS error"):
            text = "handshake failed: %s" % (reason or text or "connection closed")
        self._attempt_failed(text[:500])

    def _retry_delay(self, _attempt):
        # ClientService asks after every failure or disconnect; the connector's own count rules.
        delay = self.owner.policy(max(0, self.failures - 1))
        self.retry_in = delay
        self.next_attempt = time.time() + delay
        if self.running:
            self.state = WAITING
            self._emit()
        return delay

    def _emit(self):
        self.owner.hub.emit(make_event(
            "connector", None, connector_id=self.id, connection_id=self.connection_id,
            role=self.role, rm_id=self.rm_id, cem_id=self.cem_id, state=self.state, url=self.url,
            last_error=self.last_error, next_attempt=iso_time(self.next_attempt),
            attempts=self.attempts))

    def describe(self):
        registry = self.owner.registry
        conv = registry.conversations.get((self.rm_id, self.cem_id)) if registry is not None else None
        return {
            "id": self.id,
            "connection_id": self.connection_id,
            "role": self.role,
            "rm_id": self.rm_id,
            "cem_id": self.cem_id,
            "url": self.url,
            "state": self.state,
            "next_attempt": iso_time(self.next_attempt),
            "retry_in": self.retry_in,
            "attempts": self.attempts,
            "failures": self.failures,
            "last_error": self.last_error,
            "connected_since": iso_time(self.connected_since),
            "session_id": conv.session_id if conv is not None else None,
            "verify": self.verify,
        }


def _is_plain_close(failure):
    from twisted.internet import error
    return failure.check(error.ConnectionDone) is not None


class Connectors(service.MultiService):
    """Every outbound connector; ``app.connectors`` for the API (see docs/INTERFACES.md)."""

    def __init__(self, registry, hub, reactor, settings, clock=None):
        service.MultiService.__init__(self)
        self.registry = registry
        self.hub = hub
        self.reactor = reactor
        self.clock = clock if clock is not None else reactor
        self.settings = settings
        self.client_options = _client_options(settings)
        self.connect_timeout = settings.get("connect_timeout", 10.0)
        jitter = settings.get("backoff_jitter")
        policy_args = dict(initialDelay=settings.get("backoff_initial", 1.0),
                           maxDelay=settings.get("backoff_max", 60.0),
                           factor=settings.get("backoff_factor", 1.5))
        if jitter is not None:
            policy_args["jitter"] = jitter
        self.policy = backoffPolicy(**policy_args)
        self._by_id = {}
        self._connections = {}
        self._stopping = []

    # -- the API ----------------------------------------------------------------------------

    def add(self, rm_id, cem_id, rm_uri=None, cem_uri=None, **options):
        """Dial ``rm_uri`` and/or ``cem_uri`` and pair what answers as (rm_id, cem_id).

        Returns ``{"session_id": ID, "connection_id": ID, "connectors": [describe()...]}`` where
        ID names this connection for ``remove()`` (``DELETE /backend/connections/ID``). Raises
        ConnectorError (a ValueError) naming the bad field. Nothing is dialled before every field
        was checked; a peer that refuses shows up later as ``last_error`` and a retry.
        """
        check_id("rm_id", rm_id)
        check_id("cem_id", cem_id)
        if not rm_uri and not cem_uri:
            raise ConnectorError("rm_uri", "give rm_uri or cem_uri (or both): the URL to dial")
        plans = []
        for role, field, url in ((RM, "rm_uri", rm_uri), (CEM, "cem_uri", cem_uri)):
            if url:
                check_url(field, url)
                self._check_not_dialled(field, role, rm_id, cem_id)
                plans.append((role, field, url))
        connection_id = str(uuid.uuid4())
        made = [self._make(connection_id, role, rm_id, cem_id, url, field, options)
                for role, field, url in plans]
        self._connections[connection_id] = [c.id for c in made]
        for connector in made:
            self._by_id[connector.id] = connector
            connector.setServiceParent(self)
        return {"session_id": connection_id, "connection_id": connection_id,
                "connectors": [c.describe() for c in made]}

    def add_entry(self, entry):
        """One connector from a ``--connect`` flag or a ``--connectors-file`` entry (role, url)."""
        entry = dict(entry)
        role = str(entry.pop("role", "")).lower()
        if role not in ROLE_NAMES:
            raise ConnectorError("role", "expected \"rm\" or \"cem\", got %r" % (role,))
        url = entry.pop("url", None)
        rm_id = entry.pop("rm_id", None)
        cem_id = entry.pop("cem_id", None)
        unknown = sorted(set(entry) - set(OPTION_KEYS))
        if unknown:
            raise ConnectorError(unknown[0], "unknown connector setting (known: role, rm_id, "
                                             "cem_id, url, %s)" % ", ".join(OPTION_KEYS))
        uris = {"rm_uri": url} if role == "rm" else {"cem_uri": url}
        return self.add(rm_id, cem_id, **dict(uris, **entry))

    def remove(self, connector_id):
        """Stop a connection (both its connectors) or one connector. False if the id is unknown."""
        ids = self._connections.pop(connector_id, None)
        if ids is None:
            if connector_id not in self._by_id:
                return False
            ids = [connector_id]
            group = self._by_id[connector_id].connection_id
            rest = [i for i in self._connections.get(group, ()) if i != connector_id]
            if rest:
                self._connections[group] = rest
            else:
                self._connections.pop(group, None)
        for i in ids:
            connector = self._by_id.pop(i, None)
            if connector is not None:
                d = defer.maybeDeferred(connector.disownServiceParent)
                self._stopping.append(d)
                d.addBoth(self._stopped, d)
        return True

    def _stopped(self, result, d):
        if d in self._stopping:
            self._stopping.remove(d)
        return None

    def wait_stopped(self):
        """A Deferred that fires when every removed connector has closed its connection."""
        return defer.DeferredList(list(self._stopping))

    def describe(self):
        return [c.describe() for c in self._by_id.values()]

    def get(self, connector_id):
        return self._by_id.get(connector_id)

    def __len__(self):
        return len(self._by_id)

    # -- building ---------------------------------------------------------------------------

    def _check_not_dialled(self, field, role, rm_id, cem_id):
        for other in self._by_id.values():
            if (other.role, other.rm_id, other.cem_id) == (role, rm_id, cem_id):
                raise ConnectorError(field, "connector %s already dials the %s of rm_id=%s "
                                            "cem_id=%s" % (other.id, role, rm_id, cem_id))

    def _make(self, connection_id, role, rm_id, cem_id, url, field, options):
        defaults = self.settings
        secure, host, _port = check_url(field, url)
        headers = options.get("headers") or {}
        if not isinstance(headers, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in headers.items()):
            raise ConnectorError("headers", "expected an object of header names to strings")
        headers = dict(headers)
        token = options.get("token")
        if options.get("token_file"):
            try:
                with open(options["token_file"], "r", encoding="utf-8") as f:
                    token = f.read().strip()
            except OSError as e:
                raise ConnectorError("token_file", "%s: %s" % (options["token_file"],
                                                              e.strerror or e))
        if token is not None:
            if not isinstance(token, str) or not token or any(c in token for c in "\r\n"):
                raise ConnectorError("token", "expected a non-empty single-line string")
            headers["Authorization"] = "Bearer " + token
        creator, verify = None, None
        insecure = bool(options.get("insecure", defaults.get("connect_insecure", False)))
        tls_fields = ("ca_file", "fingerprint", "client_cert", "client_key")
        if secure:
            try:
                creator = tls.client_tls(
                    host,
                    ca_file=options.get("ca_file") or defaults.get("connect_ca"),
                    fingerprint=options.get("fingerprint"),
                    client_cert=options.get("client_cert") or defaults.get("connect_client_cert"),
                    client_key=(options.get("client_key") if options.get("client_cert")
                                else defaults.get("connect_client_key")),
                    insecure=insecure,
                    min_version=defaults.get("tls_min_version", tls.DEFAULT_MIN_VERSION))
            except tls.TLSConfigError as e:
                raise ConnectorError(_tls_field(str(e), tls_fields), str(e))
            verify = "pin" if options.get("fingerprint") else "none" if insecure else "chain"
        else:
            for key in tls_fields:
                if options.get(key):
                    raise ConnectorError(key, "only for wss:// URLs, not %s" % url)
            if not _is_loopback(host):
                # S2 must not travel unencrypted; allowed for development, said loudly.
                _log.warn("connector to {url} is unencrypted (ws://){token}: S2 requires wss:// "
                          "in production", url=url,
                          token=" and sends its bearer token in clear text" if token else "")
        suffix = "rm" if role == RM else "cem"
        return Connector(self, "%s-%s" % (connection_id, suffix), connection_id, role, rm_id,
                         cem_id, url, headers, creator, verify)


def _is_loopback(host):
    import ipaddress
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _tls_field(text, fields):
    if text.startswith("fingerprint"):
        return "fingerprint"
    if text.startswith("client certificate"):
        return "client_cert"
    if text.startswith("CA file"):
        return "ca_file"
    return fields[0]


def load_connectors_file(path):
    """The entries of a ``--connectors-file``: ``{"connectors": [{role, rm_id, cem_id, url, ...}]}``."""
    import json
    try:
        with open(path, "rb") as f:
            data = json.loads(f.read().decode("utf-8"))
    except OSError as e:
        raise ConnectorError("--connectors-file", "%s: %s" % (path, e.strerror or e))
    except ValueError as e:
        raise ConnectorError("--connectors-file", "%s: not JSON (%s)" % (path, e))
    if isinstance(data, dict):
        data = data.get("connectors")
    if not isinstance(data, list) or not all(isinstance(e, dict) for e in data):
        raise ConnectorError("--connectors-file", '%s: expected {"connectors": [{...}, ...]}' % path)
    return data


_PATH_KEYS = ("token_file", "ca_file", "client_cert", "client_key")


def resolve_file_entries(entries, path):
    """File names inside a connectors file are relative to the file's folder."""
    import os
    base = os.path.dirname(os.path.abspath(path))
    resolved = []
    for entry in entries:
        entry = dict(entry)
        for key in _PATH_KEYS:
            if isinstance(entry.get(key), str):
                entry[key] = os.path.join(base, os.path.expanduser(entry[key]))
        resolved.append(entry)
    return resolved


def check_options(config):
    """``twistd s2analyzer`` start-up checks for the issue 5 flags; UsageError names the flag.

    Sets ``config["connect-entries"]``: every connector of ``--connect`` and
    ``--connectors-file``, checked by building it (files read, TLS settings loaded) without
    dialling.
    """
    from twisted.internet import reactor
    from twisted.python import usage

    from s2proxy import auth
    from s2proxy.service import DEFAULTS
    try:
        tls.require_service_identity()
    except tls.TLSConfigError as e:
        raise usage.UsageError(str(e))
    try:
        tls.parse_min_version(config["tls-min-version"])
        tls.server_endpoint(reactor, config["port"], config["tls-min-version"],
                            config["tls-client-ca"])
    except tls.TLSConfigError as e:
        raise usage.UsageError(str(e))
    if config["device-tokens"]:
        try:
            auth.DeviceTokens.load(config["device-tokens"])
        except auth.TokenFileError as e:
            raise usage.UsageError(str(e))
    for flag in ("connect-ca", "connect-client-cert", "connect-client-key"):
        if config[flag]:
            try:
                open(config[flag], "rb").close()
            except OSError as e:
                raise usage.UsageError("--%s %s: %s" % (flag, config[flag], e.strerror or e))
    if config["backoff-max"] < config["backoff-initial"]:
        raise usage.UsageError("--backoff-max must not be smaller than --backoff-initial")
    if config["backoff-factor"] < 1:
        raise usage.UsageError("--backoff-factor must be at least 1")
    entries = [(spec, "--connect %s" % spec) for spec in config.get("connect", [])]
    if config["connectors-file"]:
        path = config["connectors-file"]
        try:
            listed = resolve_file_entries(load_connectors_file(path), path)
        except ConnectorError as e:
            raise usage.UsageError(str(e))
        entries += [(e, "--connectors-file %s: connectors[%d]" % (path, i))
                    for i, e in enumerate(listed)]
    settings = dict(DEFAULTS)
    settings.update(connect_ca=config["connect-ca"], connect_client_cert=config["connect-client-cert"],
                    connect_client_key=config["connect-client-key"],
                    connect_insecure=bool(config["connect-insecure"]),
                    tls_min_version=config["tls-min-version"])
    trial = Connectors(None, None, reactor, settings)
    checked = []
    for entry, where in entries:
        try:
            if isinstance(entry, str):
                entry = parse_connect_spec(entry)
            trial.add_entry(entry)
        except ConnectorError as e:
            raise usage.UsageError("%s: %s" % (where, e))
        checked.append(entry)
    config["connect-entries"] = checked

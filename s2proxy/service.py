"""The daemon's service tree: the listening port, the registry and its timers, the sinks.

``S2Proxy`` holds the parts every resource needs (hub, validator, registry, settings) and is the
MultiService that twistd starts. It is built from a plain settings dict, so tests make one
without going through the command line.
"""

import os
import time

from twisted.application import internet, service
from twisted.internet import defer, endpoints, task

from s2proxy import logs
from s2proxy.events import Hub
from s2proxy.logsink import LogSink
from s2proxy.registry import Registry
from s2proxy.websocket import DeviceServerFactory

_log = logs.make_logger("s2proxy.service")

DEFAULTS = {
    "port": "tcp:8001",
    "schemas": None,
    "validate": True,
    "strict": False,
    "checker_options": {},
    "max_kept_messages": 1000,
    "max_kept_bytes": 4 * 1024 * 1024,
    "mirror_close": False,
    "kept_ttl": 3600.0,
    "max_message_size": 1024 * 1024,
    "max_frame_size": 1024 * 1024,
    "auto_ping_interval": 50.0,
    "auto_ping_timeout": 20.0,
    "open_handshake_timeout": 10.0,
    "max_connections": 10000,
    "websocket_protocol_options": {},
    "allowed_origins": ["*"],
    "shutdown_timeout": 3.0,
    "analysis_workers": None,        # None: 1 worker process with 2+ cores, else 0 (inline)
    "analysis_queue_max": 20000,
    "store_writer": None,            # None: a writer process with 2+ cores, else a thread     # analyses waiting for the worker before devices are paused
    # -- issue 4 settings --
    "store": True,                       # False: --no-store
    "data_dir": None,                    # None: $STATE_DIRECTORY or the working directory
    "history_max_age": 30 * 86400.0,
    "history_max_bytes": 1 << 30,
    "store_queue_max": 20000,
    "store_flush_interval": 0.05,
    "api_allow": "127.0.0.0/8,::1",
    "api_token": None,
    "api_guard_reads": False,
    "api_origins": "",
    "feed_max_buffer": 4 * 1024 * 1024,
    # -- issue 5 settings --
    "connect": [],                 # connector entries: {role, rm_id, cem_id, url, token, ca_file, ...}
    "connect_ca": None,            # default CA file for wss:// connectors (else the system store)
    "connect_client_cert": None,   # default client certificate (PEM, key inside or connect_client_key)
    "connect_client_key": None,
    "connect_insecure": False,     # skip certificate checks of wss:// peers (warned on every connection)
    "connect_timeout": 10.0,       # TCP connect timeout of a connector attempt
    "backoff_initial": 1.0,
    "backoff_max": 60.0,
    "backoff_factor": 1.5,
    "backoff_jitter": None,        # None: random.random (0..1 s); tests pass lambda: 0
    "connectors_clock": None,      # None: the reactor; tests pass a Clock to drive the backoff
    "tls_min_version": "1.3",      # floor of the ssl: listener and of wss:// connectors
    "tls_client_ca": None,         # require client certificates signed by this CA (mutual TLS)
    "device_tokens": None,         # token file path (or an auth.DeviceTokens): bearer check on devices
}


def websocket_options(settings):
    """The Autobahn protocol options, each set on purpose (see README, 'Limits')."""
    opts = {
        "maxMessagePayloadSize": settings["max_message_size"],
        "maxFramePayloadSize": settings["max_frame_size"],
        "autoPingInterval": settings["auto_ping_interval"],
        "autoPingTimeout": settings["auto_ping_timeout"],
        "openHandshakeTimeout": settings["open_handshake_timeout"],
        "closeHandshakeTimeout": 5,
        "utf8validateIncoming": True,
        "failByDrop": False,
        "webStatus": False,
        # S2 peers should offer permessage-deflate; Autobahn caps the inflated size at
        # maxMessagePayloadSize, so a compressed bomb is refused with 1009.
        "perMessageCompressionAccept": _accept_deflate,
    }
    opts.update(settings["websocket_protocol_options"])
    return opts


def _accept_deflate(offers):
    from autobahn.websocket.compress import PerMessageDeflateOffer, PerMessageDeflateOfferAccept
    for offer in offers:
        if isinstance(offer, PerMessageDeflateOffer):
            return PerMessageDeflateOfferAccept(offer)
    return None


class ListeningService(service.Service):
    """Listen on a Twisted server endpoint; ``port`` is the IListeningPort once started."""

    def __init__(self, endpoint, factory):
        self.endpoint = endpoint
        self.factory = factory
        self.port = None

    def startService(self):
        service.Service.startService(self)
        d = self.endpoint.listen(self.factory)

        def listening(port):
            self.port = port
            return port
        d.addCallback(listening)
        self._listening = d
        return d

    def stopService(self):
        service.Service.stopService(self)
        if self.port is not None:
            port, self.port = self.port, None
            return defer.maybeDeferred(port.stopListening)


class S2Proxy(service.MultiService):
    """The whole daemon."""

    def __init__(self, settings, reactor):
        service.MultiService.__init__(self)
        self.settings = dict(DEFAULTS)
        self.settings.update(settings)
        settings = self.settings
        self.reactor = reactor
        self.started = time.time()
        self.hub = Hub()
        self.validator = None
        self.analyzer = None
        if settings["validate"]:
            from s2proxy.validation import Validator
            self.validator = Validator(settings["schemas"], strict=settings["strict"])
            self.analyzer = self._make_analyzer()
        self.registry = Registry(
            self.hub, self.analyzer, clock=reactor,
            max_kept_messages=settings["max_kept_messages"],
            max_kept_bytes=settings["max_kept_bytes"],
            mirror_close=settings["mirror_close"],
            kept_ttl=settings["kept_ttl"],
        )
        self.hub.subscribe(LogSink())
        self.device_factory = DeviceServerFactory(
            self.registry, max_connections=settings["max_connections"], authorize=None)
        self.device_factory.setProtocolOptions(**websocket_options(settings))
        # -- issue 4 wiring (store, feeds, metrics) --
        from s2proxy.api import wire
        wire(self, settings, reactor)
        # -- issue 5 wiring (connectors, TLS, device auth) --
        from s2proxy import tls
        from s2proxy.connectors import Connectors
        tls.require_service_identity()
        if isinstance(settings["port"], str):
            # An ssl: listener gets the TLS floor and, with tls_client_ca, mutual TLS.
            settings["port_description"] = settings["port"]
            settings["port"] = tls.server_endpoint(reactor, settings["port"], settings["tls_min_version"],
                                                   settings["tls_client_ca"])
        if settings["device_tokens"]:
            from s2proxy.auth import DeviceTokens, make_authorizer
            tokens = settings["device_tokens"]
            if isinstance(tokens, str):
                tokens = DeviceTokens.load(tokens)
            self.device_factory.authorize = make_authorizer(tokens, self.hub)
        self.connectors = Connectors(self.registry, self.hub, reactor, settings,
                                     clock=settings["connectors_clock"])
        for entry in settings["connect"]:
            self.connectors.add_entry(entry)
        self.connectors.setServiceParent(self)
        from s2proxy.web import build_site
        self.site = build_site(self)
        endpoint = settings["port"]
        if isinstance(endpoint, str):
            endpoint = endpoints.serverFromString(reactor, endpoint)
        self.listener = ListeningService(endpoint, self.site)
        self.listener.setServiceParent(self)
        ticker = internet.TimerService(1.0, self.registry.tick)
        ticker.clock = reactor
        ticker.setServiceParent(self)

    def analysis_workers(self):
        """0: analyse in the reactor thread; 1: in a worker process (default with 2+ cores)."""
        workers = self.settings["analysis_workers"]
        if workers is None:
            workers = 1 if (os.cpu_count() or 1) > 1 else 0
        return workers

    def _make_analyzer(self):
        from s2proxy import analysis
        settings = self.settings
        if self.analysis_workers() == 0:
            core = analysis.AnalysisCore(self.validator, self._checker_factory(),
                                         on_error=self._rule_failed)
            return analysis.InlineAnalyzer(core)
        config = {"schemas": self.validator.schema_dir, "strict": settings["strict"],
                  "checker_options": dict(settings["checker_options"])}
        return analysis.WorkerAnalyzer(
            self.reactor, config, max_pending=settings["analysis_queue_max"],
            on_busy=lambda: self.registry.pause_all("analysis"),
            on_idle=lambda: self.registry.resume_all("analysis"))

    @staticmethod
    def _rule_failed(rule, exc):
        _log.error("checker rule {rule} raised {exc!r}; the conversation goes on", rule=rule, exc=exc)

    def _checker_factory(self):
        try:
            from s2proxy.checker import Checker, CheckerConfig
        except ImportError:
            _log.warn("the stateful checker is not available; only format rules are checked")
            return None
        options = dict(self.settings["checker_options"])
        options["strict"] = self.settings["strict"]
        options.setdefault("on_error", self._rule_failed)
        config = CheckerConfig(**options)
        return lambda: Checker(config)

    def startService(self):
        if self.analyzer is not None:
            self.analyzer.start()
        return service.MultiService.startService(self)

    @defer.inlineCallbacks
    def stopService(self):
        # Close the devices first (1001), while the sinks still run, so their closes are recorded.
        self.registry.shutdown()
        waited = 0.0
        while self.registry.open_connections > 0 and waited < self.settings["shutdown_timeout"]:
            yield task.deferLater(self.reactor, 0.02, lambda: None)
            waited += 0.02
        try:
            if self.analyzer is not None:
                # Its last answers complete the events still waiting in the registry's outbox.
                yield self.analyzer.stop()
            yield service.MultiService.stopService(self)
        finally:
            self._stopped(None)

    def _stopped(self, result):
        from s2proxy.websocket import cancel_batched_timers
        cancel_batched_timers(self.device_factory)
        return result

    @property
    def port(self):
        """The listening port's number (useful with port 0)."""
        return self.listener.port.getHost().port if self.listener.port else None

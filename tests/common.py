"""Helpers for tests that run the daemon's service on loopback and talk to it as devices do."""

import json
import signal
import socket
import subprocess

from autobahn.twisted.websocket import WebSocketClientFactory, WebSocketClientProtocol, connectWS
from twisted.internet import defer, reactor, task

from s2proxy.service import S2Proxy


def start_proxy(testcase, **settings):
    """Start an S2Proxy on 127.0.0.1, port 0; stopped at the end of the test. Returns the service."""
    settings.setdefault("port", "tcp:0:interface=127.0.0.1")
    # Analysis in the reactor thread unless a test asks for the worker process (the daemon's
    # default on 2+ cores): results are then complete when the hub sees a message event.
    settings.setdefault("analysis_workers", 0)
    proxy = S2Proxy(settings, reactor)
    proxy.startService()
    testcase.addCleanup(proxy.stopService)
    return proxy


def device_url(proxy, role, rm_id, cem_id, host="127.0.0.1"):
    if role == "RM":
        return "ws://%s:%d/backend/rm/%s/cem/%s/ws" % (host, proxy.port, rm_id, cem_id)
    return "ws://%s:%d/backend/cem/%s/rm/%s/ws" % (host, proxy.port, cem_id, rm_id)


class RecordingClient(WebSocketClientProtocol):
    """A device: records every message and the close; ``opened`` and ``closed`` are Deferreds."""

    def onOpen(self):
        self.factory.opened.callback(self)

    def onMessage(self, payload, isBinary):
        self.factory.received.append((payload, isBinary))
        waiters, self.factory.waiters = self.factory.waiters, []
        for count, d in waiters:
            if len(self.factory.received) >= count:
                d.callback(self.factory.received)
            else:
                self.factory.waiters.append((count, d))

    def onClose(self, wasClean, code, reason):
        if not self.factory.opened.called:
            self.factory.opened.errback(ConnectionError("handshake failed: %s %s" % (code, reason)))
        self.factory.close_info = (wasClean, code, reason)
        if not self.factory.closed.called:
            self.factory.closed.callback((code, reason))


class Device:
    """A connected test device and what it received."""

    def __init__(self, factory):
        self.factory = factory
        self.protocol = None

    @property
    def received(self):
        return self.factory.received

    def texts(self):
        return [p.decode("utf-8") for p, b in self.factory.received]

    def send(self, message, binary=False):
        if isinstance(message, dict):
            message = json.dumps(message)
        if isinstance(message, str):
            message = message.encode("utf-8")
        self.protocol.sendMessage(message, binary)

    def wait_for(self, count, timeout=10):
        """Fire once ``count`` messages have arrived in total."""
        if len(self.factory.received) >= count:
            return defer.succeed(self.factory.received)
        d = defer.Deferred()
        self.factory.waiters.append((count, d))
        return with_timeout(d, timeout)

    def close(self, code=1000, reason="bye"):
        if self.protocol is not None and not self.factory.closed.called:
            self.protocol.sendClose(code, reason)
        return with_timeout(self.factory.closed, 10)

    @property
    def closed(self):
        return with_timeout(self.factory.closed, 10)


def with_timeout(d, seconds):
    return d.addTimeout(seconds, reactor) if not d.called else d


@defer.inlineCallbacks
def connect_device(testcase, url, headers=None, protocol=RecordingClient, configure=None):
    """Open a device connection; fails the test if the handshake fails. Closed at test end.

    ``configure(factory)`` may set more Autobahn options before connecting.
    """
    factory = WebSocketClientFactory(url, headers=headers or {})
    factory.protocol = protocol
    # A loaded CI machine may take more than Autobahn's default 1 s to answer a close; the client
    # would then drop the TCP connection and the proxy would record a close without a code.
    factory.setProtocolOptions(autoPingInterval=0, closeHandshakeTimeout=10)
    if configure is not None:
        configure(factory)
    factory.opened = defer.Deferred()
    factory.closed = defer.Deferred()
    factory.received = []
    factory.waiters = []
    factory.close_info = None
    device = Device(factory)
    connector = connectWS(factory)
    testcase.addCleanup(_disconnect, device, connector)
    device.protocol = yield with_timeout(factory.opened, 10)
    return device


def _disconnect(device, connector):
    from s2proxy.websocket import cancel_batched_timers
    if device.factory.closed.called:
        cancel_batched_timers(device.factory)
        return None
    if device.protocol is not None:
        device.protocol.dropConnection(abort=True)
    else:
        connector.disconnect()
    d = device.factory.closed.addErrback(lambda f: None)
    d.addBoth(lambda _: cancel_batched_timers(device.factory))
    return d


def settle(seconds=0.05):
    """Let the reactor run a little (for events that have no Deferred to wait on)."""
    return task.deferLater(reactor, seconds, lambda: None)


@defer.inlineCallbacks
def eventually(predicate, timeout=10.0, step=0.02):
    """Wait until ``predicate()`` is true, polling the reactor; fails after ``timeout`` seconds."""
    waited = 0.0
    while not predicate():
        if waited >= timeout:
            raise AssertionError("condition not reached within %.1f s" % timeout)
        yield task.deferLater(reactor, step, lambda: None)
        waited += step


def free_port():
    """A port on 127.0.0.1 with nothing listening (it was just closed), for a child process."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def stop_process(process, timeout=20):
    """SIGTERM a daemon subprocess (twistd stops cleanly on it); kill it if it does not stop."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

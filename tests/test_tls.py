"""TLS on both sides, with throwaway certificates made at test time (tests/certs.py).

Inbound: the proxy listens on ``ssl:`` with a TLS 1.3 floor and optional mutual TLS; a test client
dials it. Outbound: connectors dial a TLS peer and must verify its chain and host name, honour a
pin, present a client certificate, and refuse what they should.
"""

import sys

from autobahn.twisted.websocket import WebSocketClientFactory, WebSocketClientProtocol
from twisted.internet import defer, endpoints, reactor, ssl
from twisted.logger import globalLogPublisher
from twisted.trial import unittest

from s2proxy import tls
from s2proxy.connectors import ConnectorError
from s2proxy.service import S2Proxy
from tests.certs import escape_endpoint, make_pki
from tests.common import eventually, start_proxy
from tests.test_connectors import Peer, started_proxy


def _private(pem_path):
    with open(pem_path, "rb") as f:
        return ssl.PrivateCertificate.loadPEM(f.read())


def _certificate(path):
    with open(path, "rb") as f:
        return ssl.Certificate.loadPEM(f.read())


def peer_tls(cert_pem, max_version=None, client_ca=None):
    """Server-side TLS options for a listening test peer."""
    private = _private(cert_pem)
    options = dict(privateKey=private.privateKey.original, certificate=private.original)
    if max_version is not None:
        options["lowerMaximumSecurityTo"] = max_version
    if client_ca is not None:
        options.update(verify=True, requireCertificate=True,
                       caCerts=[_certificate(client_ca).original])
    return ssl.CertificateOptions(**options)


class _Client(WebSocketClientProtocol):
    def onOpen(self):
        self.factory.result.callback(("open", self))

    def onMessage(self, payload, isBinary):
        self.factory.received.append(payload.decode("utf-8"))

    def onClose(self, wasClean, code, reason):
        if not self.factory.result.called:
            self.factory.result.callback(("failed", reason))


@defer.inlineCallbacks
def dial(testcase, url, port, creator, headers=None):
    """A device dialling the proxy over TLS: ("open", protocol) or ("failed", reason)."""
    factory = WebSocketClientFactory(url, headers=headers or {})
    factory.protocol = _Client
    factory.setProtocolOptions(autoPingInterval=0, openHandshakeTimeout=5)
    factory.result = defer.Deferred()
    factory.received = []
    endpoint = endpoints.wrapClientTLS(
        creator, endpoints.TCP4ClientEndpoint(reactor, "127.0.0.1", port))
    try:
        yield endpoint.connect(factory)
    except Exception as e:
        return ("failed", str(e))
    outcome = yield factory.result
    if outcome[0] == "open":
        proto = outcome[1]
        closed = defer.Deferred()
        proto.is_closed.addBoth(lambda r: closed.callback(None))

        def close():
            if proto.state != proto.STATE_CLOSED:
                proto.dropConnection(abort=True)
            return closed
        testcase.addCleanup(close)
    return outcome


def client_options(pki, client_pem=None, max_version=None):
    extra = {}
    if max_version is not None:
        extra["lowerMaximumSecurityTo"] = max_version
    return ssl.optionsForClientTLS(
        "127.0.0.1", trustRoot=_certificate(pki.ca_cert),
        clientCertificate=_private(client_pem) if client_pem else None,
        extraCertificateOptions=extra)


class _LogCapture:
    def __init__(self, testcase):
        self.events = []
        globalLogPublisher.addObserver(self.events.append)
        testcase.addCleanup(globalLogPublisher.removeObserver, self.events.append)

    def texts(self, namespace="s2proxy"):
        from twisted.logger import formatEvent
        return [formatEvent(e) for e in self.events
                if str(e.get("log_namespace", "")).startswith(namespace)]


class InboundTLSTests(unittest.TestCase):

    def setUp(self):
        self.pki = make_pki(self.mktemp())

    def start(self, **settings):
        port = "ssl:0:interface=127.0.0.1:privateKey=%s:certKey=%s" % (
            escape_endpoint(self.pki.server_key), escape_endpoint(self.pki.server_cert))
        proxy = started_proxy(self, port=port, **settings)
        return proxy

    @defer.inlineCallbacks
    def test_key_and_certificate_in_one_file(self):
        port = "ssl:0:interface=127.0.0.1:privateKey=%s" % escape_endpoint(self.pki.server_pem)
        proxy = started_proxy(self, port=port)
        outcome = yield dial(self, self.url(proxy), proxy.port, client_options(self.pki))
        self.assertEqual(outcome[0], "open", outcome)

    def url(self, proxy, role="RM"):
        if role == "RM":
            return "wss://127.0.0.1:%d/backend/rm/rm1/cem/cem1/ws" % proxy.port
        return "wss://127.0.0.1:%d/backend/cem/cem1/rm/rm1/ws" % proxy.port

    @defer.inlineCallbacks
    def test_tls_accepted_and_recorded(self):
        proxy = self.start()
        outcome = yield dial(self, self.url(proxy), proxy.port, client_options(self.pki))
        self.assertEqual(outcome[0], "open", outcome)
        opened = [e for e in proxy.test_events if e["event"] == "opened"]
        self.assertEqual(opened[0]["tls"], True)
        self.assertEqual(outcome[1].transport.getHandle().get_protocol_version_name(), "TLSv1.3")

    @defer.inlineCallbacks
    def test_tls12_refused_by_default(self):
        proxy = self.start()
        outcome = yield dial(self, self.url(proxy), proxy.port,
                             client_options(self.pki, max_version=ssl.TLSVersion.TLSv1_2))
        self.assertEqual(outcome[0], "failed")
        self.assertEqual([e for e in proxy.test_events if e["event"] == "opened"], [])

    @defer.inlineCallbacks
    def test_tls12_accepted_when_lowered_with_a_warning(self):
        log = _LogCapture(self)
        proxy = self.start(tls_min_version="1.2")
        self.assertTrue(any("TLS 1.2" in t for t in log.texts()), log.texts())
        outcome = yield dial(self, self.url(proxy), proxy.port,
                             client_options(self.pki, max_version=ssl.TLSVersion.TLSv1_2))
        self.assertEqual(outcome[0], "open", outcome)
        self.assertEqual(outcome[1].transport.getHandle().get_protocol_version_name(), "TLSv1.2")

    @defer.inlineCallbacks
    def test_mutual_tls_accepted(self):
        proxy = self.start(tls_client_ca=self.pki.ca_cert)
        outcome = yield dial(self, self.url(proxy), proxy.port,
                             client_options(self.pki, client_pem=self.pki.client_pem))
        self.assertEqual(outcome[0], "open", outcome)

    @defer.inlineCallbacks
    def test_mutual_tls_refused_without_client_certificate(self):
        proxy = self.start(tls_client_ca=self.pki.ca_cert)
        outcome = yield dial(self, self.url(proxy), proxy.port, client_options(self.pki))
        self.assertEqual(outcome[0], "failed")
        self.assertEqual([e for e in proxy.test_events if e["event"] == "opened"], [])

    @defer.inlineCallbacks
    def test_mutual_tls_refused_for_another_ca(self):
        proxy = self.start(tls_client_ca=self.pki.ca_cert)
        outcome = yield dial(self, self.url(proxy), proxy.port,
                             client_options(self.pki, client_pem=self.pki.other_client_pem))
        self.assertEqual(outcome[0], "failed")
        self.assertEqual([e for e in proxy.test_events if e["event"] == "opened"], [])

    def test_client_ca_needs_an_ssl_port(self):
        self.assertRaises(tls.TLSConfigError, S2Proxy,
                          {"port": "tcp:0:interface=127.0.0.1", "tls_client_ca": self.pki.ca_cert,
                           "validate": False, "store": False}, reactor)

    def test_bad_ssl_port_strings(self):
        for description in ("ssl:0:privateKey=/nonexistent.pem",
                            "ssl:0:privateKey=%s:sslmethod=TLSv1_METHOD" % self.pki.server_pem,
                            "ssl:0:privateKey=%s:bogus=1" % self.pki.server_pem,
                            "ssl:privateKey=%s" % self.pki.server_pem):
            self.assertRaises(tls.TLSConfigError, tls.server_endpoint, reactor, description)

    def test_bad_min_version(self):
        self.assertRaises(tls.TLSConfigError, tls.server_endpoint, reactor,
                          "ssl:0:privateKey=%s" % self.pki.server_pem, min_version="1.1")


class OutboundTLSTests(unittest.TestCase):

    def setUp(self):
        self.pki = make_pki(self.mktemp())

    @defer.inlineCallbacks
    def dial_peer(self, cert_pem, peer_options=None, **connector_options):
        peer = yield Peer(self, context_factory=peer_tls(cert_pem, **(peer_options or {}))).start()
        proxy = started_proxy(self)
        proxy.connectors.add("rm1", "cem1", cem_uri=peer.url(), **connector_options)

        def settled():
            row = proxy.connectors.describe()[0]
            return row["state"] == "connected" or row["last_error"] is not None
        yield eventually(settled)
        return peer, proxy, proxy.connectors.describe()[0]

    def assertRefused(self, row, peer, *words):
        self.assertNotEqual(row["state"], "connected")
        self.assertEqual(peer.connections, [])
        for word in words:
            self.assertIn(word, row["last_error"])

    @defer.inlineCallbacks
    def test_good_chain_accepted(self):
        peer, proxy, row = yield self.dial_peer(self.pki.server_pem, ca_file=self.pki.ca_cert)
        self.assertEqual(row["state"], "connected", row)
        self.assertEqual(row["verify"], "chain")
        yield eventually(lambda: peer.connections)
        opened = [e for e in proxy.test_events if e["event"] == "opened"]
        self.assertEqual((opened[0]["tls"], opened[0]["direction"]), (True, "outbound"))

    @defer.inlineCallbacks
    def test_wrong_host_name_refused(self):
        peer, proxy, row = yield self.dial_peer(self.pki.wrong_host_pem, ca_file=self.pki.ca_cert)
        self.assertRefused(row, peer, "TLS error", "host name")

    @defer.inlineCallbacks
    def test_expired_certificate_refused(self):
        peer, proxy, row = yield self.dial_peer(self.pki.expired_pem, ca_file=self.pki.ca_cert)
        self.assertRefused(row, peer, "TLS error", "certificate verify failed")

    @defer.inlineCallbacks
    def test_unpinned_self_signed_refused(self):
        peer, proxy, row = yield self.dial_peer(self.pki.self_signed_pem, ca_file=self.pki.ca_cert)
        self.assertRefused(row, peer, "TLS error")

    @defer.inlineCallbacks
    def test_unpinned_self_signed_refused_by_the_system_store(self):
        peer, proxy, row = yield self.dial_peer(self.pki.self_signed_pem)
        self.assertRefused(row, peer, "TLS error")

    @defer.inlineCallbacks
    def test_pinned_self_signed_accepted(self):
        pin = self.pki.fingerprints["self_signed"]
        colons = ":".join(pin[i:i + 2] for i in range(0, 64, 2)).upper()
        peer, proxy, row = yield self.dial_peer(self.pki.self_signed_pem, fingerprint=colons)
        self.assertEqual(row["state"], "connected", row)
        self.assertEqual(row["verify"], "pin")

    @defer.inlineCallbacks
    def test_pin_mismatch_refused(self):
        peer, proxy, row = yield self.dial_peer(
            self.pki.self_signed_pem, fingerprint=self.pki.fingerprints["server"])
        self.assertRefused(row, peer, "TLS error", "not the pinned",
                           self.pki.fingerprints["self_signed"])

    @defer.inlineCallbacks
    def test_pinned_but_expired_refused(self):
        peer, proxy, row = yield self.dial_peer(
            self.pki.expired_pem, fingerprint=self.pki.fingerprints["expired"])
        self.assertRefused(row, peer, "TLS error")

    @defer.inlineCallbacks
    def test_client_certificate_presented(self):
        peer, proxy, row = yield self.dial_peer(
            self.pki.server_pem, peer_options={"client_ca": self.pki.ca_cert},
            ca_file=self.pki.ca_cert, client_cert=self.pki.client_cert,
            client_key=self.pki.client_key)
        self.assertEqual(row["state"], "connected", row)

    @defer.inlineCallbacks
    def test_peer_requiring_a_client_certificate_refuses_none(self):
        peer, proxy, row = yield self.dial_peer(
            self.pki.server_pem, peer_options={"client_ca": self.pki.ca_cert},
            ca_file=self.pki.ca_cert)
        self.assertRefused(row, peer)

    @defer.inlineCallbacks
    def test_tls12_peer_refused_by_default(self):
        peer, proxy, row = yield self.dial_peer(
            self.pki.server_pem, peer_options={"max_version": ssl.TLSVersion.TLSv1_2},
            ca_file=self.pki.ca_cert)
        self.assertRefused(row, peer, "TLS error")

    @defer.inlineCallbacks
    def test_insecure_accepts_anything_and_warns_every_connection(self):
        log = _LogCapture(self)
        peer, proxy, row = yield self.dial_peer(self.pki.wrong_host_pem, insecure=True)
        self.assertEqual(row["state"], "connected", row)
        self.assertEqual(row["verify"], "none")
        warnings = [t for t in log.texts() if "NOT verified" in t]
        self.assertEqual(len(warnings), 1)
        # The next connection warns again.
        for conn in list(peer.connections):
            conn.dropConnection(abort=True)
        yield eventually(lambda: len([t for t in log.texts() if "NOT verified" in t]) == 2,
                         timeout=15)

    def test_bad_tls_files_name_the_field(self):
        proxy = start_proxy(self, validate=False, store=False)
        for field, options in (("ca_file", {"ca_file": "/nonexistent/ca.pem"}),
                               ("client_cert", {"client_cert": "/nonexistent/c.pem"}),
                               ("ca_file", {"ca_file": self.pki.server_key}),
                               ("fingerprint", {"fingerprint": "xyz"})):
            e = self.assertRaises(ConnectorError, proxy.connectors.add, "rm1", "cem1",
                                  cem_uri="wss://127.0.0.1:1/", **options)
            self.assertEqual(e.field, field)


class ServiceIdentityTests(unittest.TestCase):

    def test_startup_fails_without_service_identity(self):
        saved = {k: v for k, v in sys.modules.items() if k.startswith("service_identity")}
        for name in saved:
            sys.modules[name] = None
        try:
            self.assertRaises(tls.TLSConfigError, tls.require_service_identity)
            e = self.assertRaises(tls.TLSConfigError, S2Proxy,
                                  {"port": "tcp:0:interface=127.0.0.1", "validate": False, "store": False}, reactor)
            self.assertIn("service_identity", str(e))
        finally:
            sys.modules.update(saved)
        tls.require_service_identity()


class FingerprintTests(unittest.TestCase):
    def test_forms(self):
        hexpin = "ab" * 32
        for form in (hexpin, hexpin.upper(), ":".join(["AB"] * 32), "sha256:" + hexpin):
            self.assertEqual(tls.normalise_fingerprint(form), hexpin)
        for bad in ("ab" * 31, "zz" * 32, ""):
            self.assertRaises(tls.TLSConfigError, tls.normalise_fingerprint, bad)


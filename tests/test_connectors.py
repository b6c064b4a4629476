"""Outbound connectors against real listening peers on loopback (Autobahn servers playing RM/CEM).

The reconnect tests drive the connectors' backoff with a Clock (the network runs on the real
reactor), so the delays are checked exactly with the jitter set to zero.
"""

import json

import treq
from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from autobahn.websocket.compress import PerMessageDeflateOffer, PerMessageDeflateOfferAccept
from autobahn.websocket.types import ConnectionDeny
from twisted.internet import defer, endpoints, protocol, reactor
from twisted.internet.task import Clock
from twisted.trial import unittest

from s2proxy.connectors import ConnectorError, parse_connect_spec
from tests.common import connect_device, device_url, eventually, free_port, start_proxy

HELLO_RM = json.dumps({"message_type": "Handshake", "message_id": "m-1", "role": "RM",
                       "supported_protocol_versions": ["0.0.2-beta"]})
HELLO_CEM = json.dumps({"message_type": "Handshake", "message_id": "m-2", "role": "CEM",
                        "supported_protocol_versions": ["0.0.2-beta"]})


class PeerProtocol(WebSocketServerProtocol):
    """A listening RM or CEM: records requests, messages and closes; may refuse handshakes."""

    def onConnect(self, request):
        self.factory.requests.append(request)
        if self.factory.deny is not None:
            raise ConnectionDeny(*self.factory.deny)
        return None

    def onOpen(self):
        self.factory.connections.append(self)
        self.factory.extensions.append(list(self.websocket_extensions_in_use))
        self.factory.poke()

    def onMessage(self, payload, isBinary):
        self.factory.received.append(payload.decode("utf-8"))
        self.factory.poke()

    def onClose(self, wasClean, code, reason):
        if self in self.factory.connections:
            self.factory.connections.remove(self)
            self.factory.closes.append((code, reason))
        self.factory.poke()


def _accept_deflate(offers):
    for offer in offers:
        if isinstance(offer, PerMessageDeflateOffer):
            return PerMessageDeflateOfferAccept(offer)
    return None


class Peer:
    """A listening WebSocket peer on 127.0.0.1 (plain, or TLS with ``context_factory``)."""

    def __init__(self, testcase, context_factory=None, deny=None, port=0):
        self.testcase = testcase
        self.context_factory = context_factory
        self.factory = WebSocketServerFactory()
        self.factory.protocol = PeerProtocol
        self.factory.setProtocolOptions(autoPingInterval=0, perMessageCompressionAccept=_accept_deflate)
        self.factory.requests = []
        self.factory.connections = []
        self.factory.received = []
        self.factory.closes = []
        self.factory.extensions = []
        self.factory.deny = deny
        self.factory.poke = lambda: None
        self.port_number = port
        self.listening = None

    @defer.inlineCallbacks
    def start(self):
        if self.context_factory is None:
            endpoint = endpoints.TCP4ServerEndpoint(reactor, self.port_number, interface="127.0.0.1")
        else:
            endpoint = endpoints.SSL4ServerEndpoint(reactor, self.port_number, self.context_factory,
                                                    interface="127.0.0.1")
        self.listening = yield endpoint.listen(self.factory)
        self.port_number = self.listening.getHost().port
        self.testcase.addCleanup(self.stop)
        return self

    def url(self, path="/s2/ws", scheme=None):
        scheme = scheme or ("ws" if self.context_factory is None else "wss")
        return "%s://127.0.0.1:%d%s" % (scheme, self.port_number, path)

    @property
    def requests(self):
        return self.factory.requests

    @property
    def received(self):
        return self.factory.received

    @property
    def connections(self):
        return self.factory.connections

    def send(self, text):
        self.factory.connections[-1].sendMessage(text.encode("utf-8"), False)

    @defer.inlineCallbacks
    def stop(self):
        """Stop listening and drop every connection (the peer 'restarts' or goes away)."""
        if self.listening is not None:
            listening, self.listening = self.listening, None
            yield listening.stopListening()
        for conn in list(self.factory.connections):
            conn.dropConnection(abort=True)
        yield eventually(lambda: not self.factory.connections)




def started_proxy(testcase, **settings):
    settings.setdefault("backoff_jitter", lambda: 0.0)
    settings.setdefault("store", False)
    settings.setdefault("auto_ping_interval", 0)
    proxy = start_proxy(testcase, **settings)
    events = []
    proxy.hub.subscribe(events.append)
    proxy.test_events = events
    return proxy


def connector_events(proxy):
    return [e for e in proxy.test_events if e["event"] == "connector"]


class ConnectSpecTests(unittest.TestCase):
    def test_cem_spec(self):
        self.assertEqual(parse_connect_spec("cem:cem1:rm1:wss://host:8443/s2?x=1"),
                         {"role": "cem", "cem_id": "cem1", "rm_id": "rm1",
                          "url": "wss://host:8443/s2?x=1"})

    def test_rm_spec(self):
        self.assertEqual(parse_connect_spec("rm:rm1:cem1:ws://h:1/"),
                         {"role": "rm", "rm_id": "rm1", "cem_id": "cem1", "url": "ws://h:1/"})

    def test_bad_spec(self):
        for spec in ("cem:cem1:ws://h:1/", "x:a:b:ws://h/", "cem1:rm1"):
            self.assertRaises(ConnectorError, parse_connect_spec, spec)


class DialOutTests(unittest.TestCase):

    @defer.inlineCallbacks
    def test_dialled_cem_pairs_with_inbound_rm_both_ways(self):
        cem = yield Peer(self).start()
        proxy = started_proxy(self, connect=[{"role": "cem", "rm_id": "rm1", "cem_id": "cem1",
                                             "url": cem.url()}])
        yield eventually(lambda: cem.connections)
        rm = yield connect_device(self, device_url(proxy, "RM", "rm1", "cem1"))
        rm.send(HELLO_RM)
        yield eventually(lambda: cem.received)
        self.assertEqual(cem.received, [HELLO_RM])
        cem.send(HELLO_CEM)
        yield rm.wait_for(1)
        self.assertEqual(rm.texts(), [HELLO_CEM])
        opened = [e for e in proxy.test_events if e["event"] == "opened"]
        self.assertEqual(sorted((e["origin"], e["direction"]) for e in opened),
                         [("CEM", "outbound"), ("RM", "inbound")])
        self.assertEqual(len({e["session_id"] for e in opened}), 1)
        # The peer saw the path of its URL and an offer of permessage-deflate, which it took.
        self.assertEqual(cem.requests[0].path, "/s2/ws")
        self.assertEqual([type(x).__name__ for x in cem.factory.extensions[0]],
                         ["PerMessageDeflate"])
        [row] = proxy.connectors.describe()
        self.assertEqual((row["state"], row["role"], row["rm_id"], row["cem_id"], row["url"]),
                         ("connected", "CEM", "rm1", "cem1", cem.url()))
        self.assertEqual(row["session_id"], opened[0]["session_id"])
        self.assertEqual(row["last_error"], None)

    @defer.inlineCallbacks
    def test_dialled_rm_pairs_with_inbound_cem(self):
        rm_peer = yield Peer(self).start()
        proxy = started_proxy(self, connect=[parse_connect_spec(
            "rm:rm7:cem7:" + rm_peer.url())])
        yield eventually(lambda: rm_peer.connections)
        cem = yield connect_device(self, device_url(proxy, "CEM", "rm7", "cem7"))
        cem.send(HELLO_CEM)
        yield eventually(lambda: rm_peer.received)
        self.assertEqual(rm_peer.received, [HELLO_CEM])
        rm_peer.send(HELLO_RM)
        yield cem.wait_for(1)
        self.assertEqual(cem.texts(), [HELLO_RM])

    @defer.inlineCallbacks
    def test_both_sides_dialled(self):
        rm_peer = yield Peer(self).start()
        cem_peer = yield Peer(self).start()
        proxy = started_proxy(self)
        answer = proxy.connectors.add("rm2", "cem2", rm_uri=rm_peer.url(), cem_uri=cem_peer.url())
        self.assertEqual(answer["session_id"], answer["connection_id"])
        self.assertEqual(sorted(c["id"] for c in answer["connectors"]),
                         [answer["session_id"] + "-cem", answer["session_id"] + "-rm"])
        yield eventually(lambda: rm_peer.connections and cem_peer.connections)
        rm_peer.send(HELLO_RM)
        yield eventually(lambda: cem_peer.received)
        cem_peer.send(HELLO_CEM)
        yield eventually(lambda: rm_peer.received)
        self.assertEqual((rm_peer.received, cem_peer.received), ([HELLO_CEM], [HELLO_RM]))
        conv = proxy.registry.conversations[("rm2", "cem2")]
        self.assertEqual({r: s.direction for r, s in conv.sides.items()},
                         {"RM": "outbound", "CEM": "outbound"})

    @defer.inlineCallbacks
    def test_token_and_headers_are_sent(self):
        cem = yield Peer(self).start()
        proxy = started_proxy(self)
        proxy.connectors.add("rm1", "cem1", cem_uri=cem.url(), token="s3cret-token-0123456789",
                             headers={"X-S2-Test": "yes"})
        yield eventually(lambda: cem.connections)
        headers = cem.requests[0].headers
        self.assertEqual(headers["authorization"], "Bearer s3cret-token-0123456789")
        self.assertEqual(headers["x-s2-test"], "yes")
        # The token is never shown in the list or the events.
        self.assertNotIn("s3cret", json.dumps(proxy.connectors.describe()))
        self.assertNotIn("s3cret", json.dumps(connector_events(proxy), default=str))

    @defer.inlineCallbacks
    def test_remove_closes_and_stops(self):
        cem = yield Peer(self).start()
        proxy = started_proxy(self)
        answer = proxy.connectors.add("rm1", "cem1", cem_uri=cem.url())
        yield eventually(lambda: cem.connections)
        self.assertTrue(proxy.connectors.remove(answer["session_id"]))
        yield proxy.connectors.wait_stopped()
        yield eventually(lambda: not cem.connections)
        self.assertEqual(cem.factory.closes[0], (1000, "connector stopped"))
        self.assertEqual(proxy.connectors.describe(), [])
        self.assertFalse(proxy.connectors.remove(answer["session_id"]))
        self.assertEqual(connector_events(proxy)[-1]["state"], "stopped")
        # Removed means removed: no reconnection.
        yield eventually(lambda: ("rm1", "cem1") not in proxy.registry.conversations)
        self.assertEqual(len(cem.requests), 1)

    @defer.inlineCallbacks
    def test_remove_one_connector_of_a_pair(self):
        rm_peer = yield Peer(self).start()
        cem_peer = yield Peer(self).start()
        proxy = started_proxy(self)
        answer = proxy.connectors.add("rm2", "cem2", rm_uri=rm_peer.url(), cem_uri=cem_peer.url())
        yield eventually(lambda: rm_peer.connections and cem_peer.connections)
        self.assertTrue(proxy.connectors.remove(answer["session_id"] + "-rm"))
        yield proxy.connectors.wait_stopped()
        self.assertEqual([c["role"] for c in proxy.connectors.describe()], ["CEM"])
        yield eventually(lambda: not rm_peer.connections)
        self.assertEqual(len(cem_peer.connections), 1)


class ConnectorErrorTests(unittest.TestCase):

    def setUp(self):
        self.proxy = started_proxy(self)

    def assertField(self, field, **kwargs):
        e = self.assertRaises(ConnectorError, self.proxy.connectors.add, **kwargs)
        self.assertEqual(e.field, field)
        self.assertIsInstance(e, ValueError)
        self.assertEqual(self.proxy.connectors.describe(), [])
        return e

    def test_no_uri(self):
        self.assertField("rm_uri", rm_id="rm1", cem_id="cem1")

    def test_bad_uri_scheme(self):
        e = self.assertField("cem_uri", rm_id="rm1", cem_id="cem1", cem_uri="http://127.0.0.1:1/")
        self.assertIn("http", str(e))

    def test_bad_uri_garbage(self):
        self.assertField("rm_uri", rm_id="rm1", cem_id="cem1", rm_uri="not a url")

    def test_credentials_in_uri(self):
        self.assertField("rm_uri", rm_id="rm1", cem_id="cem1", rm_uri="ws://u:p@127.0.0.1:1/")

    def test_bad_ids(self):
        self.assertField("rm_id", rm_id="bad id", cem_id="cem1", cem_uri="ws://127.0.0.1:1/")
        self.assertField("cem_id", rm_id="rm1", cem_id="", cem_uri="ws://127.0.0.1:1/")
        self.assertField("cem_id", rm_id="rm1", cem_id=None, cem_uri="ws://127.0.0.1:1/")

    def test_tls_option_on_plain_url(self):
        self.assertField("fingerprint", rm_id="rm1", cem_id="cem1", cem_uri="ws://127.0.0.1:1/",
                         fingerprint="00" * 32)

    def test_bad_fingerprint(self):
        self.assertField("fingerprint", rm_id="rm1", cem_id="cem1", cem_uri="wss://127.0.0.1:1/",
                         fingerprint="abc")

    def test_second_connector_for_the_same_side(self):
        self.proxy.connectors.add("rm1", "cem1", cem_uri="ws://127.0.0.1:%d/" % free_port())
        e = self.assertRaises(ConnectorError, self.proxy.connectors.add, "rm1", "cem1",
                              cem_uri="ws://127.0.0.1:%d/" % free_port())
        self.assertEqual(e.field, "cem_uri")
        self.assertEqual(len(self.proxy.connectors.describe()), 1)

    @defer.inlineCallbacks
    def test_refused_connection_is_a_failed_attempt(self):
        url = "ws://127.0.0.1:%d/s2" % free_port()
        answer = self.proxy.connectors.add("rm1", "cem1", cem_uri=url)
        self.assertIn(answer["connectors"][0]["state"], ("connecting", "waiting"))
        yield eventually(lambda: self.proxy.connectors.describe()[0]["state"] == "waiting")
        [row] = self.proxy.connectors.describe()
        self.assertIn("refused", row["last_error"].lower())
        self.assertEqual(row["attempts"], 1)
        self.assertEqual(row["retry_in"], 1.0)
        self.assertIsNotNone(row["next_attempt"])
        waiting = [e for e in connector_events(self.proxy) if e["state"] == "waiting"]
        self.assertEqual(waiting[0]["connector_id"], row["id"])
        self.assertIn("refused", waiting[0]["last_error"].lower())
        self.assertEqual(waiting[0]["next_attempt"], row["next_attempt"])


class BackoffTests(unittest.TestCase):

    @defer.inlineCallbacks
    def test_reconnects_with_backoff_after_peer_restart(self):
        clock = Clock()
        cem = yield Peer(self).start()
        port = cem.port_number
        proxy = started_proxy(self, connectors_clock=clock)
        proxy.connectors.add("rm1", "cem1", cem_uri=cem.url())
        yield eventually(lambda: cem.connections)

        def row():
            return proxy.connectors.describe()[0]
        self.assertEqual(row()["state"], "connected")
        # The peer goes away: the connector waits 1 s (initial delay), then fails to reconnect.
        yield cem.stop()
        yield eventually(lambda: row()["state"] == "waiting")
        self.assertEqual(row()["retry_in"], 1.0)
        self.assertIn("closed", row()["last_error"])
        clock.advance(1.0)
        yield eventually(lambda: row()["state"] == "waiting" and row()["attempts"] == 2)
        self.assertIn("refused", row()["last_error"].lower())
        self.assertEqual(row()["retry_in"], 1.5)
        clock.advance(1.5)
        yield eventually(lambda: row()["state"] == "waiting" and row()["attempts"] == 3)
        self.assertEqual(row()["retry_in"], 2.25)
        # Not before its time: nothing happens until the delay has passed.
        clock.advance(2.0)
        self.assertEqual(row()["attempts"], 3)
        # The peer is back on the same port: the next attempt connects and the backoff resets.
        restarted = yield Peer(self, port=port).start()
        clock.advance(0.25)
        yield eventually(lambda: row()["state"] == "connected")
        yield eventually(lambda: restarted.connections)
        self.assertEqual(row()["attempts"], 4)
        self.assertEqual(row()["failures"], 0)
        self.assertEqual(row()["last_error"], None)
        states = [e["state"] for e in connector_events(proxy)]
        self.assertEqual(states, ["connecting", "connected", "waiting", "connecting", "waiting",
                                  "connecting", "waiting", "connecting", "connected"])

    @defer.inlineCallbacks
    def test_backoff_is_capped(self):
        clock = Clock()
        proxy = started_proxy(self, connectors_clock=clock, backoff_max=3.0)
        proxy.connectors.add("rm1", "cem1", cem_uri="ws://127.0.0.1:%d/" % free_port())

        def row():
            return proxy.connectors.describe()[0]
        delays = []
        for attempt in range(1, 6):
            yield eventually(lambda: row()["state"] == "waiting" and row()["attempts"] == attempt)
            delays.append(row()["retry_in"])
            clock.advance(row()["retry_in"])
        self.assertEqual(delays, [1.0, 1.5, 2.25, 3.0, 3.0])

    @defer.inlineCallbacks
    def test_http_error_is_a_failed_attempt_with_backoff(self):
        clock = Clock()
        cem = yield Peer(self, deny=(401, "go away")).start()
        proxy = started_proxy(self, connectors_clock=clock)
        proxy.connectors.add("rm1", "cem1", cem_uri=cem.url())

        def row():
            return proxy.connectors.describe()[0]
        yield eventually(lambda: row()["state"] == "waiting")
        self.assertIn("401", row()["last_error"])
        self.assertEqual(row()["retry_in"], 1.0)
        clock.advance(1.0)
        yield eventually(lambda: row()["state"] == "waiting" and row()["attempts"] == 2)
        self.assertEqual(row()["retry_in"], 1.5)
        self.assertEqual(row()["failures"], 2)
        self.assertEqual(len(cem.requests), 2)
        self.assertNotIn(("rm1", "cem1"), proxy.registry.conversations)

    @defer.inlineCallbacks
    def test_handshake_timeout_is_a_failed_attempt(self):
        # A peer that accepts TCP and never answers the upgrade must not hang the connector.
        silent = protocol.Factory.forProtocol(protocol.Protocol)
        port = yield endpoints.TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(silent)
        self.addCleanup(port.stopListening)
        clock = Clock()
        proxy = started_proxy(self, connectors_clock=clock, open_handshake_timeout=0.2)
        proxy.connectors.add("rm1", "cem1", cem_uri="ws://127.0.0.1:%d/" % port.getHost().port)
        yield eventually(lambda: proxy.connectors.describe()[0]["state"] == "waiting")
        self.assertIn("timeout", proxy.connectors.describe()[0]["last_error"])


@defer.inlineCallbacks
def http_json(method, url, body=None):
    """One request on a fresh connection; returns (status, parsed JSON body)."""
    kwargs = {"persistent": False}
    if body is not None:
        kwargs["json"] = body
    response = yield treq.request(method, url, **kwargs)
    data = yield response.content()
    return response.code, json.loads(data.decode("utf-8")) if data else None


class ConnectionsAPITests(unittest.TestCase):
    """``POST``/``DELETE /backend/connections/`` as routed by the API (issue 4) to the connectors."""

    def api(self, proxy, tail=""):
        return "http://127.0.0.1:%d/backend/connections/%s" % (proxy.port, tail)

    @defer.inlineCallbacks
    def test_post_list_delete(self):
        cem = yield Peer(self).start()
        proxy = started_proxy(self)
        code, answer = yield http_json("POST", self.api(proxy),
                                       {"rm_id": "rm1", "cem_id": "cem1", "cem_uri": cem.url()})
        self.assertEqual(code, 200, answer)
        connection = answer["session_id"]
        self.assertEqual(proxy.connectors.describe()[0]["connection_id"], connection)
        yield eventually(lambda: cem.connections)
        code, listing = yield http_json("GET", self.api(proxy))
        self.assertEqual(code, 200)
        [item] = [i for i in listing if i["kind"] == "connector"]
        self.assertEqual((item["connector"]["state"], item["connector"]["url"],
                          item["connector"]["connection_id"]), ("connected", cem.url(), connection))
        self.assertEqual(item["session_id"],
                         proxy.registry.conversations[("rm1", "cem1")].session_id)
        code, answer = yield http_json("DELETE", self.api(proxy, connection))
        self.assertEqual((code, answer), (200, {"removed": connection}))
        yield proxy.connectors.wait_stopped()
        yield eventually(lambda: not cem.connections)
        code, listing = yield http_json("GET", self.api(proxy))
        self.assertEqual([i for i in listing if i["kind"] == "connector"], [])
        code, answer = yield http_json("DELETE", self.api(proxy, connection))
        self.assertEqual(code, 404)

    @defer.inlineCallbacks
    def test_post_errors(self):
        proxy = started_proxy(self)
        for body, word in (({"rm_id": "rm1", "cem_id": "cem1"}, "rm_uri"),
                           ({"rm_id": "rm1", "cem_id": "cem1", "cem_uri": "http://x/"}, "cem_uri"),
                           ({"rm_id": "rm 1", "cem_id": "cem1", "cem_uri": "ws://x/"}, "rm_id"),
                           ({"cem_id": "cem1", "rm_uri": "ws://x/"}, "rm_id")):
            code, answer = yield http_json("POST", self.api(proxy), body)
            self.assertEqual(code, 400, (body, answer))
            self.assertIn(word, answer["error"])
        self.assertEqual(proxy.connectors.describe(), [])

    @defer.inlineCallbacks
    def test_post_refused_peer_shows_as_waiting(self):
        proxy = started_proxy(self)
        url = "ws://127.0.0.1:%d/s2" % free_port()
        code, answer = yield http_json("POST", self.api(proxy),
                                       {"rm_id": "rm1", "cem_id": "cem1", "rm_uri": url})
        self.assertEqual(code, 200)

        @defer.inlineCallbacks
        def listed():
            code, listing = yield http_json("GET", self.api(proxy))
            return [i["connector"] for i in listing if i["kind"] == "connector"]
        yield eventually(lambda: proxy.connectors.describe()[0]["state"] == "waiting")
        [row] = yield listed()
        self.assertEqual((row["state"], row["role"], row["url"]), ("waiting", "RM", url))
        self.assertIn("refused", row["last_error"].lower())
        self.assertIsNotNone(row["next_attempt"])

    @defer.inlineCallbacks
    def test_post_needs_the_api_guard(self):
        proxy = started_proxy(self, api_allow="192.0.2.0/24")
        code, answer = yield http_json("POST", self.api(proxy),
                                       {"rm_id": "rm1", "cem_id": "cem1", "cem_uri": "ws://x/"})
        self.assertEqual(code, 403)
        self.assertEqual(proxy.connectors.describe(), [])


class OptionsTests(unittest.TestCase):
    """The twistd flags of issue 5 become connector entries and settings."""

    def parse(self, *argv):
        from s2proxy.tap import Options, settings_from_options
        options = Options()
        options.parseOptions(list(argv) + ["--no-store"])
        return settings_from_options(options)

    def test_connect_flags_and_file(self):
        import os
        folder = os.path.abspath(self.mktemp())
        os.makedirs(folder)
        with open(os.path.join(folder, "cem.token"), "w") as f:
            f.write("file-token-0123456789\n")
        path = os.path.join(folder, "connectors.json")
        with open(path, "w") as f:
            json.dump({"connectors": [{"role": "cem", "rm_id": "rm3", "cem_id": "cem3",
                                       "url": "wss://127.0.0.1:9/s2", "fingerprint": "ab" * 32,
                                       "token_file": "cem.token"}]}, f)
        settings = self.parse("--connect", "cem:cem1:rm1:ws://127.0.0.1:9/a",
                              "--connect", "rm:rm2:cem2:ws://127.0.0.1:9/b",
                              "--connectors-file", path, "--backoff-initial", "2",
                              "--backoff-max", "30", "--tls-min-version", "1.2")
        self.assertEqual([(e["role"], e["rm_id"], e["cem_id"]) for e in settings["connect"]],
                         [("cem", "rm1", "cem1"), ("rm", "rm2", "cem2"), ("cem", "rm3", "cem3")])
        self.assertEqual(settings["connect"][2]["token_file"], os.path.join(folder, "cem.token"))
        self.assertEqual((settings["backoff_initial"], settings["backoff_max"],
                          settings["tls_min_version"]), (2.0, 30.0, "1.2"))

    def test_bad_flags_name_the_flag(self):
        from twisted.python import usage
        for argv, flag in ((["--connect", "cem:cem1:ws://x"], "--connect"),
                           (["--connect", "cem:cem1:rm1:http://x/"], "--connect"),
                           (["--connectors-file", "/nonexistent.json"], "--connectors-file"),
                           (["--tls-min-version", "1.1"], "--tls-min-version"),
                           (["--tls-client-ca", "/etc/hostname"], "--tls-client-ca"),
                           (["--device-tokens", "/nonexistent.json"], "--device-tokens"),
                           (["--backoff-initial", "9", "--backoff-max", "3"], "--backoff-max")):
            e = self.assertRaises(usage.UsageError, self.parse, *argv)
            self.assertIn(flag, str(e))

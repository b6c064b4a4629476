"""The HTTP API end to end: a real proxy on loopback, real devices, a real HTTP client (Agent)."""

import json
import os
from io import BytesIO
from urllib.parse import quote

from twisted.internet import defer, reactor
from twisted.trial import unittest
from twisted.web.client import Agent, FileBodyProducer, HTTPConnectionPool, readBody
from twisted.web.http_headers import Headers

from tests.common import connect_device, device_url, eventually, start_proxy

HANDSHAKE_RM = {"message_type": "Handshake", "message_id": "b0000000-0000-4000-8000-000000000001",
                "role": "RM", "supported_protocol_versions": ["0.0.2-beta"]}
STATUS_CEM = {"message_type": "ReceptionStatus",
              "subject_message_id": "b0000000-0000-4000-8000-000000000001", "status": "OK"}
HANDSHAKE_CEM = {"message_type": "Handshake", "message_id": "c0000000-0000-4000-8000-000000000001",
                 "role": "CEM", "supported_protocol_versions": ["0.0.2-beta"]}
BAD_HANDSHAKE = {"message_type": "Handshake", "message_id": "b0000000-0000-4000-8000-000000000002",
                 "role": "RM", "supported_protocol_versions": "not a list"}


def history_proxy(testcase, **settings):
    """A proxy with its own data dir (each test its own history)."""
    if "data_dir" not in settings:
        settings["data_dir"] = os.path.abspath(testcase.mktemp())
        os.makedirs(settings["data_dir"])
    return start_proxy(testcase, **settings)


def base(proxy, host="127.0.0.1"):
    return "http://%s:%d" % (host, proxy.port)


@defer.inlineCallbacks
def http(method, url, body=None, headers=None, bind=None):
    """One request on a fresh connection; returns (code, headers, body bytes)."""
    pool = HTTPConnectionPool(reactor, persistent=False)
    agent = Agent(reactor, pool=pool, bindAddress=(bind, 0) if bind else None)
    h = Headers()
    for k, v in (headers or {}).items():
        h.addRawHeader(k, v)
    producer = None
    if body is not None:
        if not isinstance(body, bytes):
            body = json.dumps(body).encode("utf-8")
            h.addRawHeader("content-type", "application/json")
        producer = FileBodyProducer(BytesIO(body))
    response = yield agent.request(method.encode("ascii"), url.encode("utf-8"), h, producer)
    data = yield readBody(response)
    return response.code, response.headers, data


@defer.inlineCallbacks
def get_json(url, **kw):
    code, headers, data = yield http("GET", url, **kw)
    return code, json.loads(data.decode("utf-8")), headers


@defer.inlineCallbacks
def open_pair(testcase, proxy, rm_id="rm1", cem_id="cem1"):
    rm = yield connect_device(testcase, device_url(proxy, "RM", rm_id, cem_id))
    cem = yield connect_device(testcase, device_url(proxy, "CEM", rm_id, cem_id))
    return rm, cem


@defer.inlineCallbacks
def small_conversation(testcase, proxy, rm_id="rm1", cem_id="cem1"):
    """RM Handshake, CEM ReceptionStatus, CEM Handshake, an invalid RM Handshake; both close."""
    rm, cem = yield open_pair(testcase, proxy, rm_id, cem_id)
    rm.send(HANDSHAKE_RM)
    yield cem.wait_for(1)
    cem.send(STATUS_CEM)
    cem.send(HANDSHAKE_CEM)
    yield rm.wait_for(2)
    rm.send(BAD_HANDSHAKE)
    yield cem.wait_for(2)
    return rm, cem


def session_of(proxy, rm_id="rm1", cem_id="cem1"):
    conv = proxy.registry.conversations.get((rm_id, cem_id))
    return conv.session_id if conv else None


class HistoryFilterTests(unittest.TestCase):

    @defer.inlineCallbacks
    def setUp(self):
        self.proxy = history_proxy(self)
        rm, cem = yield small_conversation(self, self.proxy)
        self.session_id = session_of(self.proxy)
        yield rm.close()
        yield cem.close()
        yield eventually(lambda: not self.proxy.registry.conversations)
        yield self.proxy.store.flushed()
        self.url = base(self.proxy) + "/backend/history-filter/"

    @defer.inlineCallbacks
    def test_all_records_in_order(self):
        code, records, _ = yield get_json(self.url)
        self.assertEqual(code, 200)
        events = [r["event"] for r in records]
        self.assertEqual(events[:3], ["session_started", "opened", "opened"])
        self.assertEqual(events[-1], "session_ended")
        self.assertEqual(events.count("forwarded"), 4)
        self.assertEqual(events.count("closed"), 2)
        ids = [r["id"] for r in records]
        self.assertEqual(ids, sorted(ids))
        first = [r for r in records if r["event"] == "forwarded"][0]
        self.assertEqual(first["raw"], json.dumps(HANDSHAKE_RM))
        self.assertEqual(first["s2_msg"], HANDSHAKE_RM)
        self.assertEqual(first["s2_msg_type"], "Handshake")
        self.assertEqual(first["message_type"], "S2")
        self.assertEqual(first["origin"], "RM")
        self.assertEqual(first["session_id"], self.session_id)
        self.assertEqual((first["rm_id"], first["cem_id"]), ("rm1", "cem1"))
        self.assertRegex(first["timestamp"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
        self.assertEqual(first["validation_errors"], [])
        self.assertIs(first["valid"], True)
        opened = [r for r in records if r["event"] == "opened"][0]
        self.assertEqual(opened["message_type"], "CONNECTION_OPENED")
        self.assertRegex(opened["detail"]["peer"], r"^tcp4?:127\.0\.0\.1:\d+$")
        self.assertIs(opened["detail"]["tls"], False)
        closed = [r for r in records if r["event"] == "closed"][0]
        self.assertEqual(closed["detail"]["code"], 1000)
        self.assertEqual(closed["detail"]["closed_by"], "peer")

    @defer.inlineCallbacks
    def test_invalid_message_has_validation_errors(self):
        code, records, _ = yield get_json(self.url + "?valid=false")
        self.assertEqual(code, 200)
        self.assertEqual(len(records), 1)
        bad = records[0]
        self.assertEqual(bad["s2_msg"], BAD_HANDSHAKE)
        self.assertIs(bad["valid"], False)
        self.assertTrue(bad["validation_errors"])
        for error in bad["validation_errors"]:
            self.assertEqual(set(error) >= {"type", "loc", "msg"}, True)
            self.assertTrue(error["type"].startswith("R-00"))
        self.assertGreaterEqual(bad["errors"], 1)
        code, valid, _ = yield get_json(self.url + "?valid=true")
        self.assertEqual(len(valid), 3)

    @defer.inlineCallbacks
    def test_filters(self):
        cases = {
            "origin=CEM": lambda r: r["origin"] == "CEM",
            "s2_msg_type=ReceptionStatus": lambda r: r["s2_msg_type"] == "ReceptionStatus",
            "s2_msg_type=ReceptionStatus,Handshake": lambda r: r["s2_msg_type"] in ("ReceptionStatus", "Handshake"),
            "message_type=SESSION_STARTED": lambda r: r["event"] == "session_started",
            "message_type=S2": lambda r: r["event"] in ("forwarded", "kept", "refused"),
            "event=opened,closed": lambda r: r["event"] in ("opened", "closed"),
            "session_id=" + self.session_id: lambda r: r["session_id"] == self.session_id,
            "rm_id=rm1": lambda r: r["rm_id"] == "rm1",
            "cem_id=cem1": lambda r: r["cem_id"] == "cem1",
            "message_id=" + HANDSHAKE_CEM["message_id"]: lambda r: r["message_id"] == HANDSHAKE_CEM["message_id"],
        }
        code, everything, _ = yield get_json(self.url)
        for query, predicate in cases.items():
            code, records, _ = yield get_json(self.url + "?" + query)
            self.assertEqual(code, 200, query)
            expected = [r["id"] for r in everything if predicate(r)]
            self.assertTrue(expected, query)
            self.assertEqual([r["id"] for r in records], expected, query)
        for query in ("rm_id=nobody", "session_id=00000000-0000-0000-0000-000000000000",
                      "origin=RM&s2_msg_type=ReceptionStatus"):
            code, records, _ = yield get_json(self.url + "?" + query)
            self.assertEqual((code, records), (200, []), query)

    @defer.inlineCallbacks
    def test_rule_filter(self):
        code, bad, _ = yield get_json(self.url + "?valid=false")
        rule = bad[0]["validation_errors"][0]["type"]
        code, records, _ = yield get_json(self.url + "?rule=" + rule)
        self.assertEqual([r["id"] for r in records], [bad[0]["id"]])
        code, records, _ = yield get_json(self.url + "?rule=R-999")
        self.assertEqual(records, [])

    @defer.inlineCallbacks
    def test_time_filters(self):
        code, everything, _ = yield get_json(self.url)
        middle = everything[len(everything) // 2]
        t = middle["timestamp"]
        code, after, _ = yield get_json(self.url + "?start_date=" + quote(t))
        self.assertEqual(after[0]["id"], middle["id"])
        code, before, _ = yield get_json(self.url + "?end_date=" + quote(t))
        self.assertEqual(before[-1]["id"], middle["id"])
        # Naive ISO means UTC; epoch seconds work too.
        code, naive, _ = yield get_json(self.url + "?start_date=" + quote(t[:-1]))
        self.assertEqual(naive, after)
        code, future, _ = yield get_json(self.url + "?start_date=4102444800")
        self.assertEqual(future, [])

    @defer.inlineCallbacks
    def test_bad_parameters_are_400_naming_them(self):
        for query, name in (("limit=x", "limit"), ("limit=0", "limit"), ("valid=maybe", "valid"),
                            ("start_date=yesterday", "start_date"), ("origin=XX", "origin"),
                            ("message_type=NOPE", "message_type"), ("after_id=-3", "after_id"),
                            ("event=exploded", "event")):
            code, body, _ = yield get_json(self.url + "?" + query)
            self.assertEqual(code, 400, query)
            self.assertIn(name, body["error"])

    @defer.inlineCallbacks
    def test_paging_limit_offset_cursor(self):
        code, everything, _ = yield get_json(self.url)
        code, page, headers = yield get_json(self.url + "?limit=3")
        self.assertEqual(page, everything[:3])
        cursor = headers.getRawHeaders(b"x-next-after-id")[0].decode()
        self.assertEqual(int(cursor), everything[2]["id"])
        self.assertIn(b'rel="next"', headers.getRawHeaders(b"link")[0])
        code, page2, _ = yield get_json(self.url + "?limit=3&after_id=" + cursor)
        self.assertEqual(page2, everything[3:6])
        code, page3, _ = yield get_json(self.url + "?limit=3&offset=3")
        self.assertEqual(page3, everything[3:6])
        code, last, headers = yield get_json(self.url + "?limit=1000")
        self.assertIsNone(headers.getRawHeaders(b"x-next-after-id"))


class SessionTests(unittest.TestCase):

    @defer.inlineCallbacks
    def test_connections_sessions_transcript(self):
        proxy = history_proxy(self)
        rm, cem = yield small_conversation(self, proxy)
        live_id = session_of(proxy)
        code, items, _ = yield get_json(base(proxy) + "/backend/connections/")
        self.assertEqual(code, 200)
        self.assertEqual(len(items), 1)
        live = items[0]
        self.assertEqual((live["session_id"], live["state"], live["end_timestamp"]), (live_id, "open", None))
        self.assertEqual(live["connected"], {"RM": True, "CEM": True})
        self.assertEqual(live["counts"]["messages"], 4)
        self.assertGreaterEqual(live["counts"]["errors"], 1)
        code, one, _ = yield get_json(base(proxy) + "/backend/sessions/" + live_id)
        self.assertEqual((code, one["state"]), (200, "open"))
        self.assertIn("summary", one)
        yield rm.close()
        yield cem.close()
        yield eventually(lambda: not proxy.registry.conversations)
        # A second, later session of another pair comes first (newest first).
        rm2, cem2 = yield open_pair(self, proxy, "rm2", "cem2")
        code, items, _ = yield get_json(base(proxy) + "/backend/connections/")
        self.assertEqual([(i["rm_id"], i["state"]) for i in items], [("rm2", "open"), ("rm1", "closed")])
        closed = items[1]
        self.assertEqual(closed["session_id"], live_id)
        self.assertEqual(closed["end_reason"], "disconnected")
        self.assertEqual(closed["counts"]["messages"], 4)
        self.assertRegex(closed["end_timestamp"], r"Z$")
        code, items, _ = yield get_json(base(proxy) + "/backend/connections/?state=closed")
        self.assertEqual([i["session_id"] for i in items], [live_id])
        code, items, _ = yield get_json(base(proxy) + "/backend/connections/?rm_id=rm2")
        self.assertEqual([i["rm_id"] for i in items], ["rm2"])
        code, one, _ = yield get_json(base(proxy) + "/backend/sessions/" + live_id)
        self.assertEqual((one["state"], one["end_reason"]), ("closed", "disconnected"))
        code, one, _ = yield get_json(base(proxy) + "/backend/sessions/nope")
        self.assertEqual(code, 404)
        code, headers, data = yield http("GET", base(proxy) + "/backend/sessions/%s/transcript" % live_id)
        self.assertEqual(code, 200)
        self.assertEqual(headers.getRawHeaders(b"content-type"), [b"application/x-ndjson"])
        lines = [json.loads(line) for line in data.decode().splitlines()]
        self.assertEqual(lines[-1]["closed"], True)
        lines = lines[:-1]
        self.assertEqual([(l["sender"], json.loads(l["message"])) for l in lines],
                         [("RM", HANDSHAKE_RM), ("CEM", STATUS_CEM), ("CEM", HANDSHAKE_CEM),
                          ("RM", BAD_HANDSHAKE)])
        self.assertTrue(all(l["time"].endswith("Z") for l in lines))
        code, headers, data = yield http("GET", base(proxy) + "/backend/sessions/nope/transcript")
        self.assertEqual(code, 404)

    @defer.inlineCallbacks
    def test_kept_then_delivered_record_and_transcript_order(self):
        proxy = history_proxy(self)
        rm = yield connect_device(self, device_url(proxy, "RM", "rm1", "cem1"))
        rm.send(HANDSHAKE_RM)   # kept: no CEM yet
        yield eventually(lambda: proxy.registry.conversations[("rm1", "cem1")].kept_count("CEM") == 1)
        cem = yield connect_device(self, device_url(proxy, "CEM", "rm1", "cem1"))
        yield cem.wait_for(1)
        cem.send(STATUS_CEM)
        yield rm.wait_for(1)
        yield proxy.store.flushed()
        sid = session_of(proxy)
        code, records, _ = yield get_json(base(proxy) + "/backend/history-filter/?event=kept,delivered")
        kept, delivered = records
        self.assertEqual(kept["event"], "kept")
        self.assertIsNotNone(kept["delivered_at"])
        self.assertEqual(delivered["ref_seq"], kept["seq"])
        code, headers, data = yield http("GET", base(proxy) + "/backend/sessions/%s/transcript" % sid)
        senders = [json.loads(l).get("sender") for l in data.decode().splitlines()]
        self.assertEqual(senders, ["RM", "CEM"])

    @defer.inlineCallbacks
    def test_health(self):
        proxy = history_proxy(self)
        yield open_pair(self, proxy)
        code, body, _ = yield get_json(base(proxy) + "/backend/health")
        self.assertEqual(code, 200)
        self.assertEqual(body["status"], "healthy")
        self.assertEqual(body["open_connections"], 2)
        self.assertEqual(body["sessions"], 1)
        self.assertIn("store_queue", body)
        self.assertIs(body["store"]["enabled"], True)

    @defer.inlineCallbacks
    def test_no_store(self):
        proxy = start_proxy(self, store=False)
        self.assertIsNone(proxy.store)
        rm, cem = yield small_conversation(self, proxy)
        code, body, _ = yield get_json(base(proxy) + "/backend/history-filter/")
        self.assertEqual(code, 503)
        self.assertIn("--no-store", body["error"])
        code, items, _ = yield get_json(base(proxy) + "/backend/connections/")
        self.assertEqual([i["state"] for i in items], ["open"])
        code, body, _ = yield get_json(base(proxy) + "/backend/health")
        self.assertIs(body["store"]["enabled"], False)

    @defer.inlineCallbacks
    def test_unknown_paths_and_methods(self):
        proxy = history_proxy(self)
        code, body, _ = yield get_json(base(proxy) + "/backend/nothing-here")
        self.assertEqual(code, 404)
        code, headers, data = yield http("DELETE", base(proxy) + "/backend/history-filter/")
        self.assertEqual(code, 405)
        self.assertIn("error", json.loads(data))


class InjectValidateTests(unittest.TestCase):

    @defer.inlineCallbacks
    def test_validate_message(self):
        proxy = history_proxy(self)
        code, headers, data = yield http("POST", base(proxy) + "/backend/validate-message/",
                                         body={"message": HANDSHAKE_RM})
        body = json.loads(data)
        self.assertEqual((code, body["valid"], body["errors"], body["message"]), (200, True, [], HANDSHAKE_RM))
        code, headers, data = yield http("POST", base(proxy) + "/backend/validate-message/",
                                         body={"message": BAD_HANDSHAKE})
        body = json.loads(data)
        self.assertIs(body["valid"], False)
        self.assertTrue(body["errors"][0]["type"].startswith("R-"))
        self.assertTrue(body["errors"][0]["loc"].startswith("$"))
        for bad in (b"not json", b"[1]", json.dumps({"nomessage": 1}).encode()):
            code, headers, data = yield http("POST", base(proxy) + "/backend/validate-message/", body=bad)
            self.assertEqual(code, 400, bad)
            self.assertIn("error", json.loads(data))
        code, headers, data = yield http("POST", base(proxy) + "/backend/validate-message/",
                                         body=b"x" * (1024 * 1024 + 10))
        self.assertEqual(code, 413)

    @defer.inlineCallbacks
    def test_inject(self):
        proxy = history_proxy(self)
        rm, cem = yield open_pair(self, proxy)
        url = base(proxy) + "/backend/inject/"
        code, headers, data = yield http("POST", url, body={"origin_id": "cem1", "dest_id": "rm1",
                                                            "message": HANDSHAKE_CEM})
        self.assertEqual(code, 200, data)
        body = json.loads(data)
        self.assertEqual((body["origin"], body["s2_msg_type"], body["valid"]), ("CEM", "Handshake", True))
        received = yield rm.wait_for(1)
        self.assertEqual(json.loads(received[0][0]), HANDSHAKE_CEM)
        # Invalid: refused with the errors, unless validate=false.
        code, headers, data = yield http("POST", url, body={"origin_id": "rm1", "dest_id": "cem1",
                                                            "message": BAD_HANDSHAKE})
        self.assertEqual(code, 400)
        self.assertTrue(json.loads(data)["errors"])
        code, headers, data = yield http("POST", url + "?validate=false",
                                         body={"origin_id": "rm1", "dest_id": "cem1", "message": "raw text"})
        self.assertEqual(code, 200)
        received = yield cem.wait_for(1)
        self.assertEqual(received[0][0], b"raw text")
        self.assertEqual(len(cem.received), 1)
        # No live connection: 409.
        code, headers, data = yield http("POST", url, body={"origin_id": "rm9", "dest_id": "cem9",
                                                            "message": HANDSHAKE_RM})
        self.assertEqual(code, 409)
        code, headers, data = yield http("POST", url, body={"origin_id": "rm1"})
        self.assertEqual(code, 400)
        self.assertIn("dest_id", json.loads(data)["error"])
        yield proxy.store.flushed()
        code, records, _ = yield get_json(base(proxy) + "/backend/history-filter/?message_type=MSG_INJECTED")
        self.assertEqual([r["raw"] for r in records], [json.dumps(HANDSHAKE_CEM, separators=(",", ":")), "raw text"])
        self.assertEqual([r["origin"] for r in records], ["CEM", "RM"])


class GuardTests(unittest.TestCase):
    """Inject from outside the allowed networks: refused; with the token: accepted."""

    @defer.inlineCallbacks
    def test_inject_from_other_address(self):
        proxy = history_proxy(self, api_allow="127.0.0.1/32", api_token="s3cret-token")
        rm, cem = yield open_pair(self, proxy)
        url = base(proxy) + "/backend/inject/"
        body = {"origin_id": "cem1", "dest_id": "rm1", "message": HANDSHAKE_CEM}
        code, headers, data = yield http("POST", url, body=body, bind="127.0.0.2")
        self.assertEqual(code, 403)
        self.assertIn("--api-allow", json.loads(data)["error"])
        code, headers, data = yield http("POST", url, body=body, bind="127.0.0.2",
                                         headers={"Authorization": "Bearer wrong"})
        self.assertEqual(code, 403)
        self.assertEqual(rm.received, [])
        code, headers, data = yield http("POST", url, body=body, bind="127.0.0.2",
                                         headers={"Authorization": "Bearer s3cret-token"})
        self.assertEqual(code, 200, data)
        yield rm.wait_for(1)
        # The allowed address needs no token.
        code, headers, data = yield http("POST", url, body=body, bind="127.0.0.1")
        self.assertEqual(code, 200)
        # Reads stay open by default (as in s2-analyzer) ...
        code, headers, data = yield http("GET", base(proxy) + "/backend/history-filter/", bind="127.0.0.2")
        self.assertEqual(code, 200)
        # ... the token itself is never recorded.
        yield proxy.store.flushed()
        with open(proxy.store.path, "rb") as f:
            self.assertNotIn(b"s3cret-token", f.read())

    @defer.inlineCallbacks
    def test_guard_reads(self):
        proxy = history_proxy(self, api_allow="127.0.0.1/32", api_token="tok", api_guard_reads=True)
        for path in ("/backend/history-filter/", "/backend/connections/", "/backend/health", "/metrics"):
            code, headers, data = yield http("GET", base(proxy) + path, bind="127.0.0.2")
            self.assertEqual(code, 403, path)
            code, headers, data = yield http("GET", base(proxy) + path, bind="127.0.0.2",
                                             headers={"Authorization": "Bearer tok"})
            self.assertEqual(code, 200, path)

    @defer.inlineCallbacks
    def test_origin_check_on_changes(self):
        proxy = history_proxy(self, api_origins="https://dash.example.com")
        yield open_pair(self, proxy)
        url = base(proxy) + "/backend/inject/"
        body = {"origin_id": "cem1", "dest_id": "rm1", "message": HANDSHAKE_CEM}
        code, _, data = yield http("POST", url, body=body, headers={"Origin": "https://evil.example"})
        self.assertEqual(code, 403)
        self.assertIn("origin", json.loads(data)["error"])
        code, _, _ = yield http("POST", url, body=body, headers={"Origin": "https://dash.example.com"})
        self.assertEqual(code, 200)
        code, _, _ = yield http("POST", url, body=body,
                                headers={"Origin": "http://127.0.0.1:%d" % proxy.port})
        self.assertEqual(code, 200)


class FakeConnectors:
    def __init__(self):
        self.added = []
        self.items = {"c1": {"connector_id": "c1", "rm_id": "rm1", "cem_id": "cem1", "state": "waiting"}}

    def add(self, rm_id, cem_id, rm_uri=None, cem_uri=None):
        if not (rm_uri or cem_uri):
            raise ValueError("give rm_uri or cem_uri")
        self.added.append((rm_id, cem_id, rm_uri, cem_uri))
        return {"session_id": None, "connector_id": "c2"}

    def remove(self, connector_id):
        return self.items.pop(connector_id, None) is not None

    def describe(self):
        return list(self.items.values())


class ConnectorRoutingTests(unittest.TestCase):
    """The routing to app.connectors exists and is guarded (issue 5 tests the connectors)."""

    @defer.inlineCallbacks
    def test_routes(self):
        proxy = history_proxy(self, api_allow="127.0.0.1/32")
        saved = proxy.connectors
        self.addCleanup(setattr, proxy, "connectors", saved)
        proxy.connectors = None
        url = base(proxy) + "/backend/connections/"
        code, _, data = yield http("POST", url, body={"rm_id": "rm1", "cem_id": "cem1", "rm_uri": "ws://x"})
        self.assertEqual(code, 503)
        code, _, data = yield http("DELETE", url + "c1")
        self.assertEqual(code, 503)
        fake = proxy.connectors = FakeConnectors()
        code, items, _ = yield get_json(url)
        self.assertEqual(items, [{"kind": "connector", "session_id": None, "rm_id": "rm1", "cem_id": "cem1",
                                  "state": "connector", "start_timestamp": None, "end_timestamp": None,
                                  "connector": fake.items["c1"]}])
        code, _, data = yield http("POST", url, body={"rm_id": "rm1", "cem_id": "cem1"})
        self.assertEqual(code, 400)
        self.assertIn("rm_uri", json.loads(data)["error"])
        code, _, data = yield http("POST", url, body={"rm_id": "rm1", "cem_id": "cem1", "rm_uri": "ws://x"},
                                   bind="127.0.0.2")
        self.assertEqual(code, 403)
        code, _, data = yield http("POST", url, body={"rm_id": "rm1", "cem_id": "cem1", "rm_uri": "ws://x"})
        self.assertEqual((code, json.loads(data)), (200, {"session_id": None, "connector_id": "c2"}))
        self.assertEqual(fake.added, [("rm1", "cem1", "ws://x", None)])
        code, _, data = yield http("DELETE", url + "c1", bind="127.0.0.2")
        self.assertEqual(code, 403)
        code, _, data = yield http("DELETE", url + "c1")
        self.assertEqual((code, json.loads(data)), (200, {"removed": "c1"}))
        code, _, data = yield http("DELETE", url + "c1")
        self.assertEqual(code, 404)

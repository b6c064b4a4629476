"""Facts outside any session reach the history and the metrics: refused devices, connectors."""

import json
import os

from twisted.internet import defer
from twisted.trial import unittest

from s2proxy.auth import digest
from tests.common import connect_device, device_url, eventually, free_port, start_proxy
from tests.test_api import get_json, http

TOKEN = "rm-token-0123456789abcdef"


class OutsideSessionTests(unittest.TestCase):

    def setUp(self):
        tokens = os.path.abspath(self.mktemp())
        with open(tokens, "w") as f:
            json.dump({"tokens": [{"sha256": digest(TOKEN), "role": "RM", "ids": ["rm1"]}]}, f)
        data_dir = os.path.abspath(self.mktemp())
        os.makedirs(data_dir)
        self.proxy = start_proxy(self, device_tokens=tokens, data_dir=data_dir,
                                 backoff_jitter=lambda: 0.0)
        self.base = "http://127.0.0.1:%d" % self.proxy.port

    @defer.inlineCallbacks
    def test_refused_device_is_recorded_and_counted(self):
        d = connect_device(self, device_url(self.proxy, "RM", "rm1", "cem1"),
                           headers={"Authorization": "Bearer wrong-token"})
        yield self.assertFailure(d, ConnectionError)
        yield self.proxy.store.flushed()
        code, records, _ = yield get_json(self.base + "/backend/history-filter/?rm_id=rm1")
        self.assertEqual(code, 200)
        [record] = [r for r in records if r["event"] == "connection_refused"]
        self.assertEqual(record["message_type"], "CONNECTION_REFUSED")
        self.assertEqual(record["detail"]["status"], 401)
        self.assertEqual(record["origin"], "RM")
        self.assertTrue(record["reason"])
        self.assertNotIn("wrong-token", json.dumps(records))
        code, _, body = yield http("GET", self.base + "/metrics")
        self.assertIn(b's2proxy_connections_refused_total{role="RM",status="401"} 1.0', body)

    @defer.inlineCallbacks
    def test_connector_states_are_recorded_and_counted(self):
        url = "ws://127.0.0.1:%d/s2" % free_port()    # nothing listens there
        self.proxy.connectors.add("rm1", "cem1", cem_uri=url)
        yield eventually(lambda: any(c["state"] == "waiting" for c in self.proxy.connectors.describe()))
        yield self.proxy.store.flushed()
        code, records, _ = yield get_json(self.base + "/backend/history-filter/?cem_id=cem1")
        states = [r["detail"]["state"] for r in records if r["event"] == "connector"]
        self.assertIn("connecting", states)
        self.assertIn("waiting", states)
        waiting = [r for r in records if r["event"] == "connector"
                   and r["detail"]["state"] == "waiting"][0]
        self.assertEqual(waiting["message_type"], "CONNECTOR")
        self.assertTrue(waiting["detail"]["last_error"])
        self.assertEqual(waiting["detail"]["url"], url)
        code, _, body = yield http("GET", self.base + "/metrics")
        self.assertIn(b's2proxy_connectors{state="waiting"} 1.0', body)
        self.assertIn(b's2proxy_connector_state_changes_total{state="waiting"}', body)
        self.assertIn(b"s2proxy_analysis_pending 0.0", body)

"""The live feeds over real WebSockets: debugger (live and with history), session updates, slow viewers."""

import json

from twisted.internet import defer
from twisted.trial import unittest

from tests.common import connect_device, device_url, eventually
from tests.test_api import HANDSHAKE_RM, history_proxy, open_pair, session_of


def feed_url(proxy, path, query=""):
    return "ws://127.0.0.1:%d/backend/%s/%s" % (proxy.port, path, ("?" + query) if query else "")


def messages(viewer):
    return [json.loads(p) for p, b in viewer.received]


def measurement(i, pad=0):
    return json.dumps({"message_type": "PowerMeasurement", "message_id": "m-%06d" % i,
                       "measurement_timestamp": "2025-06-02T10:00:00Z",
                       "values": [{"commodity_quantity": "ELECTRIC.POWER.L1", "value": float(i)}],
                       "pad": "x" * pad})


class DebuggerTests(unittest.TestCase):

    @defer.inlineCallbacks
    def test_live_events_filtered_by_rm_id(self):
        proxy = history_proxy(self)
        viewer = yield connect_device(self, feed_url(proxy, "debugger", "rm_id=rm1"))
        rm, cem = yield open_pair(self, proxy, "rm1", "cem1")
        other_rm, other_cem = yield open_pair(self, proxy, "rm2", "cem2")
        rm.send(HANDSHAKE_RM)
        other_rm.send(HANDSHAKE_RM)
        yield cem.wait_for(1)
        yield other_cem.wait_for(1)
        yield eventually(lambda: any(m["event"] == "forwarded" for m in messages(viewer)))
        got = messages(viewer)
        self.assertEqual({m["rm_id"] for m in got}, {"rm1"})
        self.assertEqual([m["event"] for m in got], ["session_started", "opened", "opened", "forwarded"])
        fwd = got[-1]
        # s2-analyzer's debugger fields, plus s2proxy's.
        for key in ("cem_id", "rm_id", "origin", "s2_msg", "s2_msg_type", "timestamp", "validation_errors",
                    "findings", "event", "session_id", "raw"):
            self.assertIn(key, fwd)
        self.assertEqual(fwd["s2_msg"], HANDSHAKE_RM)
        self.assertEqual(fwd["raw"], json.dumps(HANDSHAKE_RM))
        self.assertEqual(fwd["session_id"], session_of(proxy))
        self.assertIsNone(fwd["id"])

    @defer.inlineCallbacks
    def test_session_history_then_live_without_gap_or_duplicate(self):
        proxy = history_proxy(self)
        rm, cem = yield open_pair(self, proxy)
        for i in range(1500):   # more than one history page
            rm.send(measurement(i))
        yield cem.wait_for(1500)
        sid = session_of(proxy)
        viewer = yield connect_device(self, feed_url(proxy, "debugger", "session_id=" + sid))
        for i in range(1500, 1600):
            rm.send(measurement(i))
        yield cem.wait_for(1600)
        yield eventually(lambda: len([m for m in messages(viewer) if m["event"] == "forwarded"]) >= 1600)
        got = messages(viewer)
        forwarded = [m for m in got if m["event"] == "forwarded"]
        self.assertEqual([m["s2_msg"]["message_id"] for m in forwarded], ["m-%06d" % i for i in range(1600)])
        seqs = [m["seq"] for m in got]
        self.assertEqual(len(seqs), len(set(seqs)))
        self.assertEqual(seqs, sorted(seqs))
        self.assertEqual(got[0]["event"], "session_started")
        self.assertIsNotNone(forwarded[0]["id"])      # from the history

    @defer.inlineCallbacks
    def test_without_history(self):
        proxy = history_proxy(self)
        rm, cem = yield open_pair(self, proxy)
        rm.send(measurement(0))
        yield cem.wait_for(1)
        viewer = yield connect_device(self, feed_url(proxy, "debugger", "session_id=%s&include_session_history=false"
                                                     % session_of(proxy)))
        rm.send(measurement(1))
        yield cem.wait_for(2)
        yield eventually(lambda: viewer.received)
        self.assertEqual([m["s2_msg"]["message_id"] for m in messages(viewer)], ["m-000001"])

    @defer.inlineCallbacks
    def test_origin_check(self):
        proxy = history_proxy(self)
        with self.assertRaises(ConnectionError):
            yield connect_device(self, feed_url(proxy, "debugger"), headers={"Origin": "https://evil.example"})
        viewer = yield connect_device(self, feed_url(proxy, "debugger"),
                                      headers={"Origin": "http://127.0.0.1:%d" % proxy.port})
        self.assertIsNotNone(viewer.protocol)

    @defer.inlineCallbacks
    def test_slow_viewer_is_dropped_devices_go_on(self):
        proxy = history_proxy(self, feed_max_buffer=256 * 1024)
        rm, cem = yield open_pair(self, proxy)
        viewer = yield connect_device(self, feed_url(proxy, "debugger"))
        other = yield connect_device(self, feed_url(proxy, "session-updates"))
        viewer.protocol.transport.pauseProducing()   # stops reading: its socket fills up
        count = 400
        for i in range(count):
            rm.send(measurement(i, pad=60000))
        received = yield cem.wait_for(count, timeout=60)
        self.assertEqual(len(received), count)
        yield eventually(lambda: proxy.feeds.dropped == 1)
        viewer.protocol.transport.resumeProducing()   # it can now see that it was dropped
        yield viewer.closed
        self.assertEqual(proxy.feeds.viewer_count(), 1)
        self.assertFalse(other.factory.closed.called)
        # The devices were never paused for the viewer.
        for side in proxy.registry.conversations[("rm1", "cem1")].sides.values():
            self.assertNotIn("feed", side.gate.holders)
        self.assertIn(b"s2proxy_feed_dropped_total 1.0", proxy.metrics.render())


class SessionUpdatesTests(unittest.TestCase):

    @defer.inlineCallbacks
    def test_open_and_closed(self):
        proxy = history_proxy(self)
        first_rm = yield connect_device(self, device_url(proxy, "RM", "rm0", "cem0"))
        viewer = yield connect_device(self, feed_url(proxy, "session-updates"))
        yield eventually(lambda: len(viewer.received) == 1)
        self.assertEqual([(m["rm_id"], m["state"]) for m in messages(viewer)], [("rm0", "open")])
        rm, cem = yield open_pair(self, proxy)
        sid = session_of(proxy)
        rm.send(HANDSHAKE_RM)
        yield cem.wait_for(1)
        yield rm.close()
        yield cem.close()
        yield eventually(lambda: any(m["state"] == "closed" for m in messages(viewer)))
        mine = [m for m in messages(viewer) if m["session_id"] == sid]
        for m in mine:
            for key in ("session_id", "cem_id", "rm_id", "start_timestamp", "end_timestamp", "state"):
                self.assertIn(key, m)
        self.assertEqual(mine[0]["state"], "open")
        last = mine[-1]
        self.assertEqual(last["state"], "closed")
        self.assertEqual(last["counts"]["messages"], 1)
        self.assertEqual(last["start_timestamp"], mine[0]["start_timestamp"])
        self.assertTrue(last["end_timestamp"].endswith("Z"))
        yield first_rm.close()

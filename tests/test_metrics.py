"""GET /metrics: Prometheus text from the event stream and the live state."""

from twisted.internet import defer
from twisted.trial import unittest

from tests.common import connect_device, device_url, eventually
from tests.test_api import BAD_HANDSHAKE, HANDSHAKE_RM, base, history_proxy, http, open_pair


def sample(text, name, **labels):
    """The value of one sample line, or None."""
    want = name + ("{" + ",".join('%s="%s"' % kv for kv in sorted(labels.items())) + "}" if labels else "")
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        key, _, value = line.rpartition(" ")
        if key == want:
            return float(value)
    return None


class MetricsTests(unittest.TestCase):

    @defer.inlineCallbacks
    def test_counters_and_gauges(self):
        proxy = history_proxy(self)
        rm, cem = yield open_pair(self, proxy)
        rm.send(HANDSHAKE_RM)
        rm.send(BAD_HANDSHAKE)
        rm.send('{"message_type": "NoSuchType", "message_id": "x"}')
        rm.send("not json")
        yield cem.wait_for(4)
        lonely = yield connect_device(self, device_url(proxy, "RM", "rm2", "cem2"))
        lonely.send(HANDSHAKE_RM)   # kept: the CEM is absent
        yield eventually(lambda: proxy.registry.conversations[("rm2", "cem2")].kept_count("CEM") == 1)
        yield proxy.store.flushed()
        code, headers, body = yield http("GET", base(proxy) + "/metrics")
        self.assertEqual(code, 200)
        self.assertTrue(headers.getRawHeaders(b"content-type")[0].startswith(b"text/plain"))
        text = body.decode("utf-8")
        self.assertEqual(sample(text, "s2proxy_messages_total", event="forwarded", origin="RM",
                                s2_msg_type="Handshake"), 2)
        self.assertEqual(sample(text, "s2proxy_messages_total", event="forwarded", origin="RM",
                                s2_msg_type="other"), 1)
        self.assertEqual(sample(text, "s2proxy_messages_total", event="forwarded", origin="RM",
                                s2_msg_type="none"), 1)
        self.assertNotIn("NoSuchType", text)
        self.assertGreater(sample(text, "s2proxy_message_bytes_total", origin="RM"), 100)
        self.assertGreaterEqual(sample(text, "s2proxy_findings_total", rule="R-004", severity="error") or
                                sample(text, "s2proxy_findings_total", rule="R-003", severity="error") or 0, 1)
        self.assertEqual(sample(text, "s2proxy_connections", role="RM"), 2)
        self.assertEqual(sample(text, "s2proxy_connections", role="CEM"), 1)
        self.assertEqual(sample(text, "s2proxy_sessions"), 2)
        self.assertEqual(sample(text, "s2proxy_sessions_started_total"), 2)
        self.assertEqual(sample(text, "s2proxy_kept_messages"), 1)
        self.assertEqual(sample(text, "s2proxy_kept_bytes"), len(__import__("json").dumps(HANDSHAKE_RM)))
        self.assertEqual(sample(text, "s2proxy_store_queue"), 0)
        self.assertEqual(sample(text, "s2proxy_store_paused"), 0)
        self.assertGreaterEqual(sample(text, "s2proxy_store_written_total"), 8)
        self.assertEqual(sample(text, "s2proxy_forward_latency_seconds_count"), 4)
        self.assertEqual(sample(text, "s2proxy_feed_viewers"), 0)

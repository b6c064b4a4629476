"""The daemon end to end on loopback: pairing, byte-exact forwarding, keeping, limits, backpressure."""

import json

from twisted.internet import defer, reactor, threads
from twisted.trial import unittest

from tests.common import connect_device, device_url, eventually, settle, start_proxy


class EventLog:
    """Subscribes to the proxy's hub and keeps every event."""

    def __init__(self, proxy):
        self.events = []
        proxy.hub.subscribe(self.events.append)

    def kinds(self, *kinds):
        return [e for e in self.events if e["event"] in kinds]


@defer.inlineCallbacks
def open_pair(testcase, proxy, rm_id="rm-1", cem_id="cem-1"):
    rm = yield connect_device(testcase, device_url(proxy, "RM", rm_id, cem_id))
    cem = yield connect_device(testcase, device_url(proxy, "CEM", rm_id, cem_id))
    return rm, cem


ODD_FRAMES = [
    '{"message_type":"Handshake","message_id":"a1","role":"RM"}',
    '{  "b" :1,\n\t"a":  [ 1 , 2 ]  }\r\n',
    '{"z": "ünïcødé ✓ 🔋", "a": "\\u00e9 escaped"}',
    '{"message_id": "x", "message_type": "PowerMeasurement", "values": [{"value": 1.0000000000000002}]}',
    ' {"leading": "space"}',
    '{"dup": 1, "dup": 2}',
    '1e400',
]


class ForwardingTests(unittest.TestCase):

    @defer.inlineCallbacks
    def test_byte_exact_both_ways(self):
        proxy = start_proxy(self)
        rm, cem = yield open_pair(self, proxy)
        for frame in ODD_FRAMES:
            rm.send(frame)
        for frame in reversed(ODD_FRAMES):
            cem.send(frame)
        yield cem.wait_for(len(ODD_FRAMES))
        yield rm.wait_for(len(ODD_FRAMES))
        self.assertEqual([p for p, b in cem.received], [f.encode("utf-8") for f in ODD_FRAMES])
        self.assertEqual([p for p, b in rm.received], [f.encode("utf-8") for f in reversed(ODD_FRAMES)])
        self.assertEqual({b for p, b in cem.received + rm.received}, {False})

    @defer.inlineCallbacks
    def test_order_under_load(self):
        proxy = start_proxy(self)
        rm, cem = yield open_pair(self, proxy)
        count = 2000
        for i in range(count):
            rm.send('{"n": %d}' % i)
            cem.send('{"m": %d}' % i)
        yield cem.wait_for(count, timeout=60)
        yield rm.wait_for(count, timeout=60)
        self.assertEqual([json.loads(t)["n"] for t in cem.texts()], list(range(count)))
        self.assertEqual([json.loads(t)["m"] for t in rm.texts()], list(range(count)))

    @defer.inlineCallbacks
    def test_kept_until_peer_connects(self):
        proxy = start_proxy(self)
        log = EventLog(proxy)
        rm = yield connect_device(self, device_url(proxy, "RM", "rm-k", "cem-k"))
        frames = ['{"kept": %d}' % i for i in range(5)]
        for frame in frames:
            rm.send(frame)
        yield eventually(lambda: len(log.kinds("kept")) == 5)
        cem = yield connect_device(self, device_url(proxy, "CEM", "rm-k", "cem-k"))
        yield cem.wait_for(5)
        rm.send('{"after": true}')
        yield cem.wait_for(6)
        self.assertEqual(cem.texts(), frames + ['{"after": true}'])
        delivered = log.kinds("delivered")
        self.assertEqual([e["ref_seq"] for e in delivered], [e["seq"] for e in log.kinds("kept")])

    @defer.inlineCallbacks
    def test_keep_limit_closes_sender_with_1013_and_keeps_what_was_accepted(self):
        proxy = start_proxy(self, max_kept_messages=3)
        log = EventLog(proxy)
        rm = yield connect_device(self, device_url(proxy, "RM", "rm-b", "cem-b"))
        for i in range(4):
            rm.send('{"n": %d}' % i)
        code, reason = yield rm.closed
        self.assertEqual(code, 1013)
        self.assertIn("limit", reason)
        refused = log.kinds("refused")
        self.assertEqual(len(refused), 1)
        self.assertEqual(refused[0]["raw"], '{"n": 3}')
        self.assertIn("--max-kept-messages=3", refused[0]["reason"])
        self.assertEqual(len(log.kinds("kept")), 3)
        # The RM is gone, yet everything accepted still reaches the CEM when it comes.
        yield settle(0.1)
        self.assertEqual(log.kinds("session_ended"), [])
        cem = yield connect_device(self, device_url(proxy, "CEM", "rm-b", "cem-b"))
        yield cem.wait_for(3)
        self.assertEqual(cem.texts(), ['{"n": 0}', '{"n": 1}', '{"n": 2}'])
        self.assertEqual(log.kinds("discarded"), [])

    @defer.inlineCallbacks
    def test_kept_messages_reach_peer_after_sender_refused(self):
        proxy = start_proxy(self, max_kept_bytes=30)
        log = EventLog(proxy)
        rm1 = yield connect_device(self, device_url(proxy, "RM", "rm-c", "cem-c"))
        # A second RM connection of another pair keeps nothing; only the first matters.
        rm1.send('{"n": 0}')
        rm1.send('{"n": 1}')
        yield eventually(lambda: len(log.kinds("kept")) == 2)
        # The CEM connects before the RM overflows: it receives both kept messages.
        cem = yield connect_device(self, device_url(proxy, "CEM", "rm-c", "cem-c"))
        yield cem.wait_for(2)
        self.assertEqual(cem.texts(), ['{"n": 0}', '{"n": 1}'])
        # Now overflow in the other direction while the RM is absent.
        yield rm1.close()
        cem.send('{"x": "%s"}' % ("a" * 10))
        cem.send('{"x": "%s"}' % ("b" * 10))
        code, reason = yield cem.closed
        self.assertEqual(code, 1013)
        self.assertEqual(len(log.kinds("refused")), 1)

    @defer.inlineCallbacks
    def test_replacement_closes_old_connection(self):
        proxy = start_proxy(self)
        log = EventLog(proxy)
        rm_old = yield connect_device(self, device_url(proxy, "RM", "rm-r", "cem-r"))
        cem = yield connect_device(self, device_url(proxy, "CEM", "rm-r", "cem-r"))
        rm_new = yield connect_device(self, device_url(proxy, "RM", "rm-r", "cem-r"))
        code, reason = yield rm_old.closed
        self.assertEqual(code, 4000)
        self.assertIn("replaced by a newer RM connection", reason)
        cem.send('{"to": "new"}')
        yield rm_new.wait_for(1)
        self.assertEqual(rm_new.texts(), ['{"to": "new"}'])
        self.assertEqual(rm_old.received, [])
        rm_new.send('{"from": "new"}')
        yield cem.wait_for(1)
        self.assertEqual(cem.texts(), ['{"from": "new"}'])
        # One session throughout: the replacement did not end it.
        self.assertEqual(len(log.kinds("session_started")), 1)
        self.assertEqual(log.kinds("session_ended"), [])

    @defer.inlineCallbacks
    def test_other_side_stays_connected_by_default(self):
        proxy = start_proxy(self)
        rm, cem = yield open_pair(self, proxy)
        yield rm.close()
        yield settle(0.2)
        self.assertFalse(cem.factory.closed.called)
        # The CEM's messages are now kept for the RM, which gets them when it returns.
        cem.send('{"while": "away"}')
        rm2 = yield connect_device(self, device_url(proxy, "RM", "rm-1", "cem-1"))
        yield rm2.wait_for(1)
        self.assertEqual(rm2.texts(), ['{"while": "away"}'])

    @defer.inlineCallbacks
    def test_mirror_close(self):
        proxy = start_proxy(self, mirror_close=True)
        rm, cem = yield open_pair(self, proxy)
        yield rm.close(1000, "done")
        code, reason = yield cem.closed
        self.assertEqual(code, 1000)
        self.assertIn("RM closed", reason)

    @defer.inlineCallbacks
    def test_session_end_records_discarded_messages(self):
        proxy = start_proxy(self, kept_ttl=0.3)
        log = EventLog(proxy)
        rm = yield connect_device(self, device_url(proxy, "RM", "rm-d", "cem-d"))
        rm.send('{"never": "delivered"}')
        yield eventually(lambda: log.kinds("kept"))
        yield rm.close()
        yield eventually(lambda: log.kinds("session_ended"))
        discarded = log.kinds("discarded")
        self.assertEqual(len(discarded), 1)
        self.assertEqual(discarded[0]["ref_seq"], log.kinds("kept")[0]["seq"])
        self.assertIn("the CEM did not connect within --kept-ttl=0.3s", discarded[0]["reason"])
        self.assertEqual(log.kinds("session_ended")[0]["undelivered"], 1)

    @defer.inlineCallbacks
    def test_many_conversations_without_cross_talk(self):
        proxy = start_proxy(self)
        pairs = []
        for i in range(200):
            pair = yield open_pair(self, proxy, "rm-%d" % i, "cem-%d" % i)
            pairs.append(pair)
        self.assertEqual(len(proxy.registry.conversations), 200)
        for i, (rm, cem) in enumerate(pairs):
            rm.send('{"from_rm": %d}' % i)
            cem.send('{"from_cem": %d}' % i)
        for i, (rm, cem) in enumerate(pairs):
            yield cem.wait_for(1)
            yield rm.wait_for(1)
        yield settle(0.2)
        for i, (rm, cem) in enumerate(pairs):
            self.assertEqual(cem.texts(), ['{"from_rm": %d}' % i])
            self.assertEqual(rm.texts(), ['{"from_cem": %d}' % i])

    @defer.inlineCallbacks
    def test_binary_frame_forwarded_as_binary(self):
        proxy = start_proxy(self)
        log = EventLog(proxy)
        rm, cem = yield open_pair(self, proxy)
        payload = b'{"message_type": "PowerMeasurement"}'
        rm.send(payload, binary=True)
        yield cem.wait_for(1)
        self.assertEqual(cem.received, [(payload, True)])
        event = log.kinds("forwarded")[0]
        self.assertTrue(event["binary"])


class ValidationInTheProxyTests(unittest.TestCase):

    @defer.inlineCallbacks
    def test_invalid_messages_are_flagged_and_still_forwarded(self):
        proxy = start_proxy(self)
        log = EventLog(proxy)
        rm, cem = yield open_pair(self, proxy)
        frames = [
            "definitely not json",
            '["an", "array"]',
            '{"message_type": "NoSuchType", "message_id": "b0c1d2e3-0000-4000-8000-000000000001"}',
            '{"message_type": "Handshake", "message_id": "b0c1d2e3-0000-4000-8000-000000000002", "role": "RM",'
            ' "supported_protocol_versions": ["0.0.2-beta"], "unexpected": 1}',
            '{"message_type": "Handshake", "message_id": "b0c1d2e3-0000-4000-8000-000000000003", "role": "RM",'
            ' "supported_protocol_versions": ["0.0.2-beta"]}',
        ]
        for frame in frames:
            rm.send(frame)
        yield cem.wait_for(len(frames))
        self.assertEqual(cem.texts(), frames)
        yield eventually(lambda: len(log.kinds("forwarded")) == len(frames))
        events = log.kinds("forwarded")
        rules = [sorted({f["rule"] for f in e["format_findings"]}) for e in events]
        self.assertEqual([e["valid"] for e in events], [False, False, False, False, True])
        self.assertIn("R-002", rules[0])
        self.assertIn("R-001", rules[1])
        self.assertIn("R-003", rules[2])
        self.assertIn("R-004", rules[3])
        self.assertEqual(events[4]["message_type"], "Handshake")
        self.assertEqual(events[4]["message_id"], "b0c1d2e3-0000-4000-8000-000000000003")

    @defer.inlineCallbacks
    def test_forward_only_mode_skips_analysis(self):
        proxy = start_proxy(self, validate=False)
        log = EventLog(proxy)
        rm, cem = yield open_pair(self, proxy)
        rm.send("not json")
        yield cem.wait_for(1)
        yield eventually(lambda: log.kinds("forwarded"))
        event = log.kinds("forwarded")[0]
        self.assertIsNone(event["valid"])
        self.assertEqual(event["format_findings"], [])


class LimitTests(unittest.TestCase):

    @defer.inlineCallbacks
    def test_oversized_message_closed_with_1009(self):
        proxy = start_proxy(self, max_message_size=1000, max_frame_size=1000)
        log = EventLog(proxy)
        rm, cem = yield open_pair(self, proxy)
        rm.send('{"big": "%s"}' % ("x" * 2000))
        code, reason = yield rm.closed
        self.assertEqual(code, 1009)
        self.assertEqual(cem.received, [])
        closed = [e for e in log.kinds("closed") if e["origin"] == "RM"]
        self.assertEqual(closed[0]["code"], 1009)
        self.assertEqual(closed[0]["closed_by"], "proxy")
        # The CEM is still connected and the conversation goes on.
        self.assertFalse(cem.factory.closed.called)

    @defer.inlineCallbacks
    def test_compressed_message_is_capped_after_decompression(self):
        from autobahn.websocket.compress import (PerMessageDeflateOffer,
                                                 PerMessageDeflateResponse,
                                                 PerMessageDeflateResponseAccept)

        def deflate(factory):
            def accept(response):
                if isinstance(response, PerMessageDeflateResponse):
                    return PerMessageDeflateResponseAccept(response)
            factory.setProtocolOptions(perMessageCompressionOffers=[PerMessageDeflateOffer()],
                                       perMessageCompressionAccept=accept)
        proxy = start_proxy(self, max_message_size=100000, max_frame_size=100000)
        rm = yield connect_device(self, device_url(proxy, "RM", "rm-z", "cem-z"), configure=deflate)
        cem = yield connect_device(self, device_url(proxy, "CEM", "rm-z", "cem-z"), configure=deflate)
        self.assertIsNotNone(rm.protocol._perMessageCompress)
        small = '{"fits": "%s"}' % ("s" * 50000)
        rm.send(small)
        yield cem.wait_for(1)
        self.assertEqual(cem.texts(), [small])
        # 2 MB of one letter compresses to a few kB on the wire: the cap applies to the inflated size.
        rm.send('{"bomb": "%s"}' % ("z" * 2000000))
        code, reason = yield rm.closed
        self.assertEqual(code, 1009)
        self.assertEqual(len(cem.received), 1)

    @defer.inlineCallbacks
    def test_invalid_utf8_text_frame_closed_with_1007(self):
        proxy = start_proxy(self)
        log = EventLog(proxy)
        rm, cem = yield open_pair(self, proxy)
        rm.protocol.sendMessage(b'{"bad": "\xff\xfe"}', False)
        code, reason = yield rm.closed
        self.assertEqual(code, 1007)
        self.assertEqual(cem.received, [])
        closed = [e for e in log.kinds("closed") if e["origin"] == "RM"]
        self.assertEqual(closed[0]["code"], 1007)

    @defer.inlineCallbacks
    def test_deeply_nested_frame_is_forwarded(self):
        proxy = start_proxy(self)
        log = EventLog(proxy)
        rm, cem = yield open_pair(self, proxy)
        nested = "[" * 50000 + "]" * 50000
        rm.send(nested)
        rm.send('{"next": 1}')
        yield cem.wait_for(2)
        self.assertEqual(cem.texts(), [nested, '{"next": 1}'])
        event = log.kinds("forwarded")[0]
        self.assertFalse(event["valid"])
        self.assertTrue(event["format_findings"])

    @defer.inlineCallbacks
    def test_connection_cap_refuses_with_503(self):
        proxy = start_proxy(self, max_connections=1)
        yield connect_device(self, device_url(proxy, "RM", "rm-1", "cem-1"))
        d = connect_device(self, device_url(proxy, "CEM", "rm-1", "cem-1"))
        failure = yield self.assertFailure(d, ConnectionError)
        self.assertIn("503", str(failure))


class SlowReaderTests(unittest.TestCase):

    @defer.inlineCallbacks
    def test_slow_reader_pauses_the_writer(self):
        proxy = start_proxy(self, validate=False)
        rm, cem = yield open_pair(self, proxy)
        cem.protocol.transport.pauseProducing()  # the CEM stops reading its socket
        conv = proxy.registry.conversations[("rm-1", "cem-1")]
        proxy_cem_side = conv.sides["CEM"]
        proxy_rm_side = conv.sides["RM"]
        chunk = '{"pad": "%s"}' % ("p" * 16000)
        total = 1500  # ~24 MB: far more than socket buffers hold
        for _ in range(total):
            rm.send(chunk)
        yield eventually(lambda: "partner" in proxy_rm_side.gate.holders, timeout=30)
        # While paused, what the proxy buffers for the CEM stays bounded.
        peak = 0
        for _ in range(20):
            yield settle(0.05)
            transport = proxy_cem_side.transport
            buffered = len(transport.dataBuffer) + transport._tempDataLen
            peak = max(peak, buffered)
        self.assertLess(peak, 4 * 1024 * 1024)
        cem.protocol.transport.resumeProducing()
        yield cem.wait_for(total, timeout=120)
        self.assertEqual(len(cem.received), total)
        self.assertNotIn("partner", proxy_rm_side.gate.holders)


class ThirdPartyClientTests(unittest.TestCase):
    """The `websockets` library as RM and CEM: a client that device makers use."""

    @defer.inlineCallbacks
    def test_websockets_library_peers(self):
        from websockets.sync.client import connect
        proxy = start_proxy(self)
        rm_url = device_url(proxy, "RM", "rm-w", "cem-w")
        cem_url = device_url(proxy, "CEM", "rm-w", "cem-w")
        frames = ['{"message_type": "Handshake", "message_id": "%d", "role": "RM"}' % i for i in range(50)]

        def run():
            with connect(rm_url, open_timeout=10) as rm, connect(cem_url, open_timeout=10) as cem:
                for f in frames:
                    rm.send(f)
                got = [cem.recv(timeout=10) for _ in frames]
                cem.send('{"back": "é"}')
                back = rm.recv(timeout=10)
                return got, back
        got, back = yield threads.deferToThread(run)
        self.assertEqual(got, frames)
        self.assertEqual(back, '{"back": "é"}')
        yield eventually(lambda: not proxy.registry.conversations)

    @defer.inlineCallbacks
    def test_handshake_refusals_seen_by_websockets_client(self):
        from websockets.exceptions import InvalidStatus
        from websockets.sync.client import connect
        proxy = start_proxy(self)
        base = "ws://127.0.0.1:%d" % proxy.port

        def status(path):
            try:
                with connect(base + path, open_timeout=10):
                    return 101
            except InvalidStatus as e:
                return e.response.status_code
        results = yield threads.deferToThread(lambda: {
            p: status(p) for p in (
                "/backend/rm/r1/cem/c1/ws", "/backend/rm/r1/cem/c1/other", "/nope",
                "/backend/rm/r1/cem/c1", "/backend/rm/bad%20id/cem/c1/ws",
                "/backend/cem/c1/rm/" + "x" * 65 + "/ws", "/backend/rm//cem/c1/ws",
                "/backend/cem/c1/rm/r1/ws")})
        self.assertEqual(results, {
            "/backend/rm/r1/cem/c1/ws": 101, "/backend/rm/r1/cem/c1/other": 404, "/nope": 404,
            "/backend/rm/r1/cem/c1": 404, "/backend/rm/bad%20id/cem/c1/ws": 400,
            "/backend/cem/c1/rm/" + "x" * 65 + "/ws": 400, "/backend/rm//cem/c1/ws": 400,
            "/backend/cem/c1/rm/r1/ws": 101})
        yield eventually(lambda: not proxy.registry.conversations)



class PingTests(unittest.TestCase):

    @defer.inlineCallbacks
    def test_frequent_pings_are_reported_as_r009(self):
        proxy = start_proxy(self)
        log = EventLog(proxy)
        rm, cem = yield open_pair(self, proxy)
        rm.protocol.sendPing(b"1")
        rm.protocol.sendPing(b"2")
        yield eventually(lambda: log.kinds("finding"))
        finding = log.kinds("finding")[0]
        self.assertEqual(finding["findings"][0]["rule"], "R-009")
        self.assertEqual(finding["origin"], "RM")
        self.assertIsNone(finding["ref_seq"])


class ShutdownTests(unittest.TestCase):

    @defer.inlineCallbacks
    def test_stopping_the_proxy_closes_devices_with_1001(self):
        proxy = start_proxy(self)
        log = EventLog(proxy)
        rm, cem = yield open_pair(self, proxy)
        rm.send('{"kept": "nowhere"}')
        yield cem.wait_for(1)
        yield cem.close()
        rm.send('{"kept": "for the CEM"}')
        yield eventually(lambda: log.kinds("kept"))
        yield proxy.stopService()
        code, reason = yield rm.closed
        self.assertEqual(code, 1001)
        self.assertIn("shutting down", reason)
        self.assertEqual(len(log.kinds("discarded")), 1)
        self.assertEqual(len(log.kinds("session_ended")), 1)
        self.assertEqual(log.kinds("session_ended")[0]["end_reason"], "proxy stopped")

"""Hostile frames through the whole daemon: forwarded unchanged, reported, recorded, never fatal."""

import json

import os

from twisted.internet import defer
from twisted.trial import unittest

from tests.common import connect_device, device_url, eventually, start_proxy
from tests.test_api import get_json
from tests.test_feed import feed_url

HOSTILE = [
    "",
    "   \t\r\n ",
    "null", "true", "0", '""', "[]", "-0.0e-0",
    "NaN", "Infinity", "-Infinity", '{"v": NaN}',
    "1" * 5000,                                     # beyond Python's int-parsing digit limit
    "1e999999",
    '{"a": 1} trailing',
    '{"a": "\\ud800"}',                            # a lone surrogate escape
    '{"message_type": "\\udfff", "message_id": "\\ud83d"}',
    '{"a": "\\u0000"}',
    '{"ctl": "\x01\x1f"}',                          # raw control characters inside a string
    "\ufeff{\"message_type\": \"Handshake\"}",      # a byte order mark
    '{"message_type": 5}', '{"message_type": null}', '{"message_type": ["Handshake"]}',
    '{"message_type": {"$ref": "http://example.invalid/x.json"}}',
    '{"message_type": "Handshake", "message_id": {"a": [1, 2, {"b": null}]}, "role": []}',
    '{"dup": 1, "dup": 2}',
    "[" * 100000 + "]" * 100000,
    '{"a":' * 20000 + "1" + "}" * 20000,
    json.dumps({"k%d" % i: i for i in range(30000)}),
    json.dumps({"message_type": "PowerMeasurement", "message_id": "x" * 500000}),
    '{"message_type": "ReceptionStatus", "subject_message_id": "00000000-0000-0000-0000-000000000000", '
    '"status": "OK", "message_id": "a"}',
    '{"message_type": "Handshake", "role": "RM", "message_id": "\u202e\u0000\u2028"}',
]


class HostileFrameTests(unittest.TestCase):

    @defer.inlineCallbacks
    def check_hostile_frames(self, **settings):
        settings["data_dir"] = os.path.abspath(self.mktemp())
        os.makedirs(settings["data_dir"])
        proxy = start_proxy(self, **settings)
        seen = []
        proxy.hub.subscribe(seen.append)
        viewer = yield connect_device(self, feed_url(proxy, "debugger", "rm_id=rm-h"))
        rm = yield connect_device(self, device_url(proxy, "RM", "rm-h", "cem-h"))
        cem = yield connect_device(self, device_url(proxy, "CEM", "rm-h", "cem-h"))
        for frame in HOSTILE:
            rm.send(frame)
        rm.send(b"\xc0\xaf\xff{}", binary=True)     # a binary frame that is not UTF-8
        yield cem.wait_for(len(HOSTILE) + 1, timeout=60)
        # Forwarded unchanged, in order, with the same opcode.
        self.assertEqual(cem.received[:-1], [(f.encode("utf-8"), False) for f in HOSTILE])
        self.assertEqual(cem.received[-1], (b"\xc0\xaf\xff{}", True))
        messages = lambda: [e for e in seen if e["event"] == "forwarded"]  # noqa: E731
        yield eventually(lambda: len(messages()) == len(HOSTILE) + 1, timeout=60)
        for event, frame in zip(messages(), HOSTILE + [None]):
            if frame in ('{"dup": 1, "dup": 2}',):
                continue  # valid JSON without a message_type: R-003, checked below
            self.assertFalse(event["valid"], frame[:60] if frame else frame)
            self.assertTrue(event["format_findings"], frame[:60] if frame else frame)
        rules = {f["rule"] for e in messages() for f in e["format_findings"]}
        self.assertTrue({"R-001", "R-002", "R-003", "R-004"} <= rules, rules)
        # A live viewer got every one of them, as JSON.
        def shown():
            return [json.loads(p) for p, _ in viewer.received
                    if json.loads(p).get("event") == "forwarded"]
        yield eventually(lambda: len(shown()) == len(HOSTILE) + 1, timeout=30)
        self.assertEqual([m["raw"] for m in shown()[:len(HOSTILE)]], HOSTILE)
        # The daemon is alive and the conversation goes on.
        cem.send('{"still": "alive"}')
        yield rm.wait_for(1)
        self.assertEqual(rm.texts(), ['{"still": "alive"}'])
        if proxy.settings.get("store", True):
            # Everything was recorded and is served back as JSON.
            conv = next(iter(proxy.registry.conversations.values()))
            yield proxy.store.flushed()
            url = "http://127.0.0.1:%d/backend/history-filter/?session_id=%s&event=forwarded&limit=100" % (
                proxy.port, conv.session_id)
            code, records, _ = yield get_json(url)
            self.assertEqual(code, 200, records)
            self.assertEqual(len(records), len(HOSTILE) + 2)
            self.assertEqual([r["raw"] for r in records[:len(HOSTILE)]], HOSTILE)
            self.assertTrue(records[len(HOSTILE)]["binary"])
            self.assertEqual(records[0]["validation_errors"][0]["type"], "R-002")

    def test_inline_analysis(self):
        return self.check_hostile_frames(analysis_workers=0)

    def test_worker_analysis(self):
        return self.check_hostile_frames(analysis_workers=1)

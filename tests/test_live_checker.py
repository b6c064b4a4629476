"""The stateful checker inside the running proxy: findings on live traffic, never in the way."""

import json
import os

from twisted.internet import defer
from twisted.trial import unittest

from tests.common import connect_device, device_url, eventually, start_proxy

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "transcripts")


def load_transcript(name):
    with open(os.path.join(FIXTURES, name)) as f:
        return [json.loads(line) for line in f if line.strip()]


def raw_of(entry):
    message = entry["message"]
    return message if isinstance(message, str) else json.dumps(message)


@defer.inlineCallbacks
def replay(testcase, proxy, transcript, rm_id="rm-live", cem_id="cem-live"):
    """Play a transcript through the proxy: each side sends its lines, in the transcript's order."""
    rm = yield connect_device(testcase, device_url(proxy, "RM", rm_id, cem_id))
    cem = yield connect_device(testcase, device_url(proxy, "CEM", rm_id, cem_id))
    devices = {"RM": rm, "CEM": cem}
    expected = {"RM": 0, "CEM": 0}
    for entry in transcript:
        sender = entry["sender"]
        receiver = "CEM" if sender == "RM" else "RM"
        devices[sender].send(raw_of(entry))
        expected[receiver] += 1
        # Wait until it arrived, so the two sides' messages interleave as in the transcript.
        yield devices[receiver].wait_for(expected[receiver])
    return rm, cem


class Findings:
    def __init__(self, proxy):
        self.events = []
        proxy.hub.subscribe(self.events.append)

    def all(self):
        found = []
        for event in self.events:
            for key in ("format_findings", "findings"):
                for finding in event.get(key) or ():
                    found.append((event["event"], event.get("message_type"), finding))
        return found

    def serious(self):
        return [f for f in self.all() if f[2]["severity"] in ("error", "warning")]


class LiveCheckerTests(unittest.TestCase):

    @defer.inlineCallbacks
    def test_section_7_examples_pass_live(self):
        for name in ("frbc_example.jsonl", "pebc_example.jsonl"):
            proxy = start_proxy(self)
            findings = Findings(proxy)
            transcript = load_transcript(name)
            rm, cem = yield replay(self, proxy, transcript, rm_id="rm-" + name[:4])
            yield eventually(lambda: len([e for e in findings.events if e["event"] == "forwarded"])
                             == len(transcript))
            proxy.registry.tick()
            self.assertEqual(findings.serious(), [], name)
            conv = next(iter(proxy.registry.conversations.values()))
            summary = yield proxy.registry.summary(conv)
            json.dumps(summary)  # the history API serves it as JSON
            self.assertIn(name[:4].upper(), json.dumps(summary))

    @defer.inlineCallbacks
    def test_stateful_violation_is_reported_on_the_message(self):
        proxy = start_proxy(self)
        findings = Findings(proxy)
        transcript = load_transcript("frbc_example.jsonl")
        # The CEM selects a control type before the RM has sent any ResourceManagerDetails.
        select = next(e for e in transcript if e["message"].get("message_type") == "SelectControlType")
        details = next(e for e in transcript
                       if e["message"].get("message_type") == "ResourceManagerDetails")
        cut = transcript.index(details)
        mutated = transcript[:cut] + [select]
        yield replay(self, proxy, mutated)
        yield eventually(lambda: any(f[2]["rule"] == "R-024" for f in findings.all()))
        event, message_type, finding = next(f for f in findings.all() if f[2]["rule"] == "R-024")
        self.assertEqual(event, "forwarded")
        self.assertEqual(message_type, "SelectControlType")
        self.assertEqual(finding["severity"], "error")

    @defer.inlineCallbacks
    def test_a_broken_checker_never_breaks_forwarding(self):
        class Broken:
            def feed(self, *a, **kw):
                raise RuntimeError("rule bug")

            def tick(self, now):
                raise RuntimeError("rule bug")

            def next_deadline(self):
                return 0.0

            def finish(self, now):
                raise RuntimeError("rule bug")

            def summary(self):
                raise RuntimeError("rule bug")

        proxy = start_proxy(self)
        errors = []
        proxy.analyzer.core.checker_factory = Broken
        proxy.analyzer.core.on_error = lambda where, exc: errors.append(where)
        rm = yield connect_device(self, device_url(proxy, "RM", "rm-x", "cem-x"))
        cem = yield connect_device(self, device_url(proxy, "CEM", "rm-x", "cem-x"))
        for i in range(3):
            rm.send('{"n": %d}' % i)
        proxy.registry.tick()
        yield cem.wait_for(3)
        self.assertEqual(cem.texts(), ['{"n": 0}', '{"n": 1}', '{"n": 2}'])
        yield rm.close()
        yield cem.close()
        yield eventually(lambda: not proxy.registry.conversations)
        self.assertEqual(set(errors), {"checker.feed", "checker.tick", "checker.finish",
                                       "checker.summary"})

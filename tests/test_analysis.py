"""Analysis in the worker process (the daemon's default on 2+ cores): same results, same order."""

import json
import os
import signal

from twisted.internet import defer
from twisted.trial import unittest

from s2proxy.analysis import AnalysisCore, InlineAnalyzer
from s2proxy.validation import Validator
from tests.common import connect_device, device_url, eventually, start_proxy
from tests.test_live_checker import Findings, load_transcript, raw_of, replay


def message_events(events):
    return [e for e in events if "raw" in e]


class WorkerTests(unittest.TestCase):

    @defer.inlineCallbacks
    def test_worker_and_inline_report_the_same(self):
        transcript = load_transcript("frbc_example.jsonl")
        # A stateful violation (SelectControlType before any ResourceManagerDetails) and a
        # format one, so that "the same" is not just "nothing".
        select = next(e for e in transcript if e["message"].get("message_type") == "SelectControlType")
        details = next(e for e in transcript
                       if e["message"].get("message_type") == "ResourceManagerDetails")
        mutated = transcript[:transcript.index(details)] + [select, {"sender": "RM", "message": "{oops"}]
        reports = {}
        for workers in (0, 1):
            proxy = start_proxy(self, analysis_workers=workers)
            findings = Findings(proxy)
            yield replay(self, proxy, mutated, rm_id="rm-%d" % workers)
            yield eventually(lambda: len(message_events(findings.events)) == len(mutated))
            yield eventually(lambda: any(f[2]["rule"] == "R-024" for f in findings.all()))
            reports[workers] = sorted((kind, mtype or "", f["rule"], f["severity"])
                                      for kind, mtype, f in findings.all())
            if workers:
                self.assertTrue(proxy.analyzer.asynchronous)
                self.assertIsNotNone(proxy.analyzer.transport)
        self.assertEqual(reports[0], reports[1])
        self.assertIn(("forwarded", "", "R-002", "error"), reports[1])
        self.assertIn(("forwarded", "SelectControlType", "R-024", "error"), reports[1])

    @defer.inlineCallbacks
    def test_events_keep_their_order(self):
        proxy = start_proxy(self, analysis_workers=1)
        seen = []
        proxy.hub.subscribe(seen.append)
        rm = yield connect_device(self, device_url(proxy, "RM", "rm-o", "cem-o"))
        for i in range(50):
            rm.send('{"message_type": "PowerMeasurement", "n": %d}' % i)  # kept: no CEM yet
        cem = yield connect_device(self, device_url(proxy, "CEM", "rm-o", "cem-o"))
        for i in range(50):
            cem.send('{"back": %d}' % i)
        yield rm.close()
        yield cem.close()
        yield eventually(lambda: any(e["event"] == "session_ended" for e in seen))
        kinds = [e["event"] for e in seen]
        self.assertEqual(kinds[:2], ["session_started", "opened"])
        self.assertEqual(kinds[2:52], ["kept"] * 50)
        self.assertEqual(kinds[52], "opened")
        self.assertEqual(kinds[53:103], ["delivered"] * 50)
        self.assertEqual(kinds[-1], "session_ended")
        # Every event reached the hub in the order it happened, analysis results included.
        seqs = [e["seq"] for e in seen]
        self.assertEqual(seqs, sorted(seqs))
        kept = [e for e in seen if e["event"] == "kept"]
        self.assertEqual({e["message_type"] for e in kept}, {"PowerMeasurement"})
        self.assertTrue(all(e["format_findings"] for e in kept))
        delivered = [e for e in seen if e["event"] == "delivered"]
        self.assertEqual([e["message_type"] for e in delivered], ["PowerMeasurement"] * 50)

    @defer.inlineCallbacks
    def test_worker_crash_loses_no_message(self):
        proxy = start_proxy(self, analysis_workers=1)
        seen = []
        proxy.hub.subscribe(seen.append)
        rm = yield connect_device(self, device_url(proxy, "RM", "rm-c", "cem-c"))
        cem = yield connect_device(self, device_url(proxy, "CEM", "rm-c", "cem-c"))
        rm.send("not json")
        yield eventually(lambda: len(message_events(seen)) == 1)
        old_pid = proxy.analyzer.transport.pid
        os.kill(old_pid, signal.SIGKILL)
        for i in range(20):
            rm.send("still not json %d" % i)
        yield cem.wait_for(21)
        yield eventually(lambda: len(message_events(seen)) == 21)
        yield eventually(lambda: proxy.analyzer.transport is not None
                         and proxy.analyzer.transport.pid != old_pid)
        rm.send("after the restart")
        yield eventually(lambda: len(message_events(seen)) == 22)
        self.assertEqual([f["rule"] for f in message_events(seen)[-1]["format_findings"]], ["R-002"])
        self.assertEqual(proxy.analyzer.restarts, 1)
        self.flushLoggedErrors()

    @defer.inlineCallbacks
    def test_summary_and_stop_drain_the_worker(self):
        proxy = start_proxy(self, analysis_workers=1)
        seen = []
        proxy.hub.subscribe(seen.append)
        transcript = load_transcript("frbc_example.jsonl")
        yield replay(self, proxy, transcript[:20], rm_id="rm-s")
        conv = next(iter(proxy.registry.conversations.values()))
        summary = yield proxy.registry.summary(conv)
        self.assertEqual(json.loads(json.dumps(summary)), summary)
        self.assertIn("FRBC", json.dumps(summary))
        yield proxy.stopService()
        ended = [e for e in seen if e["event"] == "session_ended"]
        self.assertEqual(len(ended), 1)
        self.assertIn("FRBC", json.dumps(ended[0]["summary"]))
        self.assertEqual(len(message_events(seen)), 20)


class InlineCoreTests(unittest.SynchronousTestCase):
    """The command set on its own (the worker process runs the same core)."""

    def test_commands(self):
        from s2proxy.checker import Checker, CheckerConfig
        core = AnalysisCore(Validator(), lambda: Checker(CheckerConfig()))
        results = []
        analyzer = InlineAnalyzer(core)
        analyzer.submit(("open", "t"), lambda r, a: results.append(r))
        analyzer.submit(("msg", "t", "RM", b'{"message_type": "Handshake"}', False, 1.0, 1, True),
                        lambda r, a: results.append(r))
        analyzer.submit(("tick", 1000.0), lambda r, a: results.append(r))
        analyzer.submit(("finish", "t", 1001.0), lambda r, a: results.append(r))
        analyzer.submit(("summary", "t"), lambda r, a: results.append(r))
        self.assertIsNone(results[0])
        message_type, message_id, format_findings, valid, findings = results[1]
        self.assertEqual(message_type, "Handshake")
        self.assertFalse(valid)
        self.assertIn("R-004", [f["rule"] for f in format_findings])
        findings_at_end, summary = results[3]
        self.assertIsInstance(summary, dict)
        self.assertIsNone(results[4])  # finished: the checker is gone
        self.assertEqual(raw_of({"message": "x"}), "x")


class WorkerInjectTests(unittest.TestCase):

    @defer.inlineCallbacks
    def test_injected_event_waits_for_its_analysis(self):
        proxy = start_proxy(self, analysis_workers=1)
        rm = yield connect_device(self, device_url(proxy, "RM", "rm-i", "cem-i"))
        yield connect_device(self, device_url(proxy, "CEM", "rm-i", "cem-i"))
        conv, event = proxy.registry.inject("cem-i", "rm-i", b"not json")
        self.assertEqual(event["format_findings"], [])      # not analysed yet: the worker has it
        published = yield proxy.registry.event_published(event)
        self.assertIs(published, event)
        self.assertEqual([f["rule"] for f in event["format_findings"]], ["R-002"])
        yield rm.wait_for(1)
        self.assertEqual(rm.texts(), ["not json"])

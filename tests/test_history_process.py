"""The history with a real ``python -m twisted s2analyzer`` process: restart, kill -9, transcript check."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

from twisted.internet import defer, threads
from twisted.trial import unittest

from tests.common import connect_device, eventually, free_port, start_proxy
from tests.test_api import get_json, http

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# `twist` stops cleanly on SIGTERM, then exits by the same signal so callers see why.
STOPPED = (0, -signal.SIGTERM)
FIXTURES = os.path.join(ROOT, "tests", "fixtures", "transcripts", "types")




class Daemon:
    """One s2analyzer process on 127.0.0.1 with a data dir."""

    def __init__(self, testcase, data_dir, *extra):
        self.testcase = testcase
        self.data_dir = data_dir
        self.extra = list(extra)
        self.port = None
        self.process = None
        self.cwd = os.path.abspath(testcase.mktemp())
        os.makedirs(self.cwd)

    def start(self):
        self.port = free_port()
        env = dict(os.environ)
        env["PYTHONPATH"] = ROOT
        self.log = open(os.path.join(self.cwd, "daemon-%d.log" % self.port), "wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "twisted", "s2analyzer", "--port",
             "tcp:%d:interface=127.0.0.1" % self.port, "--data-dir", self.data_dir] + self.extra,
            cwd=self.cwd, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        self.testcase.addCleanup(self._cleanup, self.process, self.log)
        return threads.deferToThread(self._wait_for_port)

    def _wait_for_port(self):
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError("s2analyzer exited with %s:\n%s" % (self.process.returncode, self.output()))
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.1)
        raise AssertionError("s2analyzer did not listen on %d:\n%s" % (self.port, self.output()))

    def output(self):
        self.log.flush()
        with open(self.log.name, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stop(self, sig=signal.SIGTERM):
        self.process.send_signal(sig)
        return threads.deferToThread(self.process.wait, 30)

    @staticmethod
    def _cleanup(process, log):
        if process.poll() is None:
            process.kill()
            process.wait(10)
        log.close()

    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def device(self, role, rm_id, cem_id):
        if role == "RM":
            path = "/backend/rm/%s/cem/%s/ws" % (rm_id, cem_id)
        else:
            path = "/backend/cem/%s/rm/%s/ws" % (cem_id, rm_id)
        return connect_device(self.testcase, "ws://127.0.0.1:%d%s" % (self.port, path))


def message(i, sender="RM"):
    return json.dumps({"message_type": "PowerMeasurement", "message_id": "m-%s-%06d" % (sender, i),
                       "measurement_timestamp": "2025-06-02T10:00:00Z",
                       "values": [{"commodity_quantity": "ELECTRIC.POWER.L1", "value": float(i)}]})


@defer.inlineCallbacks
def wait_for_session_state(daemon, session_id, state):
    for _ in range(200):
        code, item, _ = yield get_json(daemon.url("/backend/sessions/" + session_id))
        if code == 200 and item["state"] == state:
            return item
        yield threads.deferToThread(time.sleep, 0.05)
    raise AssertionError("session %s never became %s" % (session_id, state))


class RestartTests(unittest.TestCase):

    timeout = 180

    @defer.inlineCallbacks
    def test_history_survives_restart(self):
        data_dir = os.path.abspath(self.mktemp())
        os.makedirs(data_dir)
        daemon = Daemon(self, data_dir)
        yield daemon.start()
        rm = yield daemon.device("RM", "rm1", "cem1")
        cem = yield daemon.device("CEM", "rm1", "cem1")
        for i in range(20):
            rm.send(message(i))
        yield cem.wait_for(20)
        code, items, _ = yield get_json(daemon.url("/backend/connections/"))
        closed_id = items[0]["session_id"]
        yield rm.close()
        yield cem.close()
        yield wait_for_session_state(daemon, closed_id, "closed")
        # A second session is live when the daemon stops.
        rm2 = yield daemon.device("RM", "rm2", "cem2")
        rm2.send(message(0))
        code, items, _ = yield get_json(daemon.url("/backend/connections/?state=open"))
        live_id = items[0]["session_id"]
        code, before, _ = yield get_json(daemon.url("/backend/history-filter/?session_id=" + closed_id))
        rc = yield daemon.stop()
        self.assertIn(rc, STOPPED, daemon.output())
        yield rm2.closed

        yield daemon.start()
        code, after, _ = yield get_json(daemon.url("/backend/history-filter/?session_id=" + closed_id))
        self.assertEqual(code, 200)
        self.assertEqual(after, before)
        self.assertEqual([json.loads(r["raw"])["message_id"] for r in after if r["event"] == "forwarded"],
                         ["m-RM-%06d" % i for i in range(20)])
        code, items, _ = yield get_json(daemon.url("/backend/connections/"))
        by_id = {i["session_id"]: i for i in items}
        self.assertEqual(by_id[closed_id]["end_reason"], "disconnected")
        self.assertEqual(by_id[closed_id]["counts"]["messages"], 20)
        self.assertEqual((by_id[live_id]["state"], by_id[live_id]["end_reason"]), ("closed", "proxy stopped"))
        code, kept, _ = yield get_json(daemon.url("/backend/history-filter/?session_id=%s&event=kept" % live_id))
        self.assertEqual([r["raw"] for r in kept], [message(0)])
        rc = yield daemon.stop()
        self.assertIn(rc, STOPPED)

    @defer.inlineCallbacks
    def test_kill_9_loses_at_most_what_was_not_committed(self):
        """Every record the store had committed (health: store.last_seq) survives kill -9."""
        data_dir = os.path.abspath(self.mktemp())
        os.makedirs(data_dir)
        # A long flush interval makes it likely that the last batch is still in memory at the kill.
        daemon = Daemon(self, data_dir, "--store-flush-interval", "2")
        yield daemon.start()
        rm = yield daemon.device("RM", "rm1", "cem1")
        cem = yield daemon.device("CEM", "rm1", "cem1")
        first, second = 300, 300
        for i in range(first):
            rm.send(message(i))
        yield cem.wait_for(first)
        for _ in range(200):
            code, health, _ = yield get_json(daemon.url("/backend/health"))
            if health["store"]["queued"] == 0:
                break
            yield threads.deferToThread(time.sleep, 0.1)
        self.assertEqual(health["store"]["queued"], 0)
        for i in range(first, first + second):
            rm.send(message(i))
        yield cem.wait_for(first + second)
        code, health, _ = yield get_json(daemon.url("/backend/health"))
        committed_seq = health["store"]["last_seq"]
        yield daemon.stop(signal.SIGKILL)
        yield rm.closed
        yield cem.closed

        yield daemon.start()
        code, records, _ = yield get_json(daemon.url("/backend/history-filter/?limit=10000"))
        forwarded = [json.loads(r["raw"])["message_id"] for r in records if r["event"] == "forwarded"]
        # What survived is a prefix of what was sent (no holes), and includes all of the first part.
        self.assertEqual(forwarded, ["m-RM-%06d" % i for i in range(len(forwarded))])
        self.assertGreaterEqual(len(forwarded), first)
        # Everything committed before the kill is there.
        self.assertGreaterEqual(max(r["seq"] for r in records), committed_seq)
        code, items, _ = yield get_json(daemon.url("/backend/connections/"))
        self.assertEqual([(i["state"], i["end_reason"]) for i in items], [("closed", "interrupted")])
        self.assertEqual(items[0]["counts"]["messages"], len(forwarded))
        self.assertEqual(items[0]["end_timestamp"], records[-1]["timestamp"])
        rc = yield daemon.stop()
        self.assertIn(rc, STOPPED)


def fixture_lines(name):
    with open(os.path.join(FIXTURES, name), encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


class TranscriptRecheckTests(unittest.TestCase):
    """A recorded conversation, exported and fed to `python -m s2proxy check`, gives the same findings."""

    timeout = 120

    @defer.inlineCallbacks
    def test_same_findings(self):
        if not os.path.exists(os.path.join(ROOT, "s2proxy", "checker", "cli.py")):
            raise unittest.SkipTest("the checker CLI (s2proxy/checker/cli.py) is not there yet")
        data_dir = os.path.abspath(self.mktemp())
        os.makedirs(data_dir)
        proxy = start_proxy(self, data_dir=data_dir)
        lines = fixture_lines("frbc_ok.jsonl")
        # A stateful violation (a ReceptionStatus left out) and a format error (a broken message).
        dropped = [i for i, l in enumerate(lines) if l["sender"] == "CEM"
                   and l["message"].get("message_type") == "ReceptionStatus"][2]
        del lines[dropped]
        lines.insert(5, {"sender": "RM", "message": {"message_type": "PowerMeasurement",
                                                      "message_id": "not-a-uuid", "values": "x"}})
        base = "ws://127.0.0.1:%d" % proxy.port
        rm = yield connect_device(self, base + "/backend/rm/rm1/cem/cem1/ws")
        cem = yield connect_device(self, base + "/backend/cem/cem1/rm/rm1/ws")
        sent = {"RM": 0, "CEM": 0}
        for line in lines:
            sender = line["sender"]
            (rm if sender == "RM" else cem).send(line["message"])
            sent[sender] += 1
            # One at a time, so that the order the checker sees is the order of the lines.
            yield (cem if sender == "RM" else rm).wait_for(sent[sender])
        session_id = proxy.registry.conversations[("rm1", "cem1")].session_id
        yield rm.close()
        yield cem.close()
        yield eventually(lambda: not proxy.registry.conversations)
        yield proxy.store.flushed()
        code, records, _ = yield get_json("http://127.0.0.1:%d/backend/history-filter/?session_id=%s&event=forwarded"
                                          % (proxy.port, session_id))
        live = sorted((r["raw"], e["type"], e["severity"]) for r in records for e in r["validation_errors"])
        live += sorted((r["raw"], f["rule"], f["severity"]) for r in records for f in r["findings"])
        self.assertTrue(any(rule == "R-038" for _, rule, _ in live), live)
        self.assertTrue(any(rule.startswith("R-00") for _, rule, _ in live), live)
        code, _, transcript = yield http("GET", "http://127.0.0.1:%d/backend/sessions/%s/transcript"
                                         % (proxy.port, session_id))
        self.assertEqual(code, 200)
        path = os.path.abspath(self.mktemp())
        with open(path, "wb") as f:
            f.write(transcript)
        env = dict(os.environ)
        env["PYTHONPATH"] = ROOT
        result = yield threads.deferToThread(
            subprocess.run, [sys.executable, "-m", "s2proxy", "check", path],
            capture_output=True, env=env, timeout=60)
        self.assertIn(result.returncode, (0, 1), result.stderr)
        tlines = transcript.decode("utf-8").splitlines()
        offline = []
        for out in result.stdout.decode("utf-8").splitlines():
            finding = json.loads(out)
            raw = json.loads(tlines[finding["line"] - 1])["message"]
            offline.append((raw, finding["rule"], finding["severity"]))
        self.assertEqual(sorted(offline), sorted(live))

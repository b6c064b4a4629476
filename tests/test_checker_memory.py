"""Memory the checker keeps per session (issue 2: under 32 KiB per idle RM/CEM pair in all).

Measured with tracemalloc: bytes still allocated after the sessions were fed and the garbage was
collected, per Checker.  The parsed messages are made inside the measurement (the proxy hands the
checker fresh analyses), and every session has its own ids, like real sessions.  These are memory
tests, not timed tests: the bounds have a generous margin over the figures in docs/checker.md.
"""

import gc
import json
import re
import tracemalloc

from twisted.trial.unittest import SynchronousTestCase

from s2proxy.checker import Checker, CheckerConfig
from s2proxy.checker.ids import parse_time
from tests.checker_replay import load, validator

SESSIONS = 50
IDLE_BOUND = 24 * 1024      # measured 18.5 KiB (it was 45 KiB before the parsed messages were dropped)


def _raise(rule, exc):
    raise exc


def _texts(i, lines):
    """The transcript lines with ids unique to session i (b0000000-... -> b0000i..-...)."""
    out = []
    for line in lines:
        raw = re.sub(r'"([0-9a-f]{2})000000-', lambda m: '"%s%06x-' % (m.group(1), i),
                     json.dumps(line["message"]))
        out.append((line["sender"], raw, parse_time(line["time"])))
    return out


def _retained(run):
    """Bytes still allocated after run() returned (its result kept alive meanwhile)."""
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        kept = run()
        gc.collect()
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    size = sum(s.size_diff for s in after.compare_to(before, "filename"))
    del kept
    return size


class IdleSessionMemory(SynchronousTestCase):
    def test_idle_session_after_setup(self):
        """§7.1 set-up (handshake, details, FRBC selected and described, statuses, instructions, all
        acknowledged), then idle: the checker keeps less than IDLE_BOUND per session."""
        v = validator()
        lines = load("frbc_example")[:40]
        sessions = [_texts(i, lines) for i in range(2 * SESSIONS)]
        cfg = CheckerConfig(on_error=_raise)      # one config for all sessions, as the daemon does
        warm = Checker(cfg)                       # imports, caches: outside the measurement
        for n, (sender, raw, t) in enumerate(_texts(4095, lines), 1):
            warm.feed(sender, v.analyse(raw), t, n)
        warm.summary()

        def run(count):
            def fill():
                chks = []
                for texts in sessions[:count]:
                    chk = Checker(cfg)
                    for n, (sender, raw, t) in enumerate(texts, 1):
                        chk.feed(sender, v.analyse(raw), t, n)
                    chks.append(chk)
                return chks
            return fill
        # The difference of 2N and N sessions: one-time costs (caches, tables) cancel out.
        per = (_retained(run(2 * SESSIONS)) - _retained(run(SESSIONS))) / SESSIONS
        self.assertLess(per, IDLE_BOUND, "%.1f KiB per idle session" % (per / 1024))

    def test_long_session_is_bounded(self):
        """Thousands of acknowledged statuses: the retained memory stops growing once the id window
        (max_ids) is full; nothing else accumulates per message."""
        v = validator()
        lines = load("frbc_example")[:22]
        cfg = CheckerConfig(on_error=_raise, max_ids=200)
        status = ('{"message_type": "FRBC.ActuatorStatus", "message_id": "b1000000-0000-4000-8000-%012d", '
                  '"actuator_id": "a1000000-0000-4000-8000-000000000001", '
                  '"active_operation_mode_id": "0e000000-0000-4000-8000-000000000001", '
                  '"operation_mode_factor": 0.5}')
        ok = '{"message_type": "ReceptionStatus", "subject_message_id": "b1000000-0000-4000-8000-%012d", "status": "OK"}'

        def session(count):
            def run():
                chk = Checker(cfg)
                t = 0.0
                for n, line in enumerate(lines, 1):
                    t = parse_time(line["time"])
                    chk.feed(line["sender"], v.analyse(json.dumps(line["message"])), t, n)
                for k in range(count):
                    t += 0.5
                    chk.feed("RM", v.analyse(status % k), t, k)
                    chk.feed("CEM", v.analyse(ok % k), t + 0.01, k)
                    chk.tick(t + 0.01)
                return chk
            return run
        v.analyse(status % 0)
        v.analyse(ok % 0)
        short, long_ = _retained(session(1000)), _retained(session(4000))
        self.assertLess(long_, short + 8 * 1024, "%d bytes after 1000 statuses, %d after 4000" % (short, long_))

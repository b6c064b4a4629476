"""Hypothesis properties of the checker: it never raises on schema-valid input, and the findings
of a conversation do not depend on how the two sides' messages interleave (causal order kept)."""

import glob
import json
import os

from hypothesis import HealthCheck, given, settings, strategies as st
from twisted.trial.unittest import SynchronousTestCase

from s2proxy.checker import Checker, CheckerConfig
from tests.checker_mutate import frbc, pebc
from tests.checker_replay import validator

HERE = os.path.join(os.path.dirname(__file__), "fixtures")


def _raise(rule, exc):
    raise exc


def _pool():
    msgs = []
    for path in sorted(glob.glob(os.path.join(HERE, "messages", "*.json"))):
        with open(path) as f:
            msgs.extend(json.load(f)["valid"])
    for path in sorted(glob.glob(os.path.join(HERE, "transcripts", "*.jsonl"))
                       + glob.glob(os.path.join(HERE, "transcripts", "*", "*.jsonl"))):
        with open(path) as f:
            msgs.extend(json.loads(line)["message"] for line in f if line.strip())
    return [m for m in msgs if isinstance(m, dict)]


POOL = _pool()
IDS = sorted({m.get("message_id") for m in POOL if m.get("message_id")})[:40]
_ANALYSIS = {}


def _analyse(text):
    a = _ANALYSIS.get(text)
    if a is None:
        a = _ANALYSIS[text] = validator().analyse(text)
    return a


step = st.tuples(
    st.sampled_from(["RM", "CEM"]),
    st.one_of(
        st.sampled_from(range(len(POOL))).map(lambda i: POOL[i]),
        st.builds(lambda s, st_: {"message_type": "ReceptionStatus", "subject_message_id": s,
                                  "status": st_},
                  st.sampled_from(IDS + ["00000000-0000-0000-0000-000000000000"]),
                  st.sampled_from(["OK", "OK", "OK", "INVALID_DATA", "INVALID_CONTENT",
                                   "TEMPORARY_ERROR", "PERMANENT_ERROR"])),
        st.sampled_from(["garbage", "[1, 2]", "{}", "{\"message_type\": \"Handshake\"}"]),
    ),
    st.floats(min_value=0.0, max_value=70.0),
    st.booleans(),
)


class NeverRaises(SynchronousTestCase):
    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.lists(step, max_size=60), st.booleans())
    def test_any_sequence(self, steps, strict):
        chk = Checker(CheckerConfig(on_error=_raise, strict=strict))
        t = 1000.0
        for n, (sender, msg, dt, fwd) in enumerate(steps):
            t += dt
            chk.tick(t)
            text = msg if isinstance(msg, str) else json.dumps(msg)
            chk.feed(sender, _analyse(text), t, n, forwarded=fwd)
            if not fwd:
                chk.forwarded(n, t + 0.5)
            chk.next_deadline()
        chk.finish(t + 1.0)
        json.dumps(chk.summary())


def _sides(lines):
    """Per-side message lists with, for each ReceptionStatus, the subject it must follow."""
    out = {"RM": [], "CEM": []}
    for n, line in enumerate(lines):
        out[line["sender"]].append(n)
    return out


def _findings(lines, order):
    chk = Checker(CheckerConfig(on_error=_raise))
    base = 1748858400.0
    got = []
    for i, n in enumerate(order):
        t = base + 0.001 * i
        line = lines[n]
        got.extend(chk.tick(t))
        got.extend(chk.feed(line["sender"], _analyse(json.dumps(line["message"])), t, n))
    got.extend(chk.finish(base + 0.001 * len(order) + 0.5))
    return sorted((f["rule"], f["severity"], f["ref"]) for f in got)


def _interleavings(lines):
    """A strategy of orders that keep each side's order and put each status after its subject."""
    sides = _sides(lines)
    subject_of = {}
    line_of = {}
    for n, line in enumerate(lines):
        m = line["message"]
        if "message_id" in m:
            line_of[m["message_id"]] = n
    for n, line in enumerate(lines):
        s = line["message"].get("subject_message_id")
        if s in line_of:
            subject_of[n] = line_of[s]

    @st.composite
    def order(draw):
        pos = {"RM": 0, "CEM": 0}
        done = set()
        out = []
        while len(out) < len(lines):
            ready = []
            for side in ("RM", "CEM"):
                if pos[side] < len(sides[side]):
                    n = sides[side][pos[side]]
                    if subject_of.get(n) is None or subject_of[n] in done:
                        ready.append(side)
            side = ready[0] if len(ready) == 1 else draw(st.sampled_from(ready))
            n = sides[side][pos[side]]
            pos[side] += 1
            done.add(n)
            out.append(n)
        return out
    return order()


def _with_findings(lines):
    # Order-independent defects, so that "the same findings" is not just "no findings".
    lines[0]["message"]["supported_protocol_versions"] = ["0.0.2-beta", "0.0.2-beta"]
    for line in lines:
        if line["message"]["message_type"] == "ResourceManagerDetails":
            line["message"]["available_control_types"].append("NO_SELECTION")
    return lines


FRBC_LINES = _with_findings(frbc())
PEBC_LINES = _with_findings(pebc())


class Interleavings(SynchronousTestCase):
    def check(self, lines, order):
        expected = _findings(lines, list(range(len(lines))))
        self.assertEqual(_findings(lines, order), expected)
        self.assertEqual({r for r, _, _ in expected}, {"R-014", "R-027"})

    @settings(max_examples=60, deadline=None)
    @given(_interleavings(FRBC_LINES))
    def test_frbc(self, order):
        self.check(FRBC_LINES, order)

    @settings(max_examples=60, deadline=None)
    @given(_interleavings(PEBC_LINES))
    def test_pebc(self, order):
        self.check(PEBC_LINES, order)

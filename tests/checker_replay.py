"""Replay transcripts (JSON lines {"sender", "message", "time"?}) through Validator + Checker.

Shared by the checker tests: `replay(lines)` returns every finding (format findings included)
with finding["ref"] = the 1-based line of the message the finding is about.
"""

import json
import os

from s2proxy.checker import Checker, CheckerConfig
from s2proxy.checker.ids import parse_time

HERE = os.path.join(os.path.dirname(__file__), "fixtures", "transcripts")
_validator = None


def validator():
    global _validator
    if _validator is None:
        from s2proxy.validation import Validator
        _validator = Validator()
    return _validator


def load(name):
    """The transcript fixture `name` (without .jsonl) as a list of dicts."""
    with open(os.path.join(HERE, name + ".jsonl")) as f:
        return [json.loads(line) for line in f if line.strip()]


def _raise(rule, exc):
    raise exc


def replay(lines, cfg=None, end=None, close_delay=0.49):
    """Feed `lines` (dicts) to a fresh Checker; returns (findings, checker).

    Times come from "time" (RFC 3339) or 0.1 s after the previous line; the session ends at
    `end` or close_delay after the last line (§7: the WebSocket closes 490 ms after it).
    """
    cfg = cfg or CheckerConfig(on_error=_raise)
    chk = Checker(cfg)
    v = validator()
    out = []
    t = 1748858400.0
    for n, line in enumerate(lines, 1):
        if "time" in line:
            t = parse_time(line["time"])
        elif n > 1:
            t += 0.1
        out.extend(chk.tick(t))
        msg = line["message"]
        raw = msg if isinstance(msg, str) else json.dumps(msg)
        a = v.analyse(raw)
        for f in a.findings:
            f = dict(f, ref=n, message_id=a.message_id, message_type=a.message_type)
            out.append(f)
        out.extend(chk.feed(line["sender"], a, t, n))
    out.extend(chk.finish(end if end is not None else t + close_delay))
    return out, chk

"""``python -m s2proxy check``: the stateful rules applied offline to recorded conversations.

A transcript is JSON lines, one message per line (the format of S2-PROTOCOL.md §7):
    {"sender": "RM"|"CEM", "message": <object, or the raw frame text as a string>, "time": "<RFC 3339>"}
"time" is optional (a line without it comes 0.1 s after the previous one). Two extra line kinds are
understood: {"sender": ..., "ping": true, "time": ...} (a WebSocket ping, R-009) and
{"closed": true, "time": ...} (the WebSocket closed; default: at the last line's time).
Each FILE is one session. Output: one JSON line per finding, format findings (R-001..R-006)
included:  {"line": N, "rule": "R-xxx", "severity": ..., "message_type": ..., "message_id": ...,
"text": ...} (+ "path" for content findings, + "file" when several files are given), where N is
the 1-based line of the message the finding is about.
"""

import argparse
import json
import sys
import xml.etree.ElementTree as ET
from dataclasses import fields

from s2proxy.checker import Checker, CheckerConfig
from s2proxy.checker.ids import parse_time
from s2proxy.checker.rules import GROUPS, group_of

DESCRIPTION = __doc__.split("\n", 2)[2] + """
exit status: 0 no error finding, 1 at least one error finding, 2 usage or I/O error."""

_DURATIONS = [f.name for f in fields(CheckerConfig) if f.name.startswith("t_")]


class TranscriptError(Exception):
    pass


def _parser():
    p = argparse.ArgumentParser(prog="python -m s2proxy check", description=DESCRIPTION,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("files", nargs="+", metavar="FILE", help="transcript (JSON lines), - for standard input")
    p.add_argument("--schemas", metavar="DIR", default=None,
                   help="the s2-json-schema folder of an s2-ws-json checkout (default: the shipped copy)")
    p.add_argument("--strict", action="store_true",
                   help="strict mode: ids that are not UUIDs (R-006) are errors")
    p.add_argument("--junit", metavar="FILE", default=None,
                   help="also write a JUnit XML report (one testcase per rule group of §6)")
    p.add_argument("--set", metavar="NAME=SECONDS", action="append", default=[],
                   help="override a duration of the checker (%s)" % ", ".join(_DURATIONS))
    return p


def _read_lines(name, stdin):
    if name == "-":
        return stdin.read().splitlines()
    with open(name, "rb") as f:
        return f.read().splitlines()


def check_file(name, raw_lines, validator, cfg):
    """Replay one transcript; returns [(line number, finding)]."""
    chk = Checker(cfg)
    out = []
    t = None
    end = None
    for number, raw in enumerate(raw_lines, 1):
        if not raw.strip():
            continue
        try:
            line = json.loads(raw)
        except ValueError as e:
            raise TranscriptError("%s:%d: not a JSON line: %s" % (name, number, e))
        if not isinstance(line, dict):
            raise TranscriptError("%s:%d: a transcript line must be a JSON object" % (name, number))
        if "time" in line:
            when = parse_time(line["time"])
            if when is None:
                raise TranscriptError("%s:%d: time %r is not an RFC 3339 date-time"
                                      % (name, number, line["time"]))
            t = when if t is None else max(t, when)
        else:
            t = 0.0 if t is None else t + 0.1
        if line.get("closed"):
            end = t
            break
        sender = line.get("sender")
        if sender not in ("RM", "CEM"):
            raise TranscriptError("%s:%d: sender must be \"RM\" or \"CEM\"" % (name, number))
        out.extend((f["ref"], f) for f in chk.tick(t))
        if line.get("ping"):
            out.extend((number, f) for f in chk.ping(sender, t, number))
            continue
        if "message" not in line:
            raise TranscriptError("%s:%d: no \"message\"" % (name, number))
        msg = line["message"]
        text = msg if isinstance(msg, str) else json.dumps(msg)
        a = validator.analyse(text)
        for f in a.findings:
            out.append((number, dict(f, message_type=a.message_type, message_id=a.message_id)))
        out.extend((number, f) for f in chk.feed(sender, a, t, number))
    if t is not None:
        out.extend((f["ref"], f) for f in chk.finish(end if end is not None else t))
    return out


def _record(name, number, f, many):
    rec = {"line": number, "rule": f["rule"], "severity": f["severity"],
           "message_type": f.get("message_type"), "message_id": f.get("message_id"), "text": f["text"]}
    if f.get("path"):
        rec["path"] = f["path"]
    if many:
        rec["file"] = name
    return rec


def junit(results):
    """JUnit XML: a testsuite per file, a testcase per rule group; every error finding is a
    <failure>, warnings and infos are listed in the testcase's <system-out>."""
    root = ET.Element("testsuites", name="s2proxy check")
    for name, records in results:
        suite = ET.SubElement(root, "testsuite", name=name)
        failures = 0
        for number, title, lo, hi in GROUPS:
            case = ET.SubElement(suite, "testcase", classname="s2proxy.check", name="%s %s (R-%03d..R-%03d)"
                                 % (number, title, lo, hi))
            mine = [r for r in records if (group_of(r["rule"]) or ("6.1",))[0] == number]
            notes = []
            for r in mine:
                text = "%s line %s: %s %s: %s" % (r["rule"], r["line"], r["message_type"],
                                                  r["message_id"], r["text"])
                if r["severity"] == "error":
                    failures += 1
                    ET.SubElement(case, "failure", type=r["rule"], message="%s (line %s): %s"
                                  % (r["rule"], r["line"], r["text"])).text = text
                else:
                    notes.append("%s %s" % (r["severity"], text))
            if notes:
                ET.SubElement(case, "system-out").text = "\n".join(notes)
        suite.set("tests", str(len(GROUPS)))
        suite.set("failures", str(failures))
        suite.set("errors", "0")
    return ET.ElementTree(root)


def main(argv=None, stdin=None, stdout=None, stderr=None):
    stdin = stdin if stdin is not None else sys.stdin.buffer
    stdout = stdout if stdout is not None else sys.stdout
    stderr = stderr if stderr is not None else sys.stderr
    args = _parser().parse_args(argv)
    overrides = {}
    for item in args.set:
        key, _, value = item.partition("=")
        try:
            if key not in _DURATIONS:
                raise ValueError
            overrides[key] = float(value)
        except ValueError:
            print("s2proxy check: --set %s: expected one of %s = seconds" % (item, ", ".join(_DURATIONS)),
                  file=stderr)
            return 2
    from s2proxy.schemas import SchemaDirError
    from s2proxy.validation import Validator
    try:
        validator = Validator(args.schemas, strict=args.strict)
    except SchemaDirError as e:
        print("s2proxy check: %s" % e, file=stderr)
        return 2
    try:
        inputs = [(name, _read_lines(name, stdin)) for name in args.files]
    except OSError as e:
        print("s2proxy check: cannot read %s: %s" % (e.filename, e.strerror or e), file=stderr)
        return 2
    many = len(inputs) > 1
    results = []
    errors = 0
    try:
        for name, raw_lines in inputs:
            cfg = CheckerConfig(strict=args.strict, **overrides)
            found = check_file(name, raw_lines, validator, cfg)
            records = [_record(name, n, f, many) for n, f in found]
            errors += sum(1 for r in records if r["severity"] == "error")
            for r in records:
                stdout.write(json.dumps(r) + "\n")
            results.append((name, records))
    except TranscriptError as e:
        print("s2proxy check: %s" % e, file=stderr)
        return 2
    stdout.flush()
    if args.junit:
        try:
            junit(results).write(args.junit, encoding="utf-8", xml_declaration=True)
        except OSError as e:
            print("s2proxy check: cannot write %s: %s" % (args.junit, e.strerror or e), file=stderr)
            return 2
    return 1 if errors else 0

"""`python -m s2proxy check` run as a real subprocess: output lines, exit codes, JUnit report."""

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET

from twisted.trial.unittest import TestCase

from tests.checker_mutate import at, frbc, mid, rs_of

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "tests", "fixtures", "transcripts")


def run(*args, stdin=None):
    p = subprocess.run([sys.executable, "-m", "s2proxy", "check"] + list(args), cwd=ROOT,
                       input=stdin, capture_output=True, timeout=120)
    lines = [json.loads(x) for x in p.stdout.decode().splitlines() if x.strip()]
    return p.returncode, lines, p.stderr.decode()


class CheckCommandTests(TestCase):
    def write(self, lines, name="t.jsonl"):
        path = os.path.abspath(self.mktemp())
        os.makedirs(path)
        path = os.path.join(path, name)
        with open(path, "w") as f:
            for line in lines:
                f.write((line if isinstance(line, str) else json.dumps(line)) + "\n")
        return path

    def test_examples_are_clean(self):
        rc, out, err = run(os.path.join(FIXTURES, "frbc_example.jsonl"),
                           os.path.join(FIXTURES, "pebc_example.jsonl"))
        self.assertEqual((rc, out), (0, []), err)

    def test_error_finding_and_line_numbers(self):
        lines = frbc()
        del lines[rs_of(lines, mid("b", 17))]          # StorageStatus on line 45 gets no status
        lines[at(lines, mid("b", 6))]["message"]["message_id"] = mid("b", 5)   # R-007 on line 17
        rc, out, err = run(self.write(lines))
        self.assertEqual(rc, 1, err)
        got = {(r["rule"], r["severity"], r["line"]) for r in out}
        self.assertIn(("R-007", "error", 17), got)
        self.assertIn(("R-038", "error", 45), got)
        self.assertIn(("R-039", "warning", 45), got)
        r = [r for r in out if r["rule"] == "R-007"][0]
        self.assertEqual(set(r), {"line", "rule", "severity", "message_type", "message_id", "text"})
        self.assertEqual((r["message_type"], r["message_id"]), ("FRBC.StorageStatus", mid("b", 5)))

    def test_format_findings_and_raw_strings(self):
        lines = frbc()
        lines[at(lines, mid("b", 17))]["message"] = "{\"message_type\": \"FRBC.StorageStatus\", NaN}"
        rc, out, err = run(self.write(lines))
        self.assertEqual(rc, 1, err)
        got = {(r["rule"], r["line"]) for r in out}
        self.assertIn(("R-002", 45), got)
        self.assertIn(("R-040", 46), got)          # the status names an id nobody sent now

    def test_warnings_only_exit_zero_and_strict(self):
        lines = frbc()
        lines[0]["message"]["message_id"] = "rm-handshake-1"
        lines[1]["message"]["subject_message_id"] = "rm-handshake-1"
        path = self.write(lines)
        rc, out, err = run(path)
        self.assertEqual(rc, 0, err)
        self.assertEqual({(r["rule"], r["severity"]) for r in out}, {("R-006", "warning")})
        rc, out, err = run("--strict", path)
        self.assertEqual(rc, 1, err)
        self.assertEqual({(r["rule"], r["severity"]) for r in out}, {("R-006", "error")})

    def test_times_default_to_100ms_apart(self):
        lines = [{"sender": "RM", "message": {"message_type": "Handshake", "message_id": mid("b", 1),
                                              "role": "RM", "supported_protocol_versions": ["0.0.2-beta"]}}]
        lines += [{"sender": "RM", "ping": True}] * 60       # 6 s later, no status yet
        rc, out, err = run(self.write(lines))
        got = [(r["rule"], r["line"]) for r in out]
        self.assertIn(("R-039", 1), got)
        self.assertIn(("R-009", 3), got)              # pings 0.1 s apart
        self.assertEqual([r for r in out if r["rule"] == "R-038"][0]["severity"], "error")

    def test_junit(self):
        lines = frbc()
        del lines[rs_of(lines, mid("b", 17))]
        report = os.path.abspath(self.mktemp() + ".xml")
        rc, out, err = run("--junit", report, self.write(lines), os.path.join(FIXTURES, "pebc_example.jsonl"))
        self.assertEqual(rc, 1, err)
        self.assertTrue(all("file" in r for r in out))
        root = ET.parse(report).getroot()
        suites = root.findall("testsuite")
        self.assertEqual(len(suites), 2)
        cases = suites[0].findall("testcase")
        self.assertEqual(len(cases), 11)
        rs_case = [c for c in cases if c.get("name").startswith("6.4 ")][0]
        self.assertEqual([f.get("type") for f in rs_case.findall("failure")], ["R-038"])
        self.assertIn("R-039", rs_case.find("system-out").text)
        self.assertEqual(suites[0].get("failures"), "1")
        self.assertEqual(suites[1].get("failures"), "0")
        self.assertEqual(suites[1].findall("testcase/failure"), [])

    def test_usage_and_io_errors(self):
        rc, out, err = run(os.path.join(FIXTURES, "no-such-file.jsonl"))
        self.assertEqual(rc, 2)
        self.assertIn("no-such-file", err)
        rc, out, err = run(self.write(["{\"sender\": \"XX\", \"message\": {}}"]))
        self.assertEqual(rc, 2)
        self.assertIn(":1:", err)
        rc, out, err = run(self.write(["not json"]))
        self.assertEqual(rc, 2)
        rc, out, err = run("--set", "t_rs=abc", os.path.join(FIXTURES, "frbc_example.jsonl"))
        self.assertEqual(rc, 2)
        rc, out, err = run()
        self.assertEqual(rc, 2)

    def test_durations_configurable(self):
        lines = frbc()
        rc, out, err = run("--set", "t_close=0.1", self.write(lines + [{"closed": True, "time": "2025-06-02T10:05:21Z"}]))
        self.assertEqual(rc, 0, err)
        self.assertEqual([(r["rule"], r["line"]) for r in out], [("R-036", 47)])

"""Tests of ``python -m s2proxy validate``, run as a real subprocess, and of the installed package."""

import json
import os
import shutil
import subprocess
import sys

from twisted.trial.unittest import SkipTest, TestCase

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(REPO, "tests", "fixtures", "messages")
UUID = "5f0c1d2e-3a4b-4c5d-8e9f-0a1b2c3d4e5f"
VALID = json.dumps({"message_type": "SessionRequest", "message_id": UUID, "request": "TERMINATE"})
INVALID = json.dumps({"message_type": "SessionRequest", "message_id": UUID, "request": "LATER"})


def run(args, stdin=b"", cwd=None, pythonpath=REPO):
    env = dict(os.environ)
    env["PYTHONPATH"] = pythonpath  # the checkout's code, whatever is installed in the venv
    proc = subprocess.run([sys.executable, "-m", "s2proxy"] + list(args), input=stdin, cwd=cwd or REPO,
                          env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
    lines = [json.loads(line) for line in proc.stdout.decode("utf-8").splitlines()]
    return proc.returncode, lines, proc.stderr.decode("utf-8")


class ValidateCommandTests(TestCase):
    def write(self, text, mode="w"):
        path = os.path.abspath(self.mktemp())
        with open(path, mode) as f:
            f.write(text)
        return path

    def test_all_valid_exits_0(self):
        path = self.write(VALID + "\n" + VALID + "\n")
        code, lines, err = run(["validate", path])
        self.assertEqual((code, err), (0, ""))
        self.assertEqual(lines, [{"file": path, "line": n, "message_type": "SessionRequest", "message_id": UUID,
                                  "valid": True, "errors": []} for n in (1, 2)])

    def test_any_invalid_exits_1_with_findings(self):
        path = self.write(VALID + "\n\n   \n" + INVALID + "\nNaN\n")
        code, lines, err = run(["validate", path])
        self.assertEqual(code, 1)
        self.assertEqual([line["line"] for line in lines], [1, 4, 5])  # blank lines skipped, still counted
        self.assertEqual([line["valid"] for line in lines], [True, False, False])
        error = lines[1]["errors"][0]
        self.assertEqual(set(error), {"rule", "severity", "path", "text"})
        self.assertEqual((error["rule"], error["severity"], error["path"]), ("R-004", "error", "$.request"))
        self.assertIn('"LATER"', error["text"])
        self.assertEqual(lines[2]["errors"][0]["rule"], "R-002")
        self.assertIsNone(lines[2]["message_type"])

    def test_warnings_alone_keep_a_line_valid(self):
        message = json.dumps({"message_type": "SessionRequest", "message_id": "req-1", "request": "TERMINATE"})
        code, lines, _ = run(["validate", "-"], stdin=message.encode() + b"\n")
        self.assertEqual(code, 0)
        self.assertTrue(lines[0]["valid"])
        self.assertEqual([(e["rule"], e["severity"]) for e in lines[0]["errors"]], [("R-006", "warning")])
        code, lines, _ = run(["validate", "--strict", "-"], stdin=message.encode() + b"\n")
        self.assertEqual(code, 1)
        self.assertEqual([(e["rule"], e["severity"]) for e in lines[0]["errors"]], [("R-006", "error")])

    def test_stdin_and_files_together(self):
        path = self.write(VALID + "\n")
        code, lines, _ = run(["validate", path, "-"], stdin=(INVALID + "\r\n").encode())
        self.assertEqual(code, 1)
        self.assertEqual([(line["file"], line["line"], line["valid"]) for line in lines],
                         [(path, 1, True), ("-", 1, False)])

    def test_every_fixture(self):
        valid, invalid = [], []
        for name in sorted(os.listdir(FIXTURES)):
            with open(os.path.join(FIXTURES, name)) as f:
                examples = json.load(f)
            valid += [json.dumps(m) for m in examples["valid"]]
            invalid += [json.dumps(c["message"]) for c in examples["invalid"]]
        code, lines, _ = run(["validate", self.write("\n".join(valid) + "\n")])
        self.assertEqual((code, len(lines)), (0, 35))
        code, lines, _ = run(["validate", self.write("\n".join(invalid))])  # no final newline
        self.assertEqual((code, len(lines)), (1, len(invalid)))
        self.assertFalse(any(line["valid"] for line in lines))

    def test_binary_garbage_and_invalid_utf8(self):
        path = self.write(b"\xff\xfe{}\n" + b"[" * 200000 + b"\n", mode="wb")
        code, lines, err = run(["validate", path])
        self.assertEqual((code, err), (1, ""))
        self.assertEqual([line["errors"][0]["rule"] for line in lines], ["R-002", "R-002"])

    def test_unreadable_file_exits_2(self):
        missing = os.path.join(os.path.abspath(self.mktemp()), "missing.jsonl")
        code, lines, err = run(["validate", self.write(VALID + "\n"), missing])
        self.assertEqual((code, lines), (2, []))  # nothing is written before all inputs are open
        self.assertIn("cannot read", err)
        self.assertIn("missing.jsonl", err)

    def test_directory_as_file_exits_2(self):
        code, _, err = run(["validate", REPO])
        self.assertEqual(code, 2)
        self.assertIn("cannot read", err)

    def test_usage_errors_exit_2(self):
        for args in (["validate"], ["validate", "--no-such-flag", "-"], [], ["frobnicate"]):
            code, lines, err = run(args)
            self.assertEqual(code, 2, args)
            self.assertEqual(lines, [])
            self.assertIn("usage", err.lower(), args)

    def test_bad_schema_dir_names_the_flag(self):
        code, lines, err = run(["validate", "--schemas", os.path.abspath(self.mktemp()), "-"], stdin=VALID.encode())
        self.assertEqual((code, lines), (2, []))
        self.assertIn("--schemas", err)

    def test_explicit_schema_dir(self):
        schema_dir = os.path.join(REPO, "s2-ws-json", "s2-json-schema")
        code, lines, _ = run(["validate", "--s2-json-schemas-dir", schema_dir, "-"], stdin=VALID.encode())
        self.assertEqual(code, 0)
        self.assertTrue(lines[0]["valid"])

    def test_help(self):
        proc = subprocess.run([sys.executable, "-m", "s2proxy", "validate", "--help"], cwd=REPO,
                              env=dict(os.environ, PYTHONPATH=REPO), stdout=subprocess.PIPE, timeout=60)
        self.assertEqual(proc.returncode, 0)
        self.assertIn(b"Blank lines", proc.stdout)
        proc = subprocess.run([sys.executable, "-m", "s2proxy", "--help"], cwd=REPO,
                              env=dict(os.environ, PYTHONPATH=REPO), stdout=subprocess.PIPE, timeout=60)
        self.assertEqual(proc.returncode, 0)
        self.assertIn(b"validate", proc.stdout)


class InstalledPackageTests(TestCase):
    """The package built and installed outside the checkout finds its schemas without flags."""

    def test_installed_package_finds_its_schemas(self):
        try:
            subprocess.run([sys.executable, "-m", "pip", "--version"], check=True, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=60)
        except (OSError, subprocess.CalledProcessError):
            raise SkipTest("pip is not available to {}".format(sys.executable))
        base = os.path.abspath(self.mktemp())
        source, target, elsewhere = (os.path.join(base, d) for d in ("source", "target", "elsewhere"))
        # Build from a copy, so the build leaves nothing in the checkout and runs outside it.
        shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(
            ".venv", ".git", "_trial_temp*", "build", "dist", "*.egg-info", "__pycache__", "_schemas"))
        os.makedirs(elsewhere)
        proc = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                               "--no-build-isolation", "--target", target, source],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=600)
        self.assertEqual(proc.returncode, 0, proc.stderr.decode("utf-8", "replace")[-2000:])
        # Take the schemas away from the copy: only the installed package data can be found.
        shutil.rmtree(source)

        probe = ("import s2proxy, s2proxy.schemas as s; print(s2proxy.__file__); print(s.find_schema_dir())")
        env = dict(os.environ, PYTHONPATH=target)
        out = subprocess.run([sys.executable, "-c", probe], cwd=elsewhere, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, timeout=120)
        self.assertEqual(out.returncode, 0, out.stderr)
        module_file, schema_dir = out.stdout.decode().splitlines()
        self.assertTrue(module_file.startswith(target), module_file)
        self.assertEqual(schema_dir, os.path.join(target, "s2proxy", "_schemas"))

        code, lines, err = run(["validate", "-"], stdin=(VALID + "\n" + INVALID + "\n").encode(),
                               cwd=elsewhere, pythonpath=target)
        self.assertEqual(code, 1, err)
        self.assertEqual([line["valid"] for line in lines], [True, False])

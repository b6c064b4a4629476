"""Helpers for the browser tests: a real daemon process, devices on the sync ``websockets``
client, and headless Debian chromium driven by Playwright's sync API.

Playwright's sync API runs its own event loop and cannot share a thread with trial's reactor, so
the browser tests are SynchronousTestCases: the daemon is a subprocess and the devices are plain
blocking clients.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

from tests.common import free_port

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ARTIFACTS = os.path.join(ROOT, "test-artifacts")


def why_no_browser():
    """None when the browser tests can run, else the reason they are skipped."""
    if not os.path.exists(CHROMIUM):
        return "%s is missing (apt-get install chromium; .ci/run installs it)" % CHROMIUM
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (pip install playwright; never `playwright install`)"
    try:
        import websockets.sync.client  # noqa: F401
    except ImportError:
        return "the websockets package is not installed"
    return None




class Daemon:
    """``python -m twisted s2analyzer`` on a free loopback port with a private data directory."""

    def __init__(self, *extra):
        self.port = free_port()
        self.data_dir = tempfile.mkdtemp(prefix="s2proxy-browser-")
        self.log = open(os.path.join(self.data_dir, "daemon.log"), "wb")
        env = dict(os.environ, PYTHONPATH=ROOT)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "twisted", "s2analyzer",
             "--port", "tcp:%d:interface=127.0.0.1" % self.port, "--data-dir", self.data_dir] + list(extra),
            cwd=self.data_dir, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        self.url = "http://127.0.0.1:%d" % self.port
        deadline = time.monotonic() + 30
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError("the daemon exited with %s:\n%s" % (self.proc.returncode, self.output()))
            try:
                with urllib.request.urlopen(self.url + "/backend/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the daemon did not answer /backend/health:\n" + self.output())
            time.sleep(0.1)

    def output(self):
        self.log.flush()
        with open(self.log.name, "rb") as f:
            return f.read().decode("utf-8", "replace")[-4000:]

    def get_json(self, path):
        with urllib.request.urlopen(self.url + path, timeout=10) as r:
            return json.loads(r.read())

    def device_url(self, role, rm_id, cem_id):
        if role == "RM":
            return "ws://127.0.0.1:%d/backend/rm/%s/cem/%s/ws" % (self.port, rm_id, cem_id)
        return "ws://127.0.0.1:%d/backend/cem/%s/rm/%s/ws" % (self.port, cem_id, rm_id)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.log.close()
        shutil.rmtree(self.data_dir, ignore_errors=True)


class Pair:
    """An RM and a CEM connected through the daemon; send() passes one message and waits for it
    to arrive at the other side, so the conversation happens in a known order."""

    def __init__(self, daemon, rm_id, cem_id):
        from websockets.sync.client import connect
        self.rm = connect(daemon.device_url("RM", rm_id, cem_id), open_timeout=10)
        self.cem = connect(daemon.device_url("CEM", rm_id, cem_id), open_timeout=10)
        self.sides = {"RM": self.rm, "CEM": self.cem}

    def send(self, sender, message):
        text = message if isinstance(message, str) else json.dumps(message)
        self.sides[sender].send(text)
        receiver = self.sides["CEM" if sender == "RM" else "RM"]
        got = receiver.recv(timeout=10)
        if got != text:
            raise AssertionError("forwarded text differs: %r != %r" % (got, text))

    def close(self):
        for ws in (self.rm, self.cem):
            try:
                ws.close()
            except Exception:
                pass


def check_transcript(path):
    """Run ``python -m s2proxy check`` on a file: (exit code, parsed finding lines, stderr)."""
    env = dict(os.environ, PYTHONPATH=ROOT)
    proc = subprocess.run([sys.executable, "-m", "s2proxy", "check", path], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    findings = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    return proc.returncode, findings, proc.stderr


def artifact(name):
    os.makedirs(ARTIFACTS, exist_ok=True)
    return os.path.join(ARTIFACTS, name)

"""`twistd s2analyzer` as users run it: options, start-up errors, a real process on loopback."""

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

from twisted.internet import threads
from twisted.python import usage
from twisted.trial import unittest

from s2proxy import tap
from tests.common import free_port, stop_process  # noqa: F401 (free_port: imported from here by other tests)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def twistd_command():
    script = os.path.join(os.path.dirname(sys.executable), "twistd")
    if os.path.exists(script):
        return [sys.executable, script]
    return [sys.executable, "-m", "twisted"]


def child_env(**extra):
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env




def wait_for_port(port, process, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError("twistd exited early with %s" % process.returncode)
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError("twistd did not listen on %d within %.0f s" % (port, timeout))


class OptionTests(unittest.TestCase):
    """Every bad value stops start-up with a message that names it."""

    def parse(self, *args, env=None):
        options = tap.Options()
        old = os.environ.get("LOG_LEVEL")
        if env is not None:
            os.environ["LOG_LEVEL"] = env
        try:
            options.parseOptions(list(args))
        finally:
            if env is not None:
                if old is None:
                    del os.environ["LOG_LEVEL"]
                else:
                    os.environ["LOG_LEVEL"] = old
        return options

    def assertUsage(self, fragment, *args, env=None):
        e = self.assertRaises(usage.UsageError, self.parse, *args, env=env)
        self.assertIn(fragment, str(e))

    def test_port_number_means_tcp(self):
        self.assertEqual(self.parse("--port", "8001")["port"], "tcp:8001")
        self.assertEqual(self.parse("--port", "tcp:9:interface=127.0.0.1")["port"], "tcp:9:interface=127.0.0.1")

    def test_bad_port(self):
        self.assertUsage("--port", "--port", "nonsense:1")

    def test_missing_schema_folder_names_the_flag(self):
        self.assertUsage("--schemas", "--schemas", "/nonexistent/s2-json-schema")
        empty = tempfile.mkdtemp()
        self.addCleanup(os.rmdir, empty)
        self.assertUsage("--schemas", "--s2-json-schemas-dir", empty)

    def test_old_schema_flag_is_accepted(self):
        folder = os.path.join(ROOT, "s2-ws-json", "s2-json-schema")
        self.assertEqual(self.parse("--s2-json-schemas-dir", folder)["schemas"], folder)

    def test_log_level(self):
        self.assertEqual(self.parse(env="debug")["log-level"], "debug")
        self.assertUsage("LOG_LEVEL", env="chatty")
        self.assertUsage("--log-level", "--log-level", "chatty")

    def test_analysis_workers(self):
        self.assertIsNone(self.parse()["analysis-workers"])
        self.assertEqual(self.parse("--analysis-workers", "0")["analysis-workers"], 0)
        self.assertUsage("--analysis-workers", "--analysis-workers", "4")

    def test_numbers(self):
        self.assertUsage("--max-kept-messages", "--max-kept-messages", "many")
        self.assertUsage("--max-message-size", "--max-message-size", "-5")
        self.assertUsage("--auto-ping-interval", "--auto-ping-interval", "soon")

    def test_websocket_protocol_option(self):
        options = self.parse("--websocket-protocol-option", "autoPingInterval=30",
                             "--websocket-protocol-option", 'allowedOrigins=["https://x"]')
        self.assertEqual(options["websocket-protocol-option"],
                         {"autoPingInterval": 30, "allowedOrigins": ["https://x"]})
        self.assertUsage("--websocket-protocol-option", "--websocket-protocol-option", "autoPingInterval")
        self.assertUsage("not JSON", "--websocket-protocol-option", "x=nope")

    def test_checker_option(self):
        self.assertEqual(self.parse("--checker-option", "t_rs=2")["checker-option"], {"t_rs": 2.0})
        self.assertUsage("unknown duration", "--checker-option", "t_nope=2")
        self.assertUsage("NAME=SECONDS", "--checker-option", "t_rs=soon")

    def test_settings(self):
        settings = tap.settings_from_options(self.parse("--no-validate", "--mirror-close", "--strict"))
        self.assertFalse(settings["validate"])
        self.assertTrue(settings["mirror_close"])
        self.assertTrue(settings["strict"])


class ProcessTests(unittest.TestCase):
    """The real `twistd s2analyzer` in a subprocess."""

    def run_twistd(self, *args, **env):
        return subprocess.run(twistd_command() + ["--nodaemon", "--pidfile=", "s2analyzer"] + list(args),
                              cwd=tempfile.mkdtemp(), env=child_env(**env), capture_output=True,
                              text=True, timeout=60)

    def test_help_documents_every_option(self):
        result = self.run_twistd("--help")
        self.assertEqual(result.returncode, 0, result.stderr)
        for name, _, _, *rest in tap.Options.optParameters:
            self.assertIn("--" + name, result.stdout)
        for name, _, _ in tap.Options.optFlags:
            self.assertIn("--" + name, result.stdout)
        for name in ("--s2-json-schemas-dir", "--websocket-protocol-option", "--checker-option"):
            self.assertIn(name, result.stdout)

    def test_bad_flag_stops_startup(self):
        result = self.run_twistd("--schemas", "/nonexistent")
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("--schemas", result.stdout + result.stderr)
        result = self.run_twistd("--port", "tcp:8001", "--frobnicate")
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("frobnicate", result.stdout + result.stderr)

    def test_forwards_and_logs_findings(self):
        from websockets.sync.client import connect
        port = free_port()
        workdir = tempfile.mkdtemp()
        logfile = os.path.join(workdir, "s2.log")
        process = subprocess.Popen(
            twistd_command() + ["--nodaemon", "--pidfile=", "--logfile", logfile, "s2analyzer",
                                "--port", "tcp:%d:interface=127.0.0.1" % port],
            cwd=workdir, env=child_env(LOG_LEVEL="DEBUG"),
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

        def stop():
            stop_process(process)
            process.stdout.close()
        self.addCleanup(stop)

        def talk():
            wait_for_port(port, process)
            base = "ws://127.0.0.1:%d/backend/" % port
            with connect(base + "rm/rm-7/cem/cem-7/ws", open_timeout=10) as rm, \
                    connect(base + "cem/cem-7/rm/rm-7/ws", open_timeout=10) as cem:
                rm.send('not json at all')
                rm.send(' {"message_type": "Handshake"} ')
                return [cem.recv(timeout=10), cem.recv(timeout=10)]
        return threads.deferToThread(talk).addCallback(self._check_process, process, logfile, stop)

    def _check_process(self, got, process, logfile, stop):
        self.assertEqual(got, ['not json at all', ' {"message_type": "Handshake"} '])
        stop()
        # twistd shuts down cleanly on SIGTERM, then exits with that signal's status.
        self.assertIn(process.returncode, (0, -signal.SIGTERM))
        with open(logfile) as f:
            log = f.read()
        self.assertIn("R-002", log)
        self.assertIn("rm_id=rm-7", log)
        self.assertIn("forwarded RM", log)  # debug level is on through LOG_LEVEL

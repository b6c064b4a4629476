"""The systemd unit in contrib/: it parses, and its ExecStart line starts a working daemon."""

import configparser
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile

from twisted.internet import threads
from twisted.trial import unittest

from tests.test_twistd import ROOT, child_env, free_port, wait_for_port

UNIT = os.path.join(ROOT, "contrib", "systemd", "s2analyzer.service")


def read_unit():
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str
    with open(UNIT) as f:
        parser.read_file(f)
    return parser


class UnitTests(unittest.TestCase):

    def test_unit_runs_twistd_in_the_foreground_and_restarts(self):
        unit = read_unit()
        service = unit["Service"]
        command = shlex.split(service["ExecStart"])
        self.assertTrue(command[0].endswith("/twistd"))
        self.assertIn("--nodaemon", command)
        self.assertIn("--pidfile=", command)
        self.assertIn("s2analyzer", command)
        self.assertEqual(service["Restart"], "always")
        self.assertEqual(service["DynamicUser"], "yes")
        self.assertEqual(service["StateDirectory"], "s2analyzer")
        # Known to break pyOpenSSL's callbacks, hence TLS: must stay off.
        self.assertNotIn("MemoryDenyWriteExecute", service)

    def test_systemd_analyze_verify(self):
        analyze = shutil.which("systemd-analyze")
        if analyze is None:
            raise unittest.SkipTest("systemd-analyze is not installed")
        twistd = os.path.join(os.path.dirname(sys.executable), "twistd")
        if not os.path.exists(twistd):
            raise unittest.SkipTest("no twistd script next to %s" % sys.executable)
        folder = tempfile.mkdtemp()
        with open(UNIT) as f:
            text = f.read().replace("/opt/s2proxy/venv/bin/twistd", twistd)
        copy = os.path.join(folder, "s2analyzer.service")
        with open(copy, "w") as f:
            f.write(text)
        result = subprocess.run([analyze, "verify", copy], capture_output=True, text=True, timeout=60)
        problems = [line for line in (result.stdout + result.stderr).splitlines()
                    if "s2analyzer.service" in line]
        self.assertEqual(problems, [])

    def test_exec_start_line_starts_a_working_daemon(self):
        from websockets.sync.client import connect
        twistd = os.path.join(os.path.dirname(sys.executable), "twistd")
        if not os.path.exists(twistd):
            raise unittest.SkipTest("no twistd script next to %s" % sys.executable)
        command = shlex.split(read_unit()["Service"]["ExecStart"])
        port = free_port()
        command[0] = twistd
        command = [sys.executable] + [
            ("tcp:%d:interface=127.0.0.1" % port) if arg == "tcp:8001" else arg for arg in command]
        state = tempfile.mkdtemp()
        process = subprocess.Popen(command, cwd=state, env=child_env(STATE_DIRECTORY=state),
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

        def stop():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                process.wait(timeout=20)
            return process.stdout.read().decode("utf-8", "replace")
        self.addCleanup(lambda: process.poll() is None and process.kill())

        def talk():
            wait_for_port(port, process)
            base = "ws://127.0.0.1:%d/backend/" % port
            with connect(base + "rm/a/cem/b/ws", open_timeout=10) as rm, \
                    connect(base + "cem/b/rm/a/ws", open_timeout=10) as cem:
                cem.send('{"hello": "rm"}')
                return rm.recv(timeout=10)

        def check(got):
            output = stop()
            self.assertEqual(got, '{"hello": "rm"}')
            # --logfile=- : the journal gets the log on stdout.
            self.assertIn("opened RM connection", output)
        return threads.deferToThread(talk).addCallback(check)

"""Interoperability with the reference implementation s2-python 0.11.1, through the real proxy.

An s2-python Resource Manager (tests/interop/s2python_rm.py: the library's own connection,
handshake, ReceptionStatus and control-type handling, with an FRBC battery) and a scripted CEM
(tests/interop/scripted_cem.py: plain websockets, answering per S2-PROTOCOL.md §3, §4, §7.1) run as
subprocesses in the interop venv (``make interop-venv``: s2-python's ``ws`` extra pins websockets
13.1, which the test venv cannot share) and hold a full conversation through s2proxy: handshake,
details, control-type selection, system description, statuses, one instruction with its status
updates, deselection, and the end of the session.

Each test checks three things:

- every frame arrives byte-exact and in order at the other side (each script logs what it sent and
  received, tests/interop/framelog.py), and the proxy saw the same frames;
- the conversation really was correct (every message answered by exactly one ReceptionStatus,
  except what S2-PROTOCOL.md §4.7 documents for s2-python), so the next check means something;
- the proxy's analysis (format and stateful findings from the hub, or from the history API and
  the log of a real ``twistd s2analyzer``) reports no error or warning, except exactly the findings that §4.7 lists
  for this reference behaviour. Any other finding on this traffic is a false positive: see
  docs/interop-findings.md.

The tests skip, with the reason, only when the interop venv cannot be created (no PyPI).
"""

import base64
import collections
import json
import os
import re
import subprocess
import tempfile
import time
import urllib.request
import uuid

from twisted.internet import defer, reactor, threads, utils
from twisted.logger import LogLevel, globalLogPublisher
from twisted.trial import unittest

from tests.common import device_url, start_proxy
from tests.common import stop_process
from tests.test_twistd import child_env, free_port, twistd_command, wait_for_port

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
INTEROP = os.path.join(ROOT, "tests", "interop")
S2PYTHON_VERSION = "0.11.1"
INTEROP_VENV = os.path.join(ROOT, ".venv-interop")
STAMP = os.path.join(INTEROP_VENV, ".installed-s2-python-%s" % S2PYTHON_VERSION)

# Every type this conversation must contain (so a short-circuited run cannot pass as clean).
CONVERSATION_TYPES = {
    "Handshake", "HandshakeResponse", "ResourceManagerDetails", "SelectControlType",
    "FRBC.SystemDescription", "FRBC.ActuatorStatus", "FRBC.StorageStatus", "FRBC.TimerStatus",
    "FRBC.LeakageBehaviour", "PowerMeasurement", "FRBC.Instruction", "InstructionStatusUpdate",
    "ReceptionStatus",
}

# §4.7 (keep-alive): s2-python's websockets pings every 20 s; an info at most, on long runs only.
TOLERATED_INFO = {"R-009"}

Finding = collections.namedtuple("Finding", "rule severity message_type origin message_id text")

_venv_state = {}


def interop_python():
    """The interop venv's python, made with ``make interop-venv`` if it is missing.

    Returns (path, None), or (None, reason) when it cannot be created; the reason says why.
    """
    if "result" in _venv_state:
        return _venv_state["result"]
    python = os.environ.get("S2PROXY_INTEROP_PYTHON") or os.path.join(INTEROP_VENV, "bin", "python")
    reason = None
    if "S2PROXY_INTEROP_PYTHON" not in os.environ and not os.path.exists(STAMP):
        try:
            subprocess.run(["make", "-C", ROOT, "interop-venv"], capture_output=True, timeout=600)
        except (OSError, subprocess.SubprocessError) as e:
            reason = "could not run `make interop-venv`: %s" % e
    if reason is None:
        probe = ("import s2python, websockets; from importlib.metadata import version; "
                 "print(version('s2-python'))")
        try:
            result = subprocess.run([python, "-c", probe], capture_output=True, text=True, timeout=60)
            found = result.stdout.strip() if result.returncode == 0 else None
        except OSError:
            found = None
        if found == S2PYTHON_VERSION:
            _venv_state["result"] = (python, None)
            return _venv_state["result"]
        log = ""
        try:
            with open(INTEROP_VENV + ".log") as f:
                log = " -- pip said: " + " | ".join(f.read().strip().splitlines()[-3:])
        except OSError:
            pass
        reason = ("%s has no s2-python[ws]==%s (found: %s): `make interop-venv` could not install "
                  "it from PyPI%s" % (python, S2PYTHON_VERSION, found, log))
    _venv_state["result"] = (None, reason)
    return _venv_state["result"]


def read_framelog(path):
    """(frames, notes, end) of one script: frames are (direction, binary, payload bytes)."""
    frames, notes, end = [], [], None
    with open(path, encoding="utf-8") as f:
        for line in f:
            record = json.loads(line)
            if record["dir"] in ("sent", "recv"):
                frames.append((record["dir"], record["binary"], base64.b64decode(record["b64"])))
            elif record["dir"] == "log":
                notes.append(record)
            elif record["dir"] == "end":
                end = record
    return frames, notes, end


def sent(frames):
    return [(binary, payload) for d, binary, payload in frames if d == "sent"]


def received(frames):
    return [(binary, payload) for d, binary, payload in frames if d == "recv"]


def id_key(value):
    """Ids by value (S2-PROTOCOL.md X-1): UUID text in either case is one id."""
    try:
        return str(uuid.UUID(value))
    except (TypeError, ValueError, AttributeError):
        return value


def unanswered(sender_frames, receiver_frames):
    """Message types of the sender's messages that did not get exactly one ReceptionStatus."""
    statuses = collections.Counter(
        id_key(m["subject_message_id"]) for m in (json.loads(p) for _, p in sent(receiver_frames))
        if m.get("message_type") == "ReceptionStatus")
    problems = []
    for _, payload in sent(sender_frames):
        message = json.loads(payload)
        if message.get("message_type") == "ReceptionStatus":
            continue
        count = statuses[id_key(message["message_id"])]
        if count != 1:
            problems.append((message["message_type"], count))
    return problems


class HubRecorder:
    """Every hub event of one pairing; fires ``opened[role]`` and ``ended`` as they happen."""

    def __init__(self, rm_id, cem_id):
        self.pair = (rm_id, cem_id)
        self.events = []
        self.opened = {"RM": defer.Deferred(), "CEM": defer.Deferred()}
        self.ended = defer.Deferred()

    def __call__(self, event):
        if (event.get("rm_id"), event.get("cem_id")) != self.pair:
            return
        self.events.append(event)
        if event["event"] == "opened" and not self.opened[event["origin"]].called:
            self.opened[event["origin"]].callback(event)
        if event["event"] == "session_ended" and not self.ended.called:
            self.ended.callback(event)

    def message_events(self):
        return [e for e in self.events if "raw" in e]

    def findings(self):
        """Format and stateful findings, each with the message it is about."""
        by_seq = {e["seq"]: e for e in self.message_events()}
        found = []
        for event in self.events:
            if "raw" in event:
                about, findings = event, list(event.get("format_findings") or ()) + list(event.get("findings") or ())
            elif event["event"] == "finding":
                about, findings = by_seq.get(event.get("ref_seq"), event), event.get("findings") or ()
            else:
                continue
            for f in findings:
                found.append(Finding(f.get("rule"), f.get("severity"), about.get("message_type"),
                                     about.get("origin"), about.get("message_id") or f.get("message_id"),
                                     f.get("text")))
        return found


class ErrorLogRecorder:
    """Errors logged anywhere while a conversation runs (a checker rule that raised, for one)."""

    def __init__(self):
        self.errors = []

    def __call__(self, event):
        if event.get("log_level") in (LogLevel.error, LogLevel.critical):
            self.errors.append(event.get("log_format") or repr(event.get("log_failure")))


def describe(findings):
    return "\n".join("  %s (%s) on %s %s from %s: %s" % (f.rule, f.severity, f.message_type, f.message_id,
                                                          f.origin, f.text)
                     for f in findings) or "  (none)"


class ConversationMixin:
    """Runs the two scripts through a proxy and checks the transcripts."""

    def setUp(self):
        self.python, reason = interop_python()
        if self.python is None:
            raise unittest.SkipTest(reason)
        self.workdir = tempfile.mkdtemp(prefix="interop-")

    def script_env(self):
        env = dict(os.environ)
        env.pop("PYTHONPATH", None)     # the interop venv must not see the test venv's packages
        env["PYTHONUNBUFFERED"] = "1"
        return env

    def spawn(self, script, *args):
        """Run an interop script; fires with (stdout, stderr, exit code)."""
        d = utils.getProcessOutputAndValue(self.python, (os.path.join(INTEROP, script),) + args,
                                           env=self.script_env(), path=self.workdir)
        # A signal arrives as an errback with the same tuple; keep both shapes.
        return d.addErrback(lambda f: f.value if isinstance(f.value, tuple) else f)

    def cem_args(self, url, ending, *options):
        return [url, os.path.join(self.workdir, "cem.jsonl"), "--ending", ending] + list(options)

    def rm_args(self, url, *options):
        return [url, os.path.join(self.workdir, "rm.jsonl")] + list(options)

    def check_script(self, name, result):
        out, err, code = result
        self.assertEqual(code, 0, "%s exited with %r:\n%s" % (name, code, err.decode("utf-8", "replace")[-4000:]))
        frames, notes, end = read_framelog(os.path.join(self.workdir, name + ".jsonl"))
        self.assertTrue(end and end["ok"], "%s did not finish cleanly: %r" % (name, end))
        return frames, notes

    def check_transcripts(self, rm_frames, cem_frames, rm_notes, cem_notes, expect_unanswered_by_rm=()):
        # Byte-exact, same opcode, same order, nothing lost, nothing added.
        self.assertEqual(received(cem_frames), sent(rm_frames), "RM -> CEM frames differ")
        self.assertEqual(received(rm_frames), sent(cem_frames), "CEM -> RM frames differ")
        self.assertFalse([b for b, _ in sent(rm_frames) + sent(cem_frames) if b], "binary frames")
        types = {json.loads(p)["message_type"] for _, p in sent(rm_frames) + sent(cem_frames)}
        self.assertEqual(CONVERSATION_TYPES - types, set(), "the conversation was cut short")
        # The conversation was correct: one status for every message (§4.1), but for §4.7.
        self.assertEqual(unanswered(rm_frames, cem_frames), [], "the CEM left RM messages unanswered")
        self.assertEqual(sorted(unanswered(cem_frames, rm_frames)), sorted(expect_unanswered_by_rm))
        # Neither peer logged an error; s2-python's warnings are exactly the expected ones.
        self.assertEqual([n for n in cem_notes], [])
        expected_warnings = ["Received an event of type <class 's2python.common.session_request.SessionRequest'>"
                             " but no handler is registered. Ignoring the event."] * len(
                                 [t for t, _ in expect_unanswered_by_rm if t == "SessionRequest"])
        self.assertEqual([n["text"] for n in rm_notes], expected_warnings)

    def check_findings(self, findings, expected):
        """No error or warning except ``expected`` (rule, severity, message_type) triples, each once;
        ``optional`` ones may be there or not (message_type None: on any message)."""
        expected, optional = expected
        notable = [f for f in findings if f.severity in ("error", "warning")
                   or (f.severity == "info" and f.rule not in TOLERATED_INFO)]
        got = sorted((f.rule, f.severity, f.message_type) for f in notable
                     if (f.rule, f.severity, f.message_type) not in optional
                     and (f.rule, f.severity, None) not in optional)
        self.assertEqual(got, sorted(expected),
                         "findings on correct s2-python traffic differ from S2-PROTOCOL.md §4.7:\n"
                         + describe(notable))


class InProcessTests(ConversationMixin, unittest.TestCase):
    """The proxy's service in this process: findings straight from the hub."""

    timeout = 180

    @defer.inlineCallbacks
    def converse(self, ending, cem_options=(), rm_options=(), **settings):
        proxy = start_proxy(self, **settings)
        rm_id, cem_id = "s2python-rm-%s" % uuid.uuid4().hex[:8], "scripted-cem"
        recorder = HubRecorder(rm_id, cem_id)
        proxy.hub.subscribe(recorder)
        self.addCleanup(proxy.hub.unsubscribe, recorder)
        errors = ErrorLogRecorder()
        globalLogPublisher.addObserver(errors)
        self.addCleanup(globalLogPublisher.removeObserver, errors)

        cem = self.spawn("scripted_cem.py", *self.cem_args(device_url(proxy, "CEM", rm_id, cem_id),
                                                         ending, *cem_options))
        # The RM connects once the CEM is there, so every message is forwarded at once.
        yield recorder.opened["CEM"].addTimeout(30, reactor)
        rm = self.spawn("s2python_rm.py", *self.rm_args(device_url(proxy, "RM", rm_id, cem_id),
                                                        *rm_options))
        cem_result, rm_result = yield defer.gatherResults([cem, rm])
        yield recorder.ended.addTimeout(30, reactor)

        cem_frames, cem_notes = self.check_script("cem", cem_result)
        rm_frames, rm_notes = self.check_script("rm", rm_result)
        # The proxy saw exactly these frames, from the right side.
        forwarded = [(e["origin"], e["raw"].encode("utf-8")) for e in recorder.message_events()]
        self.assertEqual([p for o, p in forwarded if o == "RM"], [p for _, p in sent(rm_frames)])
        self.assertEqual([p for o, p in forwarded if o == "CEM"], [p for _, p in sent(cem_frames)])
        # The CEM's Handshake may wait for the RM (kept); then it must have been delivered.
        delivered = {e["ref_seq"] for e in recorder.events if e["event"] == "delivered"}
        self.assertEqual([(e["event"], e["origin"], e["message_type"]) for e in recorder.message_events()
                          if not (e["event"] == "forwarded" or e["event"] == "kept" and e["seq"] in delivered)],
                         [], "messages neither forwarded nor delivered")
        self.assertEqual(errors.errors, [], "errors were logged while the proxy analysed the conversation")
        return rm_frames, cem_frames, rm_notes, cem_notes, recorder.findings()

    @defer.inlineCallbacks
    def test_frbc_conversation_has_no_findings(self):
        """A complete FRBC conversation that ends with a plain close: nothing to report."""
        rm_frames, cem_frames, rm_notes, cem_notes, findings = yield self.converse(
            "close", mirror_close=True)
        self.check_transcripts(rm_frames, cem_frames, rm_notes, cem_notes)
        self.check_findings(findings, ([], set()))

    @defer.inlineCallbacks
    def test_upper_case_cem_ids_answered_in_lower_case(self):
        """s2-python writes the CEM's upper-case UUIDs back in lower case (§4.7, X-1): no finding."""
        rm_frames, cem_frames, rm_notes, cem_notes, findings = yield self.converse(
            "close", cem_options=["--upper-case-ids"], mirror_close=True)
        self.check_transcripts(rm_frames, cem_frames, rm_notes, cem_notes)
        cem_ids = {json.loads(p)["message_id"] for _, p in sent(cem_frames)
                   if "message_id" in json.loads(p)}
        self.assertTrue(all(i == i.upper() for i in cem_ids) and any(i != i.lower() for i in cem_ids))
        # Every status of the RM names a CEM id in another spelling than the CEM wrote it.
        subjects = [json.loads(p)["subject_message_id"] for _, p in sent(rm_frames)
                    if json.loads(p)["message_type"] == "ReceptionStatus"]
        self.assertTrue(subjects)
        self.assertEqual([s for s in subjects if s in cem_ids or s != s.lower()], [])
        self.check_findings(findings, ([], set()))

    @defer.inlineCallbacks
    def test_session_request_is_never_acknowledged(self):
        """The CEM ends with SessionRequest TERMINATE; s2-python has no handler and sends no status
        (§4.7, §3.6): exactly one R-038 warning on the SessionRequest. R-039 (a warning too) joins it
        only if closing took longer than T_rs."""
        rm_frames, cem_frames, rm_notes, cem_notes, findings = yield self.converse("session-request")
        self.check_transcripts(rm_frames, cem_frames, rm_notes, cem_notes,
                               expect_unanswered_by_rm=[("SessionRequest", 0)])
        self.check_findings(findings, ([("R-038", "warning", "SessionRequest")],
                                       {("R-039", "warning", "SessionRequest")}))


    @defer.inlineCallbacks
    def test_reselection_starts_a_new_activation(self):
        """FRBC, an instruction, NOT_CONTROLABLE, FRBC again (the RM describes itself again, with the
        same actuator, mode and timer ids, §3.5 item 3) and a second instruction: nothing to report."""
        rm_frames, cem_frames, rm_notes, cem_notes, findings = yield self.converse(
            "close", cem_options=["--reselect"], mirror_close=True)
        self.check_transcripts(rm_frames, cem_frames, rm_notes, cem_notes)
        selected = [json.loads(p).get("control_type") for _, p in sent(cem_frames)]
        self.assertEqual([c for c in selected if c], ["FILL_RATE_BASED_CONTROL", "NOT_CONTROLABLE",
                                                      "FILL_RATE_BASED_CONTROL", "NO_SELECTION"])
        self.check_findings(findings, ([], set()))

    @defer.inlineCallbacks
    def test_reports_while_deactivating_are_switch_window_warnings(self):
        """s2-python acknowledges NO_SELECTION before it runs deactivate(), which here reports the
        final FRBC state (§3.4, §4.7): R-029 warnings inside the switch window (X-5), never errors.
        The CEM ends with SessionRequest, so the session stays open while those reports arrive."""
        rm_frames, cem_frames, rm_notes, cem_notes, findings = yield self.converse(
            "session-request", rm_options=["--report-on-deactivate"])
        self.check_transcripts(rm_frames, cem_frames, rm_notes, cem_notes,
                               expect_unanswered_by_rm=[("SessionRequest", 0)])
        self.check_findings(findings, ([("R-029", "warning", "FRBC.StorageStatus"),
                                        ("R-029", "warning", "FRBC.ActuatorStatus"),
                                        ("R-038", "warning", "SessionRequest")],
                                       {("R-039", "warning", "SessionRequest")}))

    @defer.inlineCallbacks
    def test_slow_cem_gets_late_statuses_not_errors(self):
        """A CEM that takes 1.5 s per answer (Appendix C): the RM's activate() waits for each of its
        answers while the CEM's instruction waits in the RM's queue, so its status may come after
        T_rs. That is R-039 (a warning, completed by an info) at most; never R-038."""
        rm_frames, cem_frames, rm_notes, cem_notes, findings = yield self.converse(
            "close", cem_options=["--answer-delay", "1.5"], mirror_close=True)
        self.check_transcripts(rm_frames, cem_frames, rm_notes, cem_notes)
        self.check_findings(findings, ([], {("R-039", "warning", None), ("R-039", "info", None)}))

# One finding as the daemon's LogSink writes it (README: findings are logged at warning level).
LOGGED_FINDING = re.compile(r"(R-\d{3}) \((error|warning|info)\) in (\S+) (\S+) from (\S+) "
                            r"rm_id=(\S+) cem_id=(\S+): (.*)")


class TwistdTests(ConversationMixin, unittest.TestCase):
    """`twistd s2analyzer` as users run it, with its default options; findings from its log."""

    timeout = 180

    @defer.inlineCallbacks
    def test_real_daemon(self):
        port = free_port()
        logfile = os.path.join(self.workdir, "twistd.log")
        process = subprocess.Popen(
            twistd_command() + ["--nodaemon", "--pidfile=", "--logfile", logfile, "s2analyzer",
                                "--port", "tcp:%d:interface=127.0.0.1" % port],
            cwd=self.workdir, env=child_env(), stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        self.addCleanup(self.stop, process)
        yield threads.deferToThread(wait_for_port, port, process)
        rm_id, cem_id = "s2python-rm", "scripted-cem"
        base = "ws://127.0.0.1:%d/backend/" % port
        cem = self.spawn("scripted_cem.py", *self.cem_args(
            base + "cem/%s/rm/%s/ws" % (cem_id, rm_id), "session-request"))
        # The proxy keeps the RM's messages until the CEM comes, so the order does not matter here.
        rm = self.spawn("s2python_rm.py", *self.rm_args(base + "rm/%s/cem/%s/ws" % (rm_id, cem_id)))
        cem_result, rm_result = yield defer.gatherResults([cem, rm])
        cem_frames, cem_notes = self.check_script("cem", cem_result)
        rm_frames, rm_notes = self.check_script("rm", rm_result)
        self.check_transcripts(rm_frames, cem_frames, rm_notes, cem_notes,
                               expect_unanswered_by_rm=[("SessionRequest", 0)])
        # The history API (docs/history.md) holds the same conversation, byte-exact, with its findings.
        records = yield threads.deferToThread(self.history, port, rm_id, cem_id)
        self.assertEqual([r["raw"].encode("utf-8") for r in records if r["event"] in ("forwarded", "kept")
                          and r["origin"] == "RM"], [p for _, p in sent(rm_frames)])
        self.assertEqual([r["raw"].encode("utf-8") for r in records if r["event"] in ("forwarded", "kept")
                          and r["origin"] == "CEM"], [p for _, p in sent(cem_frames)])
        types = {}
        for _, payload in sent(rm_frames) + sent(cem_frames):
            message = json.loads(payload)
            if "message_id" in message:
                types[message["message_id"]] = message["message_type"]
        from_api = []
        for r in records:
            for f in r.get("validation_errors") or ():
                from_api.append(Finding(f.get("type"), f.get("severity"), r.get("s2_msg_type"),
                                        r.get("origin"), r.get("message_id"), f.get("msg")))
            for f in r.get("findings") or ():
                message_id = r.get("message_id") or f.get("message_id")
                from_api.append(Finding(f.get("rule"), f.get("severity"),
                                        r.get("s2_msg_type") or types.get(message_id), r.get("origin"),
                                        message_id, f.get("text")))
        self.check_findings(from_api, ([("R-038", "warning", "SessionRequest")],
                                       {("R-039", "warning", "SessionRequest")}))
        # The log says the same (findings are logged at warning level, README).
        self.stop(process)
        with open(logfile, encoding="utf-8") as f:
            log = f.read()
        from_log = [Finding(m.group(1), m.group(2), types.get(m.group(4), m.group(3)), m.group(5),
                            m.group(4), m.group(8))
                    for m in LOGGED_FINDING.finditer(log) if m.group(6) == rm_id]
        self.assertNotIn("Traceback", log)
        self.assertEqual(sorted((f.rule, f.severity, f.message_id) for f in from_log),
                         sorted((f.rule, f.severity, f.message_id) for f in from_api))

    @staticmethod
    def history(port, rm_id, cem_id, timeout=30.0):
        """The session's records once it has ended (its last deadline findings are in by then)."""
        url = "http://127.0.0.1:%d/backend/history-filter/?rm_id=%s&cem_id=%s&limit=10000" % (
            port, rm_id, cem_id)
        deadline = time.monotonic() + timeout
        while True:
            with urllib.request.urlopen(url, timeout=10) as answer:
                records = json.loads(answer.read().decode("utf-8"))
            if any(r["event"] == "session_ended" for r in records):
                return records
            if time.monotonic() > deadline:
                raise AssertionError("the session did not end within %.0f s" % timeout)
            time.sleep(0.2)

    stop = staticmethod(stop_process)

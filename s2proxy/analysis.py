"""Where messages are analysed: in the reactor thread, or in a worker process beside it.

Validation and the stateful checker cost more per message than forwarding itself. The registry
forwards every frame first and hands it here; the results come back through a callback, in the
order the work was given. Two analysers offer the same commands:

- :class:`InlineAnalyzer` runs them at once in the reactor thread (``--analysis-workers 0``; tests
  that want synchronous results; machines with one core);
- :class:`WorkerAnalyzer` runs them in one child process (``--analysis-workers 1``, the default on
  machines with more than one core), so analysis uses the second core while the reactor forwards.
  Commands travel in batches (one pipe write per reactor turn), as length-prefixed pickles.

Both run the same :class:`AnalysisCore`, which owns the validator and one checker per
conversation *token* (a conversation's S2 session; a reconnect starts a new token).

Commands (tuples) and their results:
``("open", token)`` -> None; ``("msg", token, origin, payload, binary, now, seq, feed)`` ->
``(message_type, message_id, format_findings, valid, findings)``; ``("deliver", token, origin,
payload, binary, now, seq)`` -> findings; ``("finish", token, now)`` -> ``(findings, summary)``;
``("tick", now)`` -> ``[(token, findings), ...]``; ``("ping", token, origin, now)`` -> findings;
``("summary", token)`` -> summary or None.
"""

import os
import pickle
import struct
import sys
from collections import deque

from twisted.internet import defer, protocol

from s2proxy import logs

_log = logs.make_logger("s2proxy.analysis")

_HEADER = struct.Struct(">I")


def pack(obj):
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    return _HEADER.pack(len(data)) + data


class AnalysisCore:
    """The analysis state machine shared by both analysers (no Twisted here)."""

    def __init__(self, validator, checker_factory, on_error=None):
        self.validator = validator
        self.checker_factory = checker_factory
        self.on_error = on_error or (lambda where, exc: None)
        self.checkers = {}

    def _checker_call(self, where, fn, *args):
        try:
            return fn(*args)
        except Exception as exc:
            self.on_error(where, exc)
            return []

    def handle(self, cmd):
        op = cmd[0]
        if op == "msg":
            _, token, origin, payload, binary, now, seq, feed = cmd
            a = self.validator.analyse(payload, binary)
            findings = []
            if feed:
                checker = self.checkers.get(token)
                if checker is not None:
                    findings = self._checker_call("checker.feed", checker.feed, origin, a, now, seq)
            return (a.message_type, a.message_id, a.findings, a.valid, findings), a
        if op == "deliver":
            _, token, origin, payload, binary, now, seq = cmd
            checker = self.checkers.get(token)
            if checker is None:
                return [], None
            a = self.validator.analyse(payload, binary)
            return self._checker_call("checker.feed", checker.feed, origin, a, now, seq), None
        if op == "open":
            if self.checker_factory is not None:
                try:
                    self.checkers[cmd[1]] = self.checker_factory()
                except Exception as exc:
                    self.on_error("checker.create", exc)
            return None, None
        if op == "finish":
            _, token, now = cmd
            checker = self.checkers.pop(token, None)
            if checker is None:
                return ([], None), None
            findings = self._checker_call("checker.finish", checker.finish, now)
            summary = self._checker_call("checker.summary", checker.summary) or None
            return (findings, summary), None
        if op == "tick":
            now = cmd[1]
            out = []
            for token, checker in list(self.checkers.items()):
                try:
                    due = checker.next_deadline()
                    if due is None or due > now:
                        continue
                    findings = checker.tick(now)
                except Exception as exc:
                    self.on_error("checker.tick", exc)
                    continue
                if findings:
                    out.append((token, findings))
            return out, None
        if op == "ping":
            _, token, origin, now = cmd
            checker = self.checkers.get(token)
            if checker is None or not hasattr(checker, "ping"):
                return [], None
            return self._checker_call("checker.ping", checker.ping, origin, now), None
        if op == "summary":
            checker = self.checkers.get(cmd[1])
            if checker is None:
                return None, None
            return (self._checker_call("checker.summary", checker.summary) or None), None
        raise ValueError("unknown analysis command %r" % (op,))


class InlineAnalyzer:
    """Analysis in the reactor thread: every callback runs before ``submit`` returns."""

    asynchronous = False

    def __init__(self, core):
        self.core = core
        self.pending = 0

    def submit(self, cmd, callback):
        result, analysis = self.core.handle(cmd)
        callback(result, analysis)

    def summary(self, token):
        result, _ = self.core.handle(("summary", token))
        return defer.succeed(result)

    def start(self):
        pass

    def stop(self):
        return defer.succeed(None)


class WorkerAnalyzer(protocol.ProcessProtocol):
    """Analysis in a child process; results return in order through the callbacks.

    If the worker dies, its pending work is answered with empty results (the messages were
    forwarded and are recorded, without findings), the loss is logged, and a new worker starts
    with fresh checkers for the live conversations.
    """

    asynchronous = True

    def __init__(self, reactor, config, on_busy=None, on_idle=None, max_pending=20000):
        self.reactor = reactor
        self.config = config
        self.on_busy = on_busy
        self.on_idle = on_idle
        self.max_pending = max_pending
        self.busy = False
        self._batch = []
        self._callbacks = deque()
        self._flush_call = None
        self._buffer = bytearray()
        self._stopping = False
        self._ended = None
        self._restart_call = None
        self.restarts = 0
        self.live_tokens = set()
        self.transport = None

    @property
    def pending(self):
        return len(self._callbacks)

    # -- process life ---------------------------------------------------------------------

    def start(self):
        self._stopping = False
        self._ended = defer.Deferred()
        env = dict(os.environ)
        package_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        env["PYTHONPATH"] = package_root + os.pathsep + env.get("PYTHONPATH", "")
        self.reactor.spawnProcess(self, sys.executable,
                                  [sys.executable, "-m", "s2proxy.analysis_worker"],
                                  env=env, childFDs={0: "w", 1: "r", 2: 2})
        self.transport.write(pack(self.config))
        for token in sorted(self.live_tokens):
            self._batch.append(("open", token))
            self._callbacks.append(_ignore)
        self._schedule_flush()

    def stop(self):
        self._stopping = True
        if self._restart_call is not None and self._restart_call.active():
            self._restart_call.cancel()
        if self._flush_call is not None and self._flush_call.active():
            self._flush_call.cancel()
            self._flush()
        if self.transport is None or self._ended is None:
            return defer.succeed(None)
        ended = self._ended
        self.transport.closeStdin()  # the worker answers what it has, then exits
        timeout = self.reactor.callLater(10, self._kill)
        ended.addBoth(lambda r: timeout.active() and timeout.cancel())
        return ended

    def _kill(self):
        try:
            self.transport.signalProcess("KILL")
        except Exception:
            pass

    def processEnded(self, reason):
        ended, self._ended = self._ended, None
        self.transport = None
        lost = len(self._callbacks)
        callbacks, self._callbacks = self._callbacks, deque()
        self._batch = []
        for callback in callbacks:
            callback(None, None)
        if not self._stopping:
            _log.error("the analysis worker ended ({reason}); {lost} analyses lost, checker state of "
                       "{n} conversations reset; restarting it", reason=reason.getErrorMessage(),
                       lost=lost, n=len(self.live_tokens))
            self.restarts += 1
            self._restart_call = self.reactor.callLater(1.0 if self.restarts > 1 else 0, self.start)
        self._check_idle()
        if ended is not None:
            ended.callback(None)

    # -- commands -------------------------------------------------------------------------

    def submit(self, cmd, callback):
        op = cmd[0]
        if op == "open":
            self.live_tokens.add(cmd[1])
        elif op == "finish":
            self.live_tokens.discard(cmd[1])
        if self.transport is None:
            callback(None, None)  # restarting: nothing to ask
            return
        self._batch.append(cmd)
        self._callbacks.append(callback)
        self._schedule_flush()
        if not self.busy and len(self._callbacks) > self.max_pending:
            self.busy = True
            _log.warn("the analysis worker is {n} messages behind; devices are paused until it "
                      "catches up", n=len(self._callbacks))
            if self.on_busy is not None:
                self.on_busy()

    def summary(self, token):
        d = defer.Deferred()
        self.submit(("summary", token), lambda result, _: d.callback(result))
        return d

    def _schedule_flush(self):
        if self._flush_call is None or not self._flush_call.active():
            self._flush_call = self.reactor.callLater(0, self._flush)

    def _flush(self):
        self._flush_call = None
        if not self._batch or self.transport is None:
            return
        batch, self._batch = self._batch, []
        self.transport.write(pack(batch))

    def childDataReceived(self, fd, data):
        if fd != 1:
            return
        buffer = self._buffer
        buffer += data
        while len(buffer) >= 4:
            (size,) = _HEADER.unpack_from(buffer)
            if len(buffer) < 4 + size:
                break
            frame = pickle.loads(bytes(buffer[4:4 + size]))
            del buffer[:4 + size]
            self._answer(frame)

    def _answer(self, frame):
        results, errors = frame
        for where, text in errors:
            _log.error("checker rule {rule} raised {exc}; the conversation goes on", rule=where, exc=text)
        callbacks = self._callbacks
        for result in results:
            callback = callbacks.popleft()
            try:
                callback(result, None)
            except Exception:
                _log.failure("handling an analysis result failed")
        self._check_idle()

    def _check_idle(self):
        if self.busy and len(self._callbacks) < self.max_pending // 2:
            self.busy = False
            if self.on_idle is not None:
                self.on_idle()


def _ignore(result, analysis):
    pass

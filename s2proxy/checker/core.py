"""The stateful conversation checker: one Checker per S2 session (one RM-CEM WebSocket pair).

It judges every message against the state of the session at the moment the message arrives at
the proxy (S2-PROTOCOL.md §0.3), keeps the state the rules need (§3.9, Appendix C) and reports
findings as dicts (docs/INTERFACES.md).  This module holds the pipeline, the ReceptionStatus
ledger (§4), the state machine (§3) and the deadlines; the rules of §6.2-§6.5 live in
handshake.py, session.py and instructions.py, and the control-type rules (§6.6-§6.11) in the
modules that register handlers through plugin.py.

Pipeline of feed(): ledger and message-id checks (R-007, X-6 retransmissions), sender (R-008),
terminating/failed states (R-034, R-035, R-020), handshake phase (R-010..R-022), the common
messages, control-type gating with the switch window (R-029..R-033), then the control-type
handlers.  Effects are applied provisionally and undone when the receiver answers non-OK (§4.4).

Deadlines (R-036..R-039, R-044, R-048, T_status of the control-type modules) sit in a heap; they
fire from tick(now) and are settled once more by finish(now).  feed() runs the deadlines that are
due before judging a message, so that its state is right even when tick() was not called in
time; the findings of those deadlines are returned by the next tick().

Memory stays bounded over a long session:
- message ids: per side at most cfg.max_ids (oldest dropped first); a message answered OK in
  time is kept only as a small tuple.  A Record drops its parsed message once answered (a
  message that may still be retransmitted keeps a content digest), so what stays referenced
  (handshakes, details, selection, descriptions, statuses, instructions) is small.  R-007 cannot see a reuse older than that window, and a
  status naming a dropped id is reported as R-040 (a window of 20000 messages).
- the ledger holds only unanswered messages; an entry leaves it when answered, when R-038 fires,
  or when a retransmission replaces it.
- the deadline heap holds at most the deadlines of the last T_rs_max seconds (and T_meas for
  the measurement gap); a cancelled entry lets go of its message at once and is discarded when
  it comes due or when cancelled entries are half of the heap (it is rebuilt then).
- instructions: at most cfg.max_instructions (oldest dropped first), each with at most
  cfg.max_history status updates; revocable objects: at most cfg.max_objects.
- unreadable frames waiting for a nil-subject status and retransmission candidates: a few
  hundred per side at most.
- the control-type object store lives in the Activation, which is dropped with the next
  SelectControlType (only the previous activation of the same type is kept, for R-085).
"""

import heapq
import logging
from collections import OrderedDict, deque

from . import handshake, instructions, plugin, rules, session
from .catalog import (INSTRUCTION_TYPES, INTERN, MESSAGE_TYPES, HANDSHAKES, content_digest, may_send,
                      same_record_content)
from .config import CheckerConfig
from .context import Context
from .ids import NIL_UUID, format_time, id_key
from .state import SMALL, Activation, Record, fifo_add

_log = logging.getLogger(__name__)
_UNREAD_MAX = 256       # unreadable frames remembered per side for nil-subject matching
_CAND_MAX = 32          # retransmission candidates per (side, message type)
_NO_RULES = frozenset()


class _Deadline:
    __slots__ = ("when", "fn", "rec", "cancelled")

    def __init__(self, when, fn, rec):
        self.when = when
        self.fn = fn
        self.rec = rec
        self.cancelled = False

    def cancel(self):
        # The heap entry stays until it comes due (or the heap is compacted): let go of what it
        # would keep alive now.
        self.cancelled = True
        self.fn = self.rec = None


class _Termination:
    """A forwarded SessionRequest (state T)."""
    __slots__ = ("by", "rec", "acked")

    def __init__(self, by, rec):
        self.by = by
        self.rec = rec
        self.acked = None      # time the other side's OK passed the proxy


_SIDE_BIT = {"RM": 1, "CEM": 2}


class Checker:
    """Stateful checker of one session.  See docs/INTERFACES.md and PLUGIN.md."""

    # A thousand idle sessions are a normal load: no per-instance __dict__.
    __slots__ = ("cfg", "seq", "hs", "hs_versions", "hsr", "hs_done", "version", "without_handshake",
                 "failed", "term", "seen_sides", "any_message", "rm_after_hs", "rmd", "rmd_rec",
                 "act_no", "activation", "window", "ids", "open", "unread", "unread_ids", "cands",
                 "unforwarded", "instructions", "by_target", "revocables", "aliases", "meas_since",
                 "meas_about", "meas_armed", "_heap", "_dseq", "_ncancelled", "_pending",
                 "_pending_since", "_out", "_cur", "_cur_rules", "finished", "last_ping", "counts",
                 "rule_counts", "severity_counts", "rule_errors", "plugin_state", "__weakref__")
    _handshake = handshake
    _session = session
    _instr = instructions

    def __init__(self, cfg=None):
        plugin.load()
        self.cfg = cfg or CheckerConfig()
        self.seq = 0
        # handshake (§3.2)
        self.hs = {"RM": None, "CEM": None}     # first accepted Handshake Record per side
        self.hs_versions = None                 # {side: its supported_protocol_versions}
        self.hsr = None                         # accepted HandshakeResponse Record
        self.hs_done = False
        self.version = None
        self.without_handshake = False
        self.failed = None                      # None | "handshake" | "permanent"  (state F)
        self.term = None                        # _Termination (state T)
        self.seen_sides = 0                     # _SIDE_BIT of the sides that sent a message
        self.any_message = False
        self.rm_after_hs = False                # R-023 decided
        # details and control type (§3.3-§3.5)
        self.rmd = None
        self.rmd_rec = None
        self.act_no = 0
        self.activation = Activation(0, None, None, None, None)
        self.window = None
        # ledger (§4)
        # Containers that stay empty in most sessions are created on first use (None before).
        self.ids = {"RM": {}, "CEM": {}}        # key -> Record | (mtype, t, status); oldest first
        self.open = {}                          # (side, key) -> Record
        self.unread = None                      # {side: deque of unreadable Records}
        self.unread_ids = None                  # {side: {key: unreadable Record}}
        self.cands = {}                         # (side, mtype) -> OrderedDict seq->Record
        self.unforwarded = {}
        # instructions and revocation (§5.1)
        self.instructions = {}                  # key -> Instruction, oldest first
        self.by_target = {}
        self.revocables = {}                    # (object_type, key) -> Revocable, oldest first
        self.aliases = {}
        # measurements
        self.meas_since = None
        self.meas_about = None
        self.meas_armed = False
        # deadlines and output
        self._heap = []
        self._dseq = 0
        self._ncancelled = 0                    # cancelled entries in the heap (about)
        self._pending = []
        self._pending_since = None
        self._out = self._pending
        self._cur = None
        self._cur_rules = _NO_RULES
        self.finished = False
        self.last_ping = None                   # {side: time of its latest ping}
        # counters
        self.counts = {"RM": {}, "CEM": {}}
        self.rule_counts = {}
        self.severity_counts = {"error": 0, "warning": 0, "info": 0}
        self.rule_errors = {}
        self.plugin_state = None                # {name: state} of control-type modules that
                                                # outlives activations (plugin_store())

    # ------------------------------------------------------------------------------------------
    # public API
    def feed(self, sender, analysis, now, ref=None, forwarded=True):
        """Judge one message; returns the findings about it (deadline findings come from tick())."""
        self._out = self._pending
        if self._heap and self._heap[0][0] <= now:
            self._run_due(now)
        out = self._out = []
        try:
            self._feed(sender, analysis, now, ref, forwarded)
        except Exception as exc:      # the checker must never break the proxy
            self._rule_failed("core", exc)
        self._out = self._pending
        self._cur = None
        self._cur_rules = _NO_RULES
        return out

    def forwarded(self, ref, now):
        """The message fed with forwarded=False has now been written to its receiver (X-2)."""
        rec = self.unforwarded.pop(_hashable(ref), None)
        if rec is not None and rec.fwd is None:
            rec.fwd = now
            self._start_deadlines(rec)

    def tick(self, now):
        """Run the deadlines due by `now`; returns their findings (and those found during feed())."""
        self._out = self._pending
        self._run_due(now)
        out, self._pending = self._pending, []
        self._out = self._pending
        self._pending_since = None
        return out

    def finish(self, now):
        """The session ended at `now`: settle every open deadline once; returns the findings."""
        self._out = self._pending
        self._run_due(now)
        while self._heap:
            when, _, dl = heapq.heappop(self._heap)
            if not dl.cancelled:
                self._call_deadline(dl, now, final=True)
        ctx = Context(self, now, "RM", None, self.activation, True)
        ctx.final = True
        self._guard("R-053", self._instr.unfinished_instructions, ctx)
        for fn, rule in plugin.END:
            self._guard(rule, fn, ctx)
        self.finished = True
        out, self._pending = self._pending, []
        self._out = self._pending
        return out

    def next_deadline(self):
        """Earliest time tick() has something to do, or None."""
        if self._pending:
            return self._pending_since if self._pending_since is not None else 0.0
        while self._heap and self._heap[0][2].cancelled:
            heapq.heappop(self._heap)
            if self._ncancelled:
                self._ncancelled -= 1
        return self._heap[0][0] if self._heap else None

    def ping(self, sender, now, ref=None):
        """A WebSocket ping frame from `sender` (R-009); returns findings."""
        out = []
        if self.last_ping is None:
            self.last_ping = {}
        last = self.last_ping.get(sender)
        self.last_ping[sender] = now
        if last is not None and now - last < 50.0:
            self._out = out
            self.emit("R-009", "the %s sent WebSocket pings %.1f s apart (S2 asks for at most one "
                      "every 50 s)" % (sender, now - last), None, None, ref=ref)
            self._out = self._pending
        return out

    def state_letter(self):
        """H, I, N, A, T or F (§3.1)."""
        if self.failed:
            return "F"
        if self.term is not None:
            return "T"
        if not self.hs_done:
            return "H"
        if self.activation.prefix:
            return "A"
        if self.activation.ct == "NOT_CONTROLABLE":
            return "N"
        return "I"

    def summary(self):
        from .summary import summarize
        return summarize(self)

    def plugin_store(self, name, factory):
        """Per-session state of a control-type module that outlives activations (created by
        factory() on first use)."""
        ps = self.plugin_state
        if ps is None:
            ps = self.plugin_state = {}
        st = ps.get(name)
        if st is None:
            st = ps[name] = factory()
        return st

    # ------------------------------------------------------------------------------------------
    # findings
    def emit(self, rule, text, severity, rec, path=None, ref=None):
        sev = severity or rules.SEVERITY.get(rule, rules.WARNING)
        if self.cfg.strict and rule in rules.STRICT_ERRORS:
            sev = rules.ERROR
        f = {"rule": rule, "severity": sev,
             "message_id": rec.mid if rec is not None else None,
             "message_type": rec.mtype if rec is not None else None,
             "origin": rec.sender if rec is not None else None,
             "text": text, "ref": rec.ref if rec is not None else ref}
        if path:
            f["path"] = path
        self._out.append(f)
        if self._out is self._pending and self._pending_since is None:
            self._pending_since = 0.0
        self.rule_counts[rule] = self.rule_counts.get(rule, 0) + 1
        self.severity_counts[sev] = self.severity_counts.get(sev, 0) + 1
        if rec is not None:
            if rec is self._cur:
                if self._cur_rules is _NO_RULES:
                    self._cur_rules = set()
                self._cur_rules.add(rule)
            if sev == rules.ERROR and rule in rules.REFERENCE_RULES:
                rec.ref_error = True
        return f

    def _rule_failed(self, rule, exc):
        self.rule_errors[rule] = self.rule_errors.get(rule, 0) + 1
        cb = self.cfg.on_error
        if cb is not None:
            try:
                cb(rule, exc)
            except Exception:
                _log.exception("on_error callback failed")
        else:
            _log.debug("checker rule %s raised", rule, exc_info=exc)

    def _guard(self, rule, fn, ctx):
        try:
            fn(ctx)
        except Exception as exc:
            self._rule_failed(rule, exc)

    # ------------------------------------------------------------------------------------------
    # deadlines
    def add_deadline(self, when, fn, rec):
        dl = _Deadline(when, fn, rec)
        self._dseq += 1
        heapq.heappush(self._heap, (when, self._dseq, dl))
        return dl

    def _cancelled(self, dl):
        """The ReceptionStatus deadline `dl` is not needed any more.  Its heap entry would stay
        until it comes due (T_rs later): when most of the heap is such entries, rebuild it, so an
        idle session keeps none (amortised O(1) per cancelled deadline)."""
        dl.cancel()
        n = self._ncancelled = self._ncancelled + 1
        heap = self._heap
        if n * 2 >= len(heap):
            heap[:] = [e for e in heap if not e[2].cancelled]
            heapq.heapify(heap)
            self._ncancelled = 0

    def _run_due(self, now):
        heap = self._heap
        while heap and heap[0][0] <= now:
            when, _, dl = heapq.heappop(heap)
            if not dl.cancelled:
                self._call_deadline(dl, when, final=False)
            elif self._ncancelled:
                self._ncancelled -= 1

    def _call_deadline(self, dl, now, final):
        rec = dl.rec
        ctx = Context(self, now, rec.sender if rec is not None else "RM", rec, self.activation, True)
        ctx.final = final
        name = getattr(dl.fn, "rule", None) or plugin._name(dl.fn)
        if self._pending_since is None:
            self._pending_since = now
        self._guard(name, dl.fn, ctx)

    def _start_deadlines(self, rec):
        if rec.unreadable:
            if rec.answerable:
                self.add_deadline(rec.fwd + self.cfg.t_rs, _unread_deadline, rec)
        else:
            rec.dl = self.add_deadline(rec.fwd + self.cfg.t_rs, _rs_soft, rec)

    # ------------------------------------------------------------------------------------------
    # pipeline
    def _feed(self, sender, analysis, now, ref, forwarded):
        obj = analysis.obj
        mtype = analysis.message_type
        mtype = INTERN.get(mtype, mtype) if type(mtype) is str else mtype
        mid = analysis.message_id
        key = None
        if mid is not None:
            key = id_key(mid)
            if key == mid:
                mid = key               # one string object for both
        self.seq += 1
        isdict = type(obj) is dict
        rec = Record(self.seq, INTERN.get(sender, sender), mtype, mid, key,
                     obj if isdict else None, ref, now, now if forwarded else None)
        rec.schema_valid = bool(getattr(analysis, "schema_valid", analysis.valid))
        self._cur = rec
        self._cur_rules = _NO_RULES
        counts = self.counts[sender]
        ckey = mtype if mtype in MESSAGE_TYPES else ("(unknown type)" if isdict and mtype else "(unreadable)")
        counts[ckey] = counts.get(ckey, 0) + 1

        is_rs = mtype == "ReceptionStatus"
        if not isdict or mtype is None or (not is_rs and mid is None) or (is_rs and not rec.schema_valid):
            rec.unreadable = True
            rec.answerable = not is_rs
            self._note_unreadable(rec, forwarded)
            if not is_rs:
                return
        if is_rs:
            rec.answerable = False
            self._guard("ReceptionStatus", self._reception_status, rec)
            return
        self._ledger_open(rec, forwarded)
        if mtype not in MESSAGE_TYPES:
            return                       # R-003 is a format finding
        if not may_send(mtype, sender):
            self.emit("R-008", "%s may not be sent by the %s (§2.1: only the %s sends it)"
                      % (mtype, sender, "CEM" if sender == "RM" else "RM"), None, rec)
            return
        if not rec.schema_valid:
            return                       # no effect: the receiver is expected to refuse it (§4.4)
        self._judge(rec, now)

    def _judge(self, rec, now):
        sender = rec.sender
        mtype = rec.mtype
        ctx = Context(self, now, sender, rec, self.activation, True)
        S = self._session
        self._guard("state", S.terminating_or_failed, ctx)
        if not self.hs_done:
            self._guard("handshake", self._handshake.handshake_phase, ctx)
        if self.hs_done and sender == "RM" and not self.rm_after_hs and not (
                mtype == "Handshake" or (mtype == "HandshakeResponse")):
            self.rm_after_hs = True
            if mtype != "ResourceManagerDetails" and ctx.gate and "R-021" not in self._cur_rules:
                self.emit("R-023", "the RM's first message after the HandshakeResponse is %s, "
                          "not ResourceManagerDetails" % mtype, None, rec)
        handler = _HANDLERS.get(mtype)
        if handler is not None:
            self._guard(mtype, handler, ctx)
        elif mtype in INSTRUCTION_TYPES:
            self._guard("instruction", self._instr.instruction, ctx)
        else:
            self._guard("control type", self._control_type_message, ctx)
        bit = _SIDE_BIT.get(sender, 4)
        if not self.seen_sides & bit:
            self.seen_sides |= bit
            if (mtype != "Handshake" and not self.without_handshake
                    and not self._cur_rules & {"R-016", "R-021", "R-022", "R-010"}):
                self.emit("R-010", "the %s's first message is %s, not a Handshake" % (sender, mtype),
                          None, rec)
        self.any_message = True

    def dispatch(self, ctx, active=True):
        """Run the registered handlers of ctx.mtype (only the inactive=True ones if not active)."""
        hs = plugin.HANDLERS.get(ctx.mtype)
        if hs:
            ctx.active = active
            for fn, rule, inactive in hs:
                if active or inactive:
                    try:
                        fn(ctx)
                    except Exception as exc:
                        self._rule_failed(rule, exc)
        star = plugin.HANDLERS.get("*")
        if star:
            for fn, rule, inactive in star:
                self._guard(rule, fn, ctx)

    def _control_type_message(self, ctx):
        """An RM message of a control type (descriptions, statuses, forecasts): R-029, R-033."""
        rec = ctx.msg
        prefix = rec.mtype.split(".", 1)[0]
        act = self.activation
        if act.prefix == prefix:
            if prefix in ("FRBC", "OMBC", "DDBC"):
                if rec.mtype.endswith(".SystemDescription"):
                    act.store["_latest_description"] = rec
                    if act.first_description is None:
                        act.first_description = rec

                        def undo(act=act, rec=rec):
                            if act.first_description is rec:
                                act.first_description = None
                        ctx.on_reject(undo)
                elif act.first_description is None and ctx.gate:
                    self.emit("R-033", "%s before the first %s.SystemDescription of this activation"
                              % (rec.mtype, prefix), None, rec)
            self.dispatch(ctx, True)
            return
        w = self.window
        if w is not None and w.prev_prefix == prefix:
            ctx.activation = w.prev_activation
            verdict = w.verdict(ctx.now, self.cfg)
            if verdict and ctx.gate:
                self.emit("R-029", "%s from the RM although %s was deactivated by the "
                          "SelectControlType %s (%s)%s" % (
                              rec.mtype, prefix, w.select.mid, _ct_name(act),
                              "; within T_switch after its acknowledgement: the reference libraries "
                              "acknowledge before they deactivate" if verdict == "warning" else ""),
                          verdict, rec)
        else:
            ctx.activation = None
            if ctx.gate:
                self.emit("R-029", "%s from the RM while %s is not the active control type (%s)"
                          % (rec.mtype, prefix, _ct_name(act)), None, rec)
        self.dispatch(ctx, False)

    # ------------------------------------------------------------------------------------------
    # ledger (§4)
    def _ledger_open(self, rec, forwarded):
        side, key = rec.sender, rec.key
        ids = self.ids[side]
        prev = ids.get(key)
        if prev is not None:
            if type(prev) is Record and self._retransmits(prev, rec):
                rec.retx_of = prev
                prev.superseded = True
                if self.open.pop((side, key), None) is prev:
                    self._retire(prev, True)      # never answered now: only its digest is needed
                c = self.cands.get((side, rec.mtype))
                if c:
                    c.pop(prev.seq, None)
            else:
                first = prev if type(prev) is tuple else (prev.mtype, prev.t, prev.rs_status)
                self.emit("R-007", "message_id %s was already used by the %s for the %s at %s"
                          % (rec.mid, side, first[0], format_time(first[1])), None, rec)
            del ids[key]
        else:
            c = self.cands.get((side, rec.mtype))
            if c:
                for seq, cand in c.items():
                    if rec.mtype in HANDSHAKES or same_record_content(cand, rec):
                        rec.retx_of = cand
                        del c[seq]
                        break
        fifo_add(self.ids, side, ids, key, rec, self.cfg.max_ids)
        self.open[(side, key)] = rec
        if forwarded:
            self._start_deadlines(rec)
        else:
            self._remember_unforwarded(rec)

    def _retransmits(self, prev, rec):
        if prev.mtype != rec.mtype or not self.retx_candidate(prev, rec.t):
            return False
        return rec.mtype in HANDSHAKES or same_record_content(prev, rec)

    def retx_candidate(self, prev, now):
        """X-6: `prev` got a non-OK status, or none within T_rs (so a repeat is a retransmission)."""
        base = prev.fwd if prev.fwd is not None else prev.t
        if prev.rs_status is not None:
            return prev.rs_status != "OK" or prev.rs_time - base > self.cfg.t_rs
        return prev.fwd is not None and now - prev.fwd >= self.cfg.t_rs

    def add_candidate(self, rec):
        c = self.cands.setdefault((rec.sender, rec.mtype), OrderedDict())
        c[rec.seq] = rec
        if len(c) > _CAND_MAX:
            c.popitem(last=False)

    def _remember_unforwarded(self, rec):
        key = _hashable(rec.ref)
        if key is not None:
            self.unforwarded[key] = rec
            if len(self.unforwarded) > self.cfg.max_ids:
                self.unforwarded.pop(next(iter(self.unforwarded)))

    def _note_unreadable(self, rec, forwarded):
        side = rec.sender
        if self.unread is None:
            self.unread = {"RM": deque(), "CEM": deque()}
            self.unread_ids = {"RM": {}, "CEM": {}}
        q = self.unread[side]
        q.append(rec)
        if len(q) > _UNREAD_MAX:
            q.popleft()
        if type(rec.mid) is str and rec.answerable:
            u = self.unread_ids[side]
            fifo_add(self.unread_ids, side, u, id_key(rec.mid), rec, _UNREAD_MAX)
        if forwarded:
            self._start_deadlines(rec)
        else:
            self._remember_unforwarded(rec)

    def _reception_status(self, rec):
        obj = rec.obj
        subj = obj.get("subject_message_id")
        status = obj.get("status")
        if type(subj) is not str or type(status) is not str:
            return
        status = INTERN.get(status, status)
        sender = rec.sender
        other = "CEM" if sender == "RM" else "RM"
        now = rec.t
        key = id_key(subj)
        if key == NIL_UUID:
            if status != "INVALID_DATA":
                self.emit("R-043", "ReceptionStatus with the nil subject has status %s; only "
                          "INVALID_DATA may use the nil UUID" % status, None, rec)
                return
            q = self.unread[other] if self.unread is not None else ()
            while q and q[0].rs_status is not None:
                q.popleft()
            if not q:
                self.emit("R-043", "nil-subject INVALID_DATA from the %s, but no unanswered "
                          "unreadable frame of the %s exists in this session" % (sender, other),
                          None, rec)
                return
            target = q.popleft()
            target.rs_status = status
            target.rs_time = now
            return
        target = self.open.get((other, key))
        if target is not None:
            self._close(target, rec, status, now)
            return
        u = self.unread_ids[other].pop(key, None) if self.unread_ids is not None else None
        if u is not None and u.rs_status is None:
            u.rs_status = status
            u.rs_time = now
            if status == "OK":
                self.emit("R-045", "the %s answered OK to an unreadable frame" % sender, None, u)
            return
        prev = self.ids[other].get(key)
        if prev is not None:
            first = prev if type(prev) is tuple else (prev.mtype, prev.t, prev.rs_status)
            self.emit("R-042", "second ReceptionStatus (%s) for the %s %s %s, already answered %s "
                      "(s2-python ends its receive loop on an unexpected second status)"
                      % (status, other, first[0], subj, first[2]), None, rec)
        elif key in self.ids[sender]:
            mine = self.ids[sender][key]
            self.emit("R-041", "the %s acknowledges its own message %s (%s)"
                      % (sender, subj, mine[0] if type(mine) is tuple else mine.mtype), None, rec)
        else:
            self.emit("R-040", "subject_message_id %s matches no message the %s sent in this session"
                      % (subj, other), None, rec)

    def _close(self, target, rs, status, now):
        cfg = self.cfg
        del self.open[(target.sender, target.key)]
        if target.dl is not None:
            self._cancelled(target.dl)      # answered: the heap entry is dropped unseen
            target.dl = None
        target.rs_status = status
        target.rs_time = now
        base = target.fwd if target.fwd is not None else target.t
        delay = now - base
        late = target.fwd is not None and delay > cfg.t_rs
        if late:
            if target.late_reported:
                self.emit("R-039", "the ReceptionStatus (%s) came %.3f s after the %s was forwarded "
                          "(completes the earlier R-039)" % (status, delay, target.mtype),
                          rules.INFO, target)
            else:
                target.late_reported = True
                self.emit("R-039", "the ReceptionStatus (%s) came %.3f s after the %s was forwarded "
                          "(T_rs %g s)" % (status, delay, target.mtype, cfg.t_rs), None, target)
                self.add_candidate(target)
        if status == "OK":
            if not target.schema_valid:
                self.emit("R-045", "the %s answered OK to a %s that is schema-invalid (R-004)"
                          % (rs.sender, target.mtype), None, target)
            elif target.ref_error:
                self.emit("R-045", "the %s answered OK to a %s with an unresolvable reference"
                          % (rs.sender, target.mtype), None, target)
            cbs = target.on_ok
            if not late and target.mtype not in HANDSHAKES:
                ids = self.ids[target.sender]
                if ids.get(target.key) is target:
                    ids[target.key] = (target.mtype, target.t, status)
        else:
            label = rs.obj.get("diagnostic_label")
            self.emit("R-047", "the %s answered the %s with %s%s" % (
                rs.sender, target.mtype, status, (": %r" % label) if label else ""), None, target)
            if status in ("INVALID_DATA", "INVALID_MESSAGE") and target.schema_valid:
                self.emit("R-046", "the %s answered %s to a %s that is schema-valid"
                          % (rs.sender, status, target.mtype), None, target)
            cbs = target.on_reject
            if not late:
                self.add_candidate(target)
            if status == "TEMPORARY_ERROR":
                self.add_deadline(now + cfg.t_rs_max, _no_retransmission, target)
            if target.mtype == "HandshakeResponse" and self.hsr is target:
                self.failed = self.failed or "handshake"
        if status == "PERMANENT_ERROR":
            self.failed = "permanent"
        if target.mtype == "SessionRequest" and status == "OK":
            t = self.term
            if t is not None and t.rec is target:
                t.acked = now
                self.add_deadline(now + cfg.t_close, _close_deadline, target)
        target.on_ok = target.on_reject = None
        if cbs:
            for fn in cbs:
                try:
                    fn()
                except Exception as exc:
                    self._rule_failed("effect of %s" % target.mtype, exc)
        # Answered: the parsed message is not needed any more.  A later message can retransmit it
        # only when it was refused or answered late: keep its digest then.
        self._retire(target, late or status != "OK")

    def _retire(self, rec, retransmittable):
        """Drop rec.obj (rules took what they need when it arrived), keeping a content digest
        when a later message may still be compared with it (X-6, R-049).  Handshakes are never
        compared by content."""
        obj = rec.obj
        if obj is not None:
            if retransmittable and rec.digest is None and rec.mtype not in HANDSHAKES:
                rec.digest = content_digest(obj)
            rec.obj = None

    # ------------------------------------------------------------------------------------------
    # revocable objects (§5.1.3)
    def add_revocable(self, ctx, object_type, object_id, obj, alias):
        from .state import Revocable
        rec = ctx.msg
        key = id_key(object_id)
        akey = rec.key if (alias and rec.key is not None and rec.key != key) else None
        entry = Revocable(object_type, object_id, key, rec, obj, ctx.activation.no if ctx.activation
                          else self.activation.no, akey)
        if akey is not None:
            self.aliases[(object_type, akey)] = entry
        self.put_revocable(entry)

        def undo():
            if self.revocables.get((object_type, key)) is entry:
                del self.revocables[(object_type, key)]
            if akey is not None and self.aliases.get((object_type, akey)) is entry:
                del self.aliases[(object_type, akey)]
        if rec.rs_status is None:
            ctx.on_reject(undo)
        return entry


    def put_revocable(self, entry):
        """Register `entry` as the newest revocable object (at most cfg.max_objects, oldest dropped)."""
        k = (entry.object_type, entry.key)
        revs = self.revocables
        revs.pop(k, None)               # re-registration makes it the newest
        revs[k] = entry
        n = len(revs)
        if n > SMALL and type(revs) is dict:
            revs = self.revocables = OrderedDict(revs)
        if n > self.cfg.max_objects:
            if type(revs) is dict:
                old = revs.pop(next(iter(revs)))
            else:
                _, old = revs.popitem(last=False)
            if old.alias is not None:
                self.aliases.pop((old.object_type, old.alias), None)


def _hashable(ref):
    try:
        hash(ref)
    except TypeError:
        return None
    return ref


def _ct_name(act):
    return "active: %s" % (act.ct or "none")


# deadline callbacks -------------------------------------------------------------------------

def _rs_soft(ctx):
    chk, rec = ctx.chk, ctx.msg
    if rec.rs_status is not None or rec.superseded or chk.open.get((rec.sender, rec.key)) is not rec:
        return
    if ctx.final:
        chk.open.pop((rec.sender, rec.key), None)
        chk.emit("R-038", "no ReceptionStatus for this %s: the session ended %.3f s after it was "
                 "forwarded (less than T_rs)" % (rec.mtype, ctx.now - rec.fwd), rules.WARNING, rec)
        return
    rec.late_reported = True
    chk.emit("R-039", "no ReceptionStatus for this %s within T_rs (%g s) after it was forwarded"
             % (rec.mtype, chk.cfg.t_rs), None, rec)
    chk.add_candidate(rec)
    rec.dl = chk.add_deadline(rec.fwd + chk.cfg.t_rs_max, _rs_hard, rec)


_rs_soft.rule = "R-039"


def _rs_hard(ctx):
    chk, rec = ctx.chk, ctx.msg
    if rec.rs_status is not None or rec.superseded or chk.open.get((rec.sender, rec.key)) is not rec:
        return
    chk.open.pop((rec.sender, rec.key), None)
    rec.on_ok = rec.on_reject = None        # it can no longer be answered
    chk._retire(rec, True)
    sev = rules.WARNING if rec.mtype == "SessionRequest" else None
    why = ("none by the end of the session" if ctx.final
           else "none %g s (T_rs_max) after it was forwarded" % chk.cfg.t_rs_max)
    note = (" (s2-python peers never acknowledge SessionRequest)"
            if rec.mtype == "SessionRequest" else "")
    chk.emit("R-038", "the %s never answered this %s with a ReceptionStatus: %s%s"
             % ("CEM" if rec.sender == "RM" else "RM", rec.mtype, why, note), sev, rec)


_rs_hard.rule = "R-038"


def _unread_deadline(ctx):
    rec = ctx.msg
    if rec.rs_status is not None or ctx.final:
        return
    ctx.chk.emit("R-044", "the %s sent an unreadable frame and the %s answered it with no "
                 "INVALID_DATA within T_rs (%g s)" % (rec.sender, ctx.other, ctx.chk.cfg.t_rs),
                 None, rec)


_unread_deadline.rule = "R-044"


def _no_retransmission(ctx):
    rec = ctx.msg
    chk = ctx.chk
    for c in (chk.cands.get((rec.sender, rec.mtype)) or {}).values():
        if c is rec:
            chk.emit("R-048", "the %s got TEMPORARY_ERROR and was not sent again" % rec.mtype,
                     None, rec)
            return


_no_retransmission.rule = "R-048"


def _close_deadline(ctx):
    if ctx.final:
        return
    ctx.chk.emit("R-036", "the WebSocket was not closed within T_close (%g s) after the "
                 "SessionRequest was acknowledged" % ctx.chk.cfg.t_close, None, ctx.msg)


_close_deadline.rule = "R-036"


_HANDLERS = {
    "Handshake": handshake.handshake,
    "HandshakeResponse": handshake.handshake_response,
    "ResourceManagerDetails": session.resource_manager_details,
    "SelectControlType": session.select_control_type,
    "SessionRequest": session.session_request,
    "PowerMeasurement": session.power_measurement,
    "PowerForecast": session.common_message,
    "RevokeObject": instructions.revoke_object,
    "InstructionStatusUpdate": instructions.instruction_status_update,
}

"""Pairing RM and CEM connections into conversations, and relaying frames between them.

Plain Python: no Autobahn import and no reactor calls. A connection is a *side* (see
``docs/INTERFACES.md``): the WebSocket protocols in :mod:`s2proxy.websocket` implement it, and so
can a test. The registry decides where every frame goes (to the peer, or kept until the peer
comes), then has it analysed and publishes one event about it. Forwarding always happens first:
analysis can never delay or block a frame.
"""

import time
import uuid
from collections import deque

from s2proxy import logs
from s2proxy.events import make_event, next_seq

_log = logs.make_logger("s2proxy.registry")

RM = "RM"
CEM = "CEM"
PEER_ROLE = {RM: CEM, CEM: RM}

# Close codes the proxy uses (RFC 6455 reserves 4000-4999 for applications).
CLOSE_REPLACED = 4000
CLOSE_TRY_AGAIN_LATER = 1013
CLOSE_GOING_AWAY = 1001


class NoLiveConnection(Exception):
    """There is no live connection to deliver an injected message to."""


class Conversation:
    """One pairing (rm_id, cem_id) from the first connection of either side until both are gone."""

    def __init__(self, rm_id, cem_id, checker, now):
        self.rm_id = rm_id
        self.cem_id = cem_id
        self.session_id = str(uuid.uuid4())
        self.started = now
        self.sides = {RM: None, CEM: None}
        # Messages waiting for an absent peer, keyed by the *destination* role.
        self.kept = {RM: deque(), CEM: deque()}
        self.kept_size = {RM: 0, CEM: 0}
        self.checker = checker
        self.counts = {"messages": 0, "errors": 0, "warnings": 0}
        # A role whose connection changed after this session had one starts a new S2 session
        # for the checker (an S2 session is one WebSocket connection).
        self.seen_roles = set()
        # Pending expiry of kept messages once both sides are gone (an IDelayedCall).
        self.expiry = None

    def kept_count(self, role):
        return len(self.kept[role])

    def kept_bytes(self, role):
        return self.kept_size[role]

    def __repr__(self):
        return "<Conversation rm=%s cem=%s session=%s>" % (self.rm_id, self.cem_id, self.session_id)


def _count_findings(conv, findings):
    for f in findings:
        sev = f.get("severity")
        if sev == "error":
            conv.counts["errors"] += 1
        elif sev == "warning":
            conv.counts["warnings"] += 1


class Registry:
    """All live conversations, and the relay between the two sides of each."""

    def __init__(self, hub, validator=None, checker_factory=None, clock=None,
                 max_kept_messages=1000, max_kept_bytes=4 * 1024 * 1024, mirror_close=False,
                 kept_ttl=3600.0):
        self.hub = hub
        self.validator = validator
        self.checker_factory = checker_factory
        self._clock = clock
        self.max_kept_messages = max_kept_messages
        self.max_kept_bytes = max_kept_bytes
        self.mirror_close = mirror_close
        self.kept_ttl = kept_ttl
        self.conversations = {}
        self._by_session = {}
        self._paused_reasons = set()
        self.open_connections = 0
        self.stopping = False

    # -- time -------------------------------------------------------------------------------

    def now(self):
        # Event times are wall-clock (UTC epoch); the clock only drives timers.
        return time.time()

    # -- lookups ----------------------------------------------------------------------------

    def conversation_by_session(self, session_id):
        return self._by_session.get(session_id)

    def find_for_injection(self, origin_id, dest_id):
        """Return (conversation, origin role) for a message sent as origin_id to dest_id."""
        conv = self.conversations.get((origin_id, dest_id))
        if conv is not None:
            return conv, RM
        conv = self.conversations.get((dest_id, origin_id))
        if conv is not None:
            return conv, CEM
        return None, None

    # -- connections ------------------------------------------------------------------------

    def _new_checker(self):
        if self.checker_factory is None:
            return None
        try:
            return self.checker_factory()
        except Exception:
            _log.failure("could not create a conversation checker; stateful checks are off")
            return None

    def attach(self, side):
        """A side finished its opening handshake: pair it, deliver what was kept for it."""
        key = (side.rm_id, side.cem_id)
        conv = self.conversations.get(key)
        now = self.now()
        if conv is None:
            conv = Conversation(side.rm_id, side.cem_id, self._new_checker(), now)
            self.conversations[key] = conv
            self._by_session[conv.session_id] = conv
            self.hub.emit(make_event("session_started", conv))
        side.conversation = conv
        if conv.expiry is not None:
            if conv.expiry.active():
                conv.expiry.cancel()
            conv.expiry = None
        role = side.role
        old = conv.sides[role]
        if role in conv.seen_roles and conv.checker is not None:
            # A new connection of a role is a new S2 session for the checker.
            self._finish_checker(conv)
            conv.checker = self._new_checker()
        conv.seen_roles.add(role)
        conv.sides[role] = side
        self.open_connections += 1
        self.hub.emit(make_event("opened", conv, origin=role, peer=side.peer, tls=side.tls,
                                 direction=side.direction))
        if old is not None:
            # Devices reconnect after network loss while the old socket still looks alive.
            self._unlink(conv, old)
            old.close(CLOSE_REPLACED, "replaced by a newer %s connection for rm_id=%s cem_id=%s"
                      % (role, conv.rm_id, conv.cem_id))
        if self._paused_reasons:
            for reason in self._paused_reasons:
                side.gate.pause(reason)
        self._deliver_kept(conv, role)
        peer = conv.sides[PEER_ROLE[role]]
        if peer is not None:
            self._link(side, peer)
        return conv

    def detach(self, side, code=None, reason="", closed_by="peer"):
        """A side's connection is gone (for whatever reason)."""
        conv = side.conversation
        if conv is None:
            return
        side.conversation = None
        self.open_connections -= 1
        role = side.role
        current = conv.sides[role] is side
        self.hub.emit(make_event("closed", conv, origin=role, code=code, reason=reason or "",
                                 closed_by=closed_by, clean=code in (1000, 1001)))
        if not current:
            return  # a replaced connection: the conversation goes on with its successor
        self._unlink(conv, side)
        conv.sides[role] = None
        peer = conv.sides[PEER_ROLE[role]]
        if peer is not None:
            if self.mirror_close:
                mirrored = code if code is not None and (code == 1000 or 3000 <= code <= 4999) else CLOSE_GOING_AWAY
                peer.close(mirrored, ("%s closed: %s" % (role, reason or code))[:120])
            return
        if self.stopping:
            self._end_session(conv, "the proxy stopped before the %s connected")
            return
        if (conv.kept[RM] or conv.kept[CEM]) and self._clock is not None and self.kept_ttl > 0:
            # Nothing accepted is dropped: the kept messages wait for their peer (bounded by
            # --kept-ttl), even though no side is connected right now.
            conv.expiry = self._clock.callLater(self.kept_ttl, self._expire, conv)
            return
        self._end_session(conv, "session ended before the %s connected")

    def _expire(self, conv):
        conv.expiry = None
        if conv.sides[RM] is None and conv.sides[CEM] is None:
            self._end_session(conv, "the %%s did not connect within --kept-ttl=%gs" % self.kept_ttl)

    def _end_session(self, conv, discard_reason):
        self._finish_checker(conv)
        undelivered = 0
        for dest_role in (RM, CEM):
            while conv.kept[dest_role]:
                payload, binary, seq, analysis, _ = conv.kept[dest_role].popleft()
                undelivered += 1
                self.hub.emit(make_event("discarded", conv, origin=PEER_ROLE[dest_role], ref_seq=seq,
                                         message_id=analysis.message_id if analysis else None,
                                         message_type=analysis.message_type if analysis else None,
                                         reason=discard_reason % dest_role))
            conv.kept_size[dest_role] = 0
        self.conversations.pop((conv.rm_id, conv.cem_id), None)
        self._by_session.pop(conv.session_id, None)
        self.hub.emit(make_event("session_ended", conv, undelivered=undelivered,
                                 counts=dict(conv.counts)))

    def _finish_checker(self, conv):
        if conv.checker is None:
            return
        try:
            findings = conv.checker.finish(self.now())
        except Exception:
            _log.failure("checker failed while finishing {conv}", conv=conv)
            return
        self._emit_late_findings(conv, findings)

    def shutdown(self):
        """The daemon is stopping: close every device with 1001 and end waiting sessions."""
        self.stopping = True
        for conv in list(self.conversations.values()):
            if conv.expiry is not None and conv.expiry.active():
                conv.expiry.cancel()
            conv.expiry = None
            if conv.sides[RM] is None and conv.sides[CEM] is None:
                self._end_session(conv, "the proxy stopped before the %s connected")
        for side in list(self._all_sides()):
            try:
                side.close(CLOSE_GOING_AWAY, "s2proxy is shutting down")
            except Exception:
                _log.failure("could not close a {role} connection at shutdown", role=side.role)

    # -- backpressure -----------------------------------------------------------------------

    @staticmethod
    def _link(a, b):
        # Each side stops reading when the other cannot keep up with writing (transit-relay style).
        a.watch_partner(b)
        b.watch_partner(a)

    @staticmethod
    def _unlink(conv, side):
        peer = conv.sides[PEER_ROLE[side.role]]
        side.unwatch_partner()
        if peer is not None:
            peer.unwatch_partner()

    def pause_all(self, reason):
        """Stop reading from every device (the history store cannot keep up)."""
        if reason in self._paused_reasons:
            return
        self._paused_reasons.add(reason)
        for side in self._all_sides():
            side.gate.pause(reason)

    def resume_all(self, reason):
        if reason not in self._paused_reasons:
            return
        self._paused_reasons.discard(reason)
        for side in self._all_sides():
            side.gate.resume(reason)

    def _all_sides(self):
        for conv in list(self.conversations.values()):
            for side in conv.sides.values():
                if side is not None:
                    yield side

    # -- frames -----------------------------------------------------------------------------

    def receive(self, side, payload, binary):
        """A frame arrived from ``side``: forward it (or keep it), then analyse and report it."""
        conv = side.conversation
        if conv is None or conv.sides[side.role] is not side:
            return  # a replaced connection that is being closed; its late frames go nowhere
        started = time.perf_counter()
        origin = side.role
        dest_role = PEER_ROLE[origin]
        dest = conv.sides[dest_role]
        reason = None
        if dest is not None:
            dest.send_frame(payload, binary)
            kind = "forwarded"
        elif (len(conv.kept[dest_role]) >= self.max_kept_messages
              or conv.kept_size[dest_role] + len(payload) > self.max_kept_bytes):
            kind = "refused"
            reason = ("the %s is absent and %d messages / %d bytes are already kept for it "
                      "(limits --max-kept-messages=%d, --max-kept-bytes=%d)"
                      % (dest_role, len(conv.kept[dest_role]), conv.kept_size[dest_role],
                         self.max_kept_messages, self.max_kept_bytes))
            side.close(CLOSE_TRY_AGAIN_LATER, "peer absent, kept-message limit reached")
        else:
            kind = "kept"
        latency = time.perf_counter() - started
        seq = next_seq()
        analysis = self._analyse(payload, binary)
        findings = ()
        if kind == "forwarded":
            findings = self._check(conv, origin, analysis, seq)
        elif kind == "kept":
            # Checked when delivered: the checker's deadlines start when the peer gets it.
            conv.kept[dest_role].append((payload, binary, seq, analysis, None))
            conv.kept_size[dest_role] += len(payload)
        self._publish(kind, conv, origin, payload, binary, analysis, findings, seq,
                      latency=latency, reason=reason)

    def inject(self, origin_id, dest_id, payload, binary=False):
        """Send ``payload`` into a live conversation as if it came from ``origin_id``."""
        conv, origin = self.find_for_injection(origin_id, dest_id)
        if conv is None:
            raise NoLiveConnection("no conversation between %s and %s" % (origin_id, dest_id))
        dest = conv.sides[PEER_ROLE[origin]]
        if dest is None:
            raise NoLiveConnection("the %s %s is not connected" % (PEER_ROLE[origin], dest_id))
        dest.send_frame(payload, binary)
        seq = next_seq()
        analysis = self._analyse(payload, binary)
        findings = self._check(conv, origin, analysis, seq)
        return conv, self._publish("injected", conv, origin, payload, binary, analysis, findings, seq)

    def _deliver_kept(self, conv, dest_role):
        queue = conv.kept[dest_role]
        side = conv.sides[dest_role]
        origin = PEER_ROLE[dest_role]
        while queue:
            payload, binary, ref_seq, analysis, _ = queue.popleft()
            conv.kept_size[dest_role] -= len(payload)
            side.send_frame(payload, binary)
            findings = self._check(conv, origin, analysis, ref_seq)
            self.hub.emit(make_event("delivered", conv, origin=origin, ref_seq=ref_seq,
                                     message_id=analysis.message_id if analysis else None,
                                     message_type=analysis.message_type if analysis else None))
            if findings:
                self._emit_late_findings(conv, findings)
        conv.kept_size[dest_role] = 0

    def _analyse(self, payload, binary):
        if self.validator is None:
            return None
        try:
            return self.validator.analyse(payload, binary)
        except Exception:
            _log.failure("validator failed on a frame; forwarding is unaffected")
            return None

    def _check(self, conv, origin, analysis, seq):
        checker = conv.checker
        if checker is None or analysis is None:
            return ()
        try:
            findings = checker.feed(origin, analysis, self.now(), seq)
        except Exception:
            _log.failure("checker failed on a {origin} message in {conv}", origin=origin, conv=conv)
            return ()
        # Findings about an earlier message (ReceptionStatus bookkeeping) are published separately.
        own = [f for f in findings if f.get("ref", seq) == seq]
        if len(own) != len(findings):
            self._emit_late_findings(conv, [f for f in findings if f.get("ref", seq) != seq])
        return own

    def _publish(self, kind, conv, origin, payload, binary, analysis, findings, seq,
                 latency=None, reason=None):
        if analysis is not None:
            raw = analysis.text
        else:
            try:
                raw = payload.decode("utf-8") if isinstance(payload, bytes) else payload
            except UnicodeDecodeError:
                raw = payload.decode("utf-8", errors="replace")
        fields = {
            "origin": origin, "raw": raw, "binary": binary, "size": len(payload),
            "findings": list(findings),
        }
        if analysis is not None:
            fields["message_type"] = analysis.message_type
            fields["message_id"] = analysis.message_id
            fields["format_findings"] = analysis.findings
            fields["valid"] = analysis.valid
            fields["obj"] = analysis.obj
        else:
            fields["message_type"] = None
            fields["message_id"] = None
            fields["format_findings"] = []
            fields["valid"] = None
            fields["obj"] = None
        if latency is not None:
            fields["latency"] = latency
        if reason is not None:
            fields["reason"] = reason
        conv.counts["messages"] += 1
        if analysis is not None and analysis.findings:
            _count_findings(conv, analysis.findings)
        if findings:
            _count_findings(conv, findings)
        event = make_event(kind, conv, seq=seq, **fields)
        self.hub.emit(event)
        return event

    def ping(self, side):
        """A device pinged the proxy: S2 asks for at most one ping every 50 s (R-009)."""
        conv = side.conversation
        checker = conv.checker if conv is not None else None
        if checker is None or not hasattr(checker, "ping"):
            return
        try:
            findings = checker.ping(side.role, self.now())
        except Exception:
            _log.failure("checker failed on a ping in {conv}", conv=conv)
            return
        if findings:
            for f in findings:
                if not f.get("origin"):
                    f["origin"] = side.role
            self._emit_late_findings(conv, findings)

    # -- deadlines --------------------------------------------------------------------------

    def tick(self, now=None):
        """Let every checker fire the deadline rules that are due."""
        now = self.now() if now is None else now
        for conv in list(self.conversations.values()):
            checker = conv.checker
            if checker is None:
                continue
            try:
                due = checker.next_deadline()
                if due is None or due > now:
                    continue
                findings = checker.tick(now)
            except Exception:
                _log.failure("checker failed on a deadline in {conv}", conv=conv)
                continue
            self._emit_late_findings(conv, findings)

    def _emit_late_findings(self, conv, findings):
        by_ref = {}
        for f in findings:
            by_ref.setdefault(f.get("ref"), []).append(f)
        for ref, group in by_ref.items():
            _count_findings(conv, group)
            first = group[0]
            self.hub.emit(make_event("finding", conv, ref_seq=ref,
                                     message_id=first.get("message_id"),
                                     message_type=first.get("message_type"),
                                     origin=first.get("origin"), findings=group))

"""Pairing RM and CEM connections into conversations, and relaying frames between them.

Plain Python: no Autobahn import and no reactor calls. A connection is a *side* (see
``docs/INTERFACES.md``): the WebSocket protocols in :mod:`s2proxy.websocket` implement it, and so
can a test. The registry decides where every frame goes (to the peer, or kept until the peer
comes), then has it analysed and publishes one event about it. Forwarding always happens first:
analysis can never delay or block a frame.

Analysis may finish later (in the worker process of :mod:`s2proxy.analysis`), so events leave
through an ordered outbox: an event waits until every event before it is complete, and the hub
sees them in the order things happened.
"""

import time
import uuid
from collections import deque

from s2proxy import logs
from s2proxy.events import make_event

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

    def __init__(self, rm_id, cem_id, now):
        self.rm_id = rm_id
        self.cem_id = cem_id
        self.session_id = str(uuid.uuid4())
        self.started = now
        self.sides = {RM: None, CEM: None}
        # Messages waiting for an absent peer, keyed by the *destination* role: () while none
        # (an empty deque costs 600 bytes, and most conversations never keep anything).
        self.kept = {RM: (), CEM: ()}
        self.kept_size = {RM: 0, CEM: 0}
        # The analyser's key for this conversation's current S2 session (see attach()).
        self.token = None
        self.epoch = 0
        self.last_summary = None
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

    def __init__(self, hub, analyzer=None, clock=None,
                 max_kept_messages=1000, max_kept_bytes=4 * 1024 * 1024, mirror_close=False,
                 kept_ttl=3600.0):
        self.hub = hub
        # None: forward only (no validation, no checker); else an s2proxy.analysis analyser.
        self.analyzer = analyzer
        self._clock = clock
        self.max_kept_messages = max_kept_messages
        self.max_kept_bytes = max_kept_bytes
        self.mirror_close = mirror_close
        self.kept_ttl = kept_ttl
        self.conversations = {}
        self._by_session = {}
        self._by_token = {}
        self._paused_reasons = set()
        self.open_connections = 0
        self.stopping = False
        # Events waiting for analysis results, in order: [event or events, ready, finish]
        self._outbox = deque()
        # id(event) -> Deferreds waiting for that message event's analysis (see event_published)
        self._analysing = {}

    # -- time -------------------------------------------------------------------------------

    def now(self):
        # Event times are wall-clock (UTC epoch); the clock only drives timers.
        return time.time()

    # -- the ordered outbox ---------------------------------------------------------------

    def _emit(self, event):
        """Publish ``event`` now, or after the events still waiting for analysis."""
        if self._outbox:
            self._outbox.append([event, True, None])
        else:
            self.hub.emit(event)

    def _reserve(self, finish=None):
        """A place in the event order for events that analysis will complete (see _complete)."""
        entry = [None, False, finish]
        self._outbox.append(entry)
        return entry

    def _complete(self, entry, events):
        entry[0] = events
        entry[1] = True
        outbox = self._outbox
        while outbox and outbox[0][1]:
            events, _, finish = outbox.popleft()
            if finish is not None:
                events = finish(events)
            if events is None:
                continue
            if type(events) is dict:
                self.hub.emit(events)
            else:
                for event in events:
                    self.hub.emit(event)

    @property
    def outbox_depth(self):
        return len(self._outbox)

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

    def _open_checker(self, conv):
        """Start a new S2 session for the checker of ``conv`` (ending the previous one)."""
        if self.analyzer is None:
            return
        if conv.token is not None:
            self._finish_checker(conv)
        conv.epoch += 1
        conv.token = "%s/%d" % (conv.session_id, conv.epoch)
        self._by_token[conv.token] = conv
        self.analyzer.submit(("open", conv.token), _ignore_result)

    def attach(self, side):
        """A side finished its opening handshake: pair it, deliver what was kept for it."""
        key = (side.rm_id, side.cem_id)
        conv = self.conversations.get(key)
        now = self.now()
        if conv is None:
            conv = Conversation(side.rm_id, side.cem_id, now)
            self.conversations[key] = conv
            self._by_session[conv.session_id] = conv
            self._emit(make_event("session_started", conv))
            self._open_checker(conv)
        side.conversation = conv
        if conv.expiry is not None:
            if conv.expiry.active():
                conv.expiry.cancel()
            conv.expiry = None
        role = side.role
        old = conv.sides[role]
        if role in conv.seen_roles:
            # A new connection of a role is a new S2 session for the checker.
            self._open_checker(conv)
        conv.seen_roles.add(role)
        conv.sides[role] = side
        self.open_connections += 1
        self._emit(make_event("opened", conv, origin=role, peer=side.peer, tls=side.tls,
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
        self._emit(make_event("closed", conv, origin=role, code=code, reason=reason or "",
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
        summary_entry = self._finish_checker(conv)
        undelivered = 0
        for dest_role in (RM, CEM):
            while conv.kept[dest_role]:
                payload, binary, seq, event = conv.kept[dest_role].popleft()
                undelivered += 1
                self._emit_referring(event, make_event(
                    "discarded", conv, origin=PEER_ROLE[dest_role], ref_seq=seq,
                    reason=discard_reason % dest_role))
            conv.kept[dest_role] = ()
            conv.kept_size[dest_role] = 0
        self.conversations.pop((conv.rm_id, conv.cem_id), None)
        self._by_session.pop(conv.session_id, None)
        ended = make_event("session_ended", conv, undelivered=undelivered, counts=dict(conv.counts),
                           end_reason="proxy stopped" if self.stopping else "disconnected")
        if summary_entry is None:
            self._emit(ended)
        else:
            # The summary comes with the checker's last findings; the event carries it.
            def with_summary(_):
                ended["summary"] = summary_entry.get("summary")
                ended["counts"] = dict(conv.counts)
                return ended
            entry = self._reserve(with_summary)
            self._complete(entry, None)

    def _finish_checker(self, conv):
        """End the checker's S2 session: its last findings, and its summary (returned holder)."""
        token = conv.token
        if token is None or self.analyzer is None:
            return None
        conv.token = None
        holder = {}
        entry = self._reserve()

        def finished(result, _):
            self._by_token.pop(token, None)
            findings, summary = result if result is not None else ([], None)
            holder["summary"] = summary
            conv.last_summary = summary
            self._complete(entry, self._late_finding_events(conv, findings or ()))
        self.analyzer.submit(("finish", token, self.now()), finished)
        return holder

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
        event = self._message_event(kind, conv, origin, payload, binary, latency, reason)
        if kind == "kept":
            # Checked when delivered: the checker's deadlines start when the peer gets it.
            queue = conv.kept[dest_role]
            if not queue:
                queue = conv.kept[dest_role] = deque()
            queue.append((payload, binary, event["seq"], event))
            conv.kept_size[dest_role] += len(payload)
        # A refused message never reached the peer: format findings only.
        self._analyse(conv, event, payload, binary, feed=kind == "forwarded")

    def inject(self, origin_id, dest_id, payload, binary=False):
        """Send ``payload`` into a live conversation as if it came from ``origin_id``.

        Returns (conversation, event); the event's analysis fields are filled once analysed
        (at once with the inline analyser): ``event_analysed(event)`` waits for that.
        """
        conv, origin = self.find_for_injection(origin_id, dest_id)
        if conv is None:
            raise NoLiveConnection("no conversation between %s and %s" % (origin_id, dest_id))
        dest = conv.sides[PEER_ROLE[origin]]
        if dest is None:
            raise NoLiveConnection("the %s %s is not connected" % (PEER_ROLE[origin], dest_id))
        dest.send_frame(payload, binary)
        event = self._message_event("injected", conv, origin, payload, binary, None, None)
        self._analyse(conv, event, payload, binary, feed=True)
        return conv, event

    def _message_event(self, kind, conv, origin, payload, binary, latency, reason):
        try:
            raw = payload.decode("utf-8") if isinstance(payload, bytes) else payload
        except UnicodeDecodeError:
            raw = payload.decode("utf-8", errors="replace")
        event = make_event(kind, conv, origin=origin, raw=raw, binary=binary, size=len(payload),
                           findings=[], message_type=None, message_id=None, format_findings=[],
                           valid=None, obj=None)
        if latency is not None:
            event["latency"] = latency
        if reason is not None:
            event["reason"] = reason
        conv.counts["messages"] += 1
        return event

    def _analyse(self, conv, event, payload, binary, feed):
        analyzer = self.analyzer
        if analyzer is None:
            self._emit(event)
            return
        entry = self._reserve()
        seq = event["seq"]
        token = conv.token if feed else None
        self._analysing[id(event)] = ()     # a list only once somebody waits (event_published)

        def analysed(result, analysis):
            late = None
            if result is not None:
                message_type, message_id, format_findings, valid, findings = result
                event["message_type"] = message_type
                event["message_id"] = message_id
                event["format_findings"] = format_findings
                event["valid"] = valid
                if analysis is not None:
                    event["obj"] = analysis.obj
                    event["raw"] = analysis.text
                if format_findings:
                    _count_findings(conv, format_findings)
                if findings:
                    own = [f for f in findings if f.get("ref", seq) == seq]
                    if len(own) != len(findings):
                        # Findings about earlier messages (ReceptionStatus bookkeeping).
                        late = self._late_finding_events(
                            conv, [f for f in findings if f.get("ref", seq) != seq])
                    event["findings"] = own
                    _count_findings(conv, own)
            self._complete(entry, [event] + late if late else event)
            for waiter in self._analysing.pop(id(event), None) or ():
                waiter.callback(event)
        analyzer.submit(("msg", token, event["origin"], payload, binary, self.now(), seq,
                         token is not None), analysed)

    def event_published(self, event):
        """A Deferred that fires with the message ``event`` once its analysis is in it."""
        from twisted.internet import defer
        key = id(event)
        if key not in self._analysing:
            return defer.succeed(event)
        d = defer.Deferred()
        self._analysing[key] = self._analysing[key] + (d,)
        return d

    def _deliver_kept(self, conv, dest_role):
        queue = conv.kept[dest_role]
        side = conv.sides[dest_role]
        origin = PEER_ROLE[dest_role]
        while queue:
            payload, binary, ref_seq, kept_event = queue.popleft()
            conv.kept_size[dest_role] -= len(payload)
            side.send_frame(payload, binary)
            self._emit_referring(kept_event, make_event("delivered", conv, origin=origin,
                                                        ref_seq=ref_seq))
            if self.analyzer is not None and conv.token is not None:
                entry = self._reserve()

                def checked(findings, _, entry=entry):
                    self._complete(entry, self._late_finding_events(conv, findings or ()))
                self.analyzer.submit(("deliver", conv.token, origin, payload, binary, self.now(),
                                      ref_seq), checked)
        conv.kept[dest_role] = ()
        conv.kept_size[dest_role] = 0

    def _emit_referring(self, ref_event, event):
        """Emit ``event`` (about ``ref_event``) with that message's type and id, once known."""
        def fill(_):
            event["message_id"] = ref_event.get("message_id")
            event["message_type"] = ref_event.get("message_type")
            return event
        self._complete(self._reserve(fill), None)

    def ping(self, side):
        """A device pinged the proxy: S2 asks for at most one ping every 50 s (R-009)."""
        conv = side.conversation
        if conv is None or conv.token is None or self.analyzer is None:
            return
        entry = self._reserve()
        role = side.role

        def checked(findings, _):
            for f in findings or ():
                if not f.get("origin"):
                    f["origin"] = role
            self._complete(entry, self._late_finding_events(conv, findings or ()))
        self.analyzer.submit(("ping", conv.token, role, self.now()), checked)

    def summary(self, conv):
        """A Deferred with the checker's state summary of ``conv`` (None without a checker)."""
        from twisted.internet import defer
        if self.analyzer is None:
            return defer.succeed(None)
        if conv.token is None:
            return defer.succeed(getattr(conv, "last_summary", None))
        return self.analyzer.summary(conv.token)

    # -- deadlines --------------------------------------------------------------------------

    def tick(self, now=None):
        """Let every checker fire the deadline rules that are due."""
        if self.analyzer is None or not self._by_token:
            return
        now = self.now() if now is None else now
        entry = self._reserve()

        def ticked(result, _):
            events = []
            for token, findings in result or ():
                conv = self._by_token.get(token)
                if conv is not None:
                    events.extend(self._late_finding_events(conv, findings))
            self._complete(entry, events)
        self.analyzer.submit(("tick", now), ticked)

    def _late_finding_events(self, conv, findings):
        """``finding`` events (one per message the findings are about)."""
        by_ref = {}
        for f in findings:
            by_ref.setdefault(f.get("ref"), []).append(f)
        events = []
        for ref, group in by_ref.items():
            _count_findings(conv, group)
            first = group[0]
            events.append(make_event("finding", conv, ref_seq=ref,
                                     message_id=first.get("message_id"),
                                     message_type=first.get("message_type"),
                                     origin=first.get("origin"), findings=group))
        return events


def _ignore_result(result, analysis):
    pass

"""One stream of facts about every conversation, observed by every sink.

Each fact is a plain dict (cheap to build, JSON-friendly) emitted once through a :class:`Hub`.
The store, the live feeds, the metrics and the log are observers of the same hub, so they
cannot disagree about what happened. See ``docs/events.md`` for the keys of each kind.

Kinds (the ``event`` key):

- ``session_started`` / ``session_ended``: a pairing's lifetime (first side connects / both gone)
- ``opened`` / ``closed``: one device connection (role, peer, tls, code, reason, closed_by)
- ``forwarded``: a message received from ``origin`` and passed on to the peer at once
- ``kept``: a message received while the peer was absent, kept to be delivered later
- ``delivered``: a kept message handed to the peer once it connected (``ref_seq`` names it)
- ``refused``: a message that was not accepted (with ``reason``); the sender is closed
- ``discarded``: a kept message whose peer never came before the session ended
- ``injected``: a message sent into the conversation through the API
- ``finding``: findings that fired later from a clock (deadlines); ``ref_seq`` names the message
- ``connector``: state change of an outbound connector
"""

import itertools
import time

from s2proxy.logs import make_logger

_log = make_logger("s2proxy.events")

MESSAGE_EVENTS = frozenset(("forwarded", "kept", "refused", "injected"))

_seq = itertools.count(1)


def next_seq():
    """A process-wide increasing number for each event, used to refer to earlier events."""
    return next(_seq)


def make_event(kind, conversation=None, seq=None, **fields):
    """Build an event dict with the common keys filled in."""
    event = {"event": kind, "seq": next(_seq) if seq is None else seq, "time": time.time()}
    if conversation is not None:
        event["session_id"] = conversation.session_id
        event["rm_id"] = conversation.rm_id
        event["cem_id"] = conversation.cem_id
    event.update(fields)
    return event


class Hub:
    """Fan one event out to every observer; an observer that raises is logged, never fatal."""

    def __init__(self):
        self._observers = []

    def subscribe(self, observer):
        self._observers.append(observer)

    def unsubscribe(self, observer):
        try:
            self._observers.remove(observer)
        except ValueError:
            pass

    def emit(self, event):
        for observer in tuple(self._observers):
            try:
                observer(event)
            except Exception:
                _log.failure("event observer {observer!r} failed on {kind}",
                             observer=observer, kind=event.get("event"))

"""The objects the checker keeps per session (S2-PROTOCOL.md §3.9, Appendix C).

Record       one received message (or unreadable frame) and its ReceptionStatus ledger entry
Activation   one activation of a control type (§3.5): the object store of the control-type modules
Instruction  one entry of the instruction register (§5.1)
Revocable    one object that RevokeObject may name (§5.1.3)
SwitchWindow the window of the latest SelectControlType (X-5)
"""

from collections import OrderedDict

from .ids import id_key, same

FINAL_STATUSES = frozenset({"SUCCEEDED", "REVOKED", "REJECTED", "ABORTED"})
ENDED_STATUSES = frozenset({"REVOKED", "REJECTED", "ABORTED"})     # not live any more (§5.2.3)
SMALL = 1024        # a bounded FIFO dict becomes an OrderedDict above this size (see fifo_add)


def fifo_add(owner, name, d, key, value, limit):
    """d[key] = value in the insertion-ordered dict owner.<name>, dropping the oldest entries above
    `limit`.  Small dicts are plain dicts (less memory per entry); above SMALL entries the dict is
    replaced by an OrderedDict, whose oldest-first pops stay O(1) however many were popped."""
    d[key] = value
    n = len(d)
    if n > SMALL and type(d) is dict:
        d = OrderedDict(d)
        if type(owner) is dict:
            owner[name] = d
        else:
            setattr(owner, name, d)
    while n > limit:
        if type(d) is dict:
            del d[next(iter(d))]
        else:
            d.popitem(last=False)
        n -= 1
    return d


class Record:
    """A message as the checker saw it.  rs_status is None while its ReceptionStatus is pending.

    `obj` (the parsed message) is dropped once the message is answered (or R-038 gave up on its
    status): rules keep what they need when the message arrives.  A message that a later one may
    still retransmit (answered non-OK or late, X-6) keeps a content digest in `digest` instead.
    """

    __slots__ = ("seq", "sender", "mtype", "mid", "key", "obj", "ref", "t", "fwd",
                 "rs_status", "rs_time", "late_reported", "schema_valid", "unreadable",
                 "ref_error", "on_ok", "on_reject", "retx_of", "superseded", "answerable", "dl",
                 "digest")

    def __init__(self, seq, sender, mtype, mid, key, obj, ref, t, fwd):
        self.seq = seq
        self.sender = sender
        self.mtype = mtype          # str or None
        self.mid = mid              # message_id as sent, or None
        self.key = key              # id_key(mid)
        self.obj = obj              # parsed message (dict) or None; None once answered
        self.ref = ref              # what the caller gave to feed()
        self.t = t                  # arrival at the proxy
        self.fwd = fwd              # forwarded to the other side (deadlines start here, X-2) or None
        self.rs_status = None       # status of the ReceptionStatus answering it
        self.rs_time = None
        self.late_reported = False  # R-039 emitted
        self.schema_valid = True
        self.unreadable = False     # R-043 definition
        self.ref_error = False      # an unresolvable-reference error was reported for it
        self.on_ok = None           # callbacks run when it is answered OK
        self.on_reject = None       # callbacks run when it is answered non-OK (undo, §4.4)
        self.retx_of = None         # the Record it retransmits
        self.superseded = False     # a retransmission with the same message_id replaced this entry
        self.answerable = True      # False for a (schema-invalid) ReceptionStatus: never answered
        self.dl = None              # its pending ReceptionStatus deadline (cancelled when answered)
        self.digest = None          # catalog.content_digest of obj, kept when obj is dropped

    @property
    def acknowledged(self):
        return self.rs_status is not None

    @property
    def ok(self):
        return self.rs_status == "OK"

    @property
    def rejected(self):
        return self.rs_status is not None and self.rs_status != "OK"

    def __repr__(self):
        return "<Record %s %s %s %s>" % (self.seq, self.sender, self.mtype, self.mid)


class Activation:
    """The state of one activation of a control type (or of none: ct None / NOT_CONTROLABLE).

    `store` belongs to the control-type modules: a plain dict they fill as they like.
    """

    __slots__ = ("no", "ct", "prefix", "started", "select", "store", "previous",
                 "first_description", "closed")

    def __init__(self, no, ct, prefix, started, select, previous=None):
        self.no = no
        self.ct = ct                  # ControlType value, None for "no control type" (state I)
        self.prefix = prefix          # "FRBC", ... or None
        self.started = started
        self.select = select          # the SelectControlType Record (None for the initial one)
        self.store = {}
        self.previous = previous      # previous activation of the same type after a re-selection
        self.first_description = None # Record of the first SystemDescription (FRBC/OMBC/DDBC, R-033)
        self.closed = False           # a later SelectControlType replaced it

    def __repr__(self):
        return "<Activation %d %s>" % (self.no, self.ct)


class Instruction:
    """One instruction (all seven types share one namespace, §5.1.1)."""

    __slots__ = ("id", "key", "mtype", "rec", "activation_no", "execution_time", "target",
                 "statuses", "last_status", "last_timestamp", "revoked_by", "info", "count")

    def __init__(self, rec, activation_no, execution_time, target):
        raw = rec.obj.get("id")
        self.key = id_key(raw)
        self.id = same(raw, self.key)
        self.mtype = rec.mtype
        self.rec = rec
        self.activation_no = activation_no
        self.execution_time = execution_time   # epoch seconds or None
        self.target = target                   # R-062 target tuple or None
        self.statuses = []                     # [status] reported, oldest first (bounded)
        self.last_status = None
        self.last_timestamp = None             # epoch seconds of the latest update's timestamp
        self.revoked_by = None                 # RevokeObject Record
        self.info = {}                         # free for control-type modules
        self.count = 0                         # InstructionStatusUpdates received

    @property
    def final(self):
        return self.last_status in FINAL_STATUSES

    @property
    def live(self):
        """Not refused by the RM, not revoked, not REJECTED/REVOKED/ABORTED."""
        return (not self.rec.rejected and self.revoked_by is None
                and self.last_status not in ENDED_STATUSES)

    def __repr__(self):
        return "<Instruction %s %s %s>" % (self.mtype, self.id, self.last_status)


class Revocable:
    """An object RevokeObject may name: (object_type, id) plus the message that created it."""

    __slots__ = ("object_type", "id", "key", "rec", "obj", "activation_no", "revoked_by", "alias")

    def __init__(self, object_type, object_id, key, rec, obj, activation_no, alias):
        self.object_type = object_type
        self.id = object_id
        self.key = key
        self.rec = rec
        self.obj = obj
        self.activation_no = activation_no
        self.revoked_by = None      # RevokeObject Record (provisional until answered OK)
        self.alias = alias          # key of the carrying message's message_id when it differs

    @property
    def revoked(self):
        return self.revoked_by is not None and not self.revoked_by.rejected

    def __repr__(self):
        return "<Revocable %s %s>" % (self.object_type, self.id)


class SwitchWindow:
    """X-5: RM messages of `prev_ct` after the SelectControlType `select` that deactivated it."""

    __slots__ = ("prev_ct", "prev_prefix", "prev_activation", "select")

    def __init__(self, prev_ct, prev_prefix, prev_activation, select):
        self.prev_ct = prev_ct
        self.prev_prefix = prev_prefix
        self.prev_activation = prev_activation
        self.select = select

    def verdict(self, now, cfg):
        """None (phase 1: no finding), "warning" (phase 2) or "error" (after the window)."""
        s = self.select
        start = s.fwd if s.fwd is not None else s.t
        if s.rs_time is None:
            if now < start + cfg.t_rs:
                return None
            end = start + cfg.t_rs + cfg.t_switch
        else:
            end = s.rs_time + cfg.t_switch
        return "warning" if now < end else "error"

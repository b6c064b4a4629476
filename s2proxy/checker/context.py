"""The object every rule handler receives: the message being judged and access to the session state.

See PLUGIN.md for the contract.  One Context is made per message (and per deadline callback).
"""

from .ids import id_key, parse_time


class Context:
    __slots__ = ("chk", "now", "sender", "other", "msg", "obj", "mtype", "active", "activation",
                 "instruction", "final", "gate")

    def __init__(self, chk, now, sender, msg, activation, active):
        self.chk = chk
        self.now = now                  # proxy clock, epoch seconds
        self.sender = sender            # "RM" | "CEM" (of msg)
        self.other = "CEM" if sender == "RM" else "RM"
        self.msg = msg                  # Record of the message judged (None in on_end handlers)
        self.obj = msg.obj if msg is not None else None
        self.mtype = msg.mtype if msg is not None else None
        self.active = active            # the message's control type is the active one
        self.activation = activation    # Activation the message belongs to (read-only if not active)
        self.instruction = None         # Instruction (for instructions and InstructionStatusUpdate)
        self.final = False              # True in deadline callbacks settled at session end
        self.gate = True                # False when already covered the message

    # --- state -------------------------------------------------------------------------------
    @property
    def cfg(self):
        return self.chk.cfg

    @property
    def strict(self):
        return self.chk.cfg.strict

    @property
    def store(self):
        """The activation's object store (dict), or None when the message's type is not active."""
        return self.activation.store if (self.active and self.activation is not None) else None

    @property
    def rmd(self):
        """The latest ResourceManagerDetails in effect (dict) or None."""
        return self.chk.rmd

    @property
    def instructions(self):
        """The instruction register: {id_key: Instruction}."""
        return self.chk.instructions

    @property
    def state(self):
        """The session state letter: H, I, N, A, T or F (§3.1)."""
        return self.chk.state_letter()

    def key(self, value):
        """Comparison key of an id (X-1)."""
        return id_key(value)

    def time(self, text):
        """Epoch seconds of an RFC 3339 string (None if unreadable)."""
        return parse_time(text)

    def known_to_sender(self, rec):
        """X-4: was `rec` known to the sender of the current message when it arrived?

        A side knows its own messages, and the other side's messages it has answered.
        """
        return rec.sender == self.sender or rec.rs_status is not None

    def switch_verdict(self):
        """X-5 verdict for a message of the type the latest SelectControlType deactivated:
        None (phase 1, no finding), "warning" (phase 2), "error" (after); "error" without window."""
        w = self.chk.window
        if w is None:
            return "error"
        return w.verdict(self.now, self.chk.cfg)

    # --- findings ----------------------------------------------------------------------------
    def report(self, rule, text, severity=None, path=None, about=None):
        """Report a finding about `about` (a Record; default: the current message)."""
        self.chk.emit(rule, text, severity, about if about is not None else self.msg, path)

    # --- provisional effects (§4.4) ---------------------------------------------------------
    def on_ok(self, fn, rec=None):
        """Call fn() when the message (or `rec`) is answered with status OK."""
        r = rec or self.msg
        if r.rs_status == "OK":
            fn()
        elif r.rs_status is None:
            r.on_ok = (r.on_ok or []) + [fn]

    def put(self, mapping, key, value):
        """mapping[key] = value, undone (the earlier value back) if the message is refused (§4.4)."""
        old = mapping.get(key)
        mapping[key] = value

        def undo():
            if mapping.get(key) is value:
                if old is None:
                    mapping.pop(key, None)
                else:
                    mapping[key] = old
        self.on_reject(undo)

    def on_reject(self, fn, rec=None):
        """Call fn() when the message (or `rec`) is answered with a non-OK status: undo its effect."""
        r = rec or self.msg
        if r.rs_status is None:
            r.on_reject = (r.on_reject or []) + [fn]
        elif r.rs_status != "OK":
            fn()

    # --- revocable objects (§5.1.3) ----------------------------------------------------------
    def add_revocable(self, object_type, object_id, obj=None, alias=True):
        """Declare an object RevokeObject may name; removed again if the message is refused.

        alias=True also accepts the carrying message's message_id (with R-058 when the object has
        an id of its own, i.e. object_id differs from it).  Returns the Revocable.
        """
        return self.chk.add_revocable(self, object_type, object_id, obj, alias)

    def revocable(self, object_type, object_id):
        """The Revocable for (object_type, id) or None (ids by value)."""
        return self.chk.revocables.get((object_type, id_key(object_id)))

    def revocation_severity(self, entry):
        """R-060 verdict for a reference to `entry` by the current message: None (not revoked),
        "error" (revocation known to the sender, X-4) or "warning" (crossed in flight)."""
        if entry is None or not entry.revoked:
            return None
        return "error" if self.known_to_sender(entry.revoked_by) else "warning"

    # --- deadlines ---------------------------------------------------------------------------
    def after(self, delay, fn, about=None):
        """Call fn(dctx) `delay` seconds after the current message was forwarded (X-2).

        dctx is a Context about `about` (default the current message) with dctx.now the deadline
        (or the session end) and dctx.final True when the session ended before the deadline.
        Returns a handle with .cancel().
        """
        rec = about if about is not None else self.msg
        base = rec.fwd if rec.fwd is not None else rec.t
        return self.chk.add_deadline(base + delay, fn, rec)

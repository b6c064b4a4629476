"""Session state and control-type selection: rules R-020 - R-037 of S2-PROTOCOL.md §6.3, §3.3-§3.8.

The handlers here change the session state provisionally (ResourceManagerDetails, the active
control type, the termination) and register the undo for a non-OK ReceptionStatus (§4.4).
"""

from . import plugin
from .catalog import INTERN, PREFIX_OF_CT, RMD_KEYS
from .ids import compact, format_time, id_key
from .state import Activation, SwitchWindow


def terminating_or_failed(ctx):
    """States F and T (R-020, R-035, R-034); a message covered here gets no gating findings."""
    chk, rec = ctx.chk, ctx.msg
    m, side = rec.mtype, rec.sender
    if chk.failed:
        if m == "SessionRequest" or (m == "HandshakeResponse" and chk.failed == "handshake"):
            return
        if chk.failed == "permanent":
            chk.emit("R-035", "%s from the %s after a PERMANENT_ERROR was exchanged (only "
                     "ReceptionStatus or SessionRequest expected)" % (m, side), None, rec)
        else:
            chk.emit("R-020", "%s from the %s although the RM refused the HandshakeResponse "
                     "(session not initialised)" % (m, side), None, rec)
        ctx.gate = False
        return
    t = chk.term
    if t is not None and (t.by == side or t.acked is not None):
        chk.emit("R-034", "%s from the %s after %s" % (
            m, side, "its own SessionRequest" if t.by == side
            else "it acknowledged the %s's SessionRequest" % t.by), None, rec)
        ctx.gate = False


def _dups(values):
    seen, dups = set(), []
    for v in values:
        k = v if isinstance(v, str) else repr(v)
        if k in seen and k not in dups:
            dups.append(k)
        seen.add(k)
    return dups


def resource_manager_details(ctx):
    chk, rec, o = ctx.chk, ctx.msg, ctx.obj
    types = o.get("available_control_types") or []
    problems = []
    d = _dups(types)
    if d:
        problems.append("available_control_types lists %s more than once" % ", ".join(d))
    if "NO_SELECTION" in types:
        problems.append("available_control_types lists NO_SELECTION")
    d = _dups(o.get("provides_power_measurement_types") or [])
    if d:
        problems.append("provides_power_measurement_types lists %s more than once" % ", ".join(d))
    if problems:
        chk.emit("R-027", "; ".join(problems), None, rec)
    prev = chk.rmd
    if prev is not None:
        if id_key(prev.get("resource_id")) != id_key(o.get("resource_id")):
            chk.emit("R-028", "repeated ResourceManagerDetails changes resource_id from %s to %s"
                     % (prev.get("resource_id"), o.get("resource_id")), None, rec, "$.resource_id")
        ct = chk.activation.ct
        if ct is not None and ct not in types:
            chk.emit("R-028", "repeated ResourceManagerDetails no longer lists the active control "
                     "type %s" % ct, None, rec, "$.available_control_types")
    old = (chk.rmd, chk.rmd_rec)
    # Kept for the session: the fields rules and the summary read, in compact form.
    chk.rmd, chk.rmd_rec = {k: compact(o[k]) for k in RMD_KEYS if k in o}, rec

    def undo():
        if chk.rmd_rec is rec:
            chk.rmd, chk.rmd_rec = old
    ctx.on_reject(undo)
    if chk.meas_since is None:
        _measurement_gap(ctx)
    chk.dispatch(ctx)


def power_measurement(ctx):
    _measurement_gap(ctx)
    ctx.chk.dispatch(ctx)


def _measurement_gap(ctx):
    """R-037: (re)start the T_meas window from this message (first details, or a measurement).

    One deadline per session at a time: it re-arms itself when a newer measurement moved the
    window, so a steady stream of measurements does not pile up deadlines (and the messages they
    would keep alive) for T_meas.
    """
    chk = ctx.chk
    chk.meas_since = ctx.now
    chk.meas_about = ctx.msg
    if not chk.meas_armed:
        chk.meas_armed = True
        chk.add_deadline(ctx.now + chk.cfg.t_meas, _measurement_deadline, None)


def _measurement_deadline(dctx):
    chk = dctx.chk
    due = chk.meas_since + chk.cfg.t_meas
    if dctx.final:
        chk.meas_armed = False
        return
    if due > dctx.now:
        chk.add_deadline(due, _measurement_deadline, None)
        return
    chk.meas_armed = False
    rec = chk.meas_about
    chk.emit("R-037", "no PowerMeasurement for more than T_meas (%g s) since the %s at %s"
             % (chk.cfg.t_meas, rec.mtype, format_time(chk.meas_since)), None, rec)


_measurement_deadline.rule = "R-037"


def common_message(ctx):
    ctx.chk.dispatch(ctx)


def session_request(ctx):
    from .core import _Termination
    chk, rec = ctx.chk, ctx.msg
    old = chk.term
    if old is None or not ctx.gate:
        t = _Termination(rec.sender, rec)
        chk.term = t

        def undo():
            if chk.term is t:
                chk.term = old
        ctx.on_reject(undo)
    chk.dispatch(ctx)


def select_control_type(ctx):
    chk, rec, o = ctx.chk, ctx.msg, ctx.obj
    ct = o.get("control_type")
    if ctx.gate:
        if chk.rmd is None:
            chk.emit("R-024", "SelectControlType (%s) before any ResourceManagerDetails was "
                     "forwarded to the CEM" % ct, None, rec)
        else:
            avail = chk.rmd.get("available_control_types") or []
            if ct in PREFIX_OF_CT and ct not in avail:
                chk.emit("R-025", "SelectControlType selects %s, which is not in the RM's "
                         "available_control_types %s" % (ct, avail), None, rec, "$.control_type")
            elif ct == "NOT_CONTROLABLE" and ct not in avail:
                chk.emit("R-026", "SelectControlType selects NOT_CONTROLABLE, which the RM did not "
                         "declare in available_control_types %s" % avail, None, rec,
                         "$.control_type")
    switch(ctx, ct)
    chk.dispatch(ctx)


def switch(ctx, ct):
    """§3.5: a fresh activation for `ct` and the switch window for the previous type (X-5)."""
    chk, rec = ctx.chk, ctx.msg
    old_act, old_win = chk.activation, chk.window
    new_ct = None if ct == "NO_SELECTION" else INTERN.get(ct, ct)
    prefix = PREFIX_OF_CT.get(new_ct)
    previous = None
    if prefix and old_act.ct == new_ct:
        # Re-selection: the previous activation's descriptions may stay usable.
        previous = old_act if old_act.first_description is not None else old_act.previous
        if previous is not None:
            previous.previous = None     # keep one activation back, not a chain
    chk.act_no += 1
    act = Activation(chk.act_no, new_ct, prefix, ctx.now, rec, previous)
    old_act.closed = True
    chk.activation = act
    chk.window = SwitchWindow(old_act.ct, old_act.prefix, old_act, rec) if old_act.prefix else None

    def undo():
        if chk.activation is act:
            act.closed = True
            old_act.closed = False
            chk.activation = old_act
            chk.window = old_win
    ctx.on_reject(undo)
    if prefix:
        hooks = plugin.ACTIVATE.get(prefix)
        if hooks:
            from .context import Context
            actx = Context(chk, ctx.now, rec.sender, rec, act, True)
            for fn, rule in hooks:
                chk._guard(rule, fn, actx)

"""PEBC — Power Envelope Based Control: rules R-110 – R-122 (S2-PROTOCOL.md §5.6, §6.10).

PowerConstraints and EnergyConstraints are kept in `activation.store["pebc"]` with their allowed
ranges grouped by (commodity_quantity, limit_type) when they arrive, so that an instruction is
judged with a few look-ups per envelope element.  One-shot ids are unique per session (R-110):
constraints are found through the framework's revocable objects (which outlive the activation),
envelope ids in the checker's per-session plugin store.
"""

from .catalog import same_content
from .ids import format_time, id_key
from .plugin import on, on_activate, summary_hook
from .values import duplicates, zero_durations, report

_ENVELOPE_MAX = 5000


def _num(v):
    return type(v) in (int, float)


def _tol(bound):
    return max(1e-6, 1e-9 * abs(bound))


class Constraints:
    __slots__ = ("rec", "obj", "entry", "valid_from", "valid_until", "ranges")

    def __init__(self, rec, obj, entry, valid_from, valid_until):
        self.rec, self.obj, self.entry = rec, obj, entry
        self.valid_from, self.valid_until = valid_from, valid_until
        self.ranges = {}          # (quantity, limit_type) -> [(start, end, abnormal_only)]


def pstate(activation):
    st = activation.store.get("pebc")
    if st is None:
        st = activation.store["pebc"] = {"constraints": {}, "energy": {}, "arrived": False}
    return st


def _reuse(ctx, object_type, what):
    """R-110 for a constraints id: compare with the earlier object of that id (any activation)."""
    obj = ctx.obj
    earlier = ctx.revocable(object_type, obj.get("id"))
    if earlier is None or earlier.rec is ctx.msg or earlier.obj is None:
        return
    if ctx.msg.retx_of is earlier.rec:
        return              # X-6 retransmission
    if same_content(earlier.obj, obj):
        if ctx.chk.retx_candidate(earlier.rec, ctx.now):
            return
        report(ctx, "R-110", "%s id %s re-sent with identical content (first sent as message %s)"
                   % (what, obj.get("id"), earlier.rec.mid), severity="warning", path="id")
    else:
        report(ctx, "R-110", "%s id %s is reused with different content (first used by message %s)"
                   % (what, obj.get("id"), earlier.rec.mid), path="id")


@on_activate("PEBC", rule="R-122")
def activated(ctx):
    act = ctx.activation
    st = pstate(act)

    def fire(dctx):
        if dctx.final or act.closed or st["arrived"]:
            return
        dctx.report("R-122", "no PEBC.PowerConstraints within T_status (%gs) after PEBC was activated"
                    % dctx.cfg.t_status)
    ctx.after(ctx.cfg.t_status, fire)


@on("PEBC.PowerConstraints", rule="R-111", inactive=True)
def power_constraints(ctx):
    obj = ctx.obj
    _reuse(ctx, "PEBC.PowerConstraints", "PowerConstraints")
    vf, vu = ctx.time(obj.get("valid_from")), ctx.time(obj.get("valid_until"))
    if vf is not None and vu is not None and vu < vf:
        report(ctx, "R-114", "valid_until %s is earlier than valid_from %s"
                   % (obj.get("valid_until"), obj.get("valid_from")), path="valid_until")
    ranges = {}
    types_by_q = {}
    for i, r in enumerate(obj.get("allowed_limit_ranges") or ()):
        if type(r) is not dict:
            continue
        q, lt = r.get("commodity_quantity"), r.get("limit_type")
        b = r.get("range_boundary") or {}
        s, e = b.get("start_of_range"), b.get("end_of_range")
        types_by_q.setdefault(q, set()).add(lt)
        if _num(s) and _num(e):
            if s > e:
                report(ctx, "R-113", "allowed_limit_ranges[%d] (%s %s) has range_boundary start_of_range %r > "
                           "end_of_range %r" % (i, q, lt, s, e), path="allowed_limit_ranges[%d].range_boundary" % i)
            ranges.setdefault((q, lt), []).append((s, e, r.get("abnormal_condition_only") is True))
    all_types = set().union(*types_by_q.values()) if types_by_q else set()
    missing = [lt for lt in ("UPPER_LIMIT", "LOWER_LIMIT") if lt not in all_types]
    if missing:
        report(ctx, "R-111", "allowed_limit_ranges has no %s range" % " and no ".join(missing),
                   path="allowed_limit_ranges")
    else:
        for q, lts in types_by_q.items():
            if len(lts) < 2:
                report(ctx, "R-112", "%s has only %s ranges; s2-python requires an UPPER_LIMIT and a LOWER_LIMIT "
                           "range per commodity_quantity" % (q, ", ".join(sorted(lts))), path="allowed_limit_ranges")
    if ctx.store is None:
        return
    st = pstate(ctx.activation)
    st["arrived"] = True
    entry = ctx.add_revocable("PEBC.PowerConstraints", obj.get("id"), obj, alias=True)
    c = Constraints(ctx.msg, obj, entry, vf, vu)
    c.ranges = ranges
    ctx.put(st["constraints"], id_key(obj.get("id")), c)


@on("PEBC.EnergyConstraint", rule="R-115", inactive=True)
def energy_constraint(ctx):
    obj = ctx.obj
    _reuse(ctx, "PEBC.EnergyConstraint", "EnergyConstraint")
    vf, vu = ctx.time(obj.get("valid_from")), ctx.time(obj.get("valid_until"))
    if vf is not None and vu is not None and vu <= vf:
        report(ctx, "R-114", "valid_until %s is not later than valid_from %s"
                   % (obj.get("valid_until"), obj.get("valid_from")), path="valid_until")
    up, lo = obj.get("upper_average_power"), obj.get("lower_average_power")
    if _num(up) and _num(lo) and up < lo:
        report(ctx, "R-115", "upper_average_power %r is below lower_average_power %r" % (up, lo),
                   path="upper_average_power")
    if ctx.store is None:
        return
    st = pstate(ctx.activation)
    entry = ctx.add_revocable("PEBC.EnergyConstraint", obj.get("id"), obj, alias=True)
    ctx.put(st["energy"], id_key(obj.get("id")), (ctx.msg, obj, entry, vf, vu))


def _envelope_ids(ctx, envelopes):
    """R-110 for envelope ids: unique in the session (and within the instruction)."""
    try:
        seen = ctx.chk.plugin_store("pebc.envelopes", dict)  # envelope id key -> (instruction id, envelope)
    except TypeError:
        seen = {}
    iid = ctx.obj.get("id")
    retx = ctx.msg.retx_of is not None
    for i, env in enumerate(envelopes):
        if type(env) is not dict:
            continue
        key = id_key(env.get("id"))
        prev = seen.get(key)
        if prev is not None and not retx and not (prev[0] == id_key(iid) and prev[1] == env):
            if prev[0] == id_key(iid) and prev[2] is ctx.msg:
                text = "power envelope id %s appears twice in this instruction" % env.get("id")
            elif prev[1] == env:
                text = ("power envelope id %s re-sent with identical content (first in instruction %s)"
                        % (env.get("id"), prev[3]))
                report(ctx, "R-110", text, severity="warning", path="power_envelopes[%d].id" % i)
                continue
            else:
                text = "power envelope id %s is reused (first used in instruction %s)" % (env.get("id"), prev[3])
            report(ctx, "R-110", text, path="power_envelopes[%d].id" % i)
            continue
        seen[key] = (id_key(iid), env, ctx.msg, iid)
        if len(seen) > _ENVELOPE_MAX:
            seen.pop(next(iter(seen)))


@on("PEBC.Instruction", rule="R-116", inactive=True)
def instruction(ctx):
    obj = ctx.obj
    envelopes = obj.get("power_envelopes") or ()
    _envelope_ids(ctx, envelopes)
    abnormal = obj.get("abnormal_condition") is True
    for q in duplicates(list(envelopes), "commodity_quantity"):
        report(ctx, "R-117", "two power envelopes share commodity_quantity %s" % q, path="power_envelopes")
    for i, env in enumerate(envelopes):
        if type(env) is not dict:
            continue
        elements = env.get("power_envelope_elements") or ()
        zero_durations(ctx, elements, "power_envelopes[%d].power_envelope_elements" % i, "envelope")
        for j, el in enumerate(elements):
            if type(el) is dict and _num(el.get("lower_limit")) and _num(el.get("upper_limit")) \
                    and el["lower_limit"] > el["upper_limit"]:
                report(ctx, "R-118", "power_envelopes[%d].power_envelope_elements[%d] has lower_limit %r > "
                           "upper_limit %r" % (i, j, el["lower_limit"], el["upper_limit"]),
                           path="power_envelopes[%d].power_envelope_elements[%d]" % (i, j))
    if ctx.store is None:
        return
    st = pstate(ctx.activation)
    cid = obj.get("power_constraints_id")
    c = st["constraints"].get(id_key(cid))
    if c is None or c.entry is None or c.entry.revoked:
        entry = c.entry if c is not None else ctx.revocable("PEBC.PowerConstraints", cid)
        sev = ctx.revocation_severity(entry) if entry is not None else None
        if sev is not None and c is not None:
            report(ctx, "R-116", "power_constraints_id %s names PowerConstraints revoked by RevokeObject %s%s"
                       % (cid, entry.revoked_by.mid, "" if sev == "error" else " (crossed in flight)"),
                       severity=sev, path="power_constraints_id")
        else:
            report(ctx, "R-116", "power_constraints_id %s does not name PowerConstraints received in the current "
                       "activation%s" % (cid, " (it belongs to an earlier activation)" if entry is not None else ""),
                       path="power_constraints_id")
            sev = "error"
        if sev == "error":
            ctx.msg.ref_error = True
        return
    exec_t = ctx.time(obj.get("execution_time"))
    for i, env in enumerate(envelopes):
        if type(env) is not dict:
            continue
        _envelope(ctx, st, c, env, i, exec_t, abnormal)


def _envelope(ctx, st, c, env, i, exec_t, abnormal):
    q = env.get("commodity_quantity")
    uppers = [(s, e) for s, e, ab in c.ranges.get((q, "UPPER_LIMIT"), ()) if abnormal or not ab]
    lowers = [(s, e) for s, e, ab in c.ranges.get((q, "LOWER_LIMIT"), ()) if abnormal or not ab]
    if not c.ranges.get((q, "UPPER_LIMIT")) and not c.ranges.get((q, "LOWER_LIMIT")):
        report(ctx, "R-117", "power_envelopes[%d] is for %s, for which the PowerConstraints %s have no allowed "
                   "limit range" % (i, q, c.obj.get("id")), path="power_envelopes[%d].commodity_quantity" % i)
        ctx.msg.ref_error = True
        return
    elements = [el for el in env.get("power_envelope_elements") or () if type(el) is dict]
    reported = False
    for j, el in enumerate(elements):
        for name, allowed, lt in (("upper_limit", uppers, "UPPER_LIMIT"), ("lower_limit", lowers, "LOWER_LIMIT")):
            v = el.get(name)
            if reported or not _num(v):
                continue
            if not any(s - _tol(s) <= v <= e + _tol(e) for s, e in allowed):
                report(ctx, "R-119", "power_envelopes[%d].power_envelope_elements[%d].%s %r lies in no %s range of "
                           "the PowerConstraints %s for %s (%s)%s"
                           % (i, j, name, v, lt, c.obj.get("id"), q,
                              ", ".join("%r..%r" % r for r in allowed) or "none",
                              "" if abnormal else "; abnormal_condition_only ranges not counted"),
                           path="power_envelopes[%d].power_envelope_elements[%d].%s" % (i, j, name))
                reported = True
    if exec_t is None:
        return
    end = exec_t + sum(el.get("duration", 0) for el in elements if _num(el.get("duration"))) / 1000.0
    if (c.valid_from is not None and exec_t < c.valid_from) or (c.valid_until is not None and end > c.valid_until):
        report(ctx, "R-120", "power_envelopes[%d] covers %s – %s, outside the validity %s – %s of the "
                   "PowerConstraints %s" % (i, format_time(exec_t), format_time(end), c.obj.get("valid_from"),
                                             c.obj.get("valid_until") or "open", c.obj.get("id")),
                   path="power_envelopes[%d]" % i)
    _energy(ctx, st, env, i, q, elements, exec_t, end, uppers, lowers)


def _energy(ctx, st, env, i, q, elements, start, end, uppers, lowers):
    """R-121: can the energy of an overlapping EnergyConstraint still be met?  Outside the envelope the
    widest allowed limit of the constraints is assumed, so only an envelope that leaves no room fires."""
    max_up = max((e for _, e in uppers), default=None)
    min_lo = min((s for s, _ in lowers), default=None)
    for rec, eobj, entry, vf, vu in st["energy"].values():
        if entry is not None and entry.revoked:
            continue
        if eobj.get("commodity_quantity") != q or vf is None or vu is None or vu <= vf:
            continue
        if vu <= start or vf >= end:
            continue
        up_int = lo_int = 0.0
        t = start
        for el in elements:
            d = el.get("duration", 0) / 1000.0 if _num(el.get("duration")) else 0.0
            a, b = max(t, vf), min(t + d, vu)
            if b > a:
                up_int += el.get("upper_limit", 0) * (b - a)
                lo_int += el.get("lower_limit", 0) * (b - a)
            t += d
        outside = (vu - vf) - max(0.0, min(end, vu) - max(start, vf))
        span = vu - vf
        ua, la = eobj.get("upper_average_power"), eobj.get("lower_average_power")
        if _num(ua) and ua > 0 and max_up is not None:
            room = up_int + max_up * outside
            if room < ua * span - _tol(ua * span):
                report(ctx, "R-121", "power_envelopes[%d] leaves at most %.0f J (%s) for EnergyConstraint %s, which "
                           "needs %.0f J (upper_average_power %r W from %s to %s)"
                           % (i, room, q, eobj.get("id"), ua * span, ua, eobj.get("valid_from"),
                              eobj.get("valid_until")), path="power_envelopes[%d]" % i)
        if _num(la) and la < 0 and min_lo is not None:
            room = lo_int + min_lo * outside
            if room > la * span + _tol(la * span):
                report(ctx, "R-121", "power_envelopes[%d] allows at most %.0f J of production (%s) for "
                           "EnergyConstraint %s, which needs %.0f J (lower_average_power %r W from %s to %s)"
                           % (i, -room, q, eobj.get("id"), -la * span, la, eobj.get("valid_from"),
                              eobj.get("valid_until")), path="power_envelopes[%d]" % i)


@summary_hook("PEBC")
def summary(activation):
    st = activation.store.get("pebc") or {"constraints": {}, "energy": {}}
    return {
        "control_type": "PEBC",
        "power_constraints": [
            {"id": c.obj.get("id"), "valid_from": c.obj.get("valid_from"), "valid_until": c.obj.get("valid_until"),
             "consequence_type": c.obj.get("consequence_type"), "revoked": bool(c.entry and c.entry.revoked),
             "allowed_limit_ranges": [{"commodity_quantity": q, "limit_type": lt,
                                       "ranges": [[s, e] for s, e, _ in rs]} for (q, lt), rs in c.ranges.items()]}
            for c in st["constraints"].values()],
        "energy_constraints": [
            {"id": o.get("id"), "valid_from": o.get("valid_from"), "valid_until": o.get("valid_until"),
             "commodity_quantity": o.get("commodity_quantity"), "upper_average_power": o.get("upper_average_power"),
             "lower_average_power": o.get("lower_average_power"), "revoked": bool(e and e.revoked)}
            for _, o, e, _, _ in st["energy"].values()],
    }

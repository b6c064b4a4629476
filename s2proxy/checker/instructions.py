"""Instructions, InstructionStatusUpdate and RevokeObject for all control types: rules R-030,
R-031, R-032 and R-049 - R-062 of S2-PROTOCOL.md §6.5 and §5.1.

The framework keeps the instruction register; control-type modules get the Instruction as
ctx.instruction and may refine its `target` (R-062) or keep notes in `info`.
"""

from .catalog import INSTRUCTION_TYPES, same_record_content
from .ids import format_time, id_key, parse_time, same
from .state import FINAL_STATUSES, Instruction, Revocable, fifo_add

_ANY_OPEN = frozenset({None, "NEW", "ACCEPTED", "STARTED"})
_STATUS = {s: s for s in ("NEW", "ACCEPTED", "REJECTED", "STARTED", "SUCCEEDED", "ABORTED", "REVOKED")}
PREDECESSORS = {           # §5.1.2: allowed previously reported status (None = first report)
    "NEW": frozenset({None}),
    "ACCEPTED": frozenset({None, "NEW"}),
    "REJECTED": frozenset({None, "NEW"}),
    "STARTED": frozenset({None, "NEW", "ACCEPTED"}),
    "SUCCEEDED": _ANY_OPEN,
    "ABORTED": _ANY_OPEN,
    "REVOKED": _ANY_OPEN,
}


def target_of(prefix, o):
    """What an instruction addresses, for R-062 (None: PEBC, no such rule)."""
    if prefix in ("FRBC", "DDBC"):
        return (prefix, "actuator", id_key(o.get("actuator_id")))
    if prefix == "OMBC":
        return ("OMBC", "device")
    if prefix == "PPBC":
        return ("PPBC", id_key(o.get("power_profile_id")), id_key(o.get("sequence_container_id")))
    return None


def instruction(ctx):
    chk, rec, o = ctx.chk, ctx.msg, ctx.obj
    prefix = rec.mtype.split(".", 1)[0]
    act = chk.activation
    active = act.prefix == prefix
    if not active and ctx.gate:
        chk.emit("R-030", "%s from the CEM while %s is not the active control type (active: %s)"
                 % (rec.mtype, prefix, act.ct or "none"), None, rec)
    key = id_key(o.get("id"))
    iid = same(o.get("id"), key)
    exe = parse_time(o.get("execution_time"))
    prev = chk.instructions.get(key)
    if prev is not None:
        retx = rec.retx_of is prev.rec or (chk.retx_candidate(prev.rec, ctx.now)
                                           and same_record_content(prev.rec, rec))
        if not retx:
            chk.emit("R-049", "instruction id %s was already used by the %s at %s"
                     % (iid, prev.mtype, format_time(prev.rec.t)), None, rec, "$.id")
        del chk.instructions[key]
    if exe is not None and exe < ctx.now:
        chk.emit("R-061", "execution_time %s lies %.3f s before the instruction passed the proxy "
                 "(legal: execute as soon as possible)" % (o.get("execution_time"), ctx.now - exe),
                 None, rec, "$.execution_time")
    instr = Instruction(rec, act.no, exe, target_of(prefix, o))
    fifo_add(chk, "instructions", chk.instructions, key, instr, chk.cfg.max_instructions)
    entry = Revocable(rec.mtype, iid, key, rec, None, act.no, None)
    chk.put_revocable(entry)
    ctx.instruction = instr
    if active:
        chk.dispatch(ctx, True)
    else:
        ctx.activation = None
        chk.dispatch(ctx, False)
    _same_target(ctx, instr)


def _same_target(ctx, instr):
    """R-062: two live instructions for one actuator/device/container with one execution_time."""
    chk = ctx.chk
    t = instr.target
    if t is None or instr.execution_time is None:
        return
    live = [i for i in chk.by_target.get(t, ()) if i.live and i.key in chk.instructions]
    for other in live:
        if other.execution_time == instr.execution_time and other is not instr:
            chk.emit("R-062", "%s %s and the live %s %s address the same %s with the same "
                     "execution_time %s (order undefined)" % (
                         instr.mtype, instr.id, other.mtype, other.id,
                         "container" if t[0] == "PPBC" else ("device" if t[0] == "OMBC" else "actuator"),
                         ctx.obj.get("execution_time")), None, instr.rec)
            break
    live.append(instr)
    chk.by_target[t] = live
    if len(chk.by_target) > chk.cfg.max_instructions:
        chk.by_target.pop(next(iter(chk.by_target)))


def instruction_status_update(ctx):
    chk, rec, o = ctx.chk, ctx.msg, ctx.obj
    iid = o.get("instruction_id")
    st = o.get("status_type")
    st = _STATUS.get(st, st) if type(st) is str else st      # one shared string per status
    instr = chk.instructions.get(id_key(iid))
    if instr is None:
        chk.emit("R-050", "instruction_id %s is not the id of an instruction the CEM sent in this "
                 "session" % iid, None, rec, "$.instruction_id")
        chk.dispatch(ctx)
        return
    ctx.instruction = instr
    if instr.rec.rejected:
        chk.emit("R-051", "InstructionStatusUpdate %s for %s %s, which the RM answered with %s"
                 % (st, instr.mtype, iid, instr.rec.rs_status), None, rec)
    if ctx.gate:
        act = chk.activation
        if act.prefix is None:
            chk.emit("R-032", "InstructionStatusUpdate %s for %s %s while no control type is active"
                     % (st, instr.mtype, iid), None, rec)
        elif instr.activation_no != act.no:
            chk.emit("R-032", "InstructionStatusUpdate %s for %s %s, an instruction of an earlier "
                     "activation" % (st, instr.mtype, iid), None, rec)
    last = instr.last_status
    if last in FINAL_STATUSES:
        chk.emit("R-052", "InstructionStatusUpdate %s for %s %s after its final status %s"
                 % (st, instr.mtype, iid, last), None, rec, "$.status_type")
    elif st != last and last not in PREDECESSORS.get(st, _ANY_OPEN):
        chk.emit("R-052", "status %s may not follow %s for %s %s (§5.1.2)"
                 % (st, last, instr.mtype, iid), None, rec, "$.status_type")
    if st == "REVOKED" and (instr.revoked_by is None or instr.revoked_by.rejected):
        chk.emit("R-055", "status REVOKED for %s %s, which the CEM never revoked"
                 % (instr.mtype, iid), None, rec, "$.status_type")
    ts = parse_time(o.get("timestamp"))
    if ts is not None and instr.last_timestamp is not None and ts < instr.last_timestamp:
        chk.emit("R-054", "timestamp %s is earlier than that of the previous update of %s (%s)"
                 % (o.get("timestamp"), iid, format_time(instr.last_timestamp)), None, rec,
                 "$.timestamp")
    saved = (instr.last_status, instr.last_timestamp)
    instr.last_status = st
    if ts is not None:
        instr.last_timestamp = ts
    instr.count += 1
    mine = instr.count
    instr.statuses.append(st)
    if len(instr.statuses) > chk.cfg.max_history:
        del instr.statuses[0]

    def undo():
        # Still the latest update (none applied since, or those were undone as well)?
        if instr.statuses and instr.count == mine:
            instr.statuses.pop()
            instr.last_status, instr.last_timestamp = saved
            instr.count -= 1
    ctx.on_reject(undo)
    chk.dispatch(ctx)


def revoke_object(ctx):
    chk, rec, o = ctx.chk, ctx.msg, ctx.obj
    otype = o.get("object_type")
    oid = o.get("object_id")
    key = id_key(oid)
    prefix = otype.split(".", 1)[0]
    creator = "CEM" if otype in INSTRUCTION_TYPES else "RM"
    if rec.sender != creator:
        chk.emit("R-056", "the %s revokes a %s, an object only the %s creates" % (
            rec.sender, otype, creator), None, rec, "$.object_type")
    act = chk.activation
    if act.prefix != prefix:
        if ctx.gate:
            w = chk.window
            if rec.sender == "RM" and w is not None and w.prev_prefix == prefix:
                verdict = w.verdict(ctx.now, chk.cfg)
                if verdict:
                    chk.emit("R-031", "RevokeObject for a %s after %s was deactivated by the "
                             "SelectControlType %s%s" % (otype, prefix, w.select.mid,
                                                         " (within T_switch of its acknowledgement)"
                                                         if verdict == "warning" else ""),
                             verdict, rec)
            else:
                chk.emit("R-031", "RevokeObject for a %s while %s" % (
                    otype, "no control type is active" if act.prefix is None
                    else "%s is active" % act.ct), None, rec)
        chk.dispatch(ctx)
        return
    entry = chk.revocables.get((otype, key))
    if entry is None:
        entry = chk.aliases.get((otype, key))
        if entry is not None:
            chk.emit("R-058", "%s %s is revoked by the message_id of its message; its own id is %s"
                     % (otype, oid, entry.id), None, rec, "$.object_id")
    if entry is None:
        chk.emit("R-057", "RevokeObject names %s %s, which is unknown in this session"
                 % (otype, oid), None, rec, "$.object_id")
        chk.dispatch(ctx)
        return
    prior = entry.revoked_by
    if prior is not None and not prior.rejected:
        if prior.rs_status == "OK" and rec.retx_of is None:
            chk.emit("R-057", "%s %s was already revoked (RevokeObject %s, answered OK)"
                     % (otype, oid, prior.mid), "warning", rec, "$.object_id")
        chk.dispatch(ctx)
        return
    if entry.activation_no != act.no:
        chk.emit("R-057", "%s %s belongs to an earlier activation" % (otype, oid), "warning", rec,
                 "$.object_id")
    instr = chk.instructions.get(entry.key) if otype in INSTRUCTION_TYPES else None
    if instr is not None and instr.final:
        chk.emit("R-059", "RevokeObject for %s %s, which already has the final status %s"
                 % (otype, oid, instr.last_status), None, rec)
    entry.revoked_by = rec
    if instr is not None:
        instr.revoked_by = rec
        ctx.instruction = instr

    def undo():
        if entry.revoked_by is rec:
            entry.revoked_by = prior
        if instr is not None and instr.revoked_by is rec:
            instr.revoked_by = None
    ctx.on_reject(undo)
    chk.dispatch(ctx)


def unfinished_instructions(ctx):
    """R-053 at session end."""
    chk = ctx.chk
    ipd = 0.0
    if chk.rmd is not None and isinstance(chk.rmd.get("instruction_processing_delay"), (int, float)):
        ipd = chk.rmd["instruction_processing_delay"] / 1000.0
    for instr in list(chk.instructions.values()):
        if instr.final or instr.rec.rejected:
            continue
        due = instr.execution_time + ipd if instr.execution_time is not None else None
        not_due = due is not None and due > ctx.now
        chk.emit("R-053", "%s %s never reached a final status (last: %s)%s" % (
            instr.mtype, instr.id, instr.last_status or "no status",
            "; not due before the session ended" if not_due else ""),
            "info" if not_due else None, instr.rec)

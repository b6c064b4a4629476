"""PPBC — Power Profile Based Control: rules R-123 – R-137 (S2-PROTOCOL.md §5.7, §6.11).

A PowerProfileDefinition is indexed when it arrives (`Profile`: containers in order, sequences by
id key, each sequence's total duration), and kept in `activation.store["ppbc"]` with the latest
status of every container and the CEM's schedule and interruption instructions per container, so
that statuses and instructions are judged with dict look-ups.
"""

from .catalog import same_content
from .ids import format_time, id_key
from .plugin import on, summary_hook
from .values import duplicates, zero_durations, report

# statuses reachable from each status (the graph NOT_SCHEDULED → SCHEDULED → EXECUTING ⇄
# INTERRUPTED → FINISHED, ABORTED from SCHEDULED/EXECUTING/INTERRUPTED).  Skipping steps is allowed:
# a status message is a snapshot and the RM need not report every step.
_NEXT = {
    "NOT_SCHEDULED": {"SCHEDULED", "EXECUTING", "INTERRUPTED", "FINISHED", "ABORTED"},
    "SCHEDULED": {"EXECUTING", "INTERRUPTED", "FINISHED", "ABORTED"},
    "EXECUTING": {"INTERRUPTED", "FINISHED", "ABORTED"},
    "INTERRUPTED": {"EXECUTING", "FINISHED", "ABORTED"},
    "FINISHED": set(),
    "ABORTED": set(),
}
_STARTED = frozenset({"EXECUTING", "INTERRUPTED", "FINISHED"})


class Profile:
    __slots__ = ("rec", "obj", "entry", "start", "end", "containers", "order")

    def __init__(self, rec, obj, start, end):
        self.rec, self.obj, self.entry = rec, obj, None
        self.start, self.end = start, end
        self.containers = {}      # container key -> (index, id, {sequence key: (sequence, duration s)})
        self.order = []           # container keys in order


def pstate(activation):
    st = activation.store.get("ppbc")
    if st is None:
        st = activation.store["ppbc"] = {"profiles": {}, "status": {}, "schedules": {}, "interrupts": {}}
    return st


@on("PPBC.PowerProfileDefinition", rule="R-123", inactive=True)
def definition(ctx):
    obj = ctx.obj
    earlier = ctx.revocable("PPBC.PowerProfileDefinition", obj.get("id"))
    if earlier is not None and earlier.obj is not None and ctx.msg.retx_of is not earlier.rec:
        if same_content(earlier.obj, obj):
            if not ctx.chk.retx_candidate(earlier.rec, ctx.now):
                report(ctx, "R-123", "PowerProfileDefinition id %s re-sent with identical content (first sent as "
                           "message %s)" % (obj.get("id"), earlier.rec.mid), severity="warning", path="id")
        else:
            report(ctx, "R-123", "PowerProfileDefinition id %s is reused with different content (first used by "
                       "message %s)" % (obj.get("id"), earlier.rec.mid), path="id")
    start, end = ctx.time(obj.get("start_time")), ctx.time(obj.get("end_time"))
    if start is not None and end is not None and end < start:
        report(ctx, "R-124", "end_time %s is earlier than start_time %s" % (obj.get("end_time"), obj.get("start_time")),
                   path="end_time")
    prof = Profile(ctx.msg, obj, start, end)
    shortest_total = 0.0
    for i, cont in enumerate(obj.get("power_sequences_containers") or ()):
        if type(cont) is not dict:
            continue
        ckey = id_key(cont.get("id"))
        cpath = "power_sequences_containers[%d]" % i
        if ckey in prof.containers:
            report(ctx, "R-123", "container id %s appears twice in the profile (%s)" % (cont.get("id"), cpath),
                       path=cpath + ".id")
            continue
        seqs = {}
        for j, seq in enumerate(cont.get("power_sequences") or ()):
            if type(seq) is not dict:
                continue
            spath = "%s.power_sequences[%d]" % (cpath, j)
            skey = id_key(seq.get("id"))
            if skey in seqs:
                report(ctx, "R-123", "sequence id %s appears twice in container %s (%s)"
                           % (seq.get("id"), cont.get("id"), spath), path=spath + ".id")
                continue
            elements = seq.get("elements") or ()
            zero_durations(ctx, elements, spath + ".elements", "power sequence")
            dur = 0.0
            for k, el in enumerate(elements):
                if type(el) is not dict:
                    continue
                if type(el.get("duration")) in (int, float):
                    dur += el["duration"] / 1000.0
                for q in duplicates(el.get("power_values"), "commodity_quantity"):
                    report(ctx, "R-125", "%s.elements[%d].power_values lists %s more than once" % (spath, k, q),
                               path="%s.elements[%d].power_values" % (spath, k))
            seqs[skey] = (seq, dur)
        prof.containers[ckey] = (i, cont.get("id"), seqs)
        prof.order.append(ckey)
        if seqs:
            shortest_total += min(d for _, d in seqs.values())
    if start is not None and end is not None and end >= start and shortest_total > end - start:
        report(ctx, "R-126", "even the shortest sequence of every container takes %s s in total, more than the %s s "
                   "between start_time and end_time" % (_fmt(shortest_total), _fmt(end - start)), path="end_time")
    if ctx.store is None:
        return
    st = pstate(ctx.activation)
    prof.entry = ctx.add_revocable("PPBC.PowerProfileDefinition", obj.get("id"), obj, alias=True)
    ctx.put(st["profiles"], id_key(obj.get("id")), prof)


def _fmt(s):
    return ("%.3f" % s).rstrip("0").rstrip(".")


def _resolve(ctx, st, rule, pid, cid, sid, what):
    """The (profile, container entry, sequence entry) named by a status or instruction, or None after a finding."""
    prof = st["profiles"].get(id_key(pid))
    entry = prof.entry if prof is not None else ctx.revocable("PPBC.PowerProfileDefinition", pid)
    if prof is None:
        report(ctx, rule, "%s names power_profile_id %s, which is not a profile of the current activation%s"
                   % (what, pid, " (it belongs to an earlier activation)" if entry is not None else ""))
        ctx.msg.ref_error = True
        return None
    sev = ctx.revocation_severity(entry)
    if sev is not None:
        report(ctx, rule, "%s names profile %s, revoked by RevokeObject %s%s"
                   % (what, pid, entry.revoked_by.mid, "" if sev == "error" else " (crossed in flight)"),
                   severity=sev)
        if sev == "error":
            ctx.msg.ref_error = True
        return None
    cont = prof.containers.get(id_key(cid))
    if cont is None:
        report(ctx, rule, "%s names container %s, which is not in profile %s" % (what, cid, pid))
        ctx.msg.ref_error = True
        return None
    if sid is None:
        return prof, cont, None
    seq = cont[2].get(id_key(sid))
    if seq is None:
        report(ctx, rule, "%s names sequence %s, which is not in container %s of profile %s" % (what, sid, cid, pid))
        ctx.msg.ref_error = True
        return None
    return prof, cont, seq


@on("PPBC.PowerProfileStatus", rule="R-127", inactive=True)
def profile_status(ctx):
    items = ctx.obj.get("sequence_container_status") or ()
    for i, cs in enumerate(items):
        if type(cs) is not dict:
            continue
        status, sel, prog = cs.get("status"), cs.get("selected_sequence_id"), cs.get("progress")
        where = "sequence_container_status[%d]" % i
        if status == "NOT_SCHEDULED" and sel is not None:
            report(ctx, "R-129", "%s: status NOT_SCHEDULED with selected_sequence_id %s" % (where, sel), path=where)
        elif status != "NOT_SCHEDULED" and sel is None:
            report(ctx, "R-129", "%s: status %s without selected_sequence_id" % (where, status), path=where)
        elif status in _STARTED and prog is None:
            report(ctx, "R-129", "%s: status %s without progress (required once the sequence started)"
                       % (where, status), path=where)
    if ctx.store is None:
        return
    st = pstate(ctx.activation)
    mentioned = {}
    updates = []
    for i, cs in enumerate(items):
        if type(cs) is not dict:
            continue
        pid, cid, sel = cs.get("power_profile_id"), cs.get("sequence_container_id"), cs.get("selected_sequence_id")
        got = _resolve(ctx, st, "R-127", pid, cid, sel, "sequence_container_status[%d]" % i)
        if got is None:
            continue
        prof, cont, _ = got
        pkey, ckey = id_key(pid), id_key(cid)
        mentioned.setdefault(pkey, (prof, set()))[1].add(ckey)
        status = cs.get("status")
        prev = st["status"].get((pkey, ckey))
        if prev is not None and prev[0] != status and status not in _NEXT.get(prev[0], ()) \
                and not (status == "NOT_SCHEDULED" and not _live(st["schedules"].get((pkey, ckey)))):
            report(ctx, "R-130", "container %s moves from %s to %s (§6.11 graph)" % (cid, prev[0], status),
                       path="sequence_container_status[%d].status" % i)
        updates.append(((pkey, ckey), (status, id_key(sel) if sel is not None else None, ctx.msg)))
    for pkey, (prof, seen) in mentioned.items():
        missing = [prof.containers[c][1] for c in prof.order if c not in seen]
        if missing:
            report(ctx, "R-128", "the status does not report container%s %s of profile %s"
                       % ("s" if len(missing) > 1 else "", ", ".join(map(str, missing)), prof.obj.get("id")))
    olds = [(k, st["status"].get(k)) for k, _ in updates]
    for k, v in updates:
        st["status"][k] = v

    def undo():
        for k, old in reversed(olds):
            if old is None:
                st["status"].pop(k, None)
            else:
                st["status"][k] = old
    ctx.on_reject(undo)


def _live(instrs):
    return [i for i in instrs or () if i.live]


def _instruction(ctx, kind):
    obj = ctx.obj
    if ctx.store is None:
        return None
    st = pstate(ctx.activation)
    pid, cid, sid = obj.get("power_profile_id"), obj.get("sequence_container_id"), obj.get("power_sequence_id")
    got = _resolve(ctx, st, "R-131", pid, cid, sid, kind)
    if got is None:
        return None
    prof, cont, (seq, dur) = got
    if seq.get("abnormal_condition_only") is True and obj.get("abnormal_condition") is not True:
        report(ctx, "R-132", "sequence %s is abnormal_condition_only but abnormal_condition is false" % sid,
                   path="power_sequence_id")
    return st, prof, cont, seq, dur, (id_key(pid), id_key(cid), id_key(sid))


@on("PPBC.ScheduleInstruction", rule="R-131", inactive=True)
def schedule(ctx):
    got = _instruction(ctx, "ScheduleInstruction")
    if got is None:
        return
    st, prof, cont, seq, dur, (pkey, ckey, skey) = got
    obj = ctx.obj
    start = ctx.time(obj.get("execution_time"))
    if start is not None:
        end = start + dur
        if prof.start is not None and start < prof.start:
            report(ctx, "R-133", "sequence %s starts at %s, before the profile's start_time %s"
                       % (obj.get("power_sequence_id"), obj.get("execution_time"), prof.obj.get("start_time")),
                       path="execution_time")
        elif prof.end is not None and end > prof.end:
            report(ctx, "R-133", "sequence %s would end at %s, after the profile's end_time %s"
                       % (obj.get("power_sequence_id"), format_time(end), prof.obj.get("end_time")),
                       path="execution_time")
    live = _live(st["schedules"].get((pkey, ckey)))
    if live:
        report(ctx, "R-134", "container %s already has a live ScheduleInstruction (%s); a container holds "
                   "alternatives of which one is chosen" % (obj.get("sequence_container_id"), live[-1].id))
    if start is not None:
        _order(ctx, st, prof, cont, seq, pkey, start, start + dur)
    inst = ctx.instruction
    if inst is not None:
        inst.info["ppbc"] = (pkey, ckey, skey, start, None if start is None else start + dur)
        lst = st["schedules"].setdefault((pkey, ckey), [])
        lst.append(inst)
        del lst[:-8]


def _order(ctx, st, prof, cont, seq, pkey, start, end):
    """R-135: container order and max_pause_before against the CEM's other live schedules."""
    idx = cont[0]
    obj = ctx.obj
    prev_end = None
    for ckey in prof.order:
        other = prof.containers[ckey]
        if other[0] == idx:
            continue
        for inst in _live(st["schedules"].get((pkey, ckey))):
            info = inst.info.get("ppbc")
            if info is None or info[3] is None:
                continue
            o_start, o_end = info[3], info[4]
            if other[0] < idx and o_end > start + 1e-6:
                report(ctx, "R-135", "container %s is scheduled to start at %s, before container %s (earlier in the "
                           "profile) ends at %s" % (obj.get("sequence_container_id"), format_time(start), other[1],
                                                     format_time(o_end)), path="execution_time")
                return
            if other[0] > idx and o_start < end - 1e-6:
                report(ctx, "R-135", "container %s would end at %s, after container %s (later in the profile) starts "
                           "at %s" % (obj.get("sequence_container_id"), format_time(end), other[1],
                                      format_time(o_start)), path="execution_time")
                return
            if other[0] == idx - 1:
                prev_end = o_end if prev_end is None else max(prev_end, o_end)
    mp = seq.get("max_pause_before")
    if prev_end is not None and type(mp) in (int, float) and start - prev_end > mp / 1000.0 + 1e-6:
        report(ctx, "R-135", "sequence %s starts %s s after the previous container's sequence ends, more than its "
                   "max_pause_before of %s s" % (obj.get("power_sequence_id"), _fmt(start - prev_end), _fmt(mp / 1000.0)),
                   path="execution_time")


@on("PPBC.StartInterruptionInstruction", rule="R-136", inactive=True)
def start_interruption(ctx):
    got = _instruction(ctx, "StartInterruptionInstruction")
    if got is None:
        return
    st, prof, cont, seq, dur, (pkey, ckey, skey) = got
    obj = ctx.obj
    if seq.get("is_interruptible") is not True:
        report(ctx, "R-136", "sequence %s has is_interruptible: false" % obj.get("power_sequence_id"),
                   path="power_sequence_id")
    else:
        status = st["status"].get((pkey, ckey))
        running = status is not None and status[1] == skey and status[0] in ("SCHEDULED", "EXECUTING")
        planned = any(i.info.get("ppbc", (None, None, None))[2] == skey
                      for i in _live(st["schedules"].get((pkey, ckey))))
        if not running and not planned:
            report(ctx, "R-136", "sequence %s is neither scheduled nor executing in container %s (latest status: %s)"
                       % (obj.get("power_sequence_id"), obj.get("sequence_container_id"),
                          "%s" % status[0] if status else "none"), severity="warning")
    inst = ctx.instruction
    if inst is not None:
        inst.info["ppbc"] = (pkey, ckey, skey, None, None)
        lst = st["interrupts"].setdefault((pkey, ckey, skey), [])
        lst.append(inst)
        del lst[:-8]


@on("PPBC.EndInterruptionInstruction", rule="R-137", inactive=True)
def end_interruption(ctx):
    got = _instruction(ctx, "EndInterruptionInstruction")
    if got is None:
        return
    st, prof, cont, seq, dur, (pkey, ckey, skey) = got
    obj = ctx.obj
    status = st["status"].get((pkey, ckey))
    if status is not None and status[0] == "INTERRUPTED" and status[1] == skey:
        return
    if not _live(st["interrupts"].get((pkey, ckey, skey))):
        report(ctx, "R-137", "no live StartInterruptionInstruction for sequence %s of container %s precedes this "
                   "EndInterruptionInstruction" % (obj.get("power_sequence_id"), obj.get("sequence_container_id")))


@summary_hook("PPBC")
def summary(activation):
    st = activation.store.get("ppbc") or {"profiles": {}, "status": {}}
    out = []
    for pkey, prof in st["profiles"].items():
        conts = []
        for ckey in prof.order:
            idx, cid, seqs = prof.containers[ckey]
            status = st["status"].get((pkey, ckey))
            sel = None
            if status and status[1] is not None and status[1] in seqs:
                sel = seqs[status[1]][0].get("id")
            conts.append({"id": cid, "sequences": [s.get("id") for s, _ in seqs.values()],
                          "status": status[0] if status else None, "selected_sequence_id": sel})
        out.append({"id": prof.obj.get("id"), "start_time": prof.obj.get("start_time"),
                    "end_time": prof.obj.get("end_time"), "revoked": bool(prof.entry and prof.entry.revoked),
                    "containers": conts})
    return {"control_type": "PPBC", "power_profiles": out}

"""Checker.summary(): a JSON-serialisable picture of the session state (for the web UI and CLI)."""

from . import plugin
from .ids import format_time

_MAX_LIST = 100
from .catalog import RMD_KEYS as _RMD_KEYS


def summarize(chk):
    act = chk.activation
    letter = chk.state_letter()
    out = {
        "state": "A(%s)" % act.prefix if letter == "A" else letter,
        "handshake": {
            "done": chk.hs_done,
            "version": chk.version,
            "rm_handshake": chk.hs["RM"] is not None,
            "cem_handshake": chk.hs["CEM"] is not None,
            "without_handshake": chk.without_handshake,
            "failed": chk.failed,
        },
        "resource_manager": ({k: chk.rmd[k] for k in _RMD_KEYS if k in chk.rmd}
                             if chk.rmd is not None else None),
        "control_type": act.ct,
        "activation": act.no,
        "switch_window": None,
        "system_description": None,
        "instructions": [],
        "pending_reception_statuses": [],
        "counts": {"messages": {s: dict(c) for s, c in chk.counts.items()},
                   "findings": dict(chk.rule_counts),
                   "severities": dict(chk.severity_counts)},
        "rule_errors": dict(chk.rule_errors),
        "terminating": None,
    }
    w = chk.window
    if w is not None:
        out["switch_window"] = {"previous": w.prev_ct, "select_message_id": w.select.mid,
                                "acknowledged": w.select.rs_status}
    if chk.term is not None:
        out["terminating"] = {"by": chk.term.by, "acknowledged": format_time(chk.term.acked)}
    hook = plugin.SUMMARY.get(act.prefix) if act.prefix else None
    try:
        out["system_description"] = hook(act) if hook else _brief(act)
    except Exception as exc:
        chk._rule_failed("summary", exc)
    for instr in chk.instructions.values():
        if instr.final or instr.rec.rejected:
            continue
        out["instructions"].append({
            "id": instr.id, "type": instr.mtype, "status": instr.last_status,
            "execution_time": format_time(instr.execution_time), "live": instr.live,
            "revoked": instr.revoked_by is not None, "activation": instr.activation_no,
            "history": list(instr.statuses)})
        if len(out["instructions"]) >= _MAX_LIST:
            break
    for rec in chk.open.values():
        base = rec.fwd if rec.fwd is not None else None
        out["pending_reception_statuses"].append({
            "sender": rec.sender, "message_type": rec.mtype, "message_id": rec.mid,
            "forwarded": format_time(base),
            "deadline": format_time(base + chk.cfg.t_rs) if base is not None else None,
            "late": rec.late_reported,
            "final_deadline": format_time(base + chk.cfg.t_rs_max) if base is not None else None})
        if len(out["pending_reception_statuses"]) >= _MAX_LIST:
            break
    return out


def _brief(act):
    """Fallback summary of the latest FRBC/OMBC/DDBC description seen in the activation.

    Control-type modules register a better one with plugin.summary_hook(prefix).
    """
    rec = act.store.get("_latest_description")
    if rec is None:
        return None
    o = rec.obj or {}
    brief = {"message_id": rec.mid, "valid_from": o.get("valid_from")}
    if "actuators" in o:
        brief["actuators"] = [{
            "id": a.get("id"),
            "operation_modes": [m.get("id", m.get("Id")) for m in a.get("operation_modes", [])],
            "transitions": len(a.get("transitions", [])),
            "timers": [{"id": t.get("id"), "duration_ms": t.get("duration")}
                       for t in a.get("timers", [])]} for a in o["actuators"]]
    if "storage" in o:
        brief["storage_range"] = o["storage"].get("fill_level_range")
    if "operation_modes" in o:
        brief["operation_modes"] = [m.get("id") for m in o["operation_modes"]]
        brief["timers"] = [{"id": t.get("id"), "duration_ms": t.get("duration")}
                           for t in o.get("timers", [])]
    return brief

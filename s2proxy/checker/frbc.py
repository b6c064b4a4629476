"""FRBC — Fill Rate Based Control: rules R-092 – R-104 (S2-PROTOCOL.md §5.3, §6.8).

The shared operation-mode rules (R-072 – R-091) come from opmodes.py through `register(FRBC)`;
this module adds the storage model: element fill-level ranges, storage status, leakage, usage
forecasts and fill-level target profiles.  The latest StorageStatus of the activation is kept in
the opmodes state (`st.extra["fill"]`) for the instruction checks R-103 and R-104.
"""

from . import opmodes
from .plugin import on, summary_hook
from .values import nesting_findings, zero_durations, report

FRBC = opmodes.Kind("FRBC", mode_id="id", instr_mode="operation_mode", actuators=True,
                    commodities="supported_commodities",
                    keep=(("storage", ("fill_level_range", "fill_level_label", "provides_leakage_behaviour",
                                       "provides_fill_level_target_profile", "provides_usage_forecast")),))

# CommodityQuantity -> Commodity (s2-python's map, §1.5); HYDROGEN.FLOW_RATE maps to none.
COMMODITY_OF = {
    "ELECTRIC.POWER.L1": "ELECTRICITY", "ELECTRIC.POWER.L2": "ELECTRICITY",
    "ELECTRIC.POWER.L3": "ELECTRICITY", "ELECTRIC.POWER.3_PHASE_SYMMETRIC": "ELECTRICITY",
    "HEAT.THERMAL_POWER": "HEAT", "HEAT.TEMPERATURE": "HEAT", "HEAT.FLOW_RATE": "HEAT",
    "NATURAL_GAS.FLOW_RATE": "GAS", "OIL.FLOW_RATE": "OIL",
}
_EPS = 1e-9


def _rng(r):
    return opmodes._rng(r)


def _storage_range(desc):
    storage = desc.obj.get("storage") if desc is not None else None
    return _rng(storage.get("fill_level_range")) if type(storage) is dict else None


def commodity_findings(ctx, rule, act, field, path, elements_of, exact):
    """R-093 / R-107: duplicate commodities, ranges of unsupported commodities, and (FRBC, exact=True)
    elements without exactly one power range per supported commodity (s2-python 0.11.1)."""
    supported = act.get(field)
    if type(supported) is not list:
        return
    dups = sorted({c for c in supported if supported.count(c) > 1})
    if dups:
        report(ctx, rule, "%s.%s lists %s more than once" % (path, field, ", ".join(dups)), path=path + "." + field)
    sup = set(supported)
    unsupported = None
    inexact = None
    for mpath, ranges in elements_of(act, path):
        counts = {}
        for r in ranges:
            if type(r) is not dict:
                continue
            c = COMMODITY_OF.get(r.get("commodity_quantity"))
            if c is None:
                continue
            counts[c] = counts.get(c, 0) + 1
            if c not in sup and unsupported is None:
                unsupported = (mpath, r.get("commodity_quantity"), c)
        if exact and inexact is None and any(counts.get(c, 0) != 1 for c in sup):
            inexact = (mpath, {c: counts.get(c, 0) for c in sorted(sup)})
    if unsupported:
        report(ctx, rule, "%s.power_ranges uses %s, a quantity of %s, which is not in %s %s"
                   % (unsupported[0], unsupported[1], unsupported[2], field, sorted(sup)),
                   path=unsupported[0] + ".power_ranges")
    if inexact:
        report(ctx, rule, "%s has power ranges per supported commodity %s; the description is valid S2 (one range "
                   "per CommodityQuantity), but s2-python 0.11.1 requires exactly one range per supported "
                   "commodity and rejects the whole description" % inexact, path=inexact[0] + ".power_ranges")


def _elements_of(act, path):
    for i, mode in enumerate(act.get("operation_modes") or ()):
        if type(mode) is not dict:
            continue
        for j, el in enumerate(mode.get("elements") or ()):
            if type(el) is dict and type(el.get("power_ranges")) is list:
                yield "%s.operation_modes[%d].elements[%d]" % (path, i, j), el["power_ranges"]


def _scope_hook(ctx, desc, scope, act, path):
    commodity_findings(ctx, "R-093", act, "supported_commodities", path, _elements_of, True)
    storage = _storage_range(desc)
    for i, mode in enumerate(act.get("operation_modes") or ()):
        if type(mode) is not dict:
            continue
        mpath = "%s.operation_modes[%d]" % (path, i)
        ranges = []
        for j, el in enumerate(mode.get("elements") or ()):
            r = _rng(el.get("fill_level_range")) if type(el) is dict else None
            if r is None:
                continue
            if not r[0] < r[1]:
                report(ctx, "R-094", "%s.elements[%d].fill_level_range %r..%r does not have start < end"
                           % (mpath, j, r[0], r[1]), path="%s.elements[%d].fill_level_range" % (mpath, j))
                continue
            ranges.append(r)
        if not ranges:
            continue
        ranges.sort()
        for (s1, e1), (s2, e2) in zip(ranges, ranges[1:]):
            if abs(e1 - s2) > _EPS * max(1.0, abs(e1)):
                report(ctx, "R-095", "operation mode %s: elements are not contiguous: %s after the element ending "
                           "at %r, the next starts at %r" % (mode.get("id"), "gap" if s2 > e1 else "overlap", e1, s2),
                           path=mpath + ".elements")
                break
        if storage and storage[0] <= storage[1] and (ranges[0][0] > storage[0] + _EPS
                                                     or max(e for _, e in ranges) < storage[1] - _EPS):
            report(ctx, "R-096", "operation mode %s: elements cover %r..%r, not the whole storage fill_level_range "
                       "%r..%r" % (mode.get("id"), ranges[0][0], max(e for _, e in ranges), storage[0], storage[1]),
                       path=mpath + ".elements")


def _desc_hook(ctx, desc):
    storage = _storage_range(desc)
    if storage and storage[0] > storage[1]:
        report(ctx, "R-097", "storage.fill_level_range has start_of_range %r > end_of_range %r"
                   % storage, path="storage.fill_level_range")


def _instr_hook(ctx, st, desc, scope, mode):
    fill = st.extra.get("fill")
    if fill is None:
        return
    level = fill[0]
    inside = False
    for r in mode.fill:
        if r[0] - _EPS <= level <= r[1] + _EPS:
            inside = True
            break
    if not inside:
        report(ctx, "R-103", "operation mode %s has no element whose fill_level_range contains the last reported "
                   "fill level %r" % (mode.id, level), path="operation_mode")
    storage = _storage_range(desc)
    if (ctx.obj.get("abnormal_condition") is not True and storage and storage[0] <= storage[1]
            and not storage[0] <= level <= storage[1]):
        report(ctx, "R-104", "abnormal_condition is false while the last reported fill level %r is outside the "
                   "storage fill_level_range %r..%r: the RM may ignore the instruction" % ((level,) + storage),
                   path="abnormal_condition")


def _summary_hook(st, desc):
    storage = desc.obj.get("storage") if type(desc.obj.get("storage")) is dict else {}
    fill = st.extra.get("fill")
    return {"storage": {
        "fill_level_range": storage.get("fill_level_range"),
        "fill_level_label": storage.get("fill_level_label"),
        "provides_leakage_behaviour": storage.get("provides_leakage_behaviour"),
        "provides_fill_level_target_profile": storage.get("provides_fill_level_target_profile"),
        "provides_usage_forecast": storage.get("provides_usage_forecast"),
        "present_fill_level": fill[0] if fill else None}}


FRBC.scope_hook = _scope_hook
FRBC.desc_hook = _desc_hook
FRBC.instr_hook = _instr_hook
FRBC.summary_hook = _summary_hook
opmodes.register(FRBC)


@summary_hook("FRBC")
def summary(activation):
    return opmodes.summarise(FRBC, activation)


def _applicable(ctx):
    st = opmodes.opstate(ctx.activation)
    desc, newest = opmodes.resolve_desc(ctx, st, ctx.now)
    return st, desc or newest


def _provides(ctx, desc, flag, mtype):
    storage = desc.obj.get("storage") if desc is not None else None
    if type(storage) is dict and storage.get(flag) is False:
        report(ctx, "R-099", "%s sent although the applicable SystemDescription %s has storage.%s: false"
                   % (mtype, desc.rec.mid, flag))


@on("FRBC.StorageStatus", rule="R-098", inactive=True)
def storage_status(ctx):
    if ctx.store is None:
        return
    st, desc = _applicable(ctx)
    level = ctx.obj.get("present_fill_level")
    if type(level) not in (int, float):
        return
    storage = _storage_range(desc)
    if storage and storage[0] <= storage[1] and not storage[0] <= level <= storage[1]:
        report(ctx, "R-098", "present_fill_level %r lies outside the storage fill_level_range %r..%r (the RM may "
                   "then ignore instructions without abnormal_condition)" % ((level,) + storage),
                   path="present_fill_level")
    ctx.put(st.extra, "fill", (level,))


@on("FRBC.LeakageBehaviour", rule="R-100", inactive=True)
def leakage(ctx):
    obj = ctx.obj
    ranges = []
    for i, el in enumerate(obj.get("elements") or ()):
        r = _rng(el.get("fill_level_range")) if type(el) is dict else None
        if r is None:
            continue
        if not r[0] < r[1]:
            report(ctx, "R-100", "elements[%d].fill_level_range %r..%r does not have start < end" % ((i,) + r),
                       path="elements[%d].fill_level_range" % i)
        ranges.append(r)
    ranges.sort()
    for (s1, e1), (s2, e2) in zip(ranges, ranges[1:]):
        if abs(e1 - s2) > _EPS * max(1.0, abs(e1)):
            report(ctx, "R-100", "leakage elements are not contiguous: %s between %r and %r"
                       % ("gap" if s2 > e1 else "overlap", e1, s2), path="elements")
            break
    if ctx.store is None:
        return
    st, desc = _applicable(ctx)
    _provides(ctx, desc, "provides_leakage_behaviour", ctx.mtype)
    vf = ctx.time(obj.get("valid_from"))
    last = st.extra.get("leak_vf")
    if vf is not None:
        if last is not None and vf < last:
            report(ctx, "R-091", "valid_from %s is earlier than that of a LeakageBehaviour already received in this "
                       "activation" % obj.get("valid_from"), path="valid_from")
        if last is None or vf > last:
            st.extra["leak_vf"] = vf


@on("FRBC.UsageForecast", rule="R-099", inactive=True)
def usage_forecast(ctx):
    elements = ctx.obj.get("elements")
    zero_durations(ctx, elements, "elements", "usage forecast")
    for i, el in enumerate(elements or ()):
        nesting_findings(ctx, el, "usage_rate_", "elements[%d]" % i)
    if ctx.store is None:
        return
    _provides(ctx, _applicable(ctx)[1], "provides_usage_forecast", ctx.mtype)


@on("FRBC.FillLevelTargetProfile", rule="R-101", inactive=True)
def target_profile(ctx):
    elements = ctx.obj.get("elements")
    zero_durations(ctx, elements, "elements", "target profile")
    desc = _applicable(ctx)[1] if ctx.store is not None else None
    storage = _storage_range(desc)
    for i, el in enumerate(elements or ()):
        r = _rng(el.get("fill_level_range")) if type(el) is dict else None
        if r is None:
            continue
        if r[0] > r[1]:
            report(ctx, "R-101", "elements[%d].fill_level_range has start_of_range %r > end_of_range %r" % ((i,) + r),
                       path="elements[%d].fill_level_range" % i)
        elif storage and storage[0] <= storage[1] and (r[0] < storage[0] - _EPS or r[1] > storage[1] + _EPS):
            report(ctx, "R-102", "elements[%d].fill_level_range %r..%r lies (partly) outside the storage "
                       "fill_level_range %r..%r" % ((i,) + r + storage), path="elements[%d].fill_level_range" % i)
    if desc is not None:
        _provides(ctx, desc, "provides_fill_level_target_profile", ctx.mtype)

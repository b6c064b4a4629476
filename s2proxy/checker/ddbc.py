"""DDBC — Demand Driven Based Control: rules R-105 – R-109 (S2-PROTOCOL.md §5.5, §6.9).

The shared operation-mode rules come from opmodes.py through `register(DDBC)` (R-105, duplicate
actuator ids, is reported there while indexing).  Field names follow the schema exactly: `Id` of
an operation mode and `supported_commodites` (sic) of an actuator.
"""

from . import opmodes
from .frbc import commodity_findings
from .plugin import on, summary_hook
from .values import nesting_findings, zero_durations, report

DDBC = opmodes.Kind("DDBC", mode_id="Id", instr_mode="operation_mode_id", actuators=True,
                    commodities="supported_commodites",
                    keep=("present_demand_rate", "provides_average_demand_rate_forecast"))


def _ranges_of(act, path):
    for i, mode in enumerate(act.get("operation_modes") or ()):
        if type(mode) is dict and type(mode.get("power_ranges")) is list:
            yield "%s.operation_modes[%d]" % (path, i), mode["power_ranges"]


def _scope_hook(ctx, desc, scope, act, path):
    modes = act.get("operation_modes")
    if type(modes) is list and len(modes) > 1 and act.get("transitions") == []:
        report(ctx, "R-106", "actuator %s has %d operation modes but no transitions (its description asks for at "
                   "least one)" % (act.get("id"), len(modes)), path=path + ".transitions")
    commodity_findings(ctx, "R-107", act, "supported_commodites", path, _ranges_of, False)


def _desc_hook(ctx, desc):
    r = opmodes._rng(desc.obj.get("present_demand_rate"))
    if r and r[0] > r[1]:
        report(ctx, "R-109", "present_demand_rate has start_of_range %r > end_of_range %r" % r,
                   path="present_demand_rate")


def _summary_hook(st, desc):
    return {"present_demand_rate": desc.obj.get("present_demand_rate"),
            "provides_average_demand_rate_forecast": desc.obj.get("provides_average_demand_rate_forecast")}


DDBC.scope_hook = _scope_hook
DDBC.desc_hook = _desc_hook
DDBC.summary_hook = _summary_hook
opmodes.register(DDBC)


@summary_hook("DDBC")
def summary(activation):
    return opmodes.summarise(DDBC, activation)


@on("DDBC.AverageDemandRateForecast", rule="R-108", inactive=True)
def demand_forecast(ctx):
    elements = ctx.obj.get("elements")
    zero_durations(ctx, elements, "elements", "demand rate forecast")
    for i, el in enumerate(elements or ()):
        nesting_findings(ctx, el, "demand_rate_", "elements[%d]" % i)
    if ctx.store is None:
        return
    st = opmodes.opstate(ctx.activation)
    desc, newest = opmodes.resolve_desc(ctx, st, ctx.now)
    desc = desc or newest
    if desc is not None and desc.obj.get("provides_average_demand_rate_forecast") is False:
        report(ctx, "R-108", "DDBC.AverageDemandRateForecast sent although the applicable SystemDescription %s has "
                   "provides_average_demand_rate_forecast: false" % desc.rec.mid)

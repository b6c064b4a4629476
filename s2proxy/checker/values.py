"""Common value rules R-063 – R-071 (S2-PROTOCOL.md §6.6): measurements, forecasts, details, costs.

These rules judge one message against itself and the latest ResourceManagerDetails; they keep no
state of their own.  The helpers `nesting_findings`, `zero_durations` and `cost_paths` are shared
with the control-type modules, which call them for their own forecasts, profiles and descriptions.
"""

from .plugin import on

# Quantities that are no power or flow: the sign convention does not apply to them.
_UNSIGNED = frozenset({"HEAT.TEMPERATURE"})

# The nesting order of R-067, from the lowest bound to the highest, per field prefix.
_BOUNDS = ("lower_limit", "lower_95PPR", "lower_68PPR", "expected", "upper_68PPR", "upper_95PPR",
           "upper_limit")
_FIELDS = {prefix: tuple(prefix + b for b in _BOUNDS)
           for prefix in ("value_", "usage_rate_", "demand_rate_")}


def report(ctx, rule, text, severity=None, path=None):
    """ctx.report with the JSON path written from the root ("$.values[0]"), as X-3 asks."""
    if path and not path.startswith("$"):
        path = "$." + path
    ctx.report(rule, text, severity=severity, path=path)


def _num(v):
    return type(v) in (int, float)


def duplicates(items, field):
    """The values of `field` that occur more than once among the dicts `items` (in first-seen order)."""
    seen, dup = set(), []
    for it in items if type(items) is list else ():
        if type(it) is dict:
            v = it.get(field)
            if v in seen and v not in dup:
                dup.append(v)
            seen.add(v)
    return dup


def nesting_findings(ctx, value, prefix, path):
    """R-067: report when the bounds present in `value` are not ordered lowest → highest."""
    if type(value) is not dict:
        return
    present = [(name, value[name]) for name in _FIELDS[prefix] if _num(value.get(name))]
    for (lo_name, lo), (hi_name, hi) in zip(present, present[1:]):
        if lo > hi:
            report(ctx, "R-067", "uncertainty bounds not nested at %s: %s = %r is above %s = %r"
                       % (path, lo_name, lo, hi_name, hi), path=path)
            return


def zero_durations(ctx, elements, path, what):
    """R-068: report elements of `elements` whose duration is 0 ms (one finding per list)."""
    if type(elements) is not list:
        return
    zero = [i for i, e in enumerate(elements) if type(e) is dict and e.get("duration") == 0]
    if zero:
        report(ctx, "R-068", "%s element%s %s at %s %s a duration of 0 ms (no effect)"
                   % (what, "s" if len(zero) > 1 else "", ", ".join(map(str, zero)), path,
                      "have" if len(zero) > 1 else "has"), path="%s[%d].duration" % (path, zero[0]))


def cost_paths(modes, transitions, prefix, elements_key=None):
    """Paths of every running_costs / transition_costs in one scope (for R-069)."""
    out = []
    for i, mode in enumerate(modes if type(modes) is list else ()):
        if type(mode) is not dict:
            continue
        if elements_key is None:
            if "running_costs" in mode:
                out.append("%s.operation_modes[%d].running_costs" % (prefix, i))
        else:
            for j, el in enumerate(mode.get(elements_key) or ()):
                if type(el) is dict and "running_costs" in el:
                    out.append("%s.operation_modes[%d].%s[%d].running_costs" % (prefix, i, elements_key, j))
    for i, tr in enumerate(transitions if type(transitions) is list else ()):
        if type(tr) is dict and "transition_costs" in tr:
            out.append("%s.transitions[%d].transition_costs" % (prefix, i))
    return out


def check_currency(ctx, paths):
    """R-069: costs published although the latest ResourceManagerDetails has no currency."""
    if not paths:
        return
    rmd = ctx.rmd
    if rmd is not None and rmd.get("currency"):
        return
    report(ctx, "R-069", "cost information published (%s%s) but the %s has no currency"
               % (paths[0], " and %d more" % (len(paths) - 1) if len(paths) > 1 else "",
                  "latest ResourceManagerDetails" if rmd is not None else "session (no ResourceManagerDetails)"),
               path=paths[0])


@on("ResourceManagerDetails", rule="R-071")
def duplicate_roles(ctx):
    roles = ctx.obj.get("roles")
    if type(roles) is not list:
        return
    seen = set()
    for i, r in enumerate(roles):
        if type(r) is not dict:
            continue
        pair = (r.get("role"), r.get("commodity"))
        if pair in seen:
            report(ctx, "R-071", "roles[%d] repeats the pair (%s, %s)" % (i, pair[0], pair[1]),
                       path="roles[%d]" % i)
        seen.add(pair)


def _sign_expectation(rmd):
    """+1 when every role is ENERGY_CONSUMER, -1 when every role is ENERGY_PRODUCER, else 0."""
    if rmd is None:
        return 0
    roles = {r.get("role") for r in rmd.get("roles") or () if type(r) is dict}
    if roles == {"ENERGY_CONSUMER"}:
        return 1
    if roles == {"ENERGY_PRODUCER"}:
        return -1
    return 0


def _sign_check(ctx, sign, quantity, value, path, what):
    if sign == 0 or not _num(value) or quantity in _UNSIGNED:
        return
    tol = getattr(ctx.cfg, "sign_tolerance", 1.0)
    if sign < 0 and value > tol:
        report(ctx, "R-070", "%s %s = %r is positive (consumption) although every role of the RM is "
                   "ENERGY_PRODUCER (production is negative)" % (what, quantity, value), path=path)
    elif sign > 0 and value < -tol:
        report(ctx, "R-070", "%s %s = %r is negative (production) although every role of the RM is "
                   "ENERGY_CONSUMER (consumption is positive)" % (what, quantity, value), path=path)


@on("PowerMeasurement", rule="R-063")
def measurement_values(ctx):
    values = ctx.obj.get("values")
    if type(values) is not list:
        return
    for q in duplicates(values, "commodity_quantity"):
        report(ctx, "R-063", "values lists commodity_quantity %s more than once" % q, path="values")
    rmd = ctx.rmd
    if rmd is None:
        return
    declared = rmd.get("provides_power_measurement_types")
    declared = set(declared) if type(declared) is list else None
    sign = _sign_expectation(rmd)
    for i, v in enumerate(values):
        if type(v) is not dict:
            continue
        q = v.get("commodity_quantity")
        if declared is not None and q not in declared:
            report(ctx, "R-064", "values[%d] reports %s, which is not in provides_power_measurement_types %s"
                       % (i, q, sorted(declared)), path="values[%d].commodity_quantity" % i)
        _sign_check(ctx, sign, q, v.get("value"), "values[%d].value" % i, "measured")


@on("PowerForecast", rule="R-066")
def forecast_values(ctx):
    obj = ctx.obj
    rmd = ctx.rmd
    if rmd is not None and rmd.get("provides_forecast") is False:
        report(ctx, "R-065", "PowerForecast sent although the latest ResourceManagerDetails has "
                   "provides_forecast: false")
    elements = obj.get("elements")
    if type(elements) is not list:
        return
    zero_durations(ctx, elements, "elements", "forecast")
    sign = _sign_expectation(rmd)
    for i, el in enumerate(elements):
        if type(el) is not dict:
            continue
        pvs = el.get("power_values")
        if type(pvs) is not list:
            continue
        for q in duplicates(pvs, "commodity_quantity"):
            report(ctx, "R-066", "elements[%d].power_values lists commodity_quantity %s more than once" % (i, q),
                       path="elements[%d].power_values" % i)
        for j, pv in enumerate(pvs):
            if type(pv) is dict:
                path = "elements[%d].power_values[%d]" % (i, j)
                nesting_findings(ctx, pv, "value_", path)
                _sign_check(ctx, sign, pv.get("commodity_quantity"), pv.get("value_expected"),
                            path + ".value_expected", "forecast")

"""Rules R-072 – R-091 shared by the operation-mode based control types OMBC, FRBC and DDBC (§5.2, §6.7).

The three types differ only in field names and in whether operation modes belong to actuators
(FRBC, DDBC) or to the whole device (OMBC).  A `Kind` captures those differences; frbc.py, ddbc.py
and ombc.py each build one and call `register(kind)`, which installs the handlers below for its
SystemDescription, status, TimerStatus and instruction messages.

When a SystemDescription arrives it is indexed once (`Desc` of `Scope`s: modes, transitions by
(from, to), timers by id), so that every status and instruction afterwards costs a few dict look-ups.
The index keeps only what the rules and the summary read later (`Mode`, `Trans` tuples and the
top-level fields named in `Kind.keep`), not the parsed message: a session idles with its
descriptions for hours.
The handlers are registered with inactive=True: a message of a type that is not active (R-029 /
R-030 from the framework) is still judged on its content, but leaves every store alone.
The per-activation state lives in `activation.store["om"]` (`OpState`).  Scope keys are actuator id
keys (X-1); OMBC has a single scope with key None.
"""

from collections import namedtuple
from types import MappingProxyType

from .ids import compact, format_time, id_key, parse_time, same, shared_key
from .plugin import on
from .values import check_currency, cost_paths, duplicates, report

_TOL = 1e-9      # rounding room for operation_mode_factor
_NO_FIELDS = MappingProxyType({})

# What an instruction needs of an operation mode: its id as sent, abnormal_condition_only is true,
# and (FRBC) the fill_level_range (start, end) of its elements that have a readable one.
Mode = namedtuple("Mode", "id abnormal fill")
# What a status or instruction needs of a transition: ids as sent.
Trans = namedtuple("Trans", "id abnormal start_timers blocking_timers")
_new = tuple.__new__        # Mode/Trans without the keyword-handling constructor (descriptions are hot)


class Kind:
    """Field names and hooks of one operation-mode based control type."""

    def __init__(self, prefix, mode_id, instr_mode, actuators, commodities=None, keep=()):
        self.prefix = prefix
        self.sd = prefix + ".SystemDescription"
        self.status = prefix + (".Status" if prefix == "OMBC" else ".ActuatorStatus")
        self.timer = prefix + ".TimerStatus"
        self.instr = prefix + ".Instruction"
        self.mode_id = mode_id            # "id" (FRBC, OMBC) or "Id" (DDBC)
        self.instr_mode = instr_mode      # "operation_mode" (FRBC) or "operation_mode_id"
        self.actuators = actuators        # modes grouped by actuator (FRBC, DDBC)
        self.commodities = commodities   # "supported_commodities" / "supported_commodites" (sic)
        self.elements = "elements" if prefix == "FRBC" else None   # FRBC power ranges sit in elements
        self.keep = keep                  # top-level description fields the hooks read later (desc.obj)
        self.scope_hook = None            # fn(ctx, scope, path) extra static checks per actuator
        self.desc_hook = None             # fn(ctx, desc) extra static checks per description
        self.instr_hook = None            # fn(ctx, st, desc, scope, mode) extra instruction checks
        self.summary_hook = None          # fn(desc) -> dict of type-specific summary fields


class Scope:
    """One state machine: an actuator (FRBC, DDBC) or the device (OMBC) in one description."""

    __slots__ = ("id", "key", "path", "modes", "trans", "timers", "timer_list")

    def __init__(self, sid, path):
        self.key = shared_key(sid)
        self.id = same(sid, self.key)     # actuator id as sent (None for OMBC)
        self.path = path          # JSON path prefix for findings ("actuators[0]" or "")
        self.modes = {}           # mode key -> Mode
        self.trans = {}           # (from key, to key) -> (Trans, ...)
        self.timers = {}          # timer key -> duration (ms)
        self.timer_list = ()      # ((id, duration) as sent, ...) for the summary

    def label(self):
        return "device" if self.id is None else "actuator %s" % self.id


class Desc:
    """An indexed SystemDescription."""

    __slots__ = ("rec", "valid_from", "vf_text", "scopes", "obj", "revocable")

    def __init__(self, rec, valid_from, vf_text, obj):
        self.rec = rec
        self.valid_from = valid_from if valid_from is not None else float("-inf")
        self.vf_text = vf_text    # valid_from as sent
        self.scopes = {}          # scope key -> Scope
        self.obj = obj            # the Kind.keep fields of the description (read-only mapping)
        self.revocable = None

    def dead(self):
        return self.rec.rejected or (self.revocable is not None and self.revocable.revoked)


class Status:
    __slots__ = ("rec", "active", "active_id", "factor", "t")

    def __init__(self, rec, active, active_id, factor, t):
        self.rec, self.active, self.active_id, self.factor, self.t = rec, active, active_id, factor, t


_NONE = frozenset()


class OpState:
    """Per-activation state of an operation-mode based control type (activation.store["om"])."""

    __slots__ = ("descs", "max_valid_from", "status", "timers", "deadlines", "r083", "instrs",
                 "extra", "keys")
    MAX_DESCS = 16

    def __init__(self):
        self.descs = []           # Desc in arrival order (the newest MAX_DESCS)
        self.max_valid_from = None
        self.status = {}          # scope key -> Status (latest, OK or pending); its .active is
                                  # the mode named by the latest status
        self.timers = {}          # (scope key, timer key) -> (finished_at, arrival)
        self.deadlines = {}       # scope key -> True once a description opened R-083 for it
        self.r083 = _NONE         # scope keys already reported by R-083 (a set once one is)
        self.instrs = {}          # scope key -> [Instruction] of this activation (recent)
        self.extra = {}           # type-specific state (FRBC storage status, leakage, ...)
        self.keys = {}            # cache raw id -> id_key (statuses repeat the same few ids)

    def reported_r083(self, skey):
        if self.r083 is _NONE:
            self.r083 = set()
        self.r083.add(skey)


def _session_modes(ctx, prefix):
    """Mode keys ever described per scope key in the session (for the previous-mode look-up of
    R-080): the modes dict of the first description, replaced by a set when a later one adds modes."""
    return ctx.chk.plugin_store("om", dict).setdefault(prefix, {})


def opstate(activation):
    store = activation.store
    st = store.get("om")
    if st is None:
        st = store["om"] = OpState()
    return st


def _num(v):
    return type(v) in (int, float)


_NUMBER = (int, float)


def _rng(r):
    # Inlined type checks: a 50-mode description reads some 200 ranges.
    if type(r) is dict:
        s, e = r.get("start_of_range"), r.get("end_of_range")
        if type(s) in _NUMBER and type(e) in _NUMBER:
            return s, e
    return None


# ------------------------------------------------------------------ description indexing + R-072..R-078

def _index_scope(ctx, kind, sid, path, modes, transitions, timers, costs, fills):
    scope = Scope(sid, path)
    pre = path + "." if path else ""
    mid_field = kind.mode_id
    for i, mode in enumerate(modes if type(modes) is list else ()):
        if type(mode) is not dict:
            continue
        mid = mode.get(mid_field)
        k = shared_key(mid)
        dup = k in scope.modes
        if dup:
            report(ctx, "R-072", "operation mode id %s appears twice in %s (operation_modes[%d])"
                       % (mid, scope.label() if sid is not None else "the description", i),
                       path="%soperation_modes[%d].%s" % (pre, i, mid_field))
        mpath = "%soperation_modes[%d]" % (pre, i)
        fill = None
        if kind.elements is None:
            _power_ranges(ctx, mode.get("power_ranges"), mpath)
            _running_costs(ctx, mode.get("running_costs"), mpath)
        else:
            fill = []
            for j, el in enumerate(mode.get(kind.elements) or ()):
                if type(el) is dict:
                    epath = "%s.%s[%d]" % (mpath, kind.elements, j)
                    _power_ranges(ctx, el.get("power_ranges"), epath)
                    _running_costs(ctx, el.get("running_costs"), epath)
                    r = _rng(el.get("fill_level_range"))
                    if r is not None:
                        fill.append(r)
            fill = tuple(fill)
            fill = fills.setdefault(fill, fill)     # modes often share their ranges
        if not dup:
            scope.modes[k] = _new(Mode, (same(mid, k), mode.get("abnormal_condition_only") is True, fill))
    timer_list = []
    for i, timer in enumerate(timers if type(timers) is list else ()):
        if type(timer) is not dict:
            continue
        k = shared_key(timer.get("id"))
        timer_list.append((same(timer.get("id"), k), timer.get("duration")))
        if k in scope.timers:
            report(ctx, "R-073", "timer id %s appears twice in %s (timers[%d])"
                       % (timer.get("id"), scope.label() if sid is not None else "the description", i),
                       path="%stimers[%d].id" % (pre, i))
        else:
            scope.timers[k] = timer.get("duration") if _num(timer.get("duration")) else 0
    scope.timer_list = tuple(timer_list)
    seen = set()
    for i, tr in enumerate(transitions if type(transitions) is list else ()):
        if type(tr) is not dict:
            continue
        tpath = "%stransitions[%d]" % (pre, i)
        k = id_key(tr.get("id"))
        if k in seen:
            report(ctx, "R-073", "transition id %s appears twice in %s (transitions[%d])"
                       % (tr.get("id"), scope.label() if sid is not None else "the description", i),
                       path=tpath + ".id")
        seen.add(k)
        fk, tk = id_key(tr.get("from")), id_key(tr.get("to"))
        for end, key in (("from", fk), ("to", tk)):
            if key not in scope.modes:
                report(ctx, "R-074", "transition %s: '%s' %s is not an operation mode of %s"
                           % (tr.get("id"), end, tr.get(end),
                              scope.label() if sid is not None else "the description"),
                           path="%s.%s" % (tpath, end))
        for field in ("start_timers", "blocking_timers"):
            for j, tid in enumerate(tr.get(field) or ()):
                if id_key(tid) not in scope.timers:
                    report(ctx, "R-075", "transition %s: %s names timer %s, which is not a timer of %s"
                               % (tr.get("id"), field, tid,
                                  scope.label() if sid is not None else "the description"),
                               path="%s.%s[%d]" % (tpath, field, j))
        t = _new(Trans, (tr.get("id"), tr.get("abnormal_condition_only") is True,
                         tuple(tr.get("start_timers") or ()), tuple(tr.get("blocking_timers") or ())))
        old = scope.trans.get((fk, tk))
        scope.trans[(fk, tk)] = (t,) if old is None else old + (t,)
    costs.extend(cost_paths(modes, transitions, path or "$", kind.elements))
    return scope


def _power_ranges(ctx, ranges, path):
    if type(ranges) is not list:
        return
    for q in duplicates(ranges, "commodity_quantity"):
        report(ctx, "R-076", "%s.power_ranges holds more than one range for %s" % (path, q),
                   path=path + ".power_ranges")
    for i, r in enumerate(ranges):
        se = _rng(r)
        if se and se[0] > se[1]:
            report(ctx, "R-077", "%s.power_ranges[%d] (%s) has start_of_range %r > end_of_range %r; valid S2 "
                       "(start is the value at factor 0), but s2-python rejects the description"
                       % (path, i, r.get("commodity_quantity"), se[0], se[1]),
                       path="%s.power_ranges[%d]" % (path, i))


def _running_costs(ctx, costs, path):
    se = _rng(costs)
    if se and se[0] > se[1]:
        report(ctx, "R-078", "%s.running_costs has start_of_range %r > end_of_range %r (the range "
                   "expresses uncertainty)" % (path, se[0], se[1]), path=path + ".running_costs")


def _kept(obj, keep):
    """The Kind.keep fields of a description: "name", or ("name", subfields) for a dict field."""
    out = {}
    for k in keep:
        sub = None
        if type(k) is tuple:
            k, sub = k
        if k not in obj:
            continue
        v = obj[k]
        if sub is not None and type(v) is dict:
            v = {s: v[s] for s in sub if s in v}
        out[k] = compact(v)
    return out or _NO_FIELDS


def index_description(ctx, kind):
    """Build the Desc of the current SystemDescription, reporting R-069, R-072 – R-078."""
    obj = ctx.obj
    vf = obj.get("valid_from")
    desc = Desc(ctx.msg, parse_time(vf), vf, _kept(obj, kind.keep))
    costs = []
    fills = {}
    if kind.actuators:
        for i, act in enumerate(obj.get("actuators") or ()):
            if type(act) is not dict:
                continue
            path = "actuators[%d]" % i
            scope = _index_scope(ctx, kind, act.get("id"), path, act.get("operation_modes"),
                                 act.get("transitions"), act.get("timers"), costs, fills)
            if scope.key in desc.scopes:
                rule = "R-092" if kind.prefix == "FRBC" else "R-105"
                report(ctx, rule, "actuator id %s appears twice in the description (actuators[%d])"
                           % (act.get("id"), i), path=path + ".id")
            else:
                desc.scopes[scope.key] = scope
            if kind.scope_hook is not None:
                kind.scope_hook(ctx, desc, scope, act, path)
    else:
        scope = _index_scope(ctx, kind, None, "", obj.get("operation_modes"), obj.get("transitions"),
                             obj.get("timers"), costs, fills)
        desc.scopes[None] = scope
    check_currency(ctx, costs)
    if kind.desc_hook is not None:
        kind.desc_hook(ctx, desc)
    return desc


# ------------------------------------------------------------------ applicability (§5.2.2)

def candidates(activation):
    """(descriptions, from_previous): the live descriptions of the activation, else of the one it re-selected."""
    st = activation.store.get("om")
    own = [d for d in st.descs if not d.dead()] if st is not None else []
    if own or (st is not None and st.descs):
        return own, False
    prev = activation.previous
    while prev is not None:
        pst = prev.store.get("om")
        if pst is not None and pst.descs:
            return [d for d in pst.descs if not d.dead()], True
        prev = prev.previous
    return [], False


def applicable(cands, t, skew, known=None):
    """The candidate with the greatest valid_from <= t + skew (ties: received last), or None."""
    best = None
    limit = t + skew
    for d in cands:
        if known is not None and not known(d.rec):
            continue
        if d.valid_from <= limit and (best is None or d.valid_from >= best.valid_from):
            best = d
    return best


def resolve_desc(ctx, st, t):
    """The description to check an RM status against: applicable at t, else the newest live one."""
    descs = st.descs
    if not descs:
        return None, None
    newest = descs[-1]
    if not newest.dead():
        # Fast path (descriptions usually arrive with increasing valid_from): the newest live one
        # has the greatest valid_from of all, so it is applicable as soon as it is valid.
        if newest.valid_from >= st.max_valid_from and newest.valid_from <= t + ctx.cfg.t_skew:
            return newest, newest
        cands = descs
    else:
        cands = [d for d in descs if not d.dead()] or descs
    return applicable(cands if cands is not descs else [d for d in descs if not d.dead()], t,
                      ctx.cfg.t_skew), cands[-1]


# ------------------------------------------------------------------ handlers

def register(kind):
    """Install the shared handlers for one operation-mode based control type."""

    @on(kind.sd, rule="R-072", inactive=True)
    def system_description(ctx):
        desc = index_description(ctx, kind)
        if ctx.store is None:
            return          # inside a switch window: judged, but the store belongs to the new type
        st = opstate(ctx.activation)
        if st.max_valid_from is not None and desc.valid_from < st.max_valid_from:
            report(ctx, "R-091", "valid_from %s is earlier than the valid_from %s of a description already "
                       "received in this activation" % (ctx.obj.get("valid_from"), format_time(st.max_valid_from)),
                       path="valid_from")
        if st.max_valid_from is None or desc.valid_from > st.max_valid_from:
            st.max_valid_from = desc.valid_from
        st.descs.append(desc)
        if len(st.descs) > OpState.MAX_DESCS:
            del st.descs[0]
        desc.revocable = ctx.add_revocable(kind.sd, ctx.msg.mid, None, alias=False)
        modes = _session_modes(ctx, kind.prefix)
        for key, scope in desc.scopes.items():
            known = modes.get(key)
            if known is None:
                modes[key] = scope.modes
            elif not all(k in known for k in scope.modes):
                modes[key] = set(known).union(scope.modes)
            if key not in st.deadlines:
                st.deadlines[key] = True
                handle = ctx.after(ctx.cfg.t_status, _status_deadline(kind, st, scope))

                def cancel(handle=handle, key=key):
                    handle.cancel()
                    st.deadlines.pop(key, None)
                ctx.on_reject(cancel)

        def undo():
            if desc in st.descs:
                st.descs.remove(desc)
        ctx.on_reject(undo)

    @on(kind.status, rule="R-080", inactive=True)
    def status(ctx):
        obj = ctx.obj
        f = obj.get("operation_mode_factor")
        if type(f) in (int, float) and (f < -_TOL or f > 1 + _TOL):
            _factor(ctx, obj)
        prev_id, ts = obj.get("previous_operation_mode_id"), obj.get("transition_timestamp")
        active_id = obj.get("active_operation_mode_id")
        if (prev_id is None) != (ts is None):
            report(ctx, "R-081", "%s given without %s" % (("previous_operation_mode_id", "transition_timestamp")
                                                        if ts is None else
                                                        ("transition_timestamp", "previous_operation_mode_id")))
        if prev_id is not None and id_key(prev_id) == id_key(active_id):
            report(ctx, "R-082", "previous_operation_mode_id %s equals active_operation_mode_id" % prev_id,
                   path="previous_operation_mode_id")
        if not ctx.active or ctx.activation is None:
            return
        st = opstate(ctx.activation)
        keys = st.keys               # raw id -> X-1 key: a dict hit instead of a regex per status
        raw = obj.get("actuator_id") if kind.actuators else None
        skey = keys.get(raw)
        if skey is None and raw is not None:
            skey = keys[raw] = shared_key(raw)
        akey = keys.get(active_id)
        if akey is None:
            akey = keys[active_id] = shared_key(active_id)
        if len(keys) > 4096:
            keys.clear()
        named = st.status.get(skey)
        named = named.active if named is not None else None
        if prev_id is None and ts is None and named is not None and named != akey:
            report(ctx, "R-081", "previous_operation_mode_id and transition_timestamp are absent although the "
                   "previous status for this %s named another mode" % ("actuator" if kind.actuators else "device"))
        desc, newest = resolve_desc(ctx, st, ctx.now)
        if newest is not None:
            s1 = desc.scopes.get(skey) if desc is not None else None
            s2 = s1 if newest is desc else newest.scopes.get(skey)
            scope = s1 or s2
            if scope is None:
                report(ctx, "R-080", "actuator_id %s is not an actuator of the applicable or the latest "
                       "SystemDescription" % raw, path="actuator_id")
            else:
                if not ((s1 is not None and akey in s1.modes) or (s2 is not None and akey in s2.modes)):
                    report(ctx, "R-080", "active_operation_mode_id %s is not an operation mode of %s in the "
                           "applicable or the latest SystemDescription" % (active_id, scope.label()),
                           path="active_operation_mode_id")
                if prev_id is not None:
                    known = _session_modes(ctx, kind.prefix).get(skey, ())
                    if id_key(prev_id) not in known:
                        report(ctx, "R-080", "previous_operation_mode_id %s is not an operation mode of %s in any "
                               "SystemDescription of the session" % (prev_id, scope.label()),
                               severity="warning", path="previous_operation_mode_id")
                    elif ts is not None:
                        _started_timers(st, scope, skey, id_key(prev_id), akey, parse_time(ts), ctx.now)
        ctx.put(st.status, skey, Status(ctx.msg, akey, same(active_id, akey), f, ctx.now))

    @on(kind.timer, rule="R-084", inactive=True)
    def timer_status(ctx):
        if ctx.store is None:
            return
        obj = ctx.obj
        st = opstate(ctx.activation)
        skey = id_key(obj.get("actuator_id")) if kind.actuators else None
        tkey = id_key(obj.get("timer_id"))
        desc, newest = resolve_desc(ctx, st, ctx.now)
        if newest is None:
            return          # R-033 covers a status before the first description
        found = False
        for d in (desc, newest):
            scope = _scope_in(d, skey)
            if scope is not None and tkey in scope.timers:
                found = True
                break
        if not found:
            if kind.actuators and _scope_in(desc, skey) is None and _scope_in(newest, skey) is None:
                what = "actuator_id %s is not an actuator" % obj.get("actuator_id")
            else:
                what = "timer_id %s is not a timer of %s" % (
                    obj.get("timer_id"), "actuator %s" % obj.get("actuator_id") if kind.actuators else "the device")
            report(ctx, "R-084", "%s in the applicable or the latest SystemDescription" % what,
                       path="timer_id")
            return
        fin = parse_time(obj.get("finished_at"))
        if fin is not None:
            old = st.timers.get((skey, tkey))
            st.timers[(skey, tkey)] = (fin, ctx.now)

            def undo():
                if old is None:
                    st.timers.pop((skey, tkey), None)
                else:
                    st.timers[(skey, tkey)] = old
            ctx.on_reject(undo)

    @on(kind.instr, rule="R-086", inactive=True)
    def instruction(ctx):
        _factor(ctx, ctx.obj)
        if ctx.store is None:
            return
        check_instruction(ctx, kind)

    return system_description, status, timer_status, instruction


def _scope_in(desc, skey):
    return desc.scopes.get(skey) if desc is not None else None


def _factor(ctx, obj):
    f = obj.get("operation_mode_factor")
    if _num(f) and (f < -_TOL or f > 1 + _TOL):
        report(ctx, "R-079", "operation_mode_factor %r lies outside [0, 1]" % f, path="operation_mode_factor")


def _started_timers(st, scope, skey, from_key, to_key, ts, now):
    """A status shows the transition from_key -> to_key at ts: its start timers run from ts (§5.2.3 item 6)."""
    if ts is None:
        return
    for tr in scope.trans.get((from_key, to_key), ()):
        for tid in tr.start_timers:
            tkey = id_key(tid)
            dur = scope.timers.get(tkey)
            if dur is None:
                continue
            fin = ts + dur / 1000.0
            old = st.timers.get((skey, tkey))
            if old is None or old[1] <= now:
                st.timers[(skey, tkey)] = (fin, now)


def _status_deadline(kind, st, scope):
    skey = scope.key

    def fire(dctx):
        if dctx.final or skey in st.status or skey in st.r083:
            return
        st.reported_r083(skey)
        dctx.report("R-083", "no %s for %s within T_status (%gs) after this SystemDescription"
                    % (kind.status, scope.label(), dctx.cfg.t_status))
    return fire


def check_instruction(ctx, kind):
    """R-083 (instruction before any status), R-085 – R-090 for an FRBC/OMBC/DDBC instruction."""
    obj = ctx.obj
    st = opstate(ctx.activation)
    skey = id_key(obj.get("actuator_id")) if kind.actuators else None
    mode_id = obj.get(kind.instr_mode)
    mkey = id_key(mode_id)
    exec_t = parse_time(obj.get("execution_time"))
    t = max(exec_t, ctx.now) if exec_t is not None else ctx.now
    skew = ctx.cfg.t_skew

    cands, from_previous = candidates(ctx.activation)
    if not cands:
        dead = [d for d in st.descs if d.revocable is not None and d.revocable.revoked]
        if dead:
            sev = ctx.revocation_severity(dead[-1].revocable)
            report(ctx, "R-060", "every SystemDescription of this activation was revoked (the latest, %s, by "
                       "RevokeObject %s)%s" % (dead[-1].rec.mid, dead[-1].revocable.revoked_by.mid,
                                               "" if sev == "error" else "; the instruction crossed the "
                                               "revocation in flight"), severity=sev)
            ctx.msg.ref_error = sev == "error"
        else:
            report(ctx, "R-085", "no %s has been received in this activation" % kind.sd)
            ctx.msg.ref_error = True
        return
    desc = applicable(cands, t, skew)
    if desc is None:
        desc = cands[-1]
        report(ctx, "R-085", "no %s is valid at %s: the newest was received with valid_from %s; clock skew?"
                   % (kind.sd, format_time(t), desc.vf_text), severity="warning")
    elif from_previous:
        report(ctx, "R-085", "no %s was received since the control type was selected again; the previous "
                   "activation's description is used" % kind.sd, severity="warning")

    scope = _scope_in(desc, skey)
    mode = scope.modes.get(mkey) if scope is not None else None
    if mode is None:
        known_desc = applicable(cands, t, skew, known=ctx.known_to_sender)
        ks = _scope_in(known_desc, skey)
        crossed = ks is not None and mkey in ks.modes
        if scope is None:
            what = "actuator_id %s is not an actuator" % obj.get("actuator_id")
            path = "actuator_id"
        else:
            what = "%s %s is not an operation mode of %s" % (kind.instr_mode, mode_id, scope.label())
            path = kind.instr_mode
        if crossed:
            report(ctx, "R-086", "%s in the SystemDescription %s applicable at %s, which the CEM had not yet "
                       "acknowledged (crossed in flight)" % (what, desc.rec.mid, format_time(t)),
                       severity="warning", path=path)
        else:
            report(ctx, "R-086", "%s in the SystemDescription %s applicable at %s"
                       % (what, desc.rec.mid, format_time(t)), path=path)
            ctx.msg.ref_error = True
        return

    abnormal = obj.get("abnormal_condition") is True
    if mode.abnormal and not abnormal:
        report(ctx, "R-087", "operation mode %s is abnormal_condition_only but abnormal_condition is false"
                   % mode_id, path=kind.instr_mode)

    inst = ctx.instruction
    lst = st.instrs.setdefault(skey, [])
    if skey not in st.status and skey not in st.r083:
        st.reported_r083(skey)
        report(ctx, "R-083", "instruction for %s before any %s was received" % (scope.label(), kind.status))
    _transitions(ctx, st, scope, skey, mkey, mode_id, t, abnormal, lst)
    if kind.instr_hook is not None:
        kind.instr_hook(ctx, st, desc, scope, mode)
    if inst is not None:
        inst.info["om"] = (skey, mkey, mode_id)
        lst.append(inst)
        if len(lst) > 32:
            del lst[:-32]


def _transitions(ctx, st, scope, skey, mkey, mode_id, t, abnormal, lst):
    base = st.status.get(skey)
    if base is None:
        return              # no status yet: R-083 covers it
    pending = [i for i in lst if i.live and i.execution_time is not None and i.execution_time <= t
               and base.t <= i.execution_time and "om" in i.info]
    if pending:
        latest = max(pending, key=lambda i: i.execution_time)
        source, source_id = latest.info["om"][1], latest.info["om"][2]
        certain = False
    else:
        source, source_id = base.active, base.active_id
        certain = base.rec.ok
    if source == mkey:
        return
    trans = scope.trans.get((source, mkey))
    if not trans:
        report(ctx, "R-088", "no transition leads from %s (expected active at %s) to %s in %s"
                   % (source_id, format_time(t), mode_id, scope.label()), path=ctx_mode_path(ctx))
        return
    usable = trans if abnormal else [tr for tr in trans if not tr.abnormal]
    if not usable:
        report(ctx, "R-089", "every transition from %s to %s (%s) is abnormal_condition_only but abnormal_condition "
                   "is false%s" % (source_id, mode_id, ", ".join(str(tr.id) for tr in trans),
                                   "" if certain else " (source mode uncertain: a status or instruction is in flight)"),
                   severity="error" if certain else "warning", path=ctx_mode_path(ctx))
        return
    blockers = []
    for tr in usable:
        running = None
        for tid in tr.blocking_timers:
            known = st.timers.get((skey, id_key(tid)))
            if known is not None and known[0] > t:
                running = (tid, known[0])
                break
        if running is None:
            return
        blockers.append("%s blocked by timer %s until %s" % (tr.id, running[0], format_time(running[1])))
    report(ctx, "R-090", "at %s every usable transition from %s to %s is blocked: %s"
               % (format_time(t), source_id, mode_id, "; ".join(blockers)), path="execution_time")


def ctx_mode_path(ctx):
    return "operation_mode" if "operation_mode" in ctx.obj else "operation_mode_id"


# ------------------------------------------------------------------ summary

def summarise(kind, activation):
    """The per-type part of the state summary: the latest description in brief, statuses, timers."""
    st = activation.store.get("om")
    if st is None or not st.descs:
        return None
    live = [d for d in st.descs if not d.dead()]
    desc = live[-1] if live else st.descs[-1]
    scopes = []
    for scope in desc.scopes.values():
        status = st.status.get(scope.key)
        entry = {
            "operation_modes": [m.id for m in scope.modes.values()],
            "abnormal_only_modes": [m.id for m in scope.modes.values() if m.abnormal],
            "transitions": sum(len(v) for v in scope.trans.values()),
            "timers": [{"id": tid, "duration_ms": d,
                        "finished_at": format_time(st.timers.get((scope.key, id_key(tid)), (None,))[0])}
                       for tid, d in scope.timer_list],
            "active_operation_mode": status.active_id if status else None,
            "operation_mode_factor": status.factor if status else None,
        }
        if scope.id is not None:
            entry["id"] = scope.id
        scopes.append(entry)
    out = {"control_type": kind.prefix, "message_id": desc.rec.mid, "valid_from": desc.vf_text,
           "revoked": desc.dead(), "descriptions_in_activation": len(st.descs)}
    if kind.actuators:
        out["actuators"] = scopes
    else:
        out["device"] = scopes[0] if scopes else None
    if kind.summary_hook is not None:
        out.update(kind.summary_hook(st, desc))
    return out

"""Handshake and version negotiation: rules R-010 - R-022 of S2-PROTOCOL.md §6.2 and §3.2."""

from .catalog import INTERN, SUPPORTED_VERSION
from .ids import compact, format_time


def handshake_phase(ctx):
    """State H: only Handshake, HandshakeResponse and ReceptionStatus may flow (R-021, R-022)."""
    chk, rec = ctx.chk, ctx.msg
    m = rec.mtype
    if m in ("Handshake", "HandshakeResponse"):
        return
    if m == "SessionRequest":
        if ctx.gate:
            chk.emit("R-022", "SessionRequest from the %s during the handshake phase" % rec.sender,
                     None, rec)
        return
    if (m == "ResourceManagerDetails" and chk.hs["RM"] is None and chk.hs["CEM"] is None
            and not chk.any_message):
        # S2 Connect start without handshake: one R-010 for the whole session.
        chk.without_handshake = True
        chk.hs_done = True
        chk.version = SUPPORTED_VERSION
        chk.emit("R-010", "session without handshake: the RM opens with ResourceManagerDetails; "
                 "validated as %s" % SUPPORTED_VERSION, None, rec)
        return
    if ctx.gate:
        chk.emit("R-021", "%s from the %s before the HandshakeResponse was forwarded (handshake "
                 "phase: only Handshake, HandshakeResponse and ReceptionStatus)" % (m, rec.sender),
                 None, rec)
    ctx.gate = False


def handshake(ctx):
    chk, rec, o = ctx.chk, ctx.msg, ctx.obj
    side = rec.sender
    role = o.get("role")
    if role != side:
        chk.emit("R-011", "Handshake.role is %r but the Handshake arrived on the %s connection"
                 % (role, side), None, rec, "$.role")
    versions = o.get("supported_protocol_versions")
    if side == "RM" and versions is None:
        chk.emit("R-013", "the RM's Handshake lacks supported_protocol_versions", None, rec)
    if isinstance(versions, list):
        problems = []
        dups = sorted({v for v in versions if isinstance(v, str) and versions.count(v) > 1})
        if dups:
            problems.append("duplicates %s" % ", ".join(repr(v) for v in dups))
        if "" in versions:
            problems.append("an empty string")
        if side == "RM" and SUPPORTED_VERSION not in versions:
            problems.append("%r, the version this proxy validates, is missing" % SUPPORTED_VERSION)
        if problems:
            chk.emit("R-014", "supported_protocol_versions %s: %s" % (versions, "; ".join(problems)),
                     None, rec, "$.supported_protocol_versions")
    prev = chk.hs[side]
    if prev is not None:
        if not chk.retx_candidate(prev, ctx.now):
            if ctx.gate:
                chk.emit("R-012", "second Handshake of the %s (the first arrived at %s)"
                         % (side, format_time(prev.t)), None, rec)
            return
    chk.hs[side] = rec
    if chk.hs_versions is None:             # kept: rec.obj goes once the Handshake is answered
        chk.hs_versions = {}
    chk.hs_versions[side] = compact(versions)
    if chk.hsr is not None and prev is None:
        # The HandshakeResponse came first: evaluate the version now (§3.2 item 7).
        version_checks(chk, rec, side)


def handshake_response(ctx):
    chk, rec = ctx.chk, ctx.msg
    if not chk.hs_done:
        missing = []
        rm = chk.hs["RM"]
        if rm is None or rm.fwd is None or rm.fwd > ctx.now:
            missing.append("before the RM's Handshake was forwarded to the CEM")
        if chk.hs["CEM"] is None:
            missing.append("before the CEM sent its own Handshake")
        if missing and ctx.gate:
            chk.emit("R-016", "HandshakeResponse %s (s2-rust RMs refuse it; the session continues "
                     "in state I)" % " and ".join(missing), None, rec)
        _accept(ctx)
        return
    prev = chk.hsr
    if prev is None or chk.failed == "handshake" or chk.retx_candidate(prev, ctx.now):
        _accept(ctx)
        return
    if ctx.gate:
        chk.emit("R-015", "second HandshakeResponse (the first arrived at %s and was answered %s)"
                 % (format_time(prev.t), prev.rs_status or "not yet"), None, rec)


def _accept(ctx):
    chk, rec = ctx.chk, ctx.msg
    sel = rec.obj.get("selected_protocol_version")
    sel = INTERN.get(sel, sel) if type(sel) is str else sel
    chk.hsr = rec
    chk.hs_done = True
    chk.version = sel
    if chk.failed == "handshake":
        chk.failed = None
    version_checks(chk, rec, None)
    if sel != SUPPORTED_VERSION:
        chk.emit("R-019", "negotiated version %r is not %s; schema validation is best effort"
                 % (sel, SUPPORTED_VERSION), None, rec, "$.selected_protocol_version")


def version_checks(chk, about, only):
    """R-017 / R-018 for the accepted HandshakeResponse (its version is chk.version), reported
    about `about`."""
    sel = chk.version
    rm = chk.hs["RM"]
    if rm is not None and only in (None, "RM"):
        versions = chk.hs_versions["RM"]      # set with chk.hs
        if isinstance(versions, list) and sel not in versions:
            chk.emit("R-017", "selected_protocol_version %r is not one of the RM's "
                     "supported_protocol_versions %s" % (sel, versions), None, about)
    cem = chk.hs["CEM"]
    if cem is not None and only in (None, "CEM"):
        versions = chk.hs_versions["CEM"]
        if isinstance(versions, list) and sel not in versions:
            chk.emit("R-018", "selected_protocol_version %r is not in the CEM's own "
                     "supported_protocol_versions %s" % (sel, versions), None, about)

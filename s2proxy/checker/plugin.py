"""Registration of rule handlers: the plug-in mechanism of the checker (see PLUGIN.md).

A module registers handlers at import time:

    from s2proxy.checker.plugin import on, on_activate, summary_hook

    @on("FRBC.SystemDescription", rule="R-092")
    def duplicate_actuators(ctx): ...

The Checker imports the modules named in CONTROL_TYPE_MODULES once (those that exist), and calls
the handlers of a message type in registration order, each guarded on its own: a handler that
raises is reported to CheckerConfig.on_error(rule, exc) and the others still run.
"""

import importlib
import importlib.util

# Control-type modules of s2proxy.checker, imported when present (the order is the dispatch order).
CONTROL_TYPE_MODULES = ["values", "opmodes", "frbc", "ddbc", "pebc", "ppbc", "ombc"]

HANDLERS = {}        # message_type -> [(fn, rule, inactive)]
ACTIVATE = {}        # control-type prefix ("FRBC", ...) -> [(fn, rule)]
SUMMARY = {}         # control-type prefix -> fn(activation) -> JSON-serialisable dict
END = []             # [(fn, rule)] called once at finish(), ctx.final is True

_loaded = False


def on(message_type, rule=None, inactive=False):
    """Register fn(ctx) for messages of `message_type` (a name of the 35, or "*" for every message).

    Control-type messages (FRBC.*, ...) are dispatched only while their control type is active,
    unless inactive=True: such a handler also runs for a message of a type that is not active
    (ctx.active is False then; it must not change any store).  `rule` names the handler in
    on_error() reports (default: module.function).
    """
    def register(fn):
        HANDLERS.setdefault(message_type, []).append((fn, rule or _name(fn), inactive))
        return fn
    return register


def on_activate(prefix, rule=None):
    """Register fn(ctx) called when a SelectControlType activating `prefix` ("PEBC") is forwarded.

    ctx.msg is the SelectControlType, ctx.activation the fresh activation.
    """
    def register(fn):
        ACTIVATE.setdefault(prefix, []).append((fn, rule or _name(fn)))
        return fn
    return register


def on_end(rule=None):
    """Register fn(ctx) called once by Checker.finish() (ctx.msg is None, ctx.final is True)."""
    def register(fn):
        END.append((fn, rule or _name(fn)))
        return fn
    return register


def summary_hook(prefix):
    """Register fn(activation) -> dict, shown in Checker.summary() while `prefix` is active."""
    def register(fn):
        SUMMARY[prefix] = fn
        return fn
    return register


def _name(fn):
    return "%s.%s" % (fn.__module__.rsplit(".", 1)[-1], fn.__name__)


def load():
    """Import the checker's own rule modules and the control-type modules that exist (once)."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    for name in CONTROL_TYPE_MODULES:
        full = "s2proxy.checker." + name
        if importlib.util.find_spec(full) is not None:
            importlib.import_module(full)

"""Stateful S2 conversation checker (rules R-007 - R-137 of S2-PROTOCOL.md §6).

Plain Python: no Twisted or Autobahn import anywhere in this package.

    from s2proxy.checker import Checker, CheckerConfig
    chk = Checker(CheckerConfig(strict=False))
    findings = chk.feed("RM", analysis, now, ref)

Control-type modules plug in through s2proxy.checker.plugin (see PLUGIN.md in this directory).
"""

from .config import CheckerConfig
from .core import Checker
from .rules import apply_strict

__all__ = ["Checker", "CheckerConfig", "apply_strict"]

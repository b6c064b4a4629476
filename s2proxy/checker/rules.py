"""The rule catalogue of S2-PROTOCOL.md §6 as data: default severity and group of every rule.

`report()` takes the default severity from here when a rule does not name one; a rule with two
severities (e.g. R-029: error, warning inside the switch window) passes the case it found.
"""

ERROR, WARNING, INFO = "error", "warning", "info"

# Section 6 groups (used for the JUnit report of `s2proxy check`).
GROUPS = [
    ("6.1", "Transport and message format", 1, 9),
    ("6.2", "Handshake and version negotiation", 10, 20),
    ("6.3", "Session state and control-type selection", 21, 37),
    ("6.4", "ReceptionStatus", 38, 48),
    ("6.5", "Instructions, InstructionStatusUpdate, RevokeObject", 49, 62),
    ("6.6", "Common value rules", 63, 71),
    ("6.7", "Operation-mode based control types", 72, 91),
    ("6.8", "FRBC specific", 92, 104),
    ("6.9", "DDBC specific", 105, 109),
    ("6.10", "PEBC specific", 110, 122),
    ("6.11", "PPBC specific", 123, 137),
]

_E, _W, _I = ERROR, WARNING, INFO
# Most severe case first, as in the catalogue.
_SEVERITY = [
    _E, _E, _E, _E, _W, _W, _E, _E, _I,                                   # R-001..R-009
    _W, _E, _W, _E, _W, _W, _W, _W, _W, _W, _W,                           # R-010..R-020
    _E, _W, _W, _E, _E, _W, _W, _W, _E, _E, _E, _W, _W, _W, _W, _I, _I,   # R-021..R-037
    _E, _W, _E, _E, _W, _E, _W, _W, _W, _W, _I,                           # R-038..R-048
    _E, _E, _W, _W, _W, _W, _W, _W, _E, _W, _W, _E, _I, _W,               # R-049..R-062
    _E, _W, _W, _E, _W, _W, _E, _W, _W,                                   # R-063..R-071
    _E, _E, _E, _E, _E, _W, _W, _W, _E, _W, _W, _W, _E, _E, _E, _E, _W, _E, _W, _W,  # R-072..R-091
    _E, _W, _E, _E, _W, _W, _W, _W, _E, _E, _W, _W, _I,                   # R-092..R-104
    _E, _W, _W, _W, _W,                                                   # R-105..R-109
    _E, _E, _W, _E, _W, _E, _E, _E, _E, _E, _W, _W, _W,                   # R-110..R-122
    _E, _W, _W, _W, _E, _W, _W, _W, _E, _E, _W, _W, _W, _E, _W,           # R-123..R-137
]
assert len(_SEVERITY) == 137

SEVERITY = {"R-%03d" % (i + 1): sev for i, sev in enumerate(_SEVERITY)}

# Rules that are errors only in strict mode (§6.1 R-006, §8 Q-01).  R-006 is a format rule of
# s2proxy.validation; the list is here so that every strict-mode escalation has one home.
STRICT_ERRORS = frozenset({"R-006"})

# Error findings of these rules mean "unresolvable reference"; an OK answer to such a message is R-045.
REFERENCE_RULES = {"R-050", "R-057", "R-060", "R-074", "R-075", "R-080", "R-084", "R-086",
                   "R-116", "R-117", "R-127", "R-131"}


def group_of(rule):
    """('6.4', 'ReceptionStatus') for 'R-040'; None for an unknown rule name."""
    try:
        n = int(rule[2:])
    except (TypeError, ValueError):
        return None
    for number, title, lo, hi in GROUPS:
        if lo <= n <= hi:
            return number, title
    return None


def apply_strict(findings, strict):
    """Escalate the strict-mode rules among (format) findings in place; returns the list."""
    if strict:
        for f in findings:
            if f.get("rule") in STRICT_ERRORS:
                f["severity"] = ERROR
    return findings

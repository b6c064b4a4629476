"""Static facts of the S2 message catalogue (S2-PROTOCOL.md §2) that the checker needs, and the
content comparison of X-6 (same message apart from message_id)."""

import hashlib
import json

MESSAGE_TYPES = frozenset([
    "Handshake", "HandshakeResponse", "ResourceManagerDetails", "SelectControlType", "SessionRequest",
    "ReceptionStatus", "RevokeObject", "InstructionStatusUpdate", "PowerMeasurement", "PowerForecast",
    "PEBC.PowerConstraints", "PEBC.EnergyConstraint", "PEBC.Instruction",
    "PPBC.PowerProfileDefinition", "PPBC.PowerProfileStatus", "PPBC.ScheduleInstruction",
    "PPBC.StartInterruptionInstruction", "PPBC.EndInterruptionInstruction",
    "OMBC.SystemDescription", "OMBC.Status", "OMBC.TimerStatus", "OMBC.Instruction",
    "FRBC.SystemDescription", "FRBC.ActuatorStatus", "FRBC.StorageStatus", "FRBC.LeakageBehaviour",
    "FRBC.UsageForecast", "FRBC.FillLevelTargetProfile", "FRBC.TimerStatus", "FRBC.Instruction",
    "DDBC.SystemDescription", "DDBC.ActuatorStatus", "DDBC.AverageDemandRateForecast",
    "DDBC.TimerStatus", "DDBC.Instruction",
])
CT_OF_PREFIX = {
    "FRBC": "FILL_RATE_BASED_CONTROL", "OMBC": "OPERATION_MODE_BASED_CONTROL",
    "DDBC": "DEMAND_DRIVEN_BASED_CONTROL", "PEBC": "POWER_ENVELOPE_BASED_CONTROL",
    "PPBC": "POWER_PROFILE_BASED_CONTROL",
}
PREFIX_OF_CT = {v: k for k, v in CT_OF_PREFIX.items()}
INSTRUCTION_TYPES = frozenset([
    "PEBC.Instruction", "PPBC.ScheduleInstruction", "PPBC.StartInterruptionInstruction",
    "PPBC.EndInterruptionInstruction", "OMBC.Instruction", "FRBC.Instruction", "DDBC.Instruction",
])
_CEM_ONLY = frozenset({"HandshakeResponse", "SelectControlType"}) | INSTRUCTION_TYPES
_BOTH = frozenset({"Handshake", "ReceptionStatus", "RevokeObject", "SessionRequest"})
HANDSHAKES = frozenset({"Handshake", "HandshakeResponse"})
SUPPORTED_VERSION = "0.0.2-beta"
# The ResourceManagerDetails fields a session keeps (rules R-025 - R-028, R-053, R-063 - R-071 and
# the summary read them).
RMD_KEYS = ("resource_id", "name", "manufacturer", "model", "serial_number", "firmware_version",
            "roles", "available_control_types", "provides_forecast",
            "provides_power_measurement_types", "currency", "instruction_processing_delay")
# Strings that every session keeps many copies of (the parser makes a fresh string per message):
# message types and ReceptionStatus values map to one shared object each.
INTERN = {s: s for s in MESSAGE_TYPES}
INTERN.update((s, s) for s in CT_OF_PREFIX.values())
INTERN.update((s, s) for s in ("NOT_CONTROLABLE", SUPPORTED_VERSION))
INTERN.update((s, s) for s in ("OK", "INVALID_DATA", "INVALID_MESSAGE", "INVALID_CONTENT",
                               "TEMPORARY_ERROR", "PERMANENT_ERROR", "RM", "CEM"))


def may_send(mtype, sender):
    """§2.1 Sender column (R-008)."""
    if mtype in _BOTH:
        return True
    if mtype in _CEM_ONLY:
        return sender == "CEM"
    return sender == "RM"


def same_content(a, b):
    """X-6: the same message apart from message_id (two parsed messages)."""
    if type(a) is not dict or type(b) is not dict or len(a) != len(b):
        return False
    for k, v in a.items():
        if k != "message_id" and (k not in b or b[k] != v):
            return False
    return True


class _Unequal(Exception):
    pass


def _canon(v):
    """A JSON-able copy of v whose dumps() are equal exactly when the values are == in Python:
    True == 1 == 1.0 (numbers with an integral value become ints); NaN equals nothing."""
    t = type(v)
    if t is dict:
        return {k: _canon(x) for k, x in v.items()}
    if t is list:
        return [_canon(x) for x in v]
    if t is bool:
        return int(v)
    if t is float:
        if v != v:
            raise _Unequal()
        return int(v) if v.is_integer() else v
    return v


def content_digest(obj):
    """A 16-byte digest of a parsed message without its message_id: two messages have equal digests
    exactly when same_content() holds for them (barring a BLAKE2 collision); an object that is not
    even equal to itself (NaN) gets a digest equal to nothing."""
    if type(obj) is not dict:
        return object()
    try:
        body = _canon({k: v for k, v in obj.items() if k != "message_id"})
        text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    except (_Unequal, TypeError, ValueError, RecursionError):
        return object()
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()


def record_digest(rec):
    """The content digest of a Record (computed from rec.obj once, then kept)."""
    d = rec.digest
    if d is None:
        d = rec.digest = content_digest(rec.obj)
    return d


def same_record_content(old, new):
    """X-6 for two Records: `old` may have dropped its parsed message and kept only its digest."""
    if old.obj is not None and new.obj is not None:
        return same_content(old.obj, new.obj)
    return record_digest(old) == record_digest(new)

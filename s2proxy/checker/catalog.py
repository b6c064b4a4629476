"""Static facts of the S2 message catalogue (S2-PROTOCOL.md §2) that the checker needs."""

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


def may_send(mtype, sender):
    """§2.1 Sender column (R-008)."""
    if mtype in _BOTH:
        return True
    if mtype in _CEM_ONLY:
        return sender == "CEM"
    return sender == "RM"


def same_content(a, b):
    """X-6: the same message apart from message_id."""
    if type(a) is not dict or type(b) is not dict or len(a) != len(b):
        return False
    for k, v in a.items():
        if k != "message_id" and (k not in b or b[k] != v):
            return False
    return True

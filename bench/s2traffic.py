"""Realistic S2 traffic for the benchmarks: a session set-up and a steady stream, built cheaply.

The set-up follows the FRBC home-battery example of S2-PROTOCOL.md section 7.1 (handshake,
details, control type, system description, first statuses), each message answered by a
ReceptionStatus, so the checker sees a correct conversation and logs no findings. The steady
stream alternates FRBC.ActuatorStatus and PowerMeasurement from the RM, each answered by the CEM
with a ReceptionStatus: the bulk of real S2 traffic. Every message has a fresh UUID-shaped
message_id and is schema-valid; texts are built by string formatting (no json.dumps per message)
so the load generator spends its time on sockets, not on building messages.
"""

import json
import time

ACTUATOR = "a1000000-0000-4000-8000-000000000001"
MODE_IDLE = "0e000000-0000-4000-8000-000000000001"
MODE_ACTIVE = "0e000000-0000-4000-8000-000000000002"
TIMER = "71000000-0000-4000-8000-000000000001"
QUANTITY = "ELECTRIC.POWER.3_PHASE_SYMMETRIC"

_stamp_second = None
_stamp_text = None


def utc_stamp():
    """RFC 3339 UTC time of the current second (cached: formatting per message would cost more)."""
    global _stamp_second, _stamp_text
    now = int(time.time())
    if now != _stamp_second:
        _stamp_second = now
        _stamp_text = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
    return _stamp_text


class Ids:
    """UUID-shaped message ids, unique per pair and side: ``PPPPPPPP-SSSS-4000-8000-CCCCCCCCCCCC``."""

    def __init__(self, pair_number, side_code):
        self.prefix = "%08x-%04x-4000-8000-" % (pair_number & 0xFFFFFFFF, side_code)
        self.count = 0

    def next(self):
        self.count += 1
        return "%s%012x" % (self.prefix, self.count)


def _dump(obj):
    return json.dumps(obj, separators=(", ", ": "))


def setup_script(rm_ids, cem_ids):
    """The set-up of one session: a list of (sender, text); each message but ReceptionStatus is
    followed by its ReceptionStatus from the other side."""
    stamp = utc_stamp()
    steps = []

    def send(sender, msg):
        ids = rm_ids if sender == "RM" else cem_ids
        mid = ids.next()
        msg = dict(message_type=msg.pop("message_type"), message_id=mid, **msg)
        steps.append((sender, _dump(msg)))
        other = "CEM" if sender == "RM" else "RM"
        steps.append((other, reception_status(mid)))

    send("RM", {"message_type": "Handshake", "role": "RM", "supported_protocol_versions": ["0.0.2-beta"]})
    send("CEM", {"message_type": "Handshake", "role": "CEM", "supported_protocol_versions": ["0.0.2-beta"]})
    send("CEM", {"message_type": "HandshakeResponse", "selected_protocol_version": "0.0.2-beta"})
    send("RM", {"message_type": "ResourceManagerDetails", "resource_id": "5e000000-0000-4000-8000-000000000001",
                "name": "Home battery", "roles": [{"role": "ENERGY_STORAGE", "commodity": "ELECTRICITY"}],
                "manufacturer": "ACME", "model": "HB-10", "serial_number": "0001", "firmware_version": "1.0.0",
                "instruction_processing_delay": 1000,
                "available_control_types": ["FILL_RATE_BASED_CONTROL", "NOT_CONTROLABLE"],
                "provides_forecast": False, "provides_power_measurement_types": [QUANTITY]})
    send("CEM", {"message_type": "SelectControlType", "control_type": "FILL_RATE_BASED_CONTROL"})
    send("RM", {"message_type": "FRBC.SystemDescription", "valid_from": stamp, "actuators": [{
        "id": ACTUATOR, "diagnostic_label": "battery inverter", "supported_commodities": ["ELECTRICITY"],
        "operation_modes": [
            {"id": MODE_IDLE, "diagnostic_label": "idle", "elements": [{
                "fill_level_range": {"start_of_range": 0.0, "end_of_range": 100.0},
                "fill_rate": {"start_of_range": 0.0, "end_of_range": 0.0},
                "power_ranges": [{"start_of_range": 0.0, "end_of_range": 0.0, "commodity_quantity": QUANTITY}]}],
             "abnormal_condition_only": False},
            {"id": MODE_ACTIVE, "diagnostic_label": "charge/discharge", "elements": [{
                "fill_level_range": {"start_of_range": 0.0, "end_of_range": 100.0},
                "fill_rate": {"start_of_range": -0.008333, "end_of_range": 0.008333},
                "power_ranges": [{"start_of_range": -3000.0, "end_of_range": 3000.0,
                                  "commodity_quantity": QUANTITY}]}],
             "abnormal_condition_only": False}],
        "transitions": [
            {"id": "7a000000-0000-4000-8000-000000000001", "from": MODE_IDLE, "to": MODE_ACTIVE,
             "start_timers": [TIMER], "blocking_timers": [], "transition_duration": 1000,
             "abnormal_condition_only": False},
            {"id": "7a000000-0000-4000-8000-000000000002", "from": MODE_ACTIVE, "to": MODE_IDLE,
             "start_timers": [], "blocking_timers": [TIMER], "transition_duration": 1000,
             "abnormal_condition_only": False}],
        "timers": [{"id": TIMER, "diagnostic_label": "minimum active time", "duration": 60000}]}],
        "storage": {"diagnostic_label": "battery", "fill_level_label": "state of charge (%)",
                    "provides_leakage_behaviour": False, "provides_fill_level_target_profile": False,
                    "provides_usage_forecast": False,
                    "fill_level_range": {"start_of_range": 10.0, "end_of_range": 90.0}}})
    send("RM", {"message_type": "FRBC.ActuatorStatus", "actuator_id": ACTUATOR,
                "active_operation_mode_id": MODE_IDLE, "operation_mode_factor": 0.0})
    send("RM", {"message_type": "FRBC.StorageStatus", "present_fill_level": 42.5})
    return steps


def reception_status(subject_id):
    return '{"message_type": "ReceptionStatus", "subject_message_id": "%s", "status": "OK"}' % subject_id


_ACTUATOR_STATUS = ('{"message_type": "FRBC.ActuatorStatus", "message_id": "%s", "actuator_id": "'
                    + ACTUATOR + '", "active_operation_mode_id": "' + MODE_IDLE
                    + '", "operation_mode_factor": 0.0}')
_POWER = ('{"message_type": "PowerMeasurement", "message_id": "%s", "measurement_timestamp": "%s", '
          '"values": [{"commodity_quantity": "' + QUANTITY + '", "value": %.1f}]}')


def steady_message(ids):
    """The next RM message of the steady stream: (message_id, text)."""
    mid = ids.next()
    if ids.count & 1:
        return mid, _ACTUATOR_STATUS % mid
    return mid, _POWER % (mid, utc_stamp(), 0.0)

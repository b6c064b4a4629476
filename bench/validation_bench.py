"""Micro-benchmark of the format validation layer (the per-message cost on the proxy's hot path).

Prints the schema compile time and the median microseconds per Validator.analyse() call for a
small message (FRBC.ActuatorStatus) and a large one (FRBC.SystemDescription, 50 operation modes).

    .venv/bin/python bench/validation_bench.py [--schemas DIR] [--rounds N]
"""

import argparse
import json
import os
import statistics
import sys
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from s2proxy.schemas import load_schema_set, find_schema_dir  # noqa: E402
from s2proxy.validation import Validator  # noqa: E402


def _id():
    return str(uuid.uuid4())


def actuator_status():
    return {"message_type": "FRBC.ActuatorStatus", "message_id": _id(), "actuator_id": _id(),
            "active_operation_mode_id": _id(), "operation_mode_factor": 0.5,
            "previous_operation_mode_id": _id(), "transition_timestamp": "2025-06-02T10:00:00.123+02:00"}


def system_description(modes=50):
    def rng(a, b):
        return {"start_of_range": a, "end_of_range": b}
    mode_ids = [_id() for _ in range(modes)]
    operation_modes = [{
        "id": mode_id,
        "diagnostic_label": "mode {}".format(i),
        "elements": [{"fill_level_range": rng(0.0, 50.0), "fill_rate": rng(-1.5, 1.5),
                      "power_ranges": [dict(rng(-3000.0 + i, 3000.0 - i),
                                            commodity_quantity="ELECTRIC.POWER.L1")],
                      "running_costs": rng(0.1, 0.2)},
                     {"fill_level_range": rng(50.0, 100.0), "fill_rate": rng(-1.0, 1.0),
                      "power_ranges": [dict(rng(-2000.0, 2000.0), commodity_quantity="ELECTRIC.POWER.L1")]}],
        "abnormal_condition_only": False} for i, mode_id in enumerate(mode_ids)]
    timer = _id()
    transitions = [{"id": _id(), "from": mode_ids[i], "to": mode_ids[i + 1], "start_timers": [timer],
                    "blocking_timers": [], "transition_duration": 1000, "abnormal_condition_only": False}
                   for i in range(modes - 1)]
    return {"message_type": "FRBC.SystemDescription", "message_id": _id(),
            "valid_from": "2025-06-02T10:00:00Z",
            "actuators": [{"id": _id(), "supported_commodities": ["ELECTRICITY"],
                           "operation_modes": operation_modes, "transitions": transitions,
                           "timers": [{"id": timer, "duration": 60000}]}],
            "storage": {"provides_leakage_behaviour": False, "provides_fill_level_target_profile": False,
                        "provides_usage_forecast": False, "fill_level_range": rng(0.0, 100.0)}}


def median_us(validator, payload, rounds):
    loops = 200
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(loops):
            validator.analyse(payload)
        samples.append((time.perf_counter() - started) / loops * 1e6)
    return statistics.median(samples)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--schemas", metavar="DIR", default=None)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args(argv)
    directory = find_schema_dir(args.schemas)
    started = time.perf_counter()
    load_schema_set(directory)
    print("compile: {:.1f} ms ({} message types, {})".format(
        (time.perf_counter() - started) * 1e3, len(load_schema_set(directory).message_types), directory))
    validator = Validator(directory)
    for label, message in (("FRBC.ActuatorStatus", actuator_status()),
                           ("FRBC.SystemDescription (50 operation modes)", system_description(50))):
        payload = json.dumps(message).encode("utf-8")
        analysis = validator.analyse(payload)
        assert analysis.valid and analysis.schema_valid and not analysis.findings, analysis.findings
        print("{}: {:.1f} us/message median ({} bytes)".format(
            label, median_us(validator, payload, args.rounds), len(payload)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

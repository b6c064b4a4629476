"""Cost of the stateful checker per message (no network): `python bench/checker_bench.py`.

Reports the median time of Checker.feed() for an FRBC.ActuatorStatus (target <= 20 us) and for an
FRBC.SystemDescription with 50 operation modes (target <= 2 ms), in a session set up like the
§7.1 example (handshake, details, FRBC active, a description). The messages are analysed by the
Validator beforehand: only the checker is timed (the validator has its own benchmark).
"""

import argparse
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from s2proxy.checker import Checker, CheckerConfig            # noqa: E402
from s2proxy.checker.ids import parse_time                    # noqa: E402
from s2proxy.validation import Validator                      # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
EXAMPLE = os.path.join(HERE, "..", "tests", "fixtures", "transcripts", "frbc_example.jsonl")
ACTUATOR = "a1000000-0000-4000-8000-000000000001"


def uid(n):
    return "b1000000-0000-4000-8000-%012d" % n


def session(v):
    """A checker after the first 22 lines of §7.1 (FRBC active, description, statuses)."""
    chk = Checker(CheckerConfig())
    t = 0.0
    with open(EXAMPLE) as f:
        lines = [json.loads(x) for x in f][:22]
    for n, line in enumerate(lines):
        t = parse_time(line["time"])
        chk.feed(line["sender"], v.analyse(json.dumps(line["message"])), t, n)
    return chk, t


def description(n_modes, message_id):
    modes = [{"id": "0e100000-0000-4000-8000-%012d" % k, "diagnostic_label": "mode %d" % k,
              "abnormal_condition_only": False,
              "elements": [{"fill_level_range": {"start_of_range": 0.0, "end_of_range": 100.0},
                            "fill_rate": {"start_of_range": 0.0, "end_of_range": 0.001 * k},
                            "power_ranges": [{"start_of_range": 0.0, "end_of_range": 60.0 * k,
                                              "commodity_quantity": "ELECTRIC.POWER.3_PHASE_SYMMETRIC"}]}]}
             for k in range(n_modes)]
    transitions = [{"id": "7a100000-0000-4000-8000-%012d" % k, "from": modes[k]["id"],
                    "to": modes[k + 1]["id"], "start_timers": ["71100000-0000-4000-8000-000000000001"],
                    "blocking_timers": [], "abnormal_condition_only": False}
                   for k in range(n_modes - 1)]
    return {"message_type": "FRBC.SystemDescription", "message_id": message_id,
            "valid_from": "2025-06-02T10:00:02Z",
            "actuators": [{"id": ACTUATOR, "supported_commodities": ["ELECTRICITY"],
                           "operation_modes": modes, "transitions": transitions,
                           "timers": [{"id": "71100000-0000-4000-8000-000000000001", "duration": 60000}]}],
            "storage": {"provides_leakage_behaviour": False, "provides_fill_level_target_profile": False,
                        "provides_usage_forecast": False,
                        "fill_level_range": {"start_of_range": 0.0, "end_of_range": 100.0}}}


def measure(v, make, count):
    """Median and p90 of feed() (in microseconds) for `count` messages made by make(i)."""
    chk, t = session(v)
    analyses = []
    for i in range(count):
        m = make(i)
        analyses.append((v.analyse(json.dumps(m)),
                         v.analyse(json.dumps({"message_type": "ReceptionStatus",
                                               "subject_message_id": m["message_id"], "status": "OK"}))))
    samples = []
    for i, (a, ok) in enumerate(analyses):
        t += 0.05
        start = time.perf_counter_ns()
        chk.feed("RM", a, t, i)
        samples.append((time.perf_counter_ns() - start) / 1000.0)
        chk.feed("CEM", ok, t + 0.01, i)
        chk.tick(t + 0.01)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.9)]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--count", type=int, default=5000, help="ActuatorStatus messages (default 5000)")
    args = p.parse_args(argv)
    v = Validator()

    def status(i):
        return {"message_type": "FRBC.ActuatorStatus", "message_id": uid(i), "actuator_id": ACTUATOR,
                "active_operation_mode_id": "0e000000-0000-4000-8000-000000000001",
                "operation_mode_factor": 0.0}

    med, p90 = measure(v, status, args.count)
    print("FRBC.ActuatorStatus          median %8.1f us  p90 %8.1f us  (target <= 20 us)  %s"
          % (med, p90, "ok" if med <= 20 else "SLOW"))
    med, p90 = measure(v, lambda i: description(50, uid(10 ** 6 + i)), max(50, args.count // 25))
    print("FRBC.SystemDescription (50)  median %8.1f us  p90 %8.1f us  (target <= 2000 us) %s"
          % (med, p90, "ok" if med <= 2000 else "SLOW"))
    return 0


if __name__ == "__main__":
    sys.exit(main())

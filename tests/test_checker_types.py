"""The control-type rules R-063 – R-137 of the checker, driven by transcripts.

Baselines: tests/fixtures/transcripts/types/*_ok.jsonl (frbc_ok and pebc_ok are the §7 examples;
the others are written for OMBC, DDBC, PPBC and the FRBC/PEBC parts §7 does not exercise).  Every
rule has a mutation in mutations.json: a generated test replays it and expects the rule with its
severity, and a second one replays the unmutated base and expects no finding of that rule.  The
classes below the generated ones cover the milder or second case of the two-severity rules.
"""

import json

from twisted.trial import unittest

from s2proxy.checker import Checker, CheckerConfig
from tests import checker_replay as cr
from tests import transcript_mutations as tm

BASELINES = ["frbc_ok.jsonl", "frbc_full_ok.jsonl", "ombc_ok.jsonl", "ddbc_ok.jsonl", "pebc_ok.jsonl",
             "pebc_full_ok.jsonl", "ppbc_ok.jsonl"]
MY_RULES = {"R-%03d" % n for n in range(63, 138)}
_baseline_cache = {}


def _raise(rule, exc):
    raise exc


def run(lines, **cfg):
    findings, chk = cr.replay(lines, cfg=CheckerConfig(on_error=_raise, **cfg))
    return findings, chk


def baseline(name):
    if name not in _baseline_cache:
        _baseline_cache[name] = run(tm.load(name))[0]
    return _baseline_cache[name]


def mutated(base, *ops):
    return run(tm.apply(tm.load(base), list(ops)))[0]


def of(findings, rule):
    return [f for f in findings if f["rule"] == rule]


def U(prefix, n):
    return "%s-0000-4000-8000-%012d" % (prefix, n)


class Baselines(unittest.TestCase):
    """The correct conversations give no error or warning finding, and none of R-063 – R-137 at all."""

    def _check(self, name):
        findings = baseline(name)
        bad = [f for f in findings if f["severity"] in ("error", "warning") or f["rule"] in MY_RULES]
        self.assertEqual(bad, [], name)

    def test_frbc_section_7_1(self):
        self._check("frbc_ok.jsonl")

    def test_frbc_full(self):
        self._check("frbc_full_ok.jsonl")

    def test_ombc(self):
        self._check("ombc_ok.jsonl")

    def test_ddbc(self):
        self._check("ddbc_ok.jsonl")

    def test_pebc_section_7_2(self):
        self._check("pebc_ok.jsonl")

    def test_pebc_full(self):
        self._check("pebc_full_ok.jsonl")

    def test_ppbc(self):
        self._check("ppbc_ok.jsonl")

    def test_fixtures_are_schema_valid(self):
        from s2proxy.validation import Validator
        v = Validator()
        for name in BASELINES:
            for n, line in enumerate(tm.load(name), 1):
                a = v.analyse(json.dumps(line["message"]))
                self.assertTrue(a.schema_valid, (name, n, a.findings))

    def test_mutations_are_schema_valid(self):
        """Every rule is about semantics: the mutated messages still pass their schemas."""
        from s2proxy.validation import Validator
        v = Validator()
        for mu in tm.mutations():
            for line in tm.apply(tm.load(mu["base"]), mu["ops"]):
                a = v.analyse(json.dumps(line["message"]))
                self.assertTrue(a.schema_valid, (mu["rule"], line, a.findings))

    def test_every_rule_has_a_mutation(self):
        self.assertEqual({mu["rule"] for mu in tm.mutations()}, MY_RULES)


class Mutations(unittest.TestCase):
    """Generated: test_R_0NN_fires and test_R_0NN_quiet for every entry of mutations.json."""


def _make(mu):
    def fires(self):
        findings = mutated(mu["base"], *mu["ops"])
        hits = of(findings, mu["rule"])
        self.assertIn(mu["severity"], [f["severity"] for f in hits],
                      "%s (%s): %r" % (mu["rule"], mu["why"], hits or findings))
        for f in hits:
            self.assertTrue(f["text"])

    def quiet(self):
        self.assertEqual(of(baseline(mu["base"]), mu["rule"]), [])
    fires.__doc__ = "%s fires: %s" % (mu["rule"], mu["why"])
    quiet.__doc__ = "%s stays quiet on %s" % (mu["rule"], mu["base"])
    return fires, quiet


for _mu in tm.mutations():
    _fires, _quiet = _make(_mu)
    _name = _mu["rule"].replace("-", "_")
    setattr(Mutations, "test_%s_fires" % _name, _fires)
    setattr(Mutations, "test_%s_quiet" % _name, _quiet)


def _set(msg, path, value):
    return {"op": "set", "msg": msg, "path": path, "value": value}


def _insert(after, sender, message, status="OK"):
    return {"op": "insert", "after": after, "sender": sender, "message": message, "status": status}


X = lambda n: "f0000000-0000-4000-8000-%012d" % n
Y = lambda n: "f1000000-0000-4000-8000-%012d" % n


class Tolerances(unittest.TestCase):
    def test_factor_rounding_is_no_r079(self):
        findings = mutated("frbc_ok.jsonl", _set("CEM:4", ["operation_mode_factor"], 1.0000000000000002))
        self.assertEqual(of(findings, "R-079"), [])

    def test_factor_in_status(self):
        findings = mutated("frbc_ok.jsonl", _set("RM:11", ["operation_mode_factor"], -0.5))
        self.assertEqual([f["severity"] for f in of(findings, "R-079")], ["warning"])
        self.assertIn("-0.5", of(findings, "R-079")[0]["text"])

    def test_limit_rounding_is_no_r119(self):
        findings = mutated("pebc_ok.jsonl", _set("CEM:4", ["power_envelopes", 0, "power_envelope_elements", 0,
                                                           "lower_limit"], -4000.0000000001))
        self.assertEqual(of(findings, "R-119"), [])

    def test_abnormal_only_range_counts_with_abnormal_condition(self):
        el = ["power_envelopes", 0, "power_envelope_elements", 0, "upper_limit"]
        normal = mutated("pebc_full_ok.jsonl", _set("CEM:4", el, 0.0))
        self.assertEqual([f["severity"] for f in of(normal, "R-119")], ["error"])
        abnormal = mutated("pebc_full_ok.jsonl", _set("CEM:4", el, 0.0), _set("CEM:4", ["abnormal_condition"], True))
        self.assertEqual(of(abnormal, "R-119"), [])


class SecondSeverities(unittest.TestCase):
    """The milder case of the two-severity rules, and the second clause of some rules."""

    def test_r080_unknown_previous_mode_is_warning(self):
        findings = mutated("frbc_ok.jsonl", _set("RM:11", ["previous_operation_mode_id"], U("0e000000", 77)))
        self.assertEqual([f["severity"] for f in of(findings, "R-080")], ["warning"])

    def test_r081_absent_after_other_mode(self):
        findings = mutated("ombc_ok.jsonl", {"op": "remove", "msg": "RM:9", "path": ["transition_timestamp"]},
                           {"op": "remove", "msg": "RM:9", "path": ["previous_operation_mode_id"]})
        self.assertEqual([f["severity"] for f in of(findings, "R-081")], ["warning"])
        self.assertIn("another mode", of(findings, "R-081")[0]["text"])

    def test_r083_instruction_before_any_status(self):
        lines = tm.apply(tm.load("frbc_ok.jsonl"), [{"op": "drop", "msg": "RM:5"}])
        # Move the first instruction to 10:00:02.5, before T_status has passed.
        for line in lines:
            if line["message"].get("message_id") == "c0000000-0000-4000-8000-000000000004":
                line["time"] = "2025-06-02T10:00:02.500Z"
            elif line["message"].get("subject_message_id") == "c0000000-0000-4000-8000-000000000004":
                line["time"] = "2025-06-02T10:00:02.510Z"
        lines.sort(key=lambda line: tm.parse_time(line["time"]))
        findings = run(lines)[0]
        hits = of(findings, "R-083")
        self.assertEqual(len(hits), 1)
        self.assertIn("before any FRBC.ActuatorStatus", hits[0]["text"])

    def test_r085_future_valid_from_is_warning(self):
        findings = mutated("frbc_ok.jsonl", _set("RM:4", ["valid_from"], "2025-06-02T12:00:00Z"))
        self.assertIn("warning", [f["severity"] for f in of(findings, "R-085")])
        self.assertNotIn("error", [f["severity"] for f in of(findings, "R-085")])

    def test_r086_crossed_in_flight_is_warning(self):
        """A new description without the charge mode crosses an instruction for that mode."""
        sd = tm.load("frbc_ok.jsonl")[12]["message"]
        new = json.loads(json.dumps(sd))
        new["message_id"] = X(1)
        new["valid_from"] = "2025-06-02T10:01:09Z"
        act = new["actuators"][0]
        act["operation_modes"] = act["operation_modes"][:1]
        act["transitions"] = []
        findings = mutated("frbc_ok.jsonl",
                           _set("CEM:5", ["operation_mode"], U("0e000000", 2)),
                           _insert("RM:14", "RM", new),
                           {"op": "answer_after", "msg": X(1), "after": "CEM:5"})
        self.assertEqual([f["severity"] for f in of(findings, "R-086")], ["warning"])
        self.assertIn("crossed in flight", of(findings, "R-086")[0]["text"])
        # Acknowledged before the instruction: an error.
        findings = mutated("frbc_ok.jsonl",
                           _set("CEM:5", ["operation_mode"], U("0e000000", 2)),
                           _insert("RM:14", "RM", new))
        self.assertEqual([f["severity"] for f in of(findings, "R-086")], ["error"])

    def test_r089_uncertain_source_is_warning(self):
        """An earlier instruction not yet reflected by a status makes the source mode uncertain."""
        extra = {"message_type": "FRBC.Instruction", "message_id": Y(1), "id": U("1f000000", 49),
                 "actuator_id": U("a1000000", 41), "operation_mode": U("0e000000", 42), "operation_mode_factor": 0.3,
                 "execution_time": "2025-06-02T14:01:30Z", "abnormal_condition": False}
        findings = mutated("frbc_full_ok.jsonl",
                           _set("RM:5", ["actuators", 0, "operation_modes", 2, "abnormal_condition_only"], False),
                           _set("CEM:6", ["operation_mode"], U("0e000000", 43)),
                           _insert("RM:22", "CEM", extra))
        self.assertEqual([f["severity"] for f in of(findings, "R-089")], ["warning"])

    def test_r088_abnormal_transition_is_usable_with_abnormal_condition(self):
        findings = mutated("frbc_full_ok.jsonl",
                           _set("CEM:6", ["operation_mode"], U("0e000000", 43)),
                           _set("CEM:6", ["abnormal_condition"], True))
        for rule in ("R-087", "R-088", "R-089", "R-090"):
            self.assertEqual(of(findings, rule), [], rule)

    def test_r060_every_description_revoked(self):
        revoke = {"message_type": "RevokeObject", "message_id": X(2), "object_type": "FRBC.SystemDescription",
                  "object_id": "b0000000-0000-4000-8000-000000000004"}
        findings = mutated("frbc_ok.jsonl", _insert("RM:8", "RM", revoke))
        hits = [f for f in of(findings, "R-060") if f["message_type"] == "FRBC.Instruction"]
        self.assertEqual({f["severity"] for f in hits}, {"error"})

    def test_r093_three_phase_ranges_are_interop_warning(self):
        q = ["ELECTRIC.POWER.L1", "ELECTRIC.POWER.L2", "ELECTRIC.POWER.L3"]
        ranges = [{"start_of_range": 0.0, "end_of_range": 0.0, "commodity_quantity": x} for x in q]
        findings = mutated("frbc_full_ok.jsonl",
                           _set("RM:5", ["actuators", 0, "operation_modes", 0, "elements", 0, "power_ranges"], ranges))
        hits = of(findings, "R-093")
        self.assertEqual([f["severity"] for f in hits], ["warning"])
        self.assertIn("valid S2", hits[0]["text"])

    def test_r110_identical_resend_is_warning(self):
        pc = tm.load("pebc_ok.jsonl")[10]["message"]
        again = dict(pc, message_id=X(3))
        findings = mutated("pebc_ok.jsonl", _insert("RM:4", "RM", again))
        self.assertEqual([f["severity"] for f in of(findings, "R-110")], ["warning"])

    def test_r110_retransmission_after_temporary_error(self):
        pc = tm.load("pebc_ok.jsonl")[10]["message"]
        again = dict(pc, message_id=X(3))
        findings = mutated("pebc_ok.jsonl", {"op": "status", "msg": "RM:3", "value": "TEMPORARY_ERROR"},
                           _insert("RM:3", "RM", again))
        self.assertEqual(of(findings, "R-110"), [])

    def test_r110_envelope_id_reused(self):
        env = tm.load("pebc_ok.jsonl")[16]["message"]
        second = json.loads(json.dumps(env))
        second.update(message_id=Y(2), id=U("1f000000", 199), execution_time="2025-06-02T12:20:00Z")
        second["power_envelopes"][0]["power_envelope_elements"][0]["lower_limit"] = -1000.0
        findings = mutated("pebc_ok.jsonl", _insert("RM:6", "CEM", second))
        self.assertEqual([f["severity"] for f in of(findings, "R-110")], ["error"])
        self.assertIn("envelope", of(findings, "R-110")[0]["text"])

    def test_r116_revoked_constraints(self):
        revoke = {"message_type": "RevokeObject", "message_id": X(4), "object_type": "PEBC.PowerConstraints",
                  "object_id": "9c000000-0000-4000-8000-000000000001"}
        findings = mutated("pebc_ok.jsonl", _insert("RM:5", "RM", revoke))
        self.assertEqual([f["severity"] for f in of(findings, "R-116")], ["error"])
        self.assertIn("revoked", of(findings, "R-116")[0]["text"])
        crossed = mutated("pebc_ok.jsonl", _insert("RM:5", "RM", revoke),
                          {"op": "answer_after", "msg": X(4), "after": "CEM:4"})
        self.assertEqual([f["severity"] for f in of(crossed, "R-116")], ["warning"])

    def test_r123_identical_resend_is_warning(self):
        pd = tm.load("ppbc_ok.jsonl")[10]["message"]
        findings = mutated("ppbc_ok.jsonl", _insert("RM:5", "RM", dict(pd, message_id=X(5))))
        self.assertEqual([f["severity"] for f in of(findings, "R-123")], ["warning"])

    def test_r123_sequence_id_twice(self):
        findings = mutated("ppbc_ok.jsonl", _set("RM:3", ["power_sequences_containers", 0, "power_sequences", 1, "id"],
                                                 U("95000000", 31)))
        self.assertIn("sequence id", of(findings, "R-123")[0]["text"])

    def test_r136_not_scheduled_is_warning(self):
        findings = mutated("ppbc_ok.jsonl",
                           _set("RM:3", ["power_sequences_containers", 0, "power_sequences", 1, "is_interruptible"],
                                True),
                           _set("CEM:6", ["power_sequence_id"], U("95000000", 32)))
        self.assertEqual([f["severity"] for f in of(findings, "R-136")], ["warning"])

    def test_r137_not_reported_when_interrupted(self):
        interrupted = {"power_profile_id": U("9f000000", 31), "sequence_container_id": U("9d000000", 31),
                       "selected_sequence_id": U("95000000", 31), "progress": 20000, "status": "INTERRUPTED"}
        findings = mutated("ppbc_ok.jsonl", {"op": "drop", "msg": "CEM:6"},
                           _set("RM:11", ["sequence_container_status", 0], interrupted))
        self.assertEqual(of(findings, "R-137"), [])

    def test_r135_pause_too_long(self):
        findings = mutated("ppbc_ok.jsonl", _set("CEM:5", ["execution_time"], "2025-06-02T10:20:00Z"))
        hits = of(findings, "R-135")
        self.assertEqual(len(hits), 1)
        self.assertIn("max_pause_before", hits[0]["text"])

    def test_r130_back_to_not_scheduled_after_rejection(self):
        """SCHEDULED → NOT_SCHEDULED is no regression when the schedule was refused."""
        not_sched = {"power_profile_id": U("9f000000", 31), "sequence_container_id": U("9d000000", 32),
                     "status": "NOT_SCHEDULED"}
        findings = mutated("ppbc_ok.jsonl", {"op": "status", "msg": "CEM:5", "value": "INVALID_CONTENT"},
                           _set("RM:11", ["sequence_container_status", 1], not_sched))
        self.assertEqual(of(findings, "R-130"), [])


class RejectedEffects(unittest.TestCase):
    """§4.4: a refused message has no effect on the state the control-type rules use."""

    def test_refused_storage_status_is_not_used(self):
        findings = mutated("frbc_full_ok.jsonl", _set("RM:8", ["present_fill_level"], 85.0),
                           {"op": "status", "msg": "RM:8", "value": "INVALID_CONTENT"})
        self.assertEqual(of(findings, "R-104"), [])
        self.assertEqual(len(of(findings, "R-098")), 1)

    def test_refused_description_is_not_applicable(self):
        findings = mutated("ombc_ok.jsonl", {"op": "status", "msg": "RM:4", "value": "INVALID_CONTENT"})
        self.assertEqual([f["severity"] for f in of(findings, "R-085")], ["error", "error"])


class Summary(unittest.TestCase):
    def _summary(self, name, upto):
        lines = tm.load(name)[:upto]
        return run(lines)[1].summary()

    def test_frbc(self):
        s = self._summary("frbc_ok.jsonl", 32)["system_description"]
        self.assertEqual(s["control_type"], "FRBC")
        self.assertEqual(s["message_id"], "b0000000-0000-4000-8000-000000000004")
        act = s["actuators"][0]
        self.assertEqual(act["id"], "a1000000-0000-4000-8000-000000000001")
        self.assertEqual(act["active_operation_mode"], "0e000000-0000-4000-8000-000000000002")
        self.assertEqual(len(act["operation_modes"]), 2)
        self.assertEqual(act["timers"][0]["finished_at"], "2025-06-02T10:02:00.000Z")
        self.assertEqual(s["storage"]["fill_level_range"], {"start_of_range": 10.0, "end_of_range": 90.0})
        self.assertEqual(s["storage"]["present_fill_level"], 42.5)
        json.dumps(s)

    def test_ombc_and_ddbc(self):
        s = self._summary("ombc_ok.jsonl", 20)["system_description"]
        self.assertEqual(s["device"]["abnormal_only_modes"], [U("0e000000", 13)])
        s = self._summary("ddbc_ok.jsonl", 20)["system_description"]
        self.assertEqual(s["present_demand_rate"], {"start_of_range": 4000.0, "end_of_range": 6000.0})

    def test_pebc(self):
        s = self._summary("pebc_full_ok.jsonl", 16)["system_description"]
        self.assertEqual([c["id"] for c in s["power_constraints"]], [U("9c000000", 51)])
        self.assertEqual(s["energy_constraints"][0]["upper_average_power"], 5000.0)
        json.dumps(s)

    def test_ppbc(self):
        s = self._summary("ppbc_ok.jsonl", 32)["system_description"]
        conts = s["power_profiles"][0]["containers"]
        self.assertEqual([c["status"] for c in conts], ["EXECUTING", "SCHEDULED"])
        self.assertEqual(conts[0]["selected_sequence_id"], U("95000000", 31))


class Robustness(unittest.TestCase):
    def test_strict_mode_keeps_control_type_severities(self):
        """§8 names no control-type rule as a strict-mode error (only R-006)."""
        mu = [m for m in tm.mutations() if m["rule"] == "R-079"][0]
        findings = run(tm.apply(tm.load(mu["base"]), mu["ops"]), strict=True)[0]
        self.assertEqual([f["severity"] for f in of(findings, "R-079")], ["warning"])

    def test_inactive_type_messages_are_judged_on_content(self):
        """OMBC messages while FRBC is active: R-029 from the framework; content rules still run
        (R-072), the OMBC store is not touched (no R-080/R-083 for the OMBC statuses)."""
        frbc = tm.load("frbc_ok.jsonl")
        ombc = tm.apply(tm.load("ombc_ok.jsonl"), [_set("RM:4", ["operation_modes", 2, "id"], U("0e000000", 12))])
        lines = frbc[:22] + [dict(line, time=frbc[21]["time"]) for line in ombc[12:18]] + frbc[22:]
        findings = run(lines)[0]
        self.assertTrue(of(findings, "R-029"))
        self.assertEqual([f["message_type"] for f in of(findings, "R-072")], ["OMBC.SystemDescription"])
        self.assertEqual(of(findings, "R-083") + of(findings, "R-080"), [])

    def test_checker_used_directly(self):
        from s2proxy.validation import Validator
        v = Validator()
        chk = Checker(CheckerConfig(on_error=_raise))
        for n, line in enumerate(tm.load("ddbc_ok.jsonl"), 1):
            t = tm.parse_time(line["time"])
            chk.tick(t)
            chk.feed(line["sender"], v.analyse(json.dumps(line["message"])), t, n)
        self.assertEqual(chk.summary()["system_description"]["control_type"], "DDBC")

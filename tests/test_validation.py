"""Tests of s2proxy.validation: the format rules R-001..R-006 on single frames."""

import copy
import json
import os

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from s2proxy.validation import MAX_SCHEMA_FINDINGS, Analysis, Validator, json_path

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "messages")
UUID = "5f0c1d2e-3a4b-4c5d-8e9f-0a1b2c3d4e5f"


def fixtures():
    for name in sorted(os.listdir(FIXTURES)):
        if name.endswith(".json"):
            with open(os.path.join(FIXTURES, name)) as f:
                yield json.load(f)


def session_request(**changes):
    message = {"message_type": "SessionRequest", "message_id": UUID, "request": "RECONNECT"}
    message.update(changes)
    return message


def rules(analysis):
    return [f["rule"] for f in analysis.findings]


class Base(SynchronousTestCase):
    def setUp(self):
        self.validator = Validator()

    def analyse(self, message, binary=False):
        payload = message if isinstance(message, (bytes, str)) else json.dumps(message).encode("utf-8")
        analysis = self.validator.analyse(payload, binary=binary)
        self.assertIsInstance(analysis, Analysis)
        for f in analysis.findings:
            self.assertEqual(set(f), {"rule", "severity", "path", "loc", "text"})
            self.assertEqual(f["path"], json_path(f["loc"]))
            self.assertIn(f["severity"], ("error", "warning", "info"))
        self.assertEqual(analysis.valid, not any(f["severity"] == "error" for f in analysis.findings))
        return analysis


class FixtureTests(Base):
    def test_fixtures_cover_every_message_type(self):
        self.assertEqual([d["message_type"] for d in fixtures()], self.validator.message_types)
        self.assertEqual(len(self.validator.message_types), 35)

    def test_valid_examples(self):
        for examples in fixtures():
            for message in examples["valid"]:
                a = self.analyse(message)
                self.assertEqual(a.findings, [], message["message_type"])
                self.assertTrue(a.valid and a.schema_valid)
                self.assertEqual(a.message_type, examples["message_type"])
                self.assertEqual(a.obj, message)
                self.assertEqual(a.message_id, message.get("message_id"))

    def test_invalid_examples(self):
        for examples in fixtures():
            self.assertTrue(examples["invalid"], examples["message_type"])
            for case in examples["invalid"]:
                a = self.analyse(case["message"])
                self.assertFalse(a.valid, case["why"])
                self.assertFalse(a.schema_valid, case["why"])
                self.assertIn(case["loc"], [f["loc"] for f in a.findings if f["rule"] == case["rule"]],
                              "{}: {}".format(case["why"], a.findings))

    def test_validation_does_not_modify_the_parsed_value(self):
        for examples in fixtures():
            for message in examples["valid"] + [c["message"] for c in examples["invalid"]]:
                text = json.dumps(message)
                a = self.analyse(text)
                self.assertEqual(a.obj, json.loads(text))
                self.assertEqual(a.text, text)


class R001Tests(Base):
    def test_binary_frame_is_a_warning_and_still_analysed(self):
        a = self.analyse(session_request(), binary=True)
        self.assertEqual(rules(a), ["R-001"])
        self.assertEqual(a.findings[0]["severity"], "warning")
        self.assertTrue(a.valid and a.schema_valid)
        self.assertEqual(a.message_type, "SessionRequest")

    def test_binary_frame_with_invalid_content(self):
        a = self.analyse(session_request(request="NOW"), binary=True)
        self.assertEqual(rules(a), ["R-001", "R-004"])

    def test_json_values_that_are_not_objects(self):
        for payload, kind in ((b"[1, 2]", "an array"), (b'"Handshake"', "a string"), (b"42", "a number"),
                              (b"null", "null"), (b"true", "a boolean")):
            a = self.analyse(payload)
            self.assertEqual(rules(a), ["R-001"], payload)
            self.assertEqual(a.findings[0]["severity"], "error")
            self.assertIn(kind, a.findings[0]["text"])
            self.assertIsNone(a.message_type)
            self.assertFalse(a.schema_valid)

    def test_an_object_is_no_r001(self):
        self.assertNotIn("R-001", rules(self.analyse(session_request())))


class R002Tests(Base):
    def assertR002(self, payload, binary=False, expect=None):
        a = self.analyse(payload, binary=binary)
        self.assertIn("R-002", rules(a))
        self.assertFalse(a.valid)
        self.assertIsNone(a.obj)
        self.assertIsNone(a.message_type)
        if expect:
            self.assertIn(expect, [f for f in a.findings if f["rule"] == "R-002"][0]["text"])
        return a

    def test_not_json(self):
        self.assertR002(b"hello", expect="line 1 column 1")
        self.assertR002(b'{"message_type": "SessionRequest",}')
        self.assertR002(b"")

    def test_non_json_literals(self):
        for literal in ("NaN", "Infinity", "-Infinity"):
            self.assertR002(json.dumps(session_request()).replace('"RECONNECT"', literal), expect=literal)

    def storage_status(self, number):
        return (b'{"message_type": "FRBC.StorageStatus", "message_id": "' + UUID.encode() +
                b'", "present_fill_level": ' + number + b"}")

    def test_number_beyond_double(self):
        for number in (b"1e400", b"-1.5E+309", b"9" * 400, b"-" + b"9" * 320 + b".5"):
            a = self.analyse(self.storage_status(number))
            self.assertEqual(rules(a), ["R-002"], number[:20])
            self.assertEqual(a.findings[0]["path"], "$.present_fill_level")
            self.assertIn("out of the range", a.findings[0]["text"])
            self.assertFalse(a.valid or a.schema_valid)
        # Deeper down, and against an integer type with a minimum of its own (Duration).
        a = self.analyse(b'{"message_type": "FRBC.FillLevelTargetProfile", "message_id": "' + UUID.encode() +
                         b'", "start_time": "2025-06-02T10:00:00Z", "elements": [{"duration": -1e999, '
                         b'"fill_level_range": {"start_of_range": 0, "end_of_range": 1e999}}]}')
        self.assertEqual(sorted((f["rule"], f["path"]) for f in a.findings),
                         [("R-002", "$.elements[0].duration"),
                          ("R-002", "$.elements[0].fill_level_range.end_of_range"),
                          ("R-004", "$.elements[0].duration")])  # -inf is no integer either

    def test_integer_literal_beyond_the_parser(self):
        self.assertR002(self.storage_status(b"1" * 10000), expect="out of the range")

    def test_numbers_within_double_are_fine(self):
        for number in (b"1.5e308", b"-1.7976931348623157e308", b"1e-400", b"9" * 300):
            a = self.analyse(self.storage_status(number))
            self.assertEqual(a.findings, [], number[:20])

    def test_invalid_utf8(self):
        payload = json.dumps(session_request(diagnostic_label="x")).encode().replace(b'"x"', b'"\xff\xfe"')
        a = self.assertR002(payload, expect="0xff")
        self.assertIn("\ufffd", a.text)
        a = self.assertR002(payload, binary=True)
        self.assertEqual(rules(a), ["R-001", "R-002"])

    def test_deep_nesting(self):
        self.assertR002(b"[" * 100000 + b"]" * 100000, expect="nested too deeply")
        self.assertR002(b'{"a":' * 50000 + b"1" + b"}" * 50000)

    def test_deep_nesting_inside_a_known_field(self):
        # Parses (below the recursion limit), fails the schema; must not raise while describing it.
        depth = 300
        payload = json.dumps(session_request()).replace('"RECONNECT"', "[" * depth + "]" * depth)
        a = self.analyse(payload)
        self.assertEqual(set(rules(a)), {"R-004"})  # type and enum of $.request

    def test_huge_input(self):
        a = self.analyse(session_request(diagnostic_label="x" * 5000000))
        self.assertEqual(a.findings, [])
        a = self.analyse(b"[" + b"1," * 1000000 + b"1]")
        self.assertEqual(rules(a), ["R-001"])


class R003Tests(Base):
    def test_missing(self):
        message = session_request()
        del message["message_type"]
        a = self.analyse(message)
        self.assertEqual(rules(a), ["R-003"])
        self.assertIn("missing", a.findings[0]["text"])
        self.assertEqual(a.message_id, UUID)

    def test_not_a_string(self):
        for value in (None, 7, ["SessionRequest"], {"x": 1}):
            a = self.analyse(session_request(message_type=value))
            self.assertEqual(rules(a), ["R-003"], value)
            self.assertEqual(a.findings[0]["path"], "$.message_type")
            self.assertIsNone(a.message_type)

    def test_unknown(self):
        a = self.analyse(session_request(message_type="FRBC.Status"))
        self.assertEqual(rules(a), ["R-003"])
        self.assertIn('"FRBC.Status"', a.findings[0]["text"])
        self.assertEqual(a.message_type, "FRBC.Status")
        self.assertFalse(a.schema_valid)

    def test_known_types_pass(self):
        self.assertNotIn("R-003", rules(self.analyse(session_request())))


class R004Tests(Base):
    def test_path_loc_and_value_in_text(self):
        message = {"message_type": "PowerMeasurement", "message_id": UUID,
                   "measurement_timestamp": "2025-06-02T10:00:00Z",
                   "values": [{"commodity_quantity": "ELECTRIC.POWER.L1", "value": 1},
                              {"commodity_quantity": "ELECTRIC.POWER.L2", "value": "high"}]}
        a = self.analyse(message)
        self.assertEqual(rules(a), ["R-004"])
        finding = a.findings[0]
        self.assertEqual(finding["path"], "$.values[1].value")
        self.assertEqual(finding["loc"], ["values", 1, "value"])
        self.assertIn('"high"', finding["text"])
        self.assertEqual(a.obj, message)

    def test_all_errors_are_reported(self):
        a = self.analyse(session_request(request="NOW", extra=1, diagnostic_label=5))
        self.assertEqual(sorted(f["path"] for f in a.findings), ["$", "$.diagnostic_label", "$.request"])
        extra = [f for f in a.findings if f["path"] == "$"][0]
        self.assertIn("extra", extra["text"])

    def test_number_of_findings_is_bounded(self):
        message = {"message_type": "PowerForecast", "message_id": UUID, "start_time": "2025-06-02T10:00:00Z",
                   "elements": [{"duration": -1, "power_values": []}] * 200}
        a = self.analyse(message)
        self.assertEqual(len(a.findings), MAX_SCHEMA_FINDINGS + 1)
        self.assertIn("more schema errors", a.findings[-1]["text"])

    def test_date_time_is_asserted(self):
        a = self.analyse({"message_type": "OMBC.TimerStatus", "message_id": UUID, "timer_id": UUID,
                          "finished_at": "2025-06-02T10:00:00+0100"})
        self.assertEqual(rules(a), ["R-004"])
        self.assertEqual(a.findings[0]["path"], "$.finished_at")

    def test_reception_status_with_message_id(self):
        a = self.analyse({"message_type": "ReceptionStatus", "subject_message_id": UUID, "status": "OK",
                          "message_id": UUID})
        self.assertEqual(rules(a), ["R-004"])
        self.assertEqual(a.message_id, UUID)

    def test_schema_valid_message_has_no_r004(self):
        a = self.analyse(session_request())
        self.assertEqual(a.findings, [])
        self.assertTrue(a.schema_valid)


class IdRuleTests(Base):
    def finding(self, a, rule):
        return [f for f in a.findings if f["rule"] == rule]

    def test_r005_whole_string_reading(self):
        for value in ("ab cd!!", "a" * 100, "abc\n"):
            a = self.analyse(session_request(message_id=value))
            self.assertTrue(a.schema_valid, value)  # the unanchored pattern lets it through
            [r005] = self.finding(a, "R-005")
            self.assertEqual(r005["severity"], "warning")
            self.assertEqual(r005["path"], "$.message_id")
            self.assertIn(json.dumps(value)[:20], r005["text"])
            self.assertTrue(a.valid)

    def test_r005_quiet_on_well_formed_ids(self):
        for value in (UUID, "actuator1", "a:b_c-d"):
            self.assertEqual(self.finding(self.analyse(session_request(message_id=value)), "R-005"), [])

    def test_r006_non_uuid_ids(self):
        a = self.analyse(session_request(message_id="message-1"))
        [r006] = self.finding(a, "R-006")
        self.assertEqual(r006["severity"], "warning")
        self.assertIn('"message-1"', r006["text"])
        self.assertTrue(a.valid)

    def test_r006_strict_mode_is_an_error(self):
        a = Validator(strict=True).analyse(json.dumps(session_request(message_id="message-1")))
        self.assertEqual([(f["rule"], f["severity"]) for f in a.findings], [("R-006", "error")])
        self.assertFalse(a.valid)
        self.assertTrue(a.schema_valid)

    def test_r006_quiet_on_uuids_in_either_case(self):
        for value in (UUID, UUID.upper(), "00000000-0000-0000-0000-000000000000"):
            self.assertEqual(self.analyse(session_request(message_id=value)).findings, [])

    def test_r006_reaches_nested_ids_and_arrays(self):
        with open(os.path.join(FIXTURES, "FRBC.SystemDescription.json")) as f:
            message = copy.deepcopy(json.load(f)["valid"][0])
        message["actuators"][0]["transitions"][1]["start_timers"][0] = "timer-1"
        message["actuators"][0]["operation_modes"][1]["id"] = "mode 2"
        a = self.analyse(message)
        self.assertIn("$.actuators[0].transitions[1].start_timers[0]",
                      [f["path"] for f in self.finding(a, "R-006")])
        self.assertEqual([f["path"] for f in self.finding(a, "R-005")], ["$.actuators[0].operation_modes[1].id"])
        self.assertEqual(self.finding(a, "R-005")[0]["loc"], ["actuators", 0, "operation_modes", 1, "id"])

    def test_only_id_fields_are_checked(self):
        a = self.analyse({"message_type": "HandshakeResponse", "message_id": UUID,
                          "selected_protocol_version": "0.0.2-beta"})
        self.assertEqual(a.findings, [])


class AnalysisTests(Base):
    def test_str_payload(self):
        a = self.validator.analyse(json.dumps(session_request()))
        self.assertEqual((a.valid, a.message_type, a.message_id), (True, "SessionRequest", UUID))

    def test_validators_share_the_compiled_schemas(self):
        self.assertIs(Validator().schema_set, self.validator.schema_set)

    def test_message_id_only_when_a_string(self):
        self.assertIsNone(self.analyse(session_request(message_id=5)).message_id)


class FuzzTests(SynchronousTestCase):
    validator = None

    def setUp(self):
        FuzzTests.validator = FuzzTests.validator or Validator()

    @settings(max_examples=300, deadline=None)
    @given(st.binary(max_size=200), st.booleans())
    def test_any_bytes(self, payload, binary):
        a = self.validator.analyse(payload, binary=binary)
        self.assertFalse(a.valid and not payload.strip().startswith(b"{"))

    json_values = st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
        | st.text(max_size=20),
        lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
        max_leaves=20)

    @settings(max_examples=300, deadline=None)
    @given(st.sampled_from(["SessionRequest", "FRBC.SystemDescription", "PPBC.PowerProfileDefinition",
                            "PEBC.Instruction", "ReceptionStatus"]),
           st.dictionaries(st.sampled_from(["message_id", "actuators", "storage", "power_envelopes", "status",
                                            "power_sequences_containers", "subject_message_id", "id"]),
                           json_values, max_size=5))
    def test_any_object_of_a_known_type(self, message_type, body):
        body["message_type"] = message_type
        a = self.validator.analyse(json.dumps(body))
        self.assertEqual(a.message_type, message_type)
        self.assertEqual(a.obj, body)

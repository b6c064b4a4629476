"""The checker framework and the rules R-007 - R-062, driven by the §7 transcripts and mutations.

Every rule has a test that makes it fire on a mutated copy of a §7 conversation; the baselines
(test_baseline_*) show that the unmutated conversations trigger none of them.
"""

import json

from twisted.trial.unittest import SynchronousTestCase

from s2proxy.checker import Checker, CheckerConfig
from s2proxy.checker import plugin
from tests.checker_mutate import at, clone, drop, fmt, frbc, insert, mid, pebc, rs, rs_of, shift
from tests.checker_replay import replay, validator
from s2proxy.checker.ids import parse_time

B, C = "b", "c"          # §7.1 RM / CEM id letters
D, E = "d", "e"          # §7.2 RM / CEM id letters


def _raise(rule, exc):
    raise exc


class Base(SynchronousTestCase):
    def run_lines(self, lines, end=None, **cfg):
        cfg.setdefault("on_error", _raise)
        findings, self.chk = replay(lines, CheckerConfig(**cfg), end=end)
        self.findings = findings
        return findings

    def fired(self, rule, severity=None, line=None):
        hits = [f for f in self.findings if f["rule"] == rule
                and (severity is None or f["severity"] == severity)
                and (line is None or f["ref"] == line)]
        self.assertTrue(hits, "%s (%s, line %s) did not fire; findings: %s" % (
            rule, severity, line, json.dumps([(f["rule"], f["severity"], f["ref"], f["text"])
                                              for f in self.findings], indent=1)))
        return hits

    def not_fired(self, *rules_):
        hits = [f for f in self.findings if f["rule"] in rules_]
        self.assertEqual(hits, [])

    def serious(self):
        return [(f["rule"], f["severity"], f["ref"], f["text"]) for f in self.findings
                if f["severity"] in ("error", "warning")]


class BaselineTests(Base):
    def test_baseline_frbc(self):
        self.assertEqual(self.run_lines(frbc()), [])

    def test_baseline_pebc(self):
        self.assertEqual(self.run_lines(pebc()), [])

    def test_summary(self):
        self.run_lines(frbc())
        s = self.chk.summary()
        json.dumps(s)
        self.assertEqual(s["state"], "T")
        self.assertEqual(s["handshake"]["version"], "0.0.2-beta")
        self.assertEqual(s["control_type"], "FILL_RATE_BASED_CONTROL")
        self.assertEqual(s["resource_manager"]["resource_id"], "5e000000-0000-4000-8000-000000000001")
        self.assertEqual(s["counts"]["messages"]["RM"]["FRBC.ActuatorStatus"], 2)
        self.assertEqual(s["pending_reception_statuses"], [])
        self.assertIsNotNone(s["system_description"])

    def test_summary_open_instruction_and_pending_status(self):
        lines = frbc()[:39]          # I2 acknowledged and ACCEPTED; ends before the revocation
        lines.append({"time": "2025-06-02T10:01:12.000Z", "sender": "RM", "message": {
            "message_type": "FRBC.StorageStatus", "message_id": mid(B, 50), "present_fill_level": 50.0}})
        findings, chk = replay(lines, CheckerConfig(on_error=_raise), end=parse_time("2025-06-02T10:01:12.100Z"))
        s = chk.summary()
        self.assertEqual([i["id"] for i in s["instructions"]], ["1f000000-0000-4000-8000-000000000002"])
        self.assertEqual(s["instructions"][0]["status"], "ACCEPTED")
        self.assertEqual(s["pending_reception_statuses"], [])    # settled by finish()


class MessageIdTests(Base):
    def test_r007_reused_message_id(self):
        lines = frbc()
        lines[at(lines, mid(B, 17))]["message"]["message_id"] = mid(B, 6)
        lines[rs_of(lines, mid(B, 17))]["message"]["subject_message_id"] = mid(B, 6)
        self.run_lines(lines)
        self.fired("R-007", "error", line=45)

    def test_r007_ids_by_value(self):
        # upper-case UUID from the CEM answered in lower case by the RM: no finding.
        lines = frbc()
        for line in lines:
            m = line["message"]
            if line["sender"] == "CEM" and "message_id" in m:
                m["message_id"] = m["message_id"].upper()
        self.run_lines(lines)
        self.assertEqual(self.serious(), [])

    def test_r007_retransmission_keeps_id(self):
        lines = frbc()
        i = rs_of(lines, mid(B, 17))
        lines[i]["message"]["status"] = "TEMPORARY_ERROR"
        again = clone(lines[at(lines, mid(B, 17))]["message"])
        insert(lines, i, "RM", again)
        self.run_lines(lines)
        self.not_fired("R-007", "R-042", "R-048")
        self.fired("R-047", "warning")

    def test_r008_wrong_sender(self):
        lines = frbc()
        lines[at(lines, mid(B, 17))]["sender"] = "CEM"
        lines[rs_of(lines, mid(B, 17))]["sender"] = "RM"
        self.run_lines(lines)
        self.fired("R-008", "error", line=45)

    def test_r009_pings(self):
        chk = Checker(CheckerConfig(on_error=_raise))
        self.assertEqual(chk.ping("CEM", 100.0), [])
        self.assertEqual(chk.ping("CEM", 160.0), [])
        f = chk.ping("CEM", 170.0, ref=7)
        self.assertEqual([(x["rule"], x["severity"], x["ref"]) for x in f], [("R-009", "info", 7)])


class HandshakeTests(Base):
    def test_r010_first_message_not_handshake(self):
        lines = frbc()
        drop(lines, mid(B, 1))           # no RM Handshake; HandshakeResponse gets R-016
        self.run_lines(lines)
        self.fired("R-016", "warning")
        self.fired("R-010", "warning", line=5)   # the RM's ResourceManagerDetails

    def test_r010_session_without_handshake(self):
        lines = frbc()[6:]                # opens with ResourceManagerDetails
        self.run_lines(lines)
        self.assertEqual(len(self.fired("R-010", "warning")), 1)
        self.not_fired("R-021", "R-023", "R-024")
        self.assertEqual(self.chk.version, "0.0.2-beta")

    def test_r011_role(self):
        lines = frbc()
        lines[0]["message"]["role"] = "CEM"
        self.run_lines(lines)
        self.fired("R-011", "error", line=1)

    def test_r012_second_handshake(self):
        lines = frbc()
        hs = clone(lines[0]["message"])
        hs["message_id"] = mid(B, 90)
        insert(lines, 1, "RM", hs)
        self.run_lines(lines)
        self.fired("R-012", "warning", line=3)

    def test_r012_not_for_retransmission(self):
        lines = frbc()
        lines[1]["message"]["status"] = "TEMPORARY_ERROR"
        hs = clone(lines[0]["message"])
        hs["message_id"] = mid(B, 90)
        insert(lines, 1, "RM", hs)
        self.run_lines(lines)
        self.not_fired("R-012", "R-048")

    def test_r013_rm_versions_missing(self):
        lines = frbc()
        del lines[0]["message"]["supported_protocol_versions"]
        self.run_lines(lines)
        self.fired("R-013", "error", line=1)

    def test_r014_duplicate_and_missing_version(self):
        lines = frbc()
        lines[0]["message"]["supported_protocol_versions"] = ["0.0.1-beta", "0.0.1-beta"]
        lines[4]["message"]["selected_protocol_version"] = "0.0.1-beta"
        lines[2]["message"]["supported_protocol_versions"] = ["0.0.1-beta"]
        self.run_lines(lines)
        [f] = self.fired("R-014", "warning", line=1)
        self.assertIn("0.0.2-beta", f["text"])
        self.assertIn("duplicates", f["text"])
        self.fired("R-019", "warning", line=5)
        self.not_fired("R-017", "R-018")

    def test_r015_second_handshake_response(self):
        lines = frbc()
        hsr = clone(lines[4]["message"])
        hsr["message_id"] = mid(C, 90)
        insert(lines, 7, "CEM", hsr)
        self.run_lines(lines)
        self.fired("R-015", "warning", line=9)

    def test_r015_r020_refused_handshake_response(self):
        lines = frbc()
        lines[5]["message"]["status"] = "INVALID_CONTENT"   # RM refuses the HandshakeResponse
        self.run_lines(lines)
        self.fired("R-047", "warning", line=5)
        self.fired("R-020", "warning", line=7)
        # a corrected HandshakeResponse is no R-015 and restores the session
        lines = frbc()
        lines[5]["message"]["status"] = "INVALID_CONTENT"
        hsr = clone(lines[4]["message"])
        hsr["message_id"] = mid(C, 90)
        insert(lines, 5, "CEM", hsr)
        self.run_lines(lines)
        self.not_fired("R-015", "R-020")

    def test_r016_early_handshake_response(self):
        lines = frbc()
        early = lines[4:6]
        del lines[4:6]
        lines[0:0] = early
        lines[0]["time"], lines[1]["time"] = "2025-06-01T23:59:59.000Z", "2025-06-01T23:59:59.010Z"
        lines[0]["time"], lines[1]["time"] = "2025-06-02T09:59:59.900Z", "2025-06-02T09:59:59.910Z"
        self.run_lines(lines)
        self.fired("R-016", "warning", line=1)
        self.not_fired("R-012", "R-021", "R-010", "R-017")

    def test_r017_r018_r019_version(self):
        lines = frbc()
        lines[4]["message"]["selected_protocol_version"] = "1.0.0"
        self.run_lines(lines)
        self.fired("R-017", "warning", line=5)
        self.fired("R-018", "warning", line=5)
        [f] = self.fired("R-019", "warning", line=5)
        self.assertIn("'1.0.0'", f["text"])

    def test_r021_before_handshake_response(self):
        lines = frbc()
        pm = lines.pop(8)
        del lines[rs_of(lines, mid(B, 3))]
        pm["time"] = "2025-06-02T10:00:00.035Z"
        lines.insert(4, pm)
        lines.insert(5, rs("CEM", mid(B, 3), time="2025-06-02T10:00:00.036Z"))
        self.run_lines(lines)
        self.fired("R-021", "error", line=5)
        self.not_fired("R-010")

    def test_r022_session_request_in_handshake(self):
        lines = frbc()[:2]
        insert(lines, 1, "RM", {"message_type": "SessionRequest", "message_id": mid(B, 90),
                                "request": "RECONNECT"})
        self.run_lines(lines)
        self.fired("R-022", "warning", line=3)
        self.not_fired("R-021", "R-010")


class SessionTests(Base):
    def test_r023_details_not_first(self):
        lines = frbc()
        lines[6], lines[7], lines[8], lines[9] = lines[8], lines[9], lines[6], lines[7]
        for i, t in zip(range(6, 10), ("00.060", "00.070", "01.010", "01.020")):
            lines[i]["time"] = "2025-06-02T10:00:%sZ" % t
        self.run_lines(lines)
        self.fired("R-023", "warning", line=7)

    def test_r024_select_without_details(self):
        lines = frbc()
        drop(lines, mid(B, 2))
        self.run_lines(lines)
        self.fired("R-024", "error")

    def test_r025_undeclared_control_type(self):
        lines = frbc()
        lines[6]["message"]["available_control_types"] = ["NOT_CONTROLABLE"]
        self.run_lines(lines)
        self.fired("R-025", "error", line=11)

    def test_r026_not_controlable_undeclared(self):
        lines = pebc()
        lines[8]["message"]["control_type"] = "NOT_CONTROLABLE"
        self.run_lines(lines)
        self.fired("R-026", "warning", line=9)
        lines = frbc()
        lines[10]["message"]["control_type"] = "NO_SELECTION"
        self.run_lines(lines[:12])
        self.not_fired("R-025", "R-026")

    def test_r027_duplicates_in_details(self):
        lines = frbc()
        lines[6]["message"]["available_control_types"] = ["FILL_RATE_BASED_CONTROL", "FILL_RATE_BASED_CONTROL", "NO_SELECTION"]
        self.run_lines(lines)
        [f] = self.fired("R-027", "warning", line=7)
        self.assertIn("FILL_RATE_BASED_CONTROL", f["text"])
        self.assertIn("NO_SELECTION", f["text"])

    def test_r028_repeated_details(self):
        lines = frbc()
        again = clone(lines[6]["message"])
        again["message_id"] = mid(B, 90)
        again["resource_id"] = "5e000000-0000-4000-8000-000000000099"
        again["available_control_types"] = ["NOT_CONTROLABLE"]
        insert(lines, at(lines, mid(B, 8)) + 1, "RM", again)
        self.run_lines(lines)
        hits = self.fired("R-028", "warning", line=23)
        self.assertEqual(len(hits), 2)
        lines = frbc()
        again = clone(lines[6]["message"])
        again["message_id"] = mid(B, 90)
        insert(lines, at(lines, mid(B, 8)) + 1, "RM", again)
        self.run_lines(lines)
        self.not_fired("R-028")

    def _deselect(self, status_delay, report_after):
        """FRBC active, the CEM selects NO_SELECTION at 10:01:20, the RM answers after
        `status_delay` s and sends an FRBC.StorageStatus `report_after` s after the select."""
        lines = frbc()[:36]          # up to the measurement at 10:01:05
        t0 = parse_time("2025-06-02T10:01:20Z")
        lines.append({"time": fmt(t0), "sender": "CEM", "message": {
            "message_type": "SelectControlType", "message_id": mid(C, 90), "control_type": "NO_SELECTION"}})
        events = [(status_delay, rs("RM", mid(C, 90))),
                  (report_after, {"sender": "RM", "message": {
                      "message_type": "FRBC.StorageStatus", "message_id": mid(B, 90),
                      "present_fill_level": 50.0}})]
        events.sort(key=lambda e: e[0])
        for delay, line in events:
            line["time"] = fmt(t0 + delay)
            lines.append(line)
        n = len(lines)
        lines.append(rs("CEM", mid(B, 90), time=fmt(t0 + report_after + 0.01)))
        return lines, [i + 1 for i in range(n) if lines[i]["message"].get("message_id") == mid(B, 90)][0]

    def test_r029_switch_window_phase1(self):
        lines, n = self._deselect(0.5, 0.2)     # before the RM's acknowledgement
        self.run_lines(lines)
        self.not_fired("R-029")

    def test_r029_switch_window_phase2(self):
        lines, n = self._deselect(0.01, 0.3)    # within T_switch after the acknowledgement
        self.run_lines(lines)
        self.fired("R-029", "warning", line=n)

    def test_r029_after_switch_window(self):
        lines, n = self._deselect(0.01, 7.0)
        self.run_lines(lines)
        self.fired("R-029", "error", line=n)

    def test_r029_unacknowledged_select(self):
        lines, n = self._deselect(30.0, 6.0)    # no status within T_rs: phase 2 from T_rs on
        self.run_lines(lines)
        self.fired("R-029", "warning", line=n)

    def test_r029_type_never_active(self):
        lines = frbc()
        lines[10]["message"]["control_type"] = "NOT_CONTROLABLE"
        self.run_lines(lines)
        self.fired("R-029", "error", line=13)
        self.not_fired("R-033")

    def test_r030_instruction_of_inactive_type(self):
        lines = frbc()
        lines[10]["message"]["control_type"] = "NOT_CONTROLABLE"
        self.run_lines(lines)
        self.fired("R-030", "error", line=23)
        self.fired("R-031", "error", line=41)
        self.fired("R-032", "warning", line=25)

    def test_r031_rm_revoke_in_window(self):
        lines, n = self._deselect(0.01, 0.3)
        lines[n - 1]["message"] = {"message_type": "RevokeObject", "message_id": mid(B, 90),
                                   "object_type": "FRBC.SystemDescription", "object_id": mid(B, 4)}
        self.run_lines(lines)
        self.fired("R-031", "warning", line=n)

    def test_r033_status_before_description(self):
        lines = frbc()
        sd = lines[12:14]
        del lines[12:14]
        lines[14:14] = sd            # after the ActuatorStatus and its status
        for i, t in zip(range(12, 16), ("02.010", "02.020", "02.025", "02.028")):
            lines[i]["time"] = "2025-06-02T10:00:%sZ" % t
        self.run_lines(lines)
        self.fired("R-033", "warning", line=13)

    def test_r034_after_session_request(self):
        lines = frbc()
        insert(lines, len(lines) - 1, "RM", {"message_type": "FRBC.StorageStatus",
                                              "message_id": mid(B, 90), "present_fill_level": 50.0})
        self.run_lines(lines)
        self.fired("R-034", "warning", line=49)
        # crossed in flight: the RM's message arrives before its acknowledgement
        lines = frbc()
        insert(lines, len(lines) - 2, "RM", {"message_type": "FRBC.StorageStatus",
                                              "message_id": mid(B, 90), "present_fill_level": 50.0})
        self.run_lines(lines)
        self.not_fired("R-034")
        # the requesting side itself
        lines = frbc()
        insert(lines, len(lines) - 1, "CEM", {"message_type": "SessionRequest",
                                               "message_id": mid(C, 90), "request": "TERMINATE"})
        self.run_lines(lines)
        self.fired("R-034", "warning", line=49)

    def test_r035_after_permanent_error(self):
        lines = frbc()
        lines[rs_of(lines, mid(B, 17))]["message"]["status"] = "PERMANENT_ERROR"
        lines.insert(len(lines) - 2, {"time": "2025-06-02T10:05:15.000Z", "sender": "RM", "message": {
            "message_type": "PowerMeasurement", "message_id": mid(B, 90),
            "measurement_timestamp": "2025-06-02T10:05:15Z",
            "values": [{"commodity_quantity": "ELECTRIC.POWER.3_PHASE_SYMMETRIC", "value": 0.0}]}})
        lines.insert(len(lines) - 2, rs("CEM", mid(B, 90), time="2025-06-02T10:05:15.010Z"))
        self.run_lines(lines)
        self.fired("R-035", "warning", line=47)
        self.not_fired("R-034")       # the SessionRequest is allowed in state F

    def test_r036_not_closed(self):
        lines = frbc()
        self.run_lines(lines, end=parse_time("2025-06-02T10:05:31Z"))
        self.fired("R-036", "info", line=47)
        self.run_lines(frbc(), end=parse_time("2025-06-02T10:05:29Z"))
        self.not_fired("R-036")

    def test_r037_measurement_gap(self):
        lines = pebc()
        del lines[24:32]
        self.run_lines(lines)
        self.fired("R-037", "info", line=23)

    def test_r037_steady_measurements_keep_one_deadline(self):
        # PowerMeasurements every 10 s under T_meas = 30 s: no R-037, and the checker holds one
        # measurement deadline, not one per message; then a 60 s gap fires it once, about the
        # last measurement before the gap.
        lines = pebc()
        first = next(i for i, l in enumerate(lines)
                     if l["message"].get("message_type") == "PowerMeasurement")
        base = lines[:first + 1]
        start = parse_time(base[-1]["time"])

        def measurement(n, at):
            m = json.loads(json.dumps(base[-1]))
            m["message"]["message_id"] = "f0000000-0000-4000-8000-%012d" % n
            m["time"] = fmt(at)
            return m
        steady = [measurement(n, start + 10 * (n + 1)) for n in range(20)]
        last = start + 10 * 20
        self.run_lines(base + steady, end=last + 5, t_meas=30)
        self.not_fired("R-037")
        armed = [d for _, _, d in self.chk._heap
                 if getattr(d.fn, "rule", None) == "R-037" and not d.cancelled]
        self.assertLessEqual(len(armed), 1)
        self.run_lines(base + steady + [measurement(99, last + 60)], t_meas=30)
        [f] = self.fired("R-037", "info")
        self.assertEqual(f["ref"], len(base) + len(steady))


class ReceptionStatusTests(Base):
    def test_r038_r039_missing_status(self):
        lines = frbc()
        del lines[rs_of(lines, mid(B, 17))]
        self.run_lines(lines)
        self.fired("R-039", "warning", line=45)
        [f] = self.fired("R-038", "error", line=45)
        self.assertIn("end of the session", f["text"])

    def test_r038_after_t_rs_max(self):
        lines = frbc()
        del lines[rs_of(lines, mid(B, 11))]   # 10:01:00.030, the session runs 4 more minutes
        self.run_lines(lines)
        [f] = self.fired("R-038", "error", line=29)
        self.assertIn("T_rs_max", f["text"])

    def test_r038_early_close_is_warning(self):
        lines = frbc()
        del lines[rs_of(lines, mid(B, 17))]
        lines = lines[:at(lines, mid(B, 17)) + 1]
        self.run_lines(lines)
        self.fired("R-038", "warning", line=45)
        self.not_fired("R-039")

    def test_r038_session_request_is_warning(self):
        lines = frbc()[:-1]
        self.run_lines(lines, end=parse_time("2025-06-02T10:06:30Z"))
        self.fired("R-038", "warning", line=47)
        self.not_fired("R-036")

    def test_r039_late_status(self):
        lines = frbc()
        i = rs_of(lines, mid(B, 17))
        shift(lines[i], 6.0)
        lines[i], lines[i + 1] = lines[i + 1], lines[i]
        self.run_lines(lines)
        self.fired("R-039", "warning", line=45)
        [f] = self.fired("R-039", "info", line=45)       # completed with the actual delay
        self.assertIn("6.0", f["text"])
        self.not_fired("R-038")

    def test_r040_unknown_subject(self):
        lines = frbc()
        lines[rs_of(lines, mid(B, 17))]["message"]["subject_message_id"] = mid(B, 99)
        self.run_lines(lines)
        self.fired("R-040", "error", line=46)
        self.fired("R-038", "error", line=45)

    def test_r041_own_message(self):
        lines = frbc()
        i = rs_of(lines, mid(B, 17))
        lines.insert(i + 1, rs("RM", mid(B, 17), time="2025-06-02T10:05:10.015Z"))
        self.run_lines(lines)
        self.fired("R-041", "error", line=47)

    def test_r042_second_status(self):
        lines = frbc()
        i = rs_of(lines, mid(B, 17))
        lines.insert(i + 1, rs("CEM", mid(B, 17), time="2025-06-02T10:05:10.015Z"))
        self.run_lines(lines)
        self.fired("R-042", "warning", line=47)

    def _garbage(self, answer=None):
        lines = frbc()
        i = rs_of(lines, mid(B, 17))
        lines.insert(i + 1, {"time": "2025-06-02T10:05:11.000Z", "sender": "RM", "message": "not json {"})
        if answer:
            lines.insert(i + 2, rs("CEM", "00000000-0000-0000-0000-000000000000", answer,
                                   "2025-06-02T10:05:11.010Z"))
        return lines

    def test_r043_r044_unreadable(self):
        self.run_lines(self._garbage("INVALID_DATA"))
        self.not_fired("R-043", "R-044")
        self.fired("R-002", "error", line=47)
        self.run_lines(self._garbage())
        self.fired("R-044", "warning", line=47)
        self.run_lines(self._garbage("INVALID_MESSAGE"))
        self.fired("R-043", "error", line=48)
        lines = frbc()
        lines.insert(10, rs("CEM", "00000000-0000-0000-0000-000000000000", "INVALID_DATA",
                            "2025-06-02T10:00:01.030Z"))
        self.run_lines(lines)
        [f] = self.fired("R-043", "error", line=11)
        self.assertIn("no unanswered unreadable frame", f["text"])

    def test_r045_ok_for_invalid(self):
        lines = frbc()
        lines[at(lines, mid(B, 17))]["message"]["extra"] = 1
        self.run_lines(lines)
        self.fired("R-004", "error", line=45)
        self.fired("R-045", "warning", line=45)

    def test_r045_ok_for_unresolvable_reference(self):
        lines = frbc()
        lines[at(lines, mid(B, 16))]["message"]["instruction_id"] = "1f000000-0000-4000-8000-000000000099"
        self.run_lines(lines)
        self.fired("R-050", "error", line=43)
        self.fired("R-045", "warning", line=43)

    def test_r046_r047_refused_valid_message(self):
        lines = frbc()
        lines[rs_of(lines, mid(B, 17))]["message"]["status"] = "INVALID_MESSAGE"
        self.run_lines(lines)
        self.fired("R-046", "warning", line=45)
        [f] = self.fired("R-047", "warning", line=45)
        self.assertIn("INVALID_MESSAGE", f["text"])

    def test_r048_no_retransmission(self):
        lines = frbc()
        lines[rs_of(lines, mid(B, 17))]["message"]["status"] = "TEMPORARY_ERROR"
        self.run_lines(lines)
        self.fired("R-048", "info", line=45)
        lines = frbc()
        i = rs_of(lines, mid(B, 17))
        lines[i]["message"]["status"] = "TEMPORARY_ERROR"
        again = clone(lines[at(lines, mid(B, 17))]["message"])
        again["message_id"] = mid(B, 90)
        insert(lines, i, "RM", again)
        self.run_lines(lines)
        self.not_fired("R-048", "R-007")

    def test_non_ok_select_is_undone(self):
        # §4.4: a refused SelectControlType had no effect, so FRBC messages are R-029 errors.
        lines = frbc()
        lines[11]["message"]["status"] = "INVALID_CONTENT"
        self.run_lines(lines)
        self.fired("R-029", "error", line=13)


class InstructionTests(Base):
    def test_r049_reused_instruction_id(self):
        lines = frbc()
        lines[at(lines, mid(C, 5))]["message"]["id"] = "1f000000-0000-4000-8000-000000000001"
        self.run_lines(lines)
        self.fired("R-049", "error", line=37)

    def test_r049_not_for_retransmission(self):
        lines = frbc()
        i = rs_of(lines, mid(C, 5))
        lines[i]["message"]["status"] = "TEMPORARY_ERROR"
        again = clone(lines[at(lines, mid(C, 5))]["message"])
        again["message_id"] = mid(C, 90)
        insert(lines, i, "CEM", again)
        self.run_lines(lines)
        self.not_fired("R-049", "R-051", "R-048", "R-062")

    def test_r050_unknown_instruction(self):
        lines = frbc()
        lines[at(lines, mid(B, 9))]["message"]["instruction_id"] = "1f000000-0000-4000-8000-000000000099"
        self.run_lines(lines)
        self.fired("R-050", "error", line=25)

    def test_r051_update_for_refused_instruction(self):
        lines = frbc()
        lines[rs_of(lines, mid(C, 5))]["message"]["status"] = "INVALID_CONTENT"
        self.run_lines(lines)
        self.fired("R-051", "warning", line=39)
        self.not_fired("R-053")

    def test_r052_status_graph(self):
        lines = frbc()
        i = rs_of(lines, mid(B, 13))
        insert(lines, i, "RM", {"message_type": "InstructionStatusUpdate", "message_id": mid(B, 90),
                                "instruction_id": "1f000000-0000-4000-8000-000000000001",
                                "status_type": "STARTED", "timestamp": "2025-06-02T10:01:02Z"})
        self.run_lines(lines)
        [f] = self.fired("R-052", "warning", line=35)
        self.assertIn("SUCCEEDED", f["text"])
        lines = frbc()
        lines[at(lines, mid(B, 10))]["message"]["status_type"] = "NEW"    # NEW after ACCEPTED
        self.run_lines(lines)
        self.fired("R-052", "warning", line=27)

    def test_r053_unfinished_instruction(self):
        lines = frbc()
        drop(lines, mid(B, 13))
        self.run_lines(lines)
        self.fired("R-053", "warning", line=23)
        lines = frbc()
        drop(lines, mid(C, 6))
        drop(lines, mid(B, 16))
        self.run_lines(lines)        # I2 is due at 10:30, after the end: info only
        self.fired("R-053", "info", line=37)

    def test_r054_timestamp_goes_back(self):
        lines = frbc()
        lines[at(lines, mid(B, 13))]["message"]["timestamp"] = "2025-06-02T10:00:59Z"
        self.run_lines(lines)
        self.fired("R-054", "warning", line=33)

    def test_r055_revoked_without_revoke(self):
        lines = frbc()
        drop(lines, mid(C, 6))
        self.run_lines(lines)
        self.fired("R-055", "warning", line=41)

    def test_r056_r057_rm_revokes_unknown_instruction(self):
        lines = frbc()
        i = at(lines, mid(C, 6))
        lines[i]["sender"] = "RM"
        lines[i]["message"]["message_id"] = mid(B, 90)
        lines[i]["message"]["object_id"] = "1f000000-0000-4000-8000-000000000077"
        lines[i + 1] = rs("CEM", mid(B, 90), time=lines[i + 1]["time"])
        self.run_lines(lines)
        self.fired("R-056", "warning", line=41)
        self.fired("R-057", "error", line=41)

    def test_r057_already_revoked(self):
        lines = frbc()
        again = clone(lines[at(lines, mid(C, 6))]["message"])
        again["message_id"] = mid(C, 90)
        insert(lines, rs_of(lines, mid(C, 6)), "CEM", again)
        self.run_lines(lines)
        self.fired("R-057", "warning", line=43)

    def test_r058_r060_revoke_by_message_id(self):
        lines = pebc()
        i = rs_of(lines, mid(E, 4))
        insert(lines, i, "RM", {"message_type": "RevokeObject", "message_id": mid(D, 90),
                                "object_type": "PEBC.PowerConstraints", "object_id": mid(D, 3)})
        self.run_lines(lines)
        self.fired("R-058", "warning", line=19)
        self.not_fired("R-057")

    def test_r059_revoke_final_instruction(self):
        lines = frbc()
        lines[at(lines, mid(C, 6))]["message"]["object_id"] = "1f000000-0000-4000-8000-000000000001"
        self.run_lines(lines)
        self.fired("R-059", "warning", line=41)

    def test_r060_revocation_severity(self):
        # The verdict helper the control-type rules use: a reference
        # to an object whose revocation the sender had acknowledged is an error, a crossed one a
        # warning.
        seen = []

        def probe(ctx):
            entry = ctx.revocable("PEBC.PowerConstraints", ctx.obj["power_constraints_id"])
            seen.append(ctx.revocation_severity(entry))
        plugin.HANDLERS.setdefault("PEBC.Instruction", []).append((probe, "probe", False))
        self.addCleanup(plugin.HANDLERS["PEBC.Instruction"].remove, (probe, "probe", False))
        revoke = {"message_type": "RevokeObject", "message_id": mid(D, 90),
                  "object_type": "PEBC.PowerConstraints",
                  "object_id": "9c000000-0000-4000-8000-000000000001"}
        lines = pebc()
        insert(lines, rs_of(lines, mid(D, 5)), "RM", revoke)   # acknowledged before the instruction
        self.run_lines(lines, on_error=None)
        lines = pebc()
        insert(lines, rs_of(lines, mid(D, 5)), "RM", revoke, status=None)
        lines.insert(at(lines, mid(E, 4)) + 2, rs("CEM", mid(D, 90), time="2025-06-02T12:00:39.020Z"))
        self.run_lines(lines, on_error=None)            # crossed: answered after the instruction
        self.assertEqual(seen, ["error", "warning"])

    def test_r061_execution_time_in_past(self):
        lines = frbc()
        lines[at(lines, mid(C, 4))]["message"]["execution_time"] = "2025-06-02T10:00:29Z"
        self.run_lines(lines)
        self.fired("R-061", "info", line=23)

    def test_r062_same_target_same_time(self):
        lines = frbc()
        i = rs_of(lines, mid(C, 5))
        again = clone(lines[at(lines, mid(C, 5))]["message"])
        again["message_id"] = mid(C, 90)
        again["id"] = "1f000000-0000-4000-8000-000000000003"
        insert(lines, i, "CEM", again)
        self.run_lines(lines)
        self.fired("R-062", "warning", line=39)


class RobustnessTests(Base):
    def test_rule_that_raises(self):
        calls = []

        def broken(ctx):
            raise ValueError("boom")
        plugin.HANDLERS.setdefault("FRBC.StorageStatus", []).insert(0, (broken, "R-999", False))
        self.addCleanup(plugin.HANDLERS["FRBC.StorageStatus"].remove, (broken, "R-999", False))
        findings, chk = replay(frbc(), CheckerConfig(on_error=lambda r, e: calls.append((r, str(e)))))
        self.assertEqual(calls, [("R-999", "boom"), ("R-999", "boom")])
        self.assertEqual([f for f in findings if f["severity"] != "info"], [])
        self.assertEqual(chk.summary()["rule_errors"], {"R-999": 2})

    def test_strict_mode(self):
        lines = frbc()
        lines[0]["message"]["message_id"] = "not-a-uuid"
        lines[1]["message"]["subject_message_id"] = "not-a-uuid"
        from s2proxy.checker.rules import apply_strict
        f = apply_strict([{"rule": "R-006", "severity": "warning"}], True)
        self.assertEqual(f[0]["severity"], "error")
        self.assertEqual(apply_strict([{"rule": "R-006", "severity": "warning"}], False)[0]["severity"],
                         "warning")

    def test_forwarded_later(self):
        # deadlines start when the proxy forwarded the message, not at its arrival.
        v = validator()
        chk = Checker(CheckerConfig(on_error=_raise))
        lines = frbc()
        for n, line in enumerate(lines[:2], 1):
            chk.feed(line["sender"], v.analyse(json.dumps(line["message"])), 0.0, n)
        a = v.analyse(json.dumps(lines[2]["message"]))
        chk.feed("CEM", a, 1.0, 3, forwarded=False)
        self.assertEqual(chk.tick(100.0), [])
        chk.forwarded(3, 100.0)
        self.assertEqual([f["rule"] for f in chk.tick(106.0)], ["R-039"])
        self.assertEqual(chk.next_deadline(), 160.0)

    def test_memory_bounds(self):
        v = validator()
        chk = Checker(CheckerConfig(on_error=_raise, max_ids=50))
        lines = frbc()
        t = 0.0
        for n, line in enumerate(lines[:14], 1):
            chk.feed(line["sender"], v.analyse(json.dumps(line["message"])), t, n)
        for k in range(500):
            t += 1.0
            m = {"message_type": "FRBC.StorageStatus", "message_id": mid(B, 1000 + k),
                 "present_fill_level": 50.0}
            chk.feed("RM", v.analyse(json.dumps(m)), t, k)
            chk.feed("CEM", v.analyse(json.dumps(rs("CEM", m["message_id"])["message"])), t + 0.01, k)
            chk.tick(t)
        self.assertLessEqual(len(chk.ids["RM"]), 50)
        self.assertEqual(chk.open, {})
        self.assertLess(len(chk._heap), 20)

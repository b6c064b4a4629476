"""The log as one observer of the event stream: findings at warning level, traffic at debug."""

from s2proxy import logs

_log = logs.make_logger("s2proxy.traffic")


class LogSink:
    def __call__(self, event):
        kind = event["event"]
        if "raw" in event:
            for finding in event.get("format_findings") or ():
                self._finding(event, finding)
            for finding in event.get("findings") or ():
                self._finding(event, finding)
            if logs.debug_enabled:
                _log.debug("{kind} {origin} {message_type} {message_id} rm_id={rm_id} cem_id={cem_id}",
                           kind=kind, origin=event["origin"], message_type=event.get("message_type"),
                           message_id=event.get("message_id"), rm_id=event["rm_id"],
                           cem_id=event["cem_id"], session_id=event["session_id"])
            if kind == "refused":
                _log.warn("refused a {origin} message in rm_id={rm_id} cem_id={cem_id}: {reason}",
                          origin=event["origin"], rm_id=event["rm_id"], cem_id=event["cem_id"],
                          reason=event.get("reason"))
        elif kind == "finding":
            for finding in event.get("findings") or ():
                self._finding(event, finding)
        elif kind in ("opened", "closed"):
            _log.info("{kind} {origin} connection rm_id={rm_id} cem_id={cem_id} {detail}",
                      kind=kind, origin=event["origin"], rm_id=event["rm_id"], cem_id=event["cem_id"],
                      detail=("from %s" % event.get("peer")) if kind == "opened"
                      else "code=%s reason=%r by %s" % (event.get("code"), event.get("reason"),
                                                       event.get("closed_by")))
        elif kind == "discarded":
            _log.warn("discarded a kept {origin} message in rm_id={rm_id} cem_id={cem_id}: {reason}",
                      origin=event["origin"], rm_id=event["rm_id"], cem_id=event["cem_id"],
                      reason=event.get("reason"))

    @staticmethod
    def _finding(event, finding):
        _log.warn("{rule} ({severity}) in {message_type} {message_id} from {origin} "
                  "rm_id={rm_id} cem_id={cem_id}: {text}",
                  rule=finding.get("rule"), severity=finding.get("severity"),
                  path=finding.get("path"), text=finding.get("text"),
                  message_type=event.get("message_type"), message_id=event.get("message_id"),
                  origin=event.get("origin"), rm_id=event["rm_id"], cem_id=event["cem_id"],
                  session_id=event["session_id"], direction="%s->%s" % (
                      event.get("origin"), {"RM": "CEM", "CEM": "RM"}.get(event.get("origin"))))

"""One frame in, format findings out: rules R-001 to R-006 of S2-PROTOCOL.md section 6.1.

This runs on the proxy's hot path for every message, so the per-message work is one strict
json.loads, a dict lookup on message_type, the precompiled schema function, and a walk over the
ID-typed fields that the schemas name. Nothing here raises on bad input: every way a frame can be
wrong ends up as a finding. The parsed value is never modified (validators are compiled without
default-filling), and the proxy forwards the original frame, not anything produced here.
"""

import json
import re

from fastjsonschema import JsonSchemaValueException

try:
    from fastjsonschema import JsonSchemaValuesException
except ImportError:  # fastjsonschema < 2.21 stops at the first violation
    class JsonSchemaValuesException(Exception):
        errors = ()

from s2proxy.schemas import FLOAT_MAX, find_schema_dir, load_schema_set

__all__ = ["Validator", "Analysis", "json_path"]

# the whole-string reading of ID.schema.json's (unanchored) pattern.
_ID_SCHEMA_PATTERN = re.compile(r"[a-zA-Z0-9\-_:]{2,64}")
_ID_WHOLE = re.compile(r"[A-Za-z0-9_:-]{2,64}")
# RFC 9562 text form, either letter case.
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_IS_UUID = _UUID.fullmatch
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NAME_PART = re.compile(r"\.([^.\[\]]+)|\[([0-9]+)\]")
# A frame with thousands of bad items should not produce thousands of findings.
MAX_SCHEMA_FINDINGS = 20


class _NotStrictJSON(ValueError):
    """A literal that Python's json module would accept but RFC 8259 (or binary64) does not."""


def _reject_constant(name):
    raise _NotStrictJSON("{} is not a JSON value (RFC 8259 has no NaN or Infinity)".format(name))


def _clip(text, limit=40):
    return text if len(text) <= limit else text[:limit] + "...({} characters)".format(len(text))


# One decoder for every frame (json.loads would build a new one per call). No number hooks: a Python
# call per number would cost a third of the parse time of a large SystemDescription; numbers beyond
# binary64 are caught by the bounds schemas.py adds to every number instead (see _schema_finding).
_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def _text(value):
    """``value`` as text every sink can store: a lone surrogate (legal as a JSON escape, not
    encodable as UTF-8) becomes its backslash escape."""
    try:
        value.encode("utf-8")
        return value
    except UnicodeEncodeError:
        return value.encode("utf-8", "backslashreplace").decode("utf-8")


def json_path(loc):
    """``["values", 0, "value"]`` -> ``$.values[0].value`` (bracketed JSON strings for odd keys)."""
    parts = ["$"]
    for key in loc:
        if isinstance(key, int):
            parts.append("[{}]".format(key))
        elif _IDENT.fullmatch(key):
            parts.append("." + key)
        else:
            parts.append("[{}]".format(json.dumps(key)))
    return "".join(parts)


def _describe(value):
    """A short rendering of a JSON value for finding texts (never raises, never huge)."""
    if isinstance(value, dict):
        keys = list(value)[:5]
        return "an object with keys {}{}".format(
            ", ".join(json.dumps(k) for k in keys), ", ..." if len(value) > 5 else "")
    if isinstance(value, list):
        return "an array of {} item{}".format(len(value), "" if len(value) == 1 else "s")
    try:
        text = json.dumps(value)
    except (ValueError, TypeError):
        text = repr(value)
    return _clip(text, 80)


def _finding(rule, severity, loc, text):
    return {"rule": rule, "severity": severity, "path": json_path(loc), "loc": loc, "text": text}


class Analysis:
    """What the format layer knows about one frame (see docs/INTERFACES.md)."""

    __slots__ = ("text", "obj", "message_type", "message_id", "findings", "valid", "schema_valid",
                 "binary")

    def __init__(self, text, binary):
        self.text = text
        self.binary = binary
        self.obj = None
        self.message_type = None
        self.message_id = None
        self.findings = []
        self.valid = True
        self.schema_valid = False

    def __repr__(self):
        return "<Analysis {} valid={} findings={}>".format(
            self.message_type, self.valid, [f["rule"] for f in self.findings])


class Validator:
    """Format validation against one schema folder.

    ``strict`` escalates R-006 (ids that are not UUIDs) to an error, as the catalogue allows: peers
    built on s2-python or s2-rust reject such messages.
    """

    def __init__(self, schema_dir=None, strict=False):
        self.schema_set = load_schema_set(find_schema_dir(schema_dir))
        self.schema_dir = self.schema_set.directory
        self.message_types = list(self.schema_set.message_types)
        self.strict = strict
        self._validators = self.schema_set.validators
        self._walkers = self.schema_set.id_walkers
        self._r006_severity = "error" if strict else "warning"

    def analyse(self, payload, binary=False):
        """Analyse one frame (bytes as received, or str). Never raises on bad input."""
        findings = []
        if isinstance(payload, str):
            text = payload
        else:
            raw = bytes(payload)
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                text = raw.decode("utf-8", "replace")
                a = Analysis(text, binary)
                if binary:
                    findings.append(self._binary_finding())
                findings.append(_finding("R-002", "error", [], "payload is not valid UTF-8: byte 0x{:02x} at "
                                         "offset {} ({})".format(raw[e.start], e.start, e.reason)))
                return self._done(a, findings)
        a = Analysis(text, binary)
        if binary:
            findings.append(self._binary_finding())

        try:
            obj = _DECODER.decode(text)
        except _NotStrictJSON as e:
            findings.append(_finding("R-002", "error", [], "not strict JSON: {}".format(e)))
            return self._done(a, findings)
        except json.JSONDecodeError as e:
            findings.append(_finding("R-002", "error", [], "not JSON: {} (line {} column {})".format(
                e.msg, e.lineno, e.colno)))
            return self._done(a, findings)
        except RecursionError:
            findings.append(_finding("R-002", "error", [], "not readable as JSON: nested too deeply for "
                                     "the parser ({} characters)".format(len(text))))
            return self._done(a, findings)
        except ValueError as e:  # an integer literal beyond Python's digit limit (thousands of digits)
            findings.append(_finding("R-002", "error", [], "not readable as JSON: a number is out of the range "
                                     "of an IEEE 754 double ({})".format(_clip(str(e), 120))))
            return self._done(a, findings)
        a.obj = obj

        if not isinstance(obj, dict):
            findings.append(_finding("R-001", "error", [], "the frame holds {}, not a JSON object".format(
                _kind(obj))))
            return self._done(a, findings)

        message_id = obj.get("message_id")
        if isinstance(message_id, str):
            a.message_id = _text(message_id)
        message_type = obj.get("message_type")
        if message_type is None and "message_type" not in obj:
            findings.append(_finding("R-003", "error", [], "message_type is missing"))
            return self._done(a, findings)
        if not isinstance(message_type, str):
            findings.append(_finding("R-003", "error", ["message_type"], "message_type is {}, not a "
                                     "string".format(_describe(message_type))))
            return self._done(a, findings)
        a.message_type = _text(message_type)
        validate = self._validators.get(message_type)
        if validate is None:
            findings.append(_finding("R-003", "error", ["message_type"], "unknown message_type {} (not one "
                                     "of the {} types of the schema set)".format(
                                         _describe(message_type), len(self._validators))))
            return self._done(a, findings)

        try:
            validate(obj)
            a.schema_valid = True
        except JsonSchemaValuesException as e:
            errors = e.errors
            for error in errors[:MAX_SCHEMA_FINDINGS]:
                findings.append(self._schema_finding(error))
            if len(errors) > MAX_SCHEMA_FINDINGS:
                findings.append(_finding("R-004", "error", [], "{} more schema errors not listed".format(
                    len(errors) - MAX_SCHEMA_FINDINGS)))
        except JsonSchemaValueException as e:
            findings.append(self._schema_finding(e))
        except RecursionError:
            findings.append(_finding("R-004", "error", [], "nested too deeply to validate"))

        self._walkers[message_type](obj, lambda loc, value: self._check_id(loc, value, findings), _IS_UUID)
        return self._done(a, findings)

    # --- helpers -----------------------------------------------------------------------------

    @staticmethod
    def _done(a, findings):
        a.findings = findings
        for f in findings:
            if f["severity"] == "error":
                a.valid = False
                break
        return a

    @staticmethod
    def _binary_finding():
        return _finding("R-001", "warning", [], "binary frame: S2 messages are sent as text frames "
                        "(payload analysed as UTF-8 text)")

    @staticmethod
    def _schema_finding(e):
        loc = []
        name = e.name or "data"
        for m in _NAME_PART.finditer(name, 4):
            loc.append(m.group(1) if m.group(1) is not None else int(m.group(2)))
        path = json_path(loc)
        value = e.value
        if (e.rule in ("maximum", "minimum") and isinstance(value, (int, float)) and not isinstance(value, bool)
                and not -FLOAT_MAX <= value <= FLOAT_MAX):
            # Only the bounds schemas.py adds can be violated like this (the S2 schemas have no
            # maximum, and only Duration's minimum 0): the literal was beyond binary64.
            return {"rule": "R-002", "severity": "error", "path": path, "loc": loc,
                    "text": "{} number {} is out of the range of an IEEE 754 double (RFC 8259 section 6; "
                            "peers read it as Infinity or reject it)".format(path, _describe(value))}
        message = e.message
        if message.startswith(name):
            message = message[len(name):].lstrip()
        if len(message) > 160:  # e.g. "must be one of [...]" with the 100 Currency codes
            message = message[:150] + " ...]"
        text = "{} {}".format(path, message)
        if e.rule not in ("required", "additionalProperties"):
            text += " (got {})".format(_describe(e.value))
        return {"rule": "R-004", "severity": "error", "path": path, "loc": loc, "text": text}

    def _check_id(self, loc, value, findings):
        """R-005 and R-006 for one ID value that is not a UUID (the walker skips UUIDs)."""
        loc = list(loc)
        path = json_path(loc)
        if _ID_SCHEMA_PATTERN.search(value) and not _ID_WHOLE.fullmatch(value):
            findings.append(_finding("R-005", "warning", loc, "{} {} passes the unanchored ID pattern but "
                                     "is not 2-64 characters of [A-Za-z0-9_:-] as a whole".format(
                                         path, _describe(value))))
        findings.append(_finding("R-006", self._r006_severity, loc, "{} {} is not a UUID (8-4-4-4-12 "
                                 "hexadecimal digits)".format(path, _describe(value))))


def _kind(value):
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string ({})".format(_describe(value))
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean ({})".format(_describe(value))
    return "a number ({})".format(_describe(value))

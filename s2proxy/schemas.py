"""Finding the S2 JSON schema set and compiling it, once per process, into one validator per message type.

The schema set is the ``s2-json-schema`` folder of an s2-ws-json checkout: ``messages/*.schema.json``
(one per message type) and ``schemas/*.schema.json`` (components). Every file carries an absolute
``$id`` under raw.githubusercontent.com and refers to the others with relative ``$ref``s; all of them
are resolved from the local files, never fetched (a proxy must not depend on GitHub being reachable,
and a schema set must not be able to make it send requests).

Compiling is the expensive part (fastjsonschema generates Python source and the interpreter compiles
it), so it happens once per folder per process: every Validator over the same folder shares one
:class:`SchemaSet`.
"""

import json
import os
import re
import threading
import time
from urllib.parse import urldefrag, urljoin

import fastjsonschema

# The flag named in every error message; tap.py and the CLIs both accept it.
SCHEMA_FLAG = "--schemas"

# fastjsonschema >= 2.21 can report every violation instead of only the first (fast_fail=False);
# older releases (setup.cfg allows >= 2.18) still work, with one R-004 finding per message.
_COLLECT_ALL = {"fast_fail": False} if hasattr(fastjsonschema, "JsonSchemaValuesException") else {}

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


class SchemaDirError(Exception):
    """No usable schema folder. The text names the flag that fixes it (--schemas DIR)."""


# --- finding the folder ---------------------------------------------------------------------------


def _candidates():
    # Installed: setup.py copies messages/ and schemas/ into the package at build time.
    yield os.path.join(_PACKAGE_DIR, "_schemas")
    # Development: the s2-ws-json submodule next to the package in a checkout.
    yield os.path.join(os.path.dirname(_PACKAGE_DIR), "s2-ws-json", "s2-json-schema")


def _message_files(directory):
    try:
        names = os.listdir(os.path.join(directory, "messages"))
    except OSError:
        return []
    return sorted(n for n in names if n.endswith(".schema.json"))


def _usable(directory):
    return bool(_message_files(directory)) and os.path.isdir(os.path.join(directory, "schemas"))


def find_schema_dir(explicit=None):
    """Return the absolute path of the schema folder (the one holding messages/ and schemas/).

    ``explicit`` (the --schemas flag) wins and is never silently replaced by another folder; it may
    also name the root of an s2-ws-json checkout. Without it: the package data, then the checkout.
    """
    if explicit:
        directory = os.path.abspath(os.path.expanduser(explicit))
        if not os.path.isdir(directory):
            raise SchemaDirError(
                "{} {}: no such directory (expected the s2-json-schema folder of an s2-ws-json "
                "checkout, holding messages/ and schemas/)".format(SCHEMA_FLAG, explicit))
        if _usable(directory):
            return directory
        nested = os.path.join(directory, "s2-json-schema")
        if _usable(nested):
            return nested
        raise SchemaDirError(
            "{} {}: no S2 JSON schemas there (expected messages/*.schema.json and schemas/; point "
            "{} at the s2-json-schema folder of an s2-ws-json checkout)".format(
                SCHEMA_FLAG, explicit, SCHEMA_FLAG))
    tried = []
    for directory in _candidates():
        if _usable(directory):
            return directory
        tried.append(directory)
    raise SchemaDirError(
        "no S2 JSON schemas found (looked in {}); pass {} DIR pointing at the s2-json-schema folder "
        "of an s2-ws-json checkout, or run `make submodule` in the checkout".format(
            " and ".join(tried), SCHEMA_FLAG))


# --- date-time ------------------------------------------------------------------------------------

# RFC 3339 section 5.6 exactly (S2-PROTOCOL.md 1.7): [0-9] rather than \d (which takes any Unicode
# digit), fullmatch rather than $ (which also matches before a trailing newline).
_DATE_TIME = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.[0-9]+)?"
    r"(?:[Zz]|([+-])([0-9]{2}):([0-9]{2}))")
_DAYS = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def is_rfc3339_date_time(value):
    """True when ``value`` is an RFC 3339 date-time (format assertion for ``format: date-time``)."""
    if not isinstance(value, str):
        return True  # formats only constrain strings; "type" catches the rest
    m = _DATE_TIME.fullmatch(value)
    if m is None:
        return False
    year, month, day, hour, minute, second = (int(g) for g in m.group(1, 2, 3, 4, 5, 6))
    if not 1 <= month <= 12 or day < 1:
        return False
    leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    if day > (29 if month == 2 and leap else _DAYS[month - 1]):
        return False
    if hour > 23 or minute > 59 or second > 60:
        return False
    sign = m.group(7)
    if sign is not None:
        off_h, off_m = int(m.group(8)), int(m.group(9))
        if off_h > 23 or off_m > 59:
            return False
    if second == 60:
        # A leap second is inserted at the end of a UTC day: local time must be 23:59 UTC.
        minutes = hour * 60 + minute
        if sign is not None:
            offset = off_h * 60 + off_m
            minutes = (minutes - offset if sign == "+" else minutes + offset) % 1440
        if minutes != 23 * 60 + 59:
            return False
    return True


FORMATS = {"date-time": is_rfc3339_date_time}


# --- loading and compiling ------------------------------------------------------------------------


class SchemaSet:
    """The compiled schema set of one folder (shared by every Validator over that folder).

    ``validators[message_type](obj)`` raises fastjsonschema.JsonSchemaValuesException holding every
    violation (fast_fail=False; JsonSchemaValueException for the first one on fastjsonschema < 2.21)
    and never modifies ``obj`` (compiled with use_default=False).
    ``id_plans[message_type]`` is the tree of the ID-typed fields (see :func:`_id_plan`), and
    ``id_walkers[message_type]`` the same compiled into a function (see :func:`_id_walker`).
    """

    def __init__(self, directory, validators, id_plans, id_walkers, compile_seconds, files):
        self.directory = directory
        self.validators = validators
        self.id_plans = id_plans
        self.id_walkers = id_walkers
        self.message_types = sorted(validators)
        self.compile_seconds = compile_seconds
        self.files = files


def _load_json(path):
    try:
        with open(path, "rb") as f:
            return json.loads(f.read().decode("utf-8"))
    except (OSError, ValueError) as e:
        raise SchemaDirError("cannot read schema file {}: {} (check {} DIR)".format(path, e, SCHEMA_FLAG))


def _load(directory):
    """All schema files of the folder: ({$id: schema}, {message_type: message schema})."""
    store, messages = {}, {}
    count = 0
    for sub in ("messages", "schemas"):
        folder = os.path.join(directory, sub)
        for name in sorted(os.listdir(folder)):
            if not name.endswith(".json"):
                continue
            path = os.path.join(folder, name)
            schema = _load_json(path)
            count += 1
            if not isinstance(schema, dict) or not isinstance(schema.get("$id"), str):
                raise SchemaDirError("schema file {} has no $id (check {} DIR)".format(path, SCHEMA_FLAG))
            store[urldefrag(schema["$id"])[0]] = schema
            if sub == "messages":
                const = schema.get("properties", {}).get("message_type", {}).get("const")
                if not isinstance(const, str):
                    raise SchemaDirError(
                        "message schema {} has no properties.message_type.const (check {} DIR)".format(
                            path, SCHEMA_FLAG))
                messages[const] = schema
    return store, messages, count


def _local_handler(store):
    def resolve(uri):
        try:
            return store[urldefrag(uri)[0]]
        except KeyError:
            # Refusing is the point: a $ref outside the folder would otherwise be downloaded.
            raise SchemaDirError(
                "unresolvable $ref {}: not among the schema files (check {} DIR)".format(uri, SCHEMA_FLAG))
    return resolve


_ANNOTATIONS = ("description", "title", "$comment", "examples")


def _inline(node, base, store, seen=()):
    """A copy of ``node`` with every $ref replaced by (a copy of) its target, annotations dropped.

    Inlined schemas compile to straight-line code: fastjsonschema otherwise emits one function per
    referenced file and, for array items, formats an error name on every call, which made a
    50-mode FRBC.SystemDescription three times slower to validate.
    """
    if isinstance(node, list):
        return [_inline(v, base, store, seen) for v in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if isinstance(ref, str):
        target = urldefrag(urljoin(base, ref))[0]
        if target not in store:
            raise SchemaDirError("unresolvable $ref {} in {} (check {} DIR)".format(ref, base, SCHEMA_FLAG))
        if target in seen:
            raise _RecursiveSchema(target)
        merged = _inline(store[target], target, store, seen + (target,))
        for key, value in node.items():
            if key != "$ref" and key not in _ANNOTATIONS:
                merged[key] = _inline(value, base, store, seen)
        return merged
    return {k: _inline(v, base, store, seen) for k, v in node.items()
            if k not in _ANNOTATIONS and k not in ("$id", "$schema")}


class _RecursiveSchema(Exception):
    """A schema refers to itself: cannot be inlined (not the case in S2 0.0.2-beta)."""


# JSON numbers beyond IEEE 754 binary64 (RFC 8259 section 6) parse in Python as inf or as huge ints,
# and both pass "type": "number". Bounding every number in the compiled schemas catches them at the
# cost of one comparison, instead of a Python hook per number in json.loads; validation.py reports
# such a violation as R-002 (not strictly readable JSON), not as a schema error.
FLOAT_MAX = 1.7976931348623157e308


def _bound_numbers(node):
    if isinstance(node, list):
        for item in node:
            _bound_numbers(item)
    elif isinstance(node, dict):
        if node.get("type") in ("number", "integer"):
            node.setdefault("maximum", FLOAT_MAX)
            node.setdefault("minimum", -FLOAT_MAX)
        for value in node.values():
            _bound_numbers(value)
    return node


def _prepared(schema, store):
    """The message schema as compiled: refs inlined, annotations dropped, numbers bounded."""
    definition = _bound_numbers(_inline(schema, schema["$id"], store))
    definition["$schema"] = schema.get("$schema", "https://json-schema.org/draft/2020-12/schema")
    return definition


def _compile_inlined(messages, store):
    """Compile each prepared message schema with fastjsonschema's code generator.

    fastjsonschema's exception details embed the sub-schema into the source at every raise; we do
    not use them, and dropping them halves the source the interpreter has to compile. The subclass
    hook is a fastjsonschema internal, so any surprise makes the caller fall back to the public
    compile() (same results, slower to compile).
    """
    from fastjsonschema.draft2019 import CodeGeneratorDraft2019
    from fastjsonschema.ref_resolver import RefResolver

    class _LeanGenerator(CodeGeneratorDraft2019):
        def _expand_refs(self, definition):
            return None

    validators = {}
    for message_type, schema in messages.items():
        definition = _prepared(schema, store)
        resolver = RefResolver.from_schema(definition, handlers={}, store={})
        generator = _LeanGenerator(definition, resolver=resolver, formats=FORMATS, use_default=False,
                                   use_formats=True, detailed_exceptions=True, **_COLLECT_ALL)
        namespace = generator.global_state
        exec(compile(generator.func_code, "<schema {}>".format(message_type), "exec"), namespace)
        validators[message_type] = _bind_formats(namespace[resolver.get_scope_name()])
    return validators


def _bind_formats(fn):
    def validate(obj, _fn=fn, _formats=FORMATS):
        return _fn(obj, _formats)
    return validate


def _compile_each(messages, store):
    """The public road: fastjsonschema.compile() per message type (refs resolved locally if needed)."""
    handler = _local_handler(store)
    validators = {}
    for message_type, schema in messages.items():
        try:
            definition = _prepared(schema, store)
        except _RecursiveSchema:
            definition = schema
        validators[message_type] = fastjsonschema.compile(
            definition, handlers={"https": handler, "http": handler}, formats=FORMATS, use_default=False,
            **_COLLECT_ALL)
    return validators


def _id_plan(schema, base, store, depth=0):
    """Tree of the places that hold an ID (a $ref to ID.schema.json) below ``schema``.

    A plan is a dict: property name -> sub-plan, ``None`` -> the plan of every array item; a sub-plan
    ``True`` marks an ID value. Returns None when nothing below holds an ID.
    """
    if depth > 32 or not isinstance(schema, dict):
        return None
    if isinstance(schema.get("$id"), str):
        base = urljoin(base, schema["$id"])
    ref = schema.get("$ref")
    if isinstance(ref, str):
        target = urldefrag(urljoin(base, ref))[0]
        if target.rsplit("/", 1)[-1] == "ID.schema.json":
            return True
        if target in store:
            return _id_plan(store[target], target, store, depth + 1)
        return None
    plan = {}
    for key, sub in (schema.get("properties") or {}).items():
        p = _id_plan(sub, base, store, depth + 1)
        if p is not None:
            plan[key] = p
    items = _id_plan(schema.get("items"), base, store, depth + 1)
    if items is not None:
        plan[None] = items
    return plan or None


def _id_walker(plan, message_type):
    """Compile an ID plan into a function ``walk(obj, bad, is_uuid)``.

    It calls ``bad(loc, value)`` for every string at an ID place that ``is_uuid`` rejects. Generated
    straight-line loops are several times faster than interpreting the plan for every message.
    """
    lines = ["def walk(o, bad, is_uuid):", "    pass"]
    counter = [0]

    def emit(sub, var, loc, indent):
        pad = "    " * indent
        if sub is True:
            lines.append("{}if {}.__class__ is str and not is_uuid({}): bad(({}), {})".format(
                pad, var, var, "".join(part + ", " for part in loc), var))
            return
        keys = [k for k in sub if k is not None]
        if keys:
            lines.append("{}if {}.__class__ is dict:".format(pad, var))
            for key in keys:
                counter[0] += 1
                value = "v{}".format(counter[0])
                lines.append("{}    {} = {}.get({!r})".format(pad, value, var, key))
                emit(sub[key], value, loc + [repr(key)], indent + 1)
        if None in sub:
            counter[0] += 1
            index, item = "i{}".format(counter[0]), "x{}".format(counter[0])
            lines.append("{}if {}.__class__ is list:".format(pad, var))
            lines.append("{}    for {}, {} in enumerate({}):".format(pad, index, item, var))
            emit(sub[None], item, loc + [index], indent + 2)

    if plan:
        emit(plan, "o", [], 1)
    namespace = {}
    exec(compile("\n".join(lines), "<ids {}>".format(message_type), "exec"), namespace)
    return namespace["walk"]


_cache = {}
_cache_lock = threading.Lock()


def load_schema_set(directory):
    """The compiled :class:`SchemaSet` of ``directory`` (compiled on first use, then cached)."""
    key = os.path.realpath(directory)
    with _cache_lock:
        cached = _cache.get(key)
        if cached is not None:
            return cached
        started = time.perf_counter()
        store, messages, count = _load(key)
        if not messages:
            raise SchemaDirError("{}: no message schemas (check {} DIR)".format(directory, SCHEMA_FLAG))
        try:
            validators = _compile_inlined(messages, store)
        except SchemaDirError:
            raise
        except Exception:  # an internals change in fastjsonschema (or a recursive schema): public road
            validators = _compile_each(messages, store)
        plans = {mt: _id_plan(s, s["$id"], store) or {} for mt, s in messages.items()}
        walkers = {mt: _id_walker(plan, mt) for mt, plan in plans.items()}
        result = SchemaSet(key, validators, plans, walkers, time.perf_counter() - started, count)
        _cache[key] = result
        return result

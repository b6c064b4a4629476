"""Tests of s2proxy.schemas: finding the schema folder, compiling it once, the date-time grammar."""

import json
import os
import shutil

from twisted.trial.unittest import SynchronousTestCase

from s2proxy import schemas
from s2proxy.schemas import (SchemaDirError, find_schema_dir, is_rfc3339_date_time,
                             load_schema_set)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(REPO, "tests", "fixtures", "messages")


def fixture_types():
    return sorted(name[:-len(".json")] for name in os.listdir(FIXTURES) if name.endswith(".json"))


class FindSchemaDirTests(SynchronousTestCase):
    def test_default_finds_a_complete_set(self):
        directory = find_schema_dir()
        self.assertTrue(os.path.isfile(os.path.join(directory, "messages", "Handshake.schema.json")))
        self.assertTrue(os.path.isdir(os.path.join(directory, "schemas")))

    def test_explicit_dir_wins(self):
        directory = find_schema_dir()
        copy = os.path.join(self.mktemp(), "s2-json-schema")
        shutil.copytree(directory, copy)
        self.assertEqual(find_schema_dir(copy), os.path.abspath(copy))
        # The root of an s2-ws-json checkout is accepted too.
        self.assertEqual(find_schema_dir(os.path.dirname(copy)), os.path.abspath(copy))

    def test_missing_dir_names_the_flag(self):
        with self.assertRaises(SchemaDirError) as caught:
            find_schema_dir(os.path.join(self.mktemp(), "nowhere"))
        self.assertIn("--schemas", str(caught.exception))
        self.assertIn("no such directory", str(caught.exception))

    def test_empty_dir_names_the_flag(self):
        empty = self.mktemp()
        os.makedirs(os.path.join(empty, "messages"))
        os.makedirs(os.path.join(empty, "schemas"))
        with self.assertRaises(SchemaDirError) as caught:
            find_schema_dir(empty)
        self.assertIn("--schemas", str(caught.exception))

    def test_nothing_found_names_the_flag(self):
        self.patch(schemas, "_candidates", lambda: iter([os.path.join(self.mktemp(), "x")]))
        with self.assertRaises(SchemaDirError) as caught:
            find_schema_dir()
        self.assertIn("--schemas DIR", str(caught.exception))


class CompileTests(SynchronousTestCase):
    def test_one_validator_per_message_type(self):
        schema_set = load_schema_set(find_schema_dir())
        self.assertEqual(len(schema_set.message_types), 35)
        self.assertEqual(schema_set.files, 76)
        self.assertEqual(schema_set.message_types, fixture_types())

    def test_compiled_once_per_folder(self):
        directory = find_schema_dir()
        self.assertIs(load_schema_set(directory), load_schema_set(directory + os.sep))

    def test_refs_are_never_fetched(self):
        # A $ref that is not among the local files must fail, not be downloaded.
        copy = os.path.join(self.mktemp(), "s2-json-schema")
        shutil.copytree(find_schema_dir(), copy)
        path = os.path.join(copy, "messages", "SessionRequest.schema.json")
        with open(path) as f:
            schema = json.load(f)
        schema["properties"]["request"]["$ref"] = "https://example.invalid/Nothing.schema.json"
        with open(path, "w") as f:
            json.dump(schema, f)
        with self.assertRaises(SchemaDirError) as caught:
            load_schema_set(copy)
        self.assertIn("unresolvable $ref", str(caught.exception))

    def test_broken_schema_file_is_a_schema_dir_error(self):
        copy = os.path.join(self.mktemp(), "s2-json-schema")
        shutil.copytree(find_schema_dir(), copy)
        with open(os.path.join(copy, "schemas", "ID.schema.json"), "w") as f:
            f.write("{not json")
        with self.assertRaises(SchemaDirError) as caught:
            load_schema_set(copy)
        self.assertIn("ID.schema.json", str(caught.exception))

    def test_public_compile_fallback_agrees(self):
        # The fast path uses fastjsonschema internals; the fallback must judge alike.
        directory = find_schema_dir()
        store, messages, _ = schemas._load(directory)
        fallback = schemas._compile_each(messages, store)
        fast = load_schema_set(directory).validators
        for message_type in fixture_types():
            with open(os.path.join(FIXTURES, message_type + ".json")) as f:
                examples = json.load(f)
            for message in examples["valid"]:
                fast[message_type](message)
                fallback[message_type](message)
            for case in examples["invalid"]:
                for validate in (fast[message_type], fallback[message_type]):
                    self.assertRaises(Exception, validate, case["message"])

    def test_id_plan_follows_refs_and_arrays(self):
        plans = load_schema_set(find_schema_dir()).id_plans
        transition = plans["FRBC.SystemDescription"]["actuators"][None]["transitions"][None]
        self.assertEqual(transition["from"], True)
        self.assertEqual(transition["start_timers"], {None: True})
        self.assertEqual(plans["ReceptionStatus"], {"subject_message_id": True})
        self.assertNotIn("message_type", plans["Handshake"])


class DateTimeTests(SynchronousTestCase):
    VALID = [
        "2025-06-02T10:00:00Z",
        "2025-06-02t10:00:00z",
        "2025-06-02T10:00:00.123456789012+02:00",
        "2025-06-02T10:00:00-00:00",
        "2024-02-29T00:00:00Z",
        "2000-02-29T23:59:59+23:59",
        "1998-12-31T23:59:60Z",
        "1998-12-31T15:59:60.123-08:00",
        "1999-01-01T00:59:60+01:00",
    ]
    INVALID = [
        "2025-06-02T10:00:00+0100",        # colon required in the offset
        "2025-06-02 10:00:00Z",            # space instead of T
        "2025-06-02T10:00:00",             # offset required
        "2025-06-02T10:00Z",               # seconds required
        "2025-06-02",
        "2023-02-29T00:00:00Z",
        "1900-02-29T00:00:00Z",
        "2025-13-01T00:00:00Z",
        "2025-00-01T00:00:00Z",
        "2025-04-31T00:00:00Z",
        "2025-06-00T00:00:00Z",
        "2025-06-02T24:00:00Z",
        "2025-06-02T10:60:00Z",
        "2025-06-02T10:00:61Z",
        "1998-12-31T23:58:60Z",            # leap second on the wrong minute
        "1998-12-31T22:59:60Z",            # ... and the wrong hour
        "2025-06-02T10:00:00+24:00",
        "2025-06-02T10:00:00+01:60",
        "2025-06-02T10:00:00.Z",           # empty fraction
        "2025-06-02T10:00:00Z\n",          # trailing newline ($ would accept it)
        "\uff12025-06-02T10:00:00Z",       # a non-ASCII digit (\d would accept it)
        "25-06-02T10:00:00Z",
        "",
    ]

    def test_valid(self):
        for value in self.VALID:
            self.assertTrue(is_rfc3339_date_time(value), value)

    def test_invalid(self):
        for value in self.INVALID:
            self.assertFalse(is_rfc3339_date_time(value), repr(value))

    def test_non_strings_are_left_to_type(self):
        self.assertTrue(is_rfc3339_date_time(12))

"""Device authentication: bearer tokens checked at the WebSocket handshake of inbound devices."""

import json
import os

from twisted.internet import defer
from twisted.logger import formatEvent, globalLogPublisher
from twisted.trial import unittest

from s2proxy.auth import DeviceTokens, TokenFileError, digest
from tests.common import connect_device, device_url, start_proxy

RM_TOKEN = "rm-token-0123456789abcdef"
CEM_TOKEN = "cem-token-0123456789abcdef"
HASHED_TOKEN = "hashed-token-0123456789abcdef"
ANY_TOKEN = "gateway-token-0123456789abcdef"


def bearer(token):
    return {"Authorization": "Bearer " + token}


class DeviceTokenTests(unittest.TestCase):

    def setUp(self):
        path = os.path.abspath(self.mktemp())
        with open(path, "w") as f:
            json.dump({"tokens": [
                {"token": RM_TOKEN, "role": "RM", "ids": ["rm1"]},
                {"token": CEM_TOKEN, "role": "CEM", "ids": ["cem1"], "peers": ["rm1", "rm2"]},
                {"sha256": digest(HASHED_TOKEN), "role": "RM", "ids": ["rm2"]},
                {"sha256": digest(ANY_TOKEN).upper(), "role": "any", "ids": ["*"]},
            ]}, f)
        self.logged = []
        globalLogPublisher.addObserver(self.logged.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.logged.append)
        self.proxy = start_proxy(self, device_tokens=path, auto_ping_interval=0, store=False)
        self.events = []
        self.proxy.hub.subscribe(self.events.append)

    def url(self, role, rm_id="rm1", cem_id="cem1"):
        return device_url(self.proxy, role, rm_id, cem_id)

    @defer.inlineCallbacks
    def refused(self, url, headers=None):
        try:
            yield connect_device(self, url, headers=headers)
        except ConnectionError as e:
            return str(e)
        self.fail("the connection was accepted")

    def refusals(self):
        return [e for e in self.events if e["event"] == "connection_refused"]

    def assertNoTokenAnywhere(self):
        logged = "\n".join(formatEvent(e) + repr(e) for e in self.logged)
        recorded = json.dumps(self.events, default=str)
        for token in (RM_TOKEN, CEM_TOKEN, HASHED_TOKEN, ANY_TOKEN, "not-a-known-token-123456"):
            self.assertNotIn(token, logged)
            self.assertNotIn(token, recorded)

    @defer.inlineCallbacks
    def test_token_accepted(self):
        rm = yield connect_device(self, self.url("RM"), headers=bearer(RM_TOKEN))
        cem = yield connect_device(self, self.url("CEM"), headers=bearer(CEM_TOKEN))
        rm.send('{"message_type": "Handshake"}')
        yield cem.wait_for(1)
        self.assertEqual(self.refusals(), [])
        self.assertNoTokenAnywhere()

    @defer.inlineCallbacks
    def test_hashed_and_any_role_tokens_accepted(self):
        yield connect_device(self, self.url("RM", rm_id="rm2"), headers=bearer(HASHED_TOKEN))
        yield connect_device(self, self.url("CEM", cem_id="cem9"), headers=bearer(ANY_TOKEN))
        yield connect_device(self, self.url("RM", rm_id="rm9"),
                             headers={"Authorization": "bearer  " + ANY_TOKEN})
        self.assertEqual(self.refusals(), [])

    @defer.inlineCallbacks
    def test_missing_token_refused_with_401(self):
        reason = yield self.refused(self.url("RM"))
        self.assertIn("401", reason)
        [event] = self.refusals()
        self.assertEqual((event["status"], event["origin"], event["rm_id"], event["cem_id"]),
                         (401, "RM", "rm1", "cem1"))
        self.assertIn("missing", event["reason"])
        self.assertEqual([e for e in self.events if e["event"] == "opened"], [])

    @defer.inlineCallbacks
    def test_other_scheme_refused_with_401(self):
        reason = yield self.refused(self.url("RM"), headers={"Authorization": "Basic " + RM_TOKEN})
        self.assertIn("401", reason)

    @defer.inlineCallbacks
    def test_unknown_token_refused_with_401(self):
        reason = yield self.refused(self.url("RM"), headers=bearer("not-a-known-token-123456"))
        self.assertIn("401", reason)
        self.assertEqual(self.refusals()[0]["reason"], "unknown bearer token")
        self.assertNoTokenAnywhere()

    @defer.inlineCallbacks
    def test_wrong_id_refused_with_403(self):
        reason = yield self.refused(self.url("RM", rm_id="rm2"), headers=bearer(RM_TOKEN))
        self.assertIn("403", reason)
        [event] = self.refusals()
        self.assertEqual(event["status"], 403)
        self.assertIn("rm2", event["reason"])
        self.assertNoTokenAnywhere()

    @defer.inlineCallbacks
    def test_wrong_role_refused_with_403(self):
        # The RM's token used by something connecting as the CEM of the same pair.
        reason = yield self.refused(self.url("CEM"), headers=bearer(RM_TOKEN))
        self.assertIn("403", reason)
        self.assertIn("for a RM, not a CEM", self.refusals()[0]["reason"])

    @defer.inlineCallbacks
    def test_wrong_peer_refused_with_403(self):
        reason = yield self.refused(self.url("CEM", rm_id="rm3"), headers=bearer(CEM_TOKEN))
        self.assertIn("403", reason)
        self.assertIn("pair", self.refusals()[0]["reason"])


class TokenFileTests(unittest.TestCase):

    def write(self, content):
        path = self.mktemp()
        with open(path, "w") as f:
            f.write(content if isinstance(content, str) else json.dumps(content))
        return path

    def test_bad_files(self):
        for content in ("{not json", {"tokens": {}}, {"tokens": ["x"]},
                        {"tokens": [{"token": "short", "ids": ["a"]}]},
                        {"tokens": [{"token": RM_TOKEN, "sha256": "0" * 64, "ids": ["a"]}]},
                        {"tokens": [{"sha256": "0" * 63, "ids": ["a"]}]},
                        {"tokens": [{"token": RM_TOKEN, "role": "cem", "ids": ["a"]}]},
                        {"tokens": [{"token": RM_TOKEN, "ids": []}]},
                        {"tokens": [{"token": RM_TOKEN, "ids": ["a"], "colour": "red"}]}):
            e = self.assertRaises(TokenFileError, DeviceTokens.load, self.write(content))
            # The file's tokens never appear in the error.
            self.assertNotIn(RM_TOKEN, str(e))

    def test_missing_file(self):
        e = self.assertRaises(TokenFileError, DeviceTokens.load, "/nonexistent/tokens.json")
        self.assertIn("--device-tokens", str(e))

    def test_check(self):
        tokens = DeviceTokens.parse({"tokens": [{"token": RM_TOKEN, "role": "RM", "ids": ["rm1"]}]})
        self.assertIsNone(tokens.check(RM_TOKEN, "RM", "rm1", "cem1"))
        self.assertEqual(tokens.check(None, "RM", "rm1", "cem1")[0], 401)
        self.assertEqual(tokens.check(RM_TOKEN + "x", "RM", "rm1", "cem1")[0], 401)
        self.assertEqual(tokens.check(RM_TOKEN, "RM", "rm2", "cem1")[0], 403)
        self.assertEqual(tokens.check(RM_TOKEN, "CEM", "rm1", "rm1")[0], 403)

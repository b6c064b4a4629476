"""The registry on its own: plain Python sides, a Clock, no sockets and no reactor."""

from twisted.internet.task import Clock
from twisted.trial import unittest

from s2proxy.events import Hub
from s2proxy.registry import NoLiveConnection, Registry


class Gate:
    def __init__(self):
        self.holders = set()

    def pause(self, holder):
        self.holders.add(holder)

    def resume(self, holder):
        self.holders.discard(holder)


class MemorySide:
    """A side that records what the registry asks of it (the registry's whole interface)."""

    direction = "inbound"
    tls = False

    def __init__(self, role, rm_id="rm", cem_id="cem"):
        self.role, self.rm_id, self.cem_id = role, rm_id, cem_id
        self.peer = "tcp:127.0.0.1:1"
        self.conversation = None
        self.sent = []
        self.closed = None
        self.partner = None
        self.gate = Gate()

    def send_frame(self, payload, binary):
        self.sent.append((payload, binary))

    def close(self, code, reason):
        self.closed = (code, reason)

    def watch_partner(self, partner):
        self.partner = partner

    def unwatch_partner(self):
        self.partner = None


class RegistryTests(unittest.TestCase):

    def setUp(self):
        self.hub = Hub()
        self.events = []
        self.hub.subscribe(self.events.append)
        self.clock = Clock()
        self.registry = Registry(self.hub, clock=self.clock, max_kept_messages=2, kept_ttl=60)

    def kinds(self):
        return [e["event"] for e in self.events]

    def test_pairing_links_both_sides(self):
        rm, cem = MemorySide("RM"), MemorySide("CEM")
        conv = self.registry.attach(rm)
        self.assertIs(self.registry.attach(cem), conv)
        self.assertIs(rm.partner, cem)
        self.assertIs(cem.partner, rm)
        self.registry.receive(rm, b"x", False)
        self.assertEqual(cem.sent, [(b"x", False)])
        self.assertEqual(self.kinds(), ["session_started", "opened", "opened", "forwarded"])

    def test_pairs_are_separate(self):
        a_rm, b_cem = MemorySide("RM", "a", "1"), MemorySide("CEM", "b", "1")
        self.registry.attach(a_rm)
        self.registry.attach(b_cem)
        self.registry.receive(a_rm, b"only-a", False)
        self.assertEqual(b_cem.sent, [])
        self.assertEqual(len(self.registry.conversations), 2)

    def test_keep_refuse_and_expire(self):
        rm = MemorySide("RM")
        self.registry.attach(rm)
        for payload in (b"1", b"2", b"3"):
            self.registry.receive(rm, payload, False)
        self.assertEqual(rm.closed[0], 1013)
        self.assertEqual(self.kinds()[-3:], ["kept", "kept", "refused"])
        self.registry.detach(rm, 1013, "limit", "proxy")
        self.assertNotIn("session_ended", self.kinds())
        self.clock.advance(61)
        self.assertEqual(self.kinds()[-3:], ["discarded", "discarded", "session_ended"])
        self.assertEqual(self.registry.conversations, {})

    def test_kept_delivered_cancels_expiry(self):
        rm = MemorySide("RM")
        self.registry.attach(rm)
        self.registry.receive(rm, b"1", False)
        self.registry.detach(rm, 1000, "", "peer")
        cem = MemorySide("CEM")
        self.registry.attach(cem)
        self.assertEqual(cem.sent, [(b"1", False)])
        self.clock.advance(120)
        self.assertNotIn("discarded", self.kinds())
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_replacement(self):
        old, cem = MemorySide("RM"), MemorySide("CEM")
        self.registry.attach(old)
        self.registry.attach(cem)
        new = MemorySide("RM")
        self.registry.attach(new)
        self.assertEqual(old.closed[0], 4000)
        self.assertIs(cem.partner, new)
        # Late frames of the replaced connection go nowhere; its close does not end the session.
        self.registry.receive(old, b"late", False)
        self.assertEqual(cem.sent, [])
        self.registry.detach(old, 4000, "replaced", "proxy")
        self.assertNotIn("session_ended", self.kinds())
        self.registry.receive(new, b"fresh", False)
        self.assertEqual(cem.sent, [(b"fresh", False)])

    def test_mirror_close(self):
        self.registry.mirror_close = True
        rm, cem = MemorySide("RM"), MemorySide("CEM")
        self.registry.attach(rm)
        self.registry.attach(cem)
        self.registry.detach(rm, 1006, "", "peer")
        self.assertEqual(cem.closed[0], 1001)
        self.assertIsNone(cem.partner)

    def test_inject(self):
        rm, cem = MemorySide("RM"), MemorySide("CEM")
        self.registry.attach(rm)
        self.assertRaises(NoLiveConnection, self.registry.inject, "rm", "cem", b"{}")
        self.assertRaises(NoLiveConnection, self.registry.inject, "nobody", "cem", b"{}")
        self.registry.attach(cem)
        conv, event = self.registry.inject("cem", "rm", b'{"from": "cem"}')
        self.assertEqual(event["origin"], "CEM")
        self.assertEqual(event["event"], "injected")
        self.assertEqual(rm.sent, [(b'{"from": "cem"}', False)])

    def test_pause_all_reaches_new_sides(self):
        rm = MemorySide("RM")
        self.registry.attach(rm)
        self.registry.pause_all("store")
        cem = MemorySide("CEM")
        self.registry.attach(cem)
        self.assertEqual((rm.gate.holders, cem.gate.holders), ({"store"}, {"store"}))
        self.registry.resume_all("store")
        self.assertEqual((rm.gate.holders, cem.gate.holders), (set(), set()))

    def test_a_failing_observer_does_not_stop_forwarding(self):
        def broken(event):
            raise RuntimeError("sink bug")
        self.hub.subscribe(broken)
        rm, cem = MemorySide("RM"), MemorySide("CEM")
        self.registry.attach(rm)
        self.registry.attach(cem)
        self.registry.receive(rm, b"a", False)
        self.registry.receive(rm, b"b", False)
        self.assertEqual(cem.sent, [(b"a", False), (b"b", False)])
        self.flushLoggedErrors(RuntimeError)


class ShutdownTests(unittest.TestCase):

    def test_shutdown_closes_devices_and_ends_waiting_sessions(self):
        hub, events, clock = Hub(), [], Clock()
        hub.subscribe(events.append)
        registry = Registry(hub, clock=clock, kept_ttl=60)
        waiting, live = MemorySide("RM", "a", "b"), MemorySide("RM", "c", "d")
        registry.attach(waiting)
        registry.receive(waiting, b"kept", False)
        registry.detach(waiting, 1000, "", "peer")
        registry.attach(live)
        registry.shutdown()
        self.assertEqual(clock.getDelayedCalls(), [])
        self.assertEqual(live.closed, (1001, "s2proxy is shutting down"))
        discarded = [e for e in events if e["event"] == "discarded"]
        self.assertEqual(len(discarded), 1)
        self.assertIn("the proxy stopped", discarded[0]["reason"])
        registry.detach(live, 1001, "s2proxy is shutting down", "proxy")
        self.assertEqual(registry.conversations, {})
        self.assertEqual(clock.getDelayedCalls(), [])

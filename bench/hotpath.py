"""Where the daemon's CPU per message goes, without sockets: s2proxy's own part of the hot path.

Builds the real service (S2Proxy, as twistd does, with the history store off and nothing
listening), pairs two stub sides through the registry, plays the session set-up of
bench/s2traffic.py and then times, per steady message (FRBC.ActuatorStatus / PowerMeasurement
from the RM, ReceptionStatus from the CEM), the whole ``Registry.receive`` and each of its stages
alone: Validator.analyse, Checker.feed, building the event, and every observer of the hub. What
Autobahn and Twisted cost on top (framing, UTF-8 check, masking, socket calls) is what bench/relay.py
costs per message in ``make bench``.

    python bench/hotpath.py [--messages N]   # prints a table and a JSON line
"""

import argparse
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

import s2traffic  # noqa: E402


class _Gate:
    def pause(self, holder):
        pass

    def resume(self, holder):
        pass


class StubSide:
    """A side whose send_frame only counts (see docs/INTERFACES.md)."""

    def __init__(self, role, rm_id, cem_id):
        self.role, self.rm_id, self.cem_id = role, rm_id, cem_id
        self.peer = "tcp:127.0.0.1:1"
        self.tls = False
        self.direction = "inbound"
        self.conversation = None
        self.gate = _Gate()
        self.sent = 0

    def send_frame(self, payload, binary):
        self.sent += 1

    def close(self, code, reason):
        pass

    def watch_partner(self, partner):
        pass

    def unwatch_partner(self):
        pass


def build(validate):
    from twisted.internet import reactor
    from s2proxy.service import S2Proxy
    # Inline analysis: this measures every stage in one thread (the daemon's default on 2+ cores
    # moves validation and the checker to a worker process; see BENCHMARKS.md).
    settings = {"port": "tcp:0:interface=127.0.0.1", "validate": validate, "store": False,
                "analysis_workers": 0}
    try:
        return S2Proxy(settings, reactor)
    except KeyError:
        settings.pop("store")
        return S2Proxy(settings, reactor)


def steady_frames(rm_ids, count):
    frames = []
    for _ in range(count):
        mid, text = s2traffic.steady_message(rm_ids)
        frames.append(("RM", text.encode()))
        frames.append(("CEM", s2traffic.reception_status(mid).encode()))
    return frames


def per_call_us(fn, items, repeats=5):
    """The best of ``repeats`` passes of the mean time of fn(item), in microseconds.

    CPU time of this thread (not wall time) and the best, not the median: the cores are shared,
    and other load only ever adds time.
    """
    results = []
    for _ in range(repeats):
        t0 = time.thread_time()
        for item in items:
            fn(item)
        results.append((time.thread_time() - t0) / len(items) * 1e6)
    return min(results)


def measure(validate, n):
    app = build(validate)
    reg = app.registry
    number = 7000 + (1 if validate else 0)
    rm = StubSide("RM", "rm-hot-%d" % number, "cem-hot-%d" % number)
    cem = StubSide("CEM", rm.rm_id, rm.cem_id)
    reg.attach(rm)
    reg.attach(cem)
    sides = {"RM": rm, "CEM": cem}
    rm_ids = s2traffic.Ids(number, 0xB0)
    cem_ids = s2traffic.Ids(number, 0xC0)
    for sender, text in s2traffic.setup_script(rm_ids, cem_ids):
        reg.receive(sides[sender], text.encode(), False)
    out = {"config": "validate" if validate else "fwd",
           "observers": [type(o).__name__ for o in app.hub._observers]}
    # The whole receive: each RM message and its ReceptionStatus, in conversation order.
    best = []
    for _ in range(5):
        frames = steady_frames(rm_ids, n)
        best.append(per_call_us(lambda f: reg.receive(sides[f[0]], f[1], False), frames, repeats=1))
    out["receive_us"] = min(best)
    if validate:
        payloads = [f[1] for f in frames]
        out["analyse_us"] = per_call_us(lambda p: app.validator.analyse(p, False), payloads)
        # Feed a fresh conversation's checker in order (so its state stays realistic).
        from s2proxy.events import next_seq
        conv = reg.conversations[(rm.rm_id, rm.cem_id)]
        checker = app.analyzer.core.checkers.get(conv.token)
        if checker is not None:
            now = time.time()
            best = []
            for _ in range(5):
                analyses = [(f[0], app.validator.analyse(f[1], False)) for f in steady_frames(rm_ids, n)]
                best.append(per_call_us(lambda a: checker.feed(a[0], a[1], now, next_seq()), analyses, repeats=1))
            out["checker_feed_us"] = min(best)
        import json as _json
        texts = [f[1].decode() for f in frames]
        out["json_loads_plain_us"] = per_call_us(_json.loads, texts)
        sample = app.validator.analyse(frames[0][1], False)
        validate_fn = app.validator._validators[sample.message_type]
        objs = [sample.obj] * len(frames)
        out["schema_call_us"] = per_call_us(validate_fn, objs)
    # Event building and each observer, on a representative forwarded event.
    from s2proxy.events import make_event
    conv = reg.conversations[(rm.rm_id, rm.cem_id)]
    analysis = app.validator.analyse(frames[0][1], False) if validate else None
    fields = {"origin": "RM", "raw": frames[0][1].decode(), "binary": False, "size": len(frames[0][1]),
              "findings": [], "message_type": analysis.message_type if analysis else None,
              "message_id": analysis.message_id if analysis else None,
              "format_findings": analysis.findings if analysis else [],
              "valid": analysis.valid if analysis else None, "obj": analysis.obj if analysis else None,
              "latency": 1e-5}
    rng = range(n)
    out["make_event_us"] = per_call_us(lambda _: make_event("forwarded", conv, seq=1, **fields), rng)
    event = make_event("forwarded", conv, seq=1, **fields)
    for observer in app.hub._observers:
        out["observer_%s_us" % type(observer).__name__] = per_call_us(lambda _: observer(event), rng)
    out["hub_emit_us"] = per_call_us(lambda _: app.hub.emit(event), rng)
    return out


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=int(os.environ.get("HOTPATH_MESSAGES", "5000")))
    args = parser.parse_args()
    results = {}
    for validate in (False, True):
        try:
            results["validate" if validate else "fwd"] = measure(validate, args.messages)
        except Exception as e:  # a half-landed module must not stop the other figures
            results["validate" if validate else "fwd"] = {"error": "%s: %s" % (type(e).__name__, e)}
    for config, r in results.items():
        print("%s:" % config)
        for key, value in r.items():
            if isinstance(value, float):
                print("  %-34s %8.1f us" % (key, value))
            else:
                print("  %-34s %s" % (key, value))
    print(json.dumps(results))


if __name__ == "__main__":
    main()

"""What Autobahn itself costs per relayed message, without sockets or s2proxy.

Two Autobahn server protocols on Twisted's in-memory StringTransport, opened with a real client
handshake; masked text frames (a realistic 300-byte S2 message) are fed to one protocol's
dataReceived, and its onMessage passes each payload on with the other's sendMessage, exactly as
bench/relay.py and the daemon do. Reports CPU microseconds per message for Autobahn's native
NVX helpers (UTF-8 validation, XOR masking) and for its pure-Python fallback, each in a fresh
process because Autobahn picks the implementation at import (AUTOBAHN_USE_NVX).

    python bench/autobahn_cost.py
"""

import json
import os
import subprocess
import sys
import time


def child(messages=20000):
    import base64
    import struct

    from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
    from autobahn.websocket import USES_NVX
    from twisted.internet.testing import StringTransport

    class Relay(WebSocketServerProtocol):
        peer_proto = None

        def onMessage(self, payload, isBinary):
            self.peer_proto.sendMessage(payload, isBinary)

    factory = WebSocketServerFactory()
    factory.protocol = Relay
    factory.setProtocolOptions(webStatus=False, autoPingInterval=0)

    def open_proto():
        p = factory.buildProtocol(None)
        t = StringTransport()
        p.makeConnection(t)
        key = base64.b64encode(os.urandom(16))
        p.dataReceived(b"GET /backend/rm/a/cem/b/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                       b"Connection: Upgrade\r\nSec-WebSocket-Key: " + key
                       + b"\r\nSec-WebSocket-Version: 13\r\n\r\n")
        t.clear()
        return p, t

    a, ta = open_proto()
    b, tb = open_proto()
    a.peer_proto = b
    payload = (b'{"message_type": "FRBC.ActuatorStatus", "message_id": "00000001-00b0-4000-8000-000000000001", '
               b'"actuator_id": "a1000000-0000-4000-8000-000000000001", "active_operation_mode_id": '
               b'"0e000000-0000-4000-8000-000000000001", "operation_mode_factor": 0.0}')
    payload = payload + b" " * max(0, 300 - len(payload))
    mask = os.urandom(4)
    masked = bytes(c ^ mask[i % 4] for i, c in enumerate(payload))
    frame = struct.pack("!BBH", 0x81, 0xFE, len(payload)) + mask + masked
    batch = frame * 8           # a read usually carries several frames under load
    rounds = messages // 8
    best = None
    for _ in range(3):
        t0 = time.thread_time()
        for _ in range(rounds):
            a.dataReceived(batch)
            tb.clear()
        spent = (time.thread_time() - t0) / (rounds * 8) * 1e6
        best = spent if best is None else min(best, spent)
    print(json.dumps({"nvx": bool(USES_NVX), "us_per_message": best}))


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child()
        return
    results = {}
    for nvx in ("1", "0"):
        env = dict(os.environ, AUTOBAHN_USE_NVX=nvx)
        p = subprocess.run([sys.executable, os.path.abspath(__file__), "--child"], env=env,
                           capture_output=True, text=True)
        try:
            results["nvx" if nvx == "1" else "pure_python"] = json.loads(p.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            results["nvx" if nvx == "1" else "pure_python"] = {"error": p.stderr[-500:]}
    for name, r in results.items():
        if "us_per_message" in r:
            print("autobahn %-12s (USES_NVX=%s) %6.1f us CPU per relayed message (receive + send)"
                  % (name, r["nvx"], r["us_per_message"]))
        else:
            print("autobahn %-12s %s" % (name, r))
    print(json.dumps(results))


if __name__ == "__main__":
    main()

"""A bare Autobahn forwarder: the baseline that ``make bench`` measures the daemon against.

The smallest relay with the daemon's URLs and the same Autobahn stack (Twisted, epoll reactor,
Autobahn's WebSocketServerProtocol with its default UTF-8 validation and NVX if installed): pair an
RM and a CEM by (rm_id, cem_id) and pass every message on with sendMessage. No validation, no
events, no logging, no twisted.web resource tree, no flow control. Whatever the daemon costs
beyond this is s2proxy's own work.

    python bench/relay.py --port 0      # prints {"port": N} once listening
"""

import argparse
import json
import sys

from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from autobahn.websocket.types import ConnectionDeny


class RelayProtocol(WebSocketServerProtocol):
    key = None
    role = None

    def onConnect(self, request):
        parts = request.path.split("/")
        # /backend/rm/{rm}/cem/{cem}/ws or /backend/cem/{cem}/rm/{rm}/ws
        if len(parts) != 7 or parts[2] not in ("rm", "cem"):
            raise ConnectionDeny(404, "not a device URL")
        if parts[2] == "rm":
            self.role, self.key = "RM", (parts[3], parts[5])
        else:
            self.role, self.key = "CEM", (parts[5], parts[3])

    def onOpen(self):
        self.factory.sides.setdefault(self.key, {})[self.role] = self

    def onMessage(self, payload, isBinary):
        peer = self.factory.sides[self.key].get("CEM" if self.role == "RM" else "RM")
        if peer is not None:
            peer.sendMessage(payload, isBinary)

    def onClose(self, wasClean, code, reason):
        sides = self.factory.sides.get(self.key)
        if sides is not None and sides.get(self.role) is self:
            del sides[self.role]
            if not sides:
                del self.factory.sides[self.key]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    from twisted.internet import reactor
    factory = WebSocketServerFactory()
    factory.protocol = RelayProtocol
    factory.sides = {}
    factory.setProtocolOptions(webStatus=False)
    port = reactor.listenTCP(args.port, factory, interface="127.0.0.1", backlog=1024)
    sys.stdout.write(json.dumps({"port": port.getHost().port}) + "\n")
    sys.stdout.flush()
    reactor.run()


if __name__ == "__main__":
    main()

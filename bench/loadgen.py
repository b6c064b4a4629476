"""Load generator for ``make bench``: N RM/CEM pairs of S2 traffic through a WebSocket relay.

Run by bench/run.py as a separate process; prints one JSON object (its result) as the last line
of stdout. It must never be the bottleneck on a 2-core machine, so it is a hand-written RFC 6455
client on a bare asyncio Protocol: frames are built with one struct.pack and masked with one big
integer XOR (a fresh random key per connection), a read is parsed in one pass, and the replies to
everything in one read leave in one write. It costs about 10-20 us of CPU per delivered message;
run.py measures its CPU time next to the daemon's and prints both.

Modes:
- ``--mode traffic`` (default): every pair runs the session set-up of bench/s2traffic.py, then the
  RM keeps ``--window`` messages in flight (FRBC.ActuatorStatus / PowerMeasurement), the CEM answers
  each with a ReceptionStatus. ``--window 1 --pairs 1`` is the ping-pong latency test. Every
  delivered message is counted (both directions) and its one-way latency (send call to receipt,
  same clock) recorded; payloads are compared byte for byte with what was sent.
- ``--mode idle``: connect the pairs (and run the set-up unless ``--no-setup``), print a ``ready``
  line, then hold the connections until stdin is closed (run.py reads the daemon's RSS meanwhile).
- ``--direct``: no proxy at all. The load generator also plays the CEM as a WebSocket *server* and
  the RMs connect to it directly: the baseline for the proxy's added latency, and the load
  generator's own ceiling.
"""

import argparse
import asyncio
import base64
import hashlib
import json
import os
import resource
import struct
import sys
import time
from array import array
from collections import deque

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import s2traffic  # noqa: E402

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
perf = time.perf_counter

OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x1, 0x2, 0x8, 0x9, 0xA


class Stats:
    """Counts only inside the measuring window (``counting``)."""

    def __init__(self):
        self.counting = False
        self.delivered = 0
        self.latencies = array("d")
        self.mismatches = 0
        self.errors = []


STATS = Stats()


def frame(payload, opcode=OP_TEXT, mask_key=None, mask_stream=None):
    """One final frame. Clients mask (RFC 6455 5.3): XOR with the key repeated, as one big int."""
    n = len(payload)
    if mask_key is None:
        if n < 126:
            return struct.pack("!BB", 0x80 | opcode, n) + payload
        if n < 65536:
            return struct.pack("!BBH", 0x80 | opcode, 126, n) + payload
        return struct.pack("!BBQ", 0x80 | opcode, 127, n) + payload
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
    elif n < 65536:
        head = struct.pack("!BBH", 0x80 | opcode, 0xFE, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0xFF, n)
    if n > len(mask_stream):
        mask_stream = mask_key * (n // 4 + 1)
    masked = (int.from_bytes(payload, "little") ^ int.from_bytes(mask_stream[:n], "little")).to_bytes(n, "little")
    return head + mask_key + masked


def unmask(payload, key):
    n = len(payload)
    stream = key * (n // 4 + 1)
    return (int.from_bytes(payload, "little") ^ int.from_bytes(stream[:n], "little")).to_bytes(n, "little")


class WSConn(asyncio.Protocol):
    """One WebSocket connection (client or, in --direct mode, server side); frames to ``handler``."""

    def __init__(self, is_client, path=b"", host=b"127.0.0.1", on_open=None, on_server_open=None):
        self.is_client = is_client
        self.path = path
        self.host = host
        self.on_open = on_open              # future: set when the handshake completed
        self.on_server_open = on_server_open  # direct mode: called with (conn, path)
        self.handler = None
        self.open = False
        self.buf = bytearray()
        self.transport = None
        if is_client:
            self.mask_key = os.urandom(4)
            self.mask_stream = self.mask_key * 1024
        else:
            self.mask_key = None
            self.mask_stream = None

    # -- asyncio ---------------------------------------------------------------------------

    def connection_made(self, transport):
        self.transport = transport
        if self.is_client:
            self.key = base64.b64encode(os.urandom(16))
            transport.write(b"GET " + self.path + b" HTTP/1.1\r\nHost: " + self.host
                            + b"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: "
                            + self.key + b"\r\nSec-WebSocket-Version: 13\r\n\r\n")

    def data_received(self, data):
        buf = self.buf
        buf += data
        if not self.open:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(buf[:end])
            del buf[:end + 4]
            if self.is_client:
                if not head.startswith(b"HTTP/1.1 101"):
                    self._fail("handshake refused: %r" % head.split(b"\r\n", 1)[0])
                    return
                self.open = True
                if self.on_open is not None and not self.on_open.done():
                    self.on_open.set_result(self)
            else:
                self._server_handshake(head)
            if not buf:
                return
        now = perf()
        texts = []
        pos = 0
        size = len(buf)
        while size - pos >= 2:
            b0 = buf[pos]
            b1 = buf[pos + 1]
            n = b1 & 0x7F
            hl = 2
            if n == 126:
                if size - pos < 4:
                    break
                n = (buf[pos + 2] << 8) | buf[pos + 3]
                hl = 4
            elif n == 127:
                if size - pos < 10:
                    break
                n = struct.unpack_from("!Q", buf, pos + 2)[0]
                hl = 10
            masked = b1 & 0x80
            if masked:
                hl += 4
            if size - pos < hl + n:
                break
            payload = bytes(buf[pos + hl:pos + hl + n])
            if masked:
                payload = unmask(payload, bytes(buf[pos + hl - 4:pos + hl]))
            pos += hl + n
            opcode = b0 & 0x0F
            if opcode in (OP_TEXT, OP_BINARY):
                if not b0 & 0x80:
                    self._fail("fragmented message (not expected from the relay)")
                    return
                texts.append(payload)
            elif opcode == OP_PING:
                self.transport.write(frame(payload, OP_PONG, self.mask_key, self.mask_stream))
            elif opcode == OP_CLOSE:
                self.transport.write(frame(payload[:2], OP_CLOSE, self.mask_key, self.mask_stream))
                self.transport.close()
                break
        del buf[:pos]
        if texts and self.handler is not None:
            self.handler(self, texts, now)

    def connection_lost(self, exc):
        self.open = False
        if self.on_open is not None and not self.on_open.done():
            self.on_open.set_exception(ConnectionError("connection lost during the handshake: %s" % exc))

    # -- helpers -----------------------------------------------------------------------------

    def _server_handshake(self, head):
        lines = head.split(b"\r\n")
        path = lines[0].split(b" ")[1]
        key = b""
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"sec-websocket-key":
                key = value.strip()
        accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
        self.transport.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                             b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n")
        self.open = True
        self.on_server_open(self, path)

    def _fail(self, text):
        STATS.errors.append(text)
        if self.on_open is not None and not self.on_open.done():
            self.on_open.set_exception(ConnectionError(text))
        self.transport.close()

    def send_texts(self, texts):
        key, stream = self.mask_key, self.mask_stream
        self.transport.write(b"".join([frame(t, OP_TEXT, key, stream) for t in texts]))

    def close(self):
        if self.transport is not None and not self.transport.is_closing():
            try:
                self.transport.write(frame(struct.pack("!H", 1000), OP_CLOSE, self.mask_key, self.mask_stream))
            except Exception:
                pass
            self.transport.close()


class Pair:
    """One RM and one CEM: the set-up script, then a window of RM messages each answered by the CEM."""

    def __init__(self, number, window, setup=True):
        self.number = number
        self.rm_id = "rm-%d" % number
        self.cem_id = "cem-%d" % number
        self.window = window
        self.rm = None
        self.cem = None
        self.rm_ids = s2traffic.Ids(number, 0xB0)
        self.cem_ids = s2traffic.Ids(number, 0xC0)
        self.steps = s2traffic.setup_script(self.rm_ids, self.cem_ids) if setup else []
        self.step = 0
        self.setup_done = asyncio.get_running_loop().create_future()
        self.to_cem = deque()   # (send time, bytes) of RM messages not yet received by the CEM
        self.to_rm = deque()    # (send time, bytes) of CEM replies not yet received by the RM
        self.inflight = 0
        self.running = False

    def attach(self, rm, cem):
        self.rm, self.cem = rm, cem
        rm.handler = self.on_rm_frames
        cem.handler = self.on_cem_frames

    # -- set-up: one message at a time, each sent when the previous one arrived ---------------

    def start_setup(self):
        if not self.steps:
            self.setup_done.set_result(None)
            return
        self._send_step()

    def _send_step(self):
        sender, text = self.steps[self.step]
        data = text.encode("utf-8")
        (self.to_cem if sender == "RM" else self.to_rm).append((perf(), data))
        (self.rm if sender == "RM" else self.cem).send_texts([data])

    def _setup_frames(self, frames, queue):
        for payload in frames:
            _, sent = queue.popleft()
            if payload != sent:
                STATS.mismatches += 1
            self.step += 1
        if self.step < len(self.steps):
            self._send_step()
        elif not self.setup_done.done():
            self.setup_done.set_result(None)

    # -- steady traffic ---------------------------------------------------------------------

    def start_traffic(self):
        self.running = True
        self._refill()

    def stop_traffic(self):
        self.running = False

    def _refill(self):
        want = self.window - self.inflight
        if want <= 0 or not self.running:
            return
        now = perf()
        batch = []
        append = self.to_cem.append
        for _ in range(want):
            data = s2traffic.steady_message(self.rm_ids)[1].encode("utf-8")
            append((now, data))
            batch.append(data)
        self.inflight += want
        self.rm.send_texts(batch)

    def on_cem_frames(self, conn, frames, now):
        if not self.setup_done.done():
            return self._setup_frames(frames, self.to_cem)
        stats = STATS
        queue = self.to_cem
        replies = []
        for payload in frames:
            sent_at, sent = queue.popleft()
            if payload != sent:
                stats.mismatches += 1
            if stats.counting:
                stats.delivered += 1
                stats.latencies.append(now - sent_at)
            # The id sits at a fixed place in our own texts: no JSON parsing needed.
            start = payload.find(b'"message_id": "') + 15
            replies.append(s2traffic.reception_status(payload[start:start + 36].decode("ascii")).encode("ascii"))
        t = perf()
        append = self.to_rm.append
        for r in replies:
            append((t, r))
        self.cem.send_texts(replies)

    def on_rm_frames(self, conn, frames, now):
        if not self.setup_done.done():
            return self._setup_frames(frames, self.to_rm)
        stats = STATS
        queue = self.to_rm
        for payload in frames:
            sent_at, sent = queue.popleft()
            if payload != sent:
                stats.mismatches += 1
            if stats.counting:
                stats.delivered += 1
                stats.latencies.append(now - sent_at)
        self.inflight -= len(frames)
        self._refill()


def device_path(role, rm_id, cem_id):
    if role == "RM":
        return ("/backend/rm/%s/cem/%s/ws" % (rm_id, cem_id)).encode("ascii")
    return ("/backend/cem/%s/rm/%s/ws" % (cem_id, rm_id)).encode("ascii")


async def connect(loop, host, port, path):
    opened = loop.create_future()
    await loop.create_connection(lambda: WSConn(True, path, ("%s:%d" % (host, port)).encode(), on_open=opened),
                                 host, port)
    return await opened


async def open_pairs(args, loop):
    pairs = [Pair(i + args.first_pair, args.window, setup=not args.no_setup) for i in range(args.pairs)]
    limit = asyncio.Semaphore(args.connect_concurrency)
    server = None
    if args.direct:
        # The load generator plays the CEM as a server; RMs dial it without a proxy in between.
        waiting = {}

        def on_server_open(conn, path):
            waiting.pop(path).set_result(conn)
        server = await loop.create_server(lambda: WSConn(False, on_server_open=on_server_open), "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        host = "127.0.0.1"
    else:
        host, port = args.host, args.port

    async def one(pair):
        async with limit:
            if args.direct:
                path = device_path("RM", pair.rm_id, pair.cem_id)
                waiter = waiting[path] = loop.create_future()
                rm = await connect(loop, host, port, path)
                cem = await waiter
            else:
                rm = await connect(loop, host, port, device_path("RM", pair.rm_id, pair.cem_id))
                cem = await connect(loop, host, port, device_path("CEM", pair.rm_id, pair.cem_id))
            pair.attach(rm, cem)
        pair.start_setup()
        await pair.setup_done

    await asyncio.gather(*(one(p) for p in pairs))
    return pairs, server


def cpu_seconds():
    t = os.times()
    return t.user + t.system


def percentile(sorted_values, q):
    if not sorted_values:
        return None
    index = min(len(sorted_values) - 1, max(0, int(round(q * (len(sorted_values) - 1)))))
    return sorted_values[index]


def emit(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


async def run_traffic(args, loop):
    t0 = perf()
    pairs, server = await open_pairs(args, loop)
    emit({"event": "connected", "pairs": len(pairs), "seconds": perf() - t0})
    for p in pairs:
        p.start_traffic()
    await asyncio.sleep(args.warmup)
    STATS.counting = True
    cpu0, wall0 = cpu_seconds(), perf()
    emit({"event": "measure_start"})
    await asyncio.sleep(args.duration)
    STATS.counting = False
    cpu1, wall1 = cpu_seconds(), perf()
    emit({"event": "measure_end"})
    for p in pairs:
        p.stop_traffic()
    # Let every message in flight get its ReceptionStatus, so the checker sees a clean end.
    deadline = perf() + 10.0
    while perf() < deadline and any(p.inflight for p in pairs):
        await asyncio.sleep(0.05)
    for p in pairs:
        p.rm.close()
        p.cem.close()
    if server is not None:
        server.close()
    lat = sorted(STATS.latencies)
    seconds = wall1 - wall0
    return {
        "mode": "direct" if args.direct else "proxy",
        "pairs": args.pairs, "window": args.window,
        "delivered": STATS.delivered, "seconds": seconds,
        "msg_per_s": STATS.delivered / seconds,
        "p50_ms": percentile(lat, 0.5) * 1e3 if lat else None,
        "p99_ms": percentile(lat, 0.99) * 1e3 if lat else None,
        "mean_ms": (sum(lat) / len(lat) * 1e3) if lat else None,
        "mismatches": STATS.mismatches,
        "loadgen_cpu": (cpu1 - cpu0) / seconds,
        "loadgen_us_per_msg": (cpu1 - cpu0) / STATS.delivered * 1e6 if STATS.delivered else None,
        "errors": STATS.errors[:5],
    }


async def run_idle(args, loop):
    t0 = perf()
    pairs, server = await open_pairs(args, loop)
    emit({"event": "ready", "pairs": len(pairs), "seconds": perf() - t0})
    # Hold until run.py closes our stdin.
    await loop.run_in_executor(None, sys.stdin.read)
    for p in pairs:
        p.rm.close()
        p.cem.close()
    await asyncio.sleep(0.5)
    return {"mode": "idle", "pairs": args.pairs, "mismatches": STATS.mismatches, "errors": STATS.errors[:5]}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--direct", action="store_true", help="no proxy: RMs dial a CEM server in this process")
    parser.add_argument("--mode", choices=("traffic", "idle"), default="traffic")
    parser.add_argument("--pairs", type=int, default=10)
    parser.add_argument("--first-pair", type=int, default=0, help="number of the first pair (ids rm-N, cem-N)")
    parser.add_argument("--window", type=int, default=8, help="RM messages in flight per pair")
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--no-setup", action="store_true", help="skip the S2 session set-up messages")
    parser.add_argument("--connect-concurrency", type=int, default=32)
    args = parser.parse_args(argv)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    runner = run_idle if args.mode == "idle" else run_traffic

    async def go():
        return await runner(args, asyncio.get_running_loop())
    try:
        result = loop.run_until_complete(go())
    except Exception as e:
        result = {"error": "%s: %s" % (type(e).__name__, e), "errors": STATS.errors[:5]}
    emit(result)
    return 0 if "error" not in result else 1


if __name__ == "__main__":
    sys.exit(main())

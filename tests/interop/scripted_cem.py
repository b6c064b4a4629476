"""A small scripted CEM that answers an s2-python RM correctly, through s2proxy.

s2-python 0.11.1 has no CEM side, so this is a plain ``websockets`` client (the library s2-python
itself uses) following S2-PROTOCOL.md §3, §4 and the §7.1 example. Its messages are built and its
input is parsed with s2-python's message classes, so both directions go through the reference
implementation's serialiser and validator. Run with the interop venv's Python:

    .venv-interop/bin/python tests/interop/scripted_cem.py URL cem.jsonl [--ending close|session-request]
                                                          [--upper-case-ids] [--answer-delay S]

What it does:
- sends its Handshake at once; answers every message of the RM with ReceptionStatus OK (after
  checking it with s2-python's parser: a message the reference parser refuses ends the run with an
  error in the frame log);
- after the RM's Handshake: HandshakeResponse with 0.0.2-beta;
- after ResourceManagerDetails: SelectControlType FILL_RATE_BASED_CONTROL;
- after the first ActuatorStatus that follows the SystemDescription: one FRBC.Instruction (idle ->
  charge/discharge at factor 0.8333, to execute one second later, over the transition that exists);
- after the instruction's SUCCEEDED: SelectControlType NO_SELECTION;
- after the RM acknowledged that: ``--ending close`` closes the WebSocket (code 1000);
  ``--ending session-request`` sends SessionRequest TERMINATE, waits half a second (an s2-python RM
  never acknowledges it, §4.7) and closes.

``--upper-case-ids`` writes every id the CEM creates in upper case (valid UUID text, RFC 9562);
s2-python answers with the same ids in lower case, which the proxy must accept (X-1).

``--reselect``: after the first instruction, SelectControlType NOT_CONTROLABLE, then FRBC again (a
new activation: the RM describes itself again), and a second instruction (same mode, factor 0.5)
before the deselection.

``--answer-delay S`` makes a slow but correct CEM: it handles one message at a time and takes S
seconds before it answers each (S2-PROTOCOL.md Appendix C: with S = 1.5 some of the RM's statuses
arrive late, because the RM's activate() waits for the CEM while the instruction waits in its queue).
"""

import argparse
import asyncio
import datetime
import json
import logging
import sys
import uuid

from framelog import FrameLog, LogToFrameLog

from s2python.s2_parser import S2Parser
from websockets.asyncio.client import connect

VERSION = "0.0.2-beta"
RUN_TIMEOUT = 90.0


def now():
    return datetime.datetime.now(datetime.timezone.utc)


def rfc3339(moment):
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class ScriptedCEM:
    def __init__(self, ws, framelog, ending, upper_case_ids, answer_delay=0.0, reselect=False):
        self.ws = ws
        self.reselect = reselect
        self.rounds = 0                 # instructions that SUCCEEDED
        self.answer_delay = answer_delay
        self.framelog = framelog
        self.ending = ending
        self.upper = upper_case_ids
        self.select_ids = {}            # message_id (lower case) -> control type selected
        self.description = None         # the RM's FRBC.SystemDescription of this activation (dict)
        self.instructed = False         # an instruction was sent in this activation
        self.finished = asyncio.Event()

    def new_id(self):
        text = str(uuid.uuid4())
        return text.upper() if self.upper else text

    async def send(self, message):
        # Checked by s2-python's model; sent as its serialisation, which writes UUIDs in lower
        # case, so upper-case ids go out as written.
        parsed = S2Parser.parse_as_any_message(message)
        text = json.dumps(message) if self.upper else parsed.to_json()
        self.framelog.frame("sent", text)
        await self.ws.send(text)

    async def run(self):
        await self.send({"message_type": "Handshake", "message_id": self.new_id(), "role": "CEM",
                         "supported_protocol_versions": [VERSION]})
        # Read until the connection closes: the CEM keeps answering while it ends the session.
        async for frame in self.ws:
            self.framelog.frame("recv", frame)
            await self.receive(frame)

    async def receive(self, frame):
        message = json.loads(frame)
        S2Parser.parse_as_any_message(message)   # raises if the reference parser refuses it
        kind = message["message_type"]
        if kind == "ReceptionStatus":
            await self.on_status(message)
            return
        if self.answer_delay:
            await asyncio.sleep(self.answer_delay)
        await self.send({"message_type": "ReceptionStatus", "subject_message_id": message["message_id"],
                         "status": "OK"})
        handler = getattr(self, "on_" + kind.replace(".", "_"), None)
        if handler is not None:
            await handler(message)

    async def on_Handshake(self, message):
        await self.send({"message_type": "HandshakeResponse", "message_id": self.new_id(),
                         "selected_protocol_version": VERSION})

    async def on_ResourceManagerDetails(self, message):
        if not self.select_ids and "FILL_RATE_BASED_CONTROL" in message["available_control_types"]:
            await self.select("FILL_RATE_BASED_CONTROL")

    async def select(self, control_type):
        message_id = self.new_id()
        self.select_ids[message_id.lower()] = control_type
        self.description, self.instructed = None, False
        await self.send({"message_type": "SelectControlType", "message_id": message_id,
                         "control_type": control_type})

    async def on_FRBC_SystemDescription(self, message):
        self.description = message

    async def on_FRBC_ActuatorStatus(self, message):
        if self.description is None or self.instructed:
            return
        self.instructed = True
        actuator = self.description["actuators"][0]
        active = message["active_operation_mode_id"]
        if self.rounds == 0:
            # Change mode over the transition the description offers.
            target, factor = [t["to"] for t in actuator["transitions"] if t["from"] == active][0], 0.8333
        else:
            # Same mode, another factor: no transition needed (§5.2.3 item 4).
            target, factor = active, 0.5
        await self.send({"message_type": "FRBC.Instruction", "message_id": self.new_id(),
                         "id": self.new_id(), "actuator_id": message["actuator_id"],
                         "operation_mode": target, "operation_mode_factor": factor,
                         "execution_time": rfc3339(now() + datetime.timedelta(seconds=1)),
                         "abnormal_condition": False})

    async def on_InstructionStatusUpdate(self, message):
        if message["status_type"] == "SUCCEEDED":
            self.rounds += 1
            if self.reselect and self.rounds == 1:
                await self.select("NOT_CONTROLABLE")
            else:
                await self.select("NO_SELECTION")

    async def on_status(self, message):
        selected = self.select_ids.get(message["subject_message_id"].lower())
        if selected == "NOT_CONTROLABLE":
            await self.select("FILL_RATE_BASED_CONTROL")
        elif selected == "NO_SELECTION":
            self.ending_task = asyncio.ensure_future(self.end())

    async def end(self):
        if self.ending == "session-request":
            await self.send({"message_type": "SessionRequest", "message_id": self.new_id(),
                             "request": "TERMINATE", "diagnostic_label": "CEM shutting down"})
            await asyncio.sleep(0.5)
        self.finished.set()
        await self.ws.close(1000, "conversation complete")


async def run(url, framelog, ending, upper_case_ids, answer_delay, reselect):
    async with connect(url, open_timeout=10) as ws:
        cem = ScriptedCEM(ws, framelog, ending, upper_case_ids, answer_delay, reselect)
        await asyncio.wait_for(cem.run(), RUN_TIMEOUT)
        if not cem.finished.is_set():
            raise RuntimeError("the RM left before the conversation was complete")


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("url")
    parser.add_argument("framelog")
    parser.add_argument("--ending", choices=("close", "session-request"), default="close")
    parser.add_argument("--upper-case-ids", action="store_true")
    parser.add_argument("--answer-delay", type=float, default=0.0)
    parser.add_argument("--reselect", action="store_true")
    args = parser.parse_args(argv[1:])
    framelog = FrameLog(args.framelog)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s CEM %(levelname)s %(name)s: %(message)s")
    logging.getLogger().addHandler(LogToFrameLog(framelog))
    try:
        asyncio.run(run(args.url, framelog, args.ending, args.upper_case_ids, args.answer_delay,
                        args.reselect))
    except BaseException as exc:
        framelog.end(False, repr(exc))
        framelog.close()
        raise
    framelog.end(True)
    framelog.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

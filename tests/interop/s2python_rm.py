"""An s2-python 0.11.1 Resource Manager (FRBC home battery) that talks to a CEM through s2proxy.

Run with the interop venv's Python (``make interop-venv``):

    .venv-interop/bin/python tests/interop/s2python_rm.py ws://127.0.0.1:PORT/backend/rm/R/cem/C/ws rm.jsonl
                                                         [--report-on-deactivate]

The connection, handshake, ResourceManagerDetails, ReceptionStatus handling and control-type switching
are s2-python's own (``S2AsyncConnection`` with its ``ResourceManagerHandler``); this file only adds
what an application adds: the asset details, an FRBC control type whose ``activate()`` describes the
battery (the §7.1 example of S2-PROTOCOL.md) and whose instruction handler reports the instruction's
progress, plus a NOT_CONTROLABLE control type. No handler is registered for SessionRequest or
RevokeObject, exactly as in the library, so the reference behaviour of §4.7 shows unchanged.

The only wrapping is below the library, in the WebSocket medium: every frame is logged (framelog.py)
on its way out and in. The RM closes its connection a moment after it receives a SessionRequest
(the library itself ignores the message), or when the proxy closes it.

``--report-on-deactivate``: FRBC ``deactivate()`` sends a last StorageStatus and ActuatorStatus, as a
device that reports its final state does. s2-python runs deactivate() after it acknowledged the
SelectControlType, so these arrive after the switch (S2-PROTOCOL.md §3.5, X-5).
"""

import asyncio
import datetime
import json
import logging
import sys
import uuid

from framelog import FrameLog, LogToFrameLog

from s2python.common import (CommodityQuantity, Commodity, Duration, InstructionStatus,
                             InstructionStatusUpdate, PowerMeasurement, Role, RoleType)
from s2python.connection import AssetDetails
from s2python.connection.async_ import S2AsyncConnection
from s2python.connection.async_.control_type.class_based import (FRBCControlType,
                                                                 NoControlControlType,
                                                                 ResourceManagerHandler)
from s2python.connection.async_.medium.websocket import WebsocketClientMedium
from s2python.frbc import (FRBCActuatorStatus, FRBCInstruction, FRBCLeakageBehaviour,
                           FRBCStorageStatus, FRBCSystemDescription, FRBCTimerStatus)

# Ids of the battery's model (definition ids: the same in every description).
ACTUATOR = "a1000000-0000-4000-8000-000000000001"
IDLE = "0e000000-0000-4000-8000-000000000001"
ACTIVE = "0e000000-0000-4000-8000-000000000002"
TO_ACTIVE = "7a000000-0000-4000-8000-000000000001"
TO_IDLE = "7a000000-0000-4000-8000-000000000002"
MIN_ON_TIMER = "71000000-0000-4000-8000-000000000001"
MIN_ON_MS = 60000
MODE_POWER = {IDLE: (0.0, 0.0), ACTIVE: (-3000.0, 3000.0)}

# Upper bound for the whole run, so a broken proxy can never hang the test suite.
RUN_TIMEOUT = 90.0


def now():
    return datetime.datetime.now(datetime.timezone.utc)


def system_description():
    """The §7.1 battery: idle and charge/discharge, a 60 s minimum-on timer, storage 10..90 %."""
    return FRBCSystemDescription.from_dict({
        "message_type": "FRBC.SystemDescription",
        "message_id": str(uuid.uuid4()),
        "valid_from": now().isoformat(),
        "actuators": [{
            "id": ACTUATOR,
            "diagnostic_label": "battery inverter",
            "supported_commodities": ["ELECTRICITY"],
            "operation_modes": [
                {"id": IDLE, "diagnostic_label": "idle", "abnormal_condition_only": False,
                 "elements": [{"fill_level_range": {"start_of_range": 0.0, "end_of_range": 100.0},
                               "fill_rate": {"start_of_range": 0.0, "end_of_range": 0.0},
                               "power_ranges": [{"start_of_range": 0.0, "end_of_range": 0.0,
                                                 "commodity_quantity": "ELECTRIC.POWER.3_PHASE_SYMMETRIC"}]}]},
                {"id": ACTIVE, "diagnostic_label": "charge/discharge", "abnormal_condition_only": False,
                 "elements": [{"fill_level_range": {"start_of_range": 0.0, "end_of_range": 100.0},
                               "fill_rate": {"start_of_range": -0.008333, "end_of_range": 0.008333},
                               "power_ranges": [{"start_of_range": -3000.0, "end_of_range": 3000.0,
                                                 "commodity_quantity": "ELECTRIC.POWER.3_PHASE_SYMMETRIC"}]}]},
            ],
            "transitions": [
                {"id": TO_ACTIVE, "from": IDLE, "to": ACTIVE, "start_timers": [MIN_ON_TIMER],
                 "blocking_timers": [], "transition_duration": 1000, "abnormal_condition_only": False},
                {"id": TO_IDLE, "from": ACTIVE, "to": IDLE, "start_timers": [],
                 "blocking_timers": [MIN_ON_TIMER], "transition_duration": 1000,
                 "abnormal_condition_only": False},
            ],
            "timers": [{"id": MIN_ON_TIMER, "diagnostic_label": "minimum active time",
                        "duration": MIN_ON_MS}],
        }],
        "storage": {"diagnostic_label": "battery", "fill_level_label": "state of charge (%)",
                    "provides_leakage_behaviour": True, "provides_fill_level_target_profile": False,
                    "provides_usage_forecast": False,
                    "fill_level_range": {"start_of_range": 10.0, "end_of_range": 90.0}},
    })


class Battery(FRBCControlType):
    """The application side of FRBC: what activate() sends and how instructions are carried out."""

    def __init__(self, report_on_deactivate=False):
        self.report_on_deactivate = report_on_deactivate
        self.mode = IDLE
        self.factor = 0.0
        self.fill_level = 42.5
        # A timer that never ran may report any past moment.
        self.timer_finished_at = datetime.datetime(2020, 1, 1, tzinfo=datetime.timezone.utc)
        self.tasks = []

    async def activate(self, connection):
        send = connection.send_msg_and_await_reception_status
        await send(system_description())
        await send(FRBCActuatorStatus(message_id=uuid.uuid4(), actuator_id=ACTUATOR,
                                      active_operation_mode_id=self.mode,
                                      operation_mode_factor=self.factor))
        await send(FRBCStorageStatus(message_id=uuid.uuid4(), present_fill_level=self.fill_level))
        await send(FRBCTimerStatus(message_id=uuid.uuid4(), actuator_id=ACTUATOR,
                                   timer_id=MIN_ON_TIMER, finished_at=self.timer_finished_at))
        await send(FRBCLeakageBehaviour.from_dict({
            "message_type": "FRBC.LeakageBehaviour", "message_id": str(uuid.uuid4()),
            "valid_from": now().isoformat(),
            "elements": [{"fill_level_range": {"start_of_range": 0.0, "end_of_range": 100.0},
                          "leakage_rate": 0.0001}]}))
        await send(self.measurement())

    async def deactivate(self, connection):
        if self.report_on_deactivate:
            send = connection.send_msg_and_await_reception_status
            await send(FRBCStorageStatus(message_id=uuid.uuid4(), present_fill_level=self.fill_level))
            await send(FRBCActuatorStatus(message_id=uuid.uuid4(), actuator_id=ACTUATOR,
                                          active_operation_mode_id=self.mode,
                                          operation_mode_factor=self.factor))

    def measurement(self):
        low, high = MODE_POWER[self.mode]
        return PowerMeasurement(
            message_id=uuid.uuid4(), measurement_timestamp=now(),
            values=[{"commodity_quantity": CommodityQuantity.ELECTRIC_POWER_3_PHASE_SYMMETRIC,
                     "value": round(low + self.factor * (high - low), 1)}])

    async def handle_instruction(self, connection, msg, send_okay):
        assert isinstance(msg, FRBCInstruction)
        await send_okay()
        # Carry it out in the background, as a device does; the library handles the next message.
        self.tasks.append(asyncio.ensure_future(self.execute(connection, msg)))

    async def execute(self, connection, instruction):
        send = connection.send_msg_and_await_reception_status

        async def report(status):
            await send(InstructionStatusUpdate(message_id=uuid.uuid4(), instruction_id=instruction.id,
                                               status_type=status, timestamp=now()))
        await report(InstructionStatus.ACCEPTED)
        delay = (instruction.execution_time - now()).total_seconds()
        if delay > 0:
            await asyncio.sleep(delay)
        await report(InstructionStatus.STARTED)
        previous, switched = self.mode, now()
        self.mode, self.factor = str(instruction.operation_mode), instruction.operation_mode_factor
        status = {"message_id": uuid.uuid4(), "actuator_id": ACTUATOR,
                  "active_operation_mode_id": self.mode, "operation_mode_factor": self.factor}
        if previous != self.mode:
            status.update(previous_operation_mode_id=previous, transition_timestamp=switched)
        await send(FRBCActuatorStatus(**status))
        if previous == IDLE and self.mode == ACTIVE:
            self.timer_finished_at = switched + datetime.timedelta(milliseconds=MIN_ON_MS)
            await send(FRBCTimerStatus(message_id=uuid.uuid4(), actuator_id=ACTUATOR, timer_id=MIN_ON_TIMER,
                                       finished_at=self.timer_finished_at))
        await send(self.measurement())
        await report(InstructionStatus.SUCCEEDED)


class NotControllable(NoControlControlType):
    async def activate(self, connection):
        pass

    async def deactivate(self, connection):
        pass


class LoggingMedium(WebsocketClientMedium):
    """s2-python's WebSocket medium, logging each frame exactly as it crosses the socket."""

    def __init__(self, url, framelog):
        WebsocketClientMedium.__init__(self, url)
        self.framelog = framelog
        self.terminate_requested = asyncio.Event()

    async def send(self, message):
        self.framelog.frame("sent", message)
        await WebsocketClientMedium.send(self, message)

    async def messages(self):
        async for message in WebsocketClientMedium.messages(self):
            self.framelog.frame("recv", message)
            if _message_type(message) == "SessionRequest":
                self.terminate_requested.set()
            yield message


def _message_type(message):
    try:
        return json.loads(message).get("message_type")
    except Exception:
        return None


async def run(url, framelog, report_on_deactivate):
    asset = AssetDetails(
        resource_id=uuid.UUID("5e000000-0000-4000-8000-000000000001"),
        provides_forecast=False,
        provides_power_measurements=[CommodityQuantity.ELECTRIC_POWER_3_PHASE_SYMMETRIC],
        instruction_processing_delay=Duration.from_milliseconds(1000),
        roles=[Role(role=RoleType.ENERGY_STORAGE, commodity=Commodity.ELECTRICITY)],
        name="Home battery", manufacturer="ACME", model="HB-10", serial_number="0001",
        firmware_version="1.0.0")
    battery = Battery(report_on_deactivate)
    medium = LoggingMedium(url, framelog)
    await medium.connect()
    connection = S2AsyncConnection(medium)
    ResourceManagerHandler([battery, NotControllable()], asset).register_handlers(connection)
    running = asyncio.ensure_future(connection.run())
    terminate = asyncio.ensure_future(medium.terminate_requested.wait())
    done, _ = await asyncio.wait([running, terminate], timeout=RUN_TIMEOUT,
                                 return_when=asyncio.FIRST_COMPLETED)
    if running not in done:
        if terminate in done:
            # The library has no SessionRequest handler; the application closes the session.
            await asyncio.sleep(0.2)
        else:
            framelog.note("ERROR", "interop", "run timed out after %.0f s" % RUN_TIMEOUT)
        await connection.stop()
        await medium.disconnect()
        await asyncio.wait_for(running, 20)
    terminate.cancel()
    for task in battery.tasks:
        if not task.done():
            task.cancel()
            framelog.note("ERROR", "interop", "instruction still executing when the session ended")
    await medium.disconnect()


def main(argv):
    url, path = argv[1], argv[2]
    report_on_deactivate = "--report-on-deactivate" in argv[3:]
    framelog = FrameLog(path)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s RM %(levelname)s %(name)s: %(message)s")
    logging.getLogger().addHandler(LogToFrameLog(framelog))
    try:
        asyncio.run(run(url, framelog, report_on_deactivate))
    except BaseException as exc:
        framelog.end(False, repr(exc))
        framelog.close()
        raise
    framelog.end(True)
    framelog.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

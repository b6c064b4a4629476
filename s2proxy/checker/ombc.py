"""OMBC — Operation Mode Based Control (S2-PROTOCOL.md §5.4).

OMBC has no rules of its own: the shared set R-072 – R-091 of opmodes.py applies with "actuator"
read as "device" (one state machine, scope key None, no actuator_id in statuses and timers).
"""

from . import opmodes
from .plugin import summary_hook

OMBC = opmodes.Kind("OMBC", mode_id="id", instr_mode="operation_mode_id", actuators=False)
opmodes.register(OMBC)


@summary_hook("OMBC")
def summary(activation):
    return opmodes.summarise(OMBC, activation)

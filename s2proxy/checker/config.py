"""Configuration of the conversation checker: the durations of S2-PROTOCOL.md §0.3 and the memory bounds.

All durations are seconds (floats).  Defaults are the values the protocol reference recommends.
"""

from dataclasses import dataclass, field
from typing import Any, Callable, Optional


@dataclass
class CheckerConfig:
    strict: bool = False          # strict mode (§8 Q-01): rules marked "error in strict mode" become errors
    t_rs: float = 5.0             # ReceptionStatus expected within
    t_rs_max: float = 60.0        # ReceptionStatus counts as never sent after
    t_close: float = 10.0         # close expected after an acknowledged SessionRequest
    t_status: float = 10.0        # statuses / constraints expected after description / activation
    t_switch: float = 5.0         # grace period of the switch window, phase 2
    t_meas: float = 900.0         # longest expected gap between PowerMeasurements
    t_skew: float = 2.0           # tolerance comparing message timestamps with the proxy clock (§5.2.2)
    on_error: Optional[Callable[[str, BaseException], Any]] = None   # called for a rule that raised
    sign_tolerance: float = 1.0   # W (or unit of the quantity) a power may have the "wrong" sign
    # Memory bounds for long sessions (see the docstring of s2proxy.checker.core).
    max_ids: int = 20000          # message ids remembered per side
    max_instructions: int = 5000  # instructions kept in the register (R-049, R-050, R-052, ...)
    max_objects: int = 5000       # revocable objects kept
    max_history: int = 16         # InstructionStatusUpdates kept per instruction
    options: dict = field(default_factory=dict)   # free-form knobs for control-type modules

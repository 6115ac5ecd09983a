"""A simulated on-premises Exchange 2016/2019 EWS endpoint for ENS development, demos and tests.

Tooling only: it lives in local/ and never ships in a Lambda layer. See docs/exchange-simulator.md.
"""

from exchange_simulator.clock import Clock, ManualClock, SystemClock
from exchange_simulator.push import DeliveryAttempt
from exchange_simulator.simulator import (
    CONTROL_PREFIX,
    DEFAULT_SETTINGS,
    EWS_PATH,
    GLOBAL_BODY_OBSERVERS,
    ExchangeSimulator,
    RequestRecord,
)

__all__ = [
    "CONTROL_PREFIX",
    "DEFAULT_SETTINGS",
    "EWS_PATH",
    "GLOBAL_BODY_OBSERVERS",
    "Clock",
    "DeliveryAttempt",
    "ExchangeSimulator",
    "ManualClock",
    "RequestRecord",
    "SystemClock",
]

"""EventBridge `Schedule` events for the local stack: a function invoked at its template's rate.

`ScheduledRun.run_once()` invokes the function with the event EventBridge sends for a scheduled rule
(source aws.events, detail-type "Scheduled Event"); `start()` does so from a background thread every
`rate_seconds`, the first run one interval after the start, as EventBridge's first is.
"""

from __future__ import annotations

import logging
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ens_local.functions import LoadedFunction

log = logging.getLogger("local_stack")


def scheduled_event(rule_arn: str, region: str, at: datetime | None = None) -> dict[str, Any]:
    """The event EventBridge delivers for a scheduled rule."""
    moment = at or datetime.now(UTC)
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "123456789012",
        "time": moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [rule_arn],
        "detail": {},
    }


@dataclass
class ScheduledRun:
    function: LoadedFunction
    name: str  # the Schedule event's key in the template
    rate_seconds: int
    region: str
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)

    @property
    def rule_arn(self) -> str:
        return f"arn:aws:events:{self.region}:123456789012:rule/{self.function.function_name}-{self.name}"

    @property
    def running(self) -> bool:
        return self._thread is not None

    def run_once(self) -> Any:
        """One scheduled invocation, in this thread; returns what the handler returns."""
        return self.function.invoke(scheduled_event(self.rule_arn, self.region))

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._loop, name=f"schedule-{self.function.logical_id}-{self.name}", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.function.spec.timeout_seconds + 5)
            self._thread = None

    def _loop(self) -> None:
        while not self._stop.wait(self.rate_seconds):
            try:
                self.run_once()
            except Exception:  # a failed run is logged, as Lambda would; the next one still comes
                log.exception("scheduled run of %s failed", self.function.logical_id)

"""An in-memory DeviceRegistry with the contract's signatures, for the devices API's handler tests.

It keeps devices per id, enforces the mailbox rule the way the contract states it (a caller acts for
its own mailbox, an admin for any), and can be told to raise any of the registry's errors next.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from ens.core.registrations import (
    Caller,
    DecisionView,
    DeviceRegistration,
    DeviceView,
    SubscriptionStatus,
    SubscriptionView,
)
from ens.errors import DeviceNotFound, Forbidden

MOMENT = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)


@dataclass
class FakeRegistry:
    devices: dict[str, tuple[DeviceRegistration, DeviceView]] = field(default_factory=dict)
    decisions_by_device: dict[str, list[DecisionView]] = field(default_factory=dict)
    fail_with: Exception | None = None  # raised by the next call, then cleared
    calls: list[tuple[str, str, Caller]] = field(default_factory=list)
    decision_queries: list[tuple[int, datetime | None]] = field(default_factory=list)

    def _maybe_fail(self) -> None:
        if self.fail_with is not None:
            error, self.fail_with = self.fail_with, None
            raise error

    def _owned(self, device_id: str, caller: Caller) -> DeviceView:
        stored = self.devices.get(device_id)
        if stored is None:
            raise DeviceNotFound(device_id)
        if not caller.may_act_for(stored[1].mailbox):
            raise Forbidden("this device belongs to another mailbox")
        return stored[1]

    def register(
        self, device_id: str, registration: DeviceRegistration, caller: Caller
    ) -> tuple[DeviceView, bool]:
        self.calls.append(("register", device_id, caller))
        self._maybe_fail()
        if not caller.may_act_for(registration.mailbox):
            raise Forbidden("the token's mailbox may not register devices for another mailbox")
        previous = self.devices.get(device_id)
        if previous is not None and not caller.may_act_for(previous[1].mailbox):
            raise Forbidden("this device belongs to another mailbox")
        if previous is not None and previous[0] == registration:
            return previous[1], False
        view = DeviceView(
            device_id=device_id,
            mailbox=registration.mailbox,
            platform=registration.platform,
            app_version=registration.app_version,
            active=True,
            deactivated_reason=None,
            deactivated_at=None,
            registered_at=previous[1].registered_at if previous else MOMENT,
            updated_at=MOMENT,
            last_push_at=None,
            rules=registration.rules,
            subscription=SubscriptionView(status=SubscriptionStatus.ACTIVE, last_heartbeat_at=MOMENT),
        )
        self.devices[device_id] = (registration, view)
        return view, previous is None

    def get(self, device_id: str, caller: Caller) -> DeviceView:
        self.calls.append(("get", device_id, caller))
        self._maybe_fail()
        return self._owned(device_id, caller)

    def unregister(self, device_id: str, caller: Caller) -> None:
        self.calls.append(("unregister", device_id, caller))
        self._maybe_fail()
        self._owned(device_id, caller)
        del self.devices[device_id]

    def decisions(
        self, device_id: str, caller: Caller, *, limit: int, since: datetime | None
    ) -> list[DecisionView]:
        self.calls.append(("decisions", device_id, caller))
        self.decision_queries.append((limit, since))
        self._maybe_fail()
        self._owned(device_id, caller)
        found = [
            d for d in self.decisions_by_device.get(device_id, []) if since is None or d.decided_at >= since
        ]
        return sorted(found, key=lambda d: d.decided_at, reverse=True)[:limit]

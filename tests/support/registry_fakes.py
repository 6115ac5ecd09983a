"""In-memory fakes of the DeviceRegistry's Protocols (device, mailbox and subscription stores, the
Exchange subscriber, the decision reader), so every registration path of `ens.services.devices`
runs as a fast unit test.

They keep the real adapters' rules: a device is saved only while the stored row is still the one
the service read; a mailbox is claimed only when it has no record (or still the token being
replaced), released and activated only while it holds the caller's token; a subscription is
activated only while pending. Each can be scripted to fail the next call the way the real
dependency fails, and they are thread-safe, for the racing registrations.

`RegistryWorld` wires them into a `DeviceRegistry`; `registration(...)` builds a PUT body.
"""

from __future__ import annotations

import dataclasses
import itertools
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ens.core.devices import Device
from ens.core.mail import ReceivedMail
from ens.core.registrations import (
    Caller,
    DecisionView,
    DeviceRegistration,
    MailboxState,
    MailboxSubscription,
)
from ens.core.subscriptions import Subscription, SubscriptionState
from ens.core.watchdog import DUE_SHARD
from ens.errors import DependencyUnavailable, WatermarkInvalid
from ens.services.devices import DeviceRegistry, RegistryPolicy
from support.consumer_fakes import MAILBOX, ManualClock
from support.webhook_fakes import InMemorySubscriptionStore

WEBHOOK_BASE_URL = "https://hooks.example/Prod"
OTHER_MAILBOX = "bob@contoso.example"


@dataclass
class InMemoryDeviceStore:
    rows: dict[tuple[str, str], Device] = field(default_factory=dict)
    saves: list[Device] = field(default_factory=list)
    failures: deque[Exception] = field(default_factory=deque)  # raised by the next save calls
    # Called after every devices_of, to let a test change the world between two reads.
    after_devices_of: Callable[[str], None] | None = None
    _lock: threading.RLock = field(default_factory=threading.RLock, repr=False)

    def get(self, mailbox: str, device_id: str) -> Device | None:
        with self._lock:
            return self.rows.get((mailbox.lower(), device_id))

    def find(self, device_id: str) -> Device | None:
        with self._lock:
            found = [device for (_, stored_id), device in self.rows.items() if stored_id == device_id]
            return max(found, key=lambda device: device.updated_at, default=None)

    def devices_of(self, mailbox: str) -> list[Device]:
        with self._lock:
            devices = [device for (owner, _), device in self.rows.items() if owner == mailbox.lower()]
        if self.after_devices_of is not None:
            self.after_devices_of(mailbox)
        return devices

    def save(self, device: Device, previous: Device | None) -> bool:
        with self._lock:
            if self.failures:
                raise self.failures.popleft()
            key = (device.mailbox, device.device_id)
            if self.rows.get(key) != previous:
                return False
            self.rows[key] = device
            self.saves.append(device)
            return True

    def delete(self, mailbox: str, device_id: str) -> bool:
        with self._lock:
            return self.rows.pop((mailbox.lower(), device_id), None) is not None

    def add(self, *devices: Device) -> None:
        with self._lock:
            for device in devices:
                self.rows[(device.mailbox, device.device_id)] = device


@dataclass
class InMemoryMailboxStore:
    records: dict[str, MailboxSubscription] = field(default_factory=dict)
    claims: int = 0  # successful claims
    # When set, each thread's first get waits here after reading: racing registrations all read
    # "no record" before any of them claims.
    rendezvous: threading.Barrier | None = None
    _met: set[int] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def get(self, mailbox: str) -> MailboxSubscription | None:
        with self._lock:
            record = self.records.get(mailbox)
            first = threading.get_ident() not in self._met
            self._met.add(threading.get_ident())
        if self.rendezvous is not None and first:
            self.rendezvous.wait(timeout=5)
        return record

    def claim(self, record: MailboxSubscription, replacing: str | None = None) -> bool:
        with self._lock:
            current = self.records.get(record.mailbox)
            if (current is not None and current.token != replacing) or (current is None and replacing):
                return False
            self.records[record.mailbox] = record
            self.claims += 1
            return True

    def activate(self, mailbox: str, token: str, subscription_id: str, at: datetime) -> bool:
        with self._lock:
            current = self.records.get(mailbox)
            if current is None or current.token != token:
                return False
            self.records[mailbox] = dataclasses.replace(
                current,
                state=MailboxState.ACTIVE,
                subscription_id=subscription_id,
                updated_at=at,
                reason=None,
            )
            return True

    def move_to(
        self, mailbox: str, old_token: str, new_token: str, subscription_id: str, at: datetime
    ) -> bool:
        with self._lock:
            current = self.records.get(mailbox)
            if current is None or current.token != old_token:
                return False
            self.records[mailbox] = dataclasses.replace(
                current,
                token=new_token,
                state=MailboxState.ACTIVE,
                subscription_id=subscription_id,
                updated_at=at,
                reason=None,
            )
            return True

    def mark_failed(self, mailbox: str, token: str, reason: str, at: datetime) -> bool:
        with self._lock:
            current = self.records.get(mailbox)
            if current is None or current.token != token:
                return False
            self.records[mailbox] = dataclasses.replace(
                current, state=MailboxState.FAILED, reason=reason, updated_at=at
            )
            return True

    def release(self, mailbox: str, token: str) -> bool:
        with self._lock:
            current = self.records.get(mailbox)
            if current is None or current.token != token:
                return False
            del self.records[mailbox]
            return True


@dataclass
class RegistrySubscriptionStore(InMemorySubscriptionStore):
    """The webhook's fake, plus what the registry writes: activate (only while pending) and retire."""

    fail_next_activate: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def put(self, subscription: Subscription) -> None:
        with self._lock:
            super().put(subscription)

    def activate(self, token: str, subscription_id: str, watermark: str, due_at: str | None = None) -> bool:
        with self._lock:
            if self.fail_next_activate:
                self.fail_next_activate = False
                raise DependencyUnavailable("UpdateItem failed")
            current = self.subscriptions.get(token)
            if current is None or current.state is not SubscriptionState.PENDING:
                return False
            self.subscriptions[token] = dataclasses.replace(
                current,
                state=SubscriptionState.ACTIVE,
                subscription_id=subscription_id,
                last_watermark=watermark,
                **({"due_at": due_at, "due_shard": DUE_SHARD} if due_at is not None else {}),
            )
            return True

    def retire(self, token: str) -> None:
        with self._lock:
            current = self.subscriptions.get(token)
            if current is not None:
                self.subscriptions[token] = dataclasses.replace(
                    current, state=SubscriptionState.RETIRED, due_shard=None, due_at=None
                )

    def due(self, now: str, limit: int) -> list[Subscription]:
        with self._lock:
            watched = [
                s
                for s in self.subscriptions.values()
                if s.due_shard == DUE_SHARD and s.due_at is not None and s.due_at <= now
            ]
        return sorted(watched, key=lambda s: s.due_at or "")[:limit]

    def record_failure(self, token: str, failures: int, reason: str, due_at: str) -> bool:
        with self._lock:
            current = self.subscriptions.get(token)
            if current is None or current.state is SubscriptionState.RETIRED or current.due_shard is None:
                return False
            self.subscriptions[token] = dataclasses.replace(
                current, watchdog_failures=failures, last_failure=reason, due_at=due_at
            )
            return True

    def of(self, mailbox: str) -> list[Subscription]:
        with self._lock:
            return [s for s in self.subscriptions.values() if s.mailbox == mailbox]


@dataclass(frozen=True)
class SubscribeCall:
    mailbox: str
    callback_url: str
    folders: tuple[str, ...]
    event_types: tuple[str, ...]
    status_frequency_minutes: int
    watermark: str | None = None


@dataclass
class ScriptedExchange:
    """Answers Subscribe with sub-1, sub-2, ... (watermarks wm-1, ...) unless told to fail; a watermark
    in `invalid_watermarks` gets WatermarkInvalid. `inbox` is what reconcile's FindItem finds."""

    calls: list[SubscribeCall] = field(default_factory=list)
    invalid_watermarks: set[str] = field(default_factory=set)
    inbox: list[ReceivedMail] = field(default_factory=list)
    searches: list[tuple[str, datetime]] = field(default_factory=list)
    failures: deque[Exception] = field(default_factory=deque)  # raised by the next calls
    # Runs inside Subscribe, before it answers: a test's hook into "while Exchange is answering".
    during: Callable[[], None] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def subscribe_push(
        self,
        mailbox: str,
        callback_url: str,
        *,
        folders: Sequence[str] = ("inbox",),
        event_types: Sequence[str] = (),
        status_frequency_minutes: int = 15,
        watermark: str | None = None,
    ) -> tuple[str, str]:
        with self._lock:
            self.calls.append(
                SubscribeCall(
                    mailbox,
                    callback_url,
                    tuple(folders),
                    tuple(event_types),
                    status_frequency_minutes,
                    watermark,
                )
            )
            number = len(self.calls)
            failure = self.failures.popleft() if self.failures else None
            if failure is None and watermark in self.invalid_watermarks:
                failure = WatermarkInvalid(f"{watermark} has expired")
        if self.during is not None:
            self.during()
        if failure is not None:
            raise failure
        return f"sub-{number}", f"wm-{number}"

    def mail_received_since(self, mailbox: str, since: datetime) -> list[ReceivedMail]:
        self.searches.append((mailbox, since))
        return [mail for mail in self.inbox if mail.received_at > since]


@dataclass
class ListDecisionReader:
    entries: list[tuple[str, str, DecisionView]] = field(default_factory=list)

    def add(self, mailbox: str, device_id: str, **fields: Any) -> None:
        values: dict[str, Any] = {
            "item_id": None,
            "event_kind": "NewMail",
            "outcome": "pushed",
            "reason": None,
            "rule": None,
            "received_at": None,
            "latency_ms": None,
            **fields,
        }
        self.entries.append((mailbox, device_id, DecisionView.model_validate(values)))

    def recent(
        self, mailbox: str, device_id: str, *, limit: int, since: datetime | None
    ) -> list[DecisionView]:
        views = [
            view
            for owner, device, view in self.entries
            if (owner, device) == (mailbox, device_id) and (since is None or view.decided_at >= since)
        ]
        return sorted(views, key=lambda view: view.decided_at, reverse=True)[:limit]


@dataclass
class RegistryWorld:
    clock: ManualClock = field(default_factory=ManualClock)
    devices: InMemoryDeviceStore = field(default_factory=InMemoryDeviceStore)
    mailboxes: InMemoryMailboxStore = field(default_factory=InMemoryMailboxStore)
    subscriptions: RegistrySubscriptionStore = field(default_factory=RegistrySubscriptionStore)
    exchange: ScriptedExchange = field(default_factory=ScriptedExchange)
    decisions: ListDecisionReader = field(default_factory=ListDecisionReader)
    policy: RegistryPolicy = field(default_factory=lambda: RegistryPolicy(webhook_base_url=WEBHOOK_BASE_URL))
    _tokens: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def registry(self) -> DeviceRegistry:
        return DeviceRegistry(
            devices=self.devices,
            mailboxes=self.mailboxes,
            subscriptions=self.subscriptions,
            exchange=self.exchange,
            decisions=self.decisions,
            policy=self.policy,
            clock=self.clock,
            token_factory=lambda: f"token-{next(self._tokens):040d}",
        )


def registration(
    mailbox: str = MAILBOX,
    push_token: str = "apns-token-1",  # noqa: S107 (a device token, not a password)
    **fields: Any,
) -> DeviceRegistration:
    return DeviceRegistration.model_validate({"mailbox": mailbox, "push_token": push_token, **fields})


def owner(mailbox: str = MAILBOX) -> Caller:
    return Caller(subject=mailbox)


ADMIN = Caller(subject="admin@contoso.example", is_admin=True)

"""In-memory fakes of the mail consumer's Protocols (DeviceDirectory, MailSource, PushDelivery,
DecisionLog), a manual clock and a recording sleep, so every rule and failure combination of
`ens.services.consumer` runs as a fast unit test.

They keep what the real adapters keep, with the same rules: a device is deactivated only while its
push token is unchanged; a push goes out once per idempotency key, and a failed push is not
remembered (its retry pushes). Each can be scripted to fail the way the real dependency fails,
per call; they are thread-safe, since the consumer runs mailboxes side by side.

`ConsumerWorld` wires them into a `MailConsumer`; the builders (`make_device`, `make_mail`,
`new_mail`, `unread_changed`) give valid models with few words.
"""

from __future__ import annotations

import json
import threading
from collections import Counter, deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import EllipsisType
from typing import Any

from ens.core.decisions import Decision
from ens.core.devices import ContentPolicy, Device
from ens.core.mail import Mail
from ens.core.mail_events import MailEvent
from ens.errors import DependencyUnavailable
from ens.services.consumer import (
    BatchReport,
    ConsumerPolicy,
    Delivery,
    MailConsumer,
    QueuedEvent,
    VipCache,
)

MAILBOX = "alice@contoso.example"
FOLDER = "inbox-folder-id"
# A Wednesday, 10:00 UTC: inside the default work hours.
NOW = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)


# -- time ----------------------------------------------------------------------------------------------


class ManualClock:
    """Wall-clock time and a monotonic counter that move only when told (`advance`)."""

    def __init__(self, now: datetime = NOW) -> None:
        self._now = now
        self._monotonic = 1000.0
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return self._now

    def monotonic(self) -> float:
        with self._lock:
            return self._monotonic

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += timedelta(seconds=seconds)
            self._monotonic += seconds


@dataclass
class RecordingSleep:
    """Records each wait instead of sleeping; moves `clock` (when given) by the time waited."""

    clock: ManualClock | None = None
    waits: list[float] = field(default_factory=list)

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        if self.clock is not None:
            self.clock.advance(seconds)


# -- devices -------------------------------------------------------------------------------------------


@dataclass
class FakeDeviceDirectory:
    devices: dict[str, list[Device]] = field(default_factory=dict)  # mailbox → its devices
    queries: Counter[str] = field(default_factory=Counter)  # mailbox → devices_of calls
    deactivations: list[tuple[str, str, str, datetime]] = field(default_factory=list)
    pushes_recorded: list[tuple[str, tuple[str, ...], datetime]] = field(default_factory=list)
    failures: deque[Exception] = field(default_factory=deque)  # raised by the next devices_of calls
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, *devices: Device) -> None:
        with self._lock:
            for device in devices:
                self.devices.setdefault(device.mailbox, []).append(device)

    def get(self, mailbox: str, device_id: str) -> Device:
        with self._lock:
            (device,) = [d for d in self.devices.get(mailbox, []) if d.device_id == device_id]
            return device

    def devices_of(self, mailbox: str) -> list[Device]:
        with self._lock:
            self.queries[mailbox] += 1
            if self.failures:
                raise self.failures.popleft()
            return list(self.devices.get(mailbox.lower(), []))

    def deactivate(self, device: Device, reason: str, at: datetime) -> None:
        with self._lock:
            self.deactivations.append((device.mailbox, device.device_id, reason, at))
            stored = self.devices.get(device.mailbox, [])
            for index, current in enumerate(stored):
                # As DynamoDB's condition: a device that re-registered with another token stays active.
                if current.device_id == device.device_id and current.push_token == device.push_token:
                    stored[index] = current.model_copy(
                        update={"active": False, "deactivated_reason": reason, "deactivated_at": at}
                    )

    def record_pushes(self, mailbox: str, device_ids: Iterable[str], at: datetime) -> None:
        with self._lock:
            self.pushes_recorded.append((mailbox, tuple(device_ids), at))


# -- Exchange ------------------------------------------------------------------------------------------


@dataclass
class ScriptedMailSource:
    """Mails, unread counts and VIP contacts per mailbox; `fail(operation, ...)` scripts the next calls.

    Operations are "fetch", "unread_count" and "vip_addresses"; a scripted None lets that call through.
    """

    mails: dict[str, dict[str, Mail]] = field(default_factory=dict)
    unread: dict[tuple[str, str], int] = field(default_factory=dict)
    vips: dict[str, frozenset[str]] = field(default_factory=dict)
    servers: dict[str, str] = field(default_factory=dict)
    calls: Counter[str] = field(default_factory=Counter)  # operation → calls
    log: list[tuple[str, str, Any]] = field(default_factory=list)  # (operation, mailbox, argument)
    _script: dict[tuple[str, str | None], deque[Exception | None]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add_mail(self, mailbox: str, mail: Mail) -> Mail:
        with self._lock:
            self.mails.setdefault(mailbox, {})[mail.item_id] = mail
        return mail

    def fail(self, operation: str, *errors: Exception | None, mailbox: str | None = None) -> None:
        """The next calls of `operation` (for `mailbox`, or any) raise these, in order."""
        with self._lock:
            self._script.setdefault((operation, mailbox), deque()).extend(errors)

    def calls_for(self, operation: str, mailbox: str) -> int:
        with self._lock:
            return sum(1 for op, box, _ in self.log if (op, box) == (operation, mailbox))

    def _called(self, operation: str, mailbox: str, argument: Any) -> None:
        with self._lock:
            self.calls[operation] += 1
            self.log.append((operation, mailbox, argument))
            for key in ((operation, mailbox), (operation, None)):
                script = self._script.get(key)
                if script:
                    error = script.popleft()
                    if error is not None:
                        raise error
                    return

    def fetch(self, mailbox: str, items: Sequence[tuple[str, str | None]]) -> dict[str, Mail | None]:
        self._called("fetch", mailbox, [item_id for item_id, _ in items])
        with self._lock:
            known = self.mails.get(mailbox, {})
            return {item_id: known.get(item_id) for item_id, _ in items}

    def unread_count(self, mailbox: str, folder_id: str) -> int:
        self._called("unread_count", mailbox, folder_id)
        with self._lock:
            return self.unread.get((mailbox, folder_id), 0)

    def vip_addresses(self, mailbox: str) -> frozenset[str]:
        self._called("vip_addresses", mailbox, None)
        with self._lock:
            return self.vips.get(mailbox, frozenset())

    def server_name(self, mailbox: str) -> str | None:
        return self.servers.get(mailbox, "ex2019")


# -- CNS -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sent:
    key: str
    payload: dict[str, Any]

    @property
    def device_token(self) -> str:
        return str(self.payload["device_token"])

    @property
    def kind(self) -> str:
        return str(self.payload["kind"])


@dataclass
class FakePushDelivery:
    """Idempotent by key, like IdempotentPushDelivery: a key pushed once is never pushed again."""

    sent: list[Sent] = field(default_factory=list)
    attempts: int = 0
    failures: deque[Exception] = field(default_factory=deque)  # raised by the next deliver calls
    device_failures: dict[str, Exception] = field(default_factory=dict)  # push token → raised each time
    _done: dict[str, int] = field(default_factory=dict)  # key → attempts of the push that went out
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def fail_next(self, *errors: Exception) -> None:
        with self._lock:
            self.failures.extend(errors)

    def fail_device(self, push_token: str, error: Exception) -> None:
        with self._lock:
            self.device_failures[push_token] = error

    def to(self, device: Device) -> list[Sent]:
        with self._lock:
            return [sent for sent in self.sent if sent.device_token == device.push_token]

    def deliver(self, key: str, payload: bytes, seconds_left: Callable[[], float]) -> Delivery:
        document = json.loads(payload)
        with self._lock:
            if key in self._done:
                return Delivery(sent_now=False, attempts=self._done[key])
            self.attempts += 1
            if self.failures:
                raise self.failures.popleft()
            error = self.device_failures.get(document["device_token"])
            if error is not None:
                raise error
            self._done[key] = 1
            self.sent.append(Sent(key, document))
            return Delivery(sent_now=True, attempts=1)


# -- the decision log ----------------------------------------------------------------------------------


@dataclass
class ListDecisionLog:
    """Every decision recorded, in order; keyed like the table by `latest()` (a redelivery overwrites)."""

    records: list[Decision] = field(default_factory=list)
    failures: deque[Exception] = field(default_factory=deque)  # raised by the next record calls
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record(self, decisions: Sequence[Decision]) -> None:
        with self._lock:
            if self.failures:
                raise self.failures.popleft()
            self.records.extend(decisions)

    def latest(self) -> dict[tuple[str, str | None, str, str | None], Decision]:
        """(mailbox, device, event kind, item) → the last decision, as DecisionsTable keeps them."""
        with self._lock:
            return {(d.mailbox, d.device_id, d.event_kind, d.item_id): d for d in self.records}

    def for_device(self, device_id: str | None, item_id: str | EllipsisType | None = ...) -> list[Decision]:
        """The device's decisions (None: mailbox-level); only those of `item_id` unless it is `...`."""
        with self._lock:
            return [
                d
                for d in self.records
                if d.device_id == device_id and (item_id is ... or d.item_id == item_id)
            ]

    def only(self, device_id: str | None, item_id: str | None) -> Decision:
        """The one decision on this device for this NewMail item."""
        (decision,) = [d for d in self.for_device(device_id, item_id) if d.event_kind == "NewMail"]
        return decision

    def only_count(self, device_id: str | None) -> Decision:
        """The one decision on this device for an UnreadCountChanged event."""
        (decision,) = [d for d in self.for_device(device_id) if d.event_kind == "UnreadCountChanged"]
        return decision


# -- builders ------------------------------------------------------------------------------------------


def make_device(
    device_id: str = "phone", *, mailbox: str = MAILBOX, active: bool = True, **rules: Any
) -> Device:
    return Device.model_validate(
        {
            "mailbox": mailbox,
            "device_id": device_id,
            "push_token": f"token-{device_id}",
            "active": active,
            "registered_at": NOW - timedelta(days=30),
            "updated_at": NOW - timedelta(days=30),
            "rules": rules,
        }
    )


def make_mail(item_id: str, **fields: Any) -> Mail:
    values: dict[str, Any] = {
        "received_at": NOW - timedelta(seconds=5),
        "is_read": False,
        "subject": f"Subject of {item_id}",
        "sender_name": "Bob Brown",
        "sender_address": "bob@contoso.example",
        "folder_id": FOLDER,
        "preview": f"Snippet of {item_id}",
        "internet_message_id": f"<{item_id}@contoso.example>",
    }
    values.update(fields)
    return Mail(item_id=item_id, **values)


def new_mail(
    item_id: str | None, *, mailbox: str = MAILBOX, timestamp: str = "2026-12-02T09:59:55Z", **fields: Any
) -> MailEvent:
    return MailEvent(
        kind="NewMail",
        mailbox=mailbox,
        subscription_id="sub-1",
        watermark=f"wm-{item_id}",
        timestamp=timestamp,
        folder_id=FOLDER,
        item_id=item_id,
        change_key=f"ck-{item_id}" if item_id else None,
        **fields,
    )


def unread_changed(
    count: int, *, mailbox: str = MAILBOX, timestamp: str = "2026-12-02T09:59:56Z", watermark: str = "wm-u"
) -> MailEvent:
    return MailEvent(
        kind="UnreadCountChanged",
        mailbox=mailbox,
        subscription_id="sub-1",
        watermark=watermark,
        timestamp=timestamp,
        folder_id=FOLDER,
        unread_count=count,
    )


def queued(*events: MailEvent, prefix: str = "msg") -> list[QueuedEvent]:
    """One SQS message per event, message ids msg-1, msg-2, …"""
    return [QueuedEvent(f"{prefix}-{index}", event) for index, event in enumerate(events, start=1)]


@dataclass
class ConsumerWorld:
    """A MailConsumer over the fakes; `process(batch)` runs one batch with `seconds_left` left."""

    devices: FakeDeviceDirectory = field(default_factory=FakeDeviceDirectory)
    exchange: ScriptedMailSource = field(default_factory=ScriptedMailSource)
    push: FakePushDelivery = field(default_factory=FakePushDelivery)
    decisions: ListDecisionLog = field(default_factory=ListDecisionLog)
    clock: ManualClock = field(default_factory=ManualClock)
    sleep: RecordingSleep = field(default_factory=RecordingSleep)
    stale_after: timedelta = timedelta(hours=1)
    content_policy: ContentPolicy = ContentPolicy.FULL
    vip_cache_seconds: float = 900.0
    max_parallel_mailboxes: int = 4
    seconds_left: float = 600.0
    _consumer: MailConsumer | None = None

    @property
    def consumer(self) -> MailConsumer:
        if self._consumer is None:
            self._consumer = MailConsumer(
                devices=self.devices,
                exchange=self.exchange,
                push=self.push,
                decisions=self.decisions,
                policy=ConsumerPolicy(
                    stale_after=self.stale_after,
                    content_policy=self.content_policy,
                    vip_cache_seconds=self.vip_cache_seconds,
                    max_parallel_mailboxes=self.max_parallel_mailboxes,
                ),
                vip_cache=VipCache(self.vip_cache_seconds, monotonic=self.clock.monotonic),
                clock=self.clock,
                sleep=self.sleep,
            )
        return self._consumer

    def process(self, batch: Sequence[QueuedEvent]) -> BatchReport:
        return self.consumer.process(batch, lambda: self.seconds_left)

    def mail(self, item_id: str, *, mailbox: str = MAILBOX, **fields: Any) -> MailEvent:
        """A mail in Exchange and the NewMail event that announces it."""
        self.exchange.add_mail(mailbox, make_mail(item_id, **fields))
        return new_mail(item_id, mailbox=mailbox)

    def device(self, device_id: str = "phone", **fields: Any) -> Device:
        device = make_device(device_id, **fields)
        self.devices.add(device)
        return device


def transient(detail: str = "down") -> DependencyUnavailable:
    return DependencyUnavailable(detail)

"""The mail consumer: from queued mail events to pushes on the right devices, or recorded reasons.

Knows nothing of Lambda or SQS; the handler turns records into `QueuedEvent`s and the returned
`BatchReport` into a partial batch response, logs and metrics. Per batch:
1. events are grouped by mailbox; mailboxes run side by side (the Exchange adapter caps each server);
2. per mailbox: one Query for its devices, one GetItem for all its new mails (≤ 100 ids a request),
   the unread count from the folder's own event when one at least as fresh is in the batch (else one
   GetFolder), VIP contacts only when a decision hinges on them (cached per mailbox);
3. per mail and device: the rules decide; a push goes out once per (mailbox, item, device) whatever
   SQS redelivers; suppressed mails and read-elsewhere counts become one badge-only update per device;
4. every event ends in a push or a recorded decision with its reason, or it is reported failed so
   SQS retries it (Exchange busy past the time left, CNS down, DynamoDB down).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Protocol

from aws_lambda_powertools import Logger

from ens.core.decisions import Decision, Outcome, correlation_id, idempotency_key
from ens.core.devices import ContentPolicy, Device
from ens.core.mail import Mail
from ens.core.mail_events import MailEvent
from ens.core.payloads import alert_payload, badge_payload, encode
from ens.core.rules import Reason, Rule, decide
from ens.errors import AdminActionRequired, DependencyUnavailable, DeviceTokenRejected, ExchangeBusy

logger = Logger(child=True)

NEW_MAIL = "NewMail"
UNREAD_COUNT_CHANGED = "UnreadCountChanged"
_EWS_REQUEST_MARGIN_SECONDS = 5.0
_ADMIN_REASONS = {
    "impersonation_denied": Reason.IMPERSONATION_DENIED,
    "mailbox_unknown": Reason.MAILBOX_UNKNOWN,
    "no_server": Reason.NO_SERVER,
}


# -- what the service needs from outside -------------------------------------------------------------


class DeviceDirectory(Protocol):
    def devices_of(self, mailbox: str) -> list[Device]: ...

    def deactivate(self, device: Device, reason: str, at: datetime) -> None: ...

    def record_pushes(self, mailbox: str, device_ids: Iterable[str], at: datetime) -> None: ...


class MailSource(Protocol):
    def fetch(self, mailbox: str, items: Sequence[tuple[str, str | None]]) -> dict[str, Mail | None]: ...

    def unread_count(self, mailbox: str, folder_id: str) -> int: ...

    def vip_addresses(self, mailbox: str) -> frozenset[str]: ...

    def server_name(self, mailbox: str) -> str | None: ...


@dataclass(frozen=True, slots=True)
class Delivery:
    sent_now: bool  # False: an earlier delivery of the same (mailbox, item, device) already pushed it
    attempts: int


class PushDelivery(Protocol):
    """Pushes a payload once per key (idempotent). Raises DeviceTokenRejected for a dead device token,
    DependencyUnavailable when CNS stays down, AdminActionRequired when CNS refuses us."""

    def deliver(self, key: str, payload: bytes, seconds_left: Callable[[], float]) -> Delivery: ...


class DecisionLog(Protocol):
    def record(self, decisions: Sequence[Decision]) -> None: ...


# -- input and output ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class QueuedEvent:
    message_id: str
    event: MailEvent


@dataclass
class BatchReport:
    failed_message_ids: list[str] = field(default_factory=list)
    events: Counter[str] = field(default_factory=Counter)
    fetched: int = 0
    gone: int = 0
    pushed: int = 0
    badge_updates: int = 0
    duplicates_skipped: int = 0
    suppressed: Counter[str] = field(default_factory=Counter)
    cns_errors: Counter[str] = field(default_factory=Counter)
    exchange_errors: Counter[str] = field(default_factory=Counter)
    admin_actions: Counter[str] = field(default_factory=Counter)
    push_latencies_ms: list[int] = field(default_factory=list)

    def merge(self, other: BatchReport) -> None:
        self.failed_message_ids.extend(other.failed_message_ids)
        for name in ("events", "suppressed", "cns_errors", "exchange_errors", "admin_actions"):
            getattr(self, name).update(getattr(other, name))
        for name in ("fetched", "gone", "pushed", "badge_updates", "duplicates_skipped"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.push_latencies_ms.extend(other.push_latencies_ms)


@dataclass(frozen=True, slots=True)
class ConsumerPolicy:
    stale_after: timedelta
    content_policy: ContentPolicy
    vip_cache_seconds: float
    max_parallel_mailboxes: int


class VipCache:
    """VIP contact addresses per mailbox, kept for a while: one Exchange lookup per mailbox and period."""

    def __init__(self, ttl_seconds: float, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._ttl = ttl_seconds
        self._monotonic = monotonic
        self._entries: dict[str, tuple[float, frozenset[str]]] = {}
        self._lock = threading.Lock()

    def get(self, mailbox: str, load: Callable[[], frozenset[str]]) -> frozenset[str]:
        with self._lock:
            entry = self._entries.get(mailbox)
        if entry is not None and self._monotonic() - entry[0] < self._ttl:
            return entry[1]
        addresses = load()
        with self._lock:
            self._entries[mailbox] = (self._monotonic(), addresses)
        return addresses


class MailConsumer:
    def __init__(
        self,
        *,
        devices: DeviceDirectory,
        exchange: MailSource,
        push: PushDelivery,
        decisions: DecisionLog,
        policy: ConsumerPolicy,
        vip_cache: VipCache | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.devices = devices
        self.exchange = exchange
        self.push = push
        self.decisions = decisions
        self.policy = policy
        self.vips = vip_cache or VipCache(policy.vip_cache_seconds)
        self.clock = clock
        self.sleep = sleep

    def process(self, batch: Sequence[QueuedEvent], seconds_left: Callable[[], float]) -> BatchReport:
        by_mailbox: dict[str, list[QueuedEvent]] = {}
        for queued in batch:
            by_mailbox.setdefault(queued.event.mailbox.lower(), []).append(queued)
        report = BatchReport()
        workers = max(1, min(self.policy.max_parallel_mailboxes, len(by_mailbox)))
        if workers == 1:
            reports = [self._mailbox(mailbox, events, seconds_left) for mailbox, events in by_mailbox.items()]
        else:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                reports = list(
                    pool.map(lambda item: self._mailbox(item[0], item[1], seconds_left), by_mailbox.items())
                )
        for mailbox_report in reports:
            report.merge(mailbox_report)
        return report

    # -- one mailbox -------------------------------------------------------------------------------

    def _mailbox(
        self, mailbox: str, events: list[QueuedEvent], seconds_left: Callable[[], float]
    ) -> BatchReport:
        report = BatchReport()
        report.events.update(queued.event.kind for queued in events)
        try:
            _MailboxRun(self, mailbox, events, seconds_left, report).run()
        except DependencyUnavailable as error:
            # Nothing of this mailbox is lost: SQS redelivers its events, idempotency skips what was pushed.
            logger.warning(
                "mailbox batch retried",
                extra={
                    "mailbox": mailbox,
                    "events": len(events),
                    "fault": type(error).__name__,
                    "detail": str(error),
                },
            )
            report.failed_message_ids = [queued.message_id for queued in events]
        return report


class _MailboxRun:
    """The work for one mailbox in one batch."""

    def __init__(
        self,
        consumer: MailConsumer,
        mailbox: str,
        events: list[QueuedEvent],
        seconds_left: Callable[[], float],
        report: BatchReport,
    ) -> None:
        self.c = consumer
        self.mailbox = mailbox
        self.events = events
        self.seconds_left = seconds_left
        self.report = report
        self.decisions: list[Decision] = []
        self.failed: set[str] = set()
        self.pushed_devices: set[str] = set()
        self.rejected_devices: set[str] = set()  # CNS refused their token in this batch
        self.alert_badges: dict[str, int | None] = {}  # device → the count its alert in this batch carried
        self.badge_owed_decisions: dict[str, list[int]] = {}  # device → its suppressed mails' decisions
        self.badge_owed_events: dict[str, QueuedEvent] = {}  # device → its first suppressed mail's event
        self.badge_wanted: set[str] = set()  # devices owed a badge-only update
        self._unread_inputs: tuple[list[QueuedEvent], list[QueuedEvent], dict[str, Mail | None]] = (
            [],
            [],
            {},
        )
        self._unread_known = False
        self._unread_value: int | None = None

    def run(self) -> None:
        devices = self.c.devices.devices_of(self.mailbox)
        new_mail = [q for q in self.events if q.event.kind == NEW_MAIL]
        counts = [q for q in self.events if q.event.kind == UNREAD_COUNT_CHANGED]
        unknown = [q for q in self.events if q.event.kind not in (NEW_MAIL, UNREAD_COUNT_CHANGED)]
        for queued in unknown:
            logger.warning(
                "unknown mail event kind", extra={"mailbox": self.mailbox, "kind": queued.event.kind}
            )
        active = [device for device in devices if device.active]
        if not devices:
            for queued in new_mail + counts:
                self._decide_mailbox_level(queued.event, Reason.NO_DEVICES)
            self._finish()
            return
        for device in devices:
            if not device.active:
                for queued in new_mail + counts:
                    self._record(device, queued.event, None, Outcome.SUPPRESSED, Reason.DEVICE_INACTIVE, None)
        if not active:
            self._finish()
            return

        mails = self._fetch(new_mail, active)
        if mails is None:  # an admin must act; decisions recorded
            self._finish()
            return
        self._unread_inputs = (new_mail, counts, mails)
        for queued in new_mail:
            event = queued.event
            if event.item_id is None:
                for device in active:
                    self._record(device, event, None, Outcome.SUPPRESSED, Reason.NO_ITEM_ID, None)
                continue
            mail = mails.get(event.item_id)
            if mail is None:
                self.report.gone += 1
                for device in active:
                    self._record(device, event, None, Outcome.SUPPRESSED, Reason.GONE, None)
                continue
            for device in active:
                if device.device_id in self.rejected_devices:
                    # Deactivated by an earlier push of this batch: no further push, but a decision.
                    self._record(device, event, mail, Outcome.SUPPRESSED, Reason.DEVICE_INACTIVE, None)
                else:
                    self._mail_to_device(queued, mail, device)
        self._badges(active, counts)
        self._finish()

    # -- Exchange --------------------------------------------------------------------------------------

    def _with_back_off[T](self, call: Callable[[], T]) -> T:
        """Exchange asked us to wait (ErrorServerBusy): wait while the invocation has time, else fail."""
        while True:
            try:
                return call()
            except ExchangeBusy as busy:
                self.report.exchange_errors["ErrorServerBusy"] += 1
                # Keep time for the request after the wait and for the rest of the batch.
                if busy.back_off_seconds + _EWS_REQUEST_MARGIN_SECONDS > self.seconds_left():
                    raise
                self.c.sleep(busy.back_off_seconds)
            except DependencyUnavailable as error:
                self.report.exchange_errors[type(error.__cause__ or error).__name__] += 1
                raise

    def _fetch(self, new_mail: list[QueuedEvent], active: list[Device]) -> dict[str, Mail | None] | None:
        refs = list(
            dict.fromkeys(
                (q.event.item_id, q.event.change_key) for q in new_mail if q.event.item_id is not None
            )
        )
        unique: dict[str, str | None] = {}
        for item_id, change_key in refs:
            unique.setdefault(item_id, change_key)
        if not unique:
            return {}
        try:
            mails = self._with_back_off(lambda: self.c.exchange.fetch(self.mailbox, list(unique.items())))
        except AdminActionRequired as error:
            self._admin_action(error, new_mail, active)
            return None
        self.report.fetched += sum(mail is not None for mail in mails.values())
        return mails

    def _admin_action(
        self, error: AdminActionRequired, events: list[QueuedEvent], devices: list[Device]
    ) -> None:
        """Decisions with the refusal's reason for each device ("why didn't my phone buzz?" reads them
        by device), or mailbox-level ones when there is none."""
        reason = _ADMIN_REASONS.get(error.code, Reason.IMPERSONATION_DENIED)
        self.report.admin_actions[error.code] += 1
        self.report.exchange_errors[error.code] += 1
        logger.error(
            "Exchange refused the mailbox: an admin must act",
            extra={
                "mailbox": self.mailbox,
                "server": self.c.exchange.server_name(self.mailbox),
                "code": error.code,
                "detail": error.detail,
            },
        )
        for queued in events:
            if not devices:
                self._decide_mailbox_level(queued.event, reason)
            for device in devices:
                self._record(device, queued.event, None, Outcome.SUPPRESSED, reason, None)

    def _unread(self) -> int | None:
        """The unread count, looked up once per mailbox and batch, and only when a push needs it."""
        if not self._unread_known:
            self._unread_value = self._unread_count(*self._unread_inputs)
            self._unread_known = True
        return self._unread_value

    def _unread_count(
        self, new_mail: list[QueuedEvent], counts: list[QueuedEvent], mails: dict[str, Mail | None]
    ) -> int | None:
        """The freshest count at hand: the folder's own event when no older than the newest mail event
        (Exchange sends it with each delivery); otherwise one GetFolder."""
        latest = _latest(counts)
        newest_mail = max((q.event.timestamp or "" for q in new_mail), default="")
        if (
            latest is not None
            and latest.event.unread_count is not None
            and (latest.event.timestamp or "") >= newest_mail
        ):
            return latest.event.unread_count
        folder_id = next(
            (mail.folder_id for mail in mails.values() if mail is not None and mail.folder_id), None
        )
        if folder_id is None:
            return latest.event.unread_count if latest is not None else None
        try:
            return self._with_back_off(lambda: self.c.exchange.unread_count(self.mailbox, folder_id))
        except (DependencyUnavailable, AdminActionRequired) as error:
            # A push without a badge beats no push: the mail itself was fetched.
            logger.warning(
                "unread count unavailable", extra={"mailbox": self.mailbox, "fault": type(error).__name__}
            )
            return latest.event.unread_count if latest is not None else None

    def _is_vip_contact(self, address: str) -> bool:
        addresses = self.c.vips.get(
            self.mailbox, lambda: self._with_back_off(lambda: self.c.exchange.vip_addresses(self.mailbox))
        )
        return address.lower() in addresses

    # -- deciding and pushing ----------------------------------------------------------------------

    def _mail_to_device(self, queued: QueuedEvent, mail: Mail, device: Device) -> None:
        now = self.c.clock()
        try:
            verdict = decide(
                device.rules,
                mail,
                now=now,
                stale_after=self.c.policy.stale_after,
                is_vip_contact=self._is_vip_contact,
            )
        except AdminActionRequired as error:
            self._admin_action(error, [queued], [device])
            return
        if not verdict.notify:
            assert verdict.reason is not None
            self._record(device, queued.event, mail, Outcome.SUPPRESSED, verdict.reason, verdict.rule)
            if device.rules.badge_updates:
                self.badge_wanted.add(device.device_id)
                self.badge_owed_decisions.setdefault(device.device_id, []).append(len(self.decisions) - 1)
                self.badge_owed_events.setdefault(device.device_id, queued)
            return
        unread = self._unread()
        payload = encode(
            alert_payload(device, mail, unread_count=unread, policy=self.c.policy.content_policy)
        )
        key = idempotency_key(self.mailbox, mail.item_id, device.device_id)
        if self._deliver(device, queued, key, payload, mail):
            self.alert_badges[device.device_id] = unread
            self._record(device, queued.event, mail, Outcome.PUSHED, None, verdict.rule)

    def _deliver(
        self, device: Device, queued: QueuedEvent, key: str, payload: bytes, mail: Mail | None
    ) -> bool:
        """Push once; True when pushed (now or by an earlier delivery), False when it ended otherwise."""
        try:
            delivery = self.c.push.deliver(key, payload, self.seconds_left)
        except DependencyUnavailable as error:
            self.report.cns_errors[str(getattr(error, "status", None) or type(error).__name__)] += 1
            logger.warning(
                "push retried later",
                extra={"mailbox": self.mailbox, "device_id": device.device_id, "fault": str(error)},
            )
            self.failed.add(queued.message_id)
            return False
        except AdminActionRequired as error:
            self.report.cns_errors[error.code] += 1
            self.report.admin_actions[error.code] += 1
            logger.error(
                "CNS refused us: an admin must act", extra={"code": error.code, "detail": error.detail}
            )
            self.failed.add(queued.message_id)
            return False
        except DeviceTokenRejected as error:
            status = str(error.status)
            self.rejected_devices.add(device.device_id)
            self.report.cns_errors[status] += 1
            self.c.devices.deactivate(
                device, f"push relay answered HTTP {status} {error.reason}".strip(), self.c.clock()
            )
            logger.warning(
                "device deactivated: CNS refused its token",
                extra={"mailbox": self.mailbox, "device_id": device.device_id, "status": status},
            )
            self._record(device, queued.event, mail, Outcome.SUPPRESSED, Reason.DEVICE_TOKEN_REJECTED, None)
            return False
        self.pushed_devices.add(device.device_id)
        if delivery.sent_now:
            if mail is not None:
                self.report.pushed += 1
                latency = int((self.c.clock() - mail.received_at).total_seconds() * 1000)
                self.report.push_latencies_ms.append(latency)
            else:
                self.report.badge_updates += 1
            logger.info(
                "pushed",
                extra={
                    "correlation_id": correlation_id(self.mailbox, mail.item_id if mail else None),
                    "mailbox": self.mailbox,
                    "device_id": device.device_id,
                    "kind": "alert" if mail is not None else "badge",
                    "attempts": delivery.attempts,
                },
            )
        else:
            self.report.duplicates_skipped += 1
        return True

    def _badges(self, active: list[Device], counts: list[QueuedEvent]) -> None:
        """One badge-only update per device for the latest count: reads elsewhere, suppressed mails.

        An alert pushed in this batch already carried the count it knew; only a different count is sent.
        """
        latest = _latest(counts)
        # The same freshest count the alerts carried: a count event older than a mail of the batch
        # must not move the badge back.
        count = self._unread() if latest is not None or self.badge_wanted else None
        for device in active:
            if device.device_id in self.rejected_devices:
                continue
            if not device.rules.badge_updates:
                self._record_counts(device, counts, None, Reason.BADGE_UPDATES_OFF)
                continue
            owed = latest is not None or device.device_id in self.badge_wanted
            shown = device.device_id in self.alert_badges and self.alert_badges[device.device_id] == count
            if not owed or count is None or shown:
                self._record_counts(device, counts, None, Reason.COALESCED)
                continue
            marker = (latest.event.watermark or latest.event.timestamp) if latest is not None else None
            key = idempotency_key(
                self.mailbox, f"badge:{marker or self._newest_item()}:{count}", device.device_id
            )
            # The event retried when the badge cannot go out: one that owes it, so the retry sends it.
            trigger = latest or self.badge_owed_events[device.device_id]
            if self._deliver(device, trigger, key, encode(badge_payload(device, unread_count=count)), None):
                self._record_counts(device, counts, latest, Reason.COALESCED)
                # The suppressed mails of this device did move its badge: say so in their decisions.
                for index in self.badge_owed_decisions.get(device.device_id, []):
                    self.decisions[index] = replace(self.decisions[index], outcome=Outcome.BADGE_ONLY)
            elif trigger.message_id in self.failed:
                self.failed.update(queued.message_id for queued in counts)

    def _record_counts(
        self, device: Device, counts: list[QueuedEvent], shown: QueuedEvent | None, reason: Reason
    ) -> None:
        """Decisions for unread-count events: `shown` updated the badge, the others did not, for `reason`."""
        for queued in counts:
            if queued is shown:
                self._record(device, queued.event, None, Outcome.BADGE_ONLY, None, None)
            else:
                self._record(device, queued.event, None, Outcome.SUPPRESSED, reason, None)

    def _newest_item(self) -> str:
        return max((q.event.item_id or "" for q in self.events if q.event.kind == NEW_MAIL), default="")

    # -- records -------------------------------------------------------------------------------------

    def _decide_mailbox_level(self, event: MailEvent, reason: Reason) -> None:
        """A decision for the mailbox as a whole (it has no device to decide for): key mailbox#-."""
        self._record(None, event, None, Outcome.SUPPRESSED, reason, None)

    def _record(
        self,
        device: Device | None,
        event: MailEvent,
        mail: Mail | None,
        outcome: Outcome,
        reason: Reason | None,
        rule: Rule | None,
    ) -> None:
        """Every decision goes through here: the decision log, the INFO line, the suppression count."""
        decided_at = self.c.clock()
        received_at = mail.received_at if mail is not None else None
        latency = (
            int((decided_at - received_at).total_seconds() * 1000)
            if outcome is Outcome.PUSHED and received_at is not None
            else None
        )
        device_id = device.device_id if device is not None else None
        if outcome is Outcome.SUPPRESSED and reason is not None:
            self.report.suppressed[reason.value] += 1
        self.decisions.append(
            Decision(
                mailbox=self.mailbox,
                device_id=device_id,
                item_id=event.item_id,
                event_kind=event.kind,
                outcome=outcome,
                reason=reason,
                rule=rule,
                received_at=received_at,
                decided_at=decided_at,
                latency_ms=latency,
            )
        )
        logger.info(
            "decision",
            extra={
                "correlation_id": correlation_id(self.mailbox, event.item_id),
                "mailbox": self.mailbox,
                "device_id": device_id,
                "event_kind": event.kind,
                "outcome": outcome.value,
                "reason": reason.value if reason else None,
                "rule": rule.value if rule else None,
                "latency_ms": latency,
            },
        )

    def _finish(self) -> None:
        # A decision is keyed by device and event: the retry of a failed event overwrites, never doubles.
        if self.decisions:
            self.c.decisions.record(self.decisions)
        if self.pushed_devices:
            self.c.devices.record_pushes(self.mailbox, sorted(self.pushed_devices), self.c.clock())
        self.report.failed_message_ids.extend(
            q.message_id for q in self.events if q.message_id in self.failed
        )


def _latest(counts: list[QueuedEvent]) -> QueuedEvent | None:
    """The newest unread-count event: latest TimeStamp, the later queue position on a tie."""
    latest: QueuedEvent | None = None
    for queued in counts:
        if latest is None or (queued.event.timestamp or "") >= (latest.event.timestamp or ""):
            latest = queued
    return latest

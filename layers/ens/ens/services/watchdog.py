"""The subscription watchdog's service: find the push subscriptions that need attention and renew them.

Knows nothing of Lambda or EventBridge; the handler calls `Watchdog.run()` once per scheduled event and
turns its RunReport into metrics. Decisions (what is due, what to do, how long to back off) are the pure
functions of ens.core.watchdog.

For each due record, the renewal goes:
1. a new `pending` Subscription record with a new token (in the ByDueAt index, so a run that dies
   here is finished by a later one);
2. Subscribe from the last watermark ENS saw: Exchange replays every event after it (replay); if it
   answers ErrorInvalidWatermark, Subscribe fresh and queue NewMail events for the inbox's mail
   received since the last event ENS saw (reconcile), before anything points at the new subscription;
3. the new record active, the mailbox's MailboxesTable record moved to it (conditional on still naming
   the old token: a registration that replaced it meanwhile wins), the old record retired, so a late
   callback on the old subscription gets Unsubscribe.
A failure leaves the old record watched with a later `due_at` (exponential back-off); after
`give_up_after` of them the mailbox is marked failed with the reason, and still retried slowly.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from aws_lambda_powertools import Logger

from ens.core.mail import ReceivedMail
from ens.core.mail_events import MailEvent
from ens.core.registrations import (
    DEFAULT_STATUS_FREQUENCY_MINUTES,
    SUBSCRIPTION_EVENT_TYPES,
    MailboxState,
    MailboxSubscription,
    callback_url,
)
from ens.core.subscriptions import Subscription, SubscriptionState, new_callback_token
from ens.core.watchdog import (
    DUE_SHARD,
    Action,
    Plan,
    WatchdogPolicy,
    heartbeat_deadline,
    iso,
    pending_due,
    plan,
    reconcile_since,
    retry_delay,
)
from ens.errors import AdminActionRequired, DependencyUnavailable, ExchangeBusy, WatermarkInvalid

logger = Logger(child=True)

# Stop taking new records when less than this is left of the invocation: the rest stay due.
_SECONDS_PER_RECORD = 5.0


class SubscriptionStore(Protocol):
    def due(self, now: str, limit: int) -> list[Subscription]: ...

    def put(self, subscription: Subscription) -> None: ...

    def activate(
        self, token: str, subscription_id: str, watermark: str, due_at: str | None = None
    ) -> bool: ...

    def retire(self, token: str) -> None: ...

    def record_failure(self, token: str, failures: int, reason: str, due_at: str) -> bool: ...


class MailboxStore(Protocol):
    def get(self, mailbox: str) -> MailboxSubscription | None: ...

    def move_to(
        self, mailbox: str, old_token: str, new_token: str, subscription_id: str, at: datetime
    ) -> bool: ...

    def mark_failed(self, mailbox: str, token: str, reason: str, at: datetime) -> bool: ...


class ExchangeSubscriber(Protocol):
    def subscribe_push(
        self,
        mailbox: str,
        callback_url: str,
        *,
        folders: Sequence[str] = ("inbox",),
        event_types: Sequence[str] = SUBSCRIPTION_EVENT_TYPES,
        status_frequency_minutes: int = DEFAULT_STATUS_FREQUENCY_MINUTES,
        watermark: str | None = None,
    ) -> tuple[str, str]: ...

    def mail_received_since(self, mailbox: str, since: datetime) -> list[ReceivedMail]: ...


class MailEventQueue(Protocol):
    def send(self, events: Sequence[MailEvent]) -> None: ...


@dataclass(frozen=True, slots=True)
class SubscribeSettings:
    """How the watchdog subscribes: as the devices API does (same callback base, folders, events)."""

    webhook_base_url: str
    status_frequency_minutes: int = DEFAULT_STATUS_FREQUENCY_MINUTES
    folders: tuple[str, ...] = ("inbox",)
    event_types: tuple[str, ...] = SUBSCRIPTION_EVENT_TYPES


@dataclass
class RunReport:
    """What one run did; the handler turns it into metrics."""

    due: Counter[str] = field(default_factory=Counter)  # by Cause
    resubscribed: int = 0
    replayed: int = 0  # resubscribed from a watermark
    reconciled: int = 0  # resubscribed fresh after ErrorInvalidWatermark
    reconciled_mails: int = 0
    retired: int = 0  # no longer the mailbox's subscription: left the index
    superseded: int = 0  # a registration replaced the mailbox's subscription while we renewed it
    failures: Counter[str] = field(default_factory=Counter)  # by reason
    marked_failed: int = 0  # mailboxes newly marked failed
    still_failing: int = 0  # attempts that failed for mailboxes at or past the give-up threshold
    left_for_next_run: int = 0

    @property
    def read(self) -> int:
        return sum(self.due.values()) + self.retired


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _reason(error: Exception) -> str:
    if isinstance(error, AdminActionRequired):
        return error.code
    if isinstance(error, ExchangeBusy):
        return "exchange_busy"
    return "dependency_unavailable"


class Watchdog:
    def __init__(
        self,
        *,
        subscriptions: SubscriptionStore,
        mailboxes: MailboxStore,
        exchange: ExchangeSubscriber,
        queue: MailEventQueue,
        subscribe: SubscribeSettings,
        policy: WatchdogPolicy = WatchdogPolicy(),  # noqa: B008  (frozen: one shared default is fine)
        clock: Callable[[], datetime] = _utc_now,
        token_factory: Callable[[], str] = new_callback_token,
    ) -> None:
        self._subscriptions = subscriptions
        self._mailboxes = mailboxes
        self._exchange = exchange
        self._queue = queue
        self._subscribe = subscribe
        self._policy = policy
        self._clock = clock
        self._new_token = token_factory

    def run(self, seconds_left: Callable[[], float] | None = None) -> RunReport:
        report = RunReport()
        now = self._clock()
        due = self._subscriptions.due(iso(now), self._policy.batch_limit)
        for index, subscription in enumerate(due):
            if seconds_left is not None and seconds_left() < _SECONDS_PER_RECORD:
                report.left_for_next_run = len(due) - index
                logger.warning("watchdog run out of time", extra={"left": report.left_for_next_run})
                break
            try:
                self._attend(subscription, now, report)
            except DependencyUnavailable as error:
                # Our own stores failed: the record stays due and the next run tries again.
                report.failures["store_unavailable"] += 1
                logger.warning(
                    "watchdog could not attend a subscription",
                    extra={"mailbox": subscription.mailbox, "error": str(error)},
                )
        return report

    # -- one record ------------------------------------------------------------------------------------

    def _attend(self, subscription: Subscription, now: datetime, report: RunReport) -> None:
        mailbox = self._mailboxes.get(subscription.mailbox)
        decided = plan(subscription, mailbox.token if mailbox is not None else None, now)
        if decided.action is Action.NOT_DUE:
            return
        if decided.action is Action.RETIRE:
            self._subscriptions.retire(subscription.token)
            report.retired += 1
            return
        # plan() retires a record whose mailbox has none, and gives every other action a cause.
        assert mailbox is not None
        assert decided.cause is not None
        report.due[decided.cause.value] += 1
        logger.info(
            "subscription due",
            extra={
                "mailbox": subscription.mailbox,
                "cause": decided.cause.value,
                "token_due": subscription.due_at,
            },
        )
        try:
            self._renew(subscription, decided, report)
        except (AdminActionRequired, DependencyUnavailable) as error:
            self._failed(subscription, mailbox, _reason(error), report)

    def _renew(self, old: Subscription, decided: Plan, report: RunReport) -> None:
        settings = self._subscribe
        frequency = old.status_frequency_minutes or settings.status_frequency_minutes
        token = self._new_token()
        created = self._clock()
        self._subscriptions.put(
            Subscription(
                token=token,
                mailbox=old.mailbox,
                state=SubscriptionState.PENDING,
                created_at=iso(created),
                status_frequency_minutes=frequency,
                due_shard=DUE_SHARD,
                due_at=pending_due(created, self._policy),
                # Carried over: a later reconcile of the new subscription starts from the same place.
                last_event_at=old.last_event_at,
            )
        )

        def subscribe(watermark: str | None) -> tuple[str, str]:
            return self._exchange.subscribe_push(
                old.mailbox,
                callback_url(settings.webhook_base_url, token),
                folders=settings.folders,
                event_types=settings.event_types,
                status_frequency_minutes=frequency,
                watermark=watermark,
            )

        reconcile = False
        try:
            try:
                subscription_id, watermark = subscribe(decided.watermark)
            except WatermarkInvalid:
                subscription_id, watermark = subscribe(None)
                reconcile = True
            activated = self._clock()
            due_at = iso(heartbeat_deadline(activated, frequency, self._policy.grace))
            if not self._subscriptions.activate(token, subscription_id, watermark, due_at):
                raise DependencyUnavailable("the new subscription was retired while Exchange answered")
            if reconcile:
                report.reconciled_mails += self._reconcile(old, subscription_id)
            moved = self._mailboxes.move_to(old.mailbox, old.token, token, subscription_id, activated)
        except (AdminActionRequired, DependencyUnavailable):
            # Should Exchange have subscribed after all, its callbacks to this token get Unsubscribe.
            self._subscriptions.retire(token)
            raise
        if not moved:
            self._subscriptions.retire(token)
            report.superseded += 1
            logger.info("a registration renewed the subscription first", extra={"mailbox": old.mailbox})
            return
        self._subscriptions.retire(old.token)
        report.resubscribed += 1
        if reconcile:
            report.reconciled += 1
        elif decided.watermark is not None:
            report.replayed += 1
        logger.info(
            "mailbox resubscribed",
            extra={
                "mailbox": old.mailbox,
                "subscription_id": subscription_id,
                "from_watermark": decided.watermark is not None and not reconcile,
                "reconciled": reconcile,
            },
        )

    def _reconcile(self, old: Subscription, subscription_id: str) -> int:
        """Queue the inbox's mail since the last event ENS saw as NewMail events: the consumer decides
        and pushes them (or records them stale) like any other, and its idempotency drops those it
        has already pushed."""
        since = reconcile_since(old, self._policy)
        if since is None:
            return 0
        mails = self._exchange.mail_received_since(old.mailbox, since)
        events = [
            MailEvent(
                kind="NewMail",
                mailbox=old.mailbox,
                subscription_id=subscription_id,
                watermark=None,
                timestamp=iso(mail.received_at),
                folder_id=mail.folder_id,
                item_id=mail.item_id,
                change_key=mail.change_key,
            )
            for mail in mails
        ]
        if events:
            self._queue.send(events)
        return len(events)

    def _failed(
        self, old: Subscription, mailbox: MailboxSubscription, reason: str, report: RunReport
    ) -> None:
        failures = old.watchdog_failures + 1
        now = self._clock()
        retry_at = iso(now + retry_delay(failures, self._policy))
        report.failures[reason] += 1
        logger.warning(
            "resubscribe failed",
            extra={"mailbox": old.mailbox, "reason": reason, "failures": failures, "retry_at": retry_at},
        )
        if not self._subscriptions.record_failure(old.token, failures, reason, retry_at):
            return  # retired meanwhile: a registration took over
        if failures < self._policy.give_up_after:
            return
        report.still_failing += 1
        already = mailbox.state is MailboxState.FAILED and mailbox.reason == reason
        if not already and self._mailboxes.mark_failed(old.mailbox, old.token, reason, now):
            report.marked_failed += 1
            logger.error("mailbox subscription failed", extra={"mailbox": old.mailbox, "reason": reason})

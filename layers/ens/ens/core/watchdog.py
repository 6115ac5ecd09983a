"""What the subscription watchdog decides: when a subscription is due, what to do with it, and when to
try again after a failure.

Pure: the Watchdog service (ens.services.watchdog) reads the due records and acts on them.

Every watched Subscription record (pending or active) carries `due_shard` (a constant, the partition key
of the sparse ByDueAt index) and `due_at`, the moment the watchdog must look at it unless a callback
moves it on. Retired records carry neither, so the index holds only what may need attention and a run
costs what is due, not what exists.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from ens.core.subscriptions import (
    DEFAULT_STATUS_FREQUENCY_MINUTES,
    CallbackProgress,
    Subscription,
    SubscriptionState,
)

DUE_SHARD = "due"  # the one partition of the ByDueAt index; only watched records have it


def iso(moment: datetime) -> str:
    """The UTC timestamp format every ENS record uses; sorts as time does, so `due_at <= now` works."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def moment(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


@dataclass(frozen=True, slots=True)
class WatchdogPolicy:
    # Exchange retries a failed callback within StatusFrequency minutes; one missed heartbeat may be a
    # slow one, two are a lost subscription. The grace covers clocks and the watchdog's own interval.
    grace: timedelta = timedelta(minutes=5)
    # Longer than any Subscribe can take (the devices function's timeout is far shorter).
    pending_timeout: timedelta = timedelta(minutes=5)
    first_retry: timedelta = timedelta(minutes=5)
    max_retry: timedelta = timedelta(minutes=60)
    # Consecutive failures after which the mailbox is marked failed (shown by the devices API).
    give_up_after: int = 5
    # A failed mailbox is still tried at this slow rate: an admin may have fixed the cause.
    failed_retry: timedelta = timedelta(hours=6)
    # Reconcile looks back this much before the last event ENS saw: clocks of Exchange and AWS differ,
    # and what is found twice is absorbed by the consumer's idempotency.
    reconcile_margin: timedelta = timedelta(minutes=10)
    # No more than this many due records per run; the rest stay due for the next run.
    batch_limit: int = 200

    def __post_init__(self) -> None:
        if self.give_up_after < 1:
            raise ValueError("give_up_after is at least 1")
        if self.first_retry <= timedelta(0) or self.max_retry < self.first_retry:
            raise ValueError("retry delays must be positive and first_retry <= max_retry")


def heartbeat_deadline(seen_at: datetime, status_frequency_minutes: int | None, grace: timedelta) -> datetime:
    """When a subscription last heard of at `seen_at` is overdue: two heartbeats missed, plus grace."""
    frequency = status_frequency_minutes or DEFAULT_STATUS_FREQUENCY_MINUTES
    return seen_at + 2 * timedelta(minutes=frequency) + grace


def due_after_callback(
    subscription: Subscription, progress: CallbackProgress, seen_at: str, grace: timedelta
) -> str:
    """`due_at` after an accepted callback: now when Exchange reported an error or events went missing
    (recorded now or before and not yet acted on), otherwise the next heartbeat deadline."""
    if (
        progress.gap_from_watermark is not None
        or progress.error_code is not None
        or subscription.gap_from_watermark is not None
    ):
        return seen_at
    return iso(heartbeat_deadline(moment(seen_at), subscription.status_frequency_minutes, grace))


def pending_due(created_at: datetime, policy: WatchdogPolicy) -> str:
    return iso(created_at + policy.pending_timeout)


class Action(enum.StrEnum):
    NOT_DUE = "not_due"  # read from a stale index entry: a callback moved it on meanwhile
    RETIRE = "retire"  # no longer the mailbox's subscription: drop it from the index
    RESUBSCRIBE = "resubscribe"  # from `watermark` (None: fresh)


class Cause(enum.StrEnum):
    """Why a subscription needs attention; a dimension of the WatchdogDue metric and a log field."""

    GAP = "gap"
    EXCHANGE_ERROR = "exchange_error"
    SILENT = "silent"  # no callback or heartbeat for 2 x StatusFrequency + grace
    PENDING = "pending"  # Subscribe never finished
    RETRY = "retry"  # an earlier attempt failed


@dataclass(frozen=True, slots=True)
class Plan:
    action: Action
    cause: Cause | None = None
    watermark: str | None = None


def plan(subscription: Subscription, mailbox_token: str | None, now: datetime) -> Plan:
    """What to do with a record the ByDueAt index returned; `mailbox_token` is the token the mailbox's
    MailboxesTable record names now (None: the mailbox has no record)."""
    if subscription.state is SubscriptionState.RETIRED or mailbox_token != subscription.token:
        return Plan(Action.RETIRE)
    if subscription.due_at is None or moment(subscription.due_at) > now:
        return Plan(Action.NOT_DUE)
    if subscription.state is SubscriptionState.PENDING:
        return Plan(Action.RESUBSCRIBE, Cause.PENDING)
    if subscription.watchdog_failures:
        cause = Cause.RETRY
    elif subscription.gap_from_watermark is not None:
        cause = Cause.GAP
    elif subscription.last_error_code is not None:
        cause = Cause.EXCHANGE_ERROR
    else:
        cause = Cause.SILENT
    # From the first watermark we lost track of: Exchange replays everything after it.
    return Plan(Action.RESUBSCRIBE, cause, subscription.gap_from_watermark or subscription.last_watermark)


def retry_delay(failures: int, policy: WatchdogPolicy) -> timedelta:
    """Back-off after `failures` consecutive failed attempts (≥ 1): doubling up to the cap, then, once
    the mailbox is marked failed, the slow rate."""
    if failures >= policy.give_up_after:
        return policy.failed_retry
    doubled: timedelta = policy.first_retry * (2 ** (failures - 1))
    return min(doubled, policy.max_retry)


def reconcile_since(subscription: Subscription, policy: WatchdogPolicy) -> datetime | None:
    """From when to look for mail after ErrorInvalidWatermark: the last event ENS saw (or, failing
    that, its last callback or the record's creation), minus the margin. None: nothing to go by."""
    reference = subscription.last_event_at or subscription.last_seen_at or subscription.created_at
    if reference is None:
        return None
    return moment(reference) - policy.reconcile_margin

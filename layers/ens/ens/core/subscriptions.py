"""Push subscriptions as ENS keeps them, and what a callback means for one.

Each EWS push subscription gets its own callback URL whose last path segment is an unguessable
token. A resubscribe creates a new subscription with a new token and retires the old one, so a
token names exactly one SubscriptionId over its whole life.
"""

from __future__ import annotations

import enum
import re
import secrets
from dataclasses import dataclass

from ens.core.notifications import EventKind, SendNotification

# 32 random bytes, URL-safe base64 without padding: 43 characters. Older or longer tokens are
# still accepted within the bounds, so the format can grow without breaking live subscriptions.
# Minutes between Exchange's heartbeats unless the devices API's setting says otherwise.
DEFAULT_STATUS_FREQUENCY_MINUTES = 15
_TOKEN_PATTERN = re.compile(r"[A-Za-z0-9_-]{32,128}")


def new_callback_token() -> str:
    return secrets.token_urlsafe(32)


def is_well_formed_token(token: str | None) -> bool:
    return token is not None and _TOKEN_PATTERN.fullmatch(token) is not None


class SubscriptionState(enum.StrEnum):
    PENDING = "pending"  # the token exists, Exchange has not yet answered Subscribe
    ACTIVE = "active"
    RETIRED = "retired"  # its user unregistered, or a newer subscription replaced it


@dataclass(frozen=True, slots=True)
class Subscription:
    token: str
    mailbox: str
    state: SubscriptionState
    subscription_id: str | None = None
    last_watermark: str | None = None
    # PreviousWatermark of the last accepted callback: tells Exchange resending that callback
    # (it never got our OK) from events having gone missing.
    last_previous_watermark: str | None = None
    last_seen_at: str | None = None
    last_heartbeat_at: str | None = None
    gap_from_watermark: str | None = None  # set when events were missed; the recovery job clears it
    last_error_code: str | None = None
    created_at: str | None = None
    status_frequency_minutes: int | None = None
    # The watchdog's: see ens.core.watchdog. Only watched (pending, active) records have due_shard.
    due_shard: str | None = None
    due_at: str | None = None
    # TimeStamp of the newest event of a callback without a gap: where reconcile starts looking.
    last_event_at: str | None = None
    watchdog_failures: int = 0
    last_failure: str | None = None


class Verdict(enum.StrEnum):
    ACCEPT = "accept"
    RETIRED = "retired"  # → Unsubscribe
    FOREIGN_SUBSCRIPTION = "foreign_subscription"  # → Unsubscribe
    NOT_YET_ACTIVE = "not_yet_active"  # → ask Exchange to retry


def judge(subscription: Subscription, notification: SendNotification) -> Verdict:
    """Whether a callback for this token's subscription is to be acted on."""
    if subscription.state is SubscriptionState.RETIRED:
        return Verdict.RETIRED
    if subscription.state is SubscriptionState.PENDING or subscription.subscription_id is None:
        # Exchange can call back before our Subscribe call has stored the SubscriptionId.
        return Verdict.NOT_YET_ACTIVE
    if notification.subscription_ids and notification.subscription_ids != {subscription.subscription_id}:
        return Verdict.FOREIGN_SUBSCRIPTION
    return Verdict.ACCEPT


@dataclass(frozen=True, slots=True)
class CallbackProgress:
    """What a callback changes on its subscription record."""

    last_watermark: str | None
    previous_watermark: str | None  # of the callback's first notification
    heartbeat: bool
    gap_from_watermark: str | None
    error_code: str | None
    # Exchange resent the last accepted callback (our OK did not reach it), possibly with newer events.
    replay: bool
    # For a replay: the watermark of the last event already queued, found in this callback; the events
    # up to it are not queued again. None: every mail event of the callback is queued (for a replay,
    # the consumer's idempotency absorbs what was queued before).
    queued_through: str | None = None
    last_event_at: str | None = None  # the newest event TimeStamp of the callback


def progress(subscription: Subscription, notification: SendNotification) -> CallbackProgress:
    """New watermark, heartbeat, gap and replay for an accepted callback.

    Exchange moves its cursor only when it gets our OK; until then every retry starts again from
    the same PreviousWatermark, rebuilt with whatever has happened since (more events, or events
    in place of a heartbeat). So a callback whose first PreviousWatermark is that of the last
    accepted callback is a resend, whatever its final watermark: nothing was missed. Any other
    PreviousWatermark than the last watermark we stored means Exchange sent events we never saw:
    the gap starts at our last watermark, from which the recovery job resubscribes. An error message
    from Exchange (e.g. ErrorReadEventsFailed: it lost the subscription) opens a gap there too.
    """
    stored = subscription.last_watermark
    first_previous = notification.notifications[0].previous_watermark if notification.notifications else None
    replay = (
        first_previous is not None
        and first_previous != stored
        and first_previous == subscription.last_previous_watermark
    )
    last_watermark = stored
    gap_from: str | None = None
    seen: set[str] = set()
    newest: str | None = None
    for index, item in enumerate(notification.notifications):
        chained_from = first_previous if (index == 0 and replay) else last_watermark
        if (
            gap_from is None
            and chained_from is not None
            and item.previous_watermark is not None
            and item.previous_watermark != chained_from
        ):
            gap_from = last_watermark
        for event in item.events:
            if event.watermark:
                last_watermark = event.watermark
                seen.add(event.watermark)
            if event.timestamp and (newest is None or event.timestamp > newest):
                newest = event.timestamp
    errors = notification.errors
    if errors and gap_from is None:
        gap_from = stored
    return CallbackProgress(
        last_watermark=last_watermark,
        previous_watermark=first_previous,
        heartbeat=any(event.kind is EventKind.STATUS for event in notification.events),
        gap_from_watermark=gap_from,
        error_code=errors[0].response_code if errors else None,
        replay=replay,
        queued_through=stored if replay and stored in seen else None,
        last_event_at=newest,
    )

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
    last_seen_at: str | None = None
    last_heartbeat_at: str | None = None
    gap_from_watermark: str | None = None  # set when events were missed; the recovery job clears it
    last_error_code: str | None = None
    created_at: str | None = None


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
    heartbeat: bool
    gap_from_watermark: str | None
    error_code: str | None


def progress(subscription: Subscription, notification: SendNotification) -> CallbackProgress:
    """New watermark, heartbeat and gap for an accepted callback.

    A PreviousWatermark other than the last watermark we stored means Exchange sent events we never
    saw: the gap starts at our last watermark, from which the recovery job resubscribes.
    """
    last_watermark = subscription.last_watermark
    gap_from: str | None = None
    for item in notification.notifications:
        if (
            gap_from is None
            and last_watermark is not None
            and item.previous_watermark is not None
            and item.previous_watermark != last_watermark
        ):
            gap_from = last_watermark
        for event in item.events:
            if event.watermark:
                last_watermark = event.watermark
    errors = notification.errors
    return CallbackProgress(
        last_watermark=last_watermark,
        heartbeat=any(event.kind is EventKind.STATUS for event in notification.events),
        gap_from_watermark=gap_from,
        error_code=errors[0].response_code if errors else None,
    )

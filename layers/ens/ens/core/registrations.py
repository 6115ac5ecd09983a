"""Device registrations as the devices API sees them: who calls, what a PUT says, what GET answers,
and the one push subscription a mailbox's devices share.

Pure: the DeviceRegistry service (ens.services.devices) reads and writes these through its stores.
The push token is never part of a view: it is a secret of the device.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, Strict

from ens.core.devices import _PLATFORM, _PRINTABLE, _PUSH_TOKEN, Address, Device, Rules, UtcDatetime

# Re-exported: the registry and the adapters import it from here.
from ens.core.subscriptions import DEFAULT_STATUS_FREQUENCY_MINUTES as DEFAULT_STATUS_FREQUENCY_MINUTES
from ens.core.subscriptions import Subscription, SubscriptionState

# What the webhook and the consumer act on: NewMail is queued as a mail, a folder's ModifiedEvent
# carries its UnreadCount (badge-only devices). StatusEvent heartbeats come without asking.
SUBSCRIPTION_EVENT_TYPES: tuple[str, ...] = ("NewMailEvent", "ModifiedEvent")
MAX_DECISIONS_PAGE = 100
CALLBACK_PATH = "/ews/notifications"


class Caller(BaseModel):
    """Who the bearer token says is calling."""

    model_config = ConfigDict(frozen=True)

    subject: str  # the mailbox address of the configured claim, lower-cased by the authenticator
    is_admin: bool = False

    def may_act_for(self, mailbox: str) -> bool:
        return self.is_admin or self.subject.strip().lower() == mailbox.strip().lower()


class DeviceRegistration(BaseModel):
    """The body of PUT /v1/devices/{deviceId}: the same limits as the stored Device."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    mailbox: Address
    push_token: Annotated[str, Strict(), Field(pattern=_PUSH_TOKEN)]
    platform: Annotated[str, Strict(), Field(pattern=_PLATFORM)] = "ios"
    app_version: Annotated[str, Strict(), Field(min_length=1, max_length=64, pattern=_PRINTABLE)] | None = (
        None
    )
    rules: Rules = Rules()


class SubscriptionStatus(enum.StrEnum):
    ACTIVE = "active"
    PENDING = "pending"  # Subscribe is under way
    RECOVERING = "recovering"  # events were missed or Exchange reported an error: recovery resubscribes
    FAILED = "failed"  # ENS gave up on the mailbox's subscription; `reason` says why
    NONE = "none"  # the mailbox has no subscription (a registration that shared a failed attempt)


class SubscriptionView(BaseModel):
    model_config = ConfigDict(frozen=True)

    status: SubscriptionStatus
    reason: str | None = None
    last_heartbeat_at: UtcDatetime | None = None
    last_callback_at: UtcDatetime | None = None


class DeviceView(BaseModel):
    """What GET and PUT answer for a device (never its push token)."""

    model_config = ConfigDict(frozen=True)

    device_id: str
    mailbox: str
    platform: str
    app_version: str | None
    active: bool
    deactivated_reason: str | None
    deactivated_at: UtcDatetime | None
    registered_at: UtcDatetime
    updated_at: UtcDatetime
    last_push_at: UtcDatetime | None
    rules: Rules
    subscription: SubscriptionView


class DecisionView(BaseModel):
    """One decision-log entry, for GET /v1/devices/{deviceId}/decisions."""

    model_config = ConfigDict(frozen=True)

    item_id: str | None
    event_kind: str
    outcome: str
    reason: str | None
    rule: str | None
    received_at: UtcDatetime | None
    decided_at: UtcDatetime
    latency_ms: int | None


class MailboxState(enum.StrEnum):
    PENDING = "pending"  # claimed; Subscribe not yet answered
    ACTIVE = "active"
    FAILED = "failed"  # set by whoever gives up on it (the recovery job); a new registration retries


@dataclass(frozen=True, slots=True)
class MailboxSubscription:
    """The MailboxesTable record: which subscription (callback token) a mailbox's devices share."""

    mailbox: str
    token: str
    state: MailboxState
    created_at: datetime
    updated_at: datetime
    subscription_id: str | None = None
    reason: str | None = None


def callback_url(webhook_base_url: str, token: str) -> str:
    """The callback URL Exchange is given. The base is either the WebhookApi stage URL or the
    template's WebhookBaseUrl output, which already ends in the callback path: both work."""
    base = webhook_base_url.rstrip("/")
    if not base.endswith(CALLBACK_PATH):
        base += CALLBACK_PATH
    return f"{base}/{token}"


def subscription_view(
    mailbox: MailboxSubscription | None, subscription: Subscription | None
) -> SubscriptionView:
    """The state of the mailbox's subscription as a device owner needs to know it."""
    if mailbox is None:
        return SubscriptionView(status=SubscriptionStatus.NONE)
    if mailbox.state is MailboxState.FAILED:
        return SubscriptionView(status=SubscriptionStatus.FAILED, reason=mailbox.reason)
    if mailbox.state is MailboxState.PENDING or subscription is None:
        return SubscriptionView(status=SubscriptionStatus.PENDING)
    if subscription.state is SubscriptionState.RETIRED:
        # Replaced or ended behind the mailbox record's back: whoever did so owes a new one.
        status, reason = SubscriptionStatus.RECOVERING, "subscription_retired"
    elif subscription.gap_from_watermark is not None:
        status, reason = SubscriptionStatus.RECOVERING, "events_missed"
    elif subscription.last_error_code is not None:
        status, reason = SubscriptionStatus.RECOVERING, subscription.last_error_code
    else:
        status, reason = SubscriptionStatus.ACTIVE, None
    return SubscriptionView(
        status=status,
        reason=reason,
        last_heartbeat_at=_moment(subscription.last_heartbeat_at),
        last_callback_at=_moment(subscription.last_seen_at),
    )


def device_view(device: Device, subscription: SubscriptionView) -> DeviceView:
    return DeviceView(
        device_id=device.device_id,
        mailbox=device.mailbox,
        platform=device.platform,
        app_version=device.app_version,
        active=device.active,
        deactivated_reason=device.deactivated_reason,
        deactivated_at=device.deactivated_at,
        registered_at=device.registered_at,
        updated_at=device.updated_at,
        last_push_at=device.last_push_at,
        rules=device.rules,
        subscription=subscription,
    )


def registered_device(
    device_id: str, registration: DeviceRegistration, current: Device | None, now: datetime
) -> Device:
    """The device row a registration asks for, given the row stored now (if any).

    Unchanged when the registration says nothing new, so a repeated PUT writes nothing. A new push
    token reactivates a device the push relay had rejected; the same token does not, since the relay
    would only reject it again (the view's `active` tells the app to fetch a new one).
    """
    if current is None:
        return Device(
            mailbox=registration.mailbox,
            device_id=device_id,
            push_token=registration.push_token,
            platform=registration.platform,
            app_version=registration.app_version,
            rules=registration.rules,
            registered_at=now,
            updated_at=now,
        )
    new_token = registration.push_token != current.push_token
    wanted = current.model_copy(
        update={
            "push_token": registration.push_token,
            "platform": registration.platform,
            "app_version": registration.app_version,
            "rules": registration.rules,
            **({"active": True, "deactivated_reason": None, "deactivated_at": None} if new_token else {}),
        }
    )
    if wanted == current:
        return current
    return wanted.model_copy(update={"updated_at": now})


def _moment(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))

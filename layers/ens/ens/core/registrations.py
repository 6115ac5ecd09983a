"""What the devices API takes and gives: the caller, a registration, and the views of a device.

Shared by the devices service (ens.services.devices) and its HTTP handler (functions/devices), so the
OpenAPI document generated from the handler describes exactly these models.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, Strict

# The same limits as the stored device: a registration that passes here is a device that stores.
from ens.core.devices import _PLATFORM, _PRINTABLE, _PUSH_TOKEN, Address, Rules


class Caller(BaseModel):
    """Who the bearer token says is calling."""

    model_config = ConfigDict(frozen=True)

    subject: str  # lower-cased mailbox address from the configured claim
    is_admin: bool = False

    def may_act_for(self, mailbox: str) -> bool:
        return self.is_admin or self.subject.lower() == mailbox.strip().lower()


class DeviceRegistration(BaseModel):
    """The body of PUT /v1/devices/{deviceId}."""

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
    PENDING = "pending"
    RECOVERING = "recovering"
    FAILED = "failed"
    NONE = "none"


class SubscriptionView(BaseModel):
    model_config = ConfigDict(frozen=True)

    status: SubscriptionStatus
    reason: str | None = None  # why failed / recovering
    last_heartbeat_at: datetime | None = None
    last_callback_at: datetime | None = None


class DeviceView(BaseModel):
    """A device as GET and PUT answer it. The push token is a secret of the device: never echoed."""

    model_config = ConfigDict(frozen=True)

    device_id: str
    mailbox: str
    platform: str
    app_version: str | None
    active: bool
    deactivated_reason: str | None
    deactivated_at: datetime | None
    registered_at: datetime
    updated_at: datetime
    last_push_at: datetime | None
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
    received_at: datetime | None
    decided_at: datetime
    latency_ms: int | None

"""The devices API's service: register, read and unregister devices, and keep the one EWS push
subscription a mailbox's devices share.

Knows nothing of API Gateway or Lambda; the handler turns a request into a call here and the
errors into problem documents (ens.errors: DeviceNotFound, Forbidden, AdminActionRequired,
ExchangeBusy, DependencyUnavailable).

The mailbox's subscription is claimed with a conditional write in MailboxesTable, so two first
registrations racing make one Subscribe. Between the claim and Exchange's answer the Subscription
record (what the webhook reads) is `pending`: a callback then gets 503 and is retried. If Subscribe
or the writes after it fail, the pending record is retired (the webhook would answer Unsubscribe)
and the claim released, and no device row is written: nothing is left half-stored.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Protocol

from aws_lambda_powertools import Logger

from ens.core.devices import Device
from ens.core.registrations import (
    DEFAULT_STATUS_FREQUENCY_MINUTES,
    MAX_DECISIONS_PAGE,
    SUBSCRIPTION_EVENT_TYPES,
    Caller,
    DecisionView,
    DeviceRegistration,
    DeviceView,
    MailboxState,
    MailboxSubscription,
    SubscriptionView,
    callback_url,
    device_view,
    registered_device,
    subscription_view,
)
from ens.core.subscriptions import Subscription, SubscriptionState, new_callback_token
from ens.core.watchdog import DUE_SHARD, heartbeat_deadline, iso
from ens.errors import AdminActionRequired, DependencyUnavailable, DeviceNotFound, Forbidden

logger = Logger(child=True)

# A lost race is re-read a few times: another registration may claim, fail and release meanwhile.
_ATTEMPTS = 3
# A claim pending longer than any Subscribe can take (the function's timeout is far shorter) was
# left by an invocation that died mid-way: the next registration replaces it.
STALE_PENDING = timedelta(minutes=5)


# -- what the service needs from outside -------------------------------------------------------------


class DeviceStore(Protocol):
    def get(self, mailbox: str, device_id: str) -> Device | None: ...

    def find(self, device_id: str) -> Device | None: ...

    def devices_of(self, mailbox: str) -> list[Device]: ...

    def save(self, device: Device, previous: Device | None) -> bool:
        """Write the device if the stored row is still `previous` (None: no row); False otherwise."""
        ...

    def delete(self, mailbox: str, device_id: str) -> bool: ...


class MailboxStore(Protocol):
    def get(self, mailbox: str) -> MailboxSubscription | None: ...

    def claim(self, record: MailboxSubscription, replacing: str | None = None) -> bool:
        """Write the record if the mailbox has none (or, with `replacing`, has that token); else False."""
        ...

    def activate(self, mailbox: str, token: str, subscription_id: str, at: datetime) -> bool: ...

    def release(self, mailbox: str, token: str) -> bool:
        """Delete the mailbox's record if it still holds this token."""
        ...


class SubscriptionStore(Protocol):
    def get(self, token: str) -> Subscription | None: ...

    def put(self, subscription: Subscription) -> None: ...

    def activate(
        self, token: str, subscription_id: str, watermark: str, due_at: str | None = None
    ) -> bool: ...

    def retire(self, token: str) -> None: ...


class ExchangeSubscriber(Protocol):
    def subscribe_push(
        self,
        mailbox: str,
        callback_url: str,
        *,
        folders: Sequence[str] = ("inbox",),
        event_types: Sequence[str] = SUBSCRIPTION_EVENT_TYPES,
        status_frequency_minutes: int = DEFAULT_STATUS_FREQUENCY_MINUTES,
    ) -> tuple[str, str]: ...


class DecisionReader(Protocol):
    def recent(
        self, mailbox: str, device_id: str, *, limit: int, since: datetime | None
    ) -> list[DecisionView]: ...


@dataclass(frozen=True, slots=True)
class RegistryPolicy:
    webhook_base_url: str  # the WebhookApi's stage URL (or its WebhookBaseUrl output)
    status_frequency_minutes: int = DEFAULT_STATUS_FREQUENCY_MINUTES
    folders: tuple[str, ...] = ("inbox",)
    event_types: tuple[str, ...] = SUBSCRIPTION_EVENT_TYPES
    # The watchdog looks at a subscription silent for 2 x StatusFrequency plus this.
    heartbeat_grace: timedelta = timedelta(minutes=5)

    def __post_init__(self) -> None:
        if not 1 <= self.status_frequency_minutes <= 1440:
            raise ValueError("StatusFrequency is 1..1440 minutes (EWS's limits)")
        if not self.folders:
            raise ValueError("subscribe to at least one folder")


def _utc_now() -> datetime:
    return datetime.now(UTC)


class DeviceRegistry:
    def __init__(
        self,
        *,
        devices: DeviceStore,
        mailboxes: MailboxStore,
        subscriptions: SubscriptionStore,
        exchange: ExchangeSubscriber,
        decisions: DecisionReader,
        policy: RegistryPolicy,
        clock: Callable[[], datetime] = _utc_now,
        token_factory: Callable[[], str] = new_callback_token,
    ) -> None:
        self._devices = devices
        self._mailboxes = mailboxes
        self._subscriptions = subscriptions
        self._exchange = exchange
        self._decisions = decisions
        self._policy = policy
        self._clock = clock
        self._new_token = token_factory

    # -- the API's operations --------------------------------------------------------------------------

    def register(
        self, device_id: str, registration: DeviceRegistration, caller: Caller
    ) -> tuple[DeviceView, bool]:
        """Create or update a device; True when it is new for this mailbox (201), else False (200)."""
        mailbox = registration.mailbox
        if not caller.may_act_for(mailbox):
            raise Forbidden(f"the caller may not register devices for {mailbox}")
        elsewhere = self._devices.find(device_id)
        if elsewhere is not None and elsewhere.mailbox == mailbox:
            elsewhere = None
        if elsewhere is not None and not caller.is_admin:
            raise Forbidden(f"device {device_id} is registered for another mailbox")
        record = self._ensure_subscription(mailbox)
        device, created = self._store_device(device_id, registration)
        if elsewhere is not None:
            # An admin moves the device: the new registration stands before the old one goes.
            self._remove(elsewhere)
        return device_view(device, self._view(record)), created

    def get(self, device_id: str, caller: Caller) -> DeviceView:
        device = self._device_for(device_id, caller)
        return device_view(device, self._view(self._mailboxes.get(device.mailbox)))

    def unregister(self, device_id: str, caller: Caller) -> None:
        self._remove(self._device_for(device_id, caller))

    def decisions(
        self, device_id: str, caller: Caller, *, limit: int, since: datetime | None
    ) -> list[DecisionView]:
        if not 1 <= limit <= MAX_DECISIONS_PAGE:
            raise ValueError(f"limit is 1..{MAX_DECISIONS_PAGE}")
        device = self._device_for(device_id, caller)
        return self._decisions.recent(device.mailbox, device.device_id, limit=limit, since=since)

    # -- devices ---------------------------------------------------------------------------------------

    def _device_for(self, device_id: str, caller: Caller) -> Device:
        """The device, if the caller may see it. Its own mailbox is read consistently (a device
        registered a moment ago is found); the ByDeviceId index, eventually consistent, serves
        admins and tells a foreign device (403) from none (404)."""
        device = None if caller.is_admin else self._devices.get(caller.subject, device_id)
        if device is None:
            device = self._devices.find(device_id)
        if device is None:
            raise DeviceNotFound(device_id)
        if not caller.may_act_for(device.mailbox):
            raise Forbidden(f"device {device_id} belongs to another mailbox")
        return device

    def _store_device(self, device_id: str, registration: DeviceRegistration) -> tuple[Device, bool]:
        for _ in range(_ATTEMPTS):
            current = self._devices.get(registration.mailbox, device_id)
            wanted = registered_device(device_id, registration, current, self._clock())
            if wanted is current or self._devices.save(wanted, current):
                return wanted, current is None
            # Another PUT of the same device won the write: decide again against what it stored.
        raise DependencyUnavailable(f"device {device_id} keeps changing under concurrent registrations")

    def _remove(self, device: Device) -> None:
        self._devices.delete(device.mailbox, device.device_id)
        if self._devices.devices_of(device.mailbox):
            return
        record = self._mailboxes.get(device.mailbox)
        if record is None:
            return
        # The claim goes first, so a registration arriving now subscribes afresh rather than
        # sharing the subscription being retired.
        self._mailboxes.release(device.mailbox, record.token)
        self._subscriptions.retire(record.token)
        logger.info("mailbox subscription retired", extra={"mailbox": device.mailbox})
        if self._devices.devices_of(device.mailbox):
            # A registration slipped in between and relied on the retired subscription.
            self._ensure_subscription(device.mailbox)

    # -- the mailbox's subscription --------------------------------------------------------------------

    def _ensure_subscription(self, mailbox: str) -> MailboxSubscription:
        """The mailbox's shared subscription: the existing one, or one made now with ONE Subscribe."""
        for _ in range(_ATTEMPTS):
            current = self._mailboxes.get(mailbox)
            now = self._clock()
            if current is not None and not _replaceable(current, now):
                return current
            claim = MailboxSubscription(
                mailbox=mailbox,
                token=self._new_token(),
                state=MailboxState.PENDING,
                created_at=now,
                updated_at=now,
            )
            if self._mailboxes.claim(claim, replacing=current.token if current else None):
                if current is not None:
                    self._subscriptions.retire(current.token)
                return self._subscribe(claim)
            # Another registration claimed it first: share theirs (read again).
        raise DependencyUnavailable(f"the subscription of {mailbox} keeps changing; retry")

    def _subscribe(self, claim: MailboxSubscription) -> MailboxSubscription:
        token = claim.token
        self._subscriptions.put(
            Subscription(
                token=token,
                mailbox=claim.mailbox,
                state=SubscriptionState.PENDING,
                created_at=_iso(claim.created_at),
                status_frequency_minutes=self._policy.status_frequency_minutes,
                # Should this invocation die before Exchange answers, the watchdog finishes the job.
                due_shard=DUE_SHARD,
                due_at=iso(claim.created_at + STALE_PENDING),
            )
        )
        try:
            subscription_id, watermark = self._exchange.subscribe_push(
                claim.mailbox,
                callback_url(self._policy.webhook_base_url, token),
                folders=self._policy.folders,
                event_types=self._policy.event_types,
                status_frequency_minutes=self._policy.status_frequency_minutes,
            )
            activated_at = self._clock()
            due_at = heartbeat_deadline(
                activated_at, self._policy.status_frequency_minutes, self._policy.heartbeat_grace
            )
            if not self._subscriptions.activate(token, subscription_id, watermark, iso(due_at)):
                raise DependencyUnavailable("the pending subscription was retired while Exchange answered")
            if not self._mailboxes.activate(claim.mailbox, token, subscription_id, activated_at):
                raise DependencyUnavailable("the mailbox's claim was released while Exchange answered")
        except (AdminActionRequired, DependencyUnavailable) as error:
            self._abandon(claim, error)
            raise
        logger.info(
            "mailbox subscribed", extra={"mailbox": claim.mailbox, "subscription_id": subscription_id}
        )
        return replace(
            claim, state=MailboxState.ACTIVE, subscription_id=subscription_id, updated_at=activated_at
        )

    def _abandon(self, claim: MailboxSubscription, error: Exception) -> None:
        """Undo a claim whose Subscribe failed. Retiring the record first means that, should Exchange
        have subscribed after all, its callbacks get Unsubscribe, which ends the subscription there."""
        logger.warning(
            "mailbox subscription failed",
            extra={
                "mailbox": claim.mailbox,
                "error": type(error).__name__,
                "code": getattr(error, "code", None),
            },
        )
        try:
            self._subscriptions.retire(claim.token)
            self._mailboxes.release(claim.mailbox, claim.token)
        except DependencyUnavailable as cleanup:
            # The first error is the caller's answer; a stale pending claim is retried by the next PUT
            # only once released, so say loudly that it was not.
            logger.error(
                "abandoned subscription not cleaned up",
                extra={"mailbox": claim.mailbox, "error": str(cleanup)},
            )

    def _view(self, record: MailboxSubscription | None) -> SubscriptionView:
        subscription = self._subscriptions.get(record.token) if record is not None else None
        return subscription_view(record, subscription)


def _replaceable(record: MailboxSubscription, now: datetime) -> bool:
    if record.state is MailboxState.FAILED:
        return True
    return record.state is MailboxState.PENDING and now - record.updated_at > STALE_PENDING


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")

"""subscriptions, device, decisions: what the tables hold, read through ENS's own DynamoDB adapters."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from ens.adapters.decision_log import DynamoDecisionLog
from ens.adapters.device_store import DynamoDeviceStore
from ens.adapters.mailbox_store import DynamoMailboxStore
from ens.adapters.subscription_store import DynamoSubscriptionStore
from ens.core.registrations import MailboxState, MailboxSubscription
from ens.core.subscriptions import Subscription
from ens_admin.target import Deployment

DUE_LIMIT = 1000


def _iso_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _subscription_row(mailbox: MailboxSubscription | None, record: Subscription | None) -> dict[str, Any]:
    return {
        "mailbox": mailbox.mailbox if mailbox else (record.mailbox if record else None),
        "mailbox_state": mailbox.state.value if mailbox else None,
        "reason": mailbox.reason if mailbox else None,
        "subscription_state": record.state.value if record else None,
        "subscription_id": record.subscription_id if record else None,
        "last_heartbeat_at": record.last_heartbeat_at if record else None,
        "last_seen_at": record.last_seen_at if record else None,
        "due_at": record.due_at if record else None,
        "watchdog_failures": record.watchdog_failures if record else 0,
        "last_failure": record.last_failure if record else None,
        "last_error_code": record.last_error_code if record else None,
    }


def subscriptions(deployment: Deployment, *, failed: bool = False, due: bool = False) -> list[dict[str, Any]]:
    """Each mailbox's shared subscription (MailboxesTable) with its record (SubscriptionsTable).

    --due: the records the watchdog would take now (a Query of ByDueAt, as the watchdog makes).
    --failed: mailboxes marked failed, and those whose renewals are failing (watchdog_failures > 0).
    """
    dynamodb = deployment.client("dynamodb")
    records = DynamoSubscriptionStore(deployment.table("SubscriptionsTable"), dynamodb)
    mailboxes = DynamoMailboxStore(deployment.table("MailboxesTable"), dynamodb)
    if due:
        found = records.due(_iso_now(), DUE_LIMIT)
        return [_subscription_row(mailboxes.get(record.mailbox), record) for record in found]
    rows = []
    for mailbox in mailboxes.all():
        record = records.get(mailbox.token)
        if failed and mailbox.state is not MailboxState.FAILED and not (record and record.watchdog_failures):
            continue
        rows.append(_subscription_row(mailbox, record))
    return rows


def mask(token: str) -> str:
    """Enough of a push token to tell two apart, never enough to push with."""
    return f"{token[:6]}…{token[-4:]}" if len(token) > 12 else "…"


def devices(deployment: Deployment, mailbox: str) -> dict[str, Any]:
    dynamodb = deployment.client("dynamodb")
    store = DynamoDeviceStore(deployment.table("DevicesTable"), dynamodb)
    shared = DynamoMailboxStore(deployment.table("MailboxesTable"), dynamodb).get(mailbox)
    record = (
        DynamoSubscriptionStore(deployment.table("SubscriptionsTable"), dynamodb).get(shared.token)
        if shared
        else None
    )
    rows = []
    for device in store.devices_of(mailbox):
        data = device.model_dump(mode="json", exclude={"push_token"})
        rows.append({"push_token": mask(device.push_token), **data})
    return {
        "mailbox": mailbox.lower(),
        "subscription": _subscription_row(shared, record) if shared else None,
        "devices": rows,
    }


MAILBOX_LEVEL = "-"  # the decision log's device id for decisions about the mailbox (no_devices, no_server)


def decisions(deployment: Deployment, mailbox: str, *, limit: int) -> list[dict[str, Any]]:
    """The newest `limit` decisions of each of the mailbox's devices, and of the mailbox itself."""
    dynamodb = deployment.client("dynamodb")
    devices_found = DynamoDeviceStore(deployment.table("DevicesTable"), dynamodb).devices_of(mailbox)
    # The TTL is only for writing; reading needs none.
    log = DynamoDecisionLog(deployment.table("DecisionsTable"), dynamodb, ttl_days=1)
    rows: list[dict[str, Any]] = []
    for device_id in [device.device_id for device in devices_found] + [MAILBOX_LEVEL]:
        for view in log.recent(mailbox, device_id, limit=limit, since=None):
            rows.append({"device_id": device_id, **view.model_dump(mode="json")})
    return rows

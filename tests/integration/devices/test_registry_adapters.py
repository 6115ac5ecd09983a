"""The devices API's adapters and the DeviceRegistry with them, against moto (the template's tables)
and the Exchange simulator: one Subscribe per mailbox with the callback URL, event types and
StatusFrequency asked; register → active record with Exchange's SubscriptionId; mail reaches the
callback URL; unregister → retired, and the webhook then answers Unsubscribe."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from exchangelib.protocol import close_connections

from ens.adapters.decision_log import DynamoDecisionLog
from ens.adapters.device_store import DynamoDeviceStore
from ens.adapters.exchange import ExchangeMailSource
from ens.adapters.mailbox_store import DynamoMailboxStore
from ens.adapters.subscription_store import DynamoSubscriptionStore
from ens.core.decisions import Decision, Outcome
from ens.core.exchange_servers import ExchangeDirectory
from ens.core.registrations import MailboxState, MailboxSubscription, SubscriptionStatus
from ens.core.rules import Reason, Rule
from ens.core.subscriptions import Subscription, SubscriptionState
from ens.errors import AdminActionRequired, ExchangeBusy
from ens.services.devices import DeviceRegistry, RegistryPolicy
from ens.services.webhook import CallbackReceiver, CallbackRequest, CallbackResult
from exchange_simulator import ExchangeSimulator
from support.consumer_fakes import make_device
from support.consumer_flow import servers_secret, simulator_server
from support.registry_fakes import owner, registration
from support.send_notifications import Body, NotificationSpec, send_notification, status
from support.simulator_fixtures import DEMO_MAILBOX, DEMO_NO_IMPERSONATION_ACCOUNT, CallbackListener
from support.webhook_fakes import InMemoryMailEventQueue

pytestmark = pytest.mark.integration

AT = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)


@pytest.fixture
def dynamodb(provisioned_stack: Any) -> Any:
    return provisioned_stack.aws.client("dynamodb")


@pytest.fixture
def tables(provisioned_stack: Any) -> dict[str, str]:
    return dict(provisioned_stack.table_names)


@pytest.fixture
def exchange(exchange_simulator: ExchangeSimulator) -> Iterator[Callable[..., ExchangeMailSource]]:
    def build(**server: Any) -> ExchangeMailSource:
        directory = ExchangeDirectory.from_json(
            servers_secret(simulator_server("sim", exchange_simulator.ews_url, default=True, **server))
        )
        return ExchangeMailSource(directory, max_concurrency_per_server=2, timeout_seconds=5)

    try:
        yield build
    finally:
        close_connections()  # exchangelib caches pools per endpoint; a later test may reuse the port


def inbox_number(sim: ExchangeSimulator, mailbox: str = DEMO_MAILBOX) -> int:
    """How the simulator's subscription listing names the Inbox."""
    return int(sim.store.mailbox(mailbox).distinguished["inbox"])


# -- subscribe_push ----------------------------------------------------------------------------------------


def test_subscribe_push_is_one_subscribe_request_with_what_was_asked(exchange_simulator, exchange) -> None:
    before = exchange_simulator.last_request_seq

    subscription_id, watermark = exchange().subscribe_push(
        DEMO_MAILBOX,
        "http://127.0.0.1:9/Prod/ews/notifications/abc",
        event_types=("NewMailEvent", "ModifiedEvent"),
        status_frequency_minutes=7,
    )

    assert exchange_simulator.request_counts(since=before)["by_operation"] == {"Subscribe": 1}
    (held,) = exchange_simulator.subscriptions()
    assert held["subscription_id"] == subscription_id
    assert watermark
    assert held["mailbox"] == DEMO_MAILBOX
    assert held["url"] == "http://127.0.0.1:9/Prod/ews/notifications/abc"
    assert held["event_types"] == ["ModifiedEvent", "NewMailEvent"]
    assert held["status_frequency"] == 7
    assert held["folders"] == [inbox_number(exchange_simulator)]


def test_subscribe_push_names_admin_refusals_when_exchange_refuses(exchange_simulator, exchange) -> None:
    with pytest.raises(AdminActionRequired) as unknown:
        exchange().subscribe_push("nobody@contoso.example", "http://127.0.0.1:9/x")
    with pytest.raises(AdminActionRequired) as denied:
        exchange(username=DEMO_NO_IMPERSONATION_ACCOUNT).subscribe_push(DEMO_MAILBOX, "http://127.0.0.1:9/x")
    with pytest.raises(AdminActionRequired) as no_server:
        exchange().subscribe_push("someone@elsewhere.example", "http://127.0.0.1:9/x")  # default server
    assert unknown.value.code == "mailbox_unknown"
    assert denied.value.code == "impersonation_denied"
    assert no_server.value.code in {"mailbox_unknown", "no_server"}
    assert exchange_simulator.subscriptions() == []


def test_subscribe_push_raises_exchange_busy_with_the_back_off_when_the_server_is_busy(
    exchange_simulator, exchange
) -> None:
    exchange_simulator.faults.add(kind="server_busy", count=1, operations=["Subscribe"], back_off_ms=2500)

    with pytest.raises(ExchangeBusy) as raised:
        exchange().subscribe_push(DEMO_MAILBOX, "http://127.0.0.1:9/x")

    assert raised.value.back_off_seconds == 2.5


# -- the stores ------------------------------------------------------------------------------------------


def test_a_mailbox_is_claimed_once_activated_and_released_only_with_its_token(dynamodb, tables) -> None:
    store = DynamoMailboxStore(tables["MailboxesTable"], dynamodb)
    claim = MailboxSubscription(
        mailbox=DEMO_MAILBOX, token="t1", state=MailboxState.PENDING, created_at=AT, updated_at=AT
    )
    rival = MailboxSubscription(
        mailbox=DEMO_MAILBOX, token="t2", state=MailboxState.PENDING, created_at=AT, updated_at=AT
    )

    assert store.claim(claim) is True
    assert store.claim(rival) is False
    assert store.activate(DEMO_MAILBOX, "t2", "sub-x", AT) is False
    assert store.activate(DEMO_MAILBOX, "t1", "sub-1", AT + timedelta(seconds=1)) is True
    stored = store.get(DEMO_MAILBOX)
    assert stored is not None
    assert (stored.state, stored.subscription_id, stored.updated_at) == (
        MailboxState.ACTIVE,
        "sub-1",
        AT + timedelta(seconds=1),
    )
    assert store.claim(rival, replacing="t1") is True
    assert store.release(DEMO_MAILBOX, "t1") is False
    assert store.release(DEMO_MAILBOX, "t2") is True
    assert store.get(DEMO_MAILBOX) is None


def test_a_device_is_saved_only_over_the_row_it_was_decided_against(dynamodb, tables) -> None:
    store = DynamoDeviceStore(tables["DevicesTable"], dynamodb)
    device = make_device()
    changed = device.model_copy(
        update={"push_token": "other", "updated_at": device.updated_at + timedelta(1)}
    )

    assert store.save(device, None) is True
    assert store.save(device, None) is False
    assert store.save(changed, device) is True
    assert store.save(device, device) is False  # the row is `changed` now
    assert store.get(device.mailbox, "phone") == changed
    assert store.find("phone") == changed
    assert store.find("ghost") is None
    assert store.delete(device.mailbox, "phone") is True
    assert store.delete(device.mailbox, "phone") is False


def test_a_device_deactivated_by_the_consumer_can_still_be_saved_over(dynamodb, tables) -> None:
    store = DynamoDeviceStore(tables["DevicesTable"], dynamodb)
    device = make_device()
    store.save(device, None)
    store.deactivate(device, "BadDeviceToken", AT)
    deactivated = store.get(device.mailbox, "phone")
    assert deactivated is not None

    renewed = deactivated.model_copy(
        update={"push_token": "fresh", "active": True, "updated_at": AT + timedelta(1)}
    )

    assert store.save(renewed, deactivated) is True


def test_a_pending_subscription_is_activated_once_and_retired(dynamodb, tables) -> None:
    store = DynamoSubscriptionStore(tables["SubscriptionsTable"], dynamodb)
    store.put(Subscription(token="t" * 43, mailbox=DEMO_MAILBOX, state=SubscriptionState.PENDING))

    assert store.activate("t" * 43, "sub-1", "wm-1") is True
    assert store.activate("t" * 43, "sub-2", "wm-2") is False
    active = store.get("t" * 43)
    store.retire("t" * 43)
    store.retire("u" * 43)  # an unknown token stays unknown

    assert active is not None
    assert (active.state, active.subscription_id, active.last_watermark) == (
        SubscriptionState.ACTIVE,
        "sub-1",
        "wm-1",
    )
    assert store.get("t" * 43).state is SubscriptionState.RETIRED  # type: ignore[union-attr]
    assert store.get("u" * 43) is None


def test_recent_decisions_come_newest_first_within_limit_and_since(dynamodb, tables) -> None:
    log = DynamoDecisionLog(tables["DecisionsTable"], dynamodb, ttl_days=14)
    log.record(
        [
            Decision(
                mailbox=DEMO_MAILBOX,
                device_id="phone",
                item_id=f"item-{minutes}",
                event_kind="NewMail",
                outcome=Outcome.SUPPRESSED,
                reason=Reason.OUTSIDE_WORK_HOURS,
                rule=Rule.OUTSIDE_WORK_HOURS,
                received_at=AT,
                decided_at=AT + timedelta(minutes=minutes),
                latency_ms=None,
            )
            for minutes in range(5)
        ]
    )

    newest = log.recent(DEMO_MAILBOX, "phone", limit=2, since=None)
    since = log.recent(DEMO_MAILBOX, "phone", limit=100, since=AT + timedelta(minutes=3))

    assert [view.item_id for view in newest] == ["item-4", "item-3"]
    assert [view.item_id for view in since] == ["item-4", "item-3"]
    assert (newest[0].outcome, newest[0].reason, newest[0].decided_at) == (
        "suppressed",
        str(Reason.OUTSIDE_WORK_HOURS),
        AT + timedelta(minutes=4),
    )
    assert log.recent(DEMO_MAILBOX, "tablet", limit=10, since=None) == []


# -- the registry with its real adapters -----------------------------------------------------------------


def registry_over(
    tables: dict[str, str], dynamodb: Any, exchange: ExchangeMailSource, base_url: str
) -> DeviceRegistry:
    return DeviceRegistry(
        devices=DynamoDeviceStore(tables["DevicesTable"], dynamodb),
        mailboxes=DynamoMailboxStore(tables["MailboxesTable"], dynamodb),
        subscriptions=DynamoSubscriptionStore(tables["SubscriptionsTable"], dynamodb),
        exchange=exchange,
        decisions=DynamoDecisionLog(tables["DecisionsTable"], dynamodb, ttl_days=14),
        policy=RegistryPolicy(webhook_base_url=base_url, status_frequency_minutes=5),
    )


def test_register_mail_and_unregister_run_through_exchange_and_the_webhook(
    exchange_simulator, exchange, dynamodb, tables, callback_listener: CallbackListener
) -> None:
    registry = registry_over(tables, dynamodb, exchange(), callback_listener.url)
    subscriptions = DynamoSubscriptionStore(tables["SubscriptionsTable"], dynamodb)

    view, created = registry.register("phone", registration(DEMO_MAILBOX), owner(DEMO_MAILBOX))
    again, created_again = registry.register("phone", registration(DEMO_MAILBOX), owner(DEMO_MAILBOX))

    assert (created, created_again) == (True, False)
    assert again == view
    assert view.subscription.status is SubscriptionStatus.ACTIVE
    (held,) = exchange_simulator.subscriptions()
    record = DynamoMailboxStore(tables["MailboxesTable"], dynamodb).get(DEMO_MAILBOX)
    assert record is not None
    subscription = subscriptions.get(record.token)
    assert subscription is not None
    assert (subscription.state, subscription.subscription_id) == (
        SubscriptionState.ACTIVE,
        held["subscription_id"],
    )
    assert held["url"].endswith(f"/ews/notifications/{record.token}")
    assert held["status_frequency"] == 5

    exchange_simulator.deliver(DEMO_MAILBOX, subject="Hello")
    exchange_simulator.run_due_work()
    (callback,) = callback_listener.wait_for(1)
    assert callback.path.endswith(f"/ews/notifications/{record.token}")
    assert "NewMailEvent" in [type(event).__name__ for event in callback_listener.notifications()[0].events]

    registry.unregister("phone", owner(DEMO_MAILBOX))

    assert subscriptions.get(record.token).state is SubscriptionState.RETIRED  # type: ignore[union-attr]
    assert DynamoMailboxStore(tables["MailboxesTable"], dynamodb).get(DEMO_MAILBOX) is None
    webhook = CallbackReceiver(subscriptions, InMemoryMailEventQueue())
    body = send_notification(
        Body(
            [
                NotificationSpec(
                    held["subscription_id"], subscription.last_watermark or "wm", [status("wm-next")]
                )
            ]
        )
    )
    outcome = webhook.receive(CallbackRequest(record.token, body, "text/xml; charset=utf-8"))
    assert outcome.result is CallbackResult.UNSUBSCRIBE


def test_a_refused_registration_leaves_no_device_and_a_retired_subscription(
    exchange_simulator, exchange, dynamodb, tables
) -> None:
    registry = registry_over(
        tables, dynamodb, exchange(username=DEMO_NO_IMPERSONATION_ACCOUNT), "http://127.0.0.1:9/Prod"
    )

    with pytest.raises(AdminActionRequired) as raised:
        registry.register("phone", registration(DEMO_MAILBOX), owner(DEMO_MAILBOX))

    assert raised.value.code == "impersonation_denied"
    assert DynamoDeviceStore(tables["DevicesTable"], dynamodb).get(DEMO_MAILBOX, "phone") is None
    assert DynamoMailboxStore(tables["MailboxesTable"], dynamodb).get(DEMO_MAILBOX) is None
    (item,) = dynamodb.scan(TableName=tables["SubscriptionsTable"])["Items"]
    assert item["state"]["S"] == "retired"
    assert exchange_simulator.subscriptions() == []

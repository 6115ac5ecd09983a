"""DeviceRegistry over in-memory fakes: one shared subscription per mailbox, idempotent PUTs,
nothing half-stored when Exchange or DynamoDB fails, who may act for which mailbox."""

from __future__ import annotations

import dataclasses
import threading
from datetime import timedelta

import pytest

from ens.core.devices import Rules
from ens.core.registrations import (
    SUBSCRIPTION_EVENT_TYPES,
    MailboxState,
    MailboxSubscription,
    SubscriptionStatus,
)
from ens.core.subscriptions import Subscription, SubscriptionState
from ens.errors import (
    AdminActionRequired,
    DependencyUnavailable,
    DeviceNotFound,
    ExchangeBusy,
    Forbidden,
)
from ens.services.devices import STALE_PENDING, RegistryPolicy
from support.consumer_fakes import MAILBOX, NOW, make_device
from support.registry_fakes import (
    ADMIN,
    OTHER_MAILBOX,
    WEBHOOK_BASE_URL,
    RegistryWorld,
    owner,
    registration,
)


@pytest.fixture
def world() -> RegistryWorld:
    return RegistryWorld()


def only_subscription(world: RegistryWorld, mailbox: str = MAILBOX) -> Subscription:
    (subscription,) = world.subscriptions.of(mailbox)
    return subscription


# -- first registration, sharing, idempotency ------------------------------------------------------------


def test_first_registration_subscribes_the_mailbox_once_and_stores_the_device(world: RegistryWorld) -> None:
    view, created = world.registry().register("phone", registration(), owner())

    assert created is True
    (call,) = world.exchange.calls
    token = world.mailboxes.records[MAILBOX].token
    assert call.mailbox == MAILBOX
    assert call.callback_url == f"{WEBHOOK_BASE_URL}/ews/notifications/{token}"
    assert call.folders == ("inbox",)
    assert call.event_types == SUBSCRIPTION_EVENT_TYPES
    assert call.status_frequency_minutes == 15
    subscription = only_subscription(world)
    assert (subscription.state, subscription.subscription_id, subscription.last_watermark) == (
        SubscriptionState.ACTIVE,
        "sub-1",
        "wm-1",
    )
    record = world.mailboxes.records[MAILBOX]
    assert (record.state, record.subscription_id) == (MailboxState.ACTIVE, "sub-1")
    assert world.devices.get(MAILBOX, "phone") is not None
    assert view.subscription.status is SubscriptionStatus.ACTIVE
    assert (view.device_id, view.mailbox, view.active) == ("phone", MAILBOX, True)
    assert "push_token" not in view.model_dump()


def test_subscribe_uses_the_policys_folders_and_status_frequency(world: RegistryWorld) -> None:
    world.policy = RegistryPolicy(
        webhook_base_url=WEBHOOK_BASE_URL + "/ews/notifications/",
        status_frequency_minutes=5,
        folders=("inbox", "junkemail"),
    )

    world.registry().register("phone", registration(), owner())

    (call,) = world.exchange.calls
    assert (call.folders, call.status_frequency_minutes) == (("inbox", "junkemail"), 5)
    assert (
        call.callback_url == f"{WEBHOOK_BASE_URL}/ews/notifications/{world.mailboxes.records[MAILBOX].token}"
    )


def test_a_second_device_shares_the_mailboxs_subscription(world: RegistryWorld) -> None:
    registry = world.registry()
    registry.register("phone", registration(), owner())

    view, created = registry.register("tablet", registration(push_token="apns-token-2"), owner())

    assert created is True
    assert len(world.exchange.calls) == 1
    assert len(world.subscriptions.of(MAILBOX)) == 1
    assert view.subscription.status is SubscriptionStatus.ACTIVE
    assert len(world.devices.devices_of(MAILBOX)) == 2


def test_the_same_put_twice_changes_nothing_when_repeated(world: RegistryWorld) -> None:
    registry = world.registry()
    first, _ = registry.register("phone", registration(), owner())
    world.clock.advance(60)

    second, created = registry.register("phone", registration(), owner())

    assert created is False
    assert len(world.exchange.calls) == 1
    assert len(world.devices.saves) == 1
    assert second.updated_at == first.updated_at == NOW
    assert second == first


def test_a_rule_change_is_stored_with_a_new_updated_at_when_the_rules_differ(world: RegistryWorld) -> None:
    registry = world.registry()
    registry.register("phone", registration(), owner())
    world.clock.advance(60)

    view, created = registry.register(
        "phone", registration(rules={"work_hours_only": True, "time_zone": "Europe/Berlin"}), owner()
    )

    assert created is False
    stored = world.devices.get(MAILBOX, "phone")
    assert stored is not None
    assert stored.rules == Rules(work_hours_only=True, time_zone="Europe/Berlin")
    assert stored.updated_at == NOW + timedelta(seconds=60)
    assert stored.registered_at == NOW
    assert view.rules == stored.rules
    assert len(world.exchange.calls) == 1


def test_a_new_push_token_reactivates_a_device_the_relay_rejected(world: RegistryWorld) -> None:
    world.devices.add(make_device(active=False).model_copy(update={"deactivated_reason": "BadDeviceToken"}))

    same, _ = world.registry().register("phone", registration(push_token="token-phone"), owner())
    renewed, _ = world.registry().register("phone", registration(push_token="fresh-token"), owner())

    assert (same.active, same.deactivated_reason) == (False, "BadDeviceToken")
    assert (renewed.active, renewed.deactivated_reason) == (True, None)


def test_two_concurrent_first_registrations_make_exactly_one_subscribe(world: RegistryWorld) -> None:
    world.mailboxes.rendezvous = threading.Barrier(2)
    registry = world.registry()
    results: list[object] = []

    def register(device_id: str) -> None:
        try:
            results.append(registry.register(device_id, registration(push_token=f"t-{device_id}"), owner()))
        except Exception as error:
            results.append(error)

    threads = [threading.Thread(target=register, args=(name,)) for name in ("phone", "tablet")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)

    assert all(isinstance(result, tuple) for result in results), results
    assert len(results) == 2
    assert len(world.exchange.calls) == 1
    assert world.mailboxes.claims == 1
    assert len(world.subscriptions.of(MAILBOX)) == 1
    assert len(world.devices.devices_of(MAILBOX)) == 2


# -- failures leave nothing half-stored -----------------------------------------------------------------


@pytest.mark.parametrize(
    "failure",
    [
        ExchangeBusy("ex1", 2.5),
        AdminActionRequired("impersonation_denied", "refused"),
        AdminActionRequired("mailbox_unknown", "no such mailbox"),
        AdminActionRequired("no_server", "no server serves contoso.example"),
        DependencyUnavailable("connection refused"),
    ],
    ids=["busy", "impersonation_denied", "mailbox_unknown", "no_server", "unreachable"],
)
def test_a_failed_subscribe_raises_and_stores_nothing_usable_when_exchange_refuses(
    world: RegistryWorld, failure: Exception
) -> None:
    world.exchange.failures.append(failure)

    with pytest.raises(type(failure)) as raised:
        world.registry().register("phone", registration(), owner())

    assert raised.value is failure
    assert world.devices.get(MAILBOX, "phone") is None
    assert MAILBOX not in world.mailboxes.records
    assert only_subscription(world).state is SubscriptionState.RETIRED


def test_a_callback_during_subscribe_finds_the_record_pending(world: RegistryWorld) -> None:
    seen: list[SubscriptionState] = []
    world.exchange.during = lambda: seen.append(only_subscription(world).state)

    world.registry().register("phone", registration(), owner())

    assert seen == [SubscriptionState.PENDING]


def test_a_failed_activation_retires_the_new_subscription_when_dynamodb_fails_after_subscribe(
    world: RegistryWorld,
) -> None:
    world.subscriptions.fail_next_activate = True

    with pytest.raises(DependencyUnavailable):
        world.registry().register("phone", registration(), owner())

    assert len(world.exchange.calls) == 1
    assert only_subscription(world).state is SubscriptionState.RETIRED
    assert MAILBOX not in world.mailboxes.records
    assert world.devices.get(MAILBOX, "phone") is None


def test_the_next_registration_subscribes_again_after_a_failed_one(world: RegistryWorld) -> None:
    world.exchange.failures.append(ExchangeBusy("ex1", 1.0))
    registry = world.registry()
    with pytest.raises(ExchangeBusy):
        registry.register("phone", registration(), owner())

    view, created = registry.register("phone", registration(), owner())

    assert created is True
    assert len(world.exchange.calls) == 2
    assert view.subscription.status is SubscriptionStatus.ACTIVE


def test_a_failed_mailbox_subscription_is_replaced_by_the_next_registration(world: RegistryWorld) -> None:
    registry = world.registry()
    registry.register("phone", registration(), owner())
    old = world.mailboxes.records[MAILBOX]
    world.mailboxes.records[MAILBOX] = MailboxSubscription(
        mailbox=MAILBOX,
        token=old.token,
        state=MailboxState.FAILED,
        created_at=NOW,
        updated_at=NOW,
        reason="x",
    )

    view, _ = registry.register("tablet", registration(push_token="t2"), owner())

    assert len(world.exchange.calls) == 2
    assert world.subscriptions.subscriptions[old.token].state is SubscriptionState.RETIRED
    assert world.mailboxes.records[MAILBOX].token != old.token
    assert view.subscription.status is SubscriptionStatus.ACTIVE


def test_a_stale_pending_claim_is_replaced_but_a_fresh_one_is_shared(world: RegistryWorld) -> None:
    world.mailboxes.records[MAILBOX] = MailboxSubscription(
        mailbox=MAILBOX, token="t" * 43, state=MailboxState.PENDING, created_at=NOW, updated_at=NOW
    )
    registry = world.registry()

    fresh, _ = registry.register("phone", registration(), owner())
    world.clock.advance(STALE_PENDING.total_seconds() + 1)
    stale, _ = registry.register("tablet", registration(push_token="t2"), owner())

    assert fresh.subscription.status is SubscriptionStatus.PENDING
    assert stale.subscription.status is SubscriptionStatus.ACTIVE
    assert len(world.exchange.calls) == 1


# -- unregister ------------------------------------------------------------------------------------------


def test_unregistering_the_last_device_retires_the_subscription(world: RegistryWorld) -> None:
    registry = world.registry()
    registry.register("phone", registration(), owner())

    registry.unregister("phone", owner())

    assert world.devices.get(MAILBOX, "phone") is None
    assert only_subscription(world).state is SubscriptionState.RETIRED
    assert MAILBOX not in world.mailboxes.records


def test_unregistering_one_of_two_devices_keeps_the_subscription(world: RegistryWorld) -> None:
    registry = world.registry()
    registry.register("phone", registration(), owner())
    registry.register("tablet", registration(push_token="t2"), owner())

    registry.unregister("phone", owner())

    assert only_subscription(world).state is SubscriptionState.ACTIVE
    assert world.mailboxes.records[MAILBOX].state is MailboxState.ACTIVE
    assert [device.device_id for device in world.devices.devices_of(MAILBOX)] == ["tablet"]


def test_a_registration_slipping_into_an_unregister_gets_a_new_subscription(world: RegistryWorld) -> None:
    registry = world.registry()
    registry.register("phone", registration(), owner())
    reads: list[str] = []

    def register_between(mailbox: str) -> None:
        reads.append(mailbox)
        if len(reads) == 1:  # after the unregister saw no device left
            world.devices.add(make_device("tablet"))

    world.devices.after_devices_of = register_between

    registry.unregister("phone", owner())

    states = sorted(subscription.state for subscription in world.subscriptions.of(MAILBOX))
    assert states == [SubscriptionState.ACTIVE, SubscriptionState.RETIRED]
    assert world.mailboxes.records[MAILBOX].state is MailboxState.ACTIVE
    assert len(world.exchange.calls) == 2


def test_unregistering_an_unknown_device_raises_device_not_found(world: RegistryWorld) -> None:
    with pytest.raises(DeviceNotFound):
        world.registry().unregister("ghost", owner())


# -- who may act ---------------------------------------------------------------------------------------


def test_another_mailboxs_caller_is_forbidden_to_register_read_or_unregister(world: RegistryWorld) -> None:
    registry = world.registry()
    registry.register("phone", registration(), owner())
    intruder = owner(OTHER_MAILBOX)

    with pytest.raises(Forbidden):
        registry.register("tablet", registration(), intruder)
    with pytest.raises(Forbidden):
        registry.get("phone", intruder)
    with pytest.raises(Forbidden):
        registry.unregister("phone", intruder)
    with pytest.raises(Forbidden):
        registry.decisions("phone", intruder, limit=10, since=None)
    assert world.devices.get(MAILBOX, "phone") is not None
    assert len(world.exchange.calls) == 1


def test_a_device_id_of_another_mailbox_is_forbidden_to_a_non_admin(world: RegistryWorld) -> None:
    registry = world.registry()
    registry.register("phone", registration(), owner())

    with pytest.raises(Forbidden):
        registry.register("phone", registration(OTHER_MAILBOX), owner(OTHER_MAILBOX))

    assert world.devices.get(MAILBOX, "phone") is not None
    assert world.devices.get(OTHER_MAILBOX, "phone") is None
    assert world.exchange.calls[-1].mailbox == MAILBOX


def test_an_admin_acts_for_any_mailbox(world: RegistryWorld) -> None:
    registry = world.registry()

    view, created = registry.register("phone", registration(), ADMIN)
    read = registry.get("phone", ADMIN)
    registry.unregister("phone", ADMIN)

    assert created is True
    assert read.mailbox == view.mailbox == MAILBOX
    assert world.devices.find("phone") is None


def test_an_admin_moves_a_device_to_another_mailbox(world: RegistryWorld) -> None:
    registry = world.registry()
    registry.register("phone", registration(), owner())

    view, created = registry.register("phone", registration(OTHER_MAILBOX), ADMIN)

    assert (view.mailbox, created) == (OTHER_MAILBOX, True)
    assert world.devices.get(MAILBOX, "phone") is None
    assert only_subscription(world, MAILBOX).state is SubscriptionState.RETIRED
    assert only_subscription(world, OTHER_MAILBOX).state is SubscriptionState.ACTIVE


def test_reading_an_unknown_device_raises_device_not_found(world: RegistryWorld) -> None:
    with pytest.raises(DeviceNotFound):
        world.registry().get("ghost", owner())
    with pytest.raises(DeviceNotFound):
        world.registry().decisions("ghost", ADMIN, limit=10, since=None)


# -- what GET shows of the subscription ----------------------------------------------------------------


def test_the_subscription_view_follows_the_records(world: RegistryWorld) -> None:
    registry = world.registry()
    registry.register("phone", registration(), owner())
    token = world.mailboxes.records[MAILBOX].token
    store = world.subscriptions.subscriptions

    def status() -> tuple[SubscriptionStatus, str | None]:
        view = registry.get("phone", owner()).subscription
        return view.status, view.reason

    active = status()
    store[token] = dataclasses.replace(
        store[token], last_heartbeat_at="2026-12-02T10:05:00.000Z", last_seen_at="2026-12-02T10:06:00.000Z"
    )
    heartbeat = registry.get("phone", owner()).subscription
    store[token] = dataclasses.replace(store[token], gap_from_watermark="wm-1")
    gap = status()
    store[token] = dataclasses.replace(
        store[token], gap_from_watermark=None, last_error_code="ErrorReadEventsFailed"
    )
    error = status()
    world.mailboxes.records[MAILBOX] = dataclasses.replace(
        world.mailboxes.records[MAILBOX], state=MailboxState.FAILED, reason="impersonation_denied"
    )
    failed = status()
    world.mailboxes.records[MAILBOX] = dataclasses.replace(
        world.mailboxes.records[MAILBOX], state=MailboxState.PENDING
    )
    pending = status()
    del world.mailboxes.records[MAILBOX]
    none = status()

    assert active == (SubscriptionStatus.ACTIVE, None)
    assert heartbeat.last_heartbeat_at == NOW + timedelta(minutes=5)
    assert heartbeat.last_callback_at == NOW + timedelta(minutes=6)
    assert gap == (SubscriptionStatus.RECOVERING, "events_missed")
    assert error == (SubscriptionStatus.RECOVERING, "ErrorReadEventsFailed")
    assert failed == (SubscriptionStatus.FAILED, "impersonation_denied")
    assert pending == (SubscriptionStatus.PENDING, None)
    assert none == (SubscriptionStatus.NONE, None)


# -- decisions -------------------------------------------------------------------------------------------


def test_decisions_come_newest_first_within_limit_and_since(world: RegistryWorld) -> None:
    registry = world.registry()
    registry.register("phone", registration(), owner())
    for minutes in range(5):
        world.decisions.add(
            MAILBOX, "phone", item_id=f"item-{minutes}", decided_at=NOW + timedelta(minutes=minutes)
        )
    world.decisions.add(MAILBOX, "tablet", item_id="other", decided_at=NOW + timedelta(hours=1))

    newest = registry.decisions("phone", owner(), limit=2, since=None)
    since = registry.decisions("phone", owner(), limit=100, since=NOW + timedelta(minutes=3))

    assert [view.item_id for view in newest] == ["item-4", "item-3"]
    assert [view.item_id for view in since] == ["item-4", "item-3"]


@pytest.mark.parametrize("limit", [0, 101])
def test_a_decisions_limit_outside_1_to_100_is_refused(world: RegistryWorld, limit: int) -> None:
    world.registry().register("phone", registration(), owner())

    with pytest.raises(ValueError, match="limit"):
        world.registry().decisions("phone", owner(), limit=limit, since=None)

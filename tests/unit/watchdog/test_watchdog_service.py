"""The Watchdog service over in-memory fakes: replay, reconcile, retire, back-off and failed, superseded."""

from __future__ import annotations

import itertools
from collections import deque
from datetime import timedelta

from ens.core.mail import ReceivedMail
from ens.core.registrations import MailboxState, MailboxSubscription
from ens.core.subscriptions import Subscription, SubscriptionState
from ens.core.watchdog import DUE_SHARD, iso
from ens.errors import AdminActionRequired
from ens.services.watchdog import SubscribeSettings, Watchdog
from support.consumer_fakes import MAILBOX, ManualClock
from support.registry_fakes import InMemoryMailboxStore, RegistrySubscriptionStore, ScriptedExchange
from support.webhook_fakes import InMemoryMailEventQueue

OLD = "o" * 43


class World:
    def __init__(self, **record: object) -> None:
        self.clock = ManualClock()
        now = self.clock()
        self.subscriptions = RegistrySubscriptionStore()
        values: dict[str, object] = {
            "token": OLD,
            "mailbox": MAILBOX,
            "state": SubscriptionState.ACTIVE,
            "subscription_id": "sub-0",
            "last_watermark": "wm-0",
            "status_frequency_minutes": 15,
            "due_shard": DUE_SHARD,
            "due_at": iso(now - timedelta(seconds=1)),
            "last_event_at": iso(now - timedelta(hours=1)),
            **record,
        }
        self.subscriptions.put(Subscription(**values))  # type: ignore[arg-type]
        self.mailboxes = InMemoryMailboxStore()
        self.mailboxes.records[MAILBOX] = MailboxSubscription(
            mailbox=MAILBOX, token=OLD, state=MailboxState.ACTIVE, created_at=now, updated_at=now
        )
        self.exchange = ScriptedExchange()
        self.queue = InMemoryMailEventQueue()
        tokens = (f"{n:043d}" for n in itertools.count(1))
        self.watchdog = Watchdog(
            subscriptions=self.subscriptions,
            mailboxes=self.mailboxes,
            exchange=self.exchange,
            queue=self.queue,
            subscribe=SubscribeSettings(webhook_base_url="https://hooks.example/ews/notifications/"),
            clock=self.clock,
            token_factory=lambda: next(tokens),
        )

    def old(self) -> Subscription:
        record = self.subscriptions.get(OLD)
        assert record is not None
        return record


def test_a_silent_subscription_is_replayed_from_its_last_watermark_and_the_old_one_retired_when_due() -> None:
    world = World()

    report = world.watchdog.run()

    (call,) = world.exchange.calls
    assert call.watermark == "wm-0"
    assert call.callback_url.endswith("/" + "0" * 42 + "1")
    assert (report.resubscribed, report.replayed, report.reconciled) == (1, 1, 0)
    assert world.mailboxes.records[MAILBOX].token == "0" * 42 + "1"
    assert world.old().state is SubscriptionState.RETIRED
    new = world.subscriptions.get("0" * 42 + "1")
    assert new is not None
    assert (new.state, new.subscription_id, new.due_shard) == (SubscriptionState.ACTIVE, "sub-1", DUE_SHARD)


def test_an_invalid_watermark_subscribes_fresh_and_queues_the_mail_since_the_last_event_when_reconciling() -> (
    None
):
    world = World()
    now = world.clock()
    world.exchange.invalid_watermarks.add("wm-0")
    world.exchange.inbox = [
        ReceivedMail("old-item", "ck", now - timedelta(hours=3), "inbox-id"),
        ReceivedMail("gap-item", "ck", now - timedelta(minutes=20), "inbox-id"),
    ]

    report = world.watchdog.run()

    assert [call.watermark for call in world.exchange.calls] == ["wm-0", None]
    assert (report.reconciled, report.reconciled_mails) == (1, 1)
    (event,) = world.queue.sent
    assert (event.kind, event.item_id, event.subscription_id) == ("NewMail", "gap-item", "sub-2")


def test_a_record_the_mailbox_no_longer_names_is_retired_without_a_subscribe_when_due() -> None:
    world = World()
    world.mailboxes.records.clear()

    report = world.watchdog.run()

    assert report.retired == 1
    assert world.exchange.calls == []
    assert world.old().due_shard is None


def test_failures_back_off_then_mark_the_mailbox_failed_and_a_later_success_makes_it_active_again() -> None:
    world = World()
    world.exchange.failures = deque(AdminActionRequired("impersonation_denied", "refused") for _ in range(5))
    due_times = []
    for _ in range(5):
        world.watchdog.run()
        due_times.append(world.old().due_at)
        world.clock.advance(7 * 3600)

    failed = world.mailboxes.records[MAILBOX]
    report = world.watchdog.run()

    assert world.old().watchdog_failures == 5
    assert (failed.state, failed.reason) == (MailboxState.FAILED, "impersonation_denied")
    assert report.resubscribed == 1
    assert world.mailboxes.records[MAILBOX].state is MailboxState.ACTIVE
    assert world.mailboxes.records[MAILBOX].reason is None
    # every failed attempt's pending record was retired: nothing of it stays watched
    watched = [s for s in world.subscriptions.subscriptions.values() if s.due_shard == DUE_SHARD]
    assert len(watched) == 1


def test_a_registration_that_replaced_the_mailboxs_subscription_meanwhile_wins_when_the_watchdog_renews() -> (
    None
):
    world = World()

    def registration_replaces() -> None:
        world.mailboxes.records[MAILBOX] = MailboxSubscription(
            mailbox=MAILBOX,
            token="r" * 43,
            state=MailboxState.PENDING,
            created_at=world.clock(),
            updated_at=world.clock(),
        )

    world.exchange.during = registration_replaces

    report = world.watchdog.run()

    assert (report.superseded, report.resubscribed) == (1, 0)
    assert world.mailboxes.records[MAILBOX].token == "r" * 43
    ours = world.subscriptions.get("0" * 42 + "1")
    assert ours is not None
    assert ours.state is SubscriptionState.RETIRED

"""Push subscriptions driven by exchangelib, callbacks received on a real local HTTP listener.

The simulator runs on a manual clock with manual dispatch: `clock.advance` is the only way protocol time
passes and `run_due_work` the only way callbacks go out, so schedules are asserted exactly, with no sleeps.
"""

from __future__ import annotations

import itertools

import pytest
from exchangelib.errors import ErrorInvalidWatermark, ErrorSchemaValidation
from exchangelib.properties import (
    CreatedEvent,
    ModifiedEvent,
    MovedEvent,
    NewMailEvent,
    StatusEvent,
)

from exchange_simulator import ExchangeSimulator
from support.simulator_fixtures import DEMO_MAILBOX, parse_notification

pytestmark = pytest.mark.integration


def test_subscribe_to_push_returns_a_new_subscription_id_on_every_call(ews_account, callback_listener):
    account = ews_account()

    first_id, first_watermark = account.inbox.subscribe_to_push(callback_listener.url)
    second_id, second_watermark = account.inbox.subscribe_to_push(callback_listener.url)

    assert first_id != second_id
    assert first_watermark == second_watermark  # nothing happened in between


def test_new_mail_is_pushed_and_exchangelib_parses_the_notification(
    exchange_simulator: ExchangeSimulator, ews_account, callback_listener
):
    account = ews_account()
    subscription_id, watermark = account.inbox.subscribe_to_push(callback_listener.url)

    message = exchange_simulator.deliver(DEMO_MAILBOX, from_="Bob <bob@contoso.example>", subject="Lunch?")
    attempts = exchange_simulator.run_due_work()

    assert [a.outcome for a in attempts] == ["ok"]
    (notification,) = callback_listener.notifications()
    assert notification.subscription_id == subscription_id
    assert notification.previous_watermark == watermark
    assert notification.more_events is False
    kinds = [type(event) for event in notification.events]
    assert kinds == [CreatedEvent, NewMailEvent, ModifiedEvent]
    new_mail = notification.events[1]
    assert new_mail.item_id.id == exchange_simulator.item_id(DEMO_MAILBOX, message)
    assert new_mail.parent_folder_id.id == account.inbox.id
    assert notification.events[2].unread_count == 1
    assert callback_listener.received[0].headers["Content-Type"] == "text/xml; charset=utf-8"


def test_subscription_to_one_folder_ignores_mail_in_other_folders(
    exchange_simulator: ExchangeSimulator, ews_account, callback_listener
):
    ews_account().inbox.subscribe_to_push(callback_listener.url)

    exchange_simulator.deliver(DEMO_MAILBOX, subject="filtered", folder="junkemail")
    exchange_simulator.run_due_work()

    assert callback_listener.received == []


def test_subscription_to_all_folders_sees_mail_everywhere(
    exchange_simulator: ExchangeSimulator, ews_account, callback_listener
):
    ews_account().subscribe_to_push(callback_listener.url, event_types=["NewMailEvent"])

    exchange_simulator.deliver(DEMO_MAILBOX, subject="junk", folder="junkemail")
    exchange_simulator.run_due_work()

    (notification,) = callback_listener.notifications()
    assert [type(event) for event in notification.events] == [NewMailEvent]


def test_a_moved_message_is_reported_with_its_old_and_new_id(
    exchange_simulator: ExchangeSimulator, ews_account, callback_listener
):
    message = exchange_simulator.deliver(DEMO_MAILBOX, subject="to archive")
    old_id = exchange_simulator.item_id(DEMO_MAILBOX, message)
    ews_account().subscribe_to_push(callback_listener.url, event_types=["MovedEvent"])

    moved = exchange_simulator.move(DEMO_MAILBOX, message.number, "deleteditems")
    exchange_simulator.run_due_work()

    (event,) = callback_listener.notifications()[0].events
    assert isinstance(event, MovedEvent)
    assert event.old_item_id.id == old_id
    assert event.item_id.id == exchange_simulator.item_id(DEMO_MAILBOX, moved) != old_id


def test_a_status_event_heartbeat_goes_out_every_status_frequency_minutes(
    exchange_simulator: ExchangeSimulator, ews_account, callback_listener
):
    ews_account().inbox.subscribe_to_push(callback_listener.url, status_frequency=2)

    exchange_simulator.clock.advance(seconds=119)
    assert exchange_simulator.run_due_work() == []

    exchange_simulator.clock.advance(seconds=1)
    assert [a.kind for a in exchange_simulator.run_due_work()] == ["status"]
    exchange_simulator.clock.advance(minutes=2)
    assert [a.kind for a in exchange_simulator.run_due_work()] == ["status"]

    heartbeats = callback_listener.notifications()
    assert all(isinstance(n.events[0], StatusEvent) for n in heartbeats)
    # A heartbeat carries the current watermark, and the next one names it as previous.
    assert heartbeats[1].previous_watermark == heartbeats[0].events[0].watermark


def test_an_unsubscribe_reply_ends_the_subscription(
    exchange_simulator: ExchangeSimulator, ews_account, callback_listener
):
    ews_account().inbox.subscribe_to_push(callback_listener.url)
    callback_listener.reply = "Unsubscribe"

    exchange_simulator.deliver(DEMO_MAILBOX, subject="first")
    assert [a.outcome for a in exchange_simulator.run_due_work()] == ["unsubscribe"]
    assert exchange_simulator.subscriptions() == []

    exchange_simulator.deliver(DEMO_MAILBOX, subject="second")
    exchange_simulator.clock.advance(minutes=30)
    assert exchange_simulator.run_due_work() == []
    assert len(callback_listener.received) == 1


def test_a_failing_callback_is_retried_after_30s_doubling_and_dropped_after_status_frequency(
    exchange_simulator: ExchangeSimulator, ews_account, callback_listener
):
    ews_account().inbox.subscribe_to_push(callback_listener.url, status_frequency=5)
    callback_listener.reply = 503
    start = exchange_simulator.clock.now()
    exchange_simulator.deliver(DEMO_MAILBOX, subject="will not arrive")

    attempt_offsets = []
    for _ in range(310):  # walk protocol time second by second through five minutes
        for attempt in exchange_simulator.run_due_work():
            attempt_offsets.append((int((attempt.at - start).total_seconds()), attempt.outcome))
        exchange_simulator.clock.advance(seconds=1)

    assert attempt_offsets == [
        (0, "failed"),
        (30, "failed"),
        (90, "failed"),
        (210, "failed"),
        (300, "dropped"),
    ]
    assert exchange_simulator.subscriptions() == []
    assert len(callback_listener.received) == 4


def test_a_callback_that_recovers_before_the_deadline_keeps_the_subscription(
    exchange_simulator: ExchangeSimulator, ews_account, callback_listener
):
    ews_account().inbox.subscribe_to_push(callback_listener.url, status_frequency=1)
    callback_listener.reply = 500
    exchange_simulator.deliver(DEMO_MAILBOX, subject="late")
    assert [a.outcome for a in exchange_simulator.run_due_work()] == ["failed"]

    callback_listener.reply = "OK"
    exchange_simulator.clock.advance(seconds=30)
    assert [a.outcome for a in exchange_simulator.run_due_work()] == ["ok"]
    exchange_simulator.clock.advance(seconds=45)
    assert exchange_simulator.run_due_work() == []  # no drop: the failure streak is over
    assert len(exchange_simulator.subscriptions()) == 1


def test_with_status_frequency_one_the_subscription_dies_after_a_single_retry(
    exchange_simulator: ExchangeSimulator, ews_account, callback_listener
):
    ews_account().inbox.subscribe_to_push(callback_listener.url, status_frequency=1)
    callback_listener.reply = 500
    exchange_simulator.deliver(DEMO_MAILBOX, subject="x")

    outcomes = []
    for step in (0, 30, 30):
        exchange_simulator.clock.advance(seconds=step)
        outcomes += [a.outcome for a in exchange_simulator.run_due_work()]

    assert outcomes == ["failed", "failed", "dropped"]


def test_a_watermark_resume_replays_the_events_missed_in_between(
    exchange_simulator: ExchangeSimulator, ews_account, callback_listener
):
    account = ews_account()
    _, watermark = account.inbox.subscribe_to_push(callback_listener.url)
    exchange_simulator.deliver(DEMO_MAILBOX, subject="seen")
    exchange_simulator.run_due_work()
    last_seen = callback_listener.notifications()[-1].events[-1].watermark

    # The subscription vanishes (say, a mailbox move); mail keeps arriving.
    (subscription,) = exchange_simulator.subscriptions()
    exchange_simulator.push.drop_silently(subscription["subscription_id"])
    missed = [exchange_simulator.deliver(DEMO_MAILBOX, subject=f"missed {n}") for n in range(2)]
    exchange_simulator.run_due_work()
    assert len(callback_listener.received) == 1

    new_id, resumed_watermark = account.inbox.subscribe_to_push(callback_listener.url, watermark=last_seen)
    exchange_simulator.run_due_work()

    assert resumed_watermark == last_seen
    replay = callback_listener.notifications()[-1]
    assert replay.subscription_id == new_id
    assert replay.previous_watermark == last_seen
    replayed_ids = {event.item_id.id for event in replay.events if isinstance(event, NewMailEvent)}
    assert replayed_ids == {exchange_simulator.item_id(DEMO_MAILBOX, message) for message in missed}
    assert watermark != last_seen


def test_subscribe_with_an_expired_watermark_is_rejected(exchange_simulator: ExchangeSimulator, ews_account):
    account = ews_account()
    _, watermark = account.inbox.subscribe_to_push("http://127.0.0.1:9/cb")
    exchange_simulator.expire_watermarks(DEMO_MAILBOX)

    with pytest.raises(ErrorInvalidWatermark):
        account.inbox.subscribe_to_push("http://127.0.0.1:9/cb", watermark=watermark)


def test_a_watermark_older_than_thirty_days_is_rejected(exchange_simulator: ExchangeSimulator, ews_account):
    account = ews_account()
    _, watermark = account.inbox.subscribe_to_push("http://127.0.0.1:9/cb")
    exchange_simulator.clock.advance(minutes=60 * 24 * 31)

    with pytest.raises(ErrorInvalidWatermark):
        account.inbox.subscribe_to_push("http://127.0.0.1:9/cb", watermark=watermark)


def test_subscribe_with_an_unknown_watermark_is_rejected(ews_account):
    with pytest.raises(ErrorInvalidWatermark):
        ews_account().inbox.subscribe_to_push(
            "http://127.0.0.1:9/cb", watermark="AQAAAEDQ6ZmWKBpBhlJp8yyhbB0="
        )


@pytest.mark.parametrize("frequency", [0, 1441])
def test_status_frequency_outside_1_to_1440_is_rejected(ews_account, frequency):
    with pytest.raises(ErrorSchemaValidation):
        ews_account().inbox.subscribe_to_push("http://127.0.0.1:9/cb", status_frequency=frequency)


def test_a_backlog_is_sent_in_batches_flagged_more_events(
    exchange_simulator: ExchangeSimulator, ews_account, callback_listener
):
    exchange_simulator.push.max_events_per_notification = 4
    ews_account().inbox.subscribe_to_push(callback_listener.url, event_types=["NewMailEvent"])
    for n in range(10):
        exchange_simulator.deliver(DEMO_MAILBOX, subject=f"bulk {n}")

    attempts = exchange_simulator.run_due_work()

    assert [(a.more_events, len(a.event_types)) for a in attempts] == [(True, 4), (True, 4), (False, 2)]
    notifications = callback_listener.notifications()
    assert [n.more_events for n in notifications] == [True, True, False]
    # Each batch picks up where the previous one ended.
    for previous, current in itertools.pairwise(notifications):
        assert current.previous_watermark == previous.events[-1].watermark


def test_paused_callbacks_are_delivered_after_resume(
    exchange_simulator: ExchangeSimulator, ews_account, callback_listener
):
    ews_account().inbox.subscribe_to_push(callback_listener.url, event_types=["NewMailEvent"])
    exchange_simulator.pause_push()
    exchange_simulator.deliver(DEMO_MAILBOX, subject="held back")

    assert exchange_simulator.run_due_work() == []
    exchange_simulator.resume_push()

    assert [a.outcome for a in exchange_simulator.run_due_work()] == ["ok"]
    assert len(callback_listener.received) == 1


def test_a_silently_dropped_subscription_sends_nothing_more(
    exchange_simulator: ExchangeSimulator, ews_account, callback_listener
):
    subscription_id, _ = ews_account().inbox.subscribe_to_push(callback_listener.url)

    assert exchange_simulator.push.drop_silently(subscription_id)
    exchange_simulator.deliver(DEMO_MAILBOX, subject="lost")
    exchange_simulator.clock.advance(minutes=10)

    assert exchange_simulator.run_due_work() == []
    assert callback_listener.received == []


@pytest.mark.parametrize(
    "url",
    ["ftp://127.0.0.1/cb", "not a url", "http://example.com/cb", "http://127.0.0.1:99999/cb"],
)
def test_a_callback_url_that_is_invalid_or_not_loopback_is_rejected(ews_account, url):
    from exchangelib.errors import ErrorInvalidPushSubscriptionUrl

    with pytest.raises(ErrorInvalidPushSubscriptionUrl):
        ews_account().inbox.subscribe_to_push(url)


class TestBackgroundDispatch:
    """With dispatch='background' the simulator pushes by itself, as Exchange does."""

    @pytest.fixture
    def simulator_settings(self):
        return {"clock": "manual", "dispatch": "background"}

    def test_new_mail_is_pushed_without_being_asked(
        self, exchange_simulator: ExchangeSimulator, ews_account, callback_listener
    ):
        ews_account().inbox.subscribe_to_push(callback_listener.url, event_types=["NewMailEvent"])

        exchange_simulator.deliver(DEMO_MAILBOX, subject="instant")

        (callback,) = callback_listener.wait_for(1, timeout=5)
        (event,) = parse_notification(callback.body).events
        assert isinstance(event, NewMailEvent)

    def test_advancing_the_clock_triggers_the_heartbeat(
        self, exchange_simulator: ExchangeSimulator, ews_account, callback_listener
    ):
        ews_account().inbox.subscribe_to_push(callback_listener.url, status_frequency=1)

        exchange_simulator.clock.advance(minutes=1)

        (callback,) = callback_listener.wait_for(1, timeout=5)
        assert isinstance(parse_notification(callback.body).events[0], StatusEvent)

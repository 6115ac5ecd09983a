"""A mail delivered in Exchange reaches the phone, or a recorded reason says why not.

Every test starts with a mail delivered to the simulated Exchange and follows it through Exchange's
push callback, the webhook, SQS and the consumer (exchangelib over HTTP, impersonating) to the push
sink (HTTPS, bearer token), then reads the decision log in local DynamoDB.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from exchange_simulator import ExchangeSimulator
from push_sink import PushSink
from support.consumer_flow import (
    DEMO_MAILBOX,
    EVERY_DAY,
    MailFlow,
    consumer_environment,
    consumer_secrets,
    hours_excluding_now,
    servers_secret,
    simulator_server,
)

pytestmark = pytest.mark.e2e


@pytest.fixture
def flow(local_stack_factory: Callable[..., Any], push_sink: PushSink) -> MailFlow:
    stack = local_stack_factory(
        simulator={"dispatch": "manual"},
        seed=True,
        subscribe_mailboxes=[DEMO_MAILBOX],
        secrets=consumer_secrets(),
        environment=consumer_environment(push_sink),
        start_pollers=False,
    )
    return MailFlow(stack, push_sink)


def test_a_summary_mode_device_gets_sender_subject_and_snippet(flow: MailFlow) -> None:
    phone = flow.add_device("phone", content="summary")
    item_id = flow.deliver(
        from_="ceo@contoso.example", subject="Board meeting moved", body="Now at 3pm, room 4."
    )

    flow.dispatch()

    (push,) = flow.pushes_to(phone)
    assert push.payload["kind"] == "summary"
    assert push.payload["aps"]["alert"]["subtitle"] == "Board meeting moved"
    assert push.payload["aps"]["alert"]["body"] == "Now at 3pm, room 4."
    assert push.payload["mail"]["sender"]["address"] == "ceo@contoso.example"
    assert push.payload["priority"] == 10
    decision = flow.decision_for("phone", item_id)
    assert decision["outcome"] == "pushed"
    assert decision["rule"] == "all_mail"
    assert int(decision["latency_ms"]) >= 0
    assert "subject" not in decision
    assert "Board meeting moved" not in str(decision)


def test_a_count_mode_device_gets_the_inbox_unread_count_and_no_content(flow: MailFlow) -> None:
    phone = flow.add_device("phone", content="count")
    flow.deliver(subject="First")
    flow.deliver(subject="Second")
    unread = sum(
        1
        for message in flow.simulator.store.mailbox(DEMO_MAILBOX).messages_in(
            flow.simulator.store.mailbox(DEMO_MAILBOX).folder_by_distinguished("inbox").number
        )
        if not message.is_read
    )

    flow.dispatch()

    pushes = flow.pushes_to(phone)
    assert [push.payload["kind"] for push in pushes] == ["count", "count"]
    assert pushes[-1].payload["unread_count"] == unread
    assert pushes[-1].payload["aps"]["badge"] == unread
    assert set(pushes[-1].payload["mail"]) == {"internet_message_id", "folder_id"}
    assert pushes[-1].payload["aps"]["alert"]["title"] == "New mail"
    assert "Second" not in str(pushes[-1].payload)


def test_a_vip_mail_after_hours_is_pushed_and_another_is_suppressed_with_its_reason(flow: MailFlow) -> None:
    rules = {
        "work_hours_only": True,
        "vip_after_hours": True,
        "work_days": EVERY_DAY,
        **hours_excluding_now(),
    }
    phone = flow.add_device("phone", vips=["boss@contoso.example"], time_zone="UTC", **rules)
    vip_mail = flow.deliver(from_="Boss@Contoso.example", subject="Call me")
    other_mail = flow.deliver(from_="newsletter@contoso.example", subject="Weekly digest")

    flow.dispatch()

    (push,) = flow.pushes_to(phone)
    assert push.payload["aps"]["alert"]["subtitle"] == "Call me"
    assert flow.decision_for("phone", vip_mail)["rule"] == "vip_after_hours"
    suppressed = flow.decision_for("phone", other_mail)
    # The alert for the VIP mail carried the badge: the suppressed mail needed no badge update of its own.
    assert (suppressed["outcome"], suppressed["reason"], suppressed["rule"]) == (
        "suppressed",
        "outside_work_hours",
        "outside_work_hours",
    )


def test_a_sender_known_as_vip_only_from_an_exchange_contact_is_pushed_after_hours(flow: MailFlow) -> None:
    # The demo organisation files ceo@contoso.example among Alice's contacts in the category VIP.
    rules = {
        "work_hours_only": True,
        "vip_after_hours": True,
        "work_days": EVERY_DAY,
        **hours_excluding_now(),
    }
    phone = flow.add_device("phone", time_zone="UTC", **rules)
    item_id = flow.deliver(from_="ceo@contoso.example", subject="Urgent")
    before = flow.simulator.last_request_seq

    flow.dispatch()

    (push,) = flow.pushes_to(phone)
    assert push.payload["aps"]["alert"]["subtitle"] == "Urgent"
    assert flow.decision_for("phone", item_id)["rule"] == "vip_after_hours"
    assert flow.simulator.request_counts(since=before)["by_operation"].get("FindItem") == 1


def test_two_devices_of_one_mailbox_each_get_what_their_own_rules_say(flow: MailFlow) -> None:
    summary = flow.add_device("iphone", content="summary")
    strict = flow.add_device(
        "ipad",
        time_zone="UTC",
        work_hours_only=True,
        work_days=EVERY_DAY,
        badge_updates=False,
        **hours_excluding_now(),
    )
    item_id = flow.deliver(from_="colleague@contoso.example", subject="Lunch?")

    flow.dispatch()

    assert [push.payload["kind"] for push in flow.pushes_to(summary)] == ["summary"]
    assert flow.pushes_to(strict) == []
    assert flow.decision_for("iphone", item_id)["outcome"] == "pushed"
    assert flow.decision_for("ipad", item_id)["reason"] == "outside_work_hours"


def test_exchange_busy_once_is_waited_out_and_the_mail_pushed(flow: MailFlow) -> None:
    phone = flow.add_device("phone")
    flow.deliver(subject="Busy server")
    flow.simulator.faults.add(kind="server_busy", count=1, operations=["GetItem"], back_off_ms=200)
    before = flow.simulator.last_request_seq

    flow.dispatch()

    assert len(flow.pushes_to(phone)) == 1
    assert flow.simulator.request_counts(since=before)["by_operation"]["GetItem"] == 2


def test_cns_503_then_success_pushes_exactly_once(flow: MailFlow) -> None:
    phone = flow.add_device("phone")
    flow.sink.fail_next(503, count=1, retry_after=0)
    flow.deliver(subject="Retry me")

    flow.dispatch()

    alerts = [push for push in flow.pushes_to(phone) if push.payload["kind"] == "summary"]
    assert len(alerts) == 1
    statuses = [attempt.status for attempt in flow.sink.attempts() if attempt.status != 200]
    assert statuses == [503]


def test_cns_410_deactivates_the_device_and_records_why(flow: MailFlow) -> None:
    phone = flow.add_device("phone")
    flow.sink.mark_unregistered(phone.push_token)
    item_id = flow.deliver(subject="To a phone that is gone")

    flow.dispatch()

    (stored,) = flow.devices().devices_of(DEMO_MAILBOX)
    assert stored.active is False
    assert "410" in (stored.deactivated_reason or "")
    assert flow.decision_for("phone", item_id)["reason"] == "device_token_rejected"
    later = flow.deliver(subject="After deactivation")
    flow.dispatch()
    assert flow.decision_for("phone", later)["reason"] == "device_inactive"


def test_a_mail_deleted_before_the_fetch_is_recorded_as_gone(flow: MailFlow) -> None:
    flow.add_device("phone")
    item_id = flow.deliver(subject="Oops")
    for attempt in flow.simulator.run_due_work():
        assert attempt.http_status == 200
    flow.simulator.delete(DEMO_MAILBOX, item_id)

    flow.poll()

    # No alert; the badge follows the count Exchange reported with the delivery.
    assert [push.payload["kind"] for push in flow.sink.pushes()] == ["badge"]
    assert flow.decision_for("phone", item_id)["reason"] == "gone"


def test_a_mail_read_before_the_fetch_is_recorded_as_already_read(flow: MailFlow) -> None:
    phone = flow.add_device("phone")
    item_id = flow.deliver(subject="Read on the desktop")
    for attempt in flow.simulator.run_due_work():
        assert attempt.http_status == 200
    flow.simulator.mark_read(DEMO_MAILBOX, item_id)

    flow.poll()

    assert [push.payload["kind"] for push in flow.pushes_to(phone)] == ["badge"]
    decision = flow.decision_for("phone", item_id)
    assert (decision["outcome"], decision["reason"]) == ("badge_only", "already_read")


def test_a_stale_mail_is_not_pushed_and_recorded_as_stale(flow: MailFlow) -> None:
    phone = flow.add_device("phone", badge_updates=False)
    item_id = flow.deliver(subject="From before the outage", received=datetime.now(UTC) - timedelta(hours=3))

    flow.dispatch()

    assert flow.pushes_to(phone) == []
    assert flow.decision_for("phone", item_id)["reason"] == "stale"


def test_sqs_redelivery_of_a_processed_batch_pushes_nothing_twice(flow: MailFlow) -> None:
    phone = flow.add_device("phone")
    queue_url = flow.stack.queue_urls["NotificationsQueue"]
    sqs = flow.stack.client("sqs")
    flow.deliver(subject="Only once")
    for attempt in flow.simulator.run_due_work():
        assert attempt.http_status == 200
    queued = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, VisibilityTimeout=0)["Messages"]
    bodies = [message["Body"] for message in queued]
    flow.poll()
    first = len(flow.pushes_to(phone))

    for body in bodies:  # SQS delivers the same batch again, as after a lost DeleteMessage
        sqs.send_message(QueueUrl=queue_url, MessageBody=body)
    flow.poll()

    assert first >= 1
    assert len(flow.pushes_to(phone)) == first


def test_a_read_elsewhere_gives_one_badge_only_update(flow: MailFlow) -> None:
    phone = flow.add_device("phone")
    item_id = flow.deliver(subject="Read it on the laptop")
    flow.dispatch()
    seen = len(flow.pushes_to(phone))

    flow.simulator.mark_read(DEMO_MAILBOX, item_id)
    flow.dispatch()

    new = flow.pushes_to(phone)[seen:]
    assert [push.payload["kind"] for push in new] == ["badge"]
    assert new[0].payload["priority"] == 5
    assert "alert" not in new[0].payload["aps"]
    assert new[0].payload["aps"]["badge"] == new[0].payload["unread_count"]


@pytest.fixture
def second_exchange() -> Iterator[ExchangeSimulator]:
    sim = ExchangeSimulator(host="127.0.0.1", port=0, settings={"dispatch": "manual"})
    sim.start()
    sim.add_mailbox("dana@fabrikam.example", "Dana")
    sim.add_service_account("svc-ens@fabrikam.example", "Fabrikam-Service-2019")
    try:
        yield sim
    finally:
        sim.stop()


def test_a_mailbox_on_a_second_exchange_server_is_fetched_with_that_servers_account(
    local_stack_factory: Callable[..., Any], push_sink: PushSink, second_exchange: ExchangeSimulator
) -> None:
    secrets = consumer_secrets(
        servers_secret(
            simulator_server("contoso", "${simulator_ews_url}", default=True),
            simulator_server(
                "fabrikam",
                second_exchange.ews_url,
                username="svc-ens@fabrikam.example",
                password="Fabrikam-Service-2019",
                domains=["fabrikam.example"],
            ),
        )
    )
    stack = local_stack_factory(
        simulator={"dispatch": "manual"},
        seed=True,
        subscribe_mailboxes=[DEMO_MAILBOX, "dana@fabrikam.example"],
        secrets=secrets,
        environment=consumer_environment(push_sink),
        start_pollers=False,
    )
    flow = MailFlow(stack, push_sink)
    dana = flow.add_device("dana-phone", mailbox="dana@fabrikam.example")
    item_id = flow.deliver("dana@fabrikam.example", simulator=second_exchange, subject="Hello from Fabrikam")

    flow.dispatch(second_exchange)

    (push,) = [push for push in flow.pushes_to(dana) if push.payload["kind"] == "summary"]
    assert push.payload["mailbox"] == "dana@fabrikam.example"
    assert flow.decision_for("dana-phone", item_id, mailbox="dana@fabrikam.example")["outcome"] == "pushed"
    fetches = [r for r in second_exchange.requests if r.operation == "GetItem"]
    assert {(r.account, r.impersonated) for r in fetches} == {
        ("svc-ens@fabrikam.example", "dana@fabrikam.example")
    }
    assert not [r for r in flow.simulator.requests if r.impersonated == "dana@fabrikam.example"]

"""`make run`'s checked-in settings start the whole service, and the README's two curls work.

The settings file is used as checked in, but for free ports, a name of the test's own, and the
simulator's manual dispatch, so the test says when Exchange's callback goes out.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from ens_local.config import DEFAULT_CONFIG, load_settings
from ens_local.stack import LocalStack, with_overrides
from support.queues import take_all

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parents[2]
XML = {"Content-Type": "text/xml; charset=utf-8"}


@pytest.fixture
def demo_stack(local_aws, stack_name: str) -> Iterator[LocalStack]:
    settings = with_overrides(load_settings(DEFAULT_CONFIG), api_port=0, aws_port=0, stack_name=stack_name)
    simulator = settings.exchange_simulator
    settings = settings.model_copy(
        update={
            "exchange_simulator": simulator.model_copy(
                update={"port": 0, "settings": {**simulator.settings, "dispatch": "manual"}}
            ),
            "push_sink": settings.push_sink.model_copy(update={"port": 0}),
        }
    )
    stack = LocalStack(settings, aws=local_aws, start_pollers=False).start()
    try:
        yield stack
    finally:
        stack.stop()


def queued(stack: LocalStack) -> list[dict]:
    return take_all(stack.client("sqs"), stack.queue_urls["NotificationsQueue"])


def test_readme_curl_of_a_send_notification_gets_ok_for_the_demo_token(demo_stack: LocalStack) -> None:
    (bob,) = demo_stack.settings.demo_subscriptions

    reply = requests.post(
        f"{demo_stack.api_url}/ews/notifications/{bob.token}",
        data=(REPO / "local" / "demo" / "send_notification_bob.xml").read_bytes(),
        headers=XML,
        timeout=10,
    )

    assert reply.status_code == 200
    assert b"<m:SubscriptionStatus>OK</m:SubscriptionStatus>" in reply.content
    assert [(event["mailbox"], event["item_id"]) for event in queued(demo_stack)] == [
        ("bob@contoso.example", "demo-item-1")
    ]


def test_the_demo_notification_posted_twice_is_a_resend_as_its_comment_says(demo_stack: LocalStack) -> None:
    from ens.adapters.subscription_store import DynamoSubscriptionStore

    (bob,) = demo_stack.settings.demo_subscriptions
    demo = REPO / "local" / "demo" / "send_notification_bob.xml"
    url = f"{demo_stack.api_url}/ews/notifications/{bob.token}"
    replies = [requests.post(url, data=demo.read_bytes(), headers=XML, timeout=10) for _ in range(2)]

    assert [reply.status_code for reply in replies] == [200, 200]
    assert len(queued(demo_stack)) == 1  # the second post is recognised as Exchange resending the first
    store = DynamoSubscriptionStore(
        demo_stack.table_names["SubscriptionsTable"], demo_stack.client("dynamodb")
    )
    assert store.get(bob.token).gap_from_watermark is None  # type: ignore[union-attr]
    comment = demo.read_text().split("-->")[0]
    assert "resend" in comment
    assert "records a watermark gap" not in comment


def test_readme_curl_delivering_a_mail_in_the_simulator_ends_on_the_queue(demo_stack: LocalStack) -> None:
    delivered = requests.post(
        f"{demo_stack.simulator.base_url}/_sim/mailboxes/alice@contoso.example/messages",
        json={"from": "ceo@contoso.example", "subject": "Board meeting moved", "body": "Now at 3pm."},
        timeout=10,
    )
    demo_stack.simulator.run_due_work()

    assert delivered.status_code in (200, 201)
    new_mail = [event for event in queued(demo_stack) if event["kind"] == "NewMail"]
    assert [(event["mailbox"], event["item_id"]) for event in new_mail] == [
        ("alice@contoso.example", delivered.json()["item_id"])
    ]


def test_readme_curl_delivering_a_mail_ends_as_a_notification_printed_by_the_push_sink(
    demo_stack: LocalStack, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="local_stack.push_sink")
    delivered = requests.post(
        f"{demo_stack.simulator.base_url}/_sim/mailboxes/alice@contoso.example/messages",
        json={"from": "ceo@contoso.example", "subject": "Board meeting moved", "body": "Now at 3pm."},
        timeout=10,
    )
    demo_stack.simulator.run_due_work()

    (outcome,) = demo_stack.poll_all_once()

    assert delivered.status_code in (200, 201)
    assert (outcome.received, outcome.deleted, outcome.failed) == (2, 2, 0)
    (alert,) = [push for push in demo_stack.push_sink.pushes() if push.payload["kind"] == "summary"]
    assert alert.payload["mailbox"] == "alice@contoso.example"
    assert alert.payload["aps"]["alert"]["subtitle"] == "Board meeting moved"
    assert any(
        "push summary to device" in record.getMessage() and "alice@contoso.example" in record.getMessage()
        for record in caplog.records
    )

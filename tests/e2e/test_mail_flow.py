"""The pipeline through the local stack: HTTP into the webhook, SQS, and a queue-triggered handler.

These tests look at what reaches the notifications queue, so they run the template without the
consumer's trigger and attach a small recording handler instead; tests/e2e/test_consumer_flow.py
follows mail all the way to the push sink.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests

from ens.adapters.subscription_store import DynamoSubscriptionStore
from ens.core.subscriptions import Subscription, SubscriptionState, new_callback_token
from support.consumer_flow import consumer_secrets
from support.ews_schema import assert_valid_ews
from support.send_notifications import new_mail_body

pytestmark = pytest.mark.e2e
XML = {"Content-Type": "text/xml; charset=utf-8"}


class RecordingConsumer:
    """A queue-triggered handler that keeps what it was given and reports no failures."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []

    def __call__(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        self.records += event["Records"]
        return {"batchItemFailures": []}

    @property
    def mail_events(self) -> list[dict[str, Any]]:
        return [json.loads(record["body"]) for record in self.records]


@pytest.fixture
def without_consumer_trigger(template_copy: Callable[..., Path]) -> Path:
    def drop_trigger(document: dict[str, Any]) -> None:
        document["Resources"]["ConsumerFunction"]["Properties"].pop("Events")

    return template_copy(drop_trigger)


def subscribe(stack: Any, mailbox: str = "ada@contoso.com", subscription_id: str = "sub-1") -> Subscription:
    subscription = Subscription(
        token=new_callback_token(),
        mailbox=mailbox,
        state=SubscriptionState.ACTIVE,
        subscription_id=subscription_id,
        last_watermark="wm-0",
    )
    DynamoSubscriptionStore(stack.table_names["SubscriptionsTable"], stack.client("dynamodb")).put(
        subscription
    )
    return subscription


def queue_depth(stack: Any) -> int:
    attributes = stack.client("sqs").get_queue_attributes(
        QueueUrl=stack.queue_urls["NotificationsQueue"],
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(
        attributes["ApproximateNumberOfMessagesNotVisible"]
    )


def test_callback_posted_over_http_reaches_a_queue_triggered_handler(
    local_stack_factory, without_consumer_trigger: Path
) -> None:
    stack = local_stack_factory(without_consumer_trigger, start_pollers=False)
    consumer = RecordingConsumer()
    stack.attach_consumer("NotificationsQueue", consumer, batch_size=10, start=False)
    subscription = subscribe(stack)

    reply = requests.post(
        f"{stack.api_url}/ews/notifications/{subscription.token}",
        data=new_mail_body("sub-1", "wm-0", count=2),
        headers=XML,
        timeout=10,
    )
    (outcome,) = stack.poll_all_once()

    assert reply.status_code == 200
    assert reply.headers["Content-Type"] == "text/xml; charset=utf-8"
    (result,) = assert_valid_ews(reply.content)
    assert result[0].text == "OK"
    assert (outcome.received, outcome.deleted) == (2, 2)
    assert sorted(event["item_id"] for event in consumer.mail_events) == ["item-1", "item-2"]
    assert {record["eventSource"] for record in consumer.records} == {"aws:sqs"}
    assert queue_depth(stack) == 0


def test_mail_delivered_in_the_simulator_is_pushed_to_the_webhook_and_reaches_the_handler(
    local_stack_factory, without_consumer_trigger: Path
) -> None:
    stack = local_stack_factory(
        without_consumer_trigger,
        simulator={"clock": "manual", "dispatch": "manual"},
        seed=True,
        subscribe_mailboxes=["alice@contoso.example"],
        secrets=consumer_secrets(),
        start_pollers=False,
    )
    consumer = RecordingConsumer()
    stack.attach_consumer("NotificationsQueue", consumer, start=False)
    (subscription,) = stack.live_subscriptions

    stack.simulator.deliver("alice@contoso.example", subject="Quarterly numbers", body="Draft attached")
    (attempt,) = stack.simulator.run_due_work()
    stack.poll_all_once()

    assert (attempt.http_status, attempt.outcome) == (200, "ok")
    kinds = sorted(event["kind"] for event in consumer.mail_events)
    assert kinds == ["NewMail", "UnreadCountChanged"]
    new_mail = next(event for event in consumer.mail_events if event["kind"] == "NewMail")
    assert new_mail["mailbox"] == "alice@contoso.example"
    assert new_mail["subscription_id"] == subscription.subscription_id
    assert new_mail["item_id"]
    stored = DynamoSubscriptionStore(stack.table_names["SubscriptionsTable"], stack.client("dynamodb")).get(
        subscription.token
    )
    assert stored.last_watermark in {event["watermark"] for event in consumer.mail_events}
    assert stored.last_watermark != subscription.last_watermark
    assert stored.gap_from_watermark is None


def test_hostile_bodies_over_http_are_refused_and_the_stack_keeps_serving(local_stack_factory) -> None:
    stack = local_stack_factory(start_pollers=False)
    subscription = subscribe(stack)
    url = f"{stack.api_url}/ews/notifications/{subscription.token}"
    xxe = (
        b'<?xml version="1.0"?><!DOCTYPE s [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        b'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>&x;</s:Body></s:Envelope>'
    )

    too_large = requests.post(url, data=b"<" + b"x" * (10 * 1024 * 1024) + b"/>", headers=XML, timeout=30)
    entity = requests.post(url, data=xxe, headers=XML, timeout=10)
    wrong_type = requests.post(
        url, data=new_mail_body("sub-1", "wm-0"), headers={"Content-Type": "application/json"}, timeout=10
    )
    utf16 = requests.post(
        url,
        data=new_mail_body("sub-1", "wm-0").decode().replace("utf-8", "utf-16").encode("utf-16"),
        headers=XML,
        timeout=10,
    )
    valid = requests.post(url, data=new_mail_body("sub-1", "wm-0"), headers=XML, timeout=10)

    assert [too_large.status_code, entity.status_code, wrong_type.status_code, utf16.status_code] == [
        413,
        400,
        415,
        415,
    ]
    assert entity.json()["error"] == "dtd_forbidden"
    assert valid.status_code == 200
    assert queue_depth(stack) == 1

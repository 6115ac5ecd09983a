"""Transient faults of DynamoDB or SQS get a 5xx that Exchange retries: never Unsubscribe, never OK."""

from __future__ import annotations

import pytest

from support.send_notifications import new_mail_body

pytestmark = pytest.mark.integration


def test_queue_unavailable_gets_503_and_the_subscription_does_not_move_on(webhook) -> None:
    subscription = webhook.subscribe()
    webhook.stack.aws.client("sqs").delete_queue(QueueUrl=webhook.stack.queue_urls["NotificationsQueue"])

    answer = webhook.post(subscription.token, new_mail_body("sub-1", "wm-0"))

    assert answer.status == 503
    assert answer.headers["Retry-After"] == "30"
    assert b"Unsubscribe" not in answer.body
    stored = webhook.store.get(subscription.token)
    assert (stored.last_watermark, stored.last_seen_at) == ("wm-0", None)


def test_table_unavailable_gets_503_and_nothing_is_queued(webhook) -> None:
    subscription = webhook.subscribe()
    webhook.stack.aws.client("dynamodb").delete_table(
        TableName=webhook.stack.table_names["SubscriptionsTable"]
    )

    answer = webhook.post(subscription.token, new_mail_body("sub-1", "wm-0"))

    assert answer.status == 503
    assert webhook.queued() == []


def test_callback_after_a_fault_is_accepted_once_aws_is_back(webhook) -> None:
    subscription = webhook.subscribe()
    sqs = webhook.stack.aws.client("sqs")
    sqs.delete_queue(QueueUrl=webhook.stack.queue_urls["NotificationsQueue"])
    assert webhook.post(subscription.token, new_mail_body("sub-1", "wm-0")).status == 503

    sqs.create_queue(QueueName=webhook.stack.queue_name("NotificationsQueue"))
    answer = webhook.post(subscription.token, new_mail_body("sub-1", "wm-0"))

    assert answer.status == 200
    assert len(webhook.queued()) == 1

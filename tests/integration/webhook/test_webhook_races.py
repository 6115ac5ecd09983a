"""Races and half-way failures, with the real adapters over local AWS and the receiver driven directly."""

from __future__ import annotations

from typing import Any

import pytest

from ens.adapters.aws import client
from ens.adapters.mail_event_queue import SqsMailEventQueue
from ens.adapters.subscription_store import DynamoSubscriptionStore
from ens.core.subscriptions import CallbackProgress, Subscription, SubscriptionState
from ens.services.webhook import CallbackReceiver, CallbackRequest
from support.send_notifications import new_mail_body

pytestmark = pytest.mark.integration
XML = "text/xml; charset=utf-8"


class StoreWithSomethingInBetween(DynamoSubscriptionStore):
    """The real store, with another writer acting between the webhook's read and its write."""

    def __init__(self, table: str, meanwhile: Any) -> None:
        super().__init__(table, client("dynamodb"))
        self._meanwhile = meanwhile

    def record_callback(self, subscription: Subscription, progress: CallbackProgress, seen_at: str) -> bool:
        self._meanwhile(subscription)
        return super().record_callback(subscription, progress, seen_at)


def receiver_for(webhook, meanwhile) -> CallbackReceiver:
    stack = webhook.stack
    return CallbackReceiver(
        subscriptions=StoreWithSomethingInBetween(stack.table_names["SubscriptionsTable"], meanwhile),
        queue=SqsMailEventQueue(stack.queue_urls["NotificationsQueue"], client("sqs")),
    )


def test_a_subscription_retired_while_the_callback_runs_gets_unsubscribe_with_its_events_queued(
    webhook,
) -> None:
    subscription = webhook.subscribe()

    def retire(current: Subscription) -> None:
        webhook.store.put(
            Subscription(current.token, current.mailbox, SubscriptionState.RETIRED, current.subscription_id)
        )

    outcome = receiver_for(webhook, retire).receive(
        CallbackRequest(subscription.token, new_mail_body("sub-1", "wm-0"), XML)
    )

    assert (outcome.status_code, outcome.result, outcome.reason) == (200, "unsubscribe", "retired_meanwhile")
    assert b"Unsubscribe" in outcome.body
    assert [event["item_id"] for event in webhook.queued()] == ["item-1"]
    assert webhook.store.get(subscription.token).state is SubscriptionState.RETIRED


def test_a_table_failing_after_the_events_are_queued_gets_503_so_exchange_resends(webhook) -> None:
    subscription = webhook.subscribe()

    def lose_the_table(_: Subscription) -> None:
        client("dynamodb").delete_table(TableName=webhook.stack.table_names["SubscriptionsTable"])

    outcome = receiver_for(webhook, lose_the_table).receive(
        CallbackRequest(subscription.token, new_mail_body("sub-1", "wm-0"), XML)
    )

    assert (outcome.status_code, outcome.reason) == (503, "dependency_unavailable")
    assert outcome.fault == "ResourceNotFoundException"
    # Queued once already; Exchange's resend will queue it again, and the consumer deduplicates.
    assert len(webhook.queued()) == 1

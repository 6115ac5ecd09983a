from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from ens.adapters.subscription_store import DynamoSubscriptionStore
from ens.core.subscriptions import Subscription, SubscriptionState, new_callback_token
from ens_local.api_gateway import build_rest_proxy_event, reply_from_proxy_result
from ens_local.functions import LoadedFunction
from support.queues import take_all

ROUTE = "/ews/notifications/{token}"
XML = "text/xml; charset=utf-8"


@dataclass
class Answer:
    status: int
    body: bytes
    headers: dict[str, str]


@dataclass
class WebhookUnderTest:
    """The webhook Lambda, loaded cold, against a stack provisioned fresh for this test."""

    function: LoadedFunction
    stack: Any  # ens_local.aws.ProvisionedStack

    @property
    def store(self) -> DynamoSubscriptionStore:
        return DynamoSubscriptionStore(
            self.stack.table_names["SubscriptionsTable"], self.stack.aws.client("dynamodb")
        )

    def subscribe(self, **changes: Any) -> Subscription:
        values: dict[str, Any] = {
            "token": new_callback_token(),
            "mailbox": "ada@contoso.com",
            "state": SubscriptionState.ACTIVE,
            "subscription_id": "sub-1",
            "last_watermark": "wm-0",
            "created_at": "2026-11-28T08:00:00Z",
        }
        values.update(changes)
        subscription = Subscription(**values)
        self.store.put(subscription)
        return subscription

    def post(self, token: str, body: bytes, content_type: str | None = XML) -> Answer:
        headers = {"Content-Type": content_type} if content_type else {}
        event = build_rest_proxy_event(
            "POST",
            f"/ews/notifications/{token}",
            ROUTE,
            headers=headers,
            body=body,
            binary=True,  # WebhookApi's BinaryMediaTypes ("*~1*"): every body arrives base64, byte-exact
            path_parameters={"token": token},
        )
        reply = reply_from_proxy_result(self.function.invoke(event))
        return Answer(reply.status, reply.body, dict(reply.headers))

    def queued(self) -> list[dict[str, Any]]:
        """Every message on the notifications queue, taken off it."""
        return take_all(self.stack.aws.client("sqs"), self.stack.queue_urls["NotificationsQueue"])


@pytest.fixture
def webhook(provisioned_stack: Any, load_lambda: Callable[[str], LoadedFunction]) -> WebhookUnderTest:
    return WebhookUnderTest(load_lambda("WebhookFunction"), provisioned_stack)

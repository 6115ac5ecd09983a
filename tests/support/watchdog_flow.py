"""The whole service for the watchdog's end-to-end tests: a device registered through the devices API,
the simulator pushing into the webhook (manual dispatch), SQS and the consumer pushing to the sink, and
the watchdog run as the template's Schedule event with its clock moved forward instead of waiting.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import requests

from ens.adapters.mailbox_store import DynamoMailboxStore
from ens.adapters.subscription_store import DynamoSubscriptionStore
from ens_local.config import DEFAULT_CONFIG, load_settings
from ens_local.tokens import mint
from push_sink import PushSink
from support.consumer_flow import DEMO_MAILBOX, MailFlow, consumer_environment, consumer_secrets

DEMO_SETTINGS = load_settings(DEFAULT_CONFIG)
DEVICE = "alice-iphone"
# Past every heartbeat deadline (2 x StatusFrequency 15 + grace 5 minutes) of a subscription made now.
LATER = timedelta(minutes=40)


def watchdog_flow(
    local_stack_factory: Callable[..., Any],
    push_sink: PushSink,
    *,
    simulator: Mapping[str, Any] | None = None,
    environment: Mapping[str, str] | None = None,
) -> MailFlow:
    """The stack with the devices API's JWT settings, pollers and schedules left to the test."""
    stack = local_stack_factory(
        simulator={"dispatch": "manual", **(simulator or {})},
        parameters={
            name: value for name, value in DEMO_SETTINGS.parameters.items() if name.startswith("Jwt")
        },
        secrets={**consumer_secrets(), "ens/jwt-keys": DEMO_SETTINGS.secrets["ens/jwt-keys"]},
        environment={
            **consumer_environment(push_sink),
            "WEBHOOK_BASE_URL": "${api_url}/ews/notifications/",
            **(environment or {}),
        },
        start_pollers=False,
    )
    return MailFlow(stack, push_sink)


@contextmanager
def watchdog_clock(flow: MailFlow) -> Iterator[Callable[[timedelta], None]]:
    """Moves the watchdog function's "now" ahead of the wall clock; put back on exit."""
    module = flow.stack.functions["WatchdogFunction"].module
    original = module.clock

    def ahead(by: timedelta) -> None:
        module.clock = lambda: datetime.now(UTC) + by

    try:
        yield ahead
    finally:
        module.clock = original


def _bearer() -> dict[str, str]:
    return {"Authorization": f"Bearer {mint(DEMO_SETTINGS, DEMO_MAILBOX)}"}


def register(flow: MailFlow) -> dict[str, Any]:
    """Alice's phone registered through the devices API, which subscribes her mailbox."""
    answer = requests.put(
        f"{flow.stack.api_url}/v1/devices/{DEVICE}",
        json={"mailbox": DEMO_MAILBOX, "push_token": f"apns-{DEVICE}", "platform": "ios", "rules": {}},
        headers=_bearer(),
        timeout=30,
    )
    assert answer.status_code == 201, answer.text
    result: dict[str, Any] = answer.json()
    return result


def device(flow: MailFlow) -> dict[str, Any]:
    answer = requests.get(f"{flow.stack.api_url}/v1/devices/{DEVICE}", headers=_bearer(), timeout=30)
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result


def pushed_subjects(flow: MailFlow) -> list[str]:
    """The subjects of the alerts the phone got, in order (badge-only updates left out)."""
    return [
        push.payload["aps"]["alert"]["subtitle"]
        for push in flow.sink.pushes(device_token=f"apns-{DEVICE}")
        if push.payload["kind"] != "badge"
    ]


def mailbox_token(flow: MailFlow) -> str:
    record = DynamoMailboxStore(flow.stack.table_names["MailboxesTable"], flow.stack.client("dynamodb")).get(
        DEMO_MAILBOX
    )
    assert record is not None
    return record.token


def subscriptions(flow: MailFlow) -> DynamoSubscriptionStore:
    return DynamoSubscriptionStore(
        flow.stack.table_names["SubscriptionsTable"], flow.stack.client("dynamodb")
    )


def live_subscription_ids(flow: MailFlow) -> list[str]:
    """Alice's push subscriptions Exchange (the simulator) still has."""
    return [s["subscription_id"] for s in flow.simulator.subscriptions() if s["mailbox"] == DEMO_MAILBOX]

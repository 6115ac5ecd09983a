"""A phone registers over HTTP, ENS subscribes its mailbox in Exchange, and mail reaches it by its rules.

Everything real: the devices API behind the local API front (JWT, the registry, DynamoDB in moto),
Exchange Subscribe through the simulator, Exchange's push callbacks into the webhook, SQS, the consumer
and the push sink. No seeded subscription and no seeded device: only what the API made.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import requests

from ens_local.config import DEFAULT_CONFIG, load_settings
from ens_local.tokens import mint
from push_sink import PushSink
from support.consumer_flow import (
    DEMO_MAILBOX,
    EVERY_DAY,
    MailFlow,
    consumer_environment,
    consumer_secrets,
    hours_excluding_now,
)

pytestmark = pytest.mark.e2e
DEMO_SETTINGS = load_settings(DEFAULT_CONFIG)


@pytest.fixture
def flow(local_stack_factory: Callable[..., Any], push_sink: PushSink) -> MailFlow:
    stack = local_stack_factory(
        simulator={"dispatch": "manual"},
        parameters={
            name: value for name, value in DEMO_SETTINGS.parameters.items() if name.startswith("Jwt")
        },
        secrets={**consumer_secrets(), "ens/jwt-keys": DEMO_SETTINGS.secrets["ens/jwt-keys"]},
        environment={
            **consumer_environment(push_sink),
            "WEBHOOK_BASE_URL": "${api_url}/ews/notifications/",
        },
        start_pollers=False,
    )
    return MailFlow(stack, push_sink)


def _headers(mailbox: str = DEMO_MAILBOX) -> dict[str, str]:
    return {"Authorization": f"Bearer {mint(DEMO_SETTINGS, mailbox)}"}


def register(flow: MailFlow, device_id: str, mailbox: str = DEMO_MAILBOX, **rules: Any) -> requests.Response:
    return requests.put(
        f"{flow.stack.api_url}/v1/devices/{device_id}",
        json={"mailbox": mailbox, "push_token": f"apns-{device_id}", "platform": "ios", "rules": rules},
        headers=_headers(mailbox),
        timeout=30,
    )


def _subscriptions_for(flow: MailFlow, mailbox: str = DEMO_MAILBOX) -> list[dict[str, Any]]:
    return [s for s in flow.simulator.subscriptions() if s["mailbox"] == mailbox]


def _alerts(flow: MailFlow, device_id: str) -> list[Any]:
    return [p for p in flow.sink.pushes(device_token=f"apns-{device_id}") if p.payload["kind"] != "badge"]


def test_a_registration_subscribes_the_mailbox_and_the_next_mail_reaches_the_phone_by_its_rules(
    flow: MailFlow,
) -> None:
    before = flow.simulator.last_request_seq

    answer = register(flow, "alice-iphone", content="count")
    made = flow.simulator.request_counts(since=before)["by_operation"]
    item_id = flow.deliver(subject="Hello, phone")
    flow.dispatch()

    assert answer.status_code == 201, answer.text
    assert answer.json()["subscription"]["status"] == "active"
    assert "push_token" not in answer.json()
    assert made == {"Subscribe": 1}
    (subscription,) = _subscriptions_for(flow)
    assert subscription["url"].startswith(f"{flow.stack.api_url}/ews/notifications/")
    (alert,) = _alerts(flow, "alice-iphone")
    assert alert.payload["kind"] == "count"  # the device's own rule
    assert flow.decision_for("alice-iphone", item_id)["outcome"] == "pushed"


def test_a_second_device_shares_the_subscription_and_a_rule_change_applies_to_the_next_mail(
    flow: MailFlow,
) -> None:
    assert register(flow, "alice-iphone").status_code == 201
    assert register(flow, "alice-ipad").status_code == 201
    assert len(_subscriptions_for(flow)) == 1
    first = flow.deliver(subject="Before the change")
    flow.dispatch()

    changed = register(
        flow,
        "alice-ipad",
        time_zone="UTC",
        work_hours_only=True,
        work_days=EVERY_DAY,
        **hours_excluding_now(),
    )
    second = flow.deliver(subject="After the change")
    flow.dispatch()

    assert changed.status_code == 200
    assert len(_subscriptions_for(flow)) == 1
    assert [a.payload["aps"]["alert"]["subtitle"] for a in _alerts(flow, "alice-iphone")] == [
        "Before the change",
        "After the change",
    ]
    assert [a.payload["aps"]["alert"]["subtitle"] for a in _alerts(flow, "alice-ipad")] == [
        "Before the change"
    ]
    assert flow.decision_for("alice-ipad", first)["outcome"] == "pushed"
    assert flow.decision_for("alice-ipad", second)["reason"] == "outside_work_hours"


def test_the_same_registration_twice_changes_nothing(flow: MailFlow) -> None:
    first = register(flow, "alice-iphone", content="summary")
    before = flow.simulator.last_request_seq

    second = register(flow, "alice-iphone", content="summary")

    assert (first.status_code, second.status_code) == (201, 200)
    assert second.json()["updated_at"] == first.json()["updated_at"]
    assert flow.simulator.request_counts(since=before)["total"] == 0


def test_unregistering_the_last_device_makes_the_webhook_answer_unsubscribe_and_exchange_end_it(
    flow: MailFlow,
) -> None:
    assert register(flow, "alice-iphone").status_code == 201
    assert register(flow, "alice-ipad").status_code == 201
    url = f"{flow.stack.api_url}/v1/devices"

    one_left = requests.delete(f"{url}/alice-ipad", headers=_headers(), timeout=30)
    still = _subscriptions_for(flow)
    none_left = requests.delete(f"{url}/alice-iphone", headers=_headers(), timeout=30)
    flow.deliver(subject="Nobody listens")
    attempts = flow.simulator.run_due_work()

    assert (one_left.status_code, none_left.status_code) == (204, 204)
    assert len(still) == 1
    assert [(a.http_status, a.outcome) for a in attempts] == [(200, "unsubscribe")]
    assert _subscriptions_for(flow) == []
    gone = requests.get(f"{url}/alice-iphone", headers=_headers(), timeout=30)
    assert gone.status_code == 404
    assert gone.headers["Content-Type"].startswith("application/problem+json")


def test_another_mailboxs_token_can_neither_read_nor_change_nor_delete_a_device(flow: MailFlow) -> None:
    assert register(flow, "alice-iphone").status_code == 201
    url = f"{flow.stack.api_url}/v1/devices/alice-iphone"
    bob = _headers("bob@contoso.example")

    answers = [
        requests.get(url, headers=bob, timeout=30),
        requests.delete(url, headers=bob, timeout=30),
        requests.put(
            url,
            json={"mailbox": "bob@contoso.example", "push_token": "apns-bob", "rules": {}},
            headers=bob,
            timeout=30,
        ),
    ]

    assert [answer.status_code for answer in answers] == [403, 403, 403]
    assert requests.get(url, headers=_headers(), timeout=30).status_code == 200


def test_the_decisions_of_a_device_answer_why_it_did_not_buzz(flow: MailFlow) -> None:
    register(
        flow,
        "alice-iphone",
        time_zone="UTC",
        work_hours_only=True,
        work_days=EVERY_DAY,
        **hours_excluding_now(),
    )
    item_id = flow.deliver(subject="Late mail")
    flow.dispatch()

    answer = requests.get(
        f"{flow.stack.api_url}/v1/devices/alice-iphone/decisions?limit=5", headers=_headers(), timeout=30
    )

    assert answer.status_code == 200, answer.text
    (decision,) = [d for d in answer.json() if d["item_id"] == item_id]
    # No alert; the badge still moved (badge updates are on by default), hence badge_only with its reason.
    assert (decision["outcome"], decision["reason"], decision["rule"]) == (
        "badge_only",
        "outside_work_hours",
        "outside_work_hours",
    )

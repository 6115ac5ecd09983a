"""Nothing lost: the watchdog renews subscriptions that Exchange dropped or can no longer resume, and the
mail of the gap reaches the phone exactly once.

Everything real, as in test_device_registration.py: the devices API subscribes the mailbox, the simulator
pushes into the webhook, SQS and the consumer push to the sink. The watchdog runs as the template's
Schedule event (`stack.run_schedules_once()`); instead of waiting for a subscription to become due,
the test moves the watchdog function's clock forward.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests

from ens.adapters.mailbox_store import DynamoMailboxStore
from ens.adapters.subscription_store import DynamoSubscriptionStore
from ens.core.subscriptions import SubscriptionState
from ens_local.config import DEFAULT_CONFIG, load_settings
from ens_local.tokens import mint
from push_sink import PushSink
from support.consumer_flow import DEMO_MAILBOX, MailFlow, consumer_environment, consumer_secrets

pytestmark = pytest.mark.e2e
DEMO_SETTINGS = load_settings(DEFAULT_CONFIG)
DEVICE = "alice-iphone"
# Past every heartbeat deadline (2 x StatusFrequency 15 + grace 5 minutes) of a subscription made now.
LATER = timedelta(minutes=40)


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


@pytest.fixture
def watchdog_clock(flow: MailFlow) -> Iterator[Callable[[timedelta], None]]:
    """Moves the watchdog function's "now" ahead of the wall clock."""
    module = flow.stack.functions["WatchdogFunction"].module
    original = module.clock

    def ahead(by: timedelta) -> None:
        module.clock = lambda: datetime.now(UTC) + by

    yield ahead
    module.clock = original


def _register(flow: MailFlow) -> dict[str, Any]:
    answer = requests.put(
        f"{flow.stack.api_url}/v1/devices/{DEVICE}",
        json={"mailbox": DEMO_MAILBOX, "push_token": f"apns-{DEVICE}", "platform": "ios", "rules": {}},
        headers={"Authorization": f"Bearer {mint(DEMO_SETTINGS, DEMO_MAILBOX)}"},
        timeout=30,
    )
    assert answer.status_code == 201, answer.text
    result: dict[str, Any] = answer.json()
    return result


def _device(flow: MailFlow) -> dict[str, Any]:
    answer = requests.get(
        f"{flow.stack.api_url}/v1/devices/{DEVICE}",
        headers={"Authorization": f"Bearer {mint(DEMO_SETTINGS, DEMO_MAILBOX)}"},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result


def _pushed_subjects(flow: MailFlow) -> list[str]:
    return [
        push.payload["aps"]["alert"]["subtitle"]
        for push in flow.sink.pushes(device_token=f"apns-{DEVICE}")
        if push.payload["kind"] != "badge"
    ]


def _mailbox_token(flow: MailFlow) -> str:
    record = DynamoMailboxStore(flow.stack.table_names["MailboxesTable"], flow.stack.client("dynamodb")).get(
        DEMO_MAILBOX
    )
    assert record is not None
    return record.token


def _subscriptions(flow: MailFlow) -> DynamoSubscriptionStore:
    return DynamoSubscriptionStore(
        flow.stack.table_names["SubscriptionsTable"], flow.stack.client("dynamodb")
    )


def _live_subscription_ids(flow: MailFlow) -> list[str]:
    return [s["subscription_id"] for s in flow.simulator.subscriptions() if s["mailbox"] == DEMO_MAILBOX]


def test_a_silently_dropped_subscription_is_renewed_in_one_run_and_the_gap_mail_pushed_once(
    flow: MailFlow, watchdog_clock: Callable[[timedelta], None]
) -> None:
    _register(flow)
    old_token = _mailbox_token(flow)
    (dropped,) = _live_subscription_ids(flow)
    assert flow.simulator.push.drop_silently(dropped)
    flow.deliver(subject="Sent while nobody listened")
    flow.dispatch()  # Exchange has no subscription: nothing reaches ENS
    assert _pushed_subjects(flow) == []

    not_yet = flow.stack.run_schedules_once()
    watchdog_clock(LATER)
    (run,) = flow.stack.run_schedules_once()
    flow.dispatch()  # the new subscription replays from the last watermark
    flow.dispatch()

    assert not_yet == [{"due": 0, "resubscribed": 0, "replayed": 0, "reconciled_mails": 0, "failed": 0}]
    assert (run["due"], run["resubscribed"], run["replayed"]) == (1, 1, 1)
    assert _pushed_subjects(flow) == ["Sent while nobody listened"]
    (renewed,) = _live_subscription_ids(flow)
    assert renewed != dropped
    new_token = _mailbox_token(flow)
    assert new_token != old_token
    old = _subscriptions(flow).get(old_token)
    assert old is not None
    assert old.state is SubscriptionState.RETIRED
    assert old.due_shard is None  # out of the watchdog's index
    assert _device(flow)["subscription"]["status"] == "active"


def test_an_expired_watermark_gives_a_fresh_subscription_and_the_reconciled_mail_is_pushed_once(
    flow: MailFlow, watchdog_clock: Callable[[timedelta], None]
) -> None:
    _register(flow)
    flow.deliver(subject="Seen by ENS")
    flow.dispatch()
    (dropped,) = _live_subscription_ids(flow)
    assert flow.simulator.push.drop_silently(dropped)
    flow.deliver(subject="Lost with the subscription")
    flow.simulator.expire_watermarks(DEMO_MAILBOX)
    before = flow.simulator.last_request_seq

    watchdog_clock(LATER)
    (run,) = flow.stack.run_schedules_once()
    flow.poll()  # the reconciled mails, queued by the watchdog
    flow.dispatch()
    calls = flow.simulator.request_counts(since=before)["by_operation"]

    assert (run["due"], run["resubscribed"], run["replayed"]) == (1, 1, 0)
    assert run["reconciled_mails"] >= 2  # both mails of the window; the first was pushed already
    assert calls["Subscribe"] == 2  # from the watermark (refused), then fresh
    assert calls["FindItem"] == 1
    assert _pushed_subjects(flow) == ["Seen by ENS", "Lost with the subscription"]
    assert len(_live_subscription_ids(flow)) == 1


def test_error_read_events_failed_from_exchange_leads_to_a_resubscribe_in_the_next_run(
    flow: MailFlow, watchdog_clock: Callable[[timedelta], None]
) -> None:
    _register(flow)
    token = _mailbox_token(flow)
    subscription = _subscriptions(flow).get(token)
    assert subscription is not None
    body = (
        '<?xml version="1.0" encoding="utf-8"?>'
        '<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"'
        ' xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages"><s:Body>'
        '<m:SendNotification><m:ResponseMessages><m:SendNotificationResponseMessage ResponseClass="Error">'
        "<m:MessageText>Unable to read events.</m:MessageText>"
        "<m:ResponseCode>ErrorReadEventsFailed</m:ResponseCode>"
        "</m:SendNotificationResponseMessage></m:ResponseMessages></m:SendNotification>"
        "</s:Body></s:Envelope>"
    )

    answer = requests.post(
        f"{flow.stack.api_url}/ews/notifications/{token}",
        data=body.encode(),
        headers={"Content-Type": "text/xml; charset=utf-8"},
        timeout=30,
    )
    (run,) = flow.stack.run_schedules_once()  # due at once: no clock moved

    assert answer.status_code == 200, answer.text
    assert (run["due"], run["resubscribed"]) == (1, 1)
    assert _mailbox_token(flow) != token
    flow.deliver(subject="After the renewal")
    flow.dispatch()
    assert _pushed_subjects(flow) == ["After the renewal"]


def _impersonation(flow: MailFlow, allowed: bool) -> None:
    account = flow.simulator.accounts.find("svc-ens@contoso.example")
    assert account is not None
    with flow.simulator.lock:
        account.can_impersonate = allowed


def test_a_mailbox_whose_impersonation_is_revoked_ends_failed_after_its_back_off_and_recovers_once_granted(
    flow: MailFlow, watchdog_clock: Callable[[timedelta], None]
) -> None:
    _register(flow)
    (dropped,) = _live_subscription_ids(flow)
    assert flow.simulator.push.drop_silently(dropped)
    _impersonation(flow, allowed=False)

    runs: list[dict[str, Any]] = []
    ahead = LATER
    for _ in range(5):  # the default WATCHDOG_GIVE_UP_AFTER; each run after the previous back-off
        watchdog_clock(ahead)
        runs.extend(flow.stack.run_schedules_once())
        ahead += timedelta(minutes=61)  # past the longest back-off before giving up (60 minutes)
    failed = _device(flow)["subscription"]
    _impersonation(flow, allowed=True)
    watchdog_clock(ahead + timedelta(hours=6))  # the slow retry of failed mailboxes
    (recovery,) = flow.stack.run_schedules_once()
    flow.deliver(subject="Back again")
    flow.dispatch()

    assert [run["failed"] for run in runs] == [1, 1, 1, 1, 1]
    assert failed == {
        "status": "failed",
        "reason": "impersonation_denied",
        "last_heartbeat_at": None,
        "last_callback_at": None,
    }
    assert recovery["resubscribed"] == 1
    assert _device(flow)["subscription"]["status"] == "active"
    assert _pushed_subjects(flow) == ["Back again"]

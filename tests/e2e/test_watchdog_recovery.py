"""Nothing lost: the watchdog renews subscriptions that Exchange dropped or can no longer resume, and the
mail of the gap reaches the phone exactly once.

Everything real, as in test_device_registration.py: the devices API subscribes the mailbox, the simulator
pushes into the webhook, SQS and the consumer push to the sink. The watchdog runs as the template's
Schedule event (`stack.run_schedules_once()`); instead of waiting for a subscription to become due,
the test moves the watchdog function's clock forward.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
import requests

from ens.core.subscriptions import SubscriptionState
from push_sink import PushSink
from support.consumer_flow import DEMO_MAILBOX, MailFlow
from support.watchdog_flow import (
    LATER,
    device,
    live_subscription_ids,
    mailbox_token,
    pushed_subjects,
    register,
    subscriptions,
    watchdog_flow,
)
from support.watchdog_flow import watchdog_clock as moved_clock

pytestmark = pytest.mark.e2e


@pytest.fixture
def flow(local_stack_factory: Callable[..., Any], push_sink: PushSink) -> MailFlow:
    return watchdog_flow(local_stack_factory, push_sink)


@pytest.fixture
def watchdog_clock(flow: MailFlow) -> Iterator[Callable[[timedelta], None]]:
    """Moves the watchdog function's "now" ahead of the wall clock."""
    with moved_clock(flow) as ahead:
        yield ahead


def test_a_silently_dropped_subscription_is_renewed_in_one_run_and_the_gap_mail_pushed_once(
    flow: MailFlow, watchdog_clock: Callable[[timedelta], None]
) -> None:
    register(flow)
    old_token = mailbox_token(flow)
    (dropped,) = live_subscription_ids(flow)
    assert flow.simulator.push.drop_silently(dropped)
    flow.deliver(subject="Sent while nobody listened")
    flow.dispatch()  # Exchange has no subscription: nothing reaches ENS
    assert pushed_subjects(flow) == []

    not_yet = flow.stack.run_schedules_once()
    watchdog_clock(LATER)
    (run,) = flow.stack.run_schedules_once()
    flow.dispatch()  # the new subscription replays from the last watermark
    flow.dispatch()

    assert not_yet == [{"due": 0, "resubscribed": 0, "replayed": 0, "reconciled_mails": 0, "failed": 0}]
    assert (run["due"], run["resubscribed"], run["replayed"]) == (1, 1, 1)
    assert pushed_subjects(flow) == ["Sent while nobody listened"]
    (renewed,) = live_subscription_ids(flow)
    assert renewed != dropped
    new_token = mailbox_token(flow)
    assert new_token != old_token
    old = subscriptions(flow).get(old_token)
    assert old is not None
    assert old.state is SubscriptionState.RETIRED
    assert old.due_shard is None  # out of the watchdog's index
    assert device(flow)["subscription"]["status"] == "active"


def test_an_expired_watermark_gives_a_fresh_subscription_and_the_reconciled_mail_is_pushed_once(
    flow: MailFlow, watchdog_clock: Callable[[timedelta], None]
) -> None:
    register(flow)
    flow.deliver(subject="Seen by ENS")
    flow.dispatch()
    (dropped,) = live_subscription_ids(flow)
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
    assert pushed_subjects(flow) == ["Seen by ENS", "Lost with the subscription"]
    assert len(live_subscription_ids(flow)) == 1


def test_error_read_events_failed_from_exchange_leads_to_a_resubscribe_in_the_next_run(
    flow: MailFlow, watchdog_clock: Callable[[timedelta], None]
) -> None:
    register(flow)
    token = mailbox_token(flow)
    subscription = subscriptions(flow).get(token)
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
    assert mailbox_token(flow) != token
    flow.deliver(subject="After the renewal")
    flow.dispatch()
    assert pushed_subjects(flow) == ["After the renewal"]


def _impersonation(flow: MailFlow, allowed: bool) -> None:
    account = flow.simulator.accounts.find("svc-ens@contoso.example")
    assert account is not None
    with flow.simulator.lock:
        account.can_impersonate = allowed


def test_a_mailbox_whose_impersonation_is_revoked_ends_failed_after_its_back_off_and_recovers_once_granted(
    flow: MailFlow, watchdog_clock: Callable[[timedelta], None]
) -> None:
    register(flow)
    (dropped,) = live_subscription_ids(flow)
    assert flow.simulator.push.drop_silently(dropped)
    _impersonation(flow, allowed=False)

    runs: list[dict[str, Any]] = []
    ahead = LATER
    for _ in range(5):  # the default WATCHDOG_GIVE_UP_AFTER; each run after the previous back-off
        watchdog_clock(ahead)
        runs.extend(flow.stack.run_schedules_once())
        ahead += timedelta(minutes=61)  # past the longest back-off before giving up (60 minutes)
    failed = device(flow)["subscription"]
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
    assert device(flow)["subscription"]["status"] == "active"
    assert pushed_subjects(flow) == ["Back again"]

"""Nothing lost, the two gaps test_watchdog_recovery.py leaves: the webhook down until Exchange gives
the subscription up, and mail older than the stale limit found by a reconcile.

The same whole stack (devices API, simulator with manual dispatch, webhook, SQS, consumer, push sink;
the watchdog as the template's Schedule event with its clock moved forward). The webhook goes down
through the local API front's outage hook (`stack.front.fail_requests`, tooling only): Exchange's
callbacks get 503, as when API Gateway or the webhook fails, and nothing in ENS is told.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from push_sink import PushSink
from support.consumer_flow import DEMO_MAILBOX, MailFlow
from support.watchdog_flow import (
    DEVICE,
    LATER,
    live_subscription_ids,
    pushed_subjects,
    register,
    watchdog_clock,
    watchdog_flow,
)

pytestmark = pytest.mark.e2e
STATUS_FREQUENCY = timedelta(minutes=15)  # what the devices API subscribes with
STALE_MINUTES = 3


@pytest.fixture
def outage_flow(local_stack_factory: Callable[..., Any], push_sink: PushSink) -> MailFlow:
    """Exchange on a manual clock, set to the wall clock's time, so its retries and its giving up run
    in protocol minutes while the mails stay as fresh as the consumer's clock sees them."""
    flow = watchdog_flow(local_stack_factory, push_sink, simulator={"clock": "manual"})
    clock = flow.simulator.clock
    clock.advance(seconds=(datetime.now(UTC) - clock.now()).total_seconds())
    return flow


def test_mails_of_a_webhook_outage_that_made_exchange_give_up_are_pushed_once_after_recovery(
    outage_flow: MailFlow,
) -> None:
    flow, simulator, front = outage_flow, outage_flow.simulator, outage_flow.stack.front
    assert front is not None
    register(flow)
    flow.deliver(subject="Before the outage")
    flow.dispatch()
    (subscription,) = live_subscription_ids(flow)

    front.fail_requests("/ews/notifications/")
    flow.deliver(subject="During the outage")
    flow.deliver(subject="Still during the outage")
    attempts = []
    for _ in range(2 * int(STATUS_FREQUENCY.total_seconds() / 30)):  # bounded: 30 s steps, twice enough
        attempts += simulator.run_due_work()
        if subscription not in live_subscription_ids(flow):
            break
        simulator.clock.advance(seconds=30)
    front.restore()
    nothing_queued = flow.poll()
    with watchdog_clock(flow) as ahead:
        ahead(LATER)
        (run,) = flow.stack.run_schedules_once()
    flow.dispatch()  # the new subscription replays from the last watermark ENS saw
    flow.dispatch()

    failed = [a for a in attempts if a.outcome == "failed"]
    (dropped,) = [a for a in attempts if a.outcome == "dropped"]
    assert len(failed) >= 4  # at 0, 30, 90, 210, 450 s, ...
    assert {a.http_status for a in failed} == {503}
    assert dropped.at - failed[0].at >= STATUS_FREQUENCY
    assert dropped.error == "no successful callback within StatusFrequency"
    assert all(outcome.empty for outcome in nothing_queued)
    assert (run["due"], run["resubscribed"], run["replayed"]) == (1, 1, 1)
    assert pushed_subjects(flow) == ["Before the outage", "During the outage", "Still during the outage"]
    assert len(live_subscription_ids(flow)) == 1


@pytest.fixture
def stale_flow(local_stack_factory: Callable[..., Any], push_sink: PushSink) -> MailFlow:
    """A stale limit of a few minutes, so a mail received within the reconcile's margin is past it."""
    return watchdog_flow(
        local_stack_factory, push_sink, environment={"STALE_EVENT_MINUTES": str(STALE_MINUTES)}
    )


def test_a_reconciled_mail_older_than_the_stale_limit_is_recorded_stale_and_not_pushed(
    stale_flow: MailFlow,
) -> None:
    flow = stale_flow
    register(flow)
    flow.deliver(subject="Seen by ENS")
    flow.dispatch()
    (dropped,) = live_subscription_ids(flow)
    assert flow.simulator.push.drop_silently(dropped)
    # Within the reconcile's 10-minute margin before the last event ENS saw, past the stale limit.
    old = flow.deliver(
        subject="Received long ago", received=datetime.now(UTC) - timedelta(minutes=STALE_MINUTES + 5)
    )
    fresh = flow.deliver(subject="Lost with the subscription")
    flow.simulator.expire_watermarks(DEMO_MAILBOX)

    with watchdog_clock(flow) as ahead:
        ahead(LATER)
        (run,) = flow.stack.run_schedules_once()
    flow.poll()  # the reconciled mails, queued by the watchdog
    flow.dispatch()

    assert (run["resubscribed"], run["replayed"]) == (1, 0)  # fresh: a reconcile, not a replay
    assert run["reconciled_mails"] >= 3
    assert pushed_subjects(flow) == ["Seen by ENS", "Lost with the subscription"]
    stale = flow.decision_for(DEVICE, old)
    assert (stale["outcome"], stale["reason"], stale["rule"]) == ("suppressed", "stale", "stale")
    assert flow.decision_for(DEVICE, fresh)["outcome"] == "pushed"

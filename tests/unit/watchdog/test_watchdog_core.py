"""The watchdog's pure decisions: what is due, which action, the back-off schedule, the reconcile window."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ens.core.subscriptions import CallbackProgress, Subscription, SubscriptionState
from ens.core.watchdog import (
    Action,
    Cause,
    WatchdogPolicy,
    due_after_callback,
    iso,
    plan,
    reconcile_since,
    retry_delay,
)

NOW = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)
POLICY = WatchdogPolicy()


def _record(**fields: object) -> Subscription:
    values: dict[str, object] = {
        "token": "t" * 43,
        "mailbox": "alice@contoso.example",
        "state": SubscriptionState.ACTIVE,
        "subscription_id": "sub-1",
        "last_watermark": "wm-7",
        "due_at": iso(NOW - timedelta(seconds=1)),
        "status_frequency_minutes": 15,
        **fields,
    }
    return Subscription(**values)  # type: ignore[arg-type]


def _progress(**fields: object) -> CallbackProgress:
    values: dict[str, object] = {
        "last_watermark": "wm-8",
        "previous_watermark": "wm-7",
        "heartbeat": False,
        "gap_from_watermark": None,
        "error_code": None,
        "replay": False,
        **fields,
    }
    return CallbackProgress(**values)  # type: ignore[arg-type]


def test_a_clean_callback_moves_due_at_to_two_status_frequencies_plus_grace_when_accepted() -> None:
    assert due_after_callback(_record(), _progress(), iso(NOW), POLICY.grace) == iso(
        NOW + timedelta(minutes=35)
    )


@pytest.mark.parametrize(
    ("record", "progress"),
    [
        ({}, {"gap_from_watermark": "wm-7"}),
        ({}, {"error_code": "ErrorReadEventsFailed"}),
        ({"gap_from_watermark": "wm-3"}, {}),  # a gap recorded earlier and not yet acted on
    ],
)
def test_due_at_is_now_when_a_callback_reports_a_gap_or_an_exchange_error(
    record: dict[str, object], progress: dict[str, object]
) -> None:
    assert due_after_callback(_record(**record), _progress(**progress), iso(NOW), POLICY.grace) == iso(NOW)


def test_a_record_not_yet_due_is_left_alone_when_a_callback_moved_it_on() -> None:
    assert plan(_record(due_at=iso(NOW + timedelta(minutes=1))), "t" * 43, NOW).action is Action.NOT_DUE


@pytest.mark.parametrize("mailbox_token", [None, "u" * 43])
def test_a_record_the_mailbox_no_longer_names_is_retired_when_due(mailbox_token: str | None) -> None:
    assert plan(_record(), mailbox_token, NOW).action is Action.RETIRE


@pytest.mark.parametrize(
    ("fields", "cause", "watermark"),
    [
        ({}, Cause.SILENT, "wm-7"),
        ({"gap_from_watermark": "wm-3"}, Cause.GAP, "wm-3"),
        ({"last_error_code": "ErrorReadEventsFailed"}, Cause.EXCHANGE_ERROR, "wm-7"),
        ({"watchdog_failures": 2}, Cause.RETRY, "wm-7"),
        (
            {"state": SubscriptionState.PENDING, "subscription_id": None, "last_watermark": None},
            Cause.PENDING,
            None,
        ),
    ],
)
def test_a_due_record_is_resubscribed_from_the_first_watermark_lost_when_it_is_the_mailboxs(
    fields: dict[str, object], cause: Cause, watermark: str | None
) -> None:
    decided = plan(_record(**fields), "t" * 43, NOW)

    assert (decided.action, decided.cause, decided.watermark) == (Action.RESUBSCRIBE, cause, watermark)


def test_the_back_off_doubles_up_to_its_cap_then_slows_to_the_failed_rate_when_attempts_keep_failing() -> (
    None
):
    delays = [retry_delay(failures, POLICY) for failures in range(1, 8)]

    assert delays == [
        timedelta(minutes=5),
        timedelta(minutes=10),
        timedelta(minutes=20),
        timedelta(minutes=40),
        timedelta(hours=6),  # the fifth failure marks the mailbox failed
        timedelta(hours=6),
        timedelta(hours=6),
    ]


def test_reconcile_looks_back_from_the_last_event_seen_minus_the_margin_when_the_watermark_is_invalid() -> (
    None
):
    record = _record(last_event_at="2026-12-02T09:00:00Z", last_seen_at="2026-12-02T09:30:00.000Z")

    assert reconcile_since(record, POLICY) == datetime(2026, 12, 2, 8, 50, tzinfo=UTC)
    assert reconcile_since(_record(created_at="2026-12-02T08:00:00.000Z"), POLICY) == datetime(
        2026, 12, 2, 7, 50, tzinfo=UTC
    )
    assert reconcile_since(_record(), POLICY) is None

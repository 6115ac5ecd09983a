import pytest

from ens.core.notifications import parse_send_notification
from ens.core.subscriptions import (
    Subscription,
    SubscriptionState,
    Verdict,
    is_well_formed_token,
    judge,
    new_callback_token,
    progress,
)
from support.send_notifications import Body, ErrorSpec, NotificationSpec, new_mail, send_notification, status

pytestmark = pytest.mark.unit


def subscription(**changes: object) -> Subscription:
    values: dict[str, object] = {
        "token": new_callback_token(),
        "mailbox": "ada@contoso.com",
        "state": SubscriptionState.ACTIVE,
        "subscription_id": "sub-1",
        "last_watermark": "wm-0",
    }
    values.update(changes)
    return Subscription(**values)  # type: ignore[arg-type]


def callback(*parts: NotificationSpec | ErrorSpec):
    return parse_send_notification(send_notification(Body(list(parts))))


def test_new_tokens_are_unguessable_and_well_formed() -> None:
    tokens = {new_callback_token() for _ in range(100)}

    assert len(tokens) == 100
    assert all(is_well_formed_token(token) and len(token) >= 43 for token in tokens)


@pytest.mark.parametrize("token", [None, "", "short", "../../etc/passwd" * 3, "a" * 129, "has space" * 5])
def test_malformed_tokens_are_not_looked_up(token: str | None) -> None:
    assert not is_well_formed_token(token)


def test_active_subscription_with_its_own_id_is_accepted() -> None:
    assert (
        judge(subscription(), callback(NotificationSpec("sub-1", "wm-0", [status("wm-1")]))) is Verdict.ACCEPT
    )


def test_retired_subscription_is_told_to_unsubscribe() -> None:
    verdict = judge(
        subscription(state=SubscriptionState.RETIRED),
        callback(NotificationSpec("sub-1", "wm-0", [status("wm-1")])),
    )

    assert verdict is Verdict.RETIRED


def test_subscription_id_of_another_subscription_is_told_to_unsubscribe() -> None:
    verdict = judge(subscription(), callback(NotificationSpec("sub-other", "wm-0", [status("wm-1")])))

    assert verdict is Verdict.FOREIGN_SUBSCRIPTION


def test_one_foreign_notification_among_own_ones_is_foreign() -> None:
    verdict = judge(
        subscription(),
        callback(
            NotificationSpec("sub-1", "wm-0", [status("wm-1")]), NotificationSpec("x", "wm-1", [status("w")])
        ),
    )

    assert verdict is Verdict.FOREIGN_SUBSCRIPTION


def test_pending_subscription_asks_for_a_retry() -> None:
    pending = subscription(state=SubscriptionState.PENDING, subscription_id=None)

    assert judge(pending, callback(NotificationSpec("sub-1", "", [status("wm-1")]))) is Verdict.NOT_YET_ACTIVE


def test_watermark_advances_to_the_last_event_and_status_is_a_heartbeat() -> None:
    result = progress(
        subscription(), callback(NotificationSpec("sub-1", "wm-0", [new_mail("wm-1", "a"), status("wm-2")]))
    )

    assert (result.last_watermark, result.heartbeat, result.gap_from_watermark) == ("wm-2", True, None)


def test_previous_watermark_other_than_ours_marks_a_gap_from_our_last_watermark() -> None:
    result = progress(
        subscription(last_watermark="wm-5"), callback(NotificationSpec("sub-1", "wm-9", [status("wm-10")]))
    )

    assert result.gap_from_watermark == "wm-5"
    assert result.last_watermark == "wm-10"


def test_batched_notifications_chain_without_a_gap() -> None:
    result = progress(
        subscription(),
        callback(
            NotificationSpec("sub-1", "wm-0", [new_mail("wm-1", "a")], more_events=True),
            NotificationSpec("sub-1", "wm-1", [new_mail("wm-2", "b")]),
        ),
    )

    assert (result.gap_from_watermark, result.last_watermark, result.heartbeat) == (None, "wm-2", False)


def test_error_message_is_recorded_and_keeps_the_watermark() -> None:
    result = progress(subscription(), callback(ErrorSpec("ErrorReadEventsFailed")))

    assert (result.error_code, result.last_watermark, result.replay) == (
        "ErrorReadEventsFailed",
        "wm-0",
        False,
    )


def test_a_resent_callback_is_a_replay_not_a_gap() -> None:
    # Accepted before: PreviousWatermark wm-0, events up to wm-2. Exchange resends it unchanged.
    after_first = subscription(last_watermark="wm-2", last_previous_watermark="wm-0")

    result = progress(
        after_first,
        callback(NotificationSpec("sub-1", "wm-0", [new_mail("wm-1", "a"), new_mail("wm-2", "b")])),
    )

    assert (result.replay, result.gap_from_watermark, result.last_watermark) == (True, None, "wm-2")


def test_a_heartbeat_that_does_not_advance_the_watermark_is_neither_replay_nor_gap() -> None:
    steady = subscription(last_watermark="wm-5", last_previous_watermark="wm-5")

    result = progress(steady, callback(NotificationSpec("sub-1", "wm-5", [status("wm-5")])))

    assert (result.replay, result.gap_from_watermark, result.heartbeat) == (False, None, True)


def test_a_resend_rebuilt_with_newer_events_is_a_replay_that_queues_only_the_new_ones() -> None:
    # Accepted before: PreviousWatermark wm-0, events up to wm-2; our OK was lost and mail arrived.
    after_first = subscription(last_watermark="wm-2", last_previous_watermark="wm-0")

    result = progress(
        after_first,
        callback(
            NotificationSpec(
                "sub-1", "wm-0", [new_mail("wm-1", "a"), new_mail("wm-2", "b"), new_mail("wm-3", "c")]
            )
        ),
    )

    assert (result.replay, result.gap_from_watermark, result.last_watermark, result.queued_through) == (
        True,
        None,
        "wm-3",
        "wm-2",
    )
    assert result.previous_watermark == "wm-0"


def test_a_resend_of_a_heartbeat_rebuilt_with_mail_is_a_replay_that_queues_all_of_it() -> None:
    # A heartbeat (PreviousWatermark wm-0, StatusEvent wm-5) was accepted; our OK was lost and mail arrived.
    after_heartbeat = subscription(last_watermark="wm-5", last_previous_watermark="wm-0")

    result = progress(after_heartbeat, callback(NotificationSpec("sub-1", "wm-0", [new_mail("wm-6", "z")])))

    assert (result.replay, result.gap_from_watermark, result.last_watermark, result.queued_through) == (
        True,
        None,
        "wm-6",
        None,
    )


def test_a_chain_break_inside_a_resend_is_still_a_gap() -> None:
    after_first = subscription(last_watermark="wm-2", last_previous_watermark="wm-0")

    result = progress(
        after_first,
        callback(
            NotificationSpec(
                "sub-1", "wm-0", [new_mail("wm-1", "a"), new_mail("wm-2", "b")], more_events=True
            ),
            NotificationSpec("sub-1", "wm-7", [new_mail("wm-8", "h")]),
        ),
    )

    assert (result.replay, result.gap_from_watermark) == (True, "wm-2")


def test_an_error_from_exchange_opens_a_gap_at_our_last_watermark() -> None:
    result = progress(subscription(last_watermark="wm-7"), callback(ErrorSpec("ErrorReadEventsFailed")))

    assert (result.gap_from_watermark, result.error_code) == ("wm-7", "ErrorReadEventsFailed")


def test_an_error_message_carrying_a_notification_opens_a_gap_and_records_its_code() -> None:
    result = progress(
        subscription(last_watermark="wm-7"),
        callback(ErrorSpec("ErrorReadEventsFailed", subscription_id="sub-1", previous_watermark="wm-7")),
    )

    assert (result.gap_from_watermark, result.error_code, result.heartbeat) == (
        "wm-7",
        "ErrorReadEventsFailed",
        False,
    )


def test_an_error_message_naming_another_subscription_is_foreign() -> None:
    verdict = judge(subscription(), callback(ErrorSpec("ErrorReadEventsFailed", subscription_id="sub-other")))

    assert verdict is Verdict.FOREIGN_SUBSCRIPTION

"""The webhook Lambda against local AWS (moto over HTTP): what Exchange's callbacks lead to."""

from __future__ import annotations

import pytest

from ens.core.subscriptions import SubscriptionState, new_callback_token
from support.ews_schema import assert_valid_ews
from support.send_notifications import (
    Body,
    ErrorSpec,
    Event,
    NotificationSpec,
    new_mail,
    new_mail_body,
    send_notification,
    status,
)

pytestmark = pytest.mark.integration


def subscription_status(answer) -> str:
    (result,) = assert_valid_ews(answer.body)
    return result[0].text


def test_new_mail_is_queued_and_answered_ok(webhook) -> None:
    subscription = webhook.subscribe()

    answer = webhook.post(subscription.token, new_mail_body("sub-1", "wm-0", count=3))

    assert answer.status == 200
    assert answer.headers["Content-Type"] == "text/xml; charset=utf-8"
    assert subscription_status(answer) == "OK"
    queued = webhook.queued()
    assert sorted(message["item_id"] for message in queued) == ["item-1", "item-2", "item-3"]
    assert {(m["kind"], m["mailbox"], m["subscription_id"]) for m in queued} == {
        ("NewMail", "ada@contoso.com", "sub-1")
    }
    assert {m["watermark"] for m in queued} == {"wm-1", "wm-2", "wm-3"}


def test_more_than_one_sqs_batch_of_events_is_queued_whole(webhook) -> None:
    subscription = webhook.subscribe()

    answer = webhook.post(subscription.token, new_mail_body("sub-1", "wm-0", count=23))

    assert subscription_status(answer) == "OK"
    assert len(webhook.queued()) == 23


def test_status_event_refreshes_heartbeat_and_watermark_without_queueing(webhook) -> None:
    subscription = webhook.subscribe()

    answer = webhook.post(
        subscription.token, send_notification(Body([NotificationSpec("sub-1", "wm-0", [status("wm-1")])]))
    )

    assert subscription_status(answer) == "OK"
    assert webhook.queued() == []
    stored = webhook.store.get(subscription.token)
    assert stored.last_watermark == "wm-1"
    assert stored.last_heartbeat_at is not None
    assert stored.last_seen_at == stored.last_heartbeat_at
    assert stored.gap_from_watermark is None


def test_unread_count_change_is_queued_and_other_events_are_not(webhook) -> None:
    subscription = webhook.subscribe()
    body = send_notification(
        Body(
            [
                NotificationSpec(
                    "sub-1",
                    "wm-0",
                    [
                        Event("Created", "wm-1", item_id="i"),
                        Event("Modified", "wm-2", folder_id="inbox", unread_count=2),
                        Event("Deleted", "wm-3", item_id="j"),
                        Event("Moved", "wm-4", item_id="k"),
                        Event("Copied", "wm-5", item_id="l"),
                        Event("FreeBusyChanged", "wm-6", item_id="m"),
                    ],
                )
            ]
        )
    )

    answer = webhook.post(subscription.token, body)

    assert subscription_status(answer) == "OK"
    assert [(m["kind"], m["unread_count"]) for m in webhook.queued()] == [("UnreadCountChanged", 2)]
    assert webhook.store.get(subscription.token).last_watermark == "wm-6"


def test_previous_watermark_that_skips_ahead_marks_a_gap(webhook) -> None:
    subscription = webhook.subscribe(last_watermark="wm-5")

    answer = webhook.post(subscription.token, new_mail_body("sub-1", "wm-8"))

    assert subscription_status(answer) == "OK"
    assert len(webhook.queued()) == 1
    stored = webhook.store.get(subscription.token)
    assert stored.gap_from_watermark == "wm-5"
    assert stored.last_watermark == "wm-1"


def test_a_later_gap_does_not_move_the_first_gap(webhook) -> None:
    subscription = webhook.subscribe(last_watermark="wm-5", gap_from_watermark="wm-2")

    webhook.post(subscription.token, new_mail_body("sub-1", "wm-8"))

    assert webhook.store.get(subscription.token).gap_from_watermark == "wm-2"


def test_error_notification_is_recorded_and_answered_ok(webhook) -> None:
    subscription = webhook.subscribe()

    answer = webhook.post(subscription.token, send_notification(Body([ErrorSpec("ErrorReadEventsFailed")])))

    assert subscription_status(answer) == "OK"
    assert webhook.queued() == []
    assert webhook.store.get(subscription.token).last_error_code == "ErrorReadEventsFailed"


def test_retired_subscription_is_told_to_unsubscribe_and_nothing_is_queued(webhook) -> None:
    subscription = webhook.subscribe(state=SubscriptionState.RETIRED)

    answer = webhook.post(subscription.token, new_mail_body("sub-1", "wm-0"))

    assert subscription_status(answer) == "Unsubscribe"
    assert webhook.queued() == []
    assert webhook.store.get(subscription.token).last_seen_at is None


def test_subscription_id_not_belonging_to_the_token_is_told_to_unsubscribe(webhook) -> None:
    subscription = webhook.subscribe(subscription_id="sub-1")

    answer = webhook.post(subscription.token, new_mail_body("sub-someone-else", "wm-0"))

    assert subscription_status(answer) == "Unsubscribe"
    assert webhook.queued() == []
    assert webhook.store.get(subscription.token) == subscription


def test_unknown_token_gets_404_and_nothing_else_happens(webhook) -> None:
    answer = webhook.post(new_callback_token(), new_mail_body("sub-1", "wm-0"))

    assert answer.status == 404
    assert webhook.queued() == []


def test_pending_subscription_asks_exchange_to_retry(webhook) -> None:
    subscription = webhook.subscribe(state=SubscriptionState.PENDING, subscription_id=None)

    answer = webhook.post(subscription.token, new_mail_body("sub-1", "wm-0"))

    assert answer.status == 503
    assert answer.headers["Retry-After"] == "30"
    assert webhook.queued() == []


def test_several_notifications_in_one_body_are_all_queued(webhook) -> None:
    subscription = webhook.subscribe()
    body = send_notification(
        Body(
            [
                NotificationSpec("sub-1", "wm-0", [new_mail("wm-1", "a")], more_events=True),
                NotificationSpec("sub-1", "wm-1", [new_mail("wm-2", "b"), status("wm-3")]),
            ]
        )
    )

    answer = webhook.post(subscription.token, body)

    assert subscription_status(answer) == "OK"
    assert sorted(m["item_id"] for m in webhook.queued()) == ["a", "b"]
    stored = webhook.store.get(subscription.token)
    assert (stored.last_watermark, stored.gap_from_watermark) == ("wm-3", None)


def test_a_callback_exchange_resends_is_acknowledged_without_queueing_twice(webhook) -> None:
    subscription = webhook.subscribe()
    body = new_mail_body("sub-1", "wm-0", count=2)
    assert subscription_status(webhook.post(subscription.token, body)) == "OK"
    assert len(webhook.queued()) == 2

    answer = webhook.post(subscription.token, body)

    assert subscription_status(answer) == "OK"
    assert webhook.queued() == []
    stored = webhook.store.get(subscription.token)
    assert (stored.last_watermark, stored.gap_from_watermark) == ("wm-2", None)


def test_a_resend_rebuilt_with_newer_mail_queues_only_the_new_mail_and_records_no_gap(webhook) -> None:
    subscription = webhook.subscribe()
    assert (
        subscription_status(webhook.post(subscription.token, new_mail_body("sub-1", "wm-0", count=2))) == "OK"
    )
    assert len(webhook.queued()) == 2

    # Our OK was lost; a third mail arrived before Exchange's retry, which starts from wm-0 again.
    answer = webhook.post(subscription.token, new_mail_body("sub-1", "wm-0", count=3))

    assert subscription_status(answer) == "OK"
    assert [message["item_id"] for message in webhook.queued()] == ["item-3"]
    stored = webhook.store.get(subscription.token)
    assert (stored.last_watermark, stored.gap_from_watermark, stored.last_previous_watermark) == (
        "wm-3",
        None,
        "wm-0",
    )


def test_a_schema_valid_error_message_from_exchange_opens_a_gap_and_records_its_code(webhook) -> None:
    subscription = webhook.subscribe(last_watermark="wm-4")

    answer = webhook.post(
        subscription.token,
        send_notification(Body([ErrorSpec("ErrorReadEventsFailed", subscription_id="sub-1")])),
    )

    assert subscription_status(answer) == "OK"
    assert webhook.queued() == []
    stored = webhook.store.get(subscription.token)
    assert (stored.gap_from_watermark, stored.last_error_code, stored.last_heartbeat_at) == (
        "wm-4",
        "ErrorReadEventsFailed",
        None,
    )


def test_an_error_from_exchange_opens_a_gap_and_a_clean_callback_clears_the_error(webhook) -> None:
    subscription = webhook.subscribe(last_watermark="wm-4")

    webhook.post(subscription.token, send_notification(Body([ErrorSpec("ErrorReadEventsFailed")])))
    after_error = webhook.store.get(subscription.token)
    webhook.post(
        subscription.token, send_notification(Body([NotificationSpec("sub-1", "wm-4", [status("wm-5")])]))
    )
    after_heartbeat = webhook.store.get(subscription.token)

    assert (after_error.gap_from_watermark, after_error.last_error_code) == ("wm-4", "ErrorReadEventsFailed")
    assert (after_heartbeat.gap_from_watermark, after_heartbeat.last_error_code) == ("wm-4", None)


def test_a_base64_body_that_does_not_decode_gets_400(webhook) -> None:
    from ens_local.api_gateway import build_rest_proxy_event

    subscription = webhook.subscribe()
    event = build_rest_proxy_event(
        "POST",
        f"/ews/notifications/{subscription.token}",
        "/ews/notifications/{token}",
        headers={"Content-Type": "text/xml; charset=utf-8"},
        body=b"<x/>",
        path_parameters={"token": subscription.token},
    )
    event.update(body="not base64!", isBase64Encoded=True)

    result = webhook.function.invoke(event)

    assert result["statusCode"] == 400
    assert "malformed_body" in result["body"]
    assert webhook.queued() == []

"""What the webhook tells operators: one log line per callback, EMF metrics, and no secrets."""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator

import pytest

from ens.core.subscriptions import SubscriptionState, new_callback_token
from support.send_notifications import (
    Body,
    ErrorSpec,
    Event,
    NotificationSpec,
    new_mail,
    send_notification,
    status,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def output(webhook, capsys) -> Iterator[Callable[[], str]]:
    """Everything the handler wrote to stdout: metrics via print, logs via Powertools' handler.

    Powertools' Logger keeps the stream it was first created with (one per service name, shared by
    every load), so the test points that handler at its own buffer for a while.
    """
    handler = webhook.function.module.logger.registered_handler
    buffer = io.StringIO()
    previous = handler.setStream(buffer)
    try:
        yield lambda: buffer.getvalue() + capsys.readouterr().out
    finally:
        handler.setStream(previous)


def emitted(output: Callable[[], str]) -> tuple[list[dict], dict[str, float]]:
    """The JSON log lines and the summed EMF metrics the handler printed."""
    logs: list[dict] = []
    metrics: dict[str, float] = {}
    for line in output().splitlines():
        document = json.loads(line)
        if "_aws" in document:
            for definition in document["_aws"]["CloudWatchMetrics"][0]["Metrics"]:
                values = document[definition["Name"]]
                metrics[definition["Name"]] = metrics.get(definition["Name"], 0) + sum(
                    values if isinstance(values, list) else [values]
                )
        else:
            logs.append(document)
    return logs, metrics


def test_accepted_callback_logs_one_line_and_counts_events_by_type(webhook, output) -> None:
    subscription = webhook.subscribe()
    body = send_notification(
        Body(
            [
                NotificationSpec(
                    "sub-1", "wm-0", [new_mail("wm-1", "a"), new_mail("wm-2", "b"), status("wm-3")]
                )
            ]
        )
    )

    webhook.post(subscription.token, body)

    logs, metrics = emitted(output)
    (line,) = logs
    assert line["message"] == "callback ok"
    assert (line["mailbox"], line["subscription_id"], line["queued"]) == ("ada@contoso.com", "sub-1", 2)
    assert line["correlation_id"]
    assert metrics == {
        "Notifications": 1,
        "CallbacksAccepted": 1,
        "NewMailEvents": 2,
        "StatusEvents": 1,
        "MailEventsQueued": 2,
    }


def test_unsubscribe_and_rejections_are_counted(webhook, output) -> None:
    retired = webhook.subscribe(state=SubscriptionState.RETIRED)
    webhook.post(
        retired.token, send_notification(Body([NotificationSpec("sub-1", "wm-0", [status("wm-1")])]))
    )
    webhook.post(new_callback_token(), b"<not-xml")
    webhook.post(
        new_callback_token(), send_notification(Body([NotificationSpec("sub-1", "wm-0", [status("w")])]))
    )

    logs, metrics = emitted(output)

    assert metrics["Notifications"] == 3
    assert metrics["Unsubscribes"] == 1
    assert metrics["CallbacksRejected"] == 2
    assert [line["reason"] for line in logs] == ["retired", "malformed_xml", "unknown_token"]


def test_an_error_message_carrying_a_notification_is_counted_as_an_exchange_error(webhook, output) -> None:
    subscription = webhook.subscribe()

    webhook.post(
        subscription.token,
        send_notification(Body([ErrorSpec("ErrorReadEventsFailed", subscription_id="sub-1")])),
    )

    logs, metrics = emitted(output)
    (line,) = logs
    assert (line["exchange_error"], line["watermark_gap"]) == ("ErrorReadEventsFailed", True)
    assert metrics["ExchangeErrorNotifications"] == 1
    assert metrics["WatermarkGaps"] == 1
    assert "StatusEvents" not in metrics


def test_logs_and_metrics_carry_neither_the_token_nor_the_callback_body(webhook, output) -> None:
    subscription = webhook.subscribe()
    body = send_notification(
        Body([NotificationSpec("sub-1", "wm-0", [Event("NewMail", "wm-1", item_id="secret-item-id|ck")])])
    )

    webhook.post(subscription.token, body)
    webhook.post(subscription.token, b"<malformed secret-payload")

    printed = output()
    assert "callback ok" in printed
    assert "callback rejected" in printed
    assert subscription.token not in printed
    assert "secret-item-id" not in printed
    assert "secret-payload" not in printed

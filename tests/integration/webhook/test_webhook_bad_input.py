"""Hostile and broken callbacks: each gets its precise status, nothing is queued or stored, and the
webhook keeps serving valid callbacks afterwards."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ens.core.subscriptions import new_callback_token
from support.send_notifications import Body, new_mail_body, send_notification

pytestmark = pytest.mark.integration

SOAP = b'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/">'


@pytest.fixture
def subscribed(webhook) -> Iterator:
    """A live subscription; after each bad input, a valid callback must still be queued."""
    subscription = webhook.subscribe()
    yield webhook, subscription
    assert webhook.queued() == [], "a bad input queued something"
    stored = webhook.store.get(subscription.token)
    assert (stored.last_seen_at, stored.last_watermark) == (None, "wm-0"), (
        "a bad input changed the subscription"
    )
    answer = webhook.post(subscription.token, new_mail_body("sub-1", "wm-0"))
    assert answer.status == 200
    assert len(webhook.queued()) == 1


def test_malformed_xml_gets_400(subscribed) -> None:
    webhook, subscription = subscribed

    answer = webhook.post(subscription.token, SOAP + b"<s:Body><unclosed></s:Body>")

    assert answer.status == 400
    assert b"malformed_xml" in answer.body


def test_external_entity_reading_a_local_file_gets_400_and_reads_nothing(subscribed) -> None:
    webhook, subscription = subscribed
    body = (
        b'<?xml version="1.0"?><!DOCTYPE s [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        + SOAP
        + b"<s:Body>&x;</s:Body></s:Envelope>"
    )

    answer = webhook.post(subscription.token, body)

    assert answer.status == 400
    assert b"dtd_forbidden" in answer.body
    assert b"root:" not in answer.body


def test_external_entity_fetching_a_url_gets_400(subscribed) -> None:
    webhook, subscription = subscribed
    body = (
        b'<?xml version="1.0"?><!DOCTYPE s [<!ENTITY x SYSTEM "http://127.0.0.1:9/evil">]>'
        + SOAP
        + b"<s:Body>&x;</s:Body></s:Envelope>"
    )

    answer = webhook.post(subscription.token, body)

    assert answer.status == 400
    assert b"dtd_forbidden" in answer.body


def test_billion_laughs_gets_400(subscribed) -> None:
    webhook, subscription = subscribed
    entities = "".join(f'<!ENTITY l{n} "{f"&l{n - 1};" * 10}">' for n in range(1, 10))
    body = (
        f'<?xml version="1.0"?><!DOCTYPE s [<!ENTITY l0 "lol">{entities}]>'.encode()
        + SOAP
        + b"<s:Body>&l9;</s:Body></s:Envelope>"
    )

    answer = webhook.post(subscription.token, body)

    assert answer.status == 400
    assert b"dtd_forbidden" in answer.body


def test_ten_megabyte_body_gets_413(subscribed) -> None:
    webhook, subscription = subscribed
    body = new_mail_body("sub-1", "wm-0").replace(
        b"</soap11:Envelope>", b"<!--" + b"x" * (10 * 1024 * 1024) + b"--></soap11:Envelope>"
    )

    answer = webhook.post(subscription.token, body)

    assert answer.status == 413


def test_wrong_content_type_gets_415(subscribed) -> None:
    webhook, subscription = subscribed

    answer = webhook.post(subscription.token, new_mail_body("sub-1", "wm-0"), content_type="application/json")

    assert answer.status == 415


def test_xml_that_is_not_soap_gets_400(subscribed) -> None:
    webhook, subscription = subscribed

    answer = webhook.post(subscription.token, b"<?xml version='1.0'?><feed><entry/></feed>")

    assert answer.status == 400
    assert b"not_soap" in answer.body


def test_valid_envelope_without_a_notification_gets_400(subscribed) -> None:
    webhook, subscription = subscribed

    answer = webhook.post(subscription.token, send_notification(Body([])))

    assert answer.status == 400
    assert b"no_notification" in answer.body


def test_subscription_id_not_of_the_token_gets_unsubscribe(subscribed) -> None:
    webhook, subscription = subscribed

    answer = webhook.post(subscription.token, new_mail_body("sub-forged", "wm-0"))

    assert answer.status == 200
    assert b"Unsubscribe" in answer.body


def test_unknown_token_gets_404(subscribed) -> None:
    webhook, _ = subscribed

    answer = webhook.post(new_callback_token(), new_mail_body("sub-1", "wm-0"))

    assert answer.status == 404


@pytest.mark.parametrize("token", ["short", "a" * 200, "..%2F..%2Fetc"])
def test_malformed_token_gets_404(subscribed, token: str) -> None:
    webhook, _ = subscribed

    assert webhook.post(token, new_mail_body("sub-1", "wm-0")).status == 404


def test_empty_body_gets_400(subscribed) -> None:
    webhook, subscription = subscribed

    answer = webhook.post(subscription.token, b"")

    assert answer.status == 400
    assert b"empty_body" in answer.body


def test_utf16_body_gets_415(subscribed) -> None:
    webhook, subscription = subscribed
    body = new_mail_body("sub-1", "wm-0").decode().replace("utf-8", "utf-16").encode("utf-16")

    answer = webhook.post(subscription.token, body)

    assert answer.status == 415
    assert b"unsupported_encoding" in answer.body

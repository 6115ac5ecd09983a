"""The receiver over in-memory stores: what a callback of a given shape or size gets."""

from __future__ import annotations

import pytest

from ens.core.notifications import DEFAULT_MAX_NOTIFICATION_BYTES
from ens.core.subscriptions import Subscription, SubscriptionState, new_callback_token
from ens.services.webhook import CallbackReceiver, CallbackRequest, CallbackResult
from support.send_notifications import Body, Event, NotificationSpec, send_notification
from support.webhook_fakes import InMemoryMailEventQueue, InMemorySubscriptionStore

pytestmark = pytest.mark.unit
XML = "text/xml; charset=utf-8"
# Ids as long as Exchange 2019 writes them (the fixture tests/events/ews/send_notification_newmail_soap11.xml).
ITEM_ID = "AAMkAGRkNzc5N2Y0LWE3YjAtNDYzOS1hNTE1LTNkYzY3NTQ0NWVmMABGAAAAAACOlgJ7w7C5R7lq1a4wvCcOBwD2sL5Fvm5fQI9XJr5IBGqjAAAAAAEMAAD2sL5Fvm5fQI9XJr5IBGqjAAAAAACt"
CHANGE_KEY = "CQAAABYAAAD2sL5Fvm5fQI9XJr5IBGqjAAAAAAC2"
FOLDER_ID = "AAMkAGRkNzc5N2Y0LWE3YjAtNDYzOS1hNTE1LTNkYzY3NTQ0NWVmMAAuAAAAAACOlgJ7w7C5R7lq1a4wvCcOAQD2sL5Fvm5fQI9XJr5IBGqjAAAAAAEMAAA="


def backlog(count: int) -> bytes:
    events = [
        Event(
            "NewMail",
            f"AQAAAIGKsfO4yHRAjDvXmRTkWi8{index:012d}=",
            item_id=f"{ITEM_ID}{index:06d}=|{CHANGE_KEY}",
            parent_folder_id=f"{FOLDER_ID}|AQAAAA==",
        )
        for index in range(count)
    ]
    return send_notification(Body([NotificationSpec("sub-1", "wm-0", events)]))


def test_a_backlog_of_thousands_of_new_mails_is_accepted_and_queued_under_the_default_limit() -> None:
    body = backlog(7_500)  # what Exchange may send after an outage: no documented bound per callback
    assert 3 * 1024 * 1024 < len(body) <= DEFAULT_MAX_NOTIFICATION_BYTES
    token = new_callback_token()
    store = InMemorySubscriptionStore()
    store.put(Subscription(token, "ada@contoso.com", SubscriptionState.ACTIVE, "sub-1", "wm-0"))
    queue = InMemoryMailEventQueue()

    outcome = CallbackReceiver(store, queue).receive(CallbackRequest(token, body, XML))

    assert (outcome.status_code, outcome.result) == (200, CallbackResult.OK)
    assert len(queue.sent) == 7_500


def test_the_default_limit_fits_lambda_s_invoke_payload_once_base64_encoded() -> None:
    from ens_local.api_gateway import LAMBDA_MAX_EVENT_BYTES

    base64_bytes = (DEFAULT_MAX_NOTIFICATION_BYTES + 2) // 3 * 4

    assert base64_bytes + 64 * 1024 < LAMBDA_MAX_EVENT_BYTES  # room for headers and request context

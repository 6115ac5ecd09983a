import json

import pytest

from ens.core.mail_events import MailEvent, mail_events
from ens.core.notifications import parse_send_notification
from support.send_notifications import Body, Event, NotificationSpec, new_mail, send_notification, status

pytestmark = pytest.mark.unit


def events_for(*events: Event) -> list[MailEvent]:
    body = send_notification(Body([NotificationSpec("sub-1", "wm-0", list(events))]))
    return mail_events("ada@contoso.com", parse_send_notification(body))


def test_new_mail_becomes_one_mail_event_with_everything_the_consumer_needs() -> None:
    (event,) = events_for(new_mail("wm-1", "item-1", "ck-1"))

    assert event == MailEvent(
        kind="NewMail",
        mailbox="ada@contoso.com",
        subscription_id="sub-1",
        watermark="wm-1",
        timestamp="2026-11-28T09:15:02Z",
        folder_id="inbox-folder-id",
        item_id="item-1",
        change_key="ck-1",
    )


def test_new_mail_without_an_item_id_is_still_queued_for_the_consumer_to_account_for() -> None:
    (event,) = events_for(Event("NewMail", "wm-1", folder_id="odd-folder-id"))

    assert (event.kind, event.item_id, event.watermark) == ("NewMail", None, "wm-1")


def test_unread_count_change_on_a_folder_is_queued_for_badges() -> None:
    (event,) = events_for(Event("Modified", "wm-1", folder_id="inbox", unread_count=4))

    assert (event.kind, event.folder_id, event.unread_count, event.item_id) == (
        "UnreadCountChanged",
        "inbox",
        4,
        None,
    )


def test_events_that_need_no_notification_are_not_queued() -> None:
    queued = events_for(
        status("wm-1"),
        Event("Created", "wm-2", item_id="i"),
        Event("Modified", "wm-3", item_id="i"),
        Event("Moved", "wm-4", item_id="i"),
        Event("Copied", "wm-5", item_id="i"),
        Event("Deleted", "wm-6", item_id="i"),
        Event("FreeBusyChanged", "wm-7", item_id="i"),
    )

    assert queued == []


def test_mail_event_message_round_trips_and_is_versioned() -> None:
    (event,) = events_for(new_mail("wm-1", "item-1"))

    message = event.to_message()

    assert json.loads(message)["v"] == 1
    assert MailEvent.from_message(message) == event


def test_unknown_message_version_is_refused() -> None:
    with pytest.raises(ValueError, match="version"):
        MailEvent.from_message('{"v": 99, "kind": "NewMail"}')

"""GetItem, GetFolder, FindItem and SyncFolderItems through exchangelib."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from exchangelib import HTMLBody, ItemId
from exchangelib.errors import ErrorInvalidIdMalformed, ErrorItemNotFound
from exchangelib.folders import Inbox

from exchange_simulator import ExchangeSimulator
from support.simulator_fixtures import DEMO_MAILBOX

pytestmark = pytest.mark.integration

LONG_BODY = "Dear team,\n\n" + "The quarterly review moves to Thursday. " * 20


@pytest.fixture
def mail(exchange_simulator: ExchangeSimulator):
    return exchange_simulator.deliver(
        DEMO_MAILBOX,
        from_="Bob Brown <bob@contoso.example>",
        subject="Review moved",
        body=LONG_BODY,
        importance="High",
        received="2024-05-06T10:15:00Z",
    )


def test_get_item_returns_the_fields_ens_asks_for(
    exchange_simulator: ExchangeSimulator, ews_account, preview_field, mail
):
    account = ews_account()
    item_id = exchange_simulator.item_id(DEMO_MAILBOX, mail)

    (item,) = account.fetch(
        ids=[ItemId(id=item_id)],
        only_fields=[
            "subject",
            "author",
            "sender",
            "datetime_received",
            "is_read",
            "importance",
            "preview",
            "has_attachments",
            "message_id",
            "conversation_id",
        ],
    )

    assert item.subject == "Review moved"
    assert item.author.email_address == "bob@contoso.example"
    assert item.author.name == "Bob Brown"
    assert item.sender.email_address == "bob@contoso.example"
    assert item.datetime_received == datetime(2024, 5, 6, 10, 15, tzinfo=UTC)
    assert item.is_read is False
    assert item.importance == "High"
    assert item.preview == " ".join(LONG_BODY.split())[:256]
    assert item.has_attachments is False
    assert item.message_id == mail.internet_message_id
    assert item.conversation_id.id


def test_get_item_returns_the_body_as_text_or_html(exchange_simulator: ExchangeSimulator, ews_account):
    account = ews_account()
    message = exchange_simulator.deliver(
        DEMO_MAILBOX,
        subject="html",
        body="<html><body><p>Hello <b>you</b></p></body></html>",
        body_type="HTML",
    )

    (as_html,) = account.fetch(
        ids=[ItemId(id=exchange_simulator.item_id(DEMO_MAILBOX, message))], only_fields=["body"]
    )
    (as_text,) = account.fetch(
        ids=[ItemId(id=exchange_simulator.item_id(DEMO_MAILBOX, message))], only_fields=["text_body"]
    )

    assert isinstance(as_html.body, HTMLBody)
    assert "<b>you</b>" in as_html.body
    assert as_text.text_body == "Hello you"


def test_get_item_answers_per_id_for_many_ids(exchange_simulator: ExchangeSimulator, ews_account):
    account = ews_account()
    messages = [exchange_simulator.deliver(DEMO_MAILBOX, subject=f"n{n}") for n in range(120)]
    gone = exchange_simulator.deliver(DEMO_MAILBOX, subject="gone")
    gone_id = exchange_simulator.item_id(DEMO_MAILBOX, gone)
    exchange_simulator.delete(DEMO_MAILBOX, gone.number)
    ids = [ItemId(id=exchange_simulator.item_id(DEMO_MAILBOX, m)) for m in messages]

    results = list(
        account.fetch(ids=[*ids, ItemId(id=gone_id), ItemId(id="not-an-id")], only_fields=["subject"])
    )

    assert [r.subject for r in results[:120]] == [f"n{n}" for n in range(120)]
    assert isinstance(results[120], ErrorItemNotFound)
    assert isinstance(results[121], ErrorInvalidIdMalformed)


def test_get_item_with_all_properties_fetches_everything_exchangelib_knows(
    exchange_simulator: ExchangeSimulator, ews_account, mail
):
    (item,) = ews_account().fetch(ids=[ItemId(id=exchange_simulator.item_id(DEMO_MAILBOX, mail))])

    assert item.subject == "Review moved"
    assert item.body.startswith("Dear team")
    assert item.to_recipients[0].email_address == DEMO_MAILBOX


def test_an_id_from_another_mailbox_is_not_found(exchange_simulator: ExchangeSimulator, ews_account):
    carols = exchange_simulator.deliver("carol@contoso.example", subject="private")

    (result,) = ews_account().fetch(
        ids=[ItemId(id=exchange_simulator.item_id("carol@contoso.example", carols))], only_fields=["subject"]
    )

    assert isinstance(result, ErrorItemNotFound)


def test_the_inbox_reports_unread_and_total_counts(exchange_simulator: ExchangeSimulator, ews_account):
    first = exchange_simulator.deliver(DEMO_MAILBOX, subject="one")
    exchange_simulator.deliver(DEMO_MAILBOX, subject="two")
    exchange_simulator.mark_read(DEMO_MAILBOX, first.number)
    account = ews_account()

    inbox = account.inbox

    # Plus the demo's welcome mail, which is already read.
    assert (inbox.unread_count, inbox.total_count) == (1, 3)
    exchange_simulator.deliver(DEMO_MAILBOX, subject="three")
    assert Inbox.get_distinguished(root=account.root).unread_count == 2


def test_get_folder_by_real_folder_id(exchange_simulator: ExchangeSimulator, ews_account):
    account = ews_account()
    exchange_simulator.deliver(DEMO_MAILBOX, subject="unread")
    inbox = account.inbox  # resolved through its distinguished id
    exchange_simulator.deliver(DEMO_MAILBOX, subject="another")

    inbox.refresh()  # GetFolder by the FolderId the first call returned

    assert inbox.unread_count == 2


def test_find_item_finds_the_mail_received_since_a_point_in_time(
    exchange_simulator: ExchangeSimulator, ews_account
):
    start = exchange_simulator.clock.now()
    exchange_simulator.deliver(DEMO_MAILBOX, subject="old", received=start - timedelta(hours=2))
    exchange_simulator.deliver(DEMO_MAILBOX, subject="new 1", received=start + timedelta(minutes=1))
    exchange_simulator.deliver(DEMO_MAILBOX, subject="new 2", received=start + timedelta(minutes=2))

    found = (
        ews_account().inbox.filter(datetime_received__gt=start).only("subject").order_by("datetime_received")
    )

    assert [item.subject for item in found] == ["new 1", "new 2"]


def test_find_item_pages_through_a_large_folder(exchange_simulator: ExchangeSimulator, ews_account):
    for n in range(25):
        exchange_simulator.deliver(DEMO_MAILBOX, subject=f"m{n:02d}")

    subjects = [
        item.subject for item in ews_account().inbox.filter(is_read=False).only("subject").order_by("subject")
    ]

    assert subjects == [f"m{n:02d}" for n in range(25)]


def test_sync_folder_items_reports_what_changed_since_the_last_sync_state(
    exchange_simulator: ExchangeSimulator, ews_account
):
    account = ews_account()
    inbox = account.inbox
    first_sync = list(inbox.sync_items(only_fields=["subject"]))
    assert [(change, item.subject) for change, item in first_sync] == [("create", "Welcome to the ENS demo")]
    state = inbox.item_sync_state

    arrived = exchange_simulator.deliver(DEMO_MAILBOX, subject="arrived")
    (welcome,) = [m for m in exchange_simulator.store.mailbox(DEMO_MAILBOX).messages.values() if m.is_read]
    exchange_simulator.mark_read(DEMO_MAILBOX, welcome.number, False)
    exchange_simulator.delete(DEMO_MAILBOX, welcome.number)
    changes = list(inbox.sync_items(sync_state=state, only_fields=["subject"]))

    kinds = [change for change, _ in changes]
    assert kinds == ["create", "delete"]
    assert changes[0][1].subject == arrived.subject
    assert inbox.item_sync_state != state
    assert list(inbox.sync_items(sync_state=inbox.item_sync_state, only_fields=["subject"])) == []


def test_sync_folder_items_reports_read_flag_changes(exchange_simulator: ExchangeSimulator, ews_account):
    inbox = ews_account().inbox
    list(inbox.sync_items(only_fields=["subject"]))
    state = inbox.item_sync_state
    (welcome,) = exchange_simulator.store.mailbox(DEMO_MAILBOX).messages.values()

    exchange_simulator.mark_read(DEMO_MAILBOX, welcome.number, False)
    changes = list(inbox.sync_items(sync_state=state, only_fields=["subject"]))

    # exchangelib hands read flag changes over as (ItemId, is_read).
    ((change, (item_id, is_read)),) = changes
    assert (change, is_read) == ("read_flag_change", False)
    assert item_id.id == exchange_simulator.item_id(DEMO_MAILBOX, welcome)

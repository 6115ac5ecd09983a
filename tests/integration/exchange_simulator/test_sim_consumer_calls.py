"""The calls the mail consumer makes, driven through exchangelib exactly as the consumer drives it.

GetItem: `account.fetch(ids=[(id, change_key), ...], only_fields=CONSUMER_FIELDS)`, which exchangelib sends as
BaseShape IdOnly plus one AdditionalProperties FieldURI per field. The unread count of a folder by id: one
GetFolder through `FolderCollection(...).get_folders(...)` on a Folder whose root is built locally.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from exchangelib.errors import ErrorItemNotFound
from exchangelib.fields import FieldPath
from exchangelib.folders import Folder, FolderCollection, Root
from lxml import etree

from exchange_simulator import ExchangeSimulator, soap
from support.simulator_fixtures import DEMO_MAILBOX

pytestmark = pytest.mark.integration

CONSUMER_FIELDS = [
    "subject",
    "sender",
    "author",
    "datetime_received",
    "is_read",
    "importance",
    "message_id",
    "parent_folder_id",
    "preview",
]


def response_items(bodies: list[bytes], operation: str) -> list[etree._Element]:
    """The t:Message / t:Contact / t:Folder elements of every `operation` response the simulator sent."""
    elements = []
    for body in bodies:
        container = etree.fromstring(body).find(f".//{{{soap.MESSAGES_NS}}}{operation}Response")
        if container is not None:
            for holder in container.iter(f"{{{soap.MESSAGES_NS}}}Items", f"{{{soap.MESSAGES_NS}}}Folders"):
                elements.extend(holder)
    return elements


@pytest.fixture
def sent_bodies(exchange_simulator: ExchangeSimulator) -> list[bytes]:
    bodies: list[bytes] = []
    exchange_simulator.observers.append(lambda body, kind: bodies.append(body))
    return bodies


def operations_since(sim: ExchangeSimulator, seq: int) -> dict[str, int]:
    return sim.request_counts(since=seq)["by_operation"]


def test_fetch_returns_exactly_the_fields_the_consumer_asks_for(
    exchange_simulator: ExchangeSimulator, ews_account, preview_field, sent_bodies
):
    mail = exchange_simulator.deliver(
        DEMO_MAILBOX,
        from_="Bob Brown <bob@contoso.example>",
        subject="Budget",
        body="Numbers   attached.\nPlease check.",
        importance="High",
        received="2024-05-06T10:15:00Z",
    )
    inbox_id = exchange_simulator.store.folder_id(
        exchange_simulator.store.mailbox(DEMO_MAILBOX),
        exchange_simulator.store.mailbox(DEMO_MAILBOX).distinguished["inbox"],
    )
    item_id = exchange_simulator.item_id(DEMO_MAILBOX, mail)
    change_key = exchange_simulator.store.change_key(mail)

    (item,) = ews_account().fetch(ids=[(item_id, change_key)], only_fields=CONSUMER_FIELDS)

    (element,) = response_items(sent_bodies, "GetItem")
    assert [etree.QName(child).localname for child in element] == [
        "ItemId",
        "ParentFolderId",
        "Subject",
        "DateTimeReceived",
        "Importance",
        "Preview",
        "Sender",
        "From",
        "InternetMessageId",
        "IsRead",
    ]
    assert (item.id, item.changekey) == (item_id, change_key)
    assert item.parent_folder_id.id == inbox_id
    assert item.subject == "Budget"
    assert (item.author.name, item.author.email_address) == ("Bob Brown", "bob@contoso.example")
    assert item.sender.email_address == "bob@contoso.example"
    assert item.datetime_received == datetime(2024, 5, 6, 10, 15, tzinfo=UTC)
    assert (item.is_read, item.importance) == (False, "High")
    assert item.message_id == mail.internet_message_id
    assert item.preview == "Numbers attached. Please check."


def test_fetch_answers_item_not_found_per_id_when_mail_was_deleted_or_moved(
    exchange_simulator: ExchangeSimulator, ews_account, preview_field
):
    kept, deleted, moved, last = (
        exchange_simulator.deliver(DEMO_MAILBOX, subject=subject)
        for subject in ("kept", "deleted", "moved", "last")
    )
    ids = [
        (exchange_simulator.item_id(DEMO_MAILBOX, m), exchange_simulator.store.change_key(m))
        for m in (kept, deleted, moved, last)
    ]
    exchange_simulator.delete(DEMO_MAILBOX, deleted.number)
    exchange_simulator.move(DEMO_MAILBOX, moved.number, "deleteditems")

    results = list(ews_account().fetch(ids=ids, only_fields=CONSUMER_FIELDS))

    assert results[0].subject == "kept"
    assert isinstance(results[1], ErrorItemNotFound)
    assert isinstance(results[2], ErrorItemNotFound)
    assert results[3].subject == "last"


def test_fetch_reports_the_read_flag_when_the_user_read_the_mail_before_the_consumer_looked(
    exchange_simulator: ExchangeSimulator, ews_account, preview_field
):
    unread = exchange_simulator.deliver(DEMO_MAILBOX, subject="unread")
    read = exchange_simulator.deliver(DEMO_MAILBOX, subject="read")
    exchange_simulator.mark_read(DEMO_MAILBOX, read.number)

    results = list(
        ews_account().fetch(
            ids=[(exchange_simulator.item_id(DEMO_MAILBOX, m), None) for m in (unread, read)],
            only_fields=CONSUMER_FIELDS,
        )
    )

    assert [(r.subject, r.is_read) for r in results] == [("unread", False), ("read", True)]


def test_fetch_gives_the_text_body_when_the_consumer_cannot_ask_for_the_preview(
    exchange_simulator: ExchangeSimulator, ews_account, sent_bodies
):
    html = exchange_simulator.deliver(
        DEMO_MAILBOX,
        subject="html",
        body="<html><body><p>Hello <b>you</b></p></body></html>",
        body_type="HTML",
    )
    text = exchange_simulator.deliver(DEMO_MAILBOX, subject="text", body="Plain words")
    fields = [f for f in CONSUMER_FIELDS if f != "preview"]

    from_html, from_text = ews_account().fetch(
        ids=[(exchange_simulator.item_id(DEMO_MAILBOX, m), None) for m in (html, text)],
        only_fields=[*fields, "text_body"],
    )
    (with_body,) = ews_account().fetch(
        ids=[(exchange_simulator.item_id(DEMO_MAILBOX, text), None)], only_fields=[*fields, "body"]
    )

    assert (from_html.text_body, from_text.text_body) == ("Hello you", "Plain words")
    assert with_body.body == "Plain words"
    names = {
        etree.QName(child).localname
        for element in response_items(sent_bodies, "GetItem")
        for child in element
    }
    assert "Preview" not in names


def test_fetch_with_a_locally_built_validation_folder_is_one_get_item(
    exchange_simulator: ExchangeSimulator, ews_account, preview_field
):
    # account.fetch() validates only_fields against Folder(root=account.root), and account.root costs a
    # GetFolder the first time; a Folder on a locally built Root validates the same without a request.
    account = ews_account()
    mail = exchange_simulator.deliver(DEMO_MAILBOX, subject="cheap")
    mark = exchange_simulator.last_request_seq

    (item,) = account.fetch(
        ids=[(exchange_simulator.item_id(DEMO_MAILBOX, mail), None)],
        folder=Folder(root=Root(account=account)),
        only_fields=CONSUMER_FIELDS,
    )

    assert item.subject == "cheap"
    assert operations_since(exchange_simulator, mark) == {"GetItem": 1}


def test_plain_fetch_also_gets_the_root_folder_once_per_account(
    exchange_simulator: ExchangeSimulator, ews_account, preview_field
):
    account = ews_account()
    mail = exchange_simulator.deliver(DEMO_MAILBOX, subject="twice")
    ids = [(exchange_simulator.item_id(DEMO_MAILBOX, mail), None)]
    mark = exchange_simulator.last_request_seq

    list(account.fetch(ids=ids, only_fields=CONSUMER_FIELDS))
    list(account.fetch(ids=ids, only_fields=CONSUMER_FIELDS))

    assert operations_since(exchange_simulator, mark) == {"GetFolder": 1, "GetItem": 2}


def test_unread_count_of_a_folder_by_id_takes_one_get_folder(
    exchange_simulator: ExchangeSimulator, ews_account, sent_bodies
):
    box = exchange_simulator.store.mailbox(DEMO_MAILBOX)
    inbox_id = exchange_simulator.store.folder_id(box, box.distinguished["inbox"])
    first = exchange_simulator.deliver(DEMO_MAILBOX, subject="one")
    exchange_simulator.deliver(DEMO_MAILBOX, subject="two")
    exchange_simulator.mark_read(DEMO_MAILBOX, first.number)
    account = ews_account()
    mark = exchange_simulator.last_request_seq

    (folder,) = FolderCollection(
        account=account, folders=[Folder(root=Root(account=account), id=inbox_id)]
    ).get_folders(additional_fields={FieldPath(field=Folder.get_field_by_fieldname("unread_count"))})

    assert folder.unread_count == 1  # the demo's welcome mail is read, "one" is read, "two" is not
    assert folder.id == inbox_id
    assert operations_since(exchange_simulator, mark) == {"GetFolder": 1}
    (element,) = response_items(sent_bodies, "GetFolder")
    assert {etree.QName(child).localname for child in element} == {
        "FolderId",
        "FolderClass",
        "DisplayName",
        "UnreadCount",
    }

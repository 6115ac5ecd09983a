"""Mailboxes, folders, messages and the per-mailbox event log.

The event log is the heart of the simulator: push notifications, watermarks and SyncFolderItems states are
all positions (sequence numbers) in it. Nothing here is thread-safe; the simulator holds its lock around
every call.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from lxml import html as lxml_html

from exchange_simulator.ids import IdKind, MalformedIdError, decode_id, encode_id

# (distinguished id, display name, parent distinguished id, folder class)
DISTINGUISHED_FOLDERS: tuple[tuple[str, str, str | None, str | None], ...] = (
    ("root", "", None, None),
    ("msgfolderroot", "Top of Information Store", "root", None),
    ("inbox", "Inbox", "msgfolderroot", "IPF.Note"),
    ("drafts", "Drafts", "msgfolderroot", "IPF.Note"),
    ("sentitems", "Sent Items", "msgfolderroot", "IPF.Note"),
    ("deleteditems", "Deleted Items", "msgfolderroot", "IPF.Note"),
    ("junkemail", "Junk Email", "msgfolderroot", "IPF.Note"),
    ("outbox", "Outbox", "msgfolderroot", "IPF.Note"),
    ("contacts", "Contacts", "msgfolderroot", "IPF.Contact"),
)

PREVIEW_LENGTH = 256  # what Exchange 2013+ puts in item:Preview
# A contact holds at most three e-mail addresses, the EmailAddress1..3 entries of contacts:EmailAddresses.
EMAIL_KEYS = ("EmailAddress1", "EmailAddress2", "EmailAddress3")
Importance = Literal["Low", "Normal", "High"]
BodyType = Literal["Text", "HTML"]


class NotFoundError(LookupError):
    """A mailbox, folder or item the caller named does not exist."""


@dataclass(frozen=True)
class Address:
    name: str
    email: str

    @classmethod
    def parse(cls, value: str) -> Address:
        """Accept 'Name <addr>' or a bare address."""
        match = re.fullmatch(r"\s*(.*?)\s*<([^<>]+)>\s*", value)
        if match:
            name, email = match.group(1).strip('"') or match.group(2), match.group(2)
            return cls(name=name, email=email.strip())
        return cls(name=value.strip(), email=value.strip())


@dataclass
class Folder:
    number: int
    display_name: str
    parent: int | None
    folder_class: str | None
    distinguished: str | None = None


@dataclass
class Message:
    number: int
    folder: int
    subject: str
    sender: Address
    to: list[Address]
    body: str
    body_type: BodyType
    importance: Importance
    received: datetime
    sent: datetime
    internet_message_id: str
    conversation: int
    is_read: bool = False
    change: int = 1
    arrived_seq: int = 0  # position in the event log when it appeared in its current folder
    read_changed_seq: int = 0

    def text_body(self) -> str:
        if self.body_type == "Text":
            return self.body
        # lxml-stubs type html.fromstring as returning _Element; it returns an HtmlElement.
        return lxml_html.fromstring(self.body or "<p></p>").text_content() if self.body.strip() else ""  # type: ignore[attr-defined]

    def html_body(self) -> str:
        if self.body_type == "HTML":
            return self.body
        paragraphs = "".join(f"<div>{html.escape(line) or '<br>'}</div>" for line in self.body.splitlines())
        return f'<html><head><meta http-equiv="Content-Type" content="text/html; charset=utf-8"></head><body>{paragraphs}</body></html>'

    def preview(self) -> str:
        return " ".join(self.text_body().split())[:PREVIEW_LENGTH]

    def size(self) -> int:
        return len(self.body.encode("utf-8")) + len(self.subject.encode("utf-8")) + 512


@dataclass
class Contact:
    """A contact in a mailbox's Contacts folder: what ENS reads to find a user's VIP senders."""

    number: int
    folder: int
    display_name: str
    emails: list[str]  # EmailAddress1, 2, 3 in this order
    categories: list[str]
    change: int = 1


@dataclass(frozen=True)
class MailboxEvent:
    seq: int
    event_type: str  # NewMailEvent, CreatedEvent, ModifiedEvent, MovedEvent, DeletedEvent, ...
    timestamp: datetime
    parent_folder: int
    item: int | None = None
    folder: int | None = None
    old_item: int | None = None
    old_parent_folder: int | None = None
    unread_count: int | None = None

    def touches(self, folders: set[int]) -> bool:
        """Whether a subscription to `folders` sees this event."""
        candidates = {self.parent_folder, self.old_parent_folder}
        if self.folder is not None:
            candidates.add(self.folder)
        return bool(candidates & folders)


@dataclass(frozen=True)
class Tombstone:
    """An item that left a folder: SyncFolderItems reports it as a Delete."""

    item: int
    folder: int
    arrived_seq: int
    removed_seq: int


@dataclass
class Mailbox:
    number: int
    address: str
    display_name: str
    created: datetime
    folders: dict[int, Folder] = field(default_factory=dict)
    distinguished: dict[str, int] = field(default_factory=dict)
    messages: dict[int, Message] = field(default_factory=dict)
    contacts: dict[int, Contact] = field(default_factory=dict)
    events: list[MailboxEvent] = field(default_factory=list)
    tombstones: list[Tombstone] = field(default_factory=list)
    # Watermarks below this sequence number are expired (fault injection or retention).
    expired_before_seq: int = 0

    @property
    def head_seq(self) -> int:
        return self.events[-1].seq if self.events else 0

    def event_time(self, seq: int) -> datetime:
        return self.created if seq == 0 else self.events[seq - 1].timestamp

    def folder_by_distinguished(self, name: str) -> Folder:
        try:
            return self.folders[self.distinguished[name]]
        except KeyError:
            raise NotFoundError(f"no distinguished folder {name!r}") from None

    def messages_in(self, folder: int) -> list[Message]:
        return [message for message in self.messages.values() if message.folder == folder]

    def contacts_in(self, folder: int) -> list[Contact]:
        return [contact for contact in self.contacts.values() if contact.folder == folder]

    def total_count(self, folder: int) -> int:
        return len(self.messages_in(folder)) + len(self.contacts_in(folder))

    def unread_count(self, folder: int) -> int:
        return sum(1 for message in self.messages_in(folder) if not message.is_read)

    def child_folder_count(self, folder: int) -> int:
        return sum(1 for f in self.folders.values() if f.parent == folder)

    def events_after(self, seq: int) -> list[MailboxEvent]:
        # Sequence numbers are dense and start at 1, so the log is its own index.
        return self.events[seq:]


class Store:
    """All mailboxes of one simulated Exchange organisation."""

    def __init__(self, store_number: int) -> None:
        self.store_number = store_number
        self.mailboxes: dict[str, Mailbox] = {}
        self._next_number = 1

    def _number(self) -> int:
        number = self._next_number
        self._next_number += 1
        return number

    # -- ids ---------------------------------------------------------------------------------------------
    def item_id(self, mailbox: Mailbox, item: int) -> str:
        return encode_id(IdKind.ITEM, self.store_number, mailbox.number, item)

    def change_key(self, item: Message | Contact) -> str:
        return encode_id(IdKind.CHANGE_KEY, self.store_number, item.number, item.change)

    def folder_id(self, mailbox: Mailbox, folder: int) -> str:
        return encode_id(IdKind.FOLDER, self.store_number, mailbox.number, folder)

    def conversation_id(self, mailbox: Mailbox, conversation: int) -> str:
        return encode_id(IdKind.CONVERSATION, self.store_number, mailbox.number, conversation)

    def watermark(self, mailbox: Mailbox, seq: int) -> str:
        return encode_id(IdKind.WATERMARK, self.store_number, mailbox.number, seq)

    def decode_item_id(self, mailbox: Mailbox, text: str) -> int | None:
        """Item number, or None for a well-formed id that is not in this mailbox. Raises MalformedIdError."""
        store, (mailbox_number, item) = decode_id(IdKind.ITEM, text, 2)
        if store != self.store_number or mailbox_number != mailbox.number:
            return None
        return item

    def decode_folder_id(self, mailbox: Mailbox, text: str) -> int | None:
        store, (mailbox_number, folder) = decode_id(IdKind.FOLDER, text, 2)
        if store != self.store_number or mailbox_number != mailbox.number:
            return None
        return folder if folder in mailbox.folders else None

    def decode_watermark(self, mailbox: Mailbox, text: str) -> int | None:
        """Sequence number of a watermark issued for `mailbox`, or None if it is not one."""
        try:
            store, (mailbox_number, seq) = decode_id(IdKind.WATERMARK, text, 2)
        except MalformedIdError:
            return None
        if store != self.store_number or mailbox_number != mailbox.number or seq > mailbox.head_seq:
            return None
        return seq

    # -- mailboxes ---------------------------------------------------------------------------------------
    def add_mailbox(self, address: str, display_name: str | None, now: datetime) -> Mailbox:
        key = address.lower()
        if key in self.mailboxes:
            return self.mailboxes[key]
        mailbox = Mailbox(
            number=self._number(), address=address, display_name=display_name or address, created=now
        )
        for distinguished, name, parent, folder_class in DISTINGUISHED_FOLDERS:
            number = self._number()
            parent_number = mailbox.distinguished[parent] if parent else None
            mailbox.folders[number] = Folder(number, name, parent_number, folder_class, distinguished)
            mailbox.distinguished[distinguished] = number
        self.mailboxes[key] = mailbox
        return mailbox

    def mailbox(self, address: str) -> Mailbox:
        try:
            return self.mailboxes[address.lower()]
        except KeyError:
            raise NotFoundError(f"no mailbox {address!r}") from None

    def resolve_folder(self, mailbox: Mailbox, name_or_id: str) -> Folder:
        """A distinguished name (inbox) or a FolderId."""
        if name_or_id in mailbox.distinguished:
            return mailbox.folders[mailbox.distinguished[name_or_id]]
        try:
            number = self.decode_folder_id(mailbox, name_or_id)
        except MalformedIdError:
            number = None
        if number is None:
            raise NotFoundError(f"no folder {name_or_id!r} in {mailbox.address}")
        return mailbox.folders[number]

    def _item_number(self, mailbox: Mailbox, ref: str | int) -> int | None:
        if isinstance(ref, int) or str(ref).isdigit():
            return int(ref)
        try:
            return self.decode_item_id(mailbox, str(ref))
        except MalformedIdError:
            return None

    def message(self, mailbox: Mailbox, ref: str | int) -> Message:
        """By EWS item id or by the plain item number the control API hands out."""
        number = self._item_number(mailbox, ref)
        if number is None or number not in mailbox.messages:
            raise NotFoundError(f"no message {ref!r} in {mailbox.address}")
        return mailbox.messages[number]

    def contact(self, mailbox: Mailbox, ref: str | int) -> Contact:
        """By EWS item id or by the plain item number the control API hands out."""
        number = self._item_number(mailbox, ref)
        if number is None or number not in mailbox.contacts:
            raise NotFoundError(f"no contact {ref!r} in {mailbox.address}")
        return mailbox.contacts[number]

    # -- contacts: no events, since ENS only reads them and subscribes to no Contacts folder -------------
    def add_contact(
        self, mailbox: Mailbox, *, display_name: str, emails: list[str], categories: list[str]
    ) -> Contact:
        if len(emails) > len(EMAIL_KEYS):
            raise ValueError(f"a contact holds at most {len(EMAIL_KEYS)} e-mail addresses")
        contact = Contact(
            number=self._number(),
            folder=mailbox.distinguished["contacts"],
            display_name=display_name,
            emails=list(emails),
            categories=list(categories),
        )
        mailbox.contacts[contact.number] = contact
        return contact

    def remove_contact(self, mailbox: Mailbox, contact: Contact) -> None:
        del mailbox.contacts[contact.number]

    # -- changes that generate events --------------------------------------------------------------------
    def _append(self, mailbox: Mailbox, now: datetime, event_type: str, **fields: int | None) -> MailboxEvent:
        event = MailboxEvent(seq=mailbox.head_seq + 1, event_type=event_type, timestamp=now, **fields)  # type: ignore[arg-type]
        mailbox.events.append(event)
        return event

    def _folder_modified(self, mailbox: Mailbox, folder: int, now: datetime) -> None:
        parent = mailbox.folders[folder].parent
        self._append(
            mailbox,
            now,
            "ModifiedEvent",
            folder=folder,
            parent_folder=parent if parent is not None else folder,
            unread_count=mailbox.unread_count(folder),
        )

    def deliver(
        self,
        mailbox: Mailbox,
        now: datetime,
        *,
        sender: Address,
        subject: str,
        body: str,
        body_type: BodyType,
        importance: Importance,
        received: datetime | None,
        folder: Folder | None = None,
        internet_message_id: str | None = None,
    ) -> Message:
        target = folder or mailbox.folder_by_distinguished("inbox")
        number = self._number()
        received_at = received or now
        message = Message(
            number=number,
            folder=target.number,
            subject=subject,
            sender=sender,
            to=[Address(mailbox.display_name, mailbox.address)],
            body=body,
            body_type=body_type,
            importance=importance,
            received=received_at,
            sent=received_at - timedelta(seconds=2),
            internet_message_id=internet_message_id or f"<{number}.{self.store_number}@simulator.invalid>",
            conversation=number,
        )
        mailbox.messages[number] = message
        # Exchange raises CreatedEvent and NewMailEvent for the item, then ModifiedEvent for the folder.
        created = self._append(mailbox, now, "CreatedEvent", item=number, parent_folder=target.number)
        message.arrived_seq = created.seq
        self._append(mailbox, now, "NewMailEvent", item=number, parent_folder=target.number)
        self._folder_modified(mailbox, target.number, now)
        return message

    def set_read(self, mailbox: Mailbox, message: Message, is_read: bool, now: datetime) -> None:
        if message.is_read == is_read:
            return
        message.is_read = is_read
        message.change += 1
        event = self._append(mailbox, now, "ModifiedEvent", item=message.number, parent_folder=message.folder)
        message.read_changed_seq = event.seq
        self._folder_modified(mailbox, message.folder, now)

    def move(self, mailbox: Mailbox, message: Message, target: Folder, now: datetime) -> Message:
        if target.number == message.folder:
            return message
        old_number, old_folder = message.number, message.folder
        # A move gives the item a new id in Exchange; the old one stops resolving.
        del mailbox.messages[old_number]
        message.number = self._number()
        message.folder = target.number
        message.change += 1
        mailbox.messages[message.number] = message
        event = self._append(
            mailbox,
            now,
            "MovedEvent",
            item=message.number,
            parent_folder=target.number,
            old_item=old_number,
            old_parent_folder=old_folder,
        )
        mailbox.tombstones.append(Tombstone(old_number, old_folder, message.arrived_seq, event.seq))
        message.arrived_seq = event.seq
        message.read_changed_seq = 0
        self._folder_modified(mailbox, old_folder, now)
        self._folder_modified(mailbox, target.number, now)
        return message

    def delete(self, mailbox: Mailbox, message: Message, now: datetime) -> None:
        del mailbox.messages[message.number]
        event = self._append(mailbox, now, "DeletedEvent", item=message.number, parent_folder=message.folder)
        mailbox.tombstones.append(Tombstone(message.number, message.folder, message.arrived_seq, event.seq))
        self._folder_modified(mailbox, message.folder, now)

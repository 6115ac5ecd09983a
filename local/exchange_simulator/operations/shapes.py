"""Item shapes and the element builders for messages: which properties a response carries, in schema order."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from lxml import etree

from exchange_simulator.clock import ews_datetime
from exchange_simulator.model import Address, Mailbox, Message, Store
from exchange_simulator.operations.common import text_of, xml_bool
from exchange_simulator.soap import sub, t


@dataclass(frozen=True)
class ItemShape:
    fields: frozenset[str]
    body_type: str  # Best | HTML | Text


# Message fields in schema order (ItemType, then MessageType). Each writer appends its element.
MessageWriter = Callable[[etree._Element, Store, Mailbox, Message, ItemShape], object]  # result unused


def _mailbox_elem(parent: etree._Element, tag: str, address: Address) -> None:
    mailbox = sub(sub(parent, t(tag)), t("Mailbox"))
    sub(mailbox, t("Name"), address.name)
    sub(mailbox, t("EmailAddress"), address.email)
    sub(mailbox, t("RoutingType"), "SMTP")
    sub(mailbox, t("MailboxType"), "OneOff")


def _body(parent: etree._Element, message: Message, body_type: str) -> None:
    wanted = message.body_type if body_type == "Best" else body_type
    content = message.html_body() if wanted == "HTML" else message.text_body()
    sub(parent, t("Body"), content, BodyType=wanted, IsTruncated="false")


MESSAGE_FIELDS: tuple[tuple[str, MessageWriter], ...] = (
    (
        "item:ParentFolderId",
        lambda p, st, mb, msg, sh: sub(p, t("ParentFolderId"), Id=st.folder_id(mb, msg.folder)),
    ),
    ("item:ItemClass", lambda p, st, mb, msg, sh: sub(p, t("ItemClass"), "IPM.Note")),
    ("item:Subject", lambda p, st, mb, msg, sh: sub(p, t("Subject"), msg.subject)),
    ("item:Sensitivity", lambda p, st, mb, msg, sh: sub(p, t("Sensitivity"), "Normal")),
    ("item:Body", lambda p, st, mb, msg, sh: _body(p, msg, sh.body_type)),
    (
        "item:DateTimeReceived",
        lambda p, st, mb, msg, sh: sub(p, t("DateTimeReceived"), ews_datetime(msg.received)),
    ),
    ("item:Size", lambda p, st, mb, msg, sh: sub(p, t("Size"), str(msg.size()))),
    ("item:Importance", lambda p, st, mb, msg, sh: sub(p, t("Importance"), msg.importance)),
    ("item:IsSubmitted", lambda p, st, mb, msg, sh: sub(p, t("IsSubmitted"), "false")),
    ("item:IsDraft", lambda p, st, mb, msg, sh: sub(p, t("IsDraft"), "false")),
    ("item:IsFromMe", lambda p, st, mb, msg, sh: sub(p, t("IsFromMe"), "false")),
    ("item:IsResend", lambda p, st, mb, msg, sh: sub(p, t("IsResend"), "false")),
    ("item:IsUnmodified", lambda p, st, mb, msg, sh: sub(p, t("IsUnmodified"), xml_bool(msg.change == 1))),
    ("item:DateTimeSent", lambda p, st, mb, msg, sh: sub(p, t("DateTimeSent"), ews_datetime(msg.sent))),
    (
        "item:DateTimeCreated",
        lambda p, st, mb, msg, sh: sub(p, t("DateTimeCreated"), ews_datetime(msg.received)),
    ),
    ("item:DisplayCc", lambda p, st, mb, msg, sh: sub(p, t("DisplayCc"), "")),
    ("item:DisplayTo", lambda p, st, mb, msg, sh: sub(p, t("DisplayTo"), "; ".join(a.name for a in msg.to))),
    ("item:HasAttachments", lambda p, st, mb, msg, sh: sub(p, t("HasAttachments"), "false")),
    ("item:Culture", lambda p, st, mb, msg, sh: sub(p, t("Culture"), "en-US")),
    (
        "item:LastModifiedTime",
        lambda p, st, mb, msg, sh: sub(p, t("LastModifiedTime"), ews_datetime(msg.received)),
    ),
    ("item:IsAssociated", lambda p, st, mb, msg, sh: sub(p, t("IsAssociated"), "false")),
    (
        "item:ConversationId",
        lambda p, st, mb, msg, sh: sub(p, t("ConversationId"), Id=st.conversation_id(mb, msg.conversation)),
    ),
    ("item:Preview", lambda p, st, mb, msg, sh: sub(p, t("Preview"), msg.preview())),
    (
        "item:TextBody",
        lambda p, st, mb, msg, sh: sub(
            p, t("TextBody"), msg.text_body(), BodyType="Text", IsTruncated="false"
        ),
    ),
    ("message:Sender", lambda p, st, mb, msg, sh: _mailbox_elem(p, "Sender", msg.sender)),
    ("message:ToRecipients", lambda p, st, mb, msg, sh: _recipients(p, "ToRecipients", msg.to)),
    (
        "message:IsReadReceiptRequested",
        lambda p, st, mb, msg, sh: sub(p, t("IsReadReceiptRequested"), "false"),
    ),
    (
        "message:IsDeliveryReceiptRequested",
        lambda p, st, mb, msg, sh: sub(p, t("IsDeliveryReceiptRequested"), "false"),
    ),
    ("message:ConversationTopic", lambda p, st, mb, msg, sh: sub(p, t("ConversationTopic"), msg.subject)),
    ("message:From", lambda p, st, mb, msg, sh: _mailbox_elem(p, "From", msg.sender)),
    (
        "message:InternetMessageId",
        lambda p, st, mb, msg, sh: sub(p, t("InternetMessageId"), msg.internet_message_id),
    ),
    ("message:IsRead", lambda p, st, mb, msg, sh: sub(p, t("IsRead"), xml_bool(msg.is_read))),
)


def _recipients(parent: etree._Element, tag: str, addresses: list[Address]) -> None:
    container = sub(parent, t(tag))
    for address in addresses:
        mailbox = sub(container, t("Mailbox"))
        sub(mailbox, t("Name"), address.name)
        sub(mailbox, t("EmailAddress"), address.email)
        sub(mailbox, t("RoutingType"), "SMTP")
        sub(mailbox, t("MailboxType"), "Mailbox")


KNOWN_MESSAGE_FIELDS = frozenset(uri for uri, _ in MESSAGE_FIELDS)
# Exchange's Default shape for messages, as far as the simulator models them.
DEFAULT_MESSAGE_FIELDS = frozenset(
    {
        "item:Subject",
        "item:Body",
        "item:DateTimeSent",
        "item:DateTimeCreated",
        "item:HasAttachments",
        "item:Sensitivity",
        "message:ToRecipients",
        "message:From",
        "message:IsRead",
    }
)


def additional_fields(shape: etree._Element | None) -> list[str]:
    if shape is None:
        return []
    return [
        element.get("FieldURI", "")
        for element in shape.iterfind(f"{t('AdditionalProperties')}/{t('FieldURI')}")
    ]


def item_shape(shape: etree._Element | None) -> ItemShape:
    base_shape = text_of(shape, t("BaseShape")) or "Default"
    fields = set(additional_fields(shape))
    if base_shape == "AllProperties":
        fields.update(KNOWN_MESSAGE_FIELDS)
    elif base_shape == "Default":
        fields.update(DEFAULT_MESSAGE_FIELDS)
    # Fields the simulator does not model are left out of the response, as Exchange does for properties
    # an item does not have.
    body_type = text_of(shape, t("BodyType")) or "Best"
    return ItemShape(frozenset(fields), body_type)


def message_element(
    store: Store, parent: etree._Element, mailbox: Mailbox, message: Message, shape: ItemShape
) -> etree._Element:
    element = sub(parent, t("Message"))
    sub(element, t("ItemId"), Id=store.item_id(mailbox, message.number), ChangeKey=store.change_key(message))
    for uri, writer in MESSAGE_FIELDS:
        if uri in shape.fields:
            writer(element, store, mailbox, message, shape)
    return element

"""Item shapes and the element builders for messages: which properties a response carries, in schema order."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from lxml import etree

from exchange_simulator import soap
from exchange_simulator.clock import ews_datetime
from exchange_simulator.model import EMAIL_KEYS, Address, Contact, Mailbox, Message, Store
from exchange_simulator.operations.common import text_of, xml_bool
from exchange_simulator.soap import sub, t


@dataclass(frozen=True)
class ItemShape:
    base_shape: str  # IdOnly | Default | AllProperties
    # AdditionalProperties: FieldURIs as given, IndexedFieldURIs as "uri:FieldIndex" (contacts:EmailAddress:EmailAddress1)
    additional: frozenset[str]
    body_type: str  # Best | HTML | Text

    def includes(self, uri: str, defaults: frozenset[str]) -> bool:
        """Whether a property the simulator models for this kind of item goes into the response."""
        if uri in self.additional or self.base_shape == "AllProperties":
            return True
        return self.base_shape == "Default" and uri in defaults

    def email_keys(self) -> tuple[str, ...]:
        """The EmailAddress1..3 entries asked for, whole (contacts:EmailAddresses) or one by one (indexed)."""
        if self.includes("contacts:EmailAddresses", DEFAULT_CONTACT_FIELDS):
            return EMAIL_KEYS
        return tuple(key for key in EMAIL_KEYS if f"contacts:EmailAddress:{key}" in self.additional)


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
    properties = shape.find(t("AdditionalProperties"))
    fields = []
    for element in properties if properties is not None else []:
        if soap.local_name(element) == "IndexedFieldURI":
            fields.append(f"{element.get('FieldURI', '')}:{element.get('FieldIndex', '')}")
        else:
            fields.append(element.get("FieldURI", ""))
    return fields


def item_shape(shape: etree._Element | None) -> ItemShape:
    # Fields the simulator does not model are left out of the response, as Exchange does for properties
    # an item does not have.
    return ItemShape(
        base_shape=text_of(shape, t("BaseShape")) or "Default",
        additional=frozenset(additional_fields(shape)),
        body_type=text_of(shape, t("BodyType")) or "Best",
    )


def message_element(
    store: Store, parent: etree._Element, mailbox: Mailbox, message: Message, shape: ItemShape
) -> etree._Element:
    element = sub(parent, t("Message"))
    sub(element, t("ItemId"), Id=store.item_id(mailbox, message.number), ChangeKey=store.change_key(message))
    for uri, writer in MESSAGE_FIELDS:
        if shape.includes(uri, DEFAULT_MESSAGE_FIELDS):
            writer(element, store, mailbox, message, shape)
    return element


def _strings(parent: etree._Element, tag: str, values: list[str]) -> None:
    if values:  # ArrayOfStringsType needs one String at least: an empty list is an absent property
        container = sub(parent, t(tag))
        for value in values:
            sub(container, t("String"), value)


# Contact fields in schema order (ItemType, then ContactItemType); contacts:EmailAddresses is written apart,
# since its entries can be asked for one by one.
ContactWriter = Callable[[etree._Element, Store, Mailbox, Contact], object]  # result unused
CONTACT_FIELDS: tuple[tuple[str, ContactWriter], ...] = (
    ("item:ParentFolderId", lambda p, st, mb, c: sub(p, t("ParentFolderId"), Id=st.folder_id(mb, c.folder))),
    ("item:ItemClass", lambda p, st, mb, c: sub(p, t("ItemClass"), "IPM.Contact")),
    ("item:Subject", lambda p, st, mb, c: sub(p, t("Subject"), c.display_name)),
    ("item:Categories", lambda p, st, mb, c: _strings(p, "Categories", c.categories)),
    ("contacts:FileAs", lambda p, st, mb, c: sub(p, t("FileAs"), c.display_name)),
    ("contacts:DisplayName", lambda p, st, mb, c: sub(p, t("DisplayName"), c.display_name)),
)
# Exchange's Default shape for contacts, as far as the simulator models them.
DEFAULT_CONTACT_FIELDS = frozenset({"contacts:FileAs", "contacts:DisplayName", "contacts:EmailAddresses"})


def contact_element(
    store: Store, parent: etree._Element, mailbox: Mailbox, contact: Contact, shape: ItemShape
) -> etree._Element:
    element = sub(parent, t("Contact"))
    sub(element, t("ItemId"), Id=store.item_id(mailbox, contact.number), ChangeKey=store.change_key(contact))
    for uri, writer in CONTACT_FIELDS:
        if shape.includes(uri, DEFAULT_CONTACT_FIELDS):
            writer(element, store, mailbox, contact)
    entries = [(key, email) for key, email in zip(EMAIL_KEYS, contact.emails, strict=False)]
    wanted = [(key, email) for key, email in entries if key in shape.email_keys()]
    if wanted:  # the dictionary needs one Entry at least
        addresses = sub(element, t("EmailAddresses"))
        for key, email in wanted:
            sub(
                addresses,
                t("Entry"),
                email,
                Key=key,
                Name=contact.display_name,
                RoutingType="SMTP",
                MailboxType="OneOff",
            )
    return element


def item_element(
    store: Store, parent: etree._Element, mailbox: Mailbox, item: Message | Contact, shape: ItemShape
) -> etree._Element:
    if isinstance(item, Contact):
        return contact_element(store, parent, mailbox, item, shape)
    return message_element(store, parent, mailbox, item, shape)

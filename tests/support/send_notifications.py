"""Build SendNotification bodies as Exchange writes them, for tests and benchmarks.

Elements are written with the prefix a test asks for (Exchange versions differ: soap11, s, soap),
so the parser's namespace handling is exercised, not assumed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from lxml import etree

SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
M = "http://schemas.microsoft.com/exchange/services/2006/messages"
T = "http://schemas.microsoft.com/exchange/services/2006/types"


@dataclass
class Event:
    kind: str  # Status, NewMail, Created, Modified, Moved, Copied, Deleted, FreeBusyChanged
    watermark: str
    item_id: str | None = None
    folder_id: str | None = None
    parent_folder_id: str | None = "inbox-folder-id"
    old_id: str | None = None
    old_parent_folder_id: str | None = None
    unread_count: int | None = None
    timestamp: str = "2026-11-28T09:15:02Z"


@dataclass
class NotificationSpec:
    subscription_id: str
    previous_watermark: str
    events: Sequence[Event]
    more_events: bool = False


@dataclass
class ErrorSpec:
    """An error message. With a subscription_id it carries the Notification the schema requires (a
    lone StatusEvent); without one it has the shape some servers send, which the schema refuses."""

    response_code: str = "ErrorReadEventsFailed"
    message_text: str = "The events couldn't be read."
    subscription_id: str | None = None
    previous_watermark: str = "wm-error-previous"
    response_class: str = "Error"


@dataclass
class Body:
    parts: Sequence[NotificationSpec | ErrorSpec]
    soap_prefix: str = "soap11"
    header: bool = True
    extra: dict[str, str] = field(default_factory=dict)


def new_mail(watermark: str, item_id: str, change_key: str = "CK1") -> Event:
    return Event("NewMail", watermark, item_id=f"{item_id}|{change_key}")


def status(watermark: str) -> Event:
    return Event("Status", watermark, parent_folder_id=None)


def send_notification(body: Body) -> bytes:
    envelope = etree.Element(f"{{{SOAP}}}Envelope", nsmap={body.soap_prefix: SOAP, "m": M, "t": T})
    if body.header:
        header = etree.SubElement(envelope, f"{{{SOAP}}}Header")
        etree.SubElement(header, f"{{{T}}}RequestServerVersion", Version="Exchange2013")
    request = etree.SubElement(etree.SubElement(envelope, f"{{{SOAP}}}Body"), f"{{{M}}}SendNotification")
    messages = etree.SubElement(request, f"{{{M}}}ResponseMessages")
    for part in body.parts:
        message = etree.SubElement(messages, f"{{{M}}}SendNotificationResponseMessage")
        if isinstance(part, ErrorSpec):
            message.set("ResponseClass", part.response_class)
            etree.SubElement(message, f"{{{M}}}MessageText").text = part.message_text
            etree.SubElement(message, f"{{{M}}}ResponseCode").text = part.response_code
            etree.SubElement(message, f"{{{M}}}DescriptiveLinkKey").text = "0"
            if part.subscription_id is not None:
                _notification(
                    message,
                    NotificationSpec(
                        part.subscription_id, part.previous_watermark, [status(part.previous_watermark)]
                    ),
                )
            continue
        message.set("ResponseClass", "Success")
        etree.SubElement(message, f"{{{M}}}ResponseCode").text = "NoError"
        _notification(message, part)
    return etree.tostring(envelope, xml_declaration=True, encoding="utf-8")


def _notification(message: etree._Element, part: NotificationSpec) -> None:
    notification = etree.SubElement(message, f"{{{M}}}Notification")
    etree.SubElement(notification, f"{{{T}}}SubscriptionId").text = part.subscription_id
    etree.SubElement(notification, f"{{{T}}}PreviousWatermark").text = part.previous_watermark
    etree.SubElement(notification, f"{{{T}}}MoreEvents").text = "true" if part.more_events else "false"
    for event in part.events:
        _event(notification, event)


def _id(parent: etree._Element, tag: str, value: str) -> None:
    identifier, _, change_key = value.partition("|")
    element = etree.SubElement(parent, f"{{{T}}}{tag}", Id=identifier)
    if change_key:
        element.set("ChangeKey", change_key)


def _event(parent: etree._Element, event: Event) -> None:
    element = etree.SubElement(parent, f"{{{T}}}{event.kind}Event")
    etree.SubElement(element, f"{{{T}}}Watermark").text = event.watermark
    if event.kind == "Status":
        return
    etree.SubElement(element, f"{{{T}}}TimeStamp").text = event.timestamp
    if event.item_id:
        _id(element, "ItemId", event.item_id)
    else:
        _id(element, "FolderId", event.folder_id or "folder-id")
    if event.parent_folder_id:
        _id(element, "ParentFolderId", event.parent_folder_id)
    if event.kind in ("Moved", "Copied"):
        _id(element, "OldItemId" if event.item_id else "OldFolderId", event.old_id or "old-id")
        _id(element, "OldParentFolderId", event.old_parent_folder_id or "old-parent-id")
    if event.kind == "Modified" and event.unread_count is not None:
        etree.SubElement(element, f"{{{T}}}UnreadCount").text = str(event.unread_count)


def new_mail_body(
    subscription_id: str, previous_watermark: str, count: int = 1, prefix: str = "soap11"
) -> bytes:
    """A SendNotification carrying `count` NewMail events, watermarks wm-1 … wm-N."""
    events = [new_mail(f"wm-{index}", f"item-{index}") for index in range(1, count + 1)]
    return send_notification(
        Body([NotificationSpec(subscription_id, previous_watermark, events)], soap_prefix=prefix)
    )

"""EWS push notifications: check and parse a SendNotification callback, build its reply.

Exchange POSTs a SOAP 1.1 `m:SendNotification` to the callback URL of a push subscription and
waits for `m:SendNotificationResult` with `OK` or `Unsubscribe`. Elements are matched by namespace,
never by prefix: Exchange versions write `soap11:`, `s:` or `soap:`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from lxml import etree

from ens.core.ews import (
    MESSAGES_NS,
    SOAP_ENVELOPE_NS,
    DoctypeForbidden,
    messages,
    parse_untrusted,
    soap,
    types,
)

# SOAP 1.1, which Exchange's push callbacks use, travels as text/xml. application/soap+xml would
# announce SOAP 1.2, an envelope Exchange never sends.
# No published bound on the events in one callback: Microsoft documents only that MoreEvents announces
# follow-up callbacks, and neither exchangelib nor the EWS Managed API knows a limit. A 413 would repeat
# on every retry until Exchange dropped the subscription, so the default is the largest body the
# pipeline carries (Lambda's 6 MB invoke limit applies to it base64-encoded): about 7,800 NewMail
# events of Exchange-sized ids. See docs/webhook.md, "Body size".
DEFAULT_MAX_NOTIFICATION_BYTES = 4 * 1024 * 1024

ACCEPTED_MEDIA_TYPES = frozenset({"text/xml", "application/xml"})
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
_UTF32_BOMS = (b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff")


class EventKind(enum.StrEnum):
    """The event types of EWS's NotificationType, named as their elements without 'Event'."""

    STATUS = "Status"
    NEW_MAIL = "NewMail"
    CREATED = "Created"
    MODIFIED = "Modified"
    MOVED = "Moved"
    COPIED = "Copied"
    DELETED = "Deleted"
    FREE_BUSY_CHANGED = "FreeBusyChanged"


_KIND_BY_TAG = {types(f"{kind.value}Event"): kind for kind in EventKind}


class SubscriptionStatus(enum.StrEnum):
    OK = "OK"
    UNSUBSCRIBE = "Unsubscribe"


class RejectReason(enum.StrEnum):
    """Why a callback request was refused; each maps to one HTTP status."""

    BODY_TOO_LARGE = "body_too_large"
    MALFORMED_BODY = "malformed_body"
    EMPTY_BODY = "empty_body"
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
    UNSUPPORTED_ENCODING = "unsupported_encoding"
    MALFORMED_XML = "malformed_xml"
    DTD_FORBIDDEN = "dtd_forbidden"
    NOT_SOAP = "not_soap"
    NOT_SEND_NOTIFICATION = "not_send_notification"
    NO_NOTIFICATION = "no_notification"
    INVALID_NOTIFICATION = "invalid_notification"

    @property
    def http_status(self) -> int:
        return _HTTP_STATUS[self]


_HTTP_STATUS = {
    RejectReason.BODY_TOO_LARGE: 413,
    RejectReason.UNSUPPORTED_MEDIA_TYPE: 415,
    RejectReason.UNSUPPORTED_ENCODING: 415,
}
for _reason in RejectReason:
    _HTTP_STATUS.setdefault(_reason, 400)


class NotificationRejected(Exception):
    """The request is not a SendNotification ENS accepts. Carries the HTTP status to answer."""

    def __init__(self, reason: RejectReason, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail

    @property
    def http_status(self) -> int:
        return self.reason.http_status


@dataclass(frozen=True, slots=True)
class ExchangeId:
    """An ItemId or FolderId: the opaque id plus its change key, when Exchange sent one."""

    id: str
    change_key: str | None = None


@dataclass(frozen=True, slots=True)
class NotificationEvent:
    kind: EventKind
    watermark: str | None
    timestamp: str | None = None  # xs:dateTime as Exchange wrote it
    item_id: ExchangeId | None = None
    folder_id: ExchangeId | None = None
    parent_folder_id: ExchangeId | None = None
    old_item_id: ExchangeId | None = None
    old_folder_id: ExchangeId | None = None
    old_parent_folder_id: ExchangeId | None = None
    unread_count: int | None = None


@dataclass(frozen=True, slots=True)
class Notification:
    subscription_id: str
    previous_watermark: str | None
    more_events: bool
    events: tuple[NotificationEvent, ...]


@dataclass(frozen=True, slots=True)
class ResponseError:
    """A SendNotificationResponseMessage with ResponseClass Error or Warning, e.g. ErrorReadEventsFailed.

    The schema requires a Notification even here (often a lone StatusEvent); it names the
    subscription, but its events are not acted on: Exchange says it could not read them.
    """

    response_code: str
    message_text: str | None
    response_class: str = "Error"
    subscription_id: str | None = None  # of the message's Notification, when it has one


@dataclass(frozen=True, slots=True)
class SendNotification:
    notifications: tuple[Notification, ...]
    errors: tuple[ResponseError, ...]

    @property
    def subscription_ids(self) -> frozenset[str]:
        """Every SubscriptionId the callback names, those of error messages included."""
        return frozenset(n.subscription_id for n in self.notifications) | frozenset(
            e.subscription_id for e in self.errors if e.subscription_id is not None
        )

    @property
    def events(self) -> tuple[NotificationEvent, ...]:
        return tuple(event for notification in self.notifications for event in notification.events)


def check_request(body: bytes, content_type: str | None, max_bytes: int) -> None:
    """Refuse, before parsing, what is too large, empty, of another media type or not UTF-8."""
    if len(body) > max_bytes:
        raise NotificationRejected(
            RejectReason.BODY_TOO_LARGE, f"{len(body)} bytes exceed the {max_bytes} limit"
        )
    if not body.strip():
        raise NotificationRejected(RejectReason.EMPTY_BODY, "the request has no body")
    media_type, _, parameters = (content_type or "").partition(";")
    if media_type.strip().lower() not in ACCEPTED_MEDIA_TYPES:
        raise NotificationRejected(
            RejectReason.UNSUPPORTED_MEDIA_TYPE,
            f"Content-Type {media_type.strip() or '(none)'!r} is not text/xml",
        )
    for parameter in parameters.split(";"):
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset" and value.strip().strip('"').lower() not in ("utf-8", "utf8"):
            raise NotificationRejected(RejectReason.UNSUPPORTED_ENCODING, "only UTF-8 bodies are accepted")
    if body.startswith(_UTF16_BOMS) or body.startswith(_UTF32_BOMS) or b"\x00" in body[:4]:
        raise NotificationRejected(RejectReason.UNSUPPORTED_ENCODING, "the body is UTF-16/32, not UTF-8")


def parse_send_notification(body: bytes) -> SendNotification:
    """Parse a SendNotification body with the hardened parser. Raises NotificationRejected."""
    try:
        root = parse_untrusted(body)
    except DoctypeForbidden as error:
        raise NotificationRejected(RejectReason.DTD_FORBIDDEN, str(error)) from None
    except etree.XMLSyntaxError as error:
        raise NotificationRejected(RejectReason.MALFORMED_XML, f"not well-formed XML ({error.msg})") from None
    except ValueError as error:  # lxml refuses e.g. a str with an encoding declaration
        raise NotificationRejected(RejectReason.MALFORMED_XML, str(error)) from None
    docinfo = root.getroottree().docinfo
    if (docinfo.encoding or "UTF-8").upper() not in ("UTF-8", "UTF8"):
        raise NotificationRejected(RejectReason.UNSUPPORTED_ENCODING, f"the body declares {docinfo.encoding}")
    if root.tag != soap("Envelope"):
        raise NotificationRejected(RejectReason.NOT_SOAP, "the root element is not a SOAP 1.1 Envelope")
    soap_body = root.find(soap("Body"))
    if soap_body is None:
        raise NotificationRejected(RejectReason.NOT_SOAP, "the SOAP envelope has no Body")
    request = soap_body.find(messages("SendNotification"))
    if request is None:
        raise NotificationRejected(
            RejectReason.NOT_SEND_NOTIFICATION, "the SOAP Body holds no SendNotification"
        )

    notifications: list[Notification] = []
    errors: list[ResponseError] = []
    for message in request.iterfind(
        f"{messages('ResponseMessages')}/{messages('SendNotificationResponseMessage')}"
    ):
        element = message.find(messages("Notification"))
        response_class = (message.get("ResponseClass") or "").strip()
        if response_class in ("Error", "Warning"):
            # With a Notification (the schema requires one) or without (as some servers send it):
            # either way the ResponseCode is what counts, never the Notification's events.
            errors.append(
                ResponseError(
                    response_code=(message.findtext(messages("ResponseCode")) or "").strip()
                    or "ErrorUnknown",
                    message_text=message.findtext(messages("MessageText")),
                    response_class=response_class,
                    subscription_id=_error_subscription_id(element),
                )
            )
        elif element is not None:
            notifications.append(_notification(element))
    if not notifications and not errors:
        raise NotificationRejected(RejectReason.NO_NOTIFICATION, "SendNotification carries no Notification")
    return SendNotification(notifications=tuple(notifications), errors=tuple(errors))


def _notification(element: etree._Element) -> Notification:
    subscription_id = element.findtext(types("SubscriptionId"))
    if not subscription_id:
        raise NotificationRejected(RejectReason.INVALID_NOTIFICATION, "a Notification has no SubscriptionId")
    events = tuple(
        _event(child, kind) for child in element if (kind := _KIND_BY_TAG.get(child.tag)) is not None
    )
    return Notification(
        subscription_id=subscription_id.strip(),
        previous_watermark=(element.findtext(types("PreviousWatermark")) or "").strip() or None,
        more_events=(element.findtext(types("MoreEvents")) or "false").strip() in ("true", "1"),
        events=events,
    )


def _error_subscription_id(element: etree._Element | None) -> str | None:
    # Read leniently: an error must be recorded even if the Notification beside it is incomplete.
    if element is None:
        return None
    return (element.findtext(types("SubscriptionId")) or "").strip() or None


def _event(element: etree._Element, kind: EventKind) -> NotificationEvent:
    fields: dict[str, object] = {}
    for child in element:
        name = _EVENT_FIELDS.get(child.tag)
        if name is None:
            continue
        if name in _ID_FIELDS:
            identifier = child.get("Id")
            if not identifier:
                raise NotificationRejected(
                    RejectReason.INVALID_NOTIFICATION, f"{kind.value}Event has an id without Id"
                )
            fields[name] = ExchangeId(identifier, child.get("ChangeKey"))
        elif name == "unread_count":
            try:
                fields[name] = int(child.text or "")
            except ValueError:
                raise NotificationRejected(
                    RejectReason.INVALID_NOTIFICATION, "UnreadCount is not a number"
                ) from None
        else:
            fields[name] = (child.text or "").strip() or None
    return NotificationEvent(kind=kind, **fields)  # type: ignore[arg-type]


_EVENT_FIELDS = {
    types("Watermark"): "watermark",
    types("TimeStamp"): "timestamp",
    types("ItemId"): "item_id",
    types("FolderId"): "folder_id",
    types("ParentFolderId"): "parent_folder_id",
    types("OldItemId"): "old_item_id",
    types("OldFolderId"): "old_folder_id",
    types("OldParentFolderId"): "old_parent_folder_id",
    types("UnreadCount"): "unread_count",
}
_ID_FIELDS = frozenset(
    {"item_id", "folder_id", "parent_folder_id", "old_item_id", "old_folder_id", "old_parent_folder_id"}
)


def _build_reply(status: SubscriptionStatus) -> bytes:
    envelope = etree.Element(soap("Envelope"), nsmap={"soap": SOAP_ENVELOPE_NS, "m": MESSAGES_NS})
    result = etree.SubElement(etree.SubElement(envelope, soap("Body")), messages("SendNotificationResult"))
    etree.SubElement(result, messages("SubscriptionStatus")).text = status.value
    return etree.tostring(envelope, xml_declaration=True, encoding="utf-8")


# Two possible replies: build each once.
_REPLIES = {status: _build_reply(status) for status in SubscriptionStatus}
REPLY_CONTENT_TYPE = "text/xml; charset=utf-8"


def reply(status: SubscriptionStatus) -> bytes:
    """The SOAP body answering a SendNotification."""
    return _REPLIES[status]

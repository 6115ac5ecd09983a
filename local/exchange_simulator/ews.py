"""The EWS operations the simulator implements, from request XML to response XML.

Only what ENS needs is implemented faithfully (Subscribe with push, GetItem, GetFolder, FindItem,
SyncFolderItems); every other operation gets a schema-valid ErrorInvalidOperation, and anything that is
not an EWS request gets the SOAP fault Exchange would send.
"""

from __future__ import annotations

import ipaddress
import itertools
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from lxml import etree

from exchange_simulator import soap
from exchange_simulator.auth import ServiceAccount
from exchange_simulator.clock import Clock, ews_datetime, parse_ews_datetime
from exchange_simulator.ids import IdKind, MalformedIdError, decode_id, encode_id
from exchange_simulator.model import Address, Folder, Mailbox, Message, Store
from exchange_simulator.push import PushEngine, Subscription
from exchange_simulator.soap import m, sub, t

# Versions a client may put in RequestServerVersion (types.xsd ExchangeVersionType).
REQUEST_VERSIONS = frozenset(
    {
        "Exchange2007",
        "Exchange2007_SP1",
        "Exchange2009",
        "Exchange2010",
        "Exchange2010_SP1",
        "Exchange2010_SP2",
        "Exchange2012",
        "Exchange2013",
        "Exchange2013_SP1",
        "Exchange2015",
        "Exchange2016",
        "V2015_10_05",
        "V2016_01_06",
        "V2016_04_13",
        "V2016_07_13",
        "V2016_10_10",
    }
)
EVENT_TYPES = frozenset(
    {
        "CopiedEvent",
        "CreatedEvent",
        "DeletedEvent",
        "ModifiedEvent",
        "MovedEvent",
        "NewMailEvent",
        "FreeBusyChangedEvent",
    }
)
IMPLEMENTED_OPERATIONS = frozenset({"Subscribe", "GetItem", "GetFolder", "FindItem", "SyncFolderItems"})
# Operations whose {Op}Response / {Op}ResponseMessage pair exists in messages.xsd: these get a typed
# ErrorInvalidOperation instead of a fault. The unit tests check every one validates.
UNSUPPORTED_OPERATIONS = frozenset(
    {
        "CreateItem",
        "DeleteItem",
        "UpdateItem",
        "SendItem",
        "DeleteFolder",
        "EmptyFolder",
        "CreateFolder",
        "FindFolder",
        "UpdateFolder",
        "MoveFolder",
        "CopyFolder",
        "CreateAttachment",
        "DeleteAttachment",
        "GetAttachment",
        "MarkAllItemsAsRead",
        "MoveItem",
        "CopyItem",
        "ArchiveItem",
        "ResolveNames",
        "ExpandDL",
        "GetEvents",
        "Unsubscribe",
        "SyncFolderHierarchy",
        "ConvertId",
        "ExportItems",
        "UploadItems",
    }
)
# What a fault rule may name: everything the simulator answers, implemented or refused.
KNOWN_OPERATIONS = IMPLEMENTED_OPERATIONS | UNSUPPORTED_OPERATIONS

WATERMARK_RETENTION = timedelta(days=30)


class EwsFault(Exception):
    """Abort the request with a SOAP fault (HTTP 500), the way Exchange reports request-level errors."""

    def __init__(self, code: str, text: str, *, back_off_ms: int | None = None) -> None:
        super().__init__(f"{code}: {text}")
        self.code = code
        self.text = text
        self.back_off_ms = back_off_ms


class ItemError(Exception):
    """One response message fails (ResponseClass="Error"); the others in the request go on."""

    def __init__(self, code: str, text: str) -> None:
        super().__init__(f"{code}: {text}")
        self.code = code
        self.text = text


@dataclass
class ParsedRequest:
    operation: str
    request: etree._Element
    header: etree._Element | None
    request_version: str


@dataclass
class CallContext:
    account: ServiceAccount
    mailbox: Mailbox
    impersonated: bool
    request_version: str


def parse_request(body: bytes) -> ParsedRequest:
    try:
        root = soap.parse_request(body)
    except (etree.XMLSyntaxError, soap.DoctypeForbidden) as e:
        raise EwsFault("ErrorSchemaValidation", f"The request failed schema validation: {e}") from None
    if root.tag != soap.s("Envelope"):
        raise EwsFault("ErrorInvalidRequest", "The request is not a SOAP 1.1 envelope.")
    header = root.find(soap.s("Header"))
    soap_body = root.find(soap.s("Body"))
    if soap_body is None or len(soap_body) != 1:
        raise EwsFault("ErrorInvalidRequest", "The SOAP Body must hold exactly one EWS request.")
    request = soap_body[0]
    qname = etree.QName(request)
    if qname.namespace != soap.MESSAGES_NS:
        raise EwsFault("ErrorInvalidRequest", f"{qname.localname} is not an EWS request.")
    version = "Exchange2013"  # what Exchange assumes without a RequestServerVersion
    if header is not None:
        version_elem = header.find(t("RequestServerVersion"))
        if version_elem is not None:
            version = version_elem.get("Version", "")
            if version not in REQUEST_VERSIONS:
                raise EwsFault("ErrorInvalidServerVersion", "The specified server version is invalid.")
    return ParsedRequest(qname.localname, request, header, version)


def _text(element: etree._Element | None, path: str) -> str | None:
    if element is None:
        return None
    found = element.find(path)
    return found.text if found is not None and found.text is not None else None


def _bool(value: bool) -> str:
    return "true" if value else "false"


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
    ("item:IsUnmodified", lambda p, st, mb, msg, sh: sub(p, t("IsUnmodified"), _bool(msg.change == 1))),
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
    ("message:IsRead", lambda p, st, mb, msg, sh: sub(p, t("IsRead"), _bool(msg.is_read))),
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

FOLDER_FIELDS = (
    "folder:ParentFolderId",
    "folder:FolderClass",
    "folder:DisplayName",
    "folder:TotalCount",
    "folder:ChildFolderCount",
    "folder:UnreadCount",
)
DEFAULT_FOLDER_FIELDS = frozenset(
    {"folder:DisplayName", "folder:TotalCount", "folder:ChildFolderCount", "folder:UnreadCount"}
)

SEARCHABLE_FIELDS: dict[str, Callable[[Message], Any]] = {
    "item:DateTimeReceived": lambda msg: msg.received,
    "item:DateTimeSent": lambda msg: msg.sent,
    "item:DateTimeCreated": lambda msg: msg.received,
    "item:Subject": lambda msg: msg.subject,
    "item:Importance": lambda msg: msg.importance,
    "message:IsRead": lambda msg: msg.is_read,
    "item:HasAttachments": lambda msg: False,
}

COMPARISONS: dict[str, Callable[[Any, Any], bool]] = {
    "IsEqualTo": lambda a, b: a == b,
    "IsNotEqualTo": lambda a, b: a != b,
    "IsGreaterThan": lambda a, b: a > b,
    "IsGreaterThanOrEqualTo": lambda a, b: a >= b,
    "IsLessThan": lambda a, b: a < b,
    "IsLessThanOrEqualTo": lambda a, b: a <= b,
}


class EwsEndpoint:
    """Turns one parsed, authenticated request into a response body."""

    def __init__(
        self,
        *,
        store: Store,
        clock: Clock,
        push: PushEngine,
        allowed_callback_hosts: Iterable[str] = (),
    ) -> None:
        self.store = store
        self.clock = clock
        self.push = push
        self.allowed_callback_hosts = {host.lower() for host in allowed_callback_hosts}
        self._subscription_numbers = itertools.count(1)

    # -- identity ----------------------------------------------------------------------------------------
    def resolve_target(self, parsed: ParsedRequest, account: ServiceAccount) -> CallContext:
        """Whose mailbox the call acts on: the impersonated user's, checked against the account's rights."""
        impersonation = parsed.header.find(t("ExchangeImpersonation")) if parsed.header is not None else None
        if impersonation is None:
            try:
                mailbox = self.store.mailbox(account.username)
            except LookupError:
                raise EwsFault(
                    "ErrorNonExistentMailbox",
                    f"The account {account.username} has no mailbox; use ExchangeImpersonation.",
                ) from None
            return CallContext(account, mailbox, False, parsed.request_version)
        connecting = impersonation.find(t("ConnectingSID"))
        mailbox = self._impersonated_mailbox(connecting)
        if not account.can_impersonate:
            raise EwsFault(
                "ErrorImpersonateUserDenied",
                "The account does not have permission to impersonate the requested user.",
            )
        return CallContext(account, mailbox, True, parsed.request_version)

    def _impersonated_mailbox(self, connecting: etree._Element | None) -> Mailbox:
        if connecting is None or len(connecting) != 1:
            raise EwsFault(
                "ErrorInvalidRequest", "ExchangeImpersonation needs exactly one ConnectingSID identity."
            )
        kind = soap.local_name(connecting[0])
        value = (connecting[0].text or "").strip()
        for mailbox in self.store.mailboxes.values():
            if (
                kind in ("PrimarySmtpAddress", "SmtpAddress", "PrincipalName")
                and mailbox.address.lower() == value.lower()
            ):
                return mailbox
            if kind == "SID" and mailbox_sid(mailbox) == value:
                return mailbox
        raise EwsFault(
            "ErrorNonExistentMailbox", f"The SMTP address has no mailbox associated with it: {value}"
        )

    # -- dispatch ----------------------------------------------------------------------------------------
    IMPLEMENTED = IMPLEMENTED_OPERATIONS

    def check_operation(self, parsed: ParsedRequest) -> None:
        """Reject what is no EWS operation before anything else, as Exchange's schema validation does."""
        if parsed.operation not in self.IMPLEMENTED and parsed.operation not in UNSUPPORTED_OPERATIONS:
            raise EwsFault("ErrorInvalidRequest", f"The request {parsed.operation} is not supported.")

    def call(self, parsed: ParsedRequest, context: CallContext) -> etree._Element:
        handler = {
            "Subscribe": self.subscribe,
            "GetItem": self.get_item,
            "GetFolder": self.get_folder,
            "FindItem": self.find_item,
            "SyncFolderItems": self.sync_folder_items,
        }.get(parsed.operation)
        if handler is not None:
            return handler(parsed.request, context)
        if parsed.operation in UNSUPPORTED_OPERATIONS:
            root, messages = soap.response_root(parsed.operation)
            soap.error_message(
                messages,
                parsed.operation,
                "ErrorInvalidOperation",
                f"The Exchange simulator does not implement {parsed.operation}.",
            )
            return root
        self.check_operation(parsed)
        raise AssertionError("unreachable")

    # -- folders -----------------------------------------------------------------------------------------
    def _folder_from_id_element(self, context: CallContext, element: etree._Element) -> Folder:
        kind = soap.local_name(element)
        mailbox = context.mailbox
        if kind == "DistinguishedFolderId":
            owner = _text(element, f"{t('Mailbox')}/{t('EmailAddress')}")
            if owner and owner.lower() != mailbox.address.lower():
                if owner.lower() not in self.store.mailboxes:
                    raise ItemError("ErrorNonExistentMailbox", f"No mailbox {owner}.")
                raise ItemError("ErrorAccessDenied", "Delegate access to other mailboxes is not simulated.")
            name = element.get("Id", "")
            if name not in mailbox.distinguished:
                raise ItemError("ErrorFolderNotFound", f"The distinguished folder {name} does not exist.")
            return mailbox.folders[mailbox.distinguished[name]]
        if kind == "FolderId":
            try:
                number = self.store.decode_folder_id(mailbox, element.get("Id", ""))
            except MalformedIdError:
                raise ItemError("ErrorInvalidIdMalformed", "Id is malformed.") from None
            if number is None:
                raise ItemError(
                    "ErrorFolderNotFound", "The specified folder could not be found in the store."
                )
            return mailbox.folders[number]
        raise ItemError("ErrorInvalidRequest", f"{kind} is not a folder id.")

    def get_folder(self, request: etree._Element, context: CallContext) -> etree._Element:
        shape = request.find(m("FolderShape"))
        base_shape = _text(shape, t("BaseShape")) or "Default"
        fields = set(_additional_fields(shape))
        if base_shape == "AllProperties":
            fields.update(FOLDER_FIELDS)
        elif base_shape == "Default":
            fields.update(DEFAULT_FOLDER_FIELDS)
        root, messages = soap.response_root("GetFolder")
        ids = request.find(m("FolderIds"))
        for id_element in ids if ids is not None else []:
            try:
                folder = self._folder_from_id_element(context, id_element)
            except ItemError as e:
                soap.error_message(messages, "GetFolder", e.code, e.text)
                continue
            message = soap.success_message(messages, "GetFolder")
            self._folder_element(sub(message, m("Folders")), context.mailbox, folder, fields)
        return root

    def _folder_element(
        self, parent: etree._Element, mailbox: Mailbox, folder: Folder, fields: set[str]
    ) -> None:
        element = sub(parent, t("Folder"))
        sub(element, t("FolderId"), Id=self.store.folder_id(mailbox, folder.number), ChangeKey="AQAAABYAAAA=")
        if "folder:ParentFolderId" in fields and folder.parent is not None:
            sub(element, t("ParentFolderId"), Id=self.store.folder_id(mailbox, folder.parent))
        if "folder:FolderClass" in fields and folder.folder_class:
            sub(element, t("FolderClass"), folder.folder_class)
        if "folder:DisplayName" in fields:
            sub(element, t("DisplayName"), folder.display_name)
        if "folder:TotalCount" in fields:
            sub(element, t("TotalCount"), str(len(mailbox.messages_in(folder.number))))
        if "folder:ChildFolderCount" in fields:
            sub(element, t("ChildFolderCount"), str(mailbox.child_folder_count(folder.number)))
        if "folder:UnreadCount" in fields:
            sub(element, t("UnreadCount"), str(mailbox.unread_count(folder.number)))

    # -- items -------------------------------------------------------------------------------------------
    def _message_element(
        self, parent: etree._Element, mailbox: Mailbox, message: Message, shape: ItemShape
    ) -> etree._Element:
        element = sub(parent, t("Message"))
        sub(
            element,
            t("ItemId"),
            Id=self.store.item_id(mailbox, message.number),
            ChangeKey=self.store.change_key(message),
        )
        for uri, writer in MESSAGE_FIELDS:
            if uri in shape.fields:
                writer(element, self.store, mailbox, message, shape)
        return element

    def get_item(self, request: etree._Element, context: CallContext) -> etree._Element:
        shape = _item_shape(request.find(m("ItemShape")))
        root, messages = soap.response_root("GetItem")
        ids = request.find(m("ItemIds"))
        mailbox = context.mailbox
        for id_element in ids if ids is not None else []:
            try:
                number = self.store.decode_item_id(mailbox, id_element.get("Id", ""))
            except MalformedIdError:
                soap.error_message(messages, "GetItem", "ErrorInvalidIdMalformed", "Id is malformed.")
                continue
            message = mailbox.messages.get(number) if number is not None else None
            if message is None:
                soap.error_message(
                    messages,
                    "GetItem",
                    "ErrorItemNotFound",
                    "The specified object was not found in the store.",
                )
                continue
            response = soap.success_message(messages, "GetItem")
            self._message_element(sub(response, m("Items")), mailbox, message, shape)
        return root

    def find_item(self, request: etree._Element, context: CallContext) -> etree._Element:
        shape = _item_shape(request.find(m("ItemShape")))
        root, messages = soap.response_root("FindItem")
        if request.get("Traversal", "Shallow") != "Shallow":
            soap.error_message(
                messages, "FindItem", "ErrorInvalidOperation", "Only Shallow traversal is simulated."
            )
            return root
        try:
            restriction = _compile_restriction(request.find(m("Restriction")))
        except ItemError as e:
            soap.error_message(messages, "FindItem", e.code, e.text)
            return root
        page = request.find(m("IndexedPageItemView"))
        max_entries = int(page.get("MaxEntriesReturned", "1000")) if page is not None else 1000
        offset = int(page.get("Offset", "0")) if page is not None else 0
        from_end = page is not None and page.get("BasePoint") == "End"
        sort_key, descending = _sort_order(request.find(m("SortOrder")))
        parents = request.find(m("ParentFolderIds"))
        for id_element in parents if parents is not None else []:
            try:
                folder = self._folder_from_id_element(context, id_element)
            except ItemError as e:
                soap.error_message(messages, "FindItem", e.code, e.text)
                continue
            found = [msg for msg in context.mailbox.messages_in(folder.number) if restriction(msg)]
            found.sort(key=sort_key, reverse=descending)
            if from_end:
                found.reverse()
            window = found[offset : offset + max_entries]
            response = soap.success_message(messages, "FindItem")
            root_folder = sub(
                response,
                m("RootFolder"),
                IndexedPagingOffset=str(offset + len(window)),
                TotalItemsInView=str(len(found)),
                IncludesLastItemInRange=_bool(offset + len(window) >= len(found)),
            )
            items = sub(root_folder, t("Items"))
            for message in window:
                self._message_element(items, context.mailbox, message, shape)
        return root

    def sync_folder_items(self, request: etree._Element, context: CallContext) -> etree._Element:
        shape = _item_shape(request.find(m("ItemShape")))
        root, messages = soap.response_root("SyncFolderItems")
        mailbox = context.mailbox
        sync_folder = request.find(m("SyncFolderId"))
        try:
            if sync_folder is None or len(sync_folder) != 1:
                raise ItemError("ErrorInvalidRequest", "SyncFolderId must name one folder.")
            folder = self._folder_from_id_element(context, sync_folder[0])
            since = self._sync_state_seq(mailbox, folder, _text(request, m("SyncState")))
            max_changes = int(_text(request, m("MaxChangesReturned")) or "512")
            if not 1 <= max_changes <= 512:
                raise ItemError("ErrorInvalidRequest", "MaxChangesReturned must be between 1 and 512.")
        except ItemError as e:
            soap.error_message(messages, "SyncFolderItems", e.code, e.text)
            return root

        # (seq, kind, payload): the log position of each change decides its order and the new sync state.
        changes: list[tuple[int, str, Any]] = []
        for message in mailbox.messages_in(folder.number):
            if message.arrived_seq > since:
                changes.append((message.arrived_seq, "Create", message))
            elif message.read_changed_seq > since:
                changes.append((message.read_changed_seq, "ReadFlagChange", message))
        for tombstone in mailbox.tombstones:
            if tombstone.folder == folder.number and tombstone.arrived_seq <= since < tombstone.removed_seq:
                changes.append((tombstone.removed_seq, "Delete", tombstone.item))
        changes.sort(key=lambda change: change[0])
        included = changes[:max_changes]
        complete = len(included) == len(changes)
        new_seq = mailbox.head_seq if complete else included[-1][0]

        response = soap.success_message(messages, "SyncFolderItems")
        sub(
            response,
            m("SyncState"),
            encode_id(IdKind.SYNC_STATE, self.store.store_number, mailbox.number, folder.number, new_seq),
        )
        sub(response, m("IncludesLastItemInRange"), _bool(complete))
        container = sub(response, m("Changes"))
        for _, kind, payload in included:
            change = sub(container, t(kind))
            if kind == "Create":
                self._message_element(change, mailbox, payload, shape)
            elif kind == "ReadFlagChange":
                sub(
                    change,
                    t("ItemId"),
                    Id=self.store.item_id(mailbox, payload.number),
                    ChangeKey=self.store.change_key(payload),
                )
                sub(change, t("IsRead"), _bool(payload.is_read))
            else:
                sub(change, t("ItemId"), Id=self.store.item_id(mailbox, payload))
        return root

    def _sync_state_seq(self, mailbox: Mailbox, folder: Folder, state: str | None) -> int:
        if not state:
            return 0
        try:
            store, (mailbox_number, folder_number, seq) = decode_id(IdKind.SYNC_STATE, state, 3)
        except MalformedIdError:
            raise ItemError(
                "ErrorInvalidSyncStateData", "Synchronization state data is corrupt or otherwise invalid."
            ) from None
        if (store, mailbox_number, folder_number) != (
            self.store.store_number,
            mailbox.number,
            folder.number,
        ) or seq > mailbox.head_seq:
            raise ItemError(
                "ErrorInvalidSyncStateData", "Synchronization state data is corrupt or otherwise invalid."
            )
        return seq

    # -- subscriptions -----------------------------------------------------------------------------------
    def subscribe(self, request: etree._Element, context: CallContext) -> etree._Element:
        root, messages = soap.response_root("Subscribe")
        push_request = request.find(m("PushSubscriptionRequest"))
        if push_request is None:
            soap.error_message(
                messages,
                "Subscribe",
                "ErrorInvalidSubscriptionRequest",
                "The Exchange simulator implements push subscriptions only.",
            )
            return root
        mailbox = context.mailbox
        frequency_text = _text(push_request, t("StatusFrequency"))
        try:
            frequency = int(frequency_text or "")
        except ValueError:
            frequency = 0
        if not 1 <= frequency <= 1440:
            # Exchange rejects this during schema validation, before the operation runs.
            raise EwsFault(
                "ErrorSchemaValidation",
                f"The request failed schema validation: The 'StatusFrequency' element is invalid - "
                f"The value '{frequency_text}' is invalid according to its datatype "
                "'SubscriptionStatusFrequencyType' - must be between 1 and 1440.",
            )
        event_types = {
            elem.text or "" for elem in push_request.iterfind(f"{t('EventTypes')}/{t('EventType')}")
        }
        if not event_types or not event_types <= EVENT_TYPES:
            raise EwsFault(
                "ErrorSchemaValidation",
                f"The request failed schema validation: invalid EventTypes {sorted(event_types - EVENT_TYPES)}.",
            )
        try:
            folders = self._subscription_folders(push_request, context)
            url = self._validate_url(_text(push_request, t("URL")) or "")
            cursor = self._resume_point(
                mailbox, _text(push_request, m("Watermark")) or _text(push_request, t("Watermark"))
            )
        except ItemError as e:
            soap.error_message(messages, "Subscribe", e.code, e.text)
            return root
        now = self.clock.now()
        subscription_id = encode_id(
            IdKind.SUBSCRIPTION, self.store.store_number, mailbox.number, next(self._subscription_numbers)
        )
        self.push.subscriptions[subscription_id] = Subscription(
            subscription_id=subscription_id,
            mailbox=mailbox,
            folders=folders,
            event_types=event_types,
            url=url,
            status_frequency=frequency,
            caller_data=_text(push_request, t("CallerData")),
            request_version=context.request_version,
            cursor_seq=cursor,
            created=now,
            last_delivery=now,
            service_account=context.account.username,
        )
        response = soap.success_message(messages, "Subscribe")
        sub(response, m("SubscriptionId"), subscription_id)
        sub(response, m("Watermark"), self.store.watermark(mailbox, cursor))
        self.push.poke()
        return root

    def _subscription_folders(self, push_request: etree._Element, context: CallContext) -> set[int] | None:
        if push_request.get("SubscribeToAllFolders") in ("true", "1"):
            return None
        folder_ids = push_request.find(t("FolderIds"))
        if folder_ids is None or len(folder_ids) == 0:
            raise ItemError("ErrorInvalidSubscriptionRequest", "Give FolderIds or SubscribeToAllFolders.")
        return {self._folder_from_id_element(context, element).number for element in folder_ids}

    def _validate_url(self, url: str) -> str:
        # Exchange insists on an absolute http(s) URL; the simulator also refuses to call anything that is
        # not this machine, so a demo can never POST mail metadata to the internet.
        parts = urlsplit(url.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ItemError(
                "ErrorInvalidPushSubscriptionUrl", f"The push subscription URL is invalid: {url!r}"
            )
        try:
            _ = parts.port
        except ValueError:
            raise ItemError(
                "ErrorInvalidPushSubscriptionUrl", f"The push subscription URL is invalid: {url!r}"
            ) from None
        host = parts.hostname.lower()
        if host not in self.allowed_callback_hosts:
            try:
                loopback = ipaddress.ip_address(host).is_loopback
            except ValueError:
                loopback = host == "localhost"
            if not loopback:
                raise ItemError(
                    "ErrorInvalidPushSubscriptionUrl",
                    f"The Exchange simulator only calls back to loopback addresses, not {host}.",
                )
        return url.strip()

    def _resume_point(self, mailbox: Mailbox, watermark: str | None) -> int:
        if not watermark:
            return mailbox.head_seq
        seq = self.store.decode_watermark(mailbox, watermark)
        if seq is None:
            raise ItemError(
                "ErrorInvalidWatermark",
                "The watermark used for creating this subscription was not recognized.",
            )
        if (
            seq < mailbox.expired_before_seq
            or mailbox.event_time(seq) < self.clock.now() - WATERMARK_RETENTION
        ):
            raise ItemError(
                "ErrorInvalidWatermark", "The watermark used for creating this subscription has expired."
            )
        return seq


def mailbox_sid(mailbox: Mailbox) -> str:
    return f"S-1-5-21-1004336348-1177238915-682003330-{1000 + mailbox.number}"


def _additional_fields(shape: etree._Element | None) -> list[str]:
    if shape is None:
        return []
    return [
        element.get("FieldURI", "")
        for element in shape.iterfind(f"{t('AdditionalProperties')}/{t('FieldURI')}")
    ]


def _item_shape(shape: etree._Element | None) -> ItemShape:
    base_shape = _text(shape, t("BaseShape")) or "Default"
    fields = set(_additional_fields(shape))
    if base_shape == "AllProperties":
        fields.update(KNOWN_MESSAGE_FIELDS)
    elif base_shape == "Default":
        fields.update(DEFAULT_MESSAGE_FIELDS)
    # Fields the simulator does not model are left out of the response, as Exchange does for properties
    # an item does not have.
    body_type = _text(shape, t("BodyType")) or "Best"
    return ItemShape(frozenset(fields), body_type)


def _sort_order(order: etree._Element | None) -> tuple[Callable[[Message], Any], bool]:
    if order is not None:
        field_order = order.find(t("FieldOrder"))
        uri_elem = field_order.find(t("FieldURI")) if field_order is not None else None
        if field_order is not None and uri_elem is not None and uri_elem.get("FieldURI") in SEARCHABLE_FIELDS:
            getter = SEARCHABLE_FIELDS[uri_elem.get("FieldURI", "")]
            return (lambda msg: (getter(msg), msg.number)), field_order.get("Order") == "Descending"
    # Exchange's default view: newest first.
    return (lambda msg: (msg.received, msg.number)), True


def _compile_restriction(restriction: etree._Element | None) -> Callable[[Message], bool]:
    if restriction is None or len(restriction) == 0:
        return lambda msg: True
    return _compile_expression(restriction[0])


def _compile_expression(expression: etree._Element) -> Callable[[Message], bool]:
    kind = soap.local_name(expression)
    if kind == "And":
        parts = [_compile_expression(child) for child in expression]
        return lambda msg: all(part(msg) for part in parts)
    if kind == "Or":
        parts = [_compile_expression(child) for child in expression]
        return lambda msg: any(part(msg) for part in parts)
    if kind == "Not":
        inner = _compile_expression(expression[0])
        return lambda msg: not inner(msg)
    if kind == "Exists":
        _field_getter(expression)  # rejects fields the simulator cannot search
        return lambda msg: True
    if kind == "Contains":
        getter = _field_getter(expression)
        constant = expression.find(t("Constant"))
        needle = (constant.get("Value", "") if constant is not None else "").lower()
        return lambda msg: needle in str(getter(msg)).lower()
    if kind in COMPARISONS:
        getter = _field_getter(expression)
        constant = expression.find(f"{t('FieldURIOrConstant')}/{t('Constant')}")
        if constant is None:
            raise ItemError("ErrorUnsupportedQueryFilter", "Only comparisons with a Constant are simulated.")
        compare = COMPARISONS[kind]
        uri = expression.find(t("FieldURI")).get("FieldURI", "")  # type: ignore[union-attr]
        value = _typed_constant(uri, constant.get("Value", ""))
        return lambda msg: compare(getter(msg), value)
    raise ItemError(
        "ErrorUnsupportedQueryFilter", f"The restriction {kind} is not supported by the simulator."
    )


def _field_getter(expression: etree._Element) -> Callable[[Message], Any]:
    uri_elem = expression.find(t("FieldURI"))
    uri = uri_elem.get("FieldURI", "") if uri_elem is not None else ""
    if uri not in SEARCHABLE_FIELDS:
        raise ItemError(
            "ErrorUnsupportedPathForQuery",
            f"The property {uri or 'given'} cannot be used in a restriction here.",
        )
    return SEARCHABLE_FIELDS[uri]


def _typed_constant(uri: str, value: str) -> Any:
    if uri.startswith(("item:DateTime",)):
        try:
            return parse_ews_datetime(value)
        except ValueError:
            raise ItemError("ErrorInvalidValueForProperty", f"{value!r} is not a dateTime.") from None
    if uri in ("message:IsRead", "item:HasAttachments"):
        return value.strip().lower() in ("true", "1")
    return value

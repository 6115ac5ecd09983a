"""The EWS endpoint: parses a request, decides whose mailbox it acts on, and dispatches to its operation.

Only what ENS needs is implemented faithfully, one module per operation in `exchange_simulator.operations`
(Subscribe with push, GetItem, GetFolder, FindItem, SyncFolderItems); every other operation gets a
schema-valid ErrorInvalidOperation, and anything that is not an EWS request gets the SOAP fault Exchange
would send.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from lxml import etree

from exchange_simulator import soap
from exchange_simulator.auth import ServiceAccount
from exchange_simulator.clock import Clock
from exchange_simulator.model import Mailbox, Store
from exchange_simulator.operations import find_item, get_folder, get_item, subscribe, sync_folder_items
from exchange_simulator.operations.common import CallContext, EwsFault, ItemError
from exchange_simulator.push import PushEngine
from exchange_simulator.soap import t

__all__ = [
    "IMPLEMENTED_OPERATIONS",
    "KNOWN_OPERATIONS",
    "UNSUPPORTED_OPERATIONS",
    "CallContext",
    "EwsEndpoint",
    "EwsFault",
    "ItemError",
    "ParsedRequest",
    "mailbox_sid",
    "parse_request",
]

Operation = Callable[["EwsEndpoint", etree._Element, CallContext], etree._Element]
OPERATIONS: dict[str, Operation] = {
    module.OPERATION: module.call
    for module in (subscribe, get_item, get_folder, find_item, sync_folder_items)
}

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
IMPLEMENTED_OPERATIONS = frozenset(OPERATIONS)
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


@dataclass
class ParsedRequest:
    operation: str
    request: etree._Element
    header: etree._Element | None
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
        self.subscription_numbers = itertools.count(1)

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
        operation = OPERATIONS.get(parsed.operation)
        if operation is not None:
            return operation(self, parsed.request, context)
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


def mailbox_sid(mailbox: Mailbox) -> str:
    return f"S-1-5-21-1004336348-1177238915-682003330-{1000 + mailbox.number}"

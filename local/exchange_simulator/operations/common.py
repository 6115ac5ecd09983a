"""What every operation shares: its errors, whose mailbox it acts on, and folder id resolution."""

from __future__ import annotations

from dataclasses import dataclass

from lxml import etree

from exchange_simulator import soap
from exchange_simulator.auth import ServiceAccount
from exchange_simulator.ids import MalformedIdError
from exchange_simulator.model import Folder, Mailbox, Store
from exchange_simulator.soap import t


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
class CallContext:
    account: ServiceAccount
    mailbox: Mailbox
    impersonated: bool
    request_version: str


def text_of(element: etree._Element | None, path: str) -> str | None:
    if element is None:
        return None
    found = element.find(path)
    return found.text if found is not None and found.text is not None else None


def xml_bool(value: bool) -> str:
    return "true" if value else "false"


def folder_from_id_element(store: Store, context: CallContext, element: etree._Element) -> Folder:
    """The folder a t:DistinguishedFolderId or t:FolderId names in the caller's mailbox, or ItemError."""
    kind = soap.local_name(element)
    mailbox = context.mailbox
    if kind == "DistinguishedFolderId":
        owner = text_of(element, f"{t('Mailbox')}/{t('EmailAddress')}")
        if owner and owner.lower() != mailbox.address.lower():
            if owner.lower() not in store.mailboxes:
                raise ItemError("ErrorNonExistentMailbox", f"No mailbox {owner}.")
            raise ItemError("ErrorAccessDenied", "Delegate access to other mailboxes is not simulated.")
        name = element.get("Id", "")
        if name not in mailbox.distinguished:
            raise ItemError("ErrorFolderNotFound", f"The distinguished folder {name} does not exist.")
        return mailbox.folders[mailbox.distinguished[name]]
    if kind == "FolderId":
        try:
            number = store.decode_folder_id(mailbox, element.get("Id", ""))
        except MalformedIdError:
            raise ItemError("ErrorInvalidIdMalformed", "Id is malformed.") from None
        if number is None:
            raise ItemError("ErrorFolderNotFound", "The specified folder could not be found in the store.")
        return mailbox.folders[number]
    raise ItemError("ErrorInvalidRequest", f"{kind} is not a folder id.")

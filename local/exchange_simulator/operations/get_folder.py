"""GetFolder: folder properties by distinguished id or FolderId."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lxml import etree

from exchange_simulator import soap
from exchange_simulator.model import Folder, Mailbox, Store
from exchange_simulator.operations.common import CallContext, ItemError, folder_from_id_element, text_of
from exchange_simulator.operations.shapes import additional_fields
from exchange_simulator.soap import m, sub, t

if TYPE_CHECKING:
    from exchange_simulator.ews import EwsEndpoint

OPERATION = "GetFolder"

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


def call(endpoint: EwsEndpoint, request: etree._Element, context: CallContext) -> etree._Element:
    shape = request.find(m("FolderShape"))
    base_shape = text_of(shape, t("BaseShape")) or "Default"
    fields = set(additional_fields(shape))
    if base_shape == "AllProperties":
        fields.update(FOLDER_FIELDS)
    elif base_shape == "Default":
        fields.update(DEFAULT_FOLDER_FIELDS)
    root, messages = soap.response_root(OPERATION)
    ids = request.find(m("FolderIds"))
    for id_element in ids if ids is not None else []:
        try:
            folder = folder_from_id_element(endpoint.store, context, id_element)
        except ItemError as e:
            soap.error_message(messages, OPERATION, e.code, e.text)
            continue
        message = soap.success_message(messages, OPERATION)
        folder_element(endpoint.store, sub(message, m("Folders")), context.mailbox, folder, fields)
    return root


def folder_element(
    store: Store, parent: etree._Element, mailbox: Mailbox, folder: Folder, fields: set[str]
) -> None:
    # Exchange answers for a Contacts folder with t:ContactsFolder, which has no UnreadCount.
    is_contacts = folder.folder_class == "IPF.Contact"
    element = sub(parent, t("ContactsFolder" if is_contacts else "Folder"))
    sub(element, t("FolderId"), Id=store.folder_id(mailbox, folder.number), ChangeKey="AQAAABYAAAA=")
    if "folder:ParentFolderId" in fields and folder.parent is not None:
        sub(element, t("ParentFolderId"), Id=store.folder_id(mailbox, folder.parent))
    if "folder:FolderClass" in fields and folder.folder_class:
        sub(element, t("FolderClass"), folder.folder_class)
    if "folder:DisplayName" in fields:
        sub(element, t("DisplayName"), folder.display_name)
    if "folder:TotalCount" in fields:
        sub(element, t("TotalCount"), str(mailbox.total_count(folder.number)))
    if "folder:ChildFolderCount" in fields:
        sub(element, t("ChildFolderCount"), str(mailbox.child_folder_count(folder.number)))
    if "folder:UnreadCount" in fields and not is_contacts:
        sub(element, t("UnreadCount"), str(mailbox.unread_count(folder.number)))

"""SyncFolderItems: what changed in one folder since a sync state (creates, read flag changes, deletes)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lxml import etree

from exchange_simulator import soap
from exchange_simulator.ids import IdKind, MalformedIdError, decode_id, encode_id
from exchange_simulator.model import Folder, Mailbox, Store
from exchange_simulator.operations.common import (
    CallContext,
    ItemError,
    folder_from_id_element,
    text_of,
    xml_bool,
)
from exchange_simulator.operations.shapes import item_shape, message_element
from exchange_simulator.soap import m, sub, t

if TYPE_CHECKING:
    from exchange_simulator.ews import EwsEndpoint

OPERATION = "SyncFolderItems"


def call(endpoint: EwsEndpoint, request: etree._Element, context: CallContext) -> etree._Element:
    store = endpoint.store
    shape = item_shape(request.find(m("ItemShape")))
    root, messages = soap.response_root(OPERATION)
    mailbox = context.mailbox
    sync_folder = request.find(m("SyncFolderId"))
    try:
        if sync_folder is None or len(sync_folder) != 1:
            raise ItemError("ErrorInvalidRequest", "SyncFolderId must name one folder.")
        folder = folder_from_id_element(store, context, sync_folder[0])
        since = _sync_state_seq(store, mailbox, folder, text_of(request, m("SyncState")))
        max_changes = int(text_of(request, m("MaxChangesReturned")) or "512")
        if not 1 <= max_changes <= 512:
            raise ItemError("ErrorInvalidRequest", "MaxChangesReturned must be between 1 and 512.")
    except ItemError as e:
        soap.error_message(messages, OPERATION, e.code, e.text)
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

    response = soap.success_message(messages, OPERATION)
    sub(
        response,
        m("SyncState"),
        encode_id(IdKind.SYNC_STATE, store.store_number, mailbox.number, folder.number, new_seq),
    )
    sub(response, m("IncludesLastItemInRange"), xml_bool(complete))
    container = sub(response, m("Changes"))
    for _, kind, payload in included:
        change = sub(container, t(kind))
        if kind == "Create":
            message_element(store, change, mailbox, payload, shape)
        elif kind == "ReadFlagChange":
            sub(
                change,
                t("ItemId"),
                Id=store.item_id(mailbox, payload.number),
                ChangeKey=store.change_key(payload),
            )
            sub(change, t("IsRead"), xml_bool(payload.is_read))
        else:
            sub(change, t("ItemId"), Id=store.item_id(mailbox, payload))
    return root


def _sync_state_seq(store: Store, mailbox: Mailbox, folder: Folder, state: str | None) -> int:
    if not state:
        return 0
    try:
        store_number, (mailbox_number, folder_number, seq) = decode_id(IdKind.SYNC_STATE, state, 3)
    except MalformedIdError:
        raise ItemError(
            "ErrorInvalidSyncStateData", "Synchronization state data is corrupt or otherwise invalid."
        ) from None
    if (store_number, mailbox_number, folder_number) != (
        store.store_number,
        mailbox.number,
        folder.number,
    ) or seq > mailbox.head_seq:
        raise ItemError(
            "ErrorInvalidSyncStateData", "Synchronization state data is corrupt or otherwise invalid."
        )
    return seq

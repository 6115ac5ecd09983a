"""FindItem: a shallow search of folders with a restriction, a sort order and indexed paging."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lxml import etree

from exchange_simulator import soap
from exchange_simulator.model import Contact, Message
from exchange_simulator.operations.common import CallContext, ItemError, folder_from_id_element, xml_bool
from exchange_simulator.operations.restrictions import compile_restriction, schema_for, sort_order
from exchange_simulator.operations.shapes import item_element, item_shape
from exchange_simulator.soap import m, sub, t

if TYPE_CHECKING:
    from exchange_simulator.ews import EwsEndpoint

OPERATION = "FindItem"


def call(endpoint: EwsEndpoint, request: etree._Element, context: CallContext) -> etree._Element:
    shape = item_shape(request.find(m("ItemShape")))
    root, messages = soap.response_root(OPERATION)
    if request.get("Traversal", "Shallow") != "Shallow":
        soap.error_message(
            messages, OPERATION, "ErrorInvalidOperation", "Only Shallow traversal is simulated."
        )
        return root
    restriction_element = request.find(m("Restriction"))
    page = request.find(m("IndexedPageItemView"))
    max_entries = int(page.get("MaxEntriesReturned", "1000")) if page is not None else 1000
    offset = int(page.get("Offset", "0")) if page is not None else 0
    from_end = page is not None and page.get("BasePoint") == "End"
    parents = request.find(m("ParentFolderIds"))
    for id_element in parents if parents is not None else []:
        try:
            folder = folder_from_id_element(endpoint.store, context, id_element)
            # A folder holds one kind of item here: contacts in the Contacts folder, mail elsewhere.
            items: list[Message] | list[Contact]
            if folder.folder_class == "IPF.Contact":
                items, schema = context.mailbox.contacts_in(folder.number), schema_for(Contact)
            else:
                items, schema = context.mailbox.messages_in(folder.number), schema_for(Message)
            restriction = compile_restriction(restriction_element, schema)
        except ItemError as e:
            soap.error_message(messages, OPERATION, e.code, e.text)
            continue
        sort_key, descending = sort_order(request.find(m("SortOrder")), schema)
        found = sorted((item for item in items if restriction(item)), key=sort_key, reverse=descending)
        if from_end:
            found.reverse()
        window = found[offset : offset + max_entries]
        response = soap.success_message(messages, OPERATION)
        root_folder = sub(
            response,
            m("RootFolder"),
            IndexedPagingOffset=str(offset + len(window)),
            TotalItemsInView=str(len(found)),
            IncludesLastItemInRange=xml_bool(offset + len(window) >= len(found)),
        )
        container = sub(root_folder, t("Items"))
        for item in window:
            item_element(endpoint.store, container, context.mailbox, item, shape)
    return root

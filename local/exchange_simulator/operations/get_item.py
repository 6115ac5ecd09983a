"""GetItem: items by id, one response message per id."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lxml import etree

from exchange_simulator import soap
from exchange_simulator.ids import MalformedIdError
from exchange_simulator.operations.common import CallContext
from exchange_simulator.operations.shapes import item_element, item_shape
from exchange_simulator.soap import m, sub

if TYPE_CHECKING:
    from exchange_simulator.ews import EwsEndpoint

OPERATION = "GetItem"


def call(endpoint: EwsEndpoint, request: etree._Element, context: CallContext) -> etree._Element:
    shape = item_shape(request.find(m("ItemShape")))
    root, messages = soap.response_root(OPERATION)
    ids = request.find(m("ItemIds"))
    mailbox = context.mailbox
    for id_element in ids if ids is not None else []:
        try:
            number = endpoint.store.decode_item_id(mailbox, id_element.get("Id", ""))
        except MalformedIdError:
            soap.error_message(messages, OPERATION, "ErrorInvalidIdMalformed", "Id is malformed.")
            continue
        item = (mailbox.messages.get(number) or mailbox.contacts.get(number)) if number is not None else None
        if item is None:
            soap.error_message(
                messages, OPERATION, "ErrorItemNotFound", "The specified object was not found in the store."
            )
            continue
        response = soap.success_message(messages, OPERATION)
        item_element(endpoint.store, sub(response, m("Items")), mailbox, item, shape)
    return root

"""FindItem's Restriction and SortOrder, compiled into Python predicates and sort keys over one kind of item.

Strings compare as Exchange's default collation does: without regard to case. A multi-valued property
(item:Categories) matches IsEqualTo when one of its values does, as in Exchange.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lxml import etree

from exchange_simulator import soap
from exchange_simulator.clock import parse_ews_datetime
from exchange_simulator.model import Contact, Message
from exchange_simulator.operations.common import ItemError
from exchange_simulator.soap import t

Getter = Callable[[Any], Any]
Predicate = Callable[[Any], bool]


@dataclass(frozen=True)
class SearchSchema:
    """What FindItem can search and sort one kind of item by."""

    fields: dict[str, Getter]
    default_sort: Getter
    default_descending: bool


MESSAGES = SearchSchema(
    fields={
        "item:DateTimeReceived": lambda msg: msg.received,
        "item:DateTimeSent": lambda msg: msg.sent,
        "item:DateTimeCreated": lambda msg: msg.received,
        "item:Subject": lambda msg: msg.subject,
        "item:Importance": lambda msg: msg.importance,
        "message:IsRead": lambda msg: msg.is_read,
        "item:HasAttachments": lambda msg: False,
    },
    # Exchange's default view of mail: newest first.
    default_sort=lambda msg: msg.received,
    default_descending=True,
)


def _display_name(contact: Contact) -> str:
    return contact.display_name


CONTACTS = SearchSchema(
    fields={
        "item:Categories": lambda contact: contact.categories,
        "item:Subject": _display_name,
        "contacts:DisplayName": _display_name,
        "contacts:FileAs": _display_name,
    },
    # Outlook's and Exchange's view of contacts: by FileAs.
    default_sort=_display_name,
    default_descending=False,
)


def schema_for(item: type[Message] | type[Contact]) -> SearchSchema:
    return CONTACTS if item is Contact else MESSAGES


def _fold(value: Any) -> Any:
    return value.casefold() if isinstance(value, str) else value


COMPARISONS: dict[str, Callable[[Any, Any], bool]] = {
    "IsEqualTo": lambda a, b: a == b,
    "IsNotEqualTo": lambda a, b: a != b,
    "IsGreaterThan": lambda a, b: a > b,
    "IsGreaterThanOrEqualTo": lambda a, b: a >= b,
    "IsLessThan": lambda a, b: a < b,
    "IsLessThanOrEqualTo": lambda a, b: a <= b,
}


def _compare(kind: str, value: Any, constant: Any) -> bool:
    if isinstance(value, list):
        # A multi-valued property: IsNotEqualTo holds when no value equals, the others when one value does.
        if kind == "IsNotEqualTo":
            return not any(_fold(v) == _fold(constant) for v in value)
        return any(COMPARISONS[kind](_fold(v), _fold(constant)) for v in value)
    return COMPARISONS[kind](_fold(value), _fold(constant))


def sort_order(order: etree._Element | None, schema: SearchSchema) -> tuple[Getter, bool]:
    """(key, descending); the item number breaks ties, so paging over equal keys is stable."""
    if order is not None:
        field_order = order.find(t("FieldOrder"))
        uri_elem = field_order.find(t("FieldURI")) if field_order is not None else None
        if field_order is not None and uri_elem is not None and uri_elem.get("FieldURI") in schema.fields:
            getter = schema.fields[uri_elem.get("FieldURI", "")]
            return (lambda item: (_fold(getter(item)), item.number)), field_order.get("Order") == "Descending"
    default = schema.default_sort
    return (lambda item: (_fold(default(item)), item.number)), schema.default_descending


def compile_restriction(restriction: etree._Element | None, schema: SearchSchema) -> Predicate:
    if restriction is None or len(restriction) == 0:
        return lambda item: True
    return _compile_expression(restriction[0], schema)


def _compile_expression(expression: etree._Element, schema: SearchSchema) -> Predicate:
    kind = soap.local_name(expression)
    if kind == "And":
        parts = [_compile_expression(child, schema) for child in expression]
        return lambda item: all(part(item) for part in parts)
    if kind == "Or":
        parts = [_compile_expression(child, schema) for child in expression]
        return lambda item: any(part(item) for part in parts)
    if kind == "Not":
        inner = _compile_expression(expression[0], schema)
        return lambda item: not inner(item)
    if kind == "Exists":
        getter = _field_getter(expression, schema)
        return lambda item: getter(item) not in (None, [])
    if kind == "Contains":
        getter = _field_getter(expression, schema)
        constant = expression.find(t("Constant"))
        needle = _fold(constant.get("Value", "") if constant is not None else "")

        def contains(item: Any) -> bool:
            value = getter(item)
            values = value if isinstance(value, list) else [value]
            return any(needle in _fold(str(v)) for v in values)

        return contains
    if kind in COMPARISONS:
        getter = _field_getter(expression, schema)
        constant = expression.find(f"{t('FieldURIOrConstant')}/{t('Constant')}")
        if constant is None:
            raise ItemError("ErrorUnsupportedQueryFilter", "Only comparisons with a Constant are simulated.")
        uri = expression.find(t("FieldURI")).get("FieldURI", "")  # type: ignore[union-attr]
        value = _typed_constant(uri, constant.get("Value", ""))
        return lambda item: _compare(kind, getter(item), value)
    raise ItemError(
        "ErrorUnsupportedQueryFilter", f"The restriction {kind} is not supported by the simulator."
    )


def _field_getter(expression: etree._Element, schema: SearchSchema) -> Getter:
    uri_elem = expression.find(t("FieldURI"))
    uri = uri_elem.get("FieldURI", "") if uri_elem is not None else ""
    if uri not in schema.fields:
        raise ItemError(
            "ErrorUnsupportedPathForQuery",
            f"The property {uri or 'given'} cannot be used in a restriction here.",
        )
    return schema.fields[uri]


def _typed_constant(uri: str, value: str) -> Any:
    if uri.startswith(("item:DateTime",)):
        try:
            return parse_ews_datetime(value)
        except ValueError:
            raise ItemError("ErrorInvalidValueForProperty", f"{value!r} is not a dateTime.") from None
    if uri in ("message:IsRead", "item:HasAttachments"):
        return value.strip().lower() in ("true", "1")
    return value

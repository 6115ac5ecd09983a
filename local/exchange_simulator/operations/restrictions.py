"""FindItem's Restriction and SortOrder, compiled into Python predicates and sort keys over messages."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from lxml import etree

from exchange_simulator import soap
from exchange_simulator.clock import parse_ews_datetime
from exchange_simulator.model import Message
from exchange_simulator.operations.common import ItemError
from exchange_simulator.soap import t

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


def sort_order(order: etree._Element | None) -> tuple[Callable[[Message], Any], bool]:
    if order is not None:
        field_order = order.find(t("FieldOrder"))
        uri_elem = field_order.find(t("FieldURI")) if field_order is not None else None
        if field_order is not None and uri_elem is not None and uri_elem.get("FieldURI") in SEARCHABLE_FIELDS:
            getter = SEARCHABLE_FIELDS[uri_elem.get("FieldURI", "")]
            return (lambda msg: (getter(msg), msg.number)), field_order.get("Order") == "Descending"
    # Exchange's default view: newest first.
    return (lambda msg: (msg.received, msg.number)), True


def compile_restriction(restriction: etree._Element | None) -> Callable[[Message], bool]:
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

"""Validate what ENS and its tooling produce against Microsoft's EWS schema (schemas/ews/).

Only the elements inside a SOAP Header or Body are validated, never the envelope itself: the
schema does not describe SOAP. A soap:Fault in the Body is SOAP's own; `assert_valid_ews` checks its
SOAP 1.1 shape and validates the EWS parts of its detail (see there for exactly what).
Compiling the schema takes ~0.1 s, so it is compiled once.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import cast

from lxml import etree

from ens.core.ews import hardened_parser

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "schemas" / "ews"
SOAP_ENVELOPE_NS = "http://schemas.xmlsoap.org/soap/envelope/"
MESSAGES_NS = "http://schemas.microsoft.com/exchange/services/2006/messages"
TYPES_NS = "http://schemas.microsoft.com/exchange/services/2006/types"
# Exchange puts e:ResponseCode and e:Message of a fault's detail here; Microsoft publishes no schema for it.
ERRORS_NS = "http://schemas.microsoft.com/exchange/services/2006/errors"
XSD_NS = "http://www.w3.org/2001/XMLSchema"

_FAULT = f"{{{SOAP_ENVELOPE_NS}}}Fault"
_MESSAGE_XML = f"{{{TYPES_NS}}}MessageXml"


@functools.cache
def messages_schema() -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(SCHEMA_DIR / "messages.xsd")))


@functools.cache
def global_elements() -> frozenset[str]:
    """Clark names of the elements messages.xsd and types.xsd declare at top level.

    Only these can be validated on their own; the schema's other elements exist only inside a type.
    """
    names: set[str] = set()
    for file_name, namespace in (("messages.xsd", MESSAGES_NS), ("types.xsd", TYPES_NS)):
        root = etree.parse(str(SCHEMA_DIR / file_name), hardened_parser()).getroot()
        names.update(f"{{{namespace}}}{e.get('name')}" for e in root.iterchildren(f"{{{XSD_NS}}}element"))
    return frozenset(names)


@functools.cache
def response_codes() -> frozenset[str]:
    """The values of m:ResponseCodeType, which a fault's EWS codes must be one of."""
    root = etree.parse(str(SCHEMA_DIR / "messages.xsd"), hardened_parser()).getroot()
    # An attribute path selects strings; lxml-stubs type xpath() as any XPath result.
    values = cast(
        list[str],
        root.xpath(
            "xs:simpleType[@name='ResponseCodeType']//xs:enumeration/@value", namespaces={"xs": XSD_NS}
        ),
    )
    return frozenset(values)


def soap_parts(envelope_xml: bytes) -> tuple[list[etree._Element], list[etree._Element]]:
    """Return the (header children, body children) of a SOAP 1.1 envelope."""
    envelope = etree.fromstring(envelope_xml, hardened_parser())
    assert envelope.tag == f"{{{SOAP_ENVELOPE_NS}}}Envelope", f"not a SOAP envelope: {envelope.tag}"
    header = envelope.find(f"{{{SOAP_ENVELOPE_NS}}}Header")
    body = envelope.find(f"{{{SOAP_ENVELOPE_NS}}}Body")
    assert body is not None, "SOAP envelope without a Body"
    return (list(header) if header is not None else []), list(body)


def assert_valid_ews(envelope_xml: bytes) -> list[etree._Element]:
    """Assert every EWS element in the envelope's Header and Body is schema-valid; return the Body's children.

    Header and Body children are validated whole against messages.xsd (which imports types.xsd).

    A soap:Fault cannot be validated whole (the EWS schema does not describe SOAP); for one, this checks:

    - its SOAP 1.1 shape: unqualified faultcode, faultstring, optional faultactor, optional detail, in that
      order; faultcode a QName whose prefix is declared; faultstring not empty;
    - a faultcode in the EWS types namespace (``a:ErrorServerBusy``) names an m:ResponseCodeType value;
    - in detail: e:ResponseCode holds an m:ResponseCodeType value; an element the schema declares globally
      (t:Value, t:ServerVersionInfo, ...) is validated; t:MessageXml, which the schema declares only locally
      and with lax content, gets each child the schema declares globally validated (t:Value needs its Name
      attribute) and other children accepted, as that lax wildcard accepts them; any other element of the
      messages or types namespace is reported, since the schema declares no such element on its own.

    Not checked: e:Message and other elements of the errors namespace (Microsoft publishes no schema for
    it), detail elements of any other namespace, and faultactor's value.
    """
    header_children, body_children = soap_parts(envelope_xml)
    assert body_children, "SOAP Body is empty"
    schema = messages_schema()
    for element in [*header_children, *body_children]:
        if element.tag == _FAULT:
            problems = fault_problems(element)
            if problems:
                raise AssertionError(
                    "soap:Fault is not what SOAP 1.1 and the EWS schema allow: " + "; ".join(problems)
                )
            continue
        if not schema.validate(element):
            raise AssertionError(
                f"{element.tag} does not validate against the EWS schema: {schema.error_log.filter_from_errors()}"
            )
    return body_children


def fault_problems(fault: etree._Element) -> list[str]:
    """What is wrong with a soap:Fault, as `assert_valid_ews` describes; empty if nothing."""
    problems: list[str] = []
    children = [child for child in fault if isinstance(child.tag, str)]  # comments have a function as tag
    names = [child.tag for child in children]
    expected = ["faultcode", "faultstring"]
    expected += [name for name in ("faultactor", "detail") if name in names[2:]]
    if names != expected:
        problems.append(
            f"children are {names}, SOAP 1.1 wants faultcode, faultstring, [faultactor], [detail]"
        )
    faultcode = fault.find("faultcode")
    if faultcode is not None:
        problems += _faultcode_problems(faultcode)
    if not (fault.findtext("faultstring") or "").strip():
        problems.append("faultstring is missing or empty")
    detail = fault.find("detail")
    if detail is not None:
        problems += _detail_problems(detail)
    return problems


def _faultcode_problems(faultcode: etree._Element) -> list[str]:
    value = (faultcode.text or "").strip()
    prefix, _, local = value.rpartition(":")
    namespace = faultcode.nsmap.get(prefix or None)
    if not local or namespace is None:
        return [f"faultcode {value!r} is no QName with a declared prefix"]
    if namespace == TYPES_NS and local not in response_codes():
        return [f"faultcode {value!r} is no m:ResponseCodeType value"]
    return []


def _detail_problems(detail: etree._Element) -> list[str]:
    problems: list[str] = []
    for element in detail.iterchildren("*"):
        namespace = etree.QName(element).namespace
        if element.tag == f"{{{ERRORS_NS}}}ResponseCode":
            if (element.text or "").strip() not in response_codes():
                problems.append(f"detail's e:ResponseCode {element.text!r} is no m:ResponseCodeType value")
        elif element.tag == _MESSAGE_XML:
            problems += [
                problem
                for child in element.iterchildren("*")
                if child.tag in global_elements()
                for problem in _schema_problems(child)
            ]
        elif element.tag in global_elements():
            problems += _schema_problems(element)
        elif namespace in (MESSAGES_NS, TYPES_NS):
            problems.append(f"detail holds {element.tag}, which the EWS schema does not declare globally")
    return problems


def _schema_problems(element: etree._Element) -> list[str]:
    schema = messages_schema()
    if schema.validate(element):
        return []
    return [f"{element.tag} in the fault's detail: {schema.error_log.filter_from_errors()}"]

"""Validate what ENS and its tooling produce against Microsoft's EWS schema (schemas/ews/).

Only the elements inside a SOAP Header or Body are validated, never the envelope itself: the
schema does not describe SOAP. Compiling the schema takes ~0.1 s, so it is compiled once.
"""

from __future__ import annotations

import functools
from pathlib import Path

from lxml import etree

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "schemas" / "ews"
SOAP_ENVELOPE_NS = "http://schemas.xmlsoap.org/soap/envelope/"

_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)


@functools.cache
def messages_schema() -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(SCHEMA_DIR / "messages.xsd")))


def soap_parts(envelope_xml: bytes) -> tuple[list[etree._Element], list[etree._Element]]:
    """Return the (header children, body children) of a SOAP 1.1 envelope."""
    envelope = etree.fromstring(envelope_xml, _PARSER)
    assert envelope.tag == f"{{{SOAP_ENVELOPE_NS}}}Envelope", f"not a SOAP envelope: {envelope.tag}"
    header = envelope.find(f"{{{SOAP_ENVELOPE_NS}}}Header")
    body = envelope.find(f"{{{SOAP_ENVELOPE_NS}}}Body")
    assert body is not None, "SOAP envelope without a Body"
    return (list(header) if header is not None else []), list(body)


def assert_valid_ews(envelope_xml: bytes) -> list[etree._Element]:
    """Assert every EWS element in the envelope's Header and Body is schema-valid.

    SOAP faults (soap:Fault) are SOAP's own and skipped, but their EWS detail is not.
    Returns the Body's children for further assertions.
    """
    header_children, body_children = soap_parts(envelope_xml)
    assert body_children, "SOAP Body is empty"
    schema = messages_schema()
    for element in [*header_children, *body_children]:
        if element.tag == f"{{{SOAP_ENVELOPE_NS}}}Fault":
            continue
        if not schema.validate(element):
            raise AssertionError(
                f"{element.tag} does not validate against the EWS schema: {schema.error_log.filter_from_errors()}"
            )
    return body_children

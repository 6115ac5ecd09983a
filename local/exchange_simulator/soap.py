"""SOAP 1.1 envelopes and EWS response scaffolding, built with lxml by namespace."""

from __future__ import annotations

from dataclasses import dataclass

from lxml import etree

# One definition of the EWS namespaces and of the hardened parser: ENS's own (shipped) core.
from ens.core.ews import MESSAGES_NS, TYPES_NS, DoctypeForbidden, parse_untrusted
from ens.core.ews import SOAP_ENVELOPE_NS as SOAP_NS
from ens.core.ews import messages as m
from ens.core.ews import soap as s
from ens.core.ews import types as t

ERRORS_NS = "http://schemas.microsoft.com/exchange/services/2006/errors"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"

NSMAP = {"s": SOAP_NS, "m": MESSAGES_NS, "t": TYPES_NS}


# Worded like .NET's XmlReader meeting a DOCTYPE under DtdProcessing.Prohibit (its default): Exchange
# reports request parse errors as ErrorSchemaValidation carrying the reader's message.
DOCTYPE_FORBIDDEN_TEXT = "For security reasons DTD is prohibited in this XML document."


def parse_request(body: bytes) -> etree._Element:
    """Parse what comes from outside the way ENS does (`ens.core.ews.parse_untrusted`).

    A document type declaration is refused with DoctypeForbidden, in .NET's words.
    Raises etree.XMLSyntaxError for what is not well-formed XML.
    """
    try:
        return parse_untrusted(body)
    except DoctypeForbidden:
        raise DoctypeForbidden(DOCTYPE_FORBIDDEN_TEXT) from None


def sub(parent: etree._Element, tag: str, text: str | None = None, **attrs: str) -> etree._Element:
    child = etree.SubElement(parent, tag, attrs)
    if text is not None:
        child.text = text
    return child


@dataclass(frozen=True)
class ServerVersion:
    """What ServerVersionInfo announces. Exchange 2016 CU23 by default."""

    major: int = 15
    minor: int = 1
    major_build: int = 2507
    minor_build: int = 6
    # Exchange 2016/2019 really announce V2017_07_11, which clients (exchangelib included) map back
    # to the Exchange2016 request version.
    version: str = "V2017_07_11"

    @classmethod
    def named(cls, name: str) -> ServerVersion:
        # The server_version setting only admits these names.
        presets = {
            "Exchange2016": cls(15, 1, 2507, 6),
            "Exchange2019": cls(15, 2, 1118, 7),
        }
        return presets[name]


def envelope(server_version: ServerVersion, body_content: etree._Element) -> bytes:
    env = etree.Element(s("Envelope"), nsmap={"s": SOAP_NS})
    header = sub(env, s("Header"))
    sub(
        header,
        t("ServerVersionInfo"),
        MajorVersion=str(server_version.major),
        MinorVersion=str(server_version.minor),
        MajorBuildNumber=str(server_version.major_build),
        MinorBuildNumber=str(server_version.minor_build),
        Version=server_version.version,
    )
    body = sub(env, s("Body"))
    body.append(body_content)
    return etree.tostring(env, xml_declaration=True, encoding="utf-8")


def response_root(operation: str) -> tuple[etree._Element, etree._Element]:
    """Return (<m:{op}Response>, its <m:ResponseMessages>)."""
    root = etree.Element(m(f"{operation}Response"), nsmap={"m": MESSAGES_NS, "t": TYPES_NS})
    return root, sub(root, m("ResponseMessages"))


def success_message(messages: etree._Element, operation: str) -> etree._Element:
    message = sub(messages, m(f"{operation}ResponseMessage"), ResponseClass="Success")
    sub(message, m("ResponseCode"), "NoError")
    return message


# Response message types whose schema requires a (then empty) container even on error; Exchange sends it.
EMPTY_CONTAINER_ON_ERROR = {
    "GetItem": "Items",
    "CreateItem": "Items",
    "UpdateItem": "Items",
    "MoveItem": "Items",
    "CopyItem": "Items",
    "ArchiveItem": "Items",
    "CreateAttachment": "Attachments",
    "GetAttachment": "Attachments",
}


def error_message(
    messages: etree._Element,
    operation: str,
    code: str,
    text: str,
    message_xml: etree._Element | None = None,
) -> etree._Element:
    message = sub(messages, m(f"{operation}ResponseMessage"), ResponseClass="Error")
    sub(message, m("MessageText"), text)
    sub(message, m("ResponseCode"), code)
    sub(message, m("DescriptiveLinkKey"), "0")
    if message_xml is not None:
        sub(message, m("MessageXml")).append(message_xml)
    if operation in EMPTY_CONTAINER_ON_ERROR:
        sub(message, m(EMPTY_CONTAINER_ON_ERROR[operation]))
    return message


def fault(
    code: str,
    text: str,
    *,
    faultcode_ns: str = TYPES_NS,
    back_off_ms: int | None = None,
) -> etree._Element:
    """A SOAP fault the way Exchange sends it: EWS code in faultcode and in detail/e:ResponseCode.

    Exchange uses the types namespace for faultcode values of EWS errors (a:ErrorServerBusy) and the
    SOAP namespace for protocol-level ones (s:Client).
    """
    fault_elem = etree.Element(s("Fault"), nsmap={"s": SOAP_NS})
    prefix = "a" if faultcode_ns == TYPES_NS else "s"
    faultcode = etree.SubElement(fault_elem, "faultcode", nsmap={prefix: faultcode_ns})
    faultcode.text = f"{prefix}:{code}"
    faultstring = sub(fault_elem, "faultstring", text)
    faultstring.set("{http://www.w3.org/XML/1998/namespace}lang", "en-US")
    detail = sub(fault_elem, "detail")
    code_elem = etree.SubElement(detail, f"{{{ERRORS_NS}}}ResponseCode", nsmap={"e": ERRORS_NS})
    code_elem.text = code
    message_elem = etree.SubElement(detail, f"{{{ERRORS_NS}}}Message", nsmap={"e": ERRORS_NS})
    message_elem.text = text
    if back_off_ms is not None:
        message_xml = etree.SubElement(detail, t("MessageXml"), nsmap={"t": TYPES_NS})
        sub(message_xml, t("Value"), str(back_off_ms), Name="BackOffMilliseconds")
    return fault_elem


def local_name(element: etree._Element) -> str:
    return etree.QName(element).localname

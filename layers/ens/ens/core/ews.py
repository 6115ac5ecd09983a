"""EWS XML namespaces and the one hardened XML parser everything in ENS uses."""

from __future__ import annotations

import threading

from lxml import etree

SOAP_ENVELOPE_NS = "http://schemas.xmlsoap.org/soap/envelope/"
MESSAGES_NS = "http://schemas.microsoft.com/exchange/services/2006/messages"
TYPES_NS = "http://schemas.microsoft.com/exchange/services/2006/types"


def soap(local_name: str) -> str:
    return f"{{{SOAP_ENVELOPE_NS}}}{local_name}"


def messages(local_name: str) -> str:
    return f"{{{MESSAGES_NS}}}{local_name}"


def types(local_name: str) -> str:
    return f"{{{TYPES_NS}}}{local_name}"


_local = threading.local()


def hardened_parser() -> etree.XMLParser:
    """A parser that loads no DTD, expands no entity and never touches the network.

    lxml parsers must not be shared between threads, hence one per thread.
    """
    parser = getattr(_local, "parser", None)
    if parser is None:
        parser = etree.XMLParser(
            resolve_entities=False,
            no_network=True,
            load_dtd=False,
            dtd_validation=False,
            huge_tree=False,
            remove_comments=True,
            remove_pis=True,
        )
        _local.parser = parser
    return parser


class DoctypeForbidden(ValueError):
    """The document declares a document type (a DTD), which nothing ENS reads ever needs."""


def parse_untrusted(body: bytes) -> etree._Element:
    """Parse XML from outside: refuse any document type declaration, parse the rest hardened.

    Raises DoctypeForbidden, or etree.XMLSyntaxError for what is not well-formed.
    """
    if b"<!DOCTYPE" in body:
        # Refused before parsing: no DTD, hence no entity of any kind, ever reaches libxml2.
        raise DoctypeForbidden("a document type declaration is not allowed")
    root = etree.fromstring(body, hardened_parser())
    # A DOCTYPE in another encoding (UTF-16) hides from the byte check; the hardened parser has
    # expanded and fetched nothing, and the document is refused all the same.
    docinfo = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None:  # type: ignore[union-attr]  # lxml-stubs lack DocInfo.doctype
        raise DoctypeForbidden("a document type declaration is not allowed")
    return root

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

"""Hostile XML posted to the EWS endpoint: a DOCTYPE is refused with a SOAP fault, nothing is expanded or
fetched, and the simulator goes on serving."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from exchange_simulator import ExchangeSimulator
from support.ews_schema import SOAP_ENVELOPE_NS, assert_valid_ews
from support.simulator_fixtures import DEMO_MAILBOX, DEMO_PASSWORD, DEMO_SERVICE_ACCOUNT

pytestmark = pytest.mark.integration

T = "{http://schemas.microsoft.com/exchange/services/2006/types}"
NAMESPACES = (
    'xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"'
    ' xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages"'
    ' xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types"'
)


def get_inbox(doctype: str = "", mailbox: str = DEMO_MAILBOX) -> str:
    """A GetFolder request; the impersonated address is echoed in ErrorNonExistentMailbox, so an entity used
    there would carry whatever it expanded to back to the client."""
    return (
        f'<?xml version="1.0" encoding="utf-8"?>{doctype}<s:Envelope {NAMESPACES}><s:Header>'
        '<t:RequestServerVersion Version="Exchange2016"/><t:ExchangeImpersonation><t:ConnectingSID>'
        f"<t:PrimarySmtpAddress>{mailbox}</t:PrimarySmtpAddress></t:ConnectingSID></t:ExchangeImpersonation>"
        "</s:Header><s:Body><m:GetFolder><m:FolderShape><t:BaseShape>Default</t:BaseShape></m:FolderShape>"
        '<m:FolderIds><t:DistinguishedFolderId Id="inbox"/></m:FolderIds></m:GetFolder></s:Body></s:Envelope>'
    )


def post(sim: ExchangeSimulator, body: bytes) -> requests.Response:
    return requests.post(
        sim.ews_url,
        data=body,
        auth=(DEMO_SERVICE_ACCOUNT, DEMO_PASSWORD),
        headers={"Content-Type": "text/xml; charset=utf-8"},
        timeout=10,
    )


def assert_refused_as_dtd(response: requests.Response) -> None:
    assert response.status_code == 500
    (fault,) = assert_valid_ews(response.content)
    assert fault.tag == f"{{{SOAP_ENVELOPE_NS}}}Fault"
    assert fault.findtext("faultcode") == "a:ErrorSchemaValidation"
    assert "DTD is prohibited" in (fault.findtext("faultstring") or "")


def assert_still_serving(sim: ExchangeSimulator) -> None:
    response = post(sim, get_inbox().encode())

    assert response.status_code == 200
    (body,) = assert_valid_ews(response.content)
    assert body.findtext(f".//{T}DisplayName") == "Inbox"


@pytest.fixture
def secret_file(tmp_path: Path) -> tuple[Path, str]:
    canary = f"ens-xxe-canary-{uuid.uuid4().hex}"
    path = tmp_path / "secret.txt"
    path.write_text(canary, encoding="utf-8")
    return path, canary


@pytest.fixture
def fetch_trap() -> Iterator[tuple[str, socket.socket]]:
    """A loopback port nobody else uses: a parser that fetched an external resource would connect here.

    The connection would complete during the request, before the answer, so a non-blocking accept() after
    the answer says whether one was made; nothing needs to be waited for.
    """
    with socket.create_server(("127.0.0.1", 0)) as server:
        server.setblocking(False)
        yield f"http://127.0.0.1:{server.getsockname()[1]}", server


def assert_nothing_connected(server: socket.socket) -> None:
    try:
        connection, peer = server.accept()
    except BlockingIOError:
        return
    connection.close()
    raise AssertionError(f"something fetched from the trap ({peer}) while the request was parsed")


@pytest.mark.parametrize("encoding", ["utf-8", "utf-16"])
def test_an_external_entity_to_a_local_file_is_refused_and_not_read(
    exchange_simulator: ExchangeSimulator, secret_file: tuple[Path, str], encoding: str
):
    path, canary = secret_file
    doctype = f'<!DOCTYPE s:Envelope [<!ENTITY xxe SYSTEM "{path.as_uri()}">]>'
    # In UTF-16 the DOCTYPE hides from a byte search; it must be refused all the same.
    body = get_inbox(doctype, mailbox="&xxe;").replace("utf-8", encoding).encode(encoding)

    response = post(exchange_simulator, body)

    assert canary not in response.content.decode("utf-8")
    assert_refused_as_dtd(response)
    assert exchange_simulator.requests[-1].response_code == "ErrorSchemaValidation"
    assert_still_serving(exchange_simulator)


@pytest.mark.parametrize(
    "doctype",
    [
        '<!DOCTYPE s:Envelope [<!ENTITY xxe SYSTEM "{url}/entity">]>',
        # The out-of-band classic: a parameter entity pulls in a remote DTD that defines &xxe;.
        '<!DOCTYPE s:Envelope [<!ENTITY % remote SYSTEM "{url}/remote.dtd"> %remote;]>',
        '<!DOCTYPE s:Envelope SYSTEM "{url}/external-subset.dtd">',
    ],
    ids=["general-entity", "parameter-entity", "external-subset"],
)
def test_an_external_entity_to_a_url_is_refused_and_not_fetched(
    exchange_simulator: ExchangeSimulator, fetch_trap: tuple[str, socket.socket], doctype: str
):
    url, server = fetch_trap
    mailbox = "&xxe;" if "external-subset" not in doctype else DEMO_MAILBOX

    response = post(exchange_simulator, get_inbox(doctype.format(url=url), mailbox=mailbox).encode())

    assert_nothing_connected(server)
    assert_refused_as_dtd(response)
    assert_still_serving(exchange_simulator)


def test_an_external_entity_to_the_discard_port_is_refused(exchange_simulator: ExchangeSimulator):
    doctype = '<!DOCTYPE s:Envelope [<!ENTITY xxe SYSTEM "http://127.0.0.1:9/ens">]>'

    response = post(exchange_simulator, get_inbox(doctype, mailbox="&xxe;").encode())

    assert_refused_as_dtd(response)
    assert_still_serving(exchange_simulator)


def test_billion_laughs_is_refused_without_expanding(exchange_simulator: ExchangeSimulator):
    levels = ['<!ENTITY lol0 "lol">'] + [f'<!ENTITY lol{n} "{f"&lol{n - 1};" * 10}">' for n in range(1, 10)]
    doctype = f"<!DOCTYPE s:Envelope [{''.join(levels)}]>"

    response = post(exchange_simulator, get_inbox(doctype, mailbox="&lol9;").encode())

    assert b"lollol" not in response.content
    assert_refused_as_dtd(response)
    assert_still_serving(exchange_simulator)

"""TLS to Exchange: an HTTPS front (a trustme certificate) forwarding to the simulator. The adapter
trusts the server's internal CA only when the servers secret carries it in `ca_bundle`."""

from __future__ import annotations

import http.client
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import pytest
import trustme
from exchangelib.protocol import close_connections

from ens.adapters.exchange import ExchangeMailSource
from ens.core.exchange_servers import ExchangeDirectory
from ens.errors import DependencyUnavailable
from exchange_simulator import ExchangeSimulator
from support.consumer_flow import servers_secret, simulator_server
from support.simulator_fixtures import DEMO_MAILBOX

pytestmark = pytest.mark.integration

_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "server", "date"}


@dataclass
class HttpsFront:
    url: str
    ca: trustme.CA
    forwarded: list[str]


@pytest.fixture
def https_front(exchange_simulator: ExchangeSimulator) -> Iterator[HttpsFront]:
    """HTTPS on 127.0.0.1 with a certificate from a fresh CA, each request forwarded to the simulator."""
    ca = trustme.CA(organization_name="Contoso internal CA")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    backend = urlsplit(exchange_simulator.ews_url)
    forwarded: list[str] = []

    class Forward(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP | {"host"}}
            upstream = http.client.HTTPConnection(backend.hostname or "", backend.port, timeout=10)
            try:
                upstream.request("POST", self.path, body=body, headers=headers)
                answer = upstream.getresponse()
                content = answer.read()
            finally:
                upstream.close()
            forwarded.append(self.path)
            self.send_response(answer.status)
            for name, value in answer.getheaders():
                if name.lower() not in _HOP_BY_HOP:
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(content)))
            self.end_headers()
            self.wfile.write(content)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Forward)
    server.daemon_threads = True
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield HttpsFront(f"https://127.0.0.1:{server.server_address[1]}{backend.path}", ca, forwarded)
    finally:
        close_connections()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def source_for(front: HttpsFront, ca_bundle: str | None) -> ExchangeMailSource:
    # Basic: NTLM authenticates a connection, and the front opens a new one to the simulator per request.
    server = simulator_server("tls", front.url, auth_type="Basic", default=True, ca_bundle=ca_bundle)
    return ExchangeMailSource(
        ExchangeDirectory.from_json(servers_secret(server)), max_concurrency_per_server=2, timeout_seconds=5
    )


def test_the_adapter_trusts_the_ca_the_servers_secret_carries(
    exchange_simulator: ExchangeSimulator, https_front: HttpsFront
) -> None:
    message = exchange_simulator.deliver(DEMO_MAILBOX, subject="Over TLS")
    ref = (exchange_simulator.item_id(DEMO_MAILBOX, message), exchange_simulator.store.change_key(message))

    found = source_for(https_front, https_front.ca.cert_pem.bytes().decode()).fetch(DEMO_MAILBOX, [ref])

    mail = found[ref[0]]
    assert mail is not None
    assert mail.subject == "Over TLS"
    assert https_front.forwarded


def test_the_adapter_refuses_a_server_whose_ca_it_was_not_given(
    exchange_simulator: ExchangeSimulator, https_front: HttpsFront
) -> None:
    before = exchange_simulator.last_request_seq

    with pytest.raises(DependencyUnavailable) as raised:
        source_for(https_front, None).unread_count(DEMO_MAILBOX, "AAMkAGI2")

    assert "CERTIFICATE_VERIFY_FAILED" in str(raised.value)
    assert https_front.forwarded == []
    assert exchange_simulator.last_request_seq == before

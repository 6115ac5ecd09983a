"""TLS to Exchange: an HTTPS front (a trustme certificate) forwarding to the simulator. The adapter
trusts the server's internal CA only when the servers secret carries it in `ca_bundle`."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from exchangelib.protocol import close_connections

from ens.adapters.exchange import ExchangeMailSource
from ens.core.exchange_servers import ExchangeDirectory
from ens.errors import DependencyUnavailable
from exchange_simulator import ExchangeSimulator
from support.consumer_flow import servers_secret, simulator_server
from support.https_front import HttpsFront, https_front
from support.simulator_fixtures import DEMO_MAILBOX

pytestmark = pytest.mark.integration

_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "server", "date"}


@pytest.fixture
def front(exchange_simulator: ExchangeSimulator) -> Iterator[HttpsFront]:
    with https_front(exchange_simulator.ews_url) as started:
        yield started
    close_connections()


def source_for(front: HttpsFront, ca_bundle: str | None) -> ExchangeMailSource:
    # Basic: NTLM authenticates a connection, and the front opens a new one to the simulator per request.
    server = simulator_server("tls", front.url, auth_type="Basic", default=True, ca_bundle=ca_bundle)
    return ExchangeMailSource(
        ExchangeDirectory.from_json(servers_secret(server)), max_concurrency_per_server=2, timeout_seconds=5
    )


def test_the_adapter_trusts_the_ca_the_servers_secret_carries(
    exchange_simulator: ExchangeSimulator, front: HttpsFront
) -> None:
    message = exchange_simulator.deliver(DEMO_MAILBOX, subject="Over TLS")
    ref = (exchange_simulator.item_id(DEMO_MAILBOX, message), exchange_simulator.store.change_key(message))

    found = source_for(front, front.ca.cert_pem.bytes().decode()).fetch(DEMO_MAILBOX, [ref])

    mail = found[ref[0]]
    assert mail is not None
    assert mail.subject == "Over TLS"
    assert front.forwarded


def test_the_adapter_refuses_a_server_whose_ca_it_was_not_given(
    exchange_simulator: ExchangeSimulator, front: HttpsFront
) -> None:
    before = exchange_simulator.last_request_seq

    with pytest.raises(DependencyUnavailable) as raised:
        source_for(front, None).unread_count(DEMO_MAILBOX, "AAMkAGI2")

    assert "CERTIFICATE_VERIFY_FAILED" in str(raised.value)
    assert front.forwarded == []
    assert exchange_simulator.last_request_seq == before

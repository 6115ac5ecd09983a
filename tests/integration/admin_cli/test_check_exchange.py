"""check-exchange against the Exchange simulator: each failure said in plain words, with its kind."""

from __future__ import annotations

import socket
from collections.abc import Callable

import pytest

from exchange_simulator import ExchangeSimulator
from support.consumer_flow import simulator_server
from support.simulator_fixtures import DEMO_MAILBOX, DEMO_NO_IMPERSONATION_ACCOUNT

from .conftest import AdminTarget, HttpsFront

pytestmark = pytest.mark.integration


def _failed_step(result: dict) -> dict:
    return next(step for step in result["steps"] if not step["ok"])


def test_check_exchange_reads_the_unread_count_when_everything_works(
    admin: AdminTarget, exchange_simulator: ExchangeSimulator
) -> None:
    exchange_simulator.deliver(DEMO_MAILBOX, subject="Unread one")
    admin.set_servers(simulator_server("hq", exchange_simulator.ews_url, default=True))

    run = admin.run("check-exchange", DEMO_MAILBOX)

    assert run.code == 0, run.out + run.err
    assert "hq (the default server)" in run.out
    assert "tls           skipped: the EWS URL is plain http" in run.out
    assert f"impersonated {DEMO_MAILBOX}: 1 unread in the inbox" in run.out
    assert run.out.rstrip().endswith("result: ok")


def test_check_exchange_shows_the_tls_details_when_the_ca_bundle_trusts_the_server(
    admin: AdminTarget,
    exchange_simulator: ExchangeSimulator,
    https_front_factory: Callable[[str], HttpsFront],
) -> None:
    front = https_front_factory(exchange_simulator.ews_url)
    # Basic: NTLM authenticates a connection, and the front opens a new one to the simulator per request.
    admin.set_servers(
        simulator_server(
            "tls", front.url, auth_type="Basic", default=True, ca_bundle=front.ca.cert_pem.bytes().decode()
        )
    )

    run = admin.run("--json", "check-exchange", DEMO_MAILBOX)

    result = run.json()
    assert run.code == 0, run.out
    tls = next(step for step in result["steps"] if step["name"] == "tls")
    assert tls["version"] in {"TLSv1.2", "TLSv1.3"}
    assert tls["cipher"]
    assert "Contoso internal CA" in tls["issuer"]
    assert tls["not_after"]
    assert tls["verified_against"] == "the server's ca_bundle"
    assert result["unread"] == 0


def test_check_exchange_says_dns_when_the_host_does_not_resolve(admin: AdminTarget) -> None:
    admin.set_servers(
        simulator_server("lost", "https://ews.does-not-exist.invalid/EWS/Exchange.asmx", default=True)
    )

    run = admin.run("--json", "check-exchange", DEMO_MAILBOX)

    assert run.code == 1
    assert run.json()["failure"] == "dns"
    assert "ews.does-not-exist.invalid does not resolve" in _failed_step(run.json())["detail"]


def test_check_exchange_says_refused_when_nothing_listens_on_the_port(admin: AdminTarget) -> None:
    with socket.socket() as unused:  # a port bound but not listening refuses connections
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
        admin.set_servers(
            simulator_server("down", f"http://127.0.0.1:{port}/EWS/Exchange.asmx", default=True)
        )

        run = admin.run("check-exchange", DEMO_MAILBOX)

    assert run.code == 1
    assert f"connection refused on 127.0.0.1:{port}" in run.out
    assert "result: FAILED (refused)" in run.out


def test_check_exchange_says_tls_when_the_certificate_is_not_in_the_bundle(
    admin: AdminTarget,
    exchange_simulator: ExchangeSimulator,
    https_front_factory: Callable[[str], HttpsFront],
) -> None:
    front = https_front_factory(exchange_simulator.ews_url)
    admin.set_servers(simulator_server("tls", front.url, auth_type="Basic", default=True))  # no ca_bundle

    run = admin.run("--json", "check-exchange", DEMO_MAILBOX)

    assert run.code == 1
    assert run.json()["failure"] == "tls"
    detail = _failed_step(run.json())["detail"]
    assert "not trusted against the system CAs" in detail
    assert "put the issuing CA in the server's ca_bundle" in detail


def test_check_exchange_says_401_when_the_password_is_wrong(
    admin: AdminTarget, exchange_simulator: ExchangeSimulator
) -> None:
    admin.set_servers(simulator_server("hq", exchange_simulator.ews_url, default=True, password="wrong"))

    run = admin.run("--json", "check-exchange", DEMO_MAILBOX)

    assert run.code == 1
    assert run.json()["failure"] == "unauthorized"
    assert "HTTP 401" in _failed_step(run.json())["detail"]


def test_check_exchange_says_impersonation_denied_for_the_read_only_account(
    admin: AdminTarget, exchange_simulator: ExchangeSimulator
) -> None:
    admin.set_servers(
        simulator_server(
            "hq", exchange_simulator.ews_url, default=True, username=DEMO_NO_IMPERSONATION_ACCOUNT
        )
    )

    run = admin.run("--json", "check-exchange", DEMO_MAILBOX)

    assert run.code == 1
    assert run.json()["failure"] == "impersonation_denied"
    assert "ApplicationImpersonation" in _failed_step(run.json())["detail"]


def test_check_exchange_says_mailbox_unknown_for_an_address_exchange_does_not_have(
    admin: AdminTarget, exchange_simulator: ExchangeSimulator
) -> None:
    admin.set_servers(simulator_server("hq", exchange_simulator.ews_url, default=True))

    run = admin.run("--json", "check-exchange", "nobody@contoso.example")

    assert run.code == 1
    assert run.json()["failure"] == "mailbox_unknown"


def test_check_exchange_says_no_server_when_the_secret_routes_the_mailbox_nowhere(
    admin: AdminTarget, exchange_simulator: ExchangeSimulator
) -> None:
    admin.set_servers(simulator_server("hq", exchange_simulator.ews_url, domains=["fabrikam.example"]))

    run = admin.run("--json", "check-exchange", DEMO_MAILBOX)

    assert run.code == 1
    assert run.json()["failure"] == "no_server"
    assert run.json()["steps"][0]["name"] == "server"


def test_check_exchange_exits_2_when_the_servers_secret_does_not_exist(admin: AdminTarget) -> None:
    run = admin.run("check-exchange", DEMO_MAILBOX)

    assert run.code == 2
    assert "cannot read the secret" in run.err
    assert f"{admin.servers_secret_name}: ResourceNotFoundException" in run.err

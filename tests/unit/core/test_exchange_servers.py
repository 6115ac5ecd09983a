"""Routing mailboxes to Exchange servers from the servers secret."""

from __future__ import annotations

import json

import pytest

from ens.core.exchange_servers import AuthType, ExchangeDirectory, ExchangeVersion, ServersConfigError

pytestmark = pytest.mark.unit


def _server(name: str, **fields: object) -> dict[str, object]:
    return {
        "name": name,
        "ews_url": f"https://{name}.contoso.example/EWS/Exchange.asmx",
        "username": f"CONTOSO\\svc-{name}",
        "password": "not-a-real-password",
        **fields,
    }


def _directory(*servers: dict[str, object]) -> ExchangeDirectory:
    return ExchangeDirectory.from_json(json.dumps({"servers": list(servers)}))


def test_an_explicit_mailbox_wins_over_its_domain_and_the_default() -> None:
    directory = _directory(
        _server("ex1", domains=["contoso.example"], default=True),
        _server("ex2", mailboxes=["Moved@Contoso.example"]),
    )

    server = directory.server_for("moved@contoso.example")

    assert server is not None
    assert server.name == "ex2"


def test_a_mailbox_is_routed_by_its_domain_case_insensitively() -> None:
    directory = _directory(_server("ex1", domains=["Fabrikam.example"]), _server("ex2", default=True))

    server = directory.server_for("Someone@FABRIKAM.example")

    assert server is not None
    assert server.name == "ex1"


def test_an_unlisted_mailbox_goes_to_the_default_server() -> None:
    directory = _directory(_server("ex1", domains=["fabrikam.example"]), _server("ex2", default=True))

    server = directory.server_for("anyone@elsewhere.example")

    assert server is not None
    assert server.name == "ex2"


def test_an_unlisted_mailbox_has_no_server_without_a_default() -> None:
    directory = _directory(_server("ex1", domains=["fabrikam.example"]))

    assert directory.server_for("anyone@elsewhere.example") is None


def test_defaults_are_ntlm_and_exchange_2016_with_preview() -> None:
    server = _directory(_server("ex1", default=True)).servers[0]

    assert server.auth_type is AuthType.NTLM
    assert server.version is ExchangeVersion.EXCHANGE_2016
    assert server.version.supports_preview
    assert not ExchangeVersion.EXCHANGE_2010_SP2.supports_preview
    assert server.allow_legacy_tls is False


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ("not json", "not JSON"),
        (json.dumps({"servers": []}), "servers"),
        (json.dumps({"servers": [_server("ex1", auth_type="Kerberos")]}), "servers.0.auth_type"),
        (json.dumps({"servers": [_server("ex1", ews_url="not a url")]}), "servers.0.ews_url"),
        (json.dumps({"servers": [_server("ex1", extra=1)]}), "servers.0.extra"),
        (json.dumps({"servers": [_server("ex1", default=True), _server("ex2", default=True)]}), "one server"),
        (json.dumps({"servers": [_server("ex1"), _server("ex1")]}), "unique"),
        (
            json.dumps(
                {"servers": [_server("ex1", domains=["a.example"]), _server("ex2", domains=["A.example"])]}
            ),
            "a.example",
        ),
    ],
)
def test_an_invalid_secret_is_refused_naming_the_fault(document: str, expected: str) -> None:
    with pytest.raises(ServersConfigError, match=expected) as raised:
        ExchangeDirectory.from_json(document)

    assert "not-a-real-password" not in str(raised.value)

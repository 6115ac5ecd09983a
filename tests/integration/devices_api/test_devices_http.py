"""The devices API through the local stack's HTTP front, configured as local/config/local.toml does,
with a demo token from `python -m ens_local.tokens` (the registry is a fake)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import requests

from ens_local.config import DEFAULT_CONFIG, load_settings
from ens_local.stack import LocalStack
from ens_local.tokens import main as tokens_main
from ens_local.tokens import mint
from support.fake_registry import FakeRegistry

pytestmark = pytest.mark.integration

REGISTRATION = {"mailbox": "alice@contoso.example", "push_token": "apns-token-0001"}


@pytest.fixture
def api(local_stack_factory: Callable[..., LocalStack]) -> tuple[str, FakeRegistry, Any]:
    local = load_settings(DEFAULT_CONFIG)
    jwt_keys = {name: value for name, value in local.secrets.items() if name == "ens/jwt-keys"}
    stack = local_stack_factory(
        parameters={k: v for k, v in local.parameters.items() if k.startswith("Jwt")},
        secrets={**jwt_keys, "ens/exchange-servers": '{"servers": []}'},
        environment={"WEBHOOK_BASE_URL": "${api_url}/ews/notifications/"},
        start_pollers=False,
    )
    registry = FakeRegistry()
    stack.functions["DevicesFunction"].module.build_registry = lambda settings, servers: registry
    return stack.api_url, registry, local


def test_a_demo_token_from_the_settings_file_registers_a_device_over_http(
    api: tuple[str, FakeRegistry, Any],
) -> None:
    url, registry, settings = api
    token = mint(settings, "alice@contoso.example")

    answer = requests.put(
        f"{url}/v1/devices/alice-iphone",
        json=REGISTRATION,
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )

    assert answer.status_code == 201
    assert answer.json()["mailbox"] == "alice@contoso.example"
    assert registry.calls[0][0] == "register"


def test_an_admin_demo_token_may_register_for_another_mailbox(api: tuple[str, FakeRegistry, Any]) -> None:
    url, _, settings = api
    token = mint(settings, "helpdesk@contoso.example", admin=True)

    answer = requests.put(
        f"{url}/dev/v1/devices/alice-iphone",
        json=REGISTRATION,
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )

    assert answer.status_code == 201


def test_other_methods_and_paths_under_v1_get_problem_documents_not_gateway_errors(
    api: tuple[str, FakeRegistry, Any],
) -> None:
    url, _, settings = api
    headers = {"Authorization": f"Bearer {mint(settings, 'alice@contoso.example')}"}

    patch = requests.patch(f"{url}/v1/devices/alice-iphone", json=REGISTRATION, headers=headers, timeout=10)
    elsewhere = requests.get(f"{url}/v1/nothing/here", headers=headers, timeout=10)
    anonymous = requests.get(f"{url}/v1/devices/alice-iphone", timeout=10)

    assert (patch.status_code, patch.headers["Content-Type"]) == (405, "application/problem+json")
    assert (elsewhere.status_code, elsewhere.headers["Content-Type"]) == (404, "application/problem+json")
    assert (anonymous.status_code, anonymous.headers["WWW-Authenticate"]) == (401, "Bearer")


def test_the_token_cli_prints_a_token_for_the_given_mailbox(capsys: pytest.CaptureFixture[str]) -> None:
    import jwt

    assert tokens_main(["--sub", "bob@contoso.example", "--admin"]) == 0

    claims = jwt.decode(capsys.readouterr().out.strip(), options={"verify_signature": False})
    assert (claims["sub"], claims["scope"]) == ("bob@contoso.example", "ens:admin")

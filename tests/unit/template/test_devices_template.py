"""template.yaml's devices API: its own API, its routes, and only the permissions the registry uses."""

from __future__ import annotations

from typing import Any

import pytest

from ens_local.template import Template

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def template() -> Template:
    return Template.load()


def _actions_by_resource(template: Template) -> dict[str, set[str]]:
    granted: dict[str, set[str]] = {}
    for policy in template.properties("DevicesFunction")["Policies"]:
        # The KMS statement is an !If on HasKmsKey: tests/unit/template/test_production.py covers it.
        for statement in (entry for entry in policy.get("Statement", []) if "Fn::If" not in entry):
            resources = statement["Resource"]
            for resource in resources if isinstance(resources, list) else [resources]:
                granted.setdefault(_name(resource), set()).update(statement["Action"])
    return granted


def _name(resource: Any) -> str:
    if "Fn::GetAtt" in resource:
        return str(resource["Fn::GetAtt"][0])
    if "Ref" in resource:
        return str(resource["Ref"]).removesuffix("Arn")
    text = str(resource["Fn::Sub"])
    for marker, name in (
        ("${DevicesTable.Arn}/index/ByDeviceId", "DevicesTable/ByDeviceId"),
        ("${DecisionsTable.Arn}/index/ByDecidedAt", "DecisionsTable/ByDecidedAt"),
    ):
        if marker in text:
            return name
    raise AssertionError(f"unexpected resource {text}")


def test_the_devices_function_may_do_only_what_the_registry_needs_per_table(template: Template) -> None:
    assert _actions_by_resource(template) == {
        "DevicesTable": {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:DeleteItem", "dynamodb:Query"},
        "DevicesTable/ByDeviceId": {
            "dynamodb:GetItem",
            "dynamodb:PutItem",
            "dynamodb:DeleteItem",
            "dynamodb:Query",
        },
        "MailboxesTable": {
            "dynamodb:GetItem",
            "dynamodb:PutItem",
            "dynamodb:UpdateItem",
            "dynamodb:DeleteItem",
        },
        "SubscriptionsTable": {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"},
        "DecisionsTable/ByDecidedAt": {"dynamodb:Query"},
        "ExchangeServersSecret": {"secretsmanager:GetSecretValue"},
        "JwtKeySecret": {"secretsmanager:GetSecretValue"},
    }


def test_the_devices_api_is_its_own_rest_api_with_four_routes_and_a_catch_all(template: Template) -> None:
    (devices,) = [spec for spec in template.functions() if spec.logical_id == "DevicesFunction"]

    assert sorted((route.method, route.path, route.api) for route in devices.routes) == [
        ("ANY", "/v1/{proxy+}", "DevicesApi"),
        ("DELETE", "/v1/devices/{deviceId}", "DevicesApi"),
        ("GET", "/v1/devices/{deviceId}", "DevicesApi"),
        ("GET", "/v1/devices/{deviceId}/decisions", "DevicesApi"),
        ("PUT", "/v1/devices/{deviceId}", "DevicesApi"),
    ]
    assert "BinaryMediaTypes" not in template.properties("DevicesApi")


def test_the_devices_function_gets_every_setting_devices_settings_reads(template: Template) -> None:
    environment = template.properties("DevicesFunction")["Environment"]["Variables"]
    shared = template.globals_function["Environment"]["Variables"]
    required = {
        "DEVICES_TABLE",
        "SUBSCRIPTIONS_TABLE",
        "MAILBOXES_TABLE",
        "DECISIONS_TABLE",
        "EXCHANGE_SERVERS_SECRET",
        "WEBHOOK_BASE_URL",
        "STATUS_FREQUENCY_MINUTES",
        "SUBSCRIPTION_FOLDERS",
        "JWT_ISSUER",
        "JWT_AUDIENCE",
        "JWT_ALGORITHMS",
        "JWT_KEY_SECRET",
        "JWT_MAILBOX_CLAIM",
        "JWT_ADMIN_SCOPE",
    }

    assert required <= set(environment) | set(shared)


def test_the_devices_settings_refuse_an_unknown_jwt_algorithm_naming_it() -> None:
    from ens.settings import DevicesSettings, SettingsError

    environ = dict.fromkeys(
        (
            "DEVICES_TABLE",
            "SUBSCRIPTIONS_TABLE",
            "MAILBOXES_TABLE",
            "DECISIONS_TABLE",
            "EXCHANGE_SERVERS_SECRET",
            "WEBHOOK_BASE_URL",
            "JWT_ISSUER",
            "JWT_AUDIENCE",
            "JWT_KEY_SECRET",
        ),
        "x",
    )

    with pytest.raises(SettingsError, match="NONE"):
        DevicesSettings.from_environ({**environ, "JWT_ALGORITHMS": "RS256,none"})
    settings = DevicesSettings.from_environ({**environ, "JWT_ALGORITHMS": "hs256, es256"})
    assert settings.jwt_algorithms == frozenset({"HS256", "ES256"})
    assert settings.webhook_base_url == "x/"
    assert (settings.status_frequency_minutes, settings.subscription_folders) == (15, ("inbox",))


def test_the_devices_api_url_is_an_output(template: Template) -> None:
    from cfnlint.decode import cfn_yaml

    outputs = cfn_yaml.load(str(template.path))["Outputs"]

    assert "DevicesApiUrl" in outputs

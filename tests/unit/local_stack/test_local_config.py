"""The settings file: what it accepts, and how it names what it refuses."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from ens_local.config import (
    DEFAULT_CONFIG,
    PLACEHOLDERS,
    ConfigError,
    PushSinkSettings,
    StackSettings,
    fill_placeholders,
    load_settings,
)
from ens_local.stack import with_overrides
from ens_local.template import DEFAULT_TEMPLATE

pytestmark = pytest.mark.unit

DOCS = Path(__file__).resolve().parents[3] / "docs" / "local-stack.md"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "settings.toml"
    path.write_text(f'[stack]\ntemplate = "{DEFAULT_TEMPLATE}"\n{text}', encoding="utf-8")
    return path


def test_the_checked_in_default_loads_with_the_template_parameters_it_overrides() -> None:
    settings = load_settings(DEFAULT_CONFIG)

    assert settings.stack.template == DEFAULT_TEMPLATE
    assert settings.stack.host == "127.0.0.1"
    assert settings.exchange_simulator.enabled is True
    assert settings.push_sink.enabled is True
    assert settings.environment["CNS_URL"] == "${push_sink_url}"
    assert settings.environment["CNS_CA_BUNDLE"] == "${push_sink_ca_bundle}"


def test_the_checked_in_default_sets_every_stack_key_explicitly() -> None:
    text = DEFAULT_CONFIG.read_text(encoding="utf-8")

    for name in StackSettings.model_fields:
        assert re.search(rf"^{name} = ", text, re.MULTILINE), name


def test_every_stack_key_and_section_is_documented() -> None:
    documentation = DOCS.read_text(encoding="utf-8")

    for name in [*StackSettings.model_fields, "enabled", "port", "load_demo", *PushSinkSettings.model_fields]:
        assert f"`{name}`" in documentation, name
    for section in (
        "[stack]",
        "[parameters]",
        "[environment]",
        "[secrets]",
        "[exchange_simulator]",
        "[push_sink]",
    ):
        assert section in documentation, section
    for placeholder in PLACEHOLDERS:
        assert f"`${{{placeholder}}}`" in documentation, placeholder


def test_an_empty_file_gives_the_documented_defaults(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, ""))

    assert settings.stack.api_port == 3000
    assert settings.stack.aws_port == 4566
    assert settings.parameters == settings.environment == settings.secrets == {}
    assert settings.exchange_simulator.enabled is False
    assert settings.push_sink.enabled is False


def test_template_paths_are_relative_to_the_settings_file(tmp_path: Path) -> None:
    (tmp_path / "conf").mkdir()
    path = tmp_path / "conf" / "s.toml"
    relative = Path("..") / DEFAULT_TEMPLATE.relative_to(DEFAULT_TEMPLATE.anchor)
    path.write_text(f'[stack]\ntemplate = "{"../" * len(tmp_path.parts)}{relative}"\n', encoding="utf-8")

    assert load_settings(path).stack.template == DEFAULT_TEMPLATE


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("[stak]\n", ["unknown key stak"]),
        ("api_prot = 3000\n", ["unknown key stack.api_prot"]),
        ('api_port = "3000"\n', ["stack.api_port: Input should be a valid integer, got str"]),
        ("api_port = true\n", ["stack.api_port: Input should be a valid integer, got bool"]),
        ("aws_port = 70000\n", ["stack.aws_port: Input should be less than or equal to 65535"]),
        ("aws_port = -1\n", ["stack.aws_port: Input should be greater than or equal to 0"]),
        ("poll_wait_seconds = 21\n", ["stack.poll_wait_seconds: Input should be less than or equal to 20"]),
        ("stack_name = '1st'\n", ["stack.stack_name: String should match pattern"]),
        (
            "[parameters]\nStaeg = 'dev'\n",
            ["parameters.Staeg: template.yaml has no such parameter", "'Stage'"],
        ),
        ("[parameters]\nLogLevel = 'LOUD'\n", ["parameters.LogLevel: 'LOUD' is not one of", "'DEBUG'"]),
        (
            "[parameters]\nStage = 'Has Spaces'\n",
            ["parameters.Stage: 'Has Spaces' does not match", "pattern"],
        ),
        (
            "[parameters]\nMaxNotificationBytes = 10\n",
            ["parameters.MaxNotificationBytes: 10 is below the template's MinValue"],
        ),
        (
            "[parameters]\nNotificationsMaxReceiveCount = 'many'\n",
            ["parameters.NotificationsMaxReceiveCount: must be a number, got 'many'"],
        ),
        (
            "[environment]\nLIST = [1, 2]\n",
            ["environment.LIST: must be a string, number or boolean, got list"],
        ),
        ("[environment]\nURL = '${nowhere}'\n", ["environment.URL: unknown placeholder ${nowhere}"]),
        ("[secrets]\nsecret = 3\n", ["secrets.secret: must be a string or a table, got int"]),
        (
            "[exchange_simulator]\nenabled = 'yes'\n",
            ["exchange_simulator.enabled: Input should be a valid boolean"],
        ),
        (
            "[exchange_simulator]\nport = 65536\n",
            ["exchange_simulator.port: Input should be less than or equal"],
        ),
        (
            "[exchange_simulator]\nsubscribe_mailboxes = ['alice']\n",
            ["exchange_simulator.subscribe_mailboxes[0]: must be an e-mail address"],
        ),
        (
            "[exchange_simulator]\nsubscribe_mailboxes = 'alice@contoso.example'\n",
            ["exchange_simulator.subscribe_mailboxes: must be an array, got str"],
        ),
        ("[push_sink]\ntls = 'yes'\n", ["push_sink.tls: Input should be a valid boolean, got str"]),
        ("[push_sink]\nport = 70000\n", ["push_sink.port: Input should be less than or equal to 65535"]),
        ("[push_sink]\ntoken = 'x'\n", ["unknown key push_sink.token"]),
        ("[push_sink]\ntoken_secret = ''\n", ["push_sink.token_secret: String should have at least 1"]),
        ("environment = 'x'\n", ["unknown key stack.environment"]),
        (
            "[[demo_subscriptions]]\nmailbox = 'bob@contoso.example'\n",
            ["demo_subscriptions[0].token: Field required"],
        ),
        (
            "[[demo_subscriptions]]\nmailbox = 'bob@contoso.example'\ntoken = 'short'\nsubscription_id = 's'\n",
            ["demo_subscriptions[0].token: must be 32..128 characters"],
        ),
    ],
)
def test_a_wrong_setting_is_refused_naming_the_file_and_key(
    tmp_path: Path, text: str, names: list[str]
) -> None:
    path = write(tmp_path, text)

    with pytest.raises(ConfigError) as refused:
        load_settings(path)

    assert str(refused.value).startswith(f"{path}: ")
    for name in names:
        assert name in str(refused.value)


def test_a_missing_template_is_refused_with_the_path_it_was_looked_for_at(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text('[stack]\ntemplate = "absent.yaml"\n', encoding="utf-8")

    with pytest.raises(ConfigError) as refused:
        load_settings(path)

    assert (
        str(refused.value) == f"{path}: stack.template: no such file {(tmp_path / 'absent.yaml').resolve()}"
    )


def test_a_section_that_is_not_a_table_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text('environment = "x"\n', encoding="utf-8")

    with pytest.raises(ConfigError, match=r"s\.toml: environment: must be a table, got str$"):
        load_settings(path)


def test_every_mistake_is_reported_at_once_one_line_each(tmp_path: Path) -> None:
    path = write(tmp_path, "api_port = true\n[exchange_simulator]\nport = -1\n")

    with pytest.raises(ConfigError) as refused:
        load_settings(path)

    assert str(refused.value).splitlines() == [
        f"{path}: stack.api_port: Input should be a valid integer, got bool",
        f"{path}: exchange_simulator.port: Input should be greater than or equal to 0",
    ]


def test_a_refused_secret_is_named_but_its_value_is_not_shown(tmp_path: Path) -> None:
    path = write(tmp_path, '[secrets]\n"ens/account" = ["hunter2-password"]\n')

    with pytest.raises(ConfigError) as refused:
        load_settings(path)

    assert "secrets.ens/account" in str(refused.value)
    assert "hunter2" not in str(refused.value)
    assert refused.value.__cause__ is None
    assert refused.value.__suppress_context__


def test_invalid_toml_and_missing_files_are_reported_with_their_path(tmp_path: Path) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text("[stack\n", encoding="utf-8")

    with pytest.raises(ConfigError, match=r"broken\.toml: not valid TOML"):
        load_settings(broken)
    with pytest.raises(ConfigError, match=r"absent\.toml: no such settings file"):
        load_settings(tmp_path / "absent.toml")


def test_scalars_become_the_strings_lambda_sees(tmp_path: Path) -> None:
    settings = load_settings(
        write(
            tmp_path, "[parameters]\nMaxNotificationBytes = 65536\n[environment]\nA = 1\nB = true\nC = 'c'\n"
        )
    )

    assert settings.parameters == {"MaxNotificationBytes": "65536"}
    assert settings.environment == {"A": "1", "B": "true", "C": "c"}


def test_a_secret_table_is_stored_as_json_and_a_string_as_is(tmp_path: Path) -> None:
    settings = load_settings(
        write(
            tmp_path,
            '[secrets]\n"ens/plain" = "s3cret"\n"ens/account" = { username = "svc", password = "pw" }\n',
        )
    )

    assert settings.secrets["ens/plain"] == "s3cret"
    assert json.loads(settings.secrets["ens/account"]) == {"username": "svc", "password": "pw"}


def test_unknown_simulator_keys_are_passed_through_to_the_simulator(tmp_path: Path) -> None:
    settings = load_settings(
        write(
            tmp_path,
            "[exchange_simulator]\nport = 0\nlatency_ms = 5\n[exchange_simulator.faults]\nbusy = 1\n",
        )
    )

    simulator = settings.exchange_simulator
    assert simulator.enabled is True  # a present table means "run it" unless enabled = false
    assert simulator.port == 0
    assert simulator.settings == {"latency_ms": 5, "faults": {"busy": 1}}


def test_settings_are_immutable_and_overrides_are_checked_like_the_file() -> None:
    settings = load_settings(DEFAULT_CONFIG)

    with pytest.raises(ValidationError, match="frozen"):
        settings.stack.api_port = 0  # type: ignore[misc]
    assert with_overrides(settings, api_port=0).stack.api_port == 0
    assert settings.stack.api_port == 3000
    with pytest.raises(ValidationError, match="api_port"):
        with_overrides(settings, api_port=True)


def test_placeholders_are_filled_from_what_the_running_stack_knows() -> None:
    text = fill_placeholders("${api_url}/ews/notifications/", {"api_url": "http://127.0.0.1:3000"})

    assert text == "http://127.0.0.1:3000/ews/notifications/"
    with pytest.raises(ConfigError, match="simulator_ews_url"):
        fill_placeholders("${simulator_ews_url}", {})


def test_a_push_sink_table_runs_the_sink_with_the_documented_defaults(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, "[push_sink]\n"))

    assert settings.push_sink == PushSinkSettings(
        enabled=True, port=8082, tls=True, token_secret="ens/cns-token"
    )


def test_the_push_sink_may_be_turned_off_for_an_admins_own_cns(tmp_path: Path) -> None:
    settings = load_settings(
        write(
            tmp_path,
            "[environment]\nCNS_URL = 'https://cns.example.com/v1/push'\n"
            "[secrets]\n'ens/cns-token' = 'issued-by-the-cns-admin'\n"
            "[push_sink]\nenabled = false\n",
        )
    )

    assert settings.push_sink.enabled is False
    assert settings.secrets["ens/cns-token"] == "issued-by-the-cns-admin"


def test_a_running_sink_and_secrets_may_not_both_set_its_token_secret(tmp_path: Path) -> None:
    path = write(tmp_path, "[secrets]\n'ens/cns-token' = 'hunter2-token'\n[push_sink]\nport = 0\n")

    with pytest.raises(ConfigError) as refused:
        load_settings(path)

    assert str(refused.value) == (
        f"{path}: secrets.ens/cns-token: the push sink creates ens/cns-token with the token it accepts: "
        "remove it from [secrets], or set [push_sink] enabled = false"
    )
    assert "hunter2" not in str(refused.value)


def test_the_push_sink_placeholders_are_known_to_the_environment(tmp_path: Path) -> None:
    settings = load_settings(
        write(tmp_path, "[environment]\nCNS_URL = '${push_sink_url}'\nCA = '${push_sink_ca_bundle}'\n")
    )

    filled = {
        name: fill_placeholders(
            value, {"push_sink_url": "https://127.0.0.1:8082/v1/push", "push_sink_ca_bundle": ""}
        )
        for name, value in settings.environment.items()
    }
    assert filled == {"CNS_URL": "https://127.0.0.1:8082/v1/push", "CA": ""}
    with pytest.raises(ConfigError, match=r"\$\{push_sink_url\} is not available"):
        fill_placeholders(settings.environment["CNS_URL"], {})

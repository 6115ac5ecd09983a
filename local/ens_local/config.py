"""Settings of the local stack, read from one TOML file.

The names inside [parameters], [environment] and [secrets] are the names used in AWS (template
Parameters, Lambda environment variables, Secrets Manager secret names), so a value moves between
the local file and a deployment without translation. docs/local-stack.md describes every key.

Every mistake is reported as a ConfigError naming the file and the dotted key, because a typo in a
settings file otherwise shows up much later as a confusing runtime failure.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails, InitErrorDetails, PydanticCustomError

from ens.core.subscriptions import is_well_formed_token
from ens_local.template import DEFAULT_TEMPLATE, REPO_ROOT, Template

DEFAULT_CONFIG = REPO_ROOT / "local" / "config" / "local.toml"

# Values of [environment] and [secrets] may name what only exists once the stack runs, e.g.
# EWS_URL = "${simulator_ews_url}" when the simulator listens on a port chosen at start.
PLACEHOLDERS = (
    "api_url",
    "aws_endpoint_url",
    "simulator_base_url",
    "simulator_ews_url",
    "push_sink_url",
    "push_sink_ca_bundle",
)
_PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class ConfigError(ValueError):
    """The settings file is missing, unreadable, or holds an unknown key or a wrong value."""


def _scalar_text(value: Any) -> Any:
    """Lambda environment variables and template parameters are strings; TOML scalars become text."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if not isinstance(value, str):
        raise ValueError(f"must be a string, number or boolean, got {type(value).__name__}")
    return value


def _secret_text(value: Any) -> Any:
    if isinstance(value, Mapping):
        # Structured secrets are stored as JSON, which is what the console's key/value editor writes.
        return json.dumps(value, default=str)
    if not isinstance(value, str):
        raise ValueError(f"must be a string or a table, got {type(value).__name__}")
    return value


def _known_placeholders(text: str) -> str:
    for name in _PLACEHOLDER.findall(text):
        if name not in PLACEHOLDERS:
            raise ValueError(f"unknown placeholder ${{{name}}}; known: {list(PLACEHOLDERS)}")
    return text


def _address(mailbox: str) -> str:
    if "@" not in mailbox:
        raise ValueError("must be an e-mail address")
    return mailbox


def _well_formed_token(token: str) -> str:
    if not is_well_formed_token(token):
        raise ValueError("must be 32..128 characters of A-Z a-z 0-9 _ -")
    return token


Port = Annotated[int, Field(ge=0, le=65535)]  # 0 = any free port
ParameterValue = Annotated[str, BeforeValidator(_scalar_text)]
EnvironmentValue = Annotated[str, BeforeValidator(_scalar_text), AfterValidator(_known_placeholders)]
SecretValue = Annotated[str, BeforeValidator(_secret_text), AfterValidator(_known_placeholders)]


class _Model(BaseModel):
    # strict: TOML has real types, so `api_port = "3000"` or `api_port = true` (bool is an int in
    # Python) is a mistake to report, not a value to coerce.
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)


class StackSettings(_Model):
    """[stack]: where the local stack listens and how it names and polls things."""

    template: Path = DEFAULT_TEMPLATE
    host: str = "127.0.0.1"
    api_port: Port = 3000
    aws_port: Port = 4566
    region: str = "eu-west-1"
    stack_name: str = Field("ens-local", pattern=r"^[A-Za-z][A-Za-z0-9-]{0,40}$")
    poll_wait_seconds: int = Field(1, ge=0, le=20)  # SQS long polling waits at most 20 s
    seed: bool = True

    @field_validator("template", mode="before")
    @classmethod
    def _relative_to_the_settings_file(cls, value: Any, info: ValidationInfo) -> Any:
        if not isinstance(value, str):
            return value
        return ((info.context or {}).get("base_dir", Path.cwd()) / value).resolve()

    @field_validator("template")
    @classmethod
    def _existing(cls, path: Path) -> Path:
        # Named in full: a relative path taken from an unexpected folder is the usual mistake.
        if not path.is_file():
            raise ValueError(f"no such file {path}")
        return path


class SimulatorSettings(_Model):
    """[exchange_simulator]: the keys below are the stack's; any other goes to the simulator."""

    enabled: bool = False
    port: Port = 8081
    load_demo: bool = True
    # Mailboxes the stack subscribes to push at start (see ens_local.demo), through the server the
    # Exchange servers secret routes each to (the secret the consumer reads, ens.core.exchange_servers).
    # Not strict, as TOML arrays arrive as lists; the addresses themselves still must be strings.
    subscribe_mailboxes: tuple[Annotated[str, AfterValidator(_address)], ...] = Field((), strict=False)
    servers_secret: str = "ens/exchange-servers"  # noqa: S105 - the name, not the secret
    settings: dict[str, Any] = Field(default_factory=dict)


class PushSinkSettings(_Model):
    """[push_sink]: the local stand-in for the Cloud Notification Service (local/push_sink/)."""

    enabled: bool = False
    port: Port = 8082
    tls: bool = True
    # Secrets Manager secret the stack creates with the sink's bearer token, where the consumer reads it.
    token_secret: str = Field("ens/cns-token", min_length=1)  # the name, not the secret


class DemoSubscription(_Model):
    """[[demo_subscriptions]]: a subscription record written at start, for curl demos."""

    mailbox: str
    token: Annotated[str, AfterValidator(_well_formed_token)]
    subscription_id: str
    last_watermark: str | None = None


def _demo_device(table: Any) -> Any:
    """A [[demo_devices]] entry must be a device the core model accepts (times are set at seeding)."""
    if not isinstance(table, Mapping):
        raise ValueError("must be a table")
    from datetime import UTC, datetime

    from ens.core.devices import Device

    moment = datetime(2000, 1, 1, tzinfo=UTC)
    Device.model_validate({"registered_at": moment, "updated_at": moment, **table})
    return dict(table)


DemoDevice = Annotated[dict[str, Any], BeforeValidator(_demo_device)]


class Settings(_Model):
    """The whole file; `source` is where it was read from, not a key of it."""

    source: Path | None = None
    stack: StackSettings = StackSettings()
    parameters: dict[str, ParameterValue] = Field(default_factory=dict)
    environment: dict[str, EnvironmentValue] = Field(default_factory=dict)
    secrets: dict[str, SecretValue] = Field(default_factory=dict)  # name -> SecretString
    exchange_simulator: SimulatorSettings = SimulatorSettings()
    push_sink: PushSinkSettings = PushSinkSettings()
    demo_subscriptions: tuple[DemoSubscription, ...] = Field((), strict=False)  # a TOML array is a list
    # [[demo_devices]]: devices registered at start through the devices API (the fields of a
    # registration, rules as a table), which subscribes their mailboxes.
    demo_devices: tuple[DemoDevice, ...] = Field((), strict=False)

    @model_validator(mode="before")
    @classmethod
    def _simulator_table(cls, data: Any) -> Any:
        """Split [exchange_simulator] into the stack's keys and the simulator's own `settings`."""
        table = data.get("exchange_simulator") if isinstance(data, Mapping) else None
        if not isinstance(table, Mapping):
            return data
        own = SimulatorSettings.model_fields.keys() - {"settings"}
        simulator = {
            "enabled": True,  # a table present in the file means "run it" unless told otherwise
            **{key: value for key, value in table.items() if key in own},
            "settings": {key: value for key, value in table.items() if key not in own},
        }
        return {**data, "exchange_simulator": simulator}

    @model_validator(mode="before")
    @classmethod
    def _push_sink_table(cls, data: Any) -> Any:
        # As for the simulator: a [push_sink] table present in the file means "run it" unless told otherwise.
        table = data.get("push_sink") if isinstance(data, Mapping) else None
        if not isinstance(table, Mapping):
            return data
        return {**data, "push_sink": {"enabled": True, **table}}

    @model_validator(mode="after")
    def _one_owner_per_secret(self) -> Settings:
        name = self.push_sink.token_secret
        if self.push_sink.enabled and name in self.secrets:
            # Two values for one secret: the consumer would read one, the sink accept the other.
            raise ValidationError.from_exception_data(
                type(self).__name__,
                [
                    InitErrorDetails(
                        type=PydanticCustomError(
                            "secret_owner",
                            "the push sink creates {name} with the token it accepts: remove it from "
                            "[secrets], or set [push_sink] enabled = false",
                            {"name": name},
                        ),
                        loc=("secrets", name),
                        input=None,  # never the value: it is a secret
                    )
                ],
            )
        return self

    @model_validator(mode="after")
    def _parameters_fit_the_template(self) -> Settings:
        """Checked the way CloudFormation checks parameter values, but before anything starts."""
        if not self.parameters:
            return self
        template = Template.load(self.stack.template)
        errors = [
            InitErrorDetails(
                type=PydanticCustomError("template_parameter", "{problem}", {"problem": problem}),
                loc=("parameters", name),
                input=value,
            )
            for name, value in self.parameters.items()
            if (problem := _parameter_problem(template, name, value))
        ]
        if errors:
            raise ValidationError.from_exception_data(type(self).__name__, errors)
        return self


def _parameter_problem(template: Template, name: str, value: str) -> str | None:
    spec = template.parameters.get(name)
    if spec is None:
        return f"{template.path.name} has no such parameter; known: {sorted(template.parameters)}"
    if spec.get("Type") == "Number":
        try:
            number = float(value)
        except ValueError:
            return f"must be a number, got {value!r}"
        if "MinValue" in spec and number < float(spec["MinValue"]):
            return f"{value} is below the template's MinValue {spec['MinValue']}"
        if "MaxValue" in spec and number > float(spec["MaxValue"]):
            return f"{value} is above the template's MaxValue {spec['MaxValue']}"
    allowed = spec.get("AllowedValues")
    if allowed is not None and value not in [str(item) for item in allowed]:
        return f"{value!r} is not one of {list(allowed)}"
    pattern = spec.get("AllowedPattern")
    if pattern is not None and not re.fullmatch(str(pattern), value):
        return f"{value!r} does not match the template's pattern {pattern}"
    return None


def load_settings(path: Path | str) -> Settings:
    path = Path(path)
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such settings file") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: not valid TOML: {error}") from None
    return settings_from_mapping(document, source=path)


def settings_from_mapping(document: Mapping[str, Any], source: Path | None = None) -> Settings:
    """Validate an already-parsed document; relative paths are taken from the file's folder."""
    where = str(source) if source else "<settings>"
    if "source" in document:  # a field of Settings, but filled in here, not read from the file
        raise ConfigError(f"{where}: unknown key source")
    context = {"base_dir": source.parent if source else Path.cwd()}
    try:
        return Settings.model_validate({**document, "source": source}, context=context)
    except ValidationError as error:
        # from None: pydantic's own rendering would repeat the input values, i.e. the secrets.
        raise ConfigError("\n".join(_describe(where, e) for e in error.errors(include_url=False))) from None


# Pydantic's wording for what TOML calls a table or an array.
_TOML_TYPES = {
    "model_type": "must be a table",
    "dict_type": "must be a table",
    "tuple_type": "must be an array",
}


def _describe(where: str, error: ErrorDetails) -> str:
    """One line per mistake: "<file>: <dotted.key>: <what is wrong>"."""
    key = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in error["loc"]).lstrip(".")
    kind = error["type"]
    if kind == "extra_forbidden":
        return f"{where}: unknown key {key}"
    if kind == "value_error":  # our validators' messages, without pydantic's "Value error, " prefix
        return f"{where}: {key}: {error.get('ctx', {}).get('error', error['msg'])}"
    message = _TOML_TYPES.get(kind, error["msg"])
    if kind.endswith("_type") or kind == "is_instance_of":
        # Name the type given, never the value: it may be a secret.
        message += f", got {type(error['input']).__name__}"
    return f"{where}: {key}: {message}"


def fill_placeholders(text: str, values: Mapping[str, str]) -> str:
    """Replace ${api_url} and friends with what the running stack knows; see PLACEHOLDERS."""

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            raise ConfigError(f"${{{name}}} is not available: is the part that provides it enabled?")
        return values[name]

    return _PLACEHOLDER.sub(substitute, text)

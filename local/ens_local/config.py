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
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from ens_local.template import DEFAULT_TEMPLATE, REPO_ROOT, Template

DEFAULT_CONFIG = REPO_ROOT / "local" / "config" / "local.toml"

# Values of [environment] and [secrets] may name what only exists once the stack runs, e.g.
# EWS_URL = "${simulator_ews_url}" when the simulator listens on a port chosen at start.
PLACEHOLDERS = ("api_url", "aws_endpoint_url", "simulator_base_url", "simulator_ews_url")
_PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class ConfigError(ValueError):
    """The settings file is missing, unreadable, or holds an unknown key or a wrong value."""


@dataclass(frozen=True)
class StackSettings:
    """[stack]: where the local stack listens and how it names and polls things."""

    template: Path = DEFAULT_TEMPLATE
    host: str = "127.0.0.1"
    api_port: int = 3000
    aws_port: int = 4566
    region: str = "eu-west-1"
    stack_name: str = "ens-local"
    poll_wait_seconds: int = 1
    seed: bool = True


@dataclass(frozen=True)
class SimulatorSettings:
    """[exchange_simulator]: the keys below are the stack's; any other goes to the simulator."""

    enabled: bool = False
    port: int = 8081
    load_demo: bool = True
    # Mailboxes the stack subscribes to push at start (see ens_local.demo), with the service
    # account stored in this Secrets Manager secret ({"username": ..., "password": ...}).
    subscribe_mailboxes: tuple[str, ...] = ()
    service_account_secret: str = "ens/exchange-service-account"  # noqa: S105 - the name, not the secret
    settings: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DemoSubscription:
    """[[demo_subscriptions]]: a subscription record written at start, for curl demos."""

    mailbox: str
    token: str
    subscription_id: str
    last_watermark: str | None = None


@dataclass(frozen=True)
class Settings:
    source: Path | None = None
    stack: StackSettings = field(default_factory=StackSettings)
    parameters: dict[str, str] = field(default_factory=dict)
    environment: dict[str, str] = field(default_factory=dict)
    secrets: dict[str, str] = field(default_factory=dict)  # name -> SecretString (tables become JSON)
    exchange_simulator: SimulatorSettings = field(default_factory=SimulatorSettings)
    demo_subscriptions: tuple[DemoSubscription, ...] = ()


_SECTIONS = ("stack", "parameters", "environment", "secrets", "exchange_simulator", "demo_subscriptions")
_SIMULATOR_OWN_KEYS = {
    "enabled": bool,
    "port": int,
    "load_demo": bool,
    "subscribe_mailboxes": list,
    "service_account_secret": str,
}


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
    base_dir = source.parent if source else Path.cwd()
    unknown = set(document) - set(_SECTIONS)
    if unknown:
        raise ConfigError(f"{where}: unknown section(s) {sorted(unknown)}; known: {list(_SECTIONS)}")
    for section in _SECTIONS:
        if section == "demo_subscriptions":
            continue
        if section in document and not isinstance(document[section], Mapping):
            raise ConfigError(f"{where}: [{section}] must be a table")

    stack = _stack(document.get("stack", {}), where, base_dir)
    template = _load_template(stack.template, where)
    parameters = _parameters(document.get("parameters", {}), template, where)
    environment = {
        name: _scalar_text(value, where, f"environment.{name}")
        for name, value in document.get("environment", {}).items()
    }
    for name, value in environment.items():
        _check_placeholders(value, where, f"environment.{name}")
    secrets = {name: _secret_text(value, where, name) for name, value in document.get("secrets", {}).items()}
    return Settings(
        source=source,
        stack=stack,
        parameters=parameters,
        environment=environment,
        secrets=secrets,
        exchange_simulator=_simulator(document.get("exchange_simulator"), where),
        demo_subscriptions=_demo_subscriptions(document.get("demo_subscriptions", []), where),
    )


def _demo_subscriptions(entries: Any, where: str) -> tuple[DemoSubscription, ...]:
    from ens.core.subscriptions import is_well_formed_token

    if not isinstance(entries, list) or not all(isinstance(entry, Mapping) for entry in entries):
        raise ConfigError(f"{where}: demo_subscriptions must be an array of tables ([[demo_subscriptions]])")
    known = {f.name for f in fields(DemoSubscription)}
    demos = []
    for index, entry in enumerate(entries):
        key = f"demo_subscriptions[{index}]"
        unknown = set(entry) - known
        missing = {"mailbox", "token", "subscription_id"} - set(entry)
        if unknown or missing:
            raise ConfigError(
                f"{where}: {key}: unknown keys {sorted(unknown)}, missing keys {sorted(missing)}"
            )
        if not all(isinstance(value, str) for value in entry.values()):
            raise ConfigError(f"{where}: {key}: every value must be a string")
        if not is_well_formed_token(entry["token"]):
            raise ConfigError(f"{where}: {key}.token must be 32..128 characters of A-Z a-z 0-9 _ -")
        demos.append(DemoSubscription(**entry))
    return tuple(demos)


def _stack(table: Mapping[str, Any], where: str, base_dir: Path) -> StackSettings:
    known = {f.name: f for f in fields(StackSettings)}
    values: dict[str, Any] = {}
    for key, value in table.items():
        if key not in known:
            raise ConfigError(f"{where}: unknown key stack.{key}; known: {sorted(known)}")
        default = known[key].default
        if key == "template":
            if not isinstance(value, str):
                raise ConfigError(f"{where}: stack.template must be a path string")
            values[key] = (base_dir / value).resolve()
            continue
        # bool is an int in Python: compare exact types so `api_port = true` is refused.
        if type(value) is not type(default):
            raise ConfigError(
                f"{where}: stack.{key} must be {type(default).__name__}, got {type(value).__name__}"
            )
        values[key] = value
    stack = StackSettings(**values)
    for key in ("api_port", "aws_port"):
        port = getattr(stack, key)
        if not 0 <= port <= 65535:
            raise ConfigError(f"{where}: stack.{key} must be 0..65535 (0 = any free port), got {port}")
    if not 0 <= stack.poll_wait_seconds <= 20:
        raise ConfigError(
            f"{where}: stack.poll_wait_seconds must be 0..20 (SQS long polling), got "
            f"{stack.poll_wait_seconds}"
        )
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9-]{0,40}", stack.stack_name):
        raise ConfigError(
            f"{where}: stack.stack_name must be letters, digits and '-', starting with a letter"
        )
    return stack


def _load_template(path: Path, where: str) -> Template:
    if not path.is_file():
        raise ConfigError(f"{where}: stack.template: no such file {path}")
    return Template.load(path)


def _parameters(table: Mapping[str, Any], template: Template, where: str) -> dict[str, str]:
    """Check overrides the way CloudFormation checks parameter values, before anything starts."""
    parameters: dict[str, str] = {}
    for name, value in table.items():
        key = f"parameters.{name}"
        spec = template.parameters.get(name)
        if spec is None:
            raise ConfigError(
                f"{where}: unknown key {key}: {template.path.name} has no such parameter; "
                f"known: {sorted(template.parameters)}"
            )
        text = _scalar_text(value, where, key)
        if spec.get("Type") == "Number":
            try:
                number = float(text)
            except ValueError:
                raise ConfigError(f"{where}: {key} must be a number, got {value!r}") from None
            if "MinValue" in spec and number < float(spec["MinValue"]):
                raise ConfigError(
                    f"{where}: {key} = {value} is below the template's MinValue {spec['MinValue']}"
                )
            if "MaxValue" in spec and number > float(spec["MaxValue"]):
                raise ConfigError(
                    f"{where}: {key} = {value} is above the template's MaxValue {spec['MaxValue']}"
                )
        allowed = spec.get("AllowedValues")
        if allowed is not None and text not in [str(item) for item in allowed]:
            raise ConfigError(f"{where}: {key} = {value!r} is not one of {list(allowed)}")
        pattern = spec.get("AllowedPattern")
        if pattern is not None and not re.fullmatch(str(pattern), text):
            raise ConfigError(f"{where}: {key} = {value!r} does not match the template's pattern {pattern}")
        parameters[name] = text
    return parameters


def _scalar_text(value: Any, where: str, key: str) -> str:
    """Lambda environment variables and template parameters are strings; TOML scalars become text."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return str(value)
    raise ConfigError(f"{where}: {key} must be a string, number or boolean, got {type(value).__name__}")


def _secret_text(value: Any, where: str, name: str) -> str:
    key = f"secrets.{name}"
    if isinstance(value, str):
        text = value
    elif isinstance(value, Mapping):
        # Structured secrets are stored as JSON, which is what the console's key/value editor writes.
        text = json.dumps(value, default=str)
    else:
        raise ConfigError(f"{where}: {key} must be a string or a table, got {type(value).__name__}")
    _check_placeholders(text, where, key)
    return text


def _check_placeholders(text: str, where: str, key: str) -> None:
    for name in _PLACEHOLDER.findall(text):
        if name not in PLACEHOLDERS:
            raise ConfigError(f"{where}: {key}: unknown placeholder ${{{name}}}; known: {list(PLACEHOLDERS)}")


def fill_placeholders(text: str, values: Mapping[str, str]) -> str:
    """Replace ${api_url} and friends with what the running stack knows; see PLACEHOLDERS."""

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            raise ConfigError(f"${{{name}}} is not available: is the part that provides it enabled?")
        return values[name]

    return _PLACEHOLDER.sub(substitute, text)


def _simulator(table: Mapping[str, Any] | None, where: str) -> SimulatorSettings:
    if table is None:
        return SimulatorSettings()
    own: dict[str, Any] = {}
    passthrough: dict[str, Any] = {}
    for key, value in table.items():
        expected = _SIMULATOR_OWN_KEYS.get(key)
        if expected is None:
            passthrough[key] = value
            continue
        if type(value) is not expected:
            raise ConfigError(
                f"{where}: exchange_simulator.{key} must be {expected.__name__}, got {type(value).__name__}"
            )
        own[key] = value
    if "subscribe_mailboxes" in own:
        if not all(isinstance(mailbox, str) and "@" in mailbox for mailbox in own["subscribe_mailboxes"]):
            raise ConfigError(f"{where}: exchange_simulator.subscribe_mailboxes must be a list of addresses")
        own["subscribe_mailboxes"] = tuple(own["subscribe_mailboxes"])
    # A table present in the file means the user wants the simulator unless told otherwise.
    own.setdefault("enabled", True)
    port = own.get("port", 8081)
    if not 0 <= port <= 65535:
        raise ConfigError(f"{where}: exchange_simulator.port must be 0..65535, got {port}")
    return SimulatorSettings(settings=passthrough, **own)

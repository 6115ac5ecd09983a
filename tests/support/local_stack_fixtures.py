"""Pytest fixtures for tests that need local AWS or the whole local stack.

Register once in tests/conftest.py:  pytest_plugins = ["support.local_stack_fixtures"]

- local_aws (session): one moto server on 127.0.0.1, any free port, shared by every test.
- stack_name: a name unique to the test; every table and queue it creates carries it, so tests never
  see each other's items or messages.
- provision_stack(template=None, parameters=None, environment=None) -> ProvisionedStack: creates the
  template's tables and queues for this test and sets, for this test only, the AWS variables and
  every function's resolved environment, so a handler loaded afterwards talks to them.
- provisioned_stack: provision_stack() with template.yaml.
- load_lambda(logical_id) -> LoadedFunction: a cold start of one function of the provisioned template.
- local_stack_factory(...) -> LocalStack and local_stack: the whole stack (HTTP front on a free port,
  SQS pollers) on the shared moto server, Exchange simulator off unless asked.
- template_copy(edit) -> Path: template.yaml as a JSON copy in tmp_path, edited by `edit(document)`,
  its code paths made absolute; to add a function or change a queue without touching the real one.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from cfnlint.decode import cfn_yaml

from ens_local.aws import LocalAws, ProvisionedStack, provision
from ens_local.config import Settings, SimulatorSettings, StackSettings
from ens_local.functions import LoadedFunction, load_template_function, merge_environments
from ens_local.stack import SAM_LOCAL_ENVIRONMENT, LocalStack
from ens_local.template import DEFAULT_TEMPLATE, FUNCTION, LAYER, Template

REGION = "eu-west-1"


def copy_template(destination: Path, edit: Callable[[dict[str, Any]], None] | None = None) -> Path:
    """Write template.yaml, optionally edited, as destination/template.json and return its path.

    JSON is valid CloudFormation and needs no YAML tags; CodeUri and ContentUri become absolute so the
    copy still finds functions/ and layers/ from wherever it lives.
    """
    document: dict[str, Any] = json.loads(json.dumps(cfn_yaml.load(str(DEFAULT_TEMPLATE))))
    for resource in document["Resources"].values():
        properties = resource.get("Properties", {})
        key = {FUNCTION: "CodeUri", LAYER: "ContentUri"}.get(resource["Type"])
        if key and isinstance(properties.get(key), str):
            properties[key] = str((DEFAULT_TEMPLATE.parent / properties[key]).resolve())
    if edit is not None:
        edit(document)
    destination.mkdir(parents=True, exist_ok=True)
    path = destination / "template.json"
    path.write_text(json.dumps(document, indent=2), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def local_aws() -> Iterator[LocalAws]:
    aws = LocalAws(host="127.0.0.1", port=0, region=REGION, stack_name="ens-test").start()
    yield aws
    aws.stop()


@pytest.fixture
def stack_name() -> str:
    return f"t-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def template_copy(tmp_path: Path) -> Callable[..., Path]:
    def make(edit: Callable[[dict[str, Any]], None] | None = None) -> Path:
        return copy_template(tmp_path / f"template-{uuid.uuid4().hex[:6]}", edit)

    return make


class _Provisioner:
    def __init__(self, aws: LocalAws, stack_name: str, monkeypatch: pytest.MonkeyPatch) -> None:
        self.aws = aws
        self.stack_name = stack_name
        self.monkeypatch = monkeypatch
        self.latest: ProvisionedStack | None = None

    def __call__(
        self,
        template: Path | Template | None = None,
        parameters: Mapping[str, Any] | None = None,
        environment: Mapping[str, str] | None = None,
    ) -> ProvisionedStack:
        loaded = template if isinstance(template, Template) else Template.load(template or DEFAULT_TEMPLATE)
        # A second call in one test gets its own names, as a second stack would.
        name = self.stack_name if self.latest is None else f"{self.stack_name}-{uuid.uuid4().hex[:4]}"
        stack = provision(self.aws.for_stack(name), loaded, parameters)
        resolver = stack.resolver()
        variables = merge_environments(
            {spec.logical_id: resolver.resolve(spec.environment) for spec in loaded.functions()},
            {**stack.aws.environment(), **SAM_LOCAL_ENVIRONMENT, **(environment or {})},
        )
        for key, value in variables.items():
            self.monkeypatch.setenv(key, value)
        self.latest = stack
        return stack


@pytest.fixture
def provision_stack(local_aws: LocalAws, stack_name: str, monkeypatch: pytest.MonkeyPatch) -> _Provisioner:
    return _Provisioner(local_aws, stack_name, monkeypatch)


@pytest.fixture
def provisioned_stack(provision_stack: _Provisioner) -> ProvisionedStack:
    return provision_stack()


@pytest.fixture
def load_lambda(provision_stack: _Provisioner) -> Callable[[str], LoadedFunction]:
    """Cold-start a function of the template provisioned in this test (template.yaml if none yet)."""

    def load(logical_id: str) -> LoadedFunction:
        stack = provision_stack.latest or provision_stack()
        return load_template_function(
            stack.template, logical_id, stack_name=stack.aws.stack_name, region=stack.aws.region
        )

    return load


@pytest.fixture
def local_stack_factory(local_aws: LocalAws, stack_name: str) -> Iterator[Callable[..., LocalStack]]:
    started: list[LocalStack] = []

    def start(
        template: Path | None = None,
        *,
        parameters: Mapping[str, str] | None = None,
        environment: Mapping[str, str] | None = None,
        secrets: Mapping[str, str] | None = None,
        simulator: bool | Mapping[str, Any] = False,
        seed: bool = False,
        subscribe_mailboxes: Sequence[str] = (),
        start_pollers: bool = True,
    ) -> LocalStack:
        settings = Settings(
            stack=StackSettings(
                template=template or DEFAULT_TEMPLATE,
                api_port=0,
                aws_port=0,
                region=REGION,
                stack_name=stack_name if not started else f"{stack_name}-{len(started)}",
                poll_wait_seconds=0,  # short polls: stopping a poller never waits on a long poll
                seed=seed,
            ),
            parameters={key: str(value) for key, value in (parameters or {}).items()},
            environment=dict(environment or {}),
            secrets=dict(secrets or {}),
            exchange_simulator=SimulatorSettings(
                enabled=bool(simulator),
                port=0,
                subscribe_mailboxes=tuple(subscribe_mailboxes),
                settings=dict(simulator) if isinstance(simulator, Mapping) else {},
            ),
        )
        stack = LocalStack(settings, aws=local_aws, start_pollers=start_pollers).start()
        started.append(stack)
        return stack

    yield start
    for stack in reversed(started):  # reverse order restores os.environ layer by layer
        stack.stop()


@pytest.fixture
def local_stack(local_stack_factory: Callable[..., LocalStack]) -> LocalStack:
    return local_stack_factory()

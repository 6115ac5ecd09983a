"""The admin CLI against the local stack: a settings file naming this test's provisioned tables and
queues on the shared moto server, secrets of the test's own names, and the CLI run in-process."""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from exchangelib.protocol import close_connections

from ens_admin.cli import main
from ens_local.aws import ProvisionedStack
from ens_local.template import DEFAULT_TEMPLATE
from support.consumer_flow import servers_secret
from support.https_front import HttpsFront, https_front


@dataclass
class CliRun:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


@dataclass
class AdminTarget:
    config: Path
    stack: ProvisionedStack
    servers_secret_name: str
    cns_secret_name: str

    def put_secret(self, name: str, value: str) -> None:
        client = self.stack.aws.client("secretsmanager")
        try:
            client.create_secret(Name=name, SecretString=value)
        except client.exceptions.ResourceExistsException:
            client.put_secret_value(SecretId=name, SecretString=value)

    def set_servers(self, *servers: Mapping[str, Any]) -> None:
        self.put_secret(self.servers_secret_name, servers_secret(*servers))

    def set_cns_token(self, token: str) -> None:
        self.put_secret(self.cns_secret_name, token)

    def run(self, *arguments: str) -> CliRun:
        out, err = io.StringIO(), io.StringIO()
        code = main(["--local", str(self.config), *arguments], out=out, err=err)
        return CliRun(code, out.getvalue(), err.getvalue())

    def client(self, service: str) -> Any:
        return self.stack.aws.client(service)

    def with_environment(self, path: Path, **environment: str) -> AdminTarget:
        """The same stack and secrets, through a settings file with these [environment] values."""
        config = write_settings(
            path,
            self.stack,
            environment,
        )
        return AdminTarget(config, self.stack, self.servers_secret_name, self.cns_secret_name)


def write_settings(
    path: Path, stack: ProvisionedStack, environment: Mapping[str, str] | None = None, **parameters: str
) -> Path:
    endpoint = urlsplit(stack.aws.endpoint_url)
    lines = [
        "[stack]",
        f'template = "{DEFAULT_TEMPLATE}"',
        f'host = "{endpoint.hostname}"',
        f"aws_port = {endpoint.port}",
        f'region = "{stack.aws.region}"',
        f'stack_name = "{stack.aws.stack_name}"',
        "[parameters]",
        *(f'{name} = "{value}"' for name, value in parameters.items()),
        "[environment]",
        *(f'{name} = "{value}"' for name, value in (environment or {}).items()),
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def admin(provisioned_stack: ProvisionedStack, tmp_path: Path) -> AdminTarget:
    # The names the template's local stand-in ARNs point at (template.yaml, Metadata ENS::LocalStack):
    # a deployment's secrets are given by full ARN, which a local secret cannot have. Local AWS is
    # shared by the whole session, so each test starts without them.
    servers, cns = "ens/exchange-servers", "ens/cns-token"
    secretsmanager = provisioned_stack.aws.client("secretsmanager")
    for name in (servers, cns):
        with contextlib.suppress(secretsmanager.exceptions.ResourceNotFoundException):
            secretsmanager.delete_secret(SecretId=name, ForceDeleteWithoutRecovery=True)
    config = write_settings(tmp_path / "local.toml", provisioned_stack)
    return AdminTarget(config, provisioned_stack, servers, cns)


@pytest.fixture
def https_front_factory() -> Iterator[Callable[[str], HttpsFront]]:
    """HTTPS fronts forwarding to `backend_url` (the simulator's EWS URL), each with its own CA."""
    with contextlib.ExitStack() as fronts:

        def start(backend_url: str) -> HttpsFront:
            return fronts.enter_context(https_front(backend_url))

        yield start
        close_connections()

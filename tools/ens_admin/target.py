"""Which ENS the CLI talks to: a deployed CloudFormation stack, or the local stack's settings file.

Either way the result is a `Deployment`: the AWS endpoint and region, and the physical names of the
tables, queues and secrets the functions use, so every command reads exactly what they read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

# Stack Outputs read first (template.yaml's Outputs), by the logical id of the resource they name;
# a resource without an Output is found by its logical id with DescribeStackResources.
OUTPUTS = {
    "SubscriptionsTable": "SubscriptionsTableName",
    "DevicesTable": "DevicesTableName",
    "DecisionsTable": "DecisionsTableName",
    "MailboxesTable": "MailboxesTableName",
    "NotificationsQueue": "NotificationsQueueUrl",
    "NotificationsDeadLetterQueue": "NotificationsDeadLetterQueueUrl",
}
TABLES = ("SubscriptionsTable", "DevicesTable", "DecisionsTable", "MailboxesTable")
QUEUES = ("NotificationsQueue", "NotificationsDeadLetterQueue")
# Template Parameters the CLI reads (the stack's values, or the local file's [parameters], else the
# template's defaults).
SECRET_PARAMETERS = {"servers": "ExchangeServersSecretArn", "cns_token": "CnsTokenSecretArn"}
_DEFAULT_SECRETS = {"servers": "ens/exchange-servers", "cns_token": "ens/cns-token"}
# moto takes any credentials; the local stack's own dummies.
_LOCAL_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


class TargetError(Exception):
    """The stack or the settings file does not say what the CLI needs; the message says what is missing."""


@dataclass(frozen=True)
class Deployment:
    name: str  # the stack name
    region: str
    endpoint_url: str | None  # local AWS; None: AWS itself
    tables: dict[str, str]  # logical id -> table name
    queues: dict[str, str]  # logical id -> queue URL
    secrets: dict[str, str]  # "servers", "cns_token" -> secret name
    cns_url: str | None = None
    cns_ca_bundle: str | None = None
    _session: Any = field(default=None, repr=False, compare=False)

    def client(self, service: str) -> Any:
        session = self._session or boto3.session.Session(region_name=self.region)
        extra: dict[str, Any] = {"endpoint_url": self.endpoint_url} if self.endpoint_url else {}
        return session.client(service, region_name=self.region, **extra)

    def table(self, logical_id: str) -> str:
        return self.tables[logical_id]

    def queue(self, logical_id: str) -> str:
        return self.queues[logical_id]

    def secret(self, which: str) -> str:
        """A secret's value, as the functions read it (SecretString)."""
        name = self.secrets[which]
        try:
            return str(self.client("secretsmanager").get_secret_value(SecretId=name)["SecretString"])
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            raise TargetError(f"cannot read the secret {name}: {code or error}") from None
        except BotoCoreError as error:
            raise TargetError(f"cannot read the secret {name}: {error}") from None


def from_local_settings(path: Path | str) -> Deployment:
    """The local stack of a settings file (`make run CONFIG=...`): moto on its aws_port, names
    `<stack_name>-<LogicalId>`, queue URLs asked of local SQS. The stack must be running."""
    from ens_local.config import ConfigError, load_settings
    from ens_local.template import Template

    try:
        settings = load_settings(path)
    except ConfigError as error:
        raise TargetError(str(error)) from None
    stack = settings.stack
    if stack.aws_port == 0:
        raise TargetError(f"{path}: stack.aws_port is 0 (any free port): give the CLI a fixed port")
    template = Template.load(stack.template)
    endpoint = f"http://{stack.host}:{stack.aws_port}"
    # As the local stack resolves them: the template's defaults (with its local stand-ins), then the file.
    parameters = {**template.parameter_defaults(), **settings.parameters}
    session = boto3.session.Session(region_name=stack.region, **_LOCAL_CREDENTIALS)
    deployment = Deployment(
        name=stack.stack_name,
        region=stack.region,
        endpoint_url=endpoint,
        tables={logical_id: f"{stack.stack_name}-{logical_id}" for logical_id in TABLES},
        queues={},
        secrets=_secret_names(parameters),
        cns_url=_local_cns_url(settings),
        _session=session,
    )
    sqs = deployment.client("sqs")
    try:
        for logical_id in QUEUES:
            name = f"{stack.stack_name}-{logical_id}"
            deployment.queues[logical_id] = sqs.get_queue_url(QueueName=name)["QueueUrl"]
    except (ClientError, BotoCoreError) as error:
        raise TargetError(
            f"local AWS at {endpoint} has no queue {name}: is `make run CONFIG={path}` running? ({error})"
        ) from None
    return deployment


def _local_cns_url(settings: Any) -> str | None:
    """CNS_URL from [environment], the push sink's URL filled in when it is enabled on a fixed port."""
    url = settings.environment.get("CNS_URL")
    if url is None:
        return None
    sink = settings.push_sink
    if "${push_sink_url}" in url:
        if not sink.enabled or sink.port == 0:
            return None
        scheme = "https" if sink.tls else "http"
        host = settings.stack.host if settings.stack.host.startswith("127.") else "127.0.0.1"
        url = url.replace("${push_sink_url}", f"{scheme}://{host}:{sink.port}/v1/push")
    return None if "${" in url else str(url)


def from_cloudformation(stack_name: str, region: str, session: Any = None) -> Deployment:
    """A deployed stack: its Outputs name the tables and queues (DescribeStackResources fills in any
    an older template does not output); its Parameters name the secrets and the CNS URL."""
    session = session or boto3.session.Session(region_name=region)
    cloudformation = session.client("cloudformation", region_name=region)
    try:
        (stack,) = cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
    except (ClientError, BotoCoreError) as error:
        raise TargetError(f"cannot describe the stack {stack_name} in {region}: {error}") from None
    outputs = {output["OutputKey"]: output["OutputValue"] for output in stack.get("Outputs", [])}
    parameters = {
        item["ParameterKey"]: item.get("ParameterValue", "") for item in stack.get("Parameters", [])
    }
    physical: dict[str, str] = {}
    missing = [logical_id for logical_id in (*TABLES, *QUEUES) if OUTPUTS[logical_id] not in outputs]
    if missing:
        try:
            resources = cloudformation.describe_stack_resources(StackName=stack_name)["StackResources"]
        except (ClientError, BotoCoreError) as error:
            raise TargetError(f"cannot list the resources of {stack_name}: {error}") from None
        physical = {item["LogicalResourceId"]: item["PhysicalResourceId"] for item in resources}

    def name_of(logical_id: str) -> str:
        value = outputs.get(OUTPUTS[logical_id]) or physical.get(logical_id)
        if not value:
            raise TargetError(f"the stack {stack_name} has no {logical_id} (Output {OUTPUTS[logical_id]})")
        return str(value)

    return Deployment(
        name=stack_name,
        region=region,
        endpoint_url=None,
        tables={logical_id: name_of(logical_id) for logical_id in TABLES},
        queues={logical_id: name_of(logical_id) for logical_id in QUEUES},
        secrets=_secret_names(parameters),
        cns_url=parameters.get("CnsUrl") or None,
        _session=session,
    )


def _secret_names(parameters: dict[str, str]) -> dict[str, str]:
    return {
        which: parameters.get(parameter) or _DEFAULT_SECRETS[which]
        for which, parameter in SECRET_PARAMETERS.items()
    }

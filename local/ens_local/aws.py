"""Local AWS: moto in server mode on loopback, provisioned from template.yaml.

Every boto3 client (Powertools' included) reaches it over real HTTP through AWS_ENDPOINT_URL.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import boto3
from moto.server import ThreadedMotoServer

from ens_local.template import API, QUEUE, TABLE, Resolver, Template, TemplateError

LOCAL_ACCOUNT_ID = "123456789012"  # moto's fixed account
# "local_stack.*", never "ens_local.*": Powertools' filter would swallow it (see LOGGER in ens_local.stack).
log = logging.getLogger("local_stack.aws")

# DynamoDB CreateTable takes these CloudFormation properties as they are; the rest are either
# mapped below or only matter in AWS (encryption, backups, tags).
_TABLE_PASSTHROUGH = (
    "AttributeDefinitions",
    "KeySchema",
    "GlobalSecondaryIndexes",
    "LocalSecondaryIndexes",
    "BillingMode",
    "ProvisionedThroughput",
)
# SQS CreateQueue attributes that CloudFormation exposes under the same names.
_QUEUE_ATTRIBUTES = (
    "VisibilityTimeout",
    "MessageRetentionPeriod",
    "DelaySeconds",
    "MaximumMessageSize",
    "ReceiveMessageWaitTimeSeconds",
    "FifoQueue",
    "ContentBasedDeduplication",
)


@dataclass
class LocalAws:
    """A running moto server plus the names and URLs of what it holds."""

    host: str = "127.0.0.1"
    port: int = 0
    region: str = "eu-west-1"
    stack_name: str = "ens-local"
    _server: ThreadedMotoServer | None = field(default=None, init=False, repr=False)
    _owns_server: bool = field(default=True, init=False, repr=False)

    @property
    def endpoint_url(self) -> str:
        if self._server is None:
            raise RuntimeError("LocalAws is not started")
        host, port = self._server.get_host_and_port()
        return f"http://{host}:{port}"

    def start(self) -> LocalAws:
        # werkzeug logs every request moto serves at INFO; the local stack prints its own lines.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        self._server = ThreadedMotoServer(ip_address=self.host, port=self.port, verbose=False)
        self._server.start()
        return self

    def for_stack(self, stack_name: str) -> LocalAws:
        """The same running server, naming its resources after another stack.

        Tests share one moto server per session and give each test its own stack name, so no test
        sees another's tables or messages. Stopping the returned view leaves the server running.
        """
        if self._server is None:
            raise RuntimeError("LocalAws is not started")
        view = LocalAws(host=self.host, port=self.port, region=self.region, stack_name=stack_name)
        view._server = self._server
        view._owns_server = False
        return view

    def stop(self) -> None:
        if self._server is not None and self._owns_server:
            self._server.stop()
        self._server = None

    def environment(self) -> dict[str, str]:
        """The variables that point boto3 at this server. Credentials are moto's dummies."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_REGION": self.region,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
        }

    def client(self, service: str) -> Any:
        environment = self.environment()
        return boto3.client(
            service,
            endpoint_url=environment["AWS_ENDPOINT_URL"],
            region_name=self.region,
            aws_access_key_id=environment["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=environment["AWS_SECRET_ACCESS_KEY"],
        )


@dataclass
class ProvisionedStack:
    """What the template's tables and queues became locally, and how to resolve references to them."""

    aws: LocalAws
    template: Template
    parameters: dict[str, str]
    table_names: dict[str, str] = field(default_factory=dict)
    queue_urls: dict[str, str] = field(default_factory=dict)

    def queue_arn(self, logical_id: str) -> str:
        return f"arn:aws:sqs:{self.aws.region}:{LOCAL_ACCOUNT_ID}:{self.queue_name(logical_id)}"

    def queue_name(self, logical_id: str) -> str:
        return f"{self.aws.stack_name}-{logical_id}"

    def resolver(self) -> Resolver:
        # A RestApi's !Ref is its id; locally the logical id stands in, so a URL built from it (the
        # devices API's WEBHOOK_BASE_URL) resolves, and the settings file's [environment] replaces it
        # with the local front's URL.
        apis = {logical_id: logical_id for logical_id in self.template.logical_ids(API)}
        refs = {**self.parameters, **apis, **self.table_names, **self.queue_urls}
        return Resolver(
            refs=refs,
            attribute=self._attribute,
            pseudo={
                "AWS::Region": self.aws.region,
                "AWS::AccountId": LOCAL_ACCOUNT_ID,
                "AWS::StackName": self.aws.stack_name,
                "AWS::Partition": "aws",
                "AWS::URLSuffix": "amazonaws.com",
            },
            conditions=self.template.conditions,
            list_refs=self.template.list_parameters(),
        )

    def exists(self, logical_id: str) -> bool:
        """False for a resource whose Condition is false with these parameters: it is not created."""
        condition = self.template.resources[logical_id].get("Condition")
        return condition is None or self.resolver().condition(str(condition))

    def _attribute(self, logical_id: str, attribute: str) -> str:
        if logical_id in self.queue_urls or self.template.resources.get(logical_id, {}).get("Type") == QUEUE:
            if attribute == "Arn":
                return self.queue_arn(logical_id)
            if attribute == "QueueName":
                return self.queue_name(logical_id)
            if attribute == "QueueUrl":
                return self.queue_urls[logical_id]
        if logical_id in self.table_names and attribute == "Arn":
            return (
                f"arn:aws:dynamodb:{self.aws.region}:{LOCAL_ACCOUNT_ID}:table/{self.table_names[logical_id]}"
            )
        raise TemplateError(f"!GetAtt {logical_id}.{attribute} is not available locally")


def provision(
    aws: LocalAws, template: Template, parameter_overrides: Mapping[str, Any] | None = None
) -> ProvisionedStack:
    """Create every table and queue the template declares, in dependency order."""
    parameters = {
        **template.parameter_defaults(),
        **{k: str(v) for k, v in (parameter_overrides or {}).items()},
    }
    unknown = set(parameter_overrides or {}) - set(template.parameters)
    if unknown:
        raise TemplateError(f"unknown template parameter(s): {', '.join(sorted(unknown))}")
    stack = ProvisionedStack(aws=aws, template=template, parameters=parameters)
    for logical_id in template.logical_ids(TABLE):
        if stack.exists(logical_id):
            _create_table(stack, logical_id)
    # A queue may name another (its dead-letter queue) through !GetAtt, so create those first.
    pending = [logical_id for logical_id in template.logical_ids(QUEUE) if stack.exists(logical_id)]
    while pending:
        ready = [q for q in pending if not (_queue_references(template, q) & set(pending))]
        if not ready:
            raise TemplateError(f"queues reference each other in a cycle: {pending}")
        for logical_id in ready:
            _create_queue(stack, logical_id)
            pending.remove(logical_id)
    return stack


def _create_table(stack: ProvisionedStack, logical_id: str) -> None:
    properties = stack.resolver().resolve(dict(stack.template.properties(logical_id)))
    name = properties.get("TableName") or f"{stack.aws.stack_name}-{logical_id}"
    request: dict[str, Any] = {key: properties[key] for key in _TABLE_PASSTHROUGH if key in properties}
    if "StreamSpecification" in properties:
        request["StreamSpecification"] = {"StreamEnabled": True, **properties["StreamSpecification"]}
    dynamodb = stack.aws.client("dynamodb")
    dynamodb.create_table(TableName=name, **request)
    ttl = properties.get("TimeToLiveSpecification")
    if ttl and ttl.get("Enabled"):
        dynamodb.update_time_to_live(TableName=name, TimeToLiveSpecification=ttl)
    stack.table_names[logical_id] = name
    log.debug("created table %s", name)


def _create_queue(stack: ProvisionedStack, logical_id: str) -> None:
    properties = stack.resolver().resolve(dict(stack.template.properties(logical_id)))
    name = properties.get("QueueName") or stack.queue_name(logical_id)
    attributes = {
        key: str(properties[key]).lower() if isinstance(properties[key], bool) else str(properties[key])
        for key in _QUEUE_ATTRIBUTES
        if key in properties
    }
    if "RedrivePolicy" in properties:
        attributes["RedrivePolicy"] = json.dumps(properties["RedrivePolicy"])
    url = stack.aws.client("sqs").create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
    stack.queue_urls[logical_id] = url
    log.debug("created queue %s", name)


def _queue_references(template: Template, logical_id: str) -> set[str]:
    """Logical ids this queue's properties point at through !GetAtt or !Ref."""
    found: set[str] = set()

    def walk(value: Any) -> None:
        if isinstance(value, Mapping):
            for key, item in value.items():
                if key == "Fn::GetAtt":
                    found.add(item.split(".")[0] if isinstance(item, str) else str(item[0]))
                elif key == "Ref":
                    found.add(str(item))
                else:
                    walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(template.properties(logical_id))
    return found

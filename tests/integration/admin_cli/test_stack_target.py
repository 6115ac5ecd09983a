"""--stack: table and queue names from a CloudFormation stack's Outputs, else its resources (moto's
CloudFormation, boto3 pointed at it through AWS_ENDPOINT_URL as an admin's profile would point at AWS)."""

from __future__ import annotations

import io
import json
import uuid

import pytest

from ens_admin.cli import main
from ens_admin.target import QUEUES, TABLES, TargetError, from_cloudformation
from ens_local.aws import LocalAws

pytestmark = pytest.mark.integration


def _template() -> dict:
    table = {
        "Type": "AWS::DynamoDB::Table",
        "Properties": {
            "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
            "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
            "BillingMode": "PAY_PER_REQUEST",
        },
    }
    resources = dict.fromkeys(TABLES, table) | {
        logical_id: {"Type": "AWS::SQS::Queue"} for logical_id in QUEUES
    }
    return {
        "Parameters": {"CnsUrl": {"Type": "String"}, "ExchangeServersSecretArn": {"Type": "String"}},
        "Resources": resources,
        # As an older template: no Output for the mailboxes table nor the dead-letter queue.
        "Outputs": {
            "SubscriptionsTableName": {"Value": {"Ref": "SubscriptionsTable"}},
            "DevicesTableName": {"Value": {"Ref": "DevicesTable"}},
            "DecisionsTableName": {"Value": {"Ref": "DecisionsTable"}},
            "NotificationsQueueUrl": {"Value": {"Ref": "NotificationsQueue"}},
        },
    }


@pytest.fixture
def deployed(local_aws: LocalAws, monkeypatch: pytest.MonkeyPatch) -> str:
    for key, value in local_aws.environment().items():
        monkeypatch.setenv(key, value)
    name = f"ens-{uuid.uuid4().hex[:8]}"
    local_aws.client("cloudformation").create_stack(
        StackName=name,
        TemplateBody=json.dumps(_template()),
        Parameters=[
            {"ParameterKey": "CnsUrl", "ParameterValue": "https://cns.example.com/v1/push"},
            {"ParameterKey": "ExchangeServersSecretArn", "ParameterValue": f"{name}/servers"},
        ],
    )
    return name


def test_stack_names_come_from_outputs_and_from_resources_where_an_output_is_missing(
    deployed: str, local_aws: LocalAws
) -> None:
    deployment = from_cloudformation(deployed, local_aws.region)

    resources = local_aws.client("cloudformation").describe_stack_resources(StackName=deployed)[
        "StackResources"
    ]
    physical = {item["LogicalResourceId"]: item["PhysicalResourceId"] for item in resources}
    assert deployment.tables == {logical_id: physical[logical_id] for logical_id in TABLES}
    assert deployment.queue("NotificationsDeadLetterQueue") == physical["NotificationsDeadLetterQueue"]
    assert deployment.secrets == {"servers": f"{deployed}/servers", "cns_token": "ens/cns-token"}
    assert deployment.cns_url == "https://cns.example.com/v1/push"


def test_the_cli_reads_a_deployed_stack(deployed: str, local_aws: LocalAws) -> None:
    out, err = io.StringIO(), io.StringIO()

    code = main(["--stack", deployed, "--region", local_aws.region, "subscriptions"], out=out, err=err)

    assert (code, out.getvalue(), err.getvalue()) == (0, "(none)\n", "")


def test_an_unknown_stack_is_said_plainly(local_aws: LocalAws, monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in local_aws.environment().items():
        monkeypatch.setenv(key, value)

    with pytest.raises(TargetError, match="cannot describe the stack no-such-stack"):
        from_cloudformation("no-such-stack", local_aws.region)


def test_stack_without_region_exits_2() -> None:
    err = io.StringIO()

    code = main(["--stack", "ens-prod", "subscriptions"], out=io.StringIO(), err=err)

    assert code == 2
    assert "--stack needs --region" in err.getvalue()

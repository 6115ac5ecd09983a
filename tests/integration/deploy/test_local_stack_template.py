"""The local stack builds its tables and queues from template.yaml itself: no drift between the two."""

from __future__ import annotations

from typing import Any

import pytest

from ens_local.aws import ProvisionedStack
from ens_local.template import QUEUE, TABLE, Template

pytestmark = pytest.mark.integration


def test_every_table_and_queue_of_the_template_exists_locally_with_its_keys_and_settings(
    provisioned_stack: ProvisionedStack,
) -> None:
    template = Template.load()
    dynamodb = provisioned_stack.aws.client("dynamodb")
    sqs = provisioned_stack.aws.client("sqs")

    assert set(provisioned_stack.table_names) == set(template.logical_ids(TABLE))
    assert set(provisioned_stack.queue_urls) == set(template.logical_ids(QUEUE))
    for logical_id, name in provisioned_stack.table_names.items():
        described: dict[str, Any] = dynamodb.describe_table(TableName=name)["Table"]
        declared = template.properties(logical_id)
        assert described["KeySchema"] == declared["KeySchema"]
        assert {index["IndexName"] for index in described.get("GlobalSecondaryIndexes", [])} == {
            index["IndexName"] for index in declared.get("GlobalSecondaryIndexes", [])
        }
    for logical_id, url in provisioned_stack.queue_urls.items():
        attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["VisibilityTimeout"])[
            "Attributes"
        ]
        assert int(attributes["VisibilityTimeout"]) == int(
            template.properties(logical_id)["VisibilityTimeout"]
        )


def test_the_functions_read_the_secrets_the_local_stack_creates_by_name_through_their_arn_parameters(
    provisioned_stack: ProvisionedStack,
) -> None:
    secrets = provisioned_stack.aws.client("secretsmanager")
    # As the local stack does: the session's moto server may hold the secret from an earlier stack.
    try:
        secrets.create_secret(Name="ens/cns-token", SecretString="local-token")
    except secrets.exceptions.ResourceExistsException:
        secrets.put_secret_value(SecretId="ens/cns-token", SecretString="local-token")
    arn = provisioned_stack.parameters["CnsTokenSecretArn"]

    assert arn.startswith("arn:aws:secretsmanager:")
    assert secrets.get_secret_value(SecretId=arn)["SecretString"] == "local-token"

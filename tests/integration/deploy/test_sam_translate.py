"""What SAM's transform makes of template.yaml: the API stages CloudFormation will really create."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[3]
SAM_PYTHON = REPO / ".venv-sam" / "bin" / "python"


@pytest.fixture(scope="module")
def translated() -> dict[str, Any]:
    if not SAM_PYTHON.exists():
        pytest.fail("SAM's virtualenv missing: run `make venv` (make test does) to create .venv-sam")
    result = subprocess.run(
        [str(SAM_PYTHON), str(REPO / "tests" / "support" / "sam_translate.py"), str(REPO / "template.yaml")],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    document: dict[str, Any] = json.loads(result.stdout)
    return document


def of_type(document: dict[str, Any], resource_type: str) -> dict[str, dict[str, Any]]:
    return {
        logical_id: resource.get("Properties", {})
        for logical_id, resource in document["Resources"].items()
        if resource["Type"] == resource_type
    }


def test_each_api_deploys_only_its_own_throttled_stage_and_no_implicit_stage_named_stage(
    translated: dict[str, Any],
) -> None:
    stages = of_type(translated, "AWS::ApiGateway::Stage")
    deployments = of_type(translated, "AWS::ApiGateway::Deployment")

    # A Deployment with a StageName creates that stage too, without the MethodSettings (throttling)
    # of the real one: SAM adds one named "Stage" unless OpenApiVersion is set.
    created = [(logical_id, props["StageName"]) for logical_id, props in stages.items()] + [
        (logical_id, props["StageName"]) for logical_id, props in deployments.items() if "StageName" in props
    ]

    assert sorted(created) == [("DevicesApiStage", {"Ref": "Stage"}), ("WebhookApiStage", {"Ref": "Stage"})]
    assert stages["WebhookApiStage"]["MethodSettings"][0]["ThrottlingRateLimit"] == 200
    assert stages["DevicesApiStage"]["MethodSettings"][0]["ThrottlingRateLimit"] == 50
    assert set(of_type(translated, "AWS::ApiGateway::RestApi")) == {"WebhookApi", "DevicesApi"}


def test_only_the_functions_that_may_run_in_the_vpc_may_create_network_interfaces(
    translated: dict[str, Any],
) -> None:
    roles = of_type(translated, "AWS::IAM::Role")
    vpc_access = {
        logical_id.removesuffix("Role")
        for logical_id, properties in roles.items()
        if any(
            "AWSLambdaVPCAccessExecutionRole" in str(arn) for arn in properties.get("ManagedPolicyArns", [])
        )
    }

    assert vpc_access == {"ConsumerFunction", "DevicesFunction", "WatchdogFunction"}

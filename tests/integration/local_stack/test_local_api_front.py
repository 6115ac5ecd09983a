"""The HTTP front over real HTTP: API Gateway's proxy event in, the handler's answer out."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests
from aws_lambda_powertools.utilities.parser.models import APIGatewayProxyEventModel

from ens_local.api_gateway import MAX_PAYLOAD_BYTES
from ens_local.stack import LocalStack

pytestmark = pytest.mark.integration

HANDLERS = Path(__file__).parent / "handlers"
TOKEN = "cb-tok-0123456789abcdefABCDEF"


def api_function(handler: str, method: str, path: str) -> dict[str, Any]:
    return {
        "Type": "AWS::Serverless::Function",
        "Properties": {
            "CodeUri": str(HANDLERS / "api"),
            "Handler": f"app.{handler}",
            "Events": {
                "Call": {
                    "Type": "Api",
                    "Properties": {"RestApiId": {"Ref": "WebhookApi"}, "Path": path, "Method": method},
                }
            },
        },
    }


def with_test_handlers(document: dict[str, Any]) -> None:
    """template.yaml, its webhook route served by the echo handler, plus routes that misbehave."""
    webhook = document["Resources"]["WebhookFunction"]["Properties"]
    webhook["CodeUri"] = str(HANDLERS / "api")
    webhook["Handler"] = "app.echo"
    document["Resources"]["BinaryFunction"] = api_function("binary", "post", "/binary")
    document["Resources"]["SizeFunction"] = api_function("size", "post", "/size")
    document["Resources"]["BoomFunction"] = api_function("boom", "get", "/boom")
    document["Resources"]["MalformedFunction"] = api_function("malformed", "get", "/malformed")


@pytest.fixture
def stack(local_stack_factory: Callable[..., LocalStack], template_copy: Callable[..., Path]) -> LocalStack:
    return local_stack_factory(template_copy(with_test_handlers), start_pollers=False)


def test_a_request_reaches_the_handler_as_an_api_gateway_rest_proxy_event(stack: LocalStack) -> None:
    response = requests.post(
        f"{stack.api_url}/ews/notifications/{TOKEN}?a=1&a=2",
        data="<soap>é</soap>".encode(),
        headers={"Content-Type": "text/xml; charset=utf-8", "X-Custom": "v"},
        timeout=10,
    )

    assert response.status_code == 200
    echoed = response.json()
    event, context = echoed["event"], echoed["context"]
    APIGatewayProxyEventModel.model_validate(event)
    assert event["resource"] == "/ews/notifications/{token}"
    assert event["path"] == f"/ews/notifications/{TOKEN}"
    assert event["httpMethod"] == "POST"
    assert event["pathParameters"] == {"token": TOKEN}
    assert event["multiValueQueryStringParameters"] == {"a": ["1", "2"]}
    assert event["headers"]["X-Custom"] == "v"
    assert event["headers"]["Content-Type"] == "text/xml; charset=utf-8"
    assert event["body"] == "<soap>é</soap>"
    assert event["isBase64Encoded"] is False
    assert event["requestContext"]["stage"] == "dev"  # template.yaml's Stage default
    assert event["requestContext"]["identity"]["sourceIp"] == "127.0.0.1"
    assert context["function_name"] == f"{stack.settings.stack.stack_name}-WebhookFunction"
    assert context["memory_limit_in_mb"] == 512
    assert 0 < context["remaining_ms"] <= 10_000


def test_the_handler_headers_and_multi_value_headers_come_back(stack: LocalStack) -> None:
    response = requests.post(f"{stack.api_url}/ews/notifications/{TOKEN}", data=b"x", timeout=10)

    assert response.headers["X-Echo"] == "yes"
    assert response.raw.headers.getlist("Set-Cookie") == ["a=1", "b=2"]
    assert response.headers["x-amzn-RequestId"]


def test_the_stage_prefix_of_the_execute_api_url_is_accepted_too(stack: LocalStack) -> None:
    response = requests.post(f"{stack.api_url}/dev/ews/notifications/{TOKEN}", data=b"x", timeout=10)

    assert response.status_code == 200
    assert response.json()["event"]["path"] == f"/ews/notifications/{TOKEN}"


def test_a_binary_body_round_trips_through_base64_both_ways(stack: LocalStack) -> None:
    raw = bytes(range(256)) * 4

    response = requests.post(f"{stack.api_url}/binary", data=raw, timeout=10)

    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/octet-stream"
    assert response.content == raw


def test_a_payload_of_exactly_ten_mebibytes_is_accepted(stack: LocalStack) -> None:
    response = requests.post(f"{stack.api_url}/size", data=b"a" * MAX_PAYLOAD_BYTES, timeout=30)

    assert response.status_code == 200
    assert response.json() == {"bytes": MAX_PAYLOAD_BYTES}


def test_a_payload_over_ten_mebibytes_gets_413_without_calling_the_handler(stack: LocalStack) -> None:
    calls = stack.functions["WebhookFunction"].module.CALLS

    response = requests.post(
        f"{stack.api_url}/ews/notifications/{TOKEN}", data=b"a" * (MAX_PAYLOAD_BYTES + 1), timeout=30
    )

    assert response.status_code == 413
    assert response.json() == {"message": "Request Too Long"}
    assert calls == []


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/nowhere"),
        ("GET", f"/ews/notifications/{TOKEN}"),
        ("POST", "/ews/notifications"),
        ("PUT", "/boom"),
    ],
)
def test_an_unknown_route_or_method_is_refused_as_a_rest_api_does(
    stack: LocalStack, method: str, path: str
) -> None:
    response = requests.request(method, f"{stack.api_url}{path}", timeout=10)

    assert response.status_code == 403
    assert response.json() == {"message": "Missing Authentication Token"}
    assert response.headers["x-amzn-ErrorType"] == "MissingAuthenticationTokenException"


def test_a_handler_exception_is_a_502_and_its_traceback_is_logged(
    stack: LocalStack, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="local_stack.api"):
        response = requests.get(f"{stack.api_url}/boom", timeout=10)

    assert response.status_code == 502
    assert response.json() == {"message": "Internal server error"}
    assert "the handler failed on purpose" in caplog.text
    assert "Traceback" in caplog.text


def test_a_malformed_proxy_result_is_a_502(stack: LocalStack) -> None:
    response = requests.get(f"{stack.api_url}/malformed", timeout=10)

    assert response.status_code == 502
    assert response.json() == {"message": "Internal server error"}


def test_one_line_is_logged_per_request_and_it_never_shows_the_token(
    stack: LocalStack, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="local_stack.api"):
        requests.post(f"{stack.api_url}/ews/notifications/{TOKEN}", data=b"x", timeout=10)
        requests.get(f"{stack.api_url}/ews/notification/{TOKEN}", timeout=10)

    lines = [record.getMessage() for record in caplog.records if record.name == "local_stack.api"]
    assert len(lines) == 2
    assert lines[0].startswith("POST /ews/notifications/{token} -> 200 ")
    assert lines[0].endswith(" ms (WebhookFunction)")
    assert lines[1].startswith("GET /ews/notification/{…} -> 403 ")
    assert all(TOKEN not in line for line in caplog.text.splitlines())


def test_concurrent_requests_are_all_answered(stack: LocalStack) -> None:
    from concurrent.futures import ThreadPoolExecutor

    def call(index: int) -> int:
        body = base64.b64encode(str(index).encode())
        return requests.post(f"{stack.api_url}/ews/notifications/t{index}", data=body, timeout=10).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(call, range(16)))

    assert statuses == [200] * 16
    assert json.dumps(statuses)

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

from ens_local.api_gateway import LAMBDA_MAX_EVENT_BYTES, MAX_PAYLOAD_BYTES
from ens_local.stack import LocalStack

pytestmark = pytest.mark.integration

HANDLERS = Path(__file__).parent / "handlers"
TOKEN = "cb-tok-0123456789abcdefABCDEF"
XML = {"Content-Type": "text/xml; charset=utf-8"}


def api_function(handler: str, method: str, path: str, api: str | None = "WebhookApi") -> dict[str, Any]:
    """A function on route `path` of RestApi `api`; None puts it on SAM's implicit API."""
    properties: dict[str, Any] = {"Path": path, "Method": method}
    if api is not None:
        properties["RestApiId"] = {"Ref": api}
    return {
        "Type": "AWS::Serverless::Function",
        "Properties": {
            "CodeUri": str(HANDLERS / "api"),
            "Handler": f"app.{handler}",
            "Events": {"Call": {"Type": "Api", "Properties": properties}},
        },
    }


def with_test_handlers(document: dict[str, Any], binary_media_types: list[str] | None = None) -> None:
    """template.yaml, its webhook route served by the echo handler, plus routes that misbehave.

    WebhookApi gets exactly `binary_media_types` (written with ~1, as in a template), or none.
    """
    api = document["Resources"]["WebhookApi"]["Properties"]
    api.pop("BinaryMediaTypes", None)
    if binary_media_types:
        api["BinaryMediaTypes"] = binary_media_types
    webhook = document["Resources"]["WebhookFunction"]["Properties"]
    webhook["CodeUri"] = str(HANDLERS / "api")
    webhook["Handler"] = "app.echo"
    document["Resources"]["BinaryFunction"] = api_function("binary", "post", "/binary")
    document["Resources"]["SizeFunction"] = api_function("size", "post", "/size")
    document["Resources"]["BoomFunction"] = api_function("boom", "get", "/boom")
    document["Resources"]["MalformedFunction"] = api_function("malformed", "get", "/malformed")
    document["Resources"]["ImplicitFunction"] = api_function("echo", "post", "/implicit", api=None)


@pytest.fixture
def stack(local_stack_factory: Callable[..., LocalStack], template_copy: Callable[..., Path]) -> LocalStack:
    """WebhookApi without BinaryMediaTypes: every body travels as text."""
    return local_stack_factory(template_copy(with_test_handlers), start_pollers=False)


@pytest.fixture
def binary_stack(
    local_stack_factory: Callable[..., LocalStack], template_copy: Callable[..., Path]
) -> LocalStack:
    """WebhookApi treats image/png and application/octet-stream as binary."""
    return local_stack_factory(
        template_copy(
            lambda document: with_test_handlers(document, ["image~1png", "application~1octet-stream"])
        ),
        start_pollers=False,
    )


@pytest.fixture
def all_binary_stack(
    local_stack_factory: Callable[..., LocalStack], template_copy: Callable[..., Path]
) -> LocalStack:
    """WebhookApi with BinaryMediaTypes "*~1*": every body on it is binary."""
    return local_stack_factory(
        template_copy(lambda document: with_test_handlers(document, ["*~1*"])), start_pollers=False
    )


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
    assert context["memory_limit_in_mb"] == stack.functions["WebhookFunction"].spec.memory_mb
    assert 0 < context["remaining_ms"] <= stack.functions["WebhookFunction"].spec.timeout_seconds * 1000


def test_a_path_parameter_reaches_the_handler_decoded_once_as_api_gateway_passes_it(
    stack: LocalStack,
) -> None:
    encoded = "local-demo-token-%2562ob-0123456789abcdefghij"

    response = requests.post(f"{stack.api_url}/ews/notifications/{encoded}", data=b"x", timeout=10)

    event = response.json()["event"]
    assert event["pathParameters"] == {"token": "local-demo-token-%62ob-0123456789abcdefghij"}
    assert event["path"] == f"/ews/notifications/{encoded}"  # a REST API's event keeps the path as sent


def test_the_handler_headers_and_multi_value_headers_come_back(stack: LocalStack) -> None:
    response = requests.post(f"{stack.api_url}/ews/notifications/{TOKEN}", data=b"x", timeout=10)

    assert response.headers["X-Echo"] == "yes"
    assert response.raw.headers.getlist("Set-Cookie") == ["a=1", "b=2"]
    assert response.headers["x-amzn-RequestId"]


def test_the_stage_prefix_of_the_execute_api_url_is_accepted_too(stack: LocalStack) -> None:
    response = requests.post(f"{stack.api_url}/dev/ews/notifications/{TOKEN}", data=b"x", timeout=10)

    assert response.status_code == 200
    assert response.json()["event"]["path"] == f"/ews/notifications/{TOKEN}"


def test_without_binary_media_types_a_body_is_text_and_bytes_that_are_not_utf8_are_replaced(
    stack: LocalStack,
) -> None:
    raw = "<soap>é</soap>".encode() + b"\xff"

    response = requests.post(
        f"{stack.api_url}/ews/notifications/{TOKEN}",
        data=raw,
        headers={"Content-Type": "application/octet-stream"},
        timeout=10,
    )

    event = response.json()["event"]
    assert event["isBase64Encoded"] is False
    assert event["body"] == "<soap>é</soap>\ufffd"


def test_a_body_of_a_binary_media_type_round_trips_through_base64_both_ways(binary_stack: LocalStack) -> None:
    raw = bytes(range(256)) * 4

    response = requests.post(
        f"{binary_stack.api_url}/binary", data=raw, headers={"Content-Type": "image/png"}, timeout=10
    )

    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/octet-stream"
    assert response.content == raw


@pytest.mark.parametrize(
    ("content_type", "binary"),
    [
        ("image/png", True),
        ("application/octet-stream", True),
        ("text/xml; charset=utf-8", False),
        (None, False),
    ],
)
def test_only_a_content_type_in_the_api_s_binary_media_types_is_base64(
    binary_stack: LocalStack, content_type: str | None, binary: bool
) -> None:
    raw = "<soap>é</soap>".encode()

    response = requests.post(
        f"{binary_stack.api_url}/ews/notifications/{TOKEN}",
        data=raw,
        headers={"Content-Type": content_type} if content_type else {},
        timeout=10,
    )

    event = response.json()["event"]
    assert event["isBase64Encoded"] is binary
    assert (base64.b64decode(event["body"]) if binary else event["body"].encode()) == raw


def test_binary_media_types_belong_to_their_api_not_to_sam_s_implicit_one(
    all_binary_stack: LocalStack,
) -> None:
    def post(path: str) -> dict[str, Any]:
        response = requests.post(
            f"{all_binary_stack.api_url}{path}", data="<soap>é</soap>".encode(), headers=XML, timeout=10
        )
        return response.json()["event"]

    on_webhook_api, on_implicit_api = post(f"/ews/notifications/{TOKEN}"), post("/implicit")

    assert on_webhook_api["isBase64Encoded"] is True
    assert base64.b64decode(on_webhook_api["body"]) == "<soap>é</soap>".encode()
    assert on_implicit_api["isBase64Encoded"] is False
    assert on_implicit_api["body"] == "<soap>é</soap>"


def test_an_event_just_within_lambda_s_payload_limit_is_delivered_and_one_byte_more_is_a_500(
    stack: LocalStack, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"{stack.api_url}/size"
    calls = stack.functions["SizeFunction"].module.CALLS
    # What the event adds to the body; a 7-digit body keeps Content-Length as long as below.
    probe = requests.post(url, data=b"a" * 1_000_000, timeout=30).json()
    fits = LAMBDA_MAX_EVENT_BYTES - (probe["event_bytes"] - 1_000_000)
    calls_before = len(calls)

    at_limit = requests.post(url, data=b"a" * fits, timeout=30)
    with caplog.at_level(logging.ERROR, logger="local_stack.api"):
        over = requests.post(url, data=b"a" * (fits + 1), timeout=30)

    assert at_limit.status_code == 200
    assert at_limit.json() == {"bytes": fits, "event_bytes": LAMBDA_MAX_EVENT_BYTES}
    assert over.status_code == 500
    assert over.json() == {"message": "Internal server error"}
    assert len(calls) == calls_before + 1  # only the body at the limit reached the handler
    assert "RequestEntityTooLargeException" in caplog.text


def test_base64_counts_against_lambda_s_payload_limit(all_binary_stack: LocalStack) -> None:
    body = b"a" * 4_800_000  # 6.4 MB once base64 encoded

    response = requests.post(f"{all_binary_stack.api_url}/size", data=body, timeout=30)
    as_text = requests.post(f"{all_binary_stack.api_url}/implicit", data=body, headers=XML, timeout=30)

    assert response.status_code == 500
    assert response.json() == {"message": "Internal server error"}
    assert as_text.status_code == 200  # the same body as text, on an API without BinaryMediaTypes


def test_a_payload_of_exactly_ten_mebibytes_passes_api_gateway_but_lambda_refuses_its_event(
    stack: LocalStack,
) -> None:
    calls = stack.functions["SizeFunction"].module.CALLS

    response = requests.post(f"{stack.api_url}/size", data=b"a" * MAX_PAYLOAD_BYTES, timeout=30)

    assert response.status_code == 500  # not API Gateway's 413: the body is within its limit
    assert response.json() == {"message": "Internal server error"}
    assert calls == []


def test_a_payload_over_ten_mebibytes_gets_413_without_calling_the_handler(stack: LocalStack) -> None:
    calls = stack.functions["WebhookFunction"].module.CALLS

    response = requests.post(
        f"{stack.api_url}/ews/notifications/{TOKEN}", data=b"a" * (MAX_PAYLOAD_BYTES + 1), timeout=30
    )

    assert response.status_code == 413
    assert response.json() == {"message": "Request Too Long"}
    assert calls == []


def test_an_outage_answers_503_to_its_paths_without_calling_the_handler_until_restored(
    stack: LocalStack,
) -> None:
    assert stack.front is not None
    calls = stack.functions["WebhookFunction"].module.CALLS
    stack.front.fail_requests("/ews/notifications/")

    down = [
        requests.post(f"{stack.api_url}{path}", data=b"x", timeout=10).status_code
        for path in (f"/ews/notifications/{TOKEN}", f"/dev/ews/notifications/{TOKEN}")
    ]
    elsewhere = requests.post(f"{stack.api_url}/implicit", data=b"x", timeout=10)
    stack.front.restore()
    after = requests.post(f"{stack.api_url}/ews/notifications/{TOKEN}", data=b"x", timeout=10)

    assert down == [503, 503]
    assert elsewhere.status_code == 200
    assert after.status_code == 200
    assert calls == [f"/ews/notifications/{TOKEN}"]  # only the request after the outage


def test_an_outage_of_a_count_fails_that_many_requests_and_then_lets_them_through(
    stack: LocalStack,
) -> None:
    assert stack.front is not None
    outage = stack.front.fail_requests("/ews/", count=2)

    statuses = [
        requests.post(f"{stack.api_url}/ews/notifications/{TOKEN}", data=b"x", timeout=10).status_code
        for _ in range(3)
    ]

    assert statuses == [503, 503, 200]
    assert outage.failed == 2


def test_an_outage_of_a_fraction_fails_the_same_requests_for_the_same_seed(stack: LocalStack) -> None:
    assert stack.front is not None
    runs = []
    for _ in range(2):
        stack.front.fail_requests("/ews/", fraction=0.5, seed=7)
        runs.append(
            [
                requests.post(f"{stack.api_url}/ews/notifications/{TOKEN}", data=b"x", timeout=10).status_code
                for _ in range(12)
            ]
        )

    assert runs[0] == runs[1]
    assert set(runs[0]) == {200, 503}


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

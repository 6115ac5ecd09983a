"""The API Gateway REST proxy event the front builds, and how a handler's answer becomes HTTP."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

import pytest
from aws_lambda_powertools.utilities.parser.models import APIGatewayProxyEventModel

from ens_local.api_gateway import (
    MalformedProxyResponse,
    Router,
    build_rest_proxy_event,
    is_binary_media_type,
    lambda_payload_bytes,
    reply_from_proxy_result,
)
from ens_local.template import ApiRoute

pytestmark = pytest.mark.unit

ROUTE = ApiRoute("WebhookFunction", "POST", "/ews/notifications/{token}", api="WebhookApi")


def test_the_event_has_the_shape_powertools_parses_for_a_rest_api() -> None:
    event = build_rest_proxy_event(
        "POST",
        "/ews/notifications/tok-1",
        ROUTE,
        headers=[("Host", "127.0.0.1:3000"), ("X-Dup", "first"), ("X-Dup", "second"), ("User-Agent", "EWS")],
        body=b"<soap/>",
        query="a=1&a=2&empty=",
        path_parameters={"token": "tok-1"},
        stage="dev",
        now=datetime(2026, 11, 28, 8, 30, tzinfo=UTC),
    )

    parsed = APIGatewayProxyEventModel.model_validate(event)
    assert parsed.resource == "/ews/notifications/{token}"
    assert parsed.path == "/ews/notifications/tok-1"
    assert parsed.pathParameters == {"token": "tok-1"}
    assert event["headers"]["X-Dup"] == "second"  # the last repeated header wins
    assert event["multiValueHeaders"]["X-Dup"] == ["first", "second"]
    assert event["queryStringParameters"] == {"a": "2", "empty": ""}
    assert event["multiValueQueryStringParameters"] == {"a": ["1", "2"], "empty": [""]}
    context = event["requestContext"]
    assert context["path"] == "/dev/ews/notifications/tok-1"  # requestContext.path carries the stage
    assert context["stage"] == "dev"
    assert context["resourcePath"] == "/ews/notifications/{token}"
    assert context["requestTime"] == "28/Nov/2026:08:30:00 +0000"
    assert context["requestTimeEpoch"] == 1795854600000
    assert context["identity"]["sourceIp"] == "127.0.0.1"
    assert context["identity"]["userAgent"] == "EWS"
    assert event["body"] == "<soap/>"
    assert event["isBase64Encoded"] is False


def test_a_request_without_body_query_or_path_parameters_has_nulls_as_in_aws() -> None:
    event = build_rest_proxy_event("GET", "/health", "/health", headers={"Host": "h"})

    assert event["body"] is None
    assert event["queryStringParameters"] is None
    assert event["multiValueQueryStringParameters"] is None
    assert event["pathParameters"] is None
    assert event["stageVariables"] is None


def test_without_binary_media_types_a_body_is_utf8_text_and_invalid_bytes_are_replaced() -> None:
    raw = "<soap>é</soap>".encode() + b"\xff\xfe"

    event = build_rest_proxy_event("POST", "/x", "/x", headers={"Host": "h"}, body=raw)

    assert event["isBase64Encoded"] is False
    assert event["body"] == "<soap>é</soap>\ufffd\ufffd"


@pytest.mark.parametrize("raw", [bytes(range(256)), "<soap>é</soap>".encode()])
def test_a_binary_body_travels_base64_encoded_and_byte_exact(raw: bytes) -> None:
    event = build_rest_proxy_event("POST", "/x", "/x", headers={"Host": "h"}, body=raw, binary=True)

    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == raw
    APIGatewayProxyEventModel.model_validate(event)


def test_an_empty_body_is_null_whether_binary_or_not() -> None:
    for binary in (False, True):
        event = build_rest_proxy_event("POST", "/x", "/x", body=b"", binary=binary)
        assert (event["body"], event["isBase64Encoded"]) == (None, False)


@pytest.mark.parametrize(
    ("content_type", "binary_media_types", "binary"),
    [
        ("image/png", ["image/png"], True),
        ("IMAGE/PNG", ["image/png"], True),  # media types compare without case
        ("image/png", ["image/*"], True),
        ("text/xml; charset=utf-8", ["*/*"], True),
        ("multipart/form-data; boundary=xyz", ["multipart/form-data"], True),  # parameters do not count
        ("application/vnd.api+json", ["application/*+json"], True),
        (None, ["*/*"], True),  # no Content-Type: application/json, which */* matches
        (None, ["application/json"], True),
        ("text/xml; charset=utf-8", [], False),  # no BinaryMediaTypes: always text
        ("text/xml", ["image/png", "application/octet-stream"], False),
        ("image/pngx", ["image/png"], False),  # a pattern matches the whole media type
        ("text/plain", ["text.plain"], False),  # only * is special
        (None, ["text/*"], False),
    ],
)
def test_the_content_type_is_matched_against_binary_media_types(
    content_type: str | None, binary_media_types: list[str], binary: bool
) -> None:
    assert is_binary_media_type(content_type, binary_media_types) is binary


def test_the_lambda_payload_size_counts_the_compact_utf8_json_of_the_event() -> None:
    event = {"body": "é" * 10, "isBase64Encoded": False}

    # 2 bytes per é, not the 6 of an ASCII-escaped \u00e9.
    assert lambda_payload_bytes(event) == len('{"body":"","isBase64Encoded":false}') + 20


def test_each_event_gets_its_own_request_id() -> None:
    first = build_rest_proxy_event("GET", "/x", "/x")
    second = build_rest_proxy_event("GET", "/x", "/x")

    assert first["requestContext"]["requestId"] != second["requestContext"]["requestId"]


def test_the_reply_merges_headers_and_multi_value_headers_as_api_gateway_does() -> None:
    reply = reply_from_proxy_result(
        {
            "statusCode": 201,
            "headers": {"X-One": "1", "X-Both": "from-headers", "X-Number": 5},
            "multiValueHeaders": {"X-Both": ["a", "b"], "Set-Cookie": ["c=1", "d=2"]},
            "body": "ok",
        }
    )

    assert reply.status == 201
    assert ("X-One", "1") in reply.headers
    assert ("X-Number", "5") in reply.headers
    assert [value for name, value in reply.headers if name == "X-Both"] == ["a", "b"]
    assert [value for name, value in reply.headers if name == "Set-Cookie"] == ["c=1", "d=2"]
    assert ("Content-Type", "application/json") in reply.headers  # API Gateway's default
    assert reply.body == b"ok"


def test_a_base64_reply_body_is_decoded_to_bytes() -> None:
    raw = b"\x00\xffbinary"

    reply = reply_from_proxy_result(
        {"statusCode": 200, "body": base64.b64encode(raw).decode(), "isBase64Encoded": True}
    )

    assert reply.body == raw


def test_a_reply_without_body_is_empty() -> None:
    assert reply_from_proxy_result({"statusCode": 204}).body == b""


@pytest.mark.parametrize(
    "result",
    [
        None,
        "200",
        {"body": "no status"},
        {"statusCode": 99},
        {"statusCode": True},
        {"statusCode": 200, "body": {"not": "a string"}},
        {"statusCode": 200, "unexpected": 1},
        {"statusCode": 200, "headers": {"X": {"nested": 1}}},
        {"statusCode": 200, "multiValueHeaders": {"X": "not a list"}},
        {"statusCode": 200, "body": "***", "isBase64Encoded": True},
    ],
)
def test_a_malformed_proxy_result_is_refused(result: Any) -> None:
    with pytest.raises(MalformedProxyResponse):
        reply_from_proxy_result(result)


def test_routes_match_literal_segments_before_parameters_and_greedy_paths() -> None:
    router = Router(
        [
            ApiRoute("Greedy", "ANY", "/files/{proxy+}"),
            ApiRoute("Param", "GET", "/files/{name}"),
            ApiRoute("Literal", "GET", "/files/index"),
        ]
    )

    assert router.match("GET", "/files/index").route.function == "Literal"
    param = router.match("GET", "/files/a%20b")
    assert (param.route.function, param.path_parameters) == ("Param", {"name": "a b"})
    greedy = router.match("DELETE", "/files/a/b/c")
    assert (greedy.route.function, greedy.path_parameters) == ("Greedy", {"proxy": "a/b/c"})
    assert router.match("GET", "/elsewhere") is None


def test_a_path_parameter_is_decoded_once_when_it_holds_an_encoded_percent() -> None:
    router = Router([ROUTE])

    found = router.match("POST", "/ews/notifications/local-demo-token-%2562ob-0123456789")

    assert found is not None
    assert found.path_parameters == {"token": "local-demo-token-%62ob-0123456789"}


def test_an_encoded_slash_stays_inside_its_path_parameter() -> None:
    found = Router([ROUTE]).match("POST", "/ews/notifications/a%2Fb")

    assert found is not None
    assert found.path_parameters == {"token": "a/b"}


def test_logged_paths_never_show_path_parameters() -> None:
    router = Router([ROUTE])
    token = "Zm9vYmFyYmF6cXV4cXV1eA-secret"

    assert router.masked(f"/ews/notifications/{token}") == "/ews/notifications/{token}"
    assert token not in router.masked(f"/ews/notification/{token}")  # an unknown route's token-like segment
    assert router.masked("/ews/other") == "/ews/other"

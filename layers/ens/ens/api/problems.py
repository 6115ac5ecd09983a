"""RFC 9457 problem documents for ENS's HTTP APIs, and the request envelope checks before routing.

Shared by API handlers so each stays a screenful of routes: the answer's shape, its OpenAPI
description and the body's size and media type are decided once, here.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse, OpenAPIResponseHeader
from pydantic import BaseModel, ConfigDict

PROBLEM_JSON = "application/problem+json"


class FieldProblem(BaseModel):
    """One invalid part of a request: where (`body.rules.work_start`, `query.limit`) and why."""

    model_config = ConfigDict(frozen=True)

    location: str
    message: str


class Problem(BaseModel):
    """An RFC 9457 problem document."""

    model_config = ConfigDict(frozen=True)

    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    code: str | None = None  # 422: what an admin must fix (impersonation_denied, mailbox_unknown, ...)
    errors: list[FieldProblem] | None = None  # 400: every invalid field


class ProblemRaised(Exception):
    """Ends a request with a problem document, from wherever in the handler it is known."""

    def __init__(self, problem: Problem, headers: Mapping[str, str] | None = None, reason: str = "") -> None:
        super().__init__(problem.title)
        self.problem = problem
        self.headers = dict(headers or {})
        self.reason = reason


def problem_responses(*statuses: HTTPStatus) -> dict[int, OpenAPIResponse]:
    responses: dict[int, OpenAPIResponse] = {}
    for status in statuses:
        response: OpenAPIResponse = {
            "description": _PROBLEM_DESCRIPTIONS[status],
            "content": {PROBLEM_JSON: {"model": Problem}},
        }
        if status in _PROBLEM_HEADERS:
            response["headers"] = {_PROBLEM_HEADERS[status][0]: _PROBLEM_HEADERS[status][1]}
        responses[status.value] = response
    return responses


_PROBLEM_DESCRIPTIONS = {
    HTTPStatus.BAD_REQUEST: "Invalid request: `errors` lists each invalid field",
    HTTPStatus.UNAUTHORIZED: "No valid bearer token (see WWW-Authenticate)",
    HTTPStatus.FORBIDDEN: "The token's mailbox may not act for this device or mailbox",
    HTTPStatus.NOT_FOUND: "No such device (or not a device id)",
    HTTPStatus.REQUEST_ENTITY_TOO_LARGE: "The body exceeds 64 KiB",
    HTTPStatus.UNSUPPORTED_MEDIA_TYPE: "The body is not application/json",
    HTTPStatus.UNPROCESSABLE_ENTITY: "Exchange refused the subscription; `code` says what an admin must fix",
    HTTPStatus.SERVICE_UNAVAILABLE: "Exchange or AWS is unavailable: retry after Retry-After seconds",
    HTTPStatus.INTERNAL_SERVER_ERROR: "An unexpected error; nothing was changed half-way",
}
_PROBLEM_HEADERS: dict[HTTPStatus, tuple[str, OpenAPIResponseHeader]] = {
    HTTPStatus.UNAUTHORIZED: (
        "WWW-Authenticate",
        {"description": "The RFC 6750 challenge", "schema": {"type": "string"}},
    ),
    HTTPStatus.SERVICE_UNAVAILABLE: (
        "Retry-After",
        {"description": "Seconds to wait before retrying", "schema": {"type": "integer", "minimum": 1}},
    ),
}
COMMON_PROBLEMS = (
    HTTPStatus.UNAUTHORIZED,
    HTTPStatus.FORBIDDEN,
    HTTPStatus.NOT_FOUND,
    HTTPStatus.SERVICE_UNAVAILABLE,
    HTTPStatus.INTERNAL_SERVER_ERROR,
)


def check_json_body(event: Mapping[str, Any], headers: Mapping[str, str], path: str, max_bytes: int) -> None:
    """Refuse an oversized body (413) or one that is not JSON (415) before anything parses it."""
    body = event.get("body") or ""
    size = len(body.encode()) if isinstance(body, str) else 0
    if event.get("isBase64Encoded"):
        try:
            size = len(base64.b64decode(body, validate=True))
        except (binascii.Error, ValueError):
            size = len(body)
    if size > max_bytes:
        raise ProblemRaised(
            Problem(
                title=HTTPStatus.REQUEST_ENTITY_TOO_LARGE.phrase,
                status=HTTPStatus.REQUEST_ENTITY_TOO_LARGE.value,
                detail=f"the body exceeds {max_bytes} bytes",
                instance=path,
            )
        )
    media_type = headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type != "application/json" and not (
        media_type.startswith("application/") and media_type.endswith("+json")
    ):
        raise ProblemRaised(
            Problem(
                title=HTTPStatus.UNSUPPORTED_MEDIA_TYPE.phrase,
                status=HTTPStatus.UNSUPPORTED_MEDIA_TYPE.value,
                detail="the body must be application/json",
                instance=path,
            ),
            {"Accept": "application/json"},
        )


def proxy_result(problem: Problem, headers: Mapping[str, str]) -> dict[str, Any]:
    return {
        "statusCode": problem.status,
        "headers": {"Content-Type": PROBLEM_JSON, **headers},
        "body": problem.model_dump_json(exclude_none=True),
        "isBase64Encoded": False,
    }

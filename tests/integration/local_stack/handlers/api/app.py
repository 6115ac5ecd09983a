"""Test-only API handlers: they show what the HTTP front hands a Lambda and how it maps answers."""

from __future__ import annotations

import base64
import json
from typing import Any

from aws_lambda_powertools import Logger

# Like the real functions: Powertools' Logger filters the root handlers by service name, and the
# stack's own log lines must survive that.
logger = Logger(service="ens")
CALLS: list[str] = []  # paths of the events received, so a test can prove a handler was not called


@logger.inject_lambda_context
def echo(event: dict[str, Any], context: Any) -> dict[str, Any]:
    CALLS.append(event["path"])
    return {
        "statusCode": 200,
        "headers": {"Content-Type": "application/json", "X-Echo": "yes"},
        "multiValueHeaders": {"Set-Cookie": ["a=1", "b=2"]},
        "body": json.dumps(
            {
                "event": event,
                "context": {
                    "function_name": context.function_name,
                    "aws_request_id": context.aws_request_id,
                    "invoked_function_arn": context.invoked_function_arn,
                    "memory_limit_in_mb": context.memory_limit_in_mb,
                    "remaining_ms": context.get_remaining_time_in_millis(),
                },
            }
        ),
    }


def binary(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Answers with exactly the bytes it received, base64 encoded as API Gateway expects."""
    raw = base64.b64decode(event["body"]) if event["isBase64Encoded"] else (event["body"] or "").encode()
    return {
        "statusCode": 200,
        "headers": {"Content-Type": "application/octet-stream"},
        "body": base64.b64encode(raw).decode("ascii"),
        "isBase64Encoded": True,
    }


def size(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """The body's length, and the event's as the JSON Lambda's invocation payload limit counts."""
    CALLS.append(event["path"])
    body = event["body"] or ""
    length = len(base64.b64decode(body)) if event["isBase64Encoded"] else len(body.encode())
    event_bytes = len(json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode())
    return {"statusCode": 200, "body": json.dumps({"bytes": length, "event_bytes": event_bytes})}


def boom(event: dict[str, Any], context: Any) -> dict[str, Any]:
    raise RuntimeError("the handler failed on purpose")


def malformed(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return {"status": 200, "body": "statusCode is missing"}

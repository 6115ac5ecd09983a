"""Test-only SQS consumer: reports a record as failed when its body says "fail"."""

from __future__ import annotations

from typing import Any

BATCHES: list[list[str]] = []  # bodies per invocation, in order


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    bodies = [record["body"] for record in event["Records"]]
    BATCHES.append(bodies)
    return {
        "batchItemFailures": [
            {"itemIdentifier": record["messageId"]} for record in event["Records"] if "fail" in record["body"]
        ]
    }

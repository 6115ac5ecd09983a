"""Test-only SQS consumer: reports a record as failed when its body says "fail"."""

from __future__ import annotations

import threading
from typing import Any

BATCHES: list[list[str]] = []  # bodies per invocation, in order
# Notified after each invocation, so a test can wait for a background poller without sleeping.
INVOKED = threading.Condition()


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    bodies = [record["body"] for record in event["Records"]]
    with INVOKED:
        BATCHES.append(bodies)
        INVOKED.notify_all()
    return {
        "batchItemFailures": [
            {"itemIdentifier": record["messageId"]} for record in event["Records"] if "fail" in record["body"]
        ]
    }

"""Reading what landed on a local SQS queue, for tests and benchmarks."""

from __future__ import annotations

import json
from typing import Any


def take_all(sqs: Any, queue_url: str) -> list[dict[str, Any]]:
    """Every visible message's JSON body, the messages deleted (PurgeQueue is allowed once a minute only)."""
    bodies: list[dict[str, Any]] = []
    while batch := sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get(
        "Messages"
    ):
        bodies += [json.loads(message["Body"]) for message in batch]
        sqs.delete_message_batch(
            QueueUrl=queue_url,
            Entries=[{"Id": m["MessageId"], "ReceiptHandle": m["ReceiptHandle"]} for m in batch],
        )
    return bodies

"""dlq show|replay: the dead-letter queue of mail events, read without losing a message.

SQS's StartMessageMoveTask would re-drive server-side, but moto (the local stack) does not serve it,
and one code path tested locally beats two: replay receives a batch, sends it to the main queue, and
deletes from the dead-letter queue only what the main queue accepted. A message whose send failed
stays where it was (visible again after the short visibility timeout); one sent whose delete then
failed is the only case that can arrive twice, and the consumer's idempotency pushes it once.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ens_admin.target import Deployment

# Long enough to finish one batch (send + delete) before the message could be seen again.
HOLD_SECONDS = 60
_BATCH = 10


@dataclass
class ReplayResult:
    moved: list[str] = field(default_factory=list)  # message ids, as received from the DLQ
    failed: list[dict[str, str]] = field(default_factory=list)  # {message_id, error}


def _receive(sqs: Any, queue_url: str, most: int) -> list[dict[str, Any]]:
    # Never more than will be handled: a message received and left alone stays hidden for HOLD_SECONDS.
    response = sqs.receive_message(
        QueueUrl=queue_url,
        MaxNumberOfMessages=max(1, min(_BATCH, most)),
        WaitTimeSeconds=0,
        VisibilityTimeout=HOLD_SECONDS,
        AttributeNames=["All"],
        MessageAttributeNames=["All"],
    )
    return list(response.get("Messages", []))


def _summary(message: dict[str, Any]) -> dict[str, Any]:
    attributes = message.get("Attributes", {})
    sent = attributes.get("SentTimestamp")
    try:
        body = json.loads(message["Body"])
    except ValueError:
        body = None
    event = body if isinstance(body, dict) else {}
    return {
        "message_id": message["MessageId"],
        "sent_at": datetime.fromtimestamp(int(sent) / 1000, UTC).isoformat(timespec="seconds")
        if sent
        else None,
        "receives": int(attributes.get("ApproximateReceiveCount", 0)),
        "kind": event.get("kind"),
        "mailbox": event.get("mailbox"),
        "body": message["Body"] if body is None else body,
    }


def show(deployment: Deployment, *, limit: int) -> list[dict[str, Any]]:
    """Up to `limit` messages, left in the queue: each is held while the queue is paged through (so
    none is listed twice), then made visible again at once."""
    sqs = deployment.client("sqs")
    queue = deployment.queue("NotificationsDeadLetterQueue")
    seen: dict[str, dict[str, Any]] = {}
    handles: list[str] = []
    try:
        while len(seen) < limit:
            batch = _receive(sqs, queue, limit - len(seen))
            if not batch:
                break
            for message in batch:
                handles.append(message["ReceiptHandle"])
                seen.setdefault(message["MessageId"], _summary(message))
    finally:
        for start in range(0, len(handles), _BATCH):
            sqs.change_message_visibility_batch(
                QueueUrl=queue,
                Entries=[
                    {"Id": str(index), "ReceiptHandle": handle, "VisibilityTimeout": 0}
                    for index, handle in enumerate(handles[start : start + _BATCH])
                ],
            )
    return list(seen.values())[:limit]


def count(deployment: Deployment) -> int:
    attributes = deployment.client("sqs").get_queue_attributes(
        QueueUrl=deployment.queue("NotificationsDeadLetterQueue"),
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attributes.get("ApproximateNumberOfMessages", 0))


def replay(deployment: Deployment, *, limit: int) -> ReplayResult:
    """Move up to `limit` messages back to the notifications queue, each exactly once."""
    sqs = deployment.client("sqs")
    source = deployment.queue("NotificationsDeadLetterQueue")
    target = deployment.queue("NotificationsQueue")
    result = ReplayResult()
    while len(result.moved) + len(result.failed) < limit:
        batch = _receive(sqs, source, limit - len(result.moved) - len(result.failed))
        if not batch:
            break
        by_id = {str(index): message for index, message in enumerate(batch)}
        entries = []
        for entry_id, message in by_id.items():
            entry: dict[str, Any] = {"Id": entry_id, "MessageBody": message["Body"]}
            if message.get("MessageAttributes"):
                entry["MessageAttributes"] = message["MessageAttributes"]
            entries.append(entry)
        sent = sqs.send_message_batch(QueueUrl=target, Entries=entries)
        for failure in sent.get("Failed", []):
            message = by_id[failure["Id"]]
            result.failed.append({"message_id": message["MessageId"], "error": failure.get("Message", "")})
        accepted = [by_id[success["Id"]] for success in sent.get("Successful", [])]
        if accepted:
            deleted = sqs.delete_message_batch(
                QueueUrl=source,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(accepted)],
            )
            for failure in deleted.get("Failed", []):
                message = accepted[int(failure["Id"])]
                result.failed.append(
                    {
                        "message_id": message["MessageId"],
                        "error": f"sent, but not deleted: {failure.get('Message', '')}",
                    }
                )
        result.moved.extend(message["MessageId"] for message in accepted)
        if sent.get("Failed"):
            break  # the main queue refuses: stop rather than hold the rest of the queue in flight
    return result

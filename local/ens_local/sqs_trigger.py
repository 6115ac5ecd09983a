"""The SQS → Lambda trigger (event source mapping), played against moto's SQS.

Lambda's poller receives up to BatchSize messages, invokes the function once with the SQS event,
and then deletes what succeeded. Everything it does not delete stays in the queue: it becomes
visible again after the queue's VisibilityTimeout and reaches the dead-letter queue after
maxReceiveCount receives. moto implements those two; this module implements the rest.

Which messages are deleted after an invocation (AWS "Handling errors for an SQS event source"):
- the function raised or timed out: none (the whole batch is retried);
- without ReportBatchItemFailures, any return value: all;
- with it: all but the batchItemFailures' itemIdentifiers. A null or empty response, or an empty or
  null batchItemFailures, is full success. A response that is not an object, a batchItemFailures
  that is not a list, or an itemIdentifier that is empty, null, misspelt or not a messageId of the
  batch makes the whole batch fail.
"""

from __future__ import annotations

import base64
import logging
import threading
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ens_local.functions import LambdaContext, LoadedFunction

log = logging.getLogger("local_stack.sqs")

SQS_MAX_RECEIVE = 10  # ReceiveMessage's own per-call cap
Handler = Callable[[dict[str, Any], Any], Any]

# System attributes Lambda copies into each record when SQS returns them.
_RECORD_ATTRIBUTES = (
    "ApproximateReceiveCount",
    "SentTimestamp",
    "SenderId",
    "ApproximateFirstReceiveTimestamp",
    "AWSTraceHeader",
    "SequenceNumber",
    "MessageGroupId",
    "MessageDeduplicationId",
    "DeadLetterQueueSourceArn",
)


@dataclass(frozen=True)
class BatchOutcome:
    """What one poll did: empty when the queue had nothing visible."""

    function: str
    received: int = 0
    deleted: int = 0
    failed_message_ids: tuple[str, ...] = ()
    error: str | None = None  # why the whole batch failed, if it did
    duration_ms: float = 0.0

    @property
    def empty(self) -> bool:
        return self.received == 0

    @property
    def failed(self) -> int:
        return len(self.failed_message_ids)


class _WholeBatchFailed(Exception):
    pass


@dataclass
class SqsTrigger:
    """One event source mapping: a queue, a batch size and the handler it invokes.

    `handler` is a LoadedFunction (invoked with a fresh Lambda context, Timeout enforced) or any
    plain `handler(event, context)` callable, so a test can bring a consumer of its own.
    """

    sqs: Any  # a boto3 SQS client pointed at local AWS
    queue_url: str
    queue_arn: str
    batch_size: int
    handler: LoadedFunction | Handler
    report_batch_item_failures: bool = False
    region: str = "eu-west-1"
    name: str = ""
    on_batch: Callable[[BatchOutcome], None] | None = None
    _stop: threading.Event = field(default_factory=threading.Event, init=False, repr=False)
    _thread: threading.Thread | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if not 1 <= self.batch_size <= 10000:
            raise ValueError(f"BatchSize must be 1..10000, got {self.batch_size}")
        if not self.name:
            if isinstance(self.handler, LoadedFunction):
                self.name = self.handler.logical_id
            else:
                self.name = getattr(self.handler, "__name__", "handler")

    def poll_once(self, wait_seconds: int = 0) -> BatchOutcome:
        """Receive one batch, invoke once, delete what succeeded. Deterministic: no threads involved."""
        messages = self._receive_batch(wait_seconds)
        if not messages:
            return BatchOutcome(self.name)
        started = time.monotonic()
        event = {"Records": [self.record(message) for message in messages]}
        ids = [message["MessageId"] for message in messages]
        error: str | None = None
        try:
            failed = self._failed_ids(self._invoke(event), ids)
        except _WholeBatchFailed as whole:
            failed, error = list(ids), str(whole)
        keep = set(failed)
        deleted = self._delete([m for m in messages if m["MessageId"] not in keep])
        outcome = BatchOutcome(
            function=self.name,
            received=len(messages),
            deleted=deleted,
            failed_message_ids=tuple(failed),
            error=error,
            duration_ms=(time.monotonic() - started) * 1000,
        )
        (self.on_batch or _log_batch)(outcome)
        return outcome

    def drain(self, max_batches: int = 1000) -> list[BatchOutcome]:
        """Poll until a receive finds nothing visible; for tests that want every message handled now."""
        outcomes = []
        for _ in range(max_batches):
            outcome = self.poll_once()
            if outcome.empty:
                break
            outcomes.append(outcome)
        return outcomes

    def start(self, wait_seconds: int = 1, idle_pause: float = 0.05) -> SqsTrigger:
        """Poll in a background thread until stop(); long polling keeps an idle queue cheap."""
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run, args=(wait_seconds, idle_pause), name=f"sqs-{self.name}", daemon=True
        )
        self._thread.start()
        return self

    @property
    def polling(self) -> bool:
        """True while the background thread runs."""
        return self._thread is not None

    def request_stop(self) -> None:
        """Ask the background thread to finish its current poll and end; stop() waits for it."""
        self._stop.set()

    def stop(self, timeout: float = 25.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self, wait_seconds: int, idle_pause: float) -> None:
        while not self._stop.is_set():
            try:
                outcome = self.poll_once(wait_seconds)
            except Exception:
                if self._stop.is_set():
                    break  # local AWS is shutting down under us
                log.error("%s: polling %s failed:\n%s", self.name, self.queue_url, traceback.format_exc())
                self._stop.wait(1.0)
                continue
            if outcome.empty and wait_seconds == 0:
                self._stop.wait(idle_pause)

    def _receive_batch(self, wait_seconds: int) -> list[dict[str, Any]]:
        # ReceiveMessage returns at most 10; Lambda gathers up to BatchSize. Only the first call waits:
        # the batch goes out as soon as the queue has nothing more visible. With a short visibility
        # timeout a message can come back within one gathering: it is kept once, with its newest
        # receipt handle, and a receive that brings nothing new ends the batch.
        messages: dict[str, dict[str, Any]] = {}
        while len(messages) < self.batch_size:
            response = self.sqs.receive_message(
                QueueUrl=self.queue_url,
                MaxNumberOfMessages=min(SQS_MAX_RECEIVE, self.batch_size - len(messages)),
                WaitTimeSeconds=wait_seconds if not messages else 0,
                MessageSystemAttributeNames=["All"],
                MessageAttributeNames=["All"],
            )
            received = response.get("Messages", [])
            fresh = [message for message in received if message["MessageId"] not in messages]
            for message in received:
                messages[message["MessageId"]] = message
            if not fresh:
                break
        return list(messages.values())

    def record(self, message: Mapping[str, Any]) -> dict[str, Any]:
        """One Records[] entry, in the Lambda SQS event's shape (lower-camel message attributes)."""
        attributes = message.get("Attributes", {})
        record: dict[str, Any] = {
            "messageId": message["MessageId"],
            "receiptHandle": message["ReceiptHandle"],
            "body": message.get("Body", ""),
            "attributes": {name: attributes[name] for name in _RECORD_ATTRIBUTES if name in attributes},
            "messageAttributes": {
                name: _message_attribute(value)
                for name, value in message.get("MessageAttributes", {}).items()
            },
            "md5OfBody": message.get("MD5OfBody", ""),
            "eventSource": "aws:sqs",
            "eventSourceARN": self.queue_arn,
            "awsRegion": self.region,
        }
        if "MD5OfMessageAttributes" in message:
            record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
        return record

    def _invoke(self, event: dict[str, Any]) -> Any:
        try:
            if isinstance(self.handler, LoadedFunction):
                return self.handler.invoke(event)
            context = LambdaContext(function_name=self.name, memory_limit_in_mb=128, timeout_seconds=900)
            return self.handler(event, context)
        except Exception as error:
            log.error("%s raised; the whole batch is retried:\n%s", self.name, traceback.format_exc())
            raise _WholeBatchFailed(f"{type(error).__name__}: {error}") from error

    def _failed_ids(self, response: Any, ids: Sequence[str]) -> list[str]:
        if not self.report_batch_item_failures or response is None:
            return []
        if not isinstance(response, Mapping):
            raise _WholeBatchFailed(f"response is {type(response).__name__}, not an object")
        failures = response.get("batchItemFailures")
        if failures is None:
            return []
        if not isinstance(failures, list):
            raise _WholeBatchFailed("batchItemFailures is not a list")
        known = set(ids)
        failed: list[str] = []
        for failure in failures:
            identifier = failure.get("itemIdentifier") if isinstance(failure, Mapping) else None
            if not isinstance(identifier, str) or not identifier or identifier not in known:
                raise _WholeBatchFailed(f"invalid batchItemFailures entry {failure!r}")
            if identifier not in failed:
                failed.append(identifier)
        return failed

    def _delete(self, messages: Sequence[Mapping[str, Any]]) -> int:
        deleted = 0
        for start in range(0, len(messages), SQS_MAX_RECEIVE):
            chunk = messages[start : start + SQS_MAX_RECEIVE]
            response = self.sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(chunk)],
            )
            deleted += len(response.get("Successful", []))
            for failure in response.get("Failed", []):
                log.warning("%s: delete failed: %s", self.name, failure)
        return deleted


def _message_attribute(value: Mapping[str, Any]) -> dict[str, Any]:
    converted: dict[str, Any] = {
        "stringListValues": [],
        "binaryListValues": [],
        "dataType": value["DataType"],
    }
    if "StringValue" in value:
        converted["stringValue"] = value["StringValue"]
    if "BinaryValue" in value:
        converted["binaryValue"] = base64.b64encode(value["BinaryValue"]).decode("ascii")
    return converted


def _log_batch(outcome: BatchOutcome) -> None:
    log.info(
        "%s batch of %d: deleted %d, failed %d%s, %.1f ms",
        outcome.function,
        outcome.received,
        outcome.deleted,
        outcome.failed,
        f" (whole batch: {outcome.error})" if outcome.error else "",
        outcome.duration_ms,
    )

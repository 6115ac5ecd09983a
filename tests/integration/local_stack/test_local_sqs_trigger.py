"""The SQS → Lambda trigger against moto's SQS: batching, the event shape, what gets deleted."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import pytest
from aws_lambda_powertools.utilities.parser.models import SqsModel

from ens_local.aws import ProvisionedStack
from ens_local.sqs_trigger import SqsTrigger

pytestmark = pytest.mark.integration


@dataclass
class Consumer:
    """A test consumer: records every batch, reports the records whose body says "fail"."""

    answer: Any = "compute"  # anything else is returned as is instead of the computed failures
    raises: bool = False
    batches: list[list[str]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)

    def __call__(self, event: dict[str, Any], context: Any) -> Any:
        self.events.append(event)
        self.batches.append([record["body"] for record in event["Records"]])
        if self.raises:
            raise RuntimeError("consumer failed on purpose")
        if self.answer != "compute":
            return self.answer
        return {
            "batchItemFailures": [
                {"itemIdentifier": record["messageId"]}
                for record in event["Records"]
                if "fail" in record["body"]
            ]
        }


@dataclass
class ScratchQueue:
    """A test-only queue with a dead-letter queue; visibility 0 makes a failed message visible at once."""

    sqs: Any
    url: str
    arn: str
    dlq_url: str

    def send(self, *bodies: str, **attributes: Any) -> None:
        for start in range(0, len(bodies), 10):
            self.sqs.send_message_batch(
                QueueUrl=self.url,
                Entries=[
                    {"Id": str(i), "MessageBody": body, **attributes}
                    for i, body in enumerate(bodies[start : start + 10])
                ],
            )

    def bodies(self, url: str | None = None) -> list[str]:
        """Bodies visible now; each is made visible again at once (visibility timeout 0)."""
        response = self.sqs.receive_message(
            QueueUrl=url or self.url, MaxNumberOfMessages=10, VisibilityTimeout=0
        )
        return sorted(message["Body"] for message in response.get("Messages", []))

    def trigger(self, consumer: Consumer, batch_size: int, report: bool = True) -> SqsTrigger:
        return SqsTrigger(self.sqs, self.url, self.arn, batch_size, consumer, report, name="TestConsumer")


@pytest.fixture
def queue(provisioned_stack: ProvisionedStack) -> ScratchQueue:
    sqs = provisioned_stack.aws.client("sqs")
    prefix = provisioned_stack.aws.stack_name
    dlq_url = sqs.create_queue(QueueName=f"{prefix}-test-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    url = sqs.create_queue(
        QueueName=f"{prefix}-test",
        Attributes={
            "VisibilityTimeout": "0",
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 2}),
        },
    )["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return ScratchQueue(sqs, url, arn, dlq_url)


def test_messages_arrive_in_batches_of_at_most_batch_size(queue: ScratchQueue) -> None:
    queue.send(*[f"m{i:02}" for i in range(25)])
    consumer = Consumer()
    trigger = queue.trigger(consumer, batch_size=10)

    outcomes = trigger.drain()

    assert [outcome.received for outcome in outcomes] == [10, 10, 5]
    assert [outcome.deleted for outcome in outcomes] == [10, 10, 5]
    assert sorted(body for batch in consumer.batches for body in batch) == [f"m{i:02}" for i in range(25)]
    assert queue.bodies() == []


def test_a_batch_size_above_ten_gathers_several_receives_into_one_invocation(
    provisioned_stack: ProvisionedStack,
) -> None:
    # The template's queue: its visibility timeout keeps received messages out of the next receive.
    sqs = provisioned_stack.aws.client("sqs")
    url = provisioned_stack.queue_urls["NotificationsQueue"]
    scratch = ScratchQueue(sqs, url, provisioned_stack.queue_arn("NotificationsQueue"), dlq_url="")
    scratch.send(*[f"m{i:02}" for i in range(25)])
    consumer = Consumer()

    outcome = scratch.trigger(consumer, batch_size=25).poll_once()

    assert outcome.received == 25
    assert len(consumer.batches) == 1
    assert len(set(consumer.batches[0])) == 25


def test_the_event_has_the_lambda_sqs_shape(provisioned_stack: ProvisionedStack) -> None:
    sqs = provisioned_stack.aws.client("sqs")
    url = provisioned_stack.queue_urls["NotificationsQueue"]
    sqs.send_message(
        QueueUrl=url,
        MessageBody='{"mail": 1}',
        MessageAttributes={
            "kind": {"DataType": "String", "StringValue": "new-mail"},
            "blob": {"DataType": "Binary", "BinaryValue": b"\x00\x01"},
        },
    )
    consumer = Consumer()
    trigger = SqsTrigger(
        sqs, url, provisioned_stack.queue_arn("NotificationsQueue"), 10, consumer, True, region="eu-west-1"
    )

    trigger.poll_once()

    event = consumer.events[0]
    SqsModel.model_validate(event)
    record = event["Records"][0]
    assert record["body"] == '{"mail": 1}'
    assert record["eventSource"] == "aws:sqs"
    assert record["eventSourceARN"] == provisioned_stack.queue_arn("NotificationsQueue")
    assert record["eventSourceARN"].endswith(f":{provisioned_stack.aws.stack_name}-NotificationsQueue")
    assert record["awsRegion"] == "eu-west-1"
    assert record["attributes"]["ApproximateReceiveCount"] == "1"
    assert set(record["attributes"]) >= {"SentTimestamp", "SenderId", "ApproximateFirstReceiveTimestamp"}
    assert record["messageAttributes"]["kind"] == {
        "stringValue": "new-mail",
        "stringListValues": [],
        "binaryListValues": [],
        "dataType": "String",
    }
    assert record["messageAttributes"]["blob"]["binaryValue"] == "AAE="
    assert record["md5OfBody"]
    assert record["messageId"]
    assert record["receiptHandle"]


def test_a_partial_failure_deletes_all_but_the_reported_message(queue: ScratchQueue) -> None:
    queue.send("ok-1", "fail-2", "ok-3")

    outcome = queue.trigger(Consumer(), batch_size=3).poll_once()

    assert (outcome.received, outcome.deleted, outcome.failed) == (3, 2, 1)
    assert queue.bodies() == ["fail-2"]


def test_a_reported_failure_comes_back_and_reaches_the_dead_letter_queue_after_max_receives(
    queue: ScratchQueue,
) -> None:
    queue.send("fail-always")
    consumer = Consumer()
    trigger = queue.trigger(consumer, batch_size=1)

    for _ in range(5):  # maxReceiveCount is 2: the third receive moves it; bounded in case it does not
        if queue.bodies(queue.dlq_url):
            break
        trigger.poll_once()

    assert queue.bodies(queue.dlq_url) == ["fail-always"]
    assert consumer.batches == [["fail-always"], ["fail-always"]]
    assert [event["Records"][0]["attributes"]["ApproximateReceiveCount"] for event in consumer.events] == [
        "1",
        "2",
    ]


def test_without_report_batch_item_failures_a_returned_failure_list_is_ignored(queue: ScratchQueue) -> None:
    queue.send("ok-1", "fail-2")

    outcome = queue.trigger(Consumer(), batch_size=2, report=False).poll_once()

    assert (outcome.deleted, outcome.failed) == (2, 0)
    assert queue.bodies() == []


def test_an_exception_leaves_the_whole_batch_for_a_retry(queue: ScratchQueue) -> None:
    queue.send("a", "b")

    outcome = queue.trigger(Consumer(raises=True), batch_size=2).poll_once()

    assert (outcome.deleted, outcome.failed) == (0, 2)
    assert "consumer failed on purpose" in (outcome.error or "")
    assert queue.bodies() == ["a", "b"]


@pytest.mark.parametrize(
    "answer",
    [
        "not an object",
        {"batchItemFailures": "not a list"},
        {"batchItemFailures": [{"itemIdentifier": ""}]},
        {"batchItemFailures": [{"itemIdentifier": None}]},
        {"batchItemFailures": [{"itemIdentifer": "misspelt"}]},
        {"batchItemFailures": [{"itemIdentifier": "not-in-this-batch"}]},
    ],
)
def test_a_malformed_failure_report_fails_the_whole_batch(queue: ScratchQueue, answer: Any) -> None:
    queue.send("a", "b")

    outcome = queue.trigger(Consumer(answer=answer), batch_size=2).poll_once()

    assert outcome.deleted == 0
    assert outcome.error
    assert queue.bodies() == ["a", "b"]


@pytest.mark.parametrize("answer", [{}, {"batchItemFailures": []}, {"batchItemFailures": None}, None])
def test_an_empty_failure_report_is_full_success(queue: ScratchQueue, answer: Any) -> None:
    queue.send("a", "b")
    consumer = Consumer(answer=answer)

    outcome = queue.trigger(consumer, batch_size=2).poll_once()

    assert outcome.deleted == 2
    assert queue.bodies() == []


def test_the_background_poller_delivers_until_stopped(queue: ScratchQueue) -> None:
    delivered = threading.Event()
    seen: list[str] = []

    def consumer(event: dict[str, Any], context: Any) -> None:
        seen.extend(record["body"] for record in event["Records"])
        if len(seen) >= 3:
            delivered.set()

    trigger = SqsTrigger(queue.sqs, queue.url, queue.arn, 10, consumer, True, name="Background")
    trigger.start(wait_seconds=0, idle_pause=0.01)
    try:
        queue.send("x", "y", "z")
        assert delivered.wait(10), f"only {seen} delivered"
    finally:
        started = time.monotonic()
        trigger.stop()
    assert time.monotonic() - started < 2
    assert sorted(seen) == ["x", "y", "z"]

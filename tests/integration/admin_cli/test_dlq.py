"""dlq show|replay on the local stack's queues: show leaves every message, replay moves each once."""

from __future__ import annotations

import json

import pytest

from support.queues import take_all

from .conftest import AdminTarget

pytestmark = pytest.mark.integration


def _dead_letters(admin: AdminTarget, count: int) -> list[dict]:
    sqs = admin.client("sqs")
    bodies = [
        {"kind": "NewMail", "mailbox": "alice@contoso.example", "item_id": f"item-{n}"} for n in range(count)
    ]
    for body in bodies:
        sqs.send_message(
            QueueUrl=admin.stack.queue_urls["NotificationsDeadLetterQueue"],
            MessageBody=json.dumps(body),
            MessageAttributes={"origin": {"DataType": "String", "StringValue": "test"}},
        )
    return bodies


def _visible(admin: AdminTarget, logical_id: str) -> int:
    attributes = admin.client("sqs").get_queue_attributes(
        QueueUrl=admin.stack.queue_urls[logical_id], AttributeNames=["ApproximateNumberOfMessages"]
    )
    return int(attributes["Attributes"]["ApproximateNumberOfMessages"])


def test_dlq_show_lists_each_message_once_and_leaves_them_all_visible(admin: AdminTarget) -> None:
    _dead_letters(admin, 13)

    first = admin.run("--json", "dlq", "show").json()
    table = admin.run("dlq", "show")

    assert len({message["message_id"] for message in first}) == 13
    assert sorted(message["body"]["item_id"] for message in first) == sorted(f"item-{n}" for n in range(13))
    assert table.out.splitlines()[0] == "13 message(s) in the dead-letter queue (left there)"
    assert _visible(admin, "NotificationsDeadLetterQueue") == 13


def test_dlq_replay_moves_every_message_back_exactly_once(admin: AdminTarget) -> None:
    bodies = _dead_letters(admin, 23)

    run = admin.run("dlq", "replay")

    assert run.code == 0
    assert run.out.strip() == "moved 23 message(s) back to the notifications queue"
    moved = take_all(admin.client("sqs"), admin.stack.queue_urls["NotificationsQueue"])
    assert sorted(moved, key=lambda body: body["item_id"]) == sorted(bodies, key=lambda body: body["item_id"])
    assert _visible(admin, "NotificationsDeadLetterQueue") == 0
    assert admin.run("--json", "dlq", "replay").json() == {"moved": [], "failed": []}


def test_dlq_replay_keeps_the_message_attributes_and_stops_at_the_limit(admin: AdminTarget) -> None:
    _dead_letters(admin, 5)

    result = admin.run("--json", "dlq", "replay", "--limit", "2").json()

    assert len(result["moved"]) == 2
    sqs = admin.client("sqs")
    received = sqs.receive_message(
        QueueUrl=admin.stack.queue_urls["NotificationsQueue"],
        MaxNumberOfMessages=10,
        MessageAttributeNames=["All"],
    )["Messages"]
    assert len(received) == 2
    assert all(message["MessageAttributes"]["origin"]["StringValue"] == "test" for message in received)
    assert _visible(admin, "NotificationsDeadLetterQueue") == 3

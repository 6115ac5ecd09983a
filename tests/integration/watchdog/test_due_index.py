"""The watchdog's cost grows with what is due, not with the number of mailboxes: against moto with the
template's SubscriptionsTable (sparse ByDueAt index), a run over 10,000 records of which 10 are due
reads those 10 and their mailboxes' records, and never scans."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from ens.adapters.mail_event_queue import SqsMailEventQueue
from ens.adapters.mailbox_store import DynamoMailboxStore
from ens.adapters.subscription_store import DynamoSubscriptionStore
from ens.core.registrations import MailboxState, MailboxSubscription
from ens.core.subscriptions import SubscriptionState
from ens.core.watchdog import DUE_SHARD, iso
from ens.services.watchdog import SubscribeSettings, Watchdog
from support.registry_fakes import ScriptedExchange

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC)
RECORDS = 10_000
DUE = 10


def _item(number: int) -> dict[str, Any]:
    due = NOW - timedelta(minutes=1) if number < DUE else NOW + timedelta(minutes=30)
    return {
        "token": {"S": f"token-{number:05d}-" + "x" * 32},
        "mailbox": {"S": f"user{number:05d}@contoso.example"},
        "state": {"S": SubscriptionState.ACTIVE.value},
        "subscription_id": {"S": f"sub-{number}"},
        "last_watermark": {"S": f"wm-{number}"},
        "status_frequency_minutes": {"N": "15"},
        "due_shard": {"S": DUE_SHARD},
        "due_at": {"S": iso(due)},
    }


class ReadCounter:
    """Counts what DynamoDB answers: items a Query returned, items GetItem found, and any Scan."""

    def __init__(self) -> None:
        self.items: Counter[str] = Counter()

    def __call__(self, http_response: Any, parsed: Any, model: Any, **_: Any) -> None:
        if model.name == "Query":
            self.items["Query"] += int(parsed.get("Count", 0))
        elif model.name == "GetItem":
            self.items["GetItem"] += 1 if "Item" in parsed else 0
        elif model.name == "Scan":
            self.items["Scan"] += int(parsed.get("Count", 0)) or 1


def test_a_run_over_ten_thousand_records_reads_only_the_ten_due_when_the_rest_are_not(
    provisioned_stack: Any,
) -> None:
    dynamodb = provisioned_stack.aws.client("dynamodb")
    tables = provisioned_stack.table_names
    items = [_item(number) for number in range(RECORDS)]
    for start in range(0, RECORDS, 25):
        dynamodb.batch_write_item(
            RequestItems={
                tables["SubscriptionsTable"]: [
                    {"PutRequest": {"Item": item}} for item in items[start : start + 25]
                ]
            }
        )
    mailboxes = DynamoMailboxStore(tables["MailboxesTable"], dynamodb)
    for number in range(DUE):
        mailboxes.claim(
            MailboxSubscription(
                mailbox=f"user{number:05d}@contoso.example",
                token=items[number]["token"]["S"],
                state=MailboxState.ACTIVE,
                created_at=NOW,
                updated_at=NOW,
            )
        )
    exchange = ScriptedExchange()
    watchdog = Watchdog(
        subscriptions=DynamoSubscriptionStore(tables["SubscriptionsTable"], dynamodb),
        mailboxes=mailboxes,
        exchange=exchange,
        queue=SqsMailEventQueue(
            provisioned_stack.queue_urls["NotificationsQueue"], provisioned_stack.aws.client("sqs")
        ),
        subscribe=SubscribeSettings(webhook_base_url="https://hooks.example/ews/notifications/"),
        clock=lambda: NOW,
    )
    counter = ReadCounter()
    dynamodb.meta.events.register("after-call.dynamodb", counter)

    report = watchdog.run()

    assert counter.items == {"Query": DUE, "GetItem": DUE}
    assert sum(report.due.values()) == DUE
    assert report.resubscribed == DUE
    assert sorted(call.mailbox for call in exchange.calls) == [
        f"user{number:05d}@contoso.example" for number in range(DUE)
    ]

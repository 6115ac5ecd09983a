"""DynamoDeviceStore and DynamoDecisionLog against moto, on the tables template.yaml defines."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from boto3.dynamodb.types import TypeDeserializer

from ens.adapters.decision_log import DynamoDecisionLog, device_key
from ens.adapters.device_store import DynamoDeviceStore
from ens.core.decisions import Decision, Outcome
from ens.core.rules import Reason, Rule
from ens.errors import DependencyUnavailable
from support.consumer_fakes import make_device

pytestmark = pytest.mark.integration

MAILBOX = "alice@contoso.example"
AT = datetime(2026, 12, 2, 10, 0, 0, 123000, tzinfo=UTC)
_deserializer = TypeDeserializer()


@pytest.fixture
def dynamodb(provisioned_stack: Any) -> Any:
    return provisioned_stack.aws.client("dynamodb")


@pytest.fixture
def devices(provisioned_stack: Any, dynamodb: Any) -> DynamoDeviceStore:
    return DynamoDeviceStore(provisioned_stack.table_names["DevicesTable"], dynamodb)


class CountingClient:
    """The DynamoDB client, counting BatchWriteItem calls and their sizes."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.batch_sizes: list[int] = []

    def batch_write_item(self, **request: Any) -> Any:
        self.batch_sizes.extend(len(items) for items in request["RequestItems"].values())
        return self._client.batch_write_item(**request)


@pytest.fixture
def decisions_table(provisioned_stack: Any) -> str:
    return str(provisioned_stack.table_names["DecisionsTable"])


def stored_decisions(dynamodb: Any, table: str, key: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    query: dict[str, Any] = {
        "TableName": table,
        "KeyConditionExpression": "device_key = :key",
        "ExpressionAttributeValues": {":key": {"S": key}},
    }
    while True:
        page = dynamodb.query(**query)
        items += [{k: _deserializer.deserialize(v) for k, v in item.items()} for item in page["Items"]]
        if "LastEvaluatedKey" not in page:
            return items
        query["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def decision(item_id: str | None, **changes: Any) -> Decision:
    values: dict[str, Any] = {
        "mailbox": MAILBOX,
        "device_id": "phone",
        "item_id": item_id,
        "event_kind": "NewMail",
        "outcome": Outcome.PUSHED,
        "reason": None,
        "rule": Rule.ALL_MAIL,
        "received_at": AT - timedelta(seconds=2),
        "decided_at": AT,
        "latency_ms": 2000,
    }
    values.update(changes)
    return Decision(**values)


# -- devices -------------------------------------------------------------------------------------------


def test_a_device_and_its_rules_round_trip(devices: DynamoDeviceStore) -> None:
    phone = make_device(
        "phone",
        time_zone="Europe/Berlin",
        work_hours_only=True,
        work_days=["mon", "tue"],
        vips=["ceo@contoso.example"],
        snippet_length=40,
        badge_updates=False,
    )
    ipad = make_device("ipad")
    devices.put(phone)
    devices.put(ipad)
    devices.put(make_device("elsewhere", mailbox="bob@contoso.example"))

    found = devices.devices_of("Alice@Contoso.example")

    assert sorted(found, key=lambda d: d.device_id) == [ipad, phone]


def test_a_device_is_deactivated_while_its_push_token_is_unchanged(devices: DynamoDeviceStore) -> None:
    phone = make_device("phone")
    devices.put(phone)

    devices.deactivate(phone, "push relay answered HTTP 410 Unregistered", AT)

    (stored,) = devices.devices_of(MAILBOX)
    assert stored.active is False
    assert stored.deactivated_reason == "push relay answered HTTP 410 Unregistered"
    assert stored.deactivated_at == AT
    assert stored.push_token == phone.push_token


def test_a_device_that_re_registered_with_another_token_stays_active(devices: DynamoDeviceStore) -> None:
    stale = make_device("phone")
    devices.put(stale.model_copy(update={"push_token": "token-after-reinstall"}))

    devices.deactivate(stale, "push relay answered HTTP 410 Unregistered", AT)

    (stored,) = devices.devices_of(MAILBOX)
    assert (stored.active, stored.push_token, stored.deactivated_reason) == (
        True,
        "token-after-reinstall",
        None,
    )


def test_pushes_are_recorded_on_existing_devices_only(
    devices: DynamoDeviceStore, dynamodb, provisioned_stack
) -> None:
    devices.put(make_device("phone"))

    devices.record_pushes(MAILBOX, ["phone", "gone-meanwhile"], AT)

    (stored,) = devices.devices_of(MAILBOX)
    assert stored.last_push_at == AT
    table = provisioned_stack.table_names["DevicesTable"]
    assert dynamodb.scan(TableName=table)["Count"] == 1


def test_an_unreadable_device_record_does_not_hide_the_mailboxs_other_devices(
    devices: DynamoDeviceStore, dynamodb, provisioned_stack
) -> None:
    devices.put(make_device("phone"))
    dynamodb.put_item(
        TableName=provisioned_stack.table_names["DevicesTable"],
        Item={"mailbox": {"S": MAILBOX}, "device_id": {"S": "broken"}, "rules": {"S": '{"work_days": 7}'}},
    )

    assert [device.device_id for device in devices.devices_of(MAILBOX)] == ["phone"]


# -- decisions -----------------------------------------------------------------------------------------


def test_a_decision_is_stored_by_device_and_event_with_its_ttl(dynamodb, decisions_table: str) -> None:
    DynamoDecisionLog(decisions_table, dynamodb, ttl_days=14).record([decision("item-1")])

    (item,) = stored_decisions(dynamodb, decisions_table, device_key(MAILBOX, "phone"))
    assert (item["device_key"], item["event_key"]) == (f"{MAILBOX}#phone", "NewMail#item-1")
    assert (item["outcome"], item["rule"], item["latency_ms"]) == ("pushed", "all_mail", 2000)
    assert item["decided_at"] == "2026-12-02T10:00:00.123Z"
    assert item["expires_at"] == int((AT + timedelta(days=14)).timestamp())
    assert "reason" not in item


def test_a_mailbox_level_decision_has_its_own_key(dynamodb, decisions_table: str) -> None:
    log = DynamoDecisionLog(decisions_table, dynamodb, ttl_days=14)

    log.record(
        [decision("item-1", device_id=None, outcome=Outcome.SUPPRESSED, reason=Reason.NO_DEVICES, rule=None)]
    )

    (item,) = stored_decisions(dynamodb, decisions_table, f"{MAILBOX}#-")
    assert (item["reason"], item["outcome"]) == ("no_devices", "suppressed")


def test_a_decision_recorded_again_overwrites_the_first(dynamodb, decisions_table: str) -> None:
    log = DynamoDecisionLog(decisions_table, dynamodb, ttl_days=14)
    log.record(
        [decision("item-1", outcome=Outcome.SUPPRESSED, reason=Reason.DEVICE_TOKEN_REJECTED, rule=None)]
    )

    log.record([decision("item-1", decided_at=AT + timedelta(minutes=5))])
    log.record([decision("item-2", outcome=Outcome.SUPPRESSED, reason=Reason.STALE), decision("item-2")])

    items = {
        item["event_key"]: item for item in stored_decisions(dynamodb, decisions_table, f"{MAILBOX}#phone")
    }
    assert set(items) == {"NewMail#item-1", "NewMail#item-2"}
    assert (items["NewMail#item-1"]["outcome"], items["NewMail#item-1"]["decided_at"]) == (
        "pushed",
        "2026-12-02T10:05:00.123Z",
    )
    assert items["NewMail#item-2"]["outcome"] == "pushed"


def test_more_than_25_decisions_are_written_in_batches_of_25(dynamodb, decisions_table: str) -> None:
    counting = CountingClient(dynamodb)

    DynamoDecisionLog(decisions_table, counting, ttl_days=14).record(
        [decision(f"item-{index:02}") for index in range(60)]
    )

    assert counting.batch_sizes == [25, 25, 10]
    stored = stored_decisions(dynamodb, decisions_table, f"{MAILBOX}#phone")
    assert sorted(item["item_id"] for item in stored) == [f"item-{index:02}" for index in range(60)]


def test_a_missing_table_is_dependency_unavailable(dynamodb) -> None:
    with pytest.raises(DependencyUnavailable):
        DynamoDecisionLog("no-such-table", dynamodb, ttl_days=14).record([decision("item-1")])
    with pytest.raises(DependencyUnavailable):
        DynamoDeviceStore("no-such-table", dynamodb).devices_of(MAILBOX)

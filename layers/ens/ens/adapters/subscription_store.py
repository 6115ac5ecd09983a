"""DynamoDB adapter for push subscriptions (table SubscriptionsTable, key `token`).

Watched records (pending, active) carry `due_shard` and `due_at`, the keys of the sparse ByDueAt
index the watchdog queries; retiring a record removes both, so it leaves the index.
"""

from __future__ import annotations

from dataclasses import asdict, fields
from datetime import timedelta
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import BotoCoreError, ClientError

from ens.core.subscriptions import CallbackProgress, Subscription, SubscriptionState
from ens.core.watchdog import DUE_SHARD, due_after_callback
from ens.errors import DependencyUnavailable

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()
_FIELDS = frozenset(field.name for field in fields(Subscription))
_INTEGERS = ("status_frequency_minutes", "watchdog_failures")
DUE_INDEX = "ByDueAt"
# The webhook's default when a record predates the watchdog settings (see WatchdogPolicy.grace).
DEFAULT_GRACE = timedelta(minutes=5)


def _subscription(item: dict[str, Any]) -> Subscription:
    data = {key: _deserializer.deserialize(value) for key, value in item.items() if key in _FIELDS}
    data["state"] = SubscriptionState(data["state"])
    for name in _INTEGERS:
        if name in data:
            data[name] = int(data[name])  # DynamoDB numbers come back as Decimal
    return Subscription(**data)


class DynamoSubscriptionStore:
    def __init__(self, table_name: str, dynamodb: Any, grace: timedelta = DEFAULT_GRACE) -> None:
        self._table = table_name
        self._dynamodb = dynamodb
        self._grace = grace

    def get(self, token: str) -> Subscription | None:
        try:
            response = self._dynamodb.get_item(
                TableName=self._table, Key={"token": {"S": token}}, ConsistentRead=True
            )
        except (ClientError, BotoCoreError) as error:
            raise DependencyUnavailable(f"DynamoDB GetItem failed: {error}") from error
        item = response.get("Item")
        return None if item is None else _subscription(item)

    def due(self, now: str, limit: int) -> list[Subscription]:
        """Watched records whose due_at is not after `now`, oldest first: a Query of the sparse ByDueAt
        index, never a Scan, so a run reads only what is due. At most `limit` of them."""
        found: list[Subscription] = []
        request: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": DUE_INDEX,
            "KeyConditionExpression": "due_shard = :shard AND due_at <= :now",
            "ExpressionAttributeValues": {":shard": {"S": DUE_SHARD}, ":now": {"S": now}},
            "Limit": limit,
        }
        try:
            while len(found) < limit:
                response = self._dynamodb.query(**request)
                found.extend(_subscription(item) for item in response.get("Items", []))
                if "LastEvaluatedKey" not in response:
                    break
                request["ExclusiveStartKey"] = response["LastEvaluatedKey"]
                request["Limit"] = limit - len(found)
        except (ClientError, BotoCoreError) as error:
            raise DependencyUnavailable(f"DynamoDB Query of due subscriptions failed: {error}") from error
        return found[:limit]

    def record_failure(self, token: str, failures: int, reason: str, due_at: str) -> bool:
        """Count a failed watchdog attempt and set when to try again; False when the record was
        retired meanwhile (a registration replaced it)."""
        return self._update(
            token,
            UpdateExpression="SET watchdog_failures = :failures, last_failure = :reason, due_at = :due",
            ConditionExpression="#state <> :retired AND attribute_exists(due_shard)",
            ExpressionAttributeNames={"#state": "state"},
            ExpressionAttributeValues={
                ":failures": {"N": str(failures)},
                ":reason": {"S": reason},
                ":due": {"S": due_at},
                ":retired": {"S": SubscriptionState.RETIRED.value},
            },
        )

    def put(self, subscription: Subscription) -> None:
        item = {
            key: _serializer.serialize(value)
            for key, value in asdict(subscription).items()
            if value is not None
        }
        try:
            self._dynamodb.put_item(TableName=self._table, Item=item)
        except (ClientError, BotoCoreError) as error:
            raise DependencyUnavailable(f"DynamoDB PutItem failed: {error}") from error

    def activate(self, token: str, subscription_id: str, watermark: str, due_at: str | None = None) -> bool:
        """Store Exchange's answer to Subscribe on a pending record; False when it is no longer pending
        (retired meanwhile), so that its SubscriptionId is never accepted. `due_at`: the first
        heartbeat deadline."""
        values = {
            ":active": {"S": SubscriptionState.ACTIVE.value},
            ":pending": {"S": SubscriptionState.PENDING.value},
            ":id": {"S": subscription_id},
            ":watermark": {"S": watermark},
        }
        update = "SET #state = :active, subscription_id = :id, last_watermark = :watermark"
        if due_at is not None:
            update += ", due_at = :due, due_shard = :shard"
            values |= {":due": {"S": due_at}, ":shard": {"S": DUE_SHARD}}
        return self._update(
            token,
            UpdateExpression=update,
            ConditionExpression="#state = :pending",
            ExpressionAttributeNames={"#state": "state"},
            ExpressionAttributeValues=values,
        )

    def retire(self, token: str) -> None:
        """The webhook answers Unsubscribe from now on, which makes Exchange end the subscription."""
        self._update(
            token,
            # Out of the ByDueAt index: the watchdog never looks at a retired record again.
            UpdateExpression="SET #state = :retired REMOVE due_shard, due_at",
            ConditionExpression="attribute_exists(#token)",
            ExpressionAttributeNames={"#state": "state", "#token": "token"},
            ExpressionAttributeValues={":retired": {"S": SubscriptionState.RETIRED.value}},
        )

    def _update(self, token: str, **request: Any) -> bool:
        try:
            self._dynamodb.update_item(TableName=self._table, Key={"token": {"S": token}}, **request)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise DependencyUnavailable(f"DynamoDB UpdateItem failed: {error}") from error
        except BotoCoreError as error:
            raise DependencyUnavailable(f"DynamoDB UpdateItem failed: {error}") from error
        return True

    def record_callback(self, subscription: Subscription, progress: CallbackProgress, seen_at: str) -> bool:
        """Store a callback's watermark, heartbeat and gap.

        Returns False when the subscription was retired or replaced since it was read.
        """
        assignments = ["last_seen_at = :seen_at", "due_at = :due_at"]
        values: dict[str, Any] = {
            ":seen_at": seen_at,
            ":due_at": due_after_callback(subscription, progress, seen_at, self._grace),
            ":active": SubscriptionState.ACTIVE.value,
            ":subscription_id": subscription.subscription_id,
        }
        if progress.last_watermark is not None:
            assignments.append("last_watermark = :watermark")
            values[":watermark"] = progress.last_watermark
        if progress.heartbeat:
            assignments.append("last_heartbeat_at = :seen_at")
        if (
            progress.last_event_at is not None
            and progress.gap_from_watermark is None
            and subscription.gap_from_watermark is None
        ):
            # Only while nothing is missing: reconcile must start before the first lost event.
            assignments.append("last_event_at = :event_at")
            values[":event_at"] = progress.last_event_at
        if progress.gap_from_watermark is not None:
            # The oldest gap wins: recovery must start from the first watermark we lost track of.
            assignments.append("gap_from_watermark = if_not_exists(gap_from_watermark, :gap)")
            values[":gap"] = progress.gap_from_watermark
        if progress.previous_watermark is not None:
            assignments.append("last_previous_watermark = :previous_watermark")
            values[":previous_watermark"] = progress.previous_watermark
        removals: list[str] = []
        if progress.error_code is not None:
            assignments.append("last_error_code = :error_code")
            values[":error_code"] = progress.error_code
        else:
            # A clean callback means Exchange has recovered from whatever it reported last.
            removals.append("last_error_code")
        update = "SET " + ", ".join(assignments) + (" REMOVE " + ", ".join(removals) if removals else "")
        try:
            self._dynamodb.update_item(
                TableName=self._table,
                Key={"token": {"S": subscription.token}},
                UpdateExpression=update,
                ConditionExpression="#state = :active AND subscription_id = :subscription_id",
                ExpressionAttributeNames={"#state": "state"},
                ExpressionAttributeValues={
                    key: _serializer.serialize(value) for key, value in values.items()
                },
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise DependencyUnavailable(f"DynamoDB UpdateItem failed: {error}") from error
        except BotoCoreError as error:
            raise DependencyUnavailable(f"DynamoDB UpdateItem failed: {error}") from error
        return True

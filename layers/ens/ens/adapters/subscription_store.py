"""DynamoDB adapter for push subscriptions (table SubscriptionsTable, key `token`)."""

from __future__ import annotations

from dataclasses import asdict, fields
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import BotoCoreError, ClientError

from ens.core.subscriptions import CallbackProgress, Subscription, SubscriptionState
from ens.errors import DependencyUnavailable

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()
_FIELDS = frozenset(field.name for field in fields(Subscription))


class DynamoSubscriptionStore:
    def __init__(self, table_name: str, dynamodb: Any) -> None:
        self._table = table_name
        self._dynamodb = dynamodb

    def get(self, token: str) -> Subscription | None:
        try:
            response = self._dynamodb.get_item(
                TableName=self._table, Key={"token": {"S": token}}, ConsistentRead=True
            )
        except (ClientError, BotoCoreError) as error:
            raise DependencyUnavailable(f"DynamoDB GetItem failed: {error}") from error
        item = response.get("Item")
        if item is None:
            return None
        data = {key: _deserializer.deserialize(value) for key, value in item.items() if key in _FIELDS}
        data["state"] = SubscriptionState(data["state"])
        return Subscription(**data)

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

    def activate(self, token: str, subscription_id: str, watermark: str) -> bool:
        """Store Exchange's answer to Subscribe on a pending record; False when it is no longer pending
        (retired meanwhile), so that its SubscriptionId is never accepted."""
        return self._update(
            token,
            UpdateExpression="SET #state = :active, subscription_id = :id, last_watermark = :watermark",
            ConditionExpression="#state = :pending",
            ExpressionAttributeNames={"#state": "state"},
            ExpressionAttributeValues={
                ":active": {"S": SubscriptionState.ACTIVE.value},
                ":pending": {"S": SubscriptionState.PENDING.value},
                ":id": {"S": subscription_id},
                ":watermark": {"S": watermark},
            },
        )

    def retire(self, token: str) -> None:
        """The webhook answers Unsubscribe from now on, which makes Exchange end the subscription."""
        self._update(
            token,
            UpdateExpression="SET #state = :retired",
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
        assignments = ["last_seen_at = :seen_at"]
        values: dict[str, Any] = {
            ":seen_at": seen_at,
            ":active": SubscriptionState.ACTIVE.value,
            ":subscription_id": subscription.subscription_id,
        }
        if progress.last_watermark is not None:
            assignments.append("last_watermark = :watermark")
            values[":watermark"] = progress.last_watermark
        if progress.heartbeat:
            assignments.append("last_heartbeat_at = :seen_at")
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

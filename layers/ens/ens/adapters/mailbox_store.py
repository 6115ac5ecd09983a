"""DynamoDB adapter for the mailboxes' shared subscriptions (table MailboxesTable, key `mailbox`).

One item per subscribed mailbox, naming the callback token (the SubscriptionsTable record) its
devices share. Every write is conditional, so two registrations racing for a mailbox make one claim.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import BotoCoreError, ClientError

from ens.core.registrations import MailboxState, MailboxSubscription
from ens.errors import DependencyUnavailable

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _moment(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _condition_failed(error: ClientError) -> bool:
    return bool(error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException")


class DynamoMailboxStore:
    def __init__(self, table_name: str, dynamodb: Any) -> None:
        self._table = table_name
        self._dynamodb = dynamodb

    def get(self, mailbox: str) -> MailboxSubscription | None:
        try:
            response = self._dynamodb.get_item(TableName=self._table, Key=_key(mailbox), ConsistentRead=True)
        except (ClientError, BotoCoreError) as error:
            raise DependencyUnavailable(f"DynamoDB GetItem of a mailbox failed: {error}") from error
        item = response.get("Item")
        return None if item is None else _record(item)

    def all(self) -> list[MailboxSubscription]:
        """Every mailbox's record, by mailbox: a paginated Scan, for operators (the admin CLI), never on
        a function's path."""
        records: list[MailboxSubscription] = []
        request: dict[str, Any] = {"TableName": self._table}
        try:
            while True:
                page = self._dynamodb.scan(**request)
                records.extend(_record(item) for item in page.get("Items", []))
                if "LastEvaluatedKey" not in page:
                    break
                request["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        except (ClientError, BotoCoreError) as error:
            raise DependencyUnavailable(f"DynamoDB Scan of mailboxes failed: {error}") from error
        return sorted(records, key=lambda record: record.mailbox)

    def claim(self, record: MailboxSubscription, replacing: str | None = None) -> bool:
        """Write the record if the mailbox has none, or (replacing a failed or stale claim) still has
        the token `replacing`; False when another registration got there first."""
        item = {
            "mailbox": record.mailbox.lower(),
            "token": record.token,
            "state": record.state.value,
            "created_at": _iso(record.created_at),
            "updated_at": _iso(record.updated_at),
            "subscription_id": record.subscription_id,
            "reason": record.reason,
        }
        condition: dict[str, Any] = {"ConditionExpression": "attribute_not_exists(mailbox)"}
        if replacing is not None:
            condition = {
                "ConditionExpression": "#token = :replacing",
                "ExpressionAttributeNames": {"#token": "token"},
                "ExpressionAttributeValues": {":replacing": {"S": replacing}},
            }
        return self._conditional(
            "PutItem",
            self._dynamodb.put_item,
            TableName=self._table,
            Item={key: _serializer.serialize(value) for key, value in item.items() if value is not None},
            **condition,
        )

    def activate(self, mailbox: str, token: str, subscription_id: str, at: datetime) -> bool:
        return self._conditional(
            "UpdateItem",
            self._dynamodb.update_item,
            TableName=self._table,
            Key=_key(mailbox),
            UpdateExpression="SET #state = :active, subscription_id = :id, updated_at = :at REMOVE reason",
            ConditionExpression="#token = :token",
            ExpressionAttributeNames={"#state": "state", "#token": "token"},
            ExpressionAttributeValues={
                ":active": {"S": MailboxState.ACTIVE.value},
                ":id": {"S": subscription_id},
                ":at": {"S": _iso(at)},
                ":token": {"S": token},
            },
        )

    def move_to(
        self, mailbox: str, old_token: str, new_token: str, subscription_id: str, at: datetime
    ) -> bool:
        """Point the mailbox at the watchdog's new subscription, active again; False when the mailbox
        no longer holds `old_token` (a registration replaced or released it meanwhile)."""
        return self._conditional(
            "UpdateItem",
            self._dynamodb.update_item,
            TableName=self._table,
            Key=_key(mailbox),
            UpdateExpression=(
                "SET #token = :new, #state = :active, subscription_id = :id, updated_at = :at REMOVE reason"
            ),
            ConditionExpression="#token = :old",
            ExpressionAttributeNames={"#state": "state", "#token": "token"},
            ExpressionAttributeValues={
                ":new": {"S": new_token},
                ":old": {"S": old_token},
                ":active": {"S": MailboxState.ACTIVE.value},
                ":id": {"S": subscription_id},
                ":at": {"S": _iso(at)},
            },
        )

    def mark_failed(self, mailbox: str, token: str, reason: str, at: datetime) -> bool:
        """The watchdog gave up for now: the devices API shows `failed` with the reason, and the next
        registration replaces the claim (subscribes at once). False when the token changed meanwhile."""
        return self._conditional(
            "UpdateItem",
            self._dynamodb.update_item,
            TableName=self._table,
            Key=_key(mailbox),
            UpdateExpression="SET #state = :failed, reason = :reason, updated_at = :at",
            ConditionExpression="#token = :token",
            ExpressionAttributeNames={"#state": "state", "#token": "token"},
            ExpressionAttributeValues={
                ":failed": {"S": MailboxState.FAILED.value},
                ":reason": {"S": reason},
                ":at": {"S": _iso(at)},
                ":token": {"S": token},
            },
        )

    def release(self, mailbox: str, token: str) -> bool:
        return self._conditional(
            "DeleteItem",
            self._dynamodb.delete_item,
            TableName=self._table,
            Key=_key(mailbox),
            ConditionExpression="#token = :token",
            ExpressionAttributeNames={"#token": "token"},
            ExpressionAttributeValues={":token": {"S": token}},
        )

    @staticmethod
    def _conditional(operation: str, call: Any, **request: Any) -> bool:
        try:
            call(**request)
        except ClientError as error:
            if _condition_failed(error):
                return False
            raise DependencyUnavailable(f"DynamoDB {operation} of a mailbox failed: {error}") from error
        except BotoCoreError as error:
            raise DependencyUnavailable(f"DynamoDB {operation} of a mailbox failed: {error}") from error
        return True


def _record(item: dict[str, Any]) -> MailboxSubscription:
    data = {key: _deserializer.deserialize(value) for key, value in item.items()}
    return MailboxSubscription(
        mailbox=data["mailbox"],
        token=data["token"],
        state=MailboxState(data["state"]),
        created_at=_moment(data["created_at"]),
        updated_at=_moment(data["updated_at"]),
        subscription_id=data.get("subscription_id"),
        reason=data.get("reason"),
    )


def _key(mailbox: str) -> dict[str, Any]:
    return {"mailbox": {"S": mailbox.lower()}}

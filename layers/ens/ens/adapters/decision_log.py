"""DynamoDB adapter for the decision log (table DecisionsTable).

Key: `device_key` (mailbox#device_id, or mailbox#- for mailbox-level decisions) and `event_key`
(the event kind and item), so a redelivered event overwrites its decision instead of doubling it;
the local index ByDecidedAt orders a device's decisions by time for "why didn't my phone buzz?".
Items expire through DynamoDB's TTL on `expires_at`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import ValidationError

from ens.core.decisions import Decision
from ens.core.registrations import DecisionView
from ens.errors import DependencyUnavailable

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()
_BATCH_LIMIT = 25
_ATTEMPTS = 4


def device_key(mailbox: str, device_id: str | None) -> str:
    return f"{mailbox.lower()}#{device_id or '-'}"


class DynamoDecisionLog:
    def __init__(self, table_name: str, dynamodb: Any, ttl_days: int) -> None:
        self._table = table_name
        self._dynamodb = dynamodb
        self._ttl_days = ttl_days

    def record(self, decisions: Sequence[Decision]) -> None:
        items: dict[tuple[str, str], dict[str, Any]] = {}
        for decision in decisions:
            record = decision.to_record(self._ttl_days)
            record["device_key"] = device_key(decision.mailbox, decision.device_id)
            record["event_key"] = f"{decision.event_kind}#{decision.item_id or record['decided_at']}"
            # BatchWriteItem refuses two writes to one key: the later decision wins.
            items[(record["device_key"], record["event_key"])] = {
                key: _serializer.serialize(value) for key, value in record.items() if value is not None
            }
        requests = [{"PutRequest": {"Item": item}} for item in items.values()]
        for start in range(0, len(requests), _BATCH_LIMIT):
            self._write(requests[start : start + _BATCH_LIMIT])

    def recent(
        self, mailbox: str, device_id: str, *, limit: int, since: datetime | None
    ) -> list[DecisionView]:
        """The device's decisions, newest first; `since` is a lower bound on decided_at (inclusive)."""
        values: dict[str, Any] = {":key": {"S": device_key(mailbox, device_id)}}
        condition = "device_key = :key"
        if since is not None:
            # decided_at is stored as fixed-width UTC ISO text, so text order is time order.
            condition += " AND decided_at >= :since"
            values[":since"] = {
                "S": since.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
            }
        query: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": "ByDecidedAt",
            "KeyConditionExpression": condition,
            "ExpressionAttributeValues": values,
            "ScanIndexForward": False,
            "Limit": limit,
        }
        try:
            items = self._dynamodb.query(**query).get("Items", [])
        except (ClientError, BotoCoreError) as error:
            raise DependencyUnavailable(f"DynamoDB Query of decisions failed: {error}") from error
        views: list[DecisionView] = []
        for item in items:
            data = {key: _deserializer.deserialize(value) for key, value in item.items()}
            try:
                views.append(
                    DecisionView.model_validate({name: data.get(name) for name in DecisionView.model_fields})
                )
            except ValidationError:
                continue  # a record this model cannot read is left out rather than failing the page
        return views

    def _write(self, requests: list[dict[str, Any]]) -> None:
        pending = requests
        for _ in range(_ATTEMPTS):
            try:
                response = self._dynamodb.batch_write_item(RequestItems={self._table: pending})
            except (ClientError, BotoCoreError) as error:
                raise DependencyUnavailable(
                    f"DynamoDB BatchWriteItem of decisions failed: {error}"
                ) from error
            pending = response.get("UnprocessedItems", {}).get(self._table, [])
            if not pending:
                return
        raise DependencyUnavailable(f"DynamoDB left {len(pending)} decision(s) unwritten")

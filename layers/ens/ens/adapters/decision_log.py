"""DynamoDB adapter for the decision log (table DecisionsTable).

Key: `device_key` (mailbox#device_id, or mailbox#- for mailbox-level decisions) and `event_key`
(the event kind and item), so a redelivered event overwrites its decision instead of doubling it;
the local index ByDecidedAt orders a device's decisions by time for "why didn't my phone buzz?".
Items expire through DynamoDB's TTL on `expires_at`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from boto3.dynamodb.types import TypeSerializer
from botocore.exceptions import BotoCoreError, ClientError

from ens.core.decisions import Decision
from ens.errors import DependencyUnavailable

_serializer = TypeSerializer()
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

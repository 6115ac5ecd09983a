"""DynamoDB adapter for devices (table DevicesTable: key mailbox + device_id, index ByDeviceId).

One item per device; its rules are stored as one JSON attribute, validated by the core model on the
way out, so a rule the API wrote is exactly the rule the consumer applies.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from aws_lambda_powertools import Logger
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import ValidationError

from ens.core.devices import Device
from ens.errors import DependencyUnavailable

logger = Logger(child=True)
_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class DynamoDeviceStore:
    def __init__(self, table_name: str, dynamodb: Any) -> None:
        self._table = table_name
        self._dynamodb = dynamodb

    def devices_of(self, mailbox: str) -> list[Device]:
        items: list[dict[str, Any]] = []
        query: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "mailbox = :mailbox",
            "ExpressionAttributeValues": {":mailbox": {"S": mailbox.lower()}},
            "ConsistentRead": True,  # a rule changed a moment ago applies to this very mail
        }
        try:
            while True:
                page = self._dynamodb.query(**query)
                items.extend(page.get("Items", []))
                if "LastEvaluatedKey" not in page:
                    break
                query["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        except (ClientError, BotoCoreError) as error:
            raise DependencyUnavailable(f"DynamoDB Query of devices failed: {error}") from error
        return [device for item in items if (device := self._device(item)) is not None]

    def get(self, mailbox: str, device_id: str) -> Device | None:
        try:
            response = self._dynamodb.get_item(
                TableName=self._table, Key=_key(mailbox, device_id), ConsistentRead=True
            )
        except (ClientError, BotoCoreError) as error:
            raise DependencyUnavailable(f"DynamoDB GetItem of a device failed: {error}") from error
        item = response.get("Item")
        return None if item is None else self._device(item)

    def find(self, device_id: str) -> Device | None:
        """The device with this id, whatever its mailbox (index ByDeviceId, eventually consistent).

        A device id belongs to one mailbox; should two rows carry it (an admin's move half done),
        the most recently updated one answers."""
        try:
            response = self._dynamodb.query(
                TableName=self._table,
                IndexName="ByDeviceId",
                KeyConditionExpression="device_id = :device_id",
                ExpressionAttributeValues={":device_id": {"S": device_id}},
            )
        except (ClientError, BotoCoreError) as error:
            raise DependencyUnavailable(f"DynamoDB Query of a device id failed: {error}") from error
        found = [device for item in response.get("Items", []) if (device := self._device(item)) is not None]
        return max(found, key=lambda device: device.updated_at, default=None)

    def save(self, device: Device, previous: Device | None) -> bool:
        """Write the device if the stored row is still `previous` (None: there is none).

        False when a concurrent registration changed it first; the caller decides again."""
        if previous is None:
            condition: dict[str, Any] = {"ConditionExpression": "attribute_not_exists(device_id)"}
        else:
            # put() stores pydantic's spelling of the time, deactivate() the millisecond one: the
            # stored string is one of the two spellings of the same moment.
            condition = {
                "ConditionExpression": "updated_at IN (:json, :iso)",
                "ExpressionAttributeValues": {
                    ":json": {"S": previous.model_dump(mode="json")["updated_at"]},
                    ":iso": {"S": _iso(previous.updated_at)},
                },
            }
        try:
            self._dynamodb.put_item(TableName=self._table, Item=_item(device), **condition)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise DependencyUnavailable(f"DynamoDB PutItem of a device failed: {error}") from error
        except BotoCoreError as error:
            raise DependencyUnavailable(f"DynamoDB PutItem of a device failed: {error}") from error
        return True

    def delete(self, mailbox: str, device_id: str) -> bool:
        """Delete the device; False when there was none."""
        try:
            response = self._dynamodb.delete_item(
                TableName=self._table, Key=_key(mailbox, device_id), ReturnValues="ALL_OLD"
            )
        except (ClientError, BotoCoreError) as error:
            raise DependencyUnavailable(f"DynamoDB DeleteItem of a device failed: {error}") from error
        return "Attributes" in response

    def put(self, device: Device) -> None:
        try:
            self._dynamodb.put_item(TableName=self._table, Item=_item(device))
        except (ClientError, BotoCoreError) as error:
            raise DependencyUnavailable(f"DynamoDB PutItem of a device failed: {error}") from error

    def deactivate(self, device: Device, reason: str, at: datetime) -> None:
        """Mark the device inactive, unless it re-registered with another push token meanwhile."""
        try:
            self._dynamodb.update_item(
                TableName=self._table,
                Key=_key(device.mailbox, device.device_id),
                UpdateExpression="SET active = :false, deactivated_reason = :reason, deactivated_at = :at, updated_at = :at",
                ConditionExpression="push_token = :token",
                ExpressionAttributeValues={
                    ":false": {"BOOL": False},
                    ":reason": {"S": reason[:256]},
                    ":at": {"S": _iso(at)},
                    ":token": {"S": device.push_token},
                },
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return
            raise DependencyUnavailable(f"DynamoDB UpdateItem of a device failed: {error}") from error
        except BotoCoreError as error:
            raise DependencyUnavailable(f"DynamoDB UpdateItem of a device failed: {error}") from error

    def record_pushes(self, mailbox: str, device_ids: Iterable[str], at: datetime) -> None:
        for device_id in device_ids:
            try:
                self._dynamodb.update_item(
                    TableName=self._table,
                    Key=_key(mailbox, device_id),
                    UpdateExpression="SET last_push_at = :at",
                    ConditionExpression="attribute_exists(device_id)",
                    ExpressionAttributeValues={":at": {"S": _iso(at)}},
                )
            except (ClientError, BotoCoreError):
                # The push went out (or the device left meanwhile): a missed timestamp is not worth a redelivery.
                continue

    def _device(self, item: dict[str, Any]) -> Device | None:
        data = {key: _deserializer.deserialize(value) for key, value in item.items()}
        data["rules"] = json.loads(data.get("rules") or "{}")
        try:
            return Device.model_validate(data)
        except ValidationError as error:
            # A record this model cannot read must not block its mailbox's other devices; an operator
            # must see it, though (field names only: the values may hold a push token).
            logger.error(
                "unreadable device record skipped",
                extra={
                    "mailbox": data.get("mailbox"),
                    "device_id": data.get("device_id"),
                    "fields": sorted(
                        {str(problem["loc"][0]) for problem in error.errors() if problem["loc"]}
                    ),
                },
            )
            return None


def _key(mailbox: str, device_id: str) -> dict[str, Any]:
    return {"mailbox": {"S": mailbox.lower()}, "device_id": {"S": device_id}}


def _item(device: Device) -> dict[str, Any]:
    data = device.model_dump(mode="json", exclude={"rules"}, exclude_none=True)
    data["rules"] = json.dumps(device.rules.model_dump(mode="json"), separators=(",", ":"), sort_keys=True)
    return {key: _serializer.serialize(value) for key, value in data.items()}

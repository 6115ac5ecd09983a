"""The whole service for end-to-end tests of the consumer: a mail delivered in the simulated Exchange
travels through Exchange's push, the webhook, SQS and the consumer to the push sink.

`MailFlow` wraps a started LocalStack (simulator with manual dispatch, pollers off) and the push sink:
`deliver()` puts a mail in Exchange, `dispatch()` lets Exchange call the webhook and runs one consumer
poll, so each test says exactly when each step happens and never sleeps.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from boto3.dynamodb.types import TypeDeserializer

from ens.adapters.decision_log import device_key
from ens.adapters.device_store import DynamoDeviceStore
from ens.core.devices import Device
from ens_local.stack import LocalStack
from push_sink import PushSink
from support.push_sink_fixtures import PUSH_SINK_TOKEN

DEMO_MAILBOX = "alice@contoso.example"
SERVERS_SECRET = "ens/exchange-servers"
CNS_TOKEN_SECRET = "ens/cns-token"
_deserializer = TypeDeserializer()


def simulator_server(name: str, ews_url: str, **fields: Any) -> dict[str, Any]:
    """One entry of the Exchange servers secret, for a simulator and its demo service account."""
    return {
        "name": name,
        "ews_url": ews_url,
        "auth_type": "NTLM",
        "version": "2016",
        "username": "svc-ens@contoso.example",
        "password": "Simulated-Exchange-2016",
        **fields,
    }


def servers_secret(*servers: Mapping[str, Any]) -> str:
    return json.dumps({"servers": list(servers)})


def consumer_secrets(servers: str | None = None) -> dict[str, str]:
    return {
        SERVERS_SECRET: servers
        or servers_secret(simulator_server("simulator", "${simulator_ews_url}", default=True)),
        CNS_TOKEN_SECRET: PUSH_SINK_TOKEN,
    }


def consumer_environment(sink: PushSink) -> dict[str, str]:
    return {"CNS_URL": sink.url, "CNS_CA_BUNDLE": sink.ca_bundle_path or ""}


def hours_excluding_now(now: datetime | None = None) -> dict[str, str]:
    """Work hours (UTC, every day a work day) that do not include the present moment: after hours now."""
    moment = now or datetime.now(UTC)
    return {
        "work_start": (moment + timedelta(hours=2)).strftime("%H:%M"),
        "work_end": (moment + timedelta(hours=3)).strftime("%H:%M"),
    }


EVERY_DAY = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


@dataclass
class MailFlow:
    stack: LocalStack
    sink: PushSink

    @property
    def simulator(self) -> Any:
        return self.stack.simulator

    def add_device(
        self, device_id: str, *, mailbox: str = DEMO_MAILBOX, push_token: str | None = None, **rules: Any
    ) -> Device:
        now = datetime.now(UTC)
        device = Device.model_validate(
            {
                "mailbox": mailbox,
                "device_id": device_id,
                "push_token": push_token or f"apns-token-{device_id}",
                "registered_at": now,
                "updated_at": now,
                "rules": rules,
            }
        )
        self.devices().put(device)
        return device

    def devices(self) -> DynamoDeviceStore:
        return DynamoDeviceStore(self.stack.table_names["DevicesTable"], self.stack.client("dynamodb"))

    def deliver(self, mailbox: str = DEMO_MAILBOX, simulator: Any = None, **fields: Any) -> str:
        """A mail arrives in Exchange; returns its EWS item id."""
        sim = simulator or self.simulator
        message = sim.deliver(mailbox, **{"from_": "someone@contoso.example", "subject": "Hello", **fields})
        return str(sim.item_id(mailbox, message))

    def dispatch(self, *simulators: Any) -> list[Any]:
        """Exchange calls the webhook with what is due; then one consumer poll handles the queue."""
        for sim in simulators or (self.simulator,):
            for attempt in sim.run_due_work():
                assert attempt.http_status == 200, attempt
        return self.poll()

    def poll(self) -> list[Any]:
        outcomes = self.stack.poll_all_once()
        for outcome in outcomes:
            assert not outcome.error, outcome
        return outcomes

    def decisions(self, device_id: str | None, mailbox: str = DEMO_MAILBOX) -> list[dict[str, Any]]:
        response = self.stack.client("dynamodb").query(
            TableName=self.stack.table_names["DecisionsTable"],
            KeyConditionExpression="device_key = :key",
            ExpressionAttributeValues={":key": {"S": device_key(mailbox, device_id)}},
        )
        return [
            {key: _deserializer.deserialize(value) for key, value in item.items()}
            for item in response["Items"]
        ]

    def decision_for(
        self, device_id: str | None, item_id: str, mailbox: str = DEMO_MAILBOX
    ) -> dict[str, Any]:
        (decision,) = [d for d in self.decisions(device_id, mailbox) if d.get("item_id") == item_id]
        return decision

    def pushes_to(self, device: Device) -> list[Any]:
        return self.sink.pushes(device_token=device.push_token)

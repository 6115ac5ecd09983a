"""The whole service on loopback for the consumer's benchmarks: many mailboxes, one device each.

`consumer_stack(...)` starts the local stack (moto, webhook, SQS trigger, Exchange simulator with
its own demo file of N mailboxes subscribed to push, push sink over TLS), as `make run` does, and
stops it afterwards. What a benchmark needs beyond the stack lives here too: devices, deliveries
paced by a seeded random order, the queue's raw bodies, and the functions' stdout in a file.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import sys
import tempfile
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ens.adapters.device_store import DynamoDeviceStore
from ens.core.devices import Device
from ens_local.config import PushSinkSettings, Settings, SimulatorSettings, StackSettings
from ens_local.stack import LocalStack

SERVERS_SECRET = "ens/exchange-servers"  # noqa: S105 - the name, not the secret
SERVICE_ACCOUNT = "svc-ens@contoso.example"
SERVICE_PASSWORD = "Simulated-Exchange-2016"  # noqa: S105 - the simulator's demo account
SEED = 20261130


def mailbox_addresses(count: int) -> list[str]:
    return [f"user{n:03d}@contoso.example" for n in range(count)]


def _demo_file(directory: Path, mailboxes: Sequence[str]) -> Path:
    lines = [
        "[[service_accounts]]",
        f'username = "{SERVICE_ACCOUNT}"',
        f'password = "{SERVICE_PASSWORD}"',
        "can_impersonate = true",
    ]
    for address in mailboxes:
        lines += ["", "[[mailboxes]]", f'address = "{address}"']
    path = directory / "bench-demo.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _servers_secret() -> str:
    # As `make run` has it (local/config/local.toml): NTLM, pinned version, the simulator as default.
    server = {
        "name": "simulator",
        "ews_url": "${simulator_ews_url}",
        "auth_type": "NTLM",
        "version": "2016",
        "username": SERVICE_ACCOUNT,
        "password": SERVICE_PASSWORD,
        "default": True,
    }
    return json.dumps({"servers": [server]})


@contextlib.contextmanager
def consumer_stack(
    mailboxes: Sequence[str],
    *,
    dispatch: str,
    start_pollers: bool,
    poll_wait_seconds: int = 1,
) -> Iterator[LocalStack]:
    with tempfile.TemporaryDirectory(prefix="ens-bench-") as directory:
        settings = Settings(
            stack=StackSettings(
                api_port=0,
                aws_port=0,
                stack_name=f"bench-{uuid.uuid4().hex[:6]}",
                poll_wait_seconds=poll_wait_seconds,
                seed=True,
            ),
            environment={"CNS_URL": "${push_sink_url}", "CNS_CA_BUNDLE": "${push_sink_ca_bundle}"},
            secrets={SERVERS_SECRET: _servers_secret()},
            exchange_simulator=SimulatorSettings(
                enabled=True,
                port=0,
                subscribe_mailboxes=tuple(mailboxes),
                servers_secret=SERVERS_SECRET,
                settings={
                    "dispatch": dispatch,
                    "demo_file": str(_demo_file(Path(directory), mailboxes)),
                },
            ),
            push_sink=PushSinkSettings(enabled=True, port=0, tls=True),
        )
        stack = LocalStack(settings, start_pollers=start_pollers).start()
        try:
            yield stack
        finally:
            stack.stop()


def put_devices(stack: LocalStack, mailboxes: Sequence[str], label: str) -> list[Device]:
    """One summary-mode device per mailbox (default rules: every mail), ids and tokens tagged `label`."""
    store = DynamoDeviceStore(stack.table_names["DevicesTable"], stack.client("dynamodb"))
    now = datetime.now(UTC)
    devices = []
    for n, mailbox in enumerate(mailboxes):
        device = Device.model_validate(
            {
                "mailbox": mailbox,
                "device_id": f"{label}-phone",
                "push_token": f"{label}-token-{n:04d}",
                "registered_at": now,
                "updated_at": now,
                "rules": {"content": "summary"},
            }
        )
        store.put(device)
        devices.append(device)
    return devices


def remove_devices(stack: LocalStack, devices: Sequence[Device]) -> None:
    dynamodb = stack.client("dynamodb")
    for device in devices:
        dynamodb.delete_item(
            TableName=stack.table_names["DevicesTable"],
            Key={"mailbox": {"S": device.mailbox.lower()}, "device_id": {"S": device.device_id}},
        )


def arrival_order(mailboxes: Sequence[str], mails_per_mailbox: int) -> list[str]:
    """Which mailbox each successive mail goes to: every mailbox gets its share, in a seeded random
    order, as independent users' mail interleaves."""
    order = [mailbox for mailbox in mailboxes for _ in range(mails_per_mailbox)]
    random.Random(SEED).shuffle(order)
    return order


def take_bodies(sqs: Any, queue_url: str) -> list[str]:
    """Every visible message's body as queued (raw text, queue order), the messages deleted."""
    bodies: list[str] = []
    while batch := sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get(
        "Messages"
    ):
        bodies += [message["Body"] for message in batch]
        sqs.delete_message_batch(
            QueueUrl=queue_url,
            Entries=[{"Id": m["MessageId"], "ReceiptHandle": m["ReceiptHandle"]} for m in batch],
        )
    return bodies


def send_bodies(sqs: Any, queue_url: str, bodies: Sequence[str]) -> None:
    for start in range(0, len(bodies), 10):
        chunk = bodies[start : start + 10]
        response = sqs.send_message_batch(
            QueueUrl=queue_url, Entries=[{"Id": str(i), "MessageBody": body} for i, body in enumerate(chunk)]
        )
        assert not response.get("Failed"), response["Failed"]


@dataclass
class CapturedOutput:
    path: Path

    def size(self) -> int:
        sys.stdout.flush()
        return self.path.stat().st_size

    def segments(self, ranges: Sequence[tuple[int, int]]) -> list[str]:
        """The lines written between each (start, end) pair of sizes."""
        sys.stdout.flush()
        data = self.path.read_bytes()
        return [
            line for start, end in ranges for line in data[start:end].decode("utf-8", "replace").splitlines()
        ]


@contextlib.contextmanager
def stdout_to_file() -> Iterator[CapturedOutput]:
    """File descriptor 1 into a temporary file: Powertools' loggers hold the stdout they found at
    import, so only a redirection below Python's sys.stdout catches their lines (and the EMF metrics)."""
    sys.stdout.flush()
    saved = os.dup(1)
    with tempfile.NamedTemporaryFile("wb", prefix="ens-bench-stdout-", suffix=".log", delete=False) as file:
        path = Path(file.name)
        os.dup2(file.fileno(), 1)
    try:
        yield CapturedOutput(path)
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
        path.unlink(missing_ok=True)


def log_volume(lines: Sequence[str]) -> dict[str, int]:
    """Bytes (with newlines) of Powertools' JSON log lines and of EMF metric lines among `lines`."""
    volume = {"logs": 0, "metrics": 0, "other": 0}
    for line in lines:
        size = len(line.encode("utf-8")) + 1
        try:
            record = json.loads(line)
        except ValueError:
            volume["other"] += size
            continue
        if isinstance(record, dict) and "_aws" in record:
            volume["metrics"] += size
        elif isinstance(record, dict) and "level" in record:
            volume["logs"] += size
        else:
            volume["other"] += size
    return volume

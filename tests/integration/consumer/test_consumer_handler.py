"""The consumer Lambda, loaded cold against moto, the Exchange simulator and the push sink: what it
reports to SQS, logs and counts."""

from __future__ import annotations

import io
import json
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from ens.adapters.device_store import DynamoDeviceStore
from ens.core.devices import Device
from ens.core.mail_events import MailEvent
from ens_local.functions import LoadedFunction
from exchange_simulator import ExchangeSimulator
from push_sink import PushSink, mint_token
from support.consumer_fakes import make_device
from support.consumer_flow import EVERY_DAY, hours_excluding_now, servers_secret, simulator_server
from support.push_sink_fixtures import PUSH_SINK_TOKEN
from support.simulator_fixtures import DEMO_MAILBOX, DEMO_NO_IMPERSONATION_ACCOUNT

pytestmark = pytest.mark.integration


@dataclass
class ConsumerUnderTest:
    function: LoadedFunction
    stack: Any  # ens_local.aws.ProvisionedStack
    sim: ExchangeSimulator
    sink: PushSink
    output: Callable[[], str]

    def add_device(self, device_id: str = "phone", **rules: Any) -> Device:
        device = make_device(device_id, **rules)
        DynamoDeviceStore(self.stack.table_names["DevicesTable"], self.stack.aws.client("dynamodb")).put(
            device
        )
        return device

    def deliver(self, **fields: Any) -> str:
        """A mail in Alice's inbox, received now; the body of the queue message announcing it."""
        message = self.sim.deliver(
            DEMO_MAILBOX, **{"from_": "bob@contoso.example", "received": datetime.now(UTC), **fields}
        )
        return MailEvent(
            kind="NewMail",
            mailbox=DEMO_MAILBOX,
            subscription_id="sub-1",
            watermark=f"wm-{message.number}",
            timestamp=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            folder_id=None,
            item_id=self.sim.item_id(DEMO_MAILBOX, message),
            change_key=self.sim.store.change_key(message),
        ).to_message()

    def invoke(self, *records: tuple[str, str]) -> list[str]:
        """Run one batch of (message id, body) records; the message ids reported failed."""
        event = {"Records": [_record(message_id, body) for message_id, body in records]}
        answer = self.function.invoke(event)
        return [failure["itemIdentifier"] for failure in answer["batchItemFailures"]]

    def emitted(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """The JSON log lines and the EMF documents the handler printed."""
        logs, metrics = [], []
        for line in self.output().splitlines():
            document = json.loads(line)
            (metrics if "_aws" in document else logs).append(document)
        return logs, metrics


def _record(message_id: str, body: str) -> dict[str, Any]:
    return {
        "messageId": message_id,
        "receiptHandle": f"handle-{message_id}",
        "body": body,
        "attributes": {"ApproximateReceiveCount": "1"},
        "messageAttributes": {},
        "md5OfBody": "",
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:eu-west-1:123456789012:notifications",
        "awsRegion": "eu-west-1",
    }


def metric_values(metrics: list[dict[str, Any]], name: str, **dimensions: str) -> list[float]:
    """Every value of metric `name` printed with these dimension values."""
    values: list[float] = []
    for document in metrics:
        names = {m["Name"] for m in document["_aws"]["CloudWatchMetrics"][0]["Metrics"]}
        if name in names and all(document.get(key) == value for key, value in dimensions.items()):
            value = document[name]
            values += value if isinstance(value, list) else [value]
    return values


@pytest.fixture
def simulator_settings() -> dict[str, Any]:
    return {"dispatch": "manual"}  # the system clock: mails are received now, not stale


@pytest.fixture
def start_consumer(
    provision_stack: Any,
    load_lambda: Callable[[str], LoadedFunction],
    exchange_simulator: ExchangeSimulator,
    push_sink: PushSink,
    capsys: pytest.CaptureFixture[str],
) -> Iterator[Callable[..., ConsumerUnderTest]]:
    """Provision the template, store the secrets, cold-start ConsumerFunction; its output captured."""
    handlers: list[tuple[Any, Any]] = []

    def start(
        *,
        cns_token: str = PUSH_SINK_TOKEN,
        servers: str | None = None,
        environment: dict[str, str] | None = None,
    ) -> ConsumerUnderTest:
        prefix = f"ens-test/{uuid.uuid4().hex[:8]}"
        stack = provision_stack(
            environment={
                "CNS_URL": push_sink.url,
                "CNS_CA_BUNDLE": push_sink.ca_bundle_path or "",
                "EXCHANGE_SERVERS_SECRET": f"{prefix}/exchange-servers",
                "CNS_TOKEN_SECRET": f"{prefix}/cns-token",
                **(environment or {}),
            }
        )
        secrets = stack.aws.client("secretsmanager")
        secrets.create_secret(
            Name=f"{prefix}/exchange-servers",
            SecretString=servers
            or servers_secret(simulator_server("simulator", exchange_simulator.ews_url, default=True)),
        )
        secrets.create_secret(Name=f"{prefix}/cns-token", SecretString=cns_token)
        function = load_lambda("ConsumerFunction")
        # Powertools' Logger keeps the stream it was first created with (maybe an earlier test's
        # captured stdout, closed since): point it at a buffer here, without flushing the old one.
        handler = function.module.logger.registered_handler
        buffer = io.StringIO()
        handlers.append((handler, handler.stream))
        handler.stream = buffer
        capsys.readouterr()
        return ConsumerUnderTest(
            function,
            stack,
            exchange_simulator,
            push_sink,
            lambda: buffer.getvalue() + capsys.readouterr().out,
        )

    yield start
    for handler, previous in reversed(handlers):
        handler.stream = sys.__stdout__ if getattr(previous, "closed", False) else previous


def test_unreadable_records_are_reported_failed_and_logged_without_their_body(start_consumer) -> None:
    consumer = start_consumer()
    phone = consumer.add_device()
    good = consumer.deliver(subject="Between two bad ones")
    wrong_version = json.dumps({**json.loads(good), "v": 99, "secret": "secret-in-wrong-version"})

    failed = consumer.invoke(
        ("bad-json", '{"secret-in-bad-json'), ("good", good), ("wrong-version", wrong_version)
    )

    assert failed == ["bad-json", "wrong-version"]
    (push,) = consumer.sink.pushes(device_token=phone.push_token)
    assert push.payload["aps"]["alert"]["subtitle"] == "Between two bad ones"
    logs, metrics = consumer.emitted()
    unreadable = [line for line in logs if line["message"].startswith("unreadable mail event")]
    assert [line["message_id"] for line in unreadable] == ["bad-json", "wrong-version"]
    printed = consumer.output() + json.dumps(logs)
    assert "secret-in-bad-json" not in printed
    assert "secret-in-wrong-version" not in printed
    assert metric_values(metrics, "UnreadableMailEvents") == [2]
    assert metric_values(metrics, "PushesSent") == [1]


def test_a_missing_setting_fails_the_invocation_naming_the_variable(start_consumer, monkeypatch) -> None:
    consumer = start_consumer()
    monkeypatch.delenv("CNS_URL")

    with pytest.raises(Exception, match="CNS_URL"):
        consumer.invoke(("m-1", consumer.deliver()))


def test_the_cns_tokens_days_left_are_a_metric_with_a_warning_near_expiry(start_consumer) -> None:
    consumer = start_consumer(cns_token=mint_token(lifetime=timedelta(days=10, hours=1)))
    consumer.add_device()

    consumer.invoke()

    logs, metrics = consumer.emitted()
    (days_left,) = metric_values(metrics, "CnsTokenDaysLeft")
    assert days_left == pytest.approx(10.04, abs=0.01)
    assert [line["days_left"] for line in logs if line["message"] == "the CNS token expires soon"] == [10.0]


def test_an_expired_cns_token_pushes_nothing_and_reports_the_records_failed(start_consumer) -> None:
    consumer = start_consumer(cns_token=mint_token(lifetime=timedelta(days=-1)))
    consumer.add_device()

    failed = consumer.invoke(("m-1", consumer.deliver()), ("m-2", consumer.deliver()))

    assert failed == ["m-1", "m-2"]
    assert consumer.sink.attempts() == []
    logs, metrics = consumer.emitted()
    assert metric_values(metrics, "CnsTokenDaysLeft") == [0]
    assert metric_values(metrics, "MailEventsRetried") == [2]
    assert any(line["level"] == "ERROR" and "expired" in line["message"] for line in logs)


def test_suppressions_and_cns_errors_are_counted_by_reason_and_status(start_consumer) -> None:
    consumer = start_consumer()
    consumer.add_device(
        "strict",
        work_hours_only=True,
        work_days=EVERY_DAY,
        time_zone="UTC",
        badge_updates=False,
        **hours_excluding_now(),
    )
    gone = consumer.add_device("gone")
    consumer.sink.mark_unregistered(gone.push_token)

    consumer.invoke(("m-1", consumer.deliver()))

    _, metrics = consumer.emitted()
    assert metric_values(metrics, "MailsSuppressed", reason="outside_work_hours") == [1]
    assert metric_values(metrics, "CnsErrors", status="410") == [1]
    assert metric_values(metrics, "NewMailReceived") == [1]
    assert metric_values(metrics, "MailsFetched") == [1]


def test_an_exchange_refusal_is_counted_by_code_and_not_retried(
    start_consumer, exchange_simulator, caplog
) -> None:
    consumer = start_consumer(
        servers=servers_secret(
            simulator_server(
                "simulator", exchange_simulator.ews_url, default=True, username=DEMO_NO_IMPERSONATION_ACCOUNT
            )
        )
    )
    consumer.add_device()

    failed = consumer.invoke(("m-1", consumer.deliver()))

    assert failed == []
    _, metrics = consumer.emitted()
    assert metric_values(metrics, "AdminActionsRequired", code="impersonation_denied") == [1]
    assert metric_values(metrics, "ExchangeErrors", code="impersonation_denied") == [1]
    # The service's child logger is named after the service when its module was first imported, which
    # in this test process may precede the function's environment: read the record, not the stream.
    (refusal,) = [record for record in caplog.records if record.levelname == "ERROR"]
    assert (refusal.mailbox, refusal.server, refusal.code) == (
        DEMO_MAILBOX,
        "simulator",
        "impersonation_denied",
    )

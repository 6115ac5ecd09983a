"""Consumer throughput, batched against one event per invocation, on the whole local service.

500 mails are delivered over 50 mailboxes in the Exchange simulator, in a seeded random order, and
each delivery's push callback goes through the real webhook onto the SQS queue: 1000 mail events
(each delivery queues a NewMail and the inbox's UnreadCountChanged), exactly as in production. Then
every EWS call gets 20 ms of injected latency and the same 1000 queue bodies are handled by the real
consumer handler (functions/consumer/app.py, real adapters: exchangelib over HTTP with NTLM and
impersonation, DynamoDB in moto, pushes over HTTPS to the push sink) through the local stack's SQS
trigger, with batch size 1 (the baseline: one GetItem per event), 10 (the template's default) and
100. Each mode pushes to its own devices, so idempotency never skips a push of another mode.

The consumer runs in a worker process of its own (bench/lambda_worker.py), as one warm Lambda
container: moto, the simulator and the push sink stay in this process and do not share its GIL.
"""

from __future__ import annotations

import json
import math
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from bench.consumer_stack import (
    CapturedOutput,
    arrival_order,
    consumer_stack,
    log_volume,
    mailbox_addresses,
    put_devices,
    remove_devices,
    send_bodies,
    stdout_to_file,
    take_bodies,
)
from bench.lambda_worker import RemoteFunction, counting_aws_calls
from bench.stats import percentile
from ens_local.sqs_trigger import BatchOutcome, SqsTrigger
from ens_local.stack import LocalStack

MAILBOXES = 50
MAILS_PER_MAILBOX = 10
EWS_LATENCY_MS = 20
BATCH_SIZES = (1, 10, 100)
WARM_UP_EVENTS = 20
FEED = 100  # events put on the queue at a time; a multiple of every batch size, and even (pairs)
# The baseline is slow (one invocation per event): it handles the first mails only, the same events
# the batched modes start with, to keep the benchmark within two minutes.
BASELINE_EVENTS = 200
QUEUE = "NotificationsQueue"


@dataclass
class WebhookFigures:
    mails: int = 0  # delivered
    callbacks: int = 0  # with mail events
    heartbeats: int = 0
    measured_callbacks: int = 0  # those in rounds without a heartbeat: the figures below are theirs
    durations: list[float] = field(default_factory=list)
    aws_calls: Counter[str] = field(default_factory=Counter)
    output_ranges: list[tuple[int, int]] = field(default_factory=list)
    log_bytes: int = 0
    metric_bytes: int = 0


@dataclass
class ModeFigures:
    batch_size: int
    events: int
    mails: int
    wall_seconds: float
    invocations: int
    handler_seconds: list[float]
    cpu_seconds: float  # the worker's own CPU (user + system) over those invocations
    alerts: int
    badges: int
    ews: dict[str, int]
    aws_calls: Counter[str]
    sqs_calls: Counter[str]
    decisions_written: int
    log_bytes: int
    peak_kib: int  # the worker's peak RSS (VmHWM) at the end of this mode

    @property
    def events_per_second(self) -> float:
        return self.events / self.wall_seconds

    @property
    def handler_events_per_second(self) -> float:
        return self.events / sum(self.handler_seconds)

    @property
    def ews_per_alert(self) -> float:
        return sum(self.ews.values()) / self.alerts

    @property
    def billed_ms_per_mail(self) -> float:
        # Lambda bills each invocation's duration rounded up to the millisecond.
        return sum(math.ceil(seconds * 1000) for seconds in self.handler_seconds) / self.mails


@dataclass
class ThroughputFigures:
    webhook: WebhookFigures
    modes: list[ModeFigures] = field(default_factory=list)
    ready_kib: int = 0  # the worker's peak RSS once the handler is imported
    item_bytes: dict[str, int] = field(default_factory=dict)


def measure() -> ThroughputFigures:
    mailboxes = mailbox_addresses(MAILBOXES)
    with (
        stdout_to_file() as output,
        consumer_stack(mailboxes, dispatch="manual", start_pollers=False) as stack,
    ):
        webhook, bodies = _queue_through_webhook(stack, mailboxes, output)
        stack.simulator.faults.add("latency", fraction=1.0, latency_ms=EWS_LATENCY_MS)
        consumer = RemoteFunction("ConsumerFunction").start()
        try:
            figures = ThroughputFigures(webhook=webhook, ready_kib=consumer.ready_kib)
            devices = put_devices(stack, mailboxes, "warmup")
            _run_mode(stack, consumer, bodies[:WARM_UP_EVENTS], 10)
            for batch_size in BATCH_SIZES:
                remove_devices(stack, devices)
                devices = put_devices(stack, mailboxes, f"batch{batch_size}")
                events = bodies[:BASELINE_EVENTS] if batch_size == 1 else bodies
                figures.modes.append(_run_mode(stack, consumer, events, batch_size))
            figures.item_bytes = _largest_items(stack)
        finally:
            consumer.stop()
    return figures


def _queue_through_webhook(
    stack: LocalStack, mailboxes: list[str], output: CapturedOutput
) -> tuple[WebhookFigures, list[str]]:
    """Deliver every mail in Exchange and let its push callback reach the webhook, one at a time.

    The webhook's durations, AWS calls and output are kept from the callbacks that carried a mail
    only: a round in which a subscription's heartbeat fell due as well is left out of them.
    """
    simulator, sqs, queue_url = stack.simulator, stack.client("sqs"), stack.queue_urls[QUEUE]
    webhook = stack.functions["WebhookFunction"]
    handler = webhook.handler
    round_durations: list[float] = []

    def timed(event: Any, context: Any) -> Any:
        started = time.perf_counter()
        try:
            return handler(event, context)
        finally:
            round_durations.append(time.perf_counter() - started)

    webhook.handler = timed
    figures = WebhookFigures(mails=MAILBOXES * MAILS_PER_MAILBOX)
    bodies: list[str] = []
    try:
        for n, mailbox in enumerate(arrival_order(mailboxes, MAILS_PER_MAILBOX)):
            simulator.deliver(
                mailbox,
                from_="Colleague <colleague@contoso.example>",
                subject=f"Bench mail {n}",
                body="Shall we meet at noon? The agenda is attached.",
            )
            round_durations.clear()
            output_before = output.size()
            with counting_aws_calls() as calls:
                attempts = simulator.run_due_work()
            assert all(attempt.http_status == 200 for attempt in attempts), attempts
            kinds = Counter(attempt.kind for attempt in attempts)
            figures.callbacks += kinds["events"]
            figures.heartbeats += kinds["status"]
            if set(kinds) == {"events"}:
                figures.measured_callbacks += kinds["events"]
                figures.durations += round_durations
                figures.aws_calls.update(calls)
                figures.output_ranges.append((output_before, output.size()))
            if n % 50 == 49:  # a shallow queue: moto's SQS slows down as a queue grows
                bodies += take_bodies(sqs, queue_url)
        bodies += take_bodies(sqs, queue_url)
    finally:
        webhook.handler = handler
    kinds = Counter(json.loads(body)["kind"] for body in bodies)
    mails = MAILBOXES * MAILS_PER_MAILBOX
    # The figures mean something only if every delivery queued its two events.
    assert kinds == {"NewMail": mails, "UnreadCountChanged": mails}, kinds
    assert figures.callbacks == mails, f"{figures.callbacks} callbacks for {mails} mails"
    volume = log_volume(output.segments(figures.output_ranges))
    figures.log_bytes, figures.metric_bytes = volume["logs"], volume["metrics"]
    return figures, bodies


def _run_mode(stack: LocalStack, consumer: RemoteFunction, bodies: list[str], batch_size: int) -> ModeFigures:
    """The consumer drains `bodies` with this batch size. They go onto the queue FEED at a time and
    only the draining is timed: a consumer that keeps up sees a shallow queue, and moto's SQS slows
    down as a queue grows deep, which would charge the harness's cost to the batch sizes unevenly."""
    sqs, queue_url = stack.client("sqs"), stack.queue_urls[QUEUE]
    trigger = SqsTrigger(
        sqs=sqs,
        queue_url=queue_url,
        queue_arn=stack.queue_arn(QUEUE),
        batch_size=batch_size,
        handler=consumer,
        report_batch_item_failures=True,
        region=stack.settings.stack.region,
        on_batch=lambda outcome: None,
    )
    simulator, sink = stack.simulator, stack.push_sink
    ews_since = simulator.last_request_seq
    pushes_since = max((push.seq for push in sink.pushes()), default=0)
    decisions_before = _count(stack, "DecisionsTable")
    first_invocation = len(consumer.invocations)
    sqs_calls: Counter[str] = Counter()
    outcomes: list[BatchOutcome] = []
    wall = 0.0
    for start in range(0, len(bodies), FEED):
        chunk = bodies[start : start + FEED]
        send_bodies(sqs, queue_url, chunk)
        handled = 0
        with counting_aws_calls() as calls:
            started = time.perf_counter()
            while handled < len(chunk):
                outcome = trigger.poll_once()
                assert not outcome.empty, f"{len(chunk) - handled} queued events never came back"
                outcomes.append(outcome)
                handled += outcome.received
            wall += time.perf_counter() - started
        sqs_calls.update(calls)
    failed = [outcome for outcome in outcomes if outcome.failed or outcome.error]
    assert not failed, failed[:3]
    invocations = consumer.invocations[first_invocation:]
    pushes = sink.pushes(since=pushes_since)
    aws_calls: Counter[str] = Counter()
    for invocation in invocations:
        aws_calls.update(invocation.aws_calls)
    return ModeFigures(
        batch_size=batch_size,
        events=len(bodies),
        mails=sum(json.loads(body)["kind"] == "NewMail" for body in bodies),
        wall_seconds=wall,
        invocations=len(invocations),
        handler_seconds=[invocation.seconds for invocation in invocations],
        cpu_seconds=sum(invocation.cpu_seconds for invocation in invocations),
        alerts=sum(push.payload.get("mail") is not None for push in pushes),
        badges=sum(push.payload.get("mail") is None for push in pushes),
        ews=simulator.request_counts(since=ews_since)["by_operation"],
        aws_calls=aws_calls,
        sqs_calls=sqs_calls,
        decisions_written=_count(stack, "DecisionsTable") - decisions_before,
        log_bytes=sum(invocation.log_bytes for invocation in invocations),
        peak_kib=invocations[-1].peak_kib,
    )


def _count(stack: LocalStack, table: str) -> int:
    dynamodb = stack.client("dynamodb")
    query: dict[str, Any] = {"TableName": stack.table_names[table], "Select": "COUNT"}
    total = 0
    while True:
        page = dynamodb.scan(**query)
        total += int(page["Count"])
        if "LastEvaluatedKey" not in page:
            return total
        query["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def item_bytes(item: dict[str, Any]) -> int:
    """DynamoDB's size of an item (attribute names plus values), close enough to price its writes."""

    def value_bytes(value: dict[str, Any]) -> int:
        ((kind, inner),) = value.items()
        if kind in ("S", "B"):
            return len(inner.encode("utf-8")) if kind == "S" else len(inner)
        if kind == "N":
            return len(inner.lstrip("-").replace(".", "")) // 2 + 1
        if kind in ("BOOL", "NULL"):
            return 1
        if kind == "M":
            return 3 + sum(len(k.encode("utf-8")) + value_bytes(v) + 1 for k, v in inner.items())
        if kind == "L":
            return 3 + sum(value_bytes(v) + 1 for v in inner)
        return sum(len(str(v).encode("utf-8")) for v in inner)  # SS, NS, BS

    return sum(len(name.encode("utf-8")) + value_bytes(value) for name, value in item.items())


def _largest_items(stack: LocalStack) -> dict[str, int]:
    dynamodb = stack.client("dynamodb")
    largest = {}
    for table in ("DevicesTable", "DecisionsTable", "IdempotencyTable", "SubscriptionsTable"):
        page = dynamodb.scan(TableName=stack.table_names[table], Limit=200)
        largest[table] = max((item_bytes(item) for item in page["Items"]), default=0)
    return largest


def throughput_lines(figures: ThroughputFigures) -> list[str]:
    baseline = figures.modes[0]
    lines = [
        f"Consumer throughput: {figures.modes[-1].mails} mails ({figures.modes[-1].events} queued events) "
        f"over {MAILBOXES} mailboxes, {EWS_LATENCY_MS} ms injected on every EWS call, one warm consumer "
        f"process (batch 1: the first {baseline.events} of those events)",
        "  batch  invocations  events/s (handler)  events/s (wall)  vs batch 1 (handler / wall)  "
        "invocation median / p99  EWS per alert (by operation)",
    ]
    for mode in figures.modes:
        ews = ", ".join(f"{name} {count}" for name, count in sorted(mode.ews.items()))
        lines.append(
            f"  {mode.batch_size:5d}  {mode.invocations:11d}  {mode.handler_events_per_second:18.1f}  "
            f"{mode.events_per_second:15.1f}  "
            f"{mode.handler_events_per_second / baseline.handler_events_per_second:11.1f}x / "
            f"{mode.events_per_second / baseline.events_per_second:4.1f}x      "
            f"{statistics.median(mode.handler_seconds) * 1000:7.1f} / "
            f"{percentile(mode.handler_seconds, 0.99) * 1000:7.1f} ms  "
            f"{mode.ews_per_alert:5.2f} ({ews})"
        )
    lines.append(
        "  per mail: pushes (alerts + badge-only updates), handler time and the consumer's own CPU, AWS calls"
    )
    for mode in figures.modes:
        calls = ", ".join(
            f"{name} {count / mode.mails:.2f}" for name, count in sorted(mode.aws_calls.items())
        )
        lines.append(
            f"    batch {mode.batch_size:3d}: {mode.alerts} alerts + {mode.badges} badges for {mode.mails} mails; "
            f"{sum(mode.handler_seconds) / mode.mails * 1000:5.1f} ms in the handler, "
            f"{mode.cpu_seconds / mode.mails * 1000:5.1f} ms CPU; {calls}"
        )
    lines += [
        "  (handler: events per second of invocation time, what one Lambda instance sustains and is billed "
        "for; wall: SQS receive and delete on local moto included)",
        f"Consumer memory: peak RSS (VmHWM) of the worker {figures.ready_kib / 1024:.0f} MiB once the handler "
        f"is imported, {figures.modes[-1].peak_kib / 1024:.0f} MiB at the end of the run; after each mode: "
        + ", ".join(f"batch {mode.batch_size} {mode.peak_kib / 1024:.0f} MiB" for mode in figures.modes),
        "  (the worker also holds the local stack's template loader: see bench.consumer_cold_import for "
        "the handler's own import)",
    ]
    return lines


def run() -> list[str]:
    from bench.consumer_cost import cost_lines

    figures = measure()
    return [*throughput_lines(figures), "", *cost_lines(figures)]


if __name__ == "__main__":
    print("\n".join(run()))

"""What a million mails cost on AWS, worked out from the throughput run's measured figures.

Every count per mail below is measured in that run, not assumed: webhook callbacks and their AWS
calls (counted on boto3 in this process while Exchange's callbacks ran), the consumer's invocations,
billed durations and AWS calls (counted in its worker process), the SQS trigger's receives and
deletes, decision records written, and the bytes both functions printed (Powertools logs and EMF
metrics, which CloudWatch Logs ingests). Only the prices are assumptions, listed in PRICES.

Run alone: `.venv/bin/python -m bench.consumer_cost` (it runs the throughput measurement first).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from bench.consumer_throughput import ModeFigures, ThroughputFigures, measure

MEMORY_GB = 512 / 1024  # template.yaml Globals Function MemorySize, both functions, arm64
WRITE_UNIT_BYTES = 1024
READ_UNIT_BYTES = 4096


@dataclass(frozen=True)
class Price:
    dollars: float
    per: float
    unit: str

    def cost(self, quantity: float) -> float:
        return quantity * self.dollars / self.per


# us-east-1 list prices (eu-west-1 is the same for these or within a few per cent).
PRICES = {
    "lambda_gb_second": Price(0.0000133334, 1, "GB-s (arm64)"),
    "lambda_request": Price(0.20, 1e6, "1M requests"),
    "sqs_request": Price(0.40, 1e6, "1M requests (standard queue, each ≤ 64 KB)"),
    "dynamodb_write": Price(1.25, 1e6, "1M write request units (on-demand)"),
    "dynamodb_read": Price(0.25, 1e6, "1M read request units (on-demand)"),
    "api_gateway_request": Price(3.50, 1e6, "1M REST API requests"),
    "secrets_manager_call": Price(0.05, 1e4, "10k API calls"),
    "cloudwatch_logs_byte": Price(0.50, 1e9, "GB ingested (standard log class)"),
}


def _write_units_per_call(item_bytes: dict[str, int]) -> int:
    return max(1, *(math.ceil(size / WRITE_UNIT_BYTES) for size in item_bytes.values()))


def cost_rows(figures: ThroughputFigures, mode: ModeFigures) -> list[tuple[str, float, str, float]]:
    """(what, quantity per mail, unit price name, dollars per million mails) per cost item."""
    webhook = figures.webhook
    mails = mode.mails
    webhook_per_mail = webhook.callbacks / webhook.mails
    # Per callback, from the callbacks measured alone (no heartbeat in the same round).
    per_callback = webhook_per_mail / webhook.measured_callbacks
    webhook_billed_ms = sum(math.ceil(seconds * 1000) for seconds in webhook.durations) * per_callback
    webhook_sqs = sum(n for name, n in webhook.aws_calls.items() if name.startswith("sqs.")) * per_callback
    consumer_sqs = sum(n for name, n in mode.sqs_calls.items() if name.startswith("sqs.")) / mails
    # Every item ENS writes is under 1 KB and reads under 4 KB (checked in the run): one unit each.
    units = _write_units_per_call(figures.item_bytes)
    webhook_writes = webhook.aws_calls["dynamodb.UpdateItem"] * per_callback
    webhook_reads = webhook.aws_calls["dynamodb.GetItem"] * per_callback
    consumer_writes = (
        mode.aws_calls["dynamodb.PutItem"] + mode.aws_calls["dynamodb.UpdateItem"] + mode.decisions_written
    ) / mails
    consumer_reads = (mode.aws_calls["dynamodb.Query"] + mode.aws_calls["dynamodb.GetItem"]) / mails
    secrets = (mode.aws_calls["secretsmanager.GetSecretValue"]) / mails
    log_bytes = (webhook.log_bytes + webhook.metric_bytes) * per_callback + mode.log_bytes / mails

    def row(what: str, quantity: float, price: str) -> tuple[str, float, str, float]:
        return what, quantity, price, PRICES[price].cost(quantity * 1e6)

    return [
        row("API Gateway: Exchange's callbacks", webhook_per_mail, "api_gateway_request"),
        row("webhook Lambda: invocations", webhook_per_mail, "lambda_request"),
        row("webhook Lambda: GB-s", webhook_billed_ms / 1000 * MEMORY_GB, "lambda_gb_second"),
        row("SQS: webhook SendMessageBatch", webhook_sqs, "sqs_request"),
        row("SQS: trigger ReceiveMessage + DeleteMessageBatch", consumer_sqs, "sqs_request"),
        row("consumer Lambda: invocations", mode.invocations / mails, "lambda_request"),
        row("consumer Lambda: GB-s", mode.billed_ms_per_mail / 1000 * MEMORY_GB, "lambda_gb_second"),
        row("DynamoDB writes: webhook (subscription)", webhook_writes * units, "dynamodb_write"),
        row(
            "DynamoDB writes: consumer (idempotency, decisions, last_push)",
            consumer_writes * units,
            "dynamodb_write",
        ),
        row("DynamoDB reads: webhook (subscription)", webhook_reads, "dynamodb_read"),
        row("DynamoDB reads: consumer (devices Query)", consumer_reads, "dynamodb_read"),
        row("Secrets Manager: consumer GetSecretValue", secrets, "secrets_manager_call"),
        row("CloudWatch Logs: both functions' logs + EMF (bytes)", log_bytes, "cloudwatch_logs_byte"),
    ]


def cost_lines(figures: ThroughputFigures) -> list[str]:
    lines = [
        "Cost per million mails on AWS (from the throughput run; 512 MB arm64; 1 callback per mail as "
        "measured; 1 device per mailbox)",
        "  prices (us-east-1 list prices; eu-west-1 may differ slightly): "
        + "; ".join(f"${price.dollars:g} per {price.unit}" for price in PRICES.values()),
        "  largest item per table: "
        + ", ".join(f"{table} {size} B" for table, size in figures.item_bytes.items())
        + f" -> {_write_units_per_call(figures.item_bytes)} write unit(s) per write",
    ]
    modes = figures.modes
    header = f"  {'item':62s}" + "".join(
        f"  batch {mode.batch_size:3d}: per mail  $/1M mails" for mode in modes
    )
    lines.append(header)
    tables = [cost_rows(figures, mode) for mode in modes]
    for index, (what, _, _, _) in enumerate(tables[0]):
        cells = "".join(f"  {table[index][1]:18.4f}  {table[index][3]:10.2f}" for table in tables)
        lines.append(f"  {what:62s}{cells}")
    totals = "".join(f"  {'':18s}  {sum(row[3] for row in table):10.2f}" for table in tables)
    lines.append(f"  {'total':62s}{totals}")
    lines += [
        "  Not per mail: heartbeats (1 callback per subscription per StatusFrequency minutes), Secrets "
        "Manager reads in steady state (2 per warm consumer container per 5 minutes: $0.09 a month "
        "each) and $0.40 per secret a month, idle SQS polling by Lambda's pollers, CloudWatch metrics "
        "($0.30 per metric a month), alarms, storage (decisions expire after 14 days)."
    ]
    return lines


def run() -> list[str]:
    return cost_lines(measure())


if __name__ == "__main__":
    print("\n".join(run()))

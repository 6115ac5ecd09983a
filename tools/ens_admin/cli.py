"""The admin CLI's commands and output: `python -m ens_admin --help`.

Exit codes: 0 all well; 1 a check failed or a command found something to act on (a failed replay);
2 the command could not run (wrong arguments, the stack or a secret not found).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from typing import Any, TextIO

from ens.errors import DependencyUnavailable
from ens_admin import checks, dlq, records
from ens_admin.target import Deployment, TargetError, from_cloudformation, from_local_settings

EXIT_OK, EXIT_FAILED, EXIT_ERROR = 0, 1, 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m ens_admin",
        description="Look into a running ENS: Exchange and CNS reachability, subscriptions, devices, "
        "decisions, the dead-letter queue.",
    )
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument(
        "--local", metavar="CONFIG", help="the local stack of this settings file (make run CONFIG=...)"
    )
    where.add_argument("--stack", metavar="NAME", help="the deployed CloudFormation stack (needs --region)")
    parser.add_argument("--region", help="the stack's AWS region (with --stack)")
    parser.add_argument("--json", action="store_true", help="print JSON for scripts instead of tables")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    exchange = commands.add_parser("check-exchange", help="reach a mailbox's Exchange server, step by step")
    exchange.add_argument("mailbox")
    exchange.add_argument(
        "--timeout", type=float, default=checks.CONNECT_TIMEOUT_SECONDS, help="seconds per step"
    )

    cns = commands.add_parser("check-cns", help="the CNS token's expiry and a probe that pushes nothing")
    cns.add_argument("--cns-url", help="CNS push URL (default: the stack's CnsUrl, or the local CNS_URL)")
    cns.add_argument("--ca-bundle", help="PEM file of CAs to trust for CNS (the local push sink's CA)")

    subscriptions = commands.add_parser("subscriptions", help="each mailbox's shared subscription")
    only = subscriptions.add_mutually_exclusive_group()
    only.add_argument("--failed", action="store_true", help="only failed or failing mailboxes")
    only.add_argument("--due", action="store_true", help="only what the watchdog would take now (ByDueAt)")

    device = commands.add_parser("device", help="a mailbox's devices (push tokens masked)")
    device.add_argument("mailbox")

    decisions = commands.add_parser("decisions", help="the decision log of a mailbox, per device")
    decisions.add_argument("mailbox")
    decisions.add_argument("--limit", type=int, default=10, help="newest decisions per device (default 10)")

    dead = commands.add_parser("dlq", help="the dead-letter queue of mail events")
    dead.add_argument("action", choices=["show", "replay"])
    dead.add_argument("--limit", type=int, default=100, help="at most this many messages (default 100)")
    return parser


def deployment_from(arguments: argparse.Namespace) -> Deployment:
    if arguments.local:
        return from_local_settings(arguments.local)
    if not arguments.region:
        raise TargetError("--stack needs --region")
    return from_cloudformation(arguments.stack, arguments.region)


# -- output ------------------------------------------------------------------------------------------


def table(rows: Sequence[dict[str, Any]], columns: Sequence[str], out: TextIO) -> None:
    if not rows:
        print("(none)", file=out)
        return
    cells = [[_cell(row.get(column)) for column in columns] for row in rows]
    widths = [max(len(column), *(len(line[i]) for line in cells)) for i, column in enumerate(columns)]
    print(
        "  ".join(column.ljust(width) for column, width in zip(columns, widths, strict=True)).rstrip(),
        file=out,
    )
    for line in cells:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip(), file=out
        )


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"), sort_keys=True)
    return str(value)


def print_report(report: checks.Report, out: TextIO) -> None:
    for step in report.steps:
        print(f"{'ok  ' if step.ok else 'FAIL'} {step.name:<13} {step.detail}", file=out)
    print("result: ok" if report.ok else f"result: FAILED ({report.failure})", file=out)


def report_json(report: checks.Report) -> dict[str, Any]:
    return {
        "command": report.command,
        "ok": report.ok,
        "failure": report.failure,
        **report.facts,
        "steps": [
            {"name": step.name, "ok": step.ok, "detail": step.detail, "failure": step.failure, **step.data}
            for step in report.steps
        ],
    }


# -- commands ----------------------------------------------------------------------------------------


def _check_exchange(deployment: Deployment, arguments: argparse.Namespace, out: TextIO) -> int:
    report = checks.check_exchange(deployment.secret("servers"), arguments.mailbox, timeout=arguments.timeout)
    _emit_report(report, arguments, out)
    return EXIT_OK if report.ok else EXIT_FAILED


def _check_cns(deployment: Deployment, arguments: argparse.Namespace, out: TextIO) -> int:
    report = checks.check_cns(
        deployment.secret("cns_token"),
        arguments.cns_url or deployment.cns_url,
        ca_bundle=arguments.ca_bundle or deployment.cns_ca_bundle,
    )
    _emit_report(report, arguments, out)
    return EXIT_OK if report.ok else EXIT_FAILED


def _emit_report(report: checks.Report, arguments: argparse.Namespace, out: TextIO) -> None:
    if arguments.json:
        print(json.dumps(report_json(report), indent=2), file=out)
    else:
        print_report(report, out)


def _subscriptions(deployment: Deployment, arguments: argparse.Namespace, out: TextIO) -> int:
    rows = records.subscriptions(deployment, failed=arguments.failed, due=arguments.due)
    if arguments.json:
        print(json.dumps(rows, indent=2), file=out)
    else:
        columns = [
            "mailbox",
            "mailbox_state",
            "subscription_state",
            "last_heartbeat_at",
            "due_at",
            "watchdog_failures",
            "last_failure",
            "reason",
        ]
        table(rows, columns, out)
    return EXIT_OK


def _device(deployment: Deployment, arguments: argparse.Namespace, out: TextIO) -> int:
    found = records.devices(deployment, arguments.mailbox)
    if arguments.json:
        print(json.dumps(found, indent=2), file=out)
        return EXIT_OK
    subscription = found["subscription"]
    if subscription is None:
        print(f"{found['mailbox']}: no shared subscription", file=out)
    else:
        print(
            f"{found['mailbox']}: subscription {subscription['mailbox_state']}"
            f" (record {subscription['subscription_state']}, last heartbeat {subscription['last_heartbeat_at'] or '-'})",
            file=out,
        )
    columns = [
        "device_id",
        "platform",
        "active",
        "push_token",
        "registered_at",
        "last_push_at",
        "deactivated_reason",
    ]
    table(found["devices"], columns, out)
    return EXIT_OK


def _decisions(deployment: Deployment, arguments: argparse.Namespace, out: TextIO) -> int:
    if arguments.limit < 1:
        raise TargetError("--limit must be at least 1")
    rows = records.decisions(deployment, arguments.mailbox, limit=arguments.limit)
    if arguments.json:
        print(json.dumps(rows, indent=2), file=out)
    else:
        table(
            rows,
            ["device_id", "decided_at", "event_kind", "outcome", "reason", "rule", "item_id", "latency_ms"],
            out,
        )
    return EXIT_OK


def _dlq(deployment: Deployment, arguments: argparse.Namespace, out: TextIO) -> int:
    if arguments.limit < 1:
        raise TargetError("--limit must be at least 1")
    if arguments.action == "show":
        messages = dlq.show(deployment, limit=arguments.limit)
        if arguments.json:
            print(json.dumps(messages, indent=2), file=out)
        else:
            print(f"{len(messages)} message(s) in the dead-letter queue (left there)", file=out)
            table(messages, ["message_id", "sent_at", "receives", "kind", "mailbox"], out)
        return EXIT_OK
    result = dlq.replay(deployment, limit=arguments.limit)
    if arguments.json:
        print(json.dumps({"moved": result.moved, "failed": result.failed}, indent=2), file=out)
    else:
        print(f"moved {len(result.moved)} message(s) back to the notifications queue", file=out)
        for failure in result.failed:
            print(f"FAIL {failure['message_id']}: {failure['error']}", file=out)
    return EXIT_FAILED if result.failed else EXIT_OK


COMMANDS: dict[str, Callable[[Deployment, argparse.Namespace, TextIO], int]] = {
    "check-exchange": _check_exchange,
    "check-cns": _check_cns,
    "subscriptions": _subscriptions,
    "device": _device,
    "decisions": _decisions,
    "dlq": _dlq,
}


def main(argv: Sequence[str] | None = None, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    arguments = build_parser().parse_args(argv)
    try:
        deployment = deployment_from(arguments)
        return COMMANDS[arguments.command](deployment, arguments, out)
    except TargetError as error:
        print(f"ens_admin: {error}", file=err)
        return EXIT_ERROR
    except DependencyUnavailable as error:
        print(f"ens_admin: AWS did not answer: {error}", file=err)
        return EXIT_ERROR

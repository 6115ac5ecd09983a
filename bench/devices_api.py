"""The devices API: its cold import, and its latency over HTTP on the local stack.

Cold import as bench/consumer_cold_import.py measures it: `python -X importtime -c "import app"` with
`functions/devices` on PYTHONPATH, median of several fresh interpreters, next to `import boto3` alone,
and the peak RSS (VmHWM) after the import in one more. The handler builds its settings, authenticator
and registry on the first invocation, so this is imports only.

Latency: the local stack as `make run` has it (moto, the API front, the devices function, the Exchange
simulator with NTLM and impersonation; HS256 demo tokens from `ens_local.tokens.mint`), every request
a real HTTP call on loopback from this process, which also runs the stack: everything shares this
process and the machine's two cores. The mailboxes are created in the simulator first. Four kinds of
request, each timed from before `requests` sends it to its answer:
  - PUT of the first device of a new mailbox: the API subscribes the mailbox (one Exchange Subscribe);
  - PUT of a second device of that mailbox, now subscribed: no Exchange call;
  - the same PUT again (idempotent: 200, nothing written, no Exchange call);
  - GET of that device.
The simulator's request log checks that each phase made exactly the Exchange calls it should.
"""

from __future__ import annotations

import statistics
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

import requests

from bench.cold_import import RUNS, import_microseconds
from bench.consumer_cold_import import peak_rss_after_import_kib
from bench.consumer_stack import stdout_to_file
from bench.stats import percentile
from ens_local.config import (
    DEFAULT_CONFIG,
    PushSinkSettings,
    Settings,
    SimulatorSettings,
    StackSettings,
    load_settings,
)
from ens_local.stack import LocalStack
from ens_local.tokens import mint
from support.cold_start import REPO, webhook_cold_start_environment

MAILBOXES = 200
WARM_UP_MAILBOXES = 10
REQUEST_TIMEOUT_SECONDS = 10
SERVERS_SECRET = "ens/exchange-servers"  # noqa: S105 - the name, not the secret
JWT_KEYS_SECRET = "ens/jwt-keys"  # noqa: S105 - the name, not the secret


# ---- cold import


def devices_cold_start_environment() -> dict[str, str]:
    """The webhook's environment helper with the devices function's folder on PYTHONPATH instead."""
    return {
        **webhook_cold_start_environment(),
        "PYTHONPATH": f"{REPO / 'functions' / 'devices'}:{REPO / 'layers' / 'ens'}",
    }


def cold_import_lines() -> list[str]:
    environment = devices_cold_start_environment()
    # Interleaved, so a change in the machine's load during the run weighs on both alike.
    pairs = [
        (import_microseconds("boto3", environment)[1], import_microseconds("app", environment)[1])
        for _ in range(RUNS)
    ]
    boto3_ms = statistics.median(boto3 for boto3, _ in pairs) / 1000
    app_ms = statistics.median(app for _, app in pairs) / 1000
    return [
        f"Cold import of the devices API (python -X importtime, fresh interpreter, median of {RUNS})",
        f"  import boto3 alone          {boto3_ms:7.1f} ms",
        f"  import devices handler      {app_ms:7.1f} ms  ({app_ms / boto3_ms:.2f}x boto3 alone)",
        f"  peak RSS after the import   {peak_rss_after_import_kib('app', environment) / 1024:7.1f} MiB (VmHWM)",
        f"    (import boto3 alone: {peak_rss_after_import_kib('boto3', environment) / 1024:.1f} MiB)",
    ]


# ---- latency on the local stack


@contextmanager
def devices_stack() -> Iterator[LocalStack]:
    """The local stack with the devices API's demo settings (JWT parameters and keys, the simulator as
    the Exchange server) and nothing seeded; the simulator only calls back when told to (manual)."""
    demo = load_settings(DEFAULT_CONFIG)
    settings = Settings(
        stack=StackSettings(api_port=0, aws_port=0, stack_name=f"bench-{uuid.uuid4().hex[:6]}", seed=False),
        parameters={name: value for name, value in demo.parameters.items() if name.startswith("Jwt")},
        environment={"WEBHOOK_BASE_URL": demo.environment["WEBHOOK_BASE_URL"]},
        secrets={name: demo.secrets[name] for name in (SERVERS_SECRET, JWT_KEYS_SECRET)},
        exchange_simulator=SimulatorSettings(
            enabled=True, port=0, servers_secret=SERVERS_SECRET, settings={"dispatch": "manual"}
        ),
        push_sink=PushSinkSettings(enabled=False),
    )
    stack = LocalStack(settings, start_pollers=False).start()
    try:
        yield stack
    finally:
        stack.stop()


@dataclass(frozen=True)
class Phone:
    mailbox: str
    device_id: str
    token: str

    @property
    def body(self) -> dict[str, Any]:
        return {
            "mailbox": self.mailbox,
            "push_token": f"apns-{self.device_id}",
            "platform": "ios",
            "rules": {"content": "summary"},
        }


@dataclass(frozen=True)
class Phase:
    name: str
    seconds: list[float]  # measured requests only, warm-up left out
    ews_calls: dict[str, int]  # Exchange calls the whole phase made, by operation


def _timed(method: str, url: str, device: Phone, expected: HTTPStatus, body: bool) -> float:
    started = time.perf_counter()
    # A fresh connection each time: on a kept-alive one, the local API front's separate header and
    # body writes meet Nagle's algorithm and the client's delayed ACK (~40 ms that API Gateway has not).
    answer = requests.request(
        method,
        url,
        json=device.body if body else None,
        headers={"Authorization": f"Bearer {device.token}"},
        timeout=REQUEST_TIMEOUT_SECONDS,
    )
    elapsed = time.perf_counter() - started
    if answer.status_code != expected:
        raise AssertionError(f"{method} {url}: {answer.status_code}, not {expected}: {answer.text[:300]}")
    return elapsed


def _phase(
    stack: LocalStack, name: str, devices: Sequence[Phone], request: Callable[[Phone], float]
) -> Phase:
    before = stack.simulator.last_request_seq
    seconds = [request(device) for device in devices]
    calls = stack.simulator.request_counts(since=before)["by_operation"]
    return Phase(name, seconds[WARM_UP_MAILBOXES:], dict(calls))


def measure() -> tuple[float, list[Phase]]:
    """The very first request's seconds (the function's first invocation), and each phase."""
    with stdout_to_file(), devices_stack() as stack:
        # The first of them only takes the function's first invocation (settings, secrets, registry).
        mailboxes = [f"bench{n:03d}@contoso.example" for n in range(1 + WARM_UP_MAILBOXES + MAILBOXES)]
        for mailbox in mailboxes:
            stack.simulator.add_mailbox(mailbox)
        tokens = {mailbox: mint(stack.settings, mailbox) for mailbox in mailboxes}
        first = [Phone(m, f"{m.partition('@')[0]}-iphone", tokens[m]) for m in mailboxes]
        second = [Phone(m, f"{m.partition('@')[0]}-ipad", tokens[m]) for m in mailboxes[1:]]
        url = f"{stack.api_url}/v1/devices/"

        def put(expected: HTTPStatus) -> Callable[[Phone], float]:
            return lambda d: _timed("PUT", url + d.device_id, d, expected, body=True)

        cold = put(HTTPStatus.CREATED)(first[0])
        phases = [
            _phase(stack, "PUT, first device of a new mailbox", first[1:], put(HTTPStatus.CREATED)),
            _phase(stack, "PUT, new device of a subscribed mailbox", second, put(HTTPStatus.CREATED)),
            _phase(stack, "PUT, the same registration again", second, put(HTTPStatus.OK)),
            _phase(
                stack,
                "GET the device",
                second,
                lambda d: _timed("GET", url + d.device_id, d, HTTPStatus.OK, body=False),
            ),
        ]
    _check_exchange_calls(phases, WARM_UP_MAILBOXES + MAILBOXES)
    return cold, phases


def _check_exchange_calls(phases: Sequence[Phase], new_mailboxes: int) -> None:
    expected = [{"Subscribe": new_mailboxes}, {}, {}, {}]
    actual = [phase.ews_calls for phase in phases]
    if actual != expected:
        raise AssertionError(f"Exchange calls by phase were {actual}, not {expected}")


def latency_lines() -> list[str]:
    cold, phases = measure()
    lines = [
        f"Devices API latency over HTTP on the local stack: {MAILBOXES} mailboxes, "
        f"after {WARM_UP_MAILBOXES} warm-up requests of each kind",
        f"  (first request after start, the function's first invocation: {cold * 1000:.1f} ms)",
    ]
    for phase in phases:
        ews = ", ".join(f"{count} {operation}" for operation, count in phase.ews_calls.items()) or "none"
        lines.append(
            f"  {phase.name:42} median {statistics.median(phase.seconds) * 1000:6.1f} ms   "
            f"p99 {percentile(phase.seconds, 0.99) * 1000:6.1f} ms   (n={len(phase.seconds)}; EWS calls: {ews})"
        )
    return lines


def run() -> list[str]:
    return [*cold_import_lines(), "", *latency_lines()]


if __name__ == "__main__":
    print("\n".join(run()))

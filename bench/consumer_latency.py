"""End-to-end latency on the local stack: a mail delivered in Exchange until CNS has its push.

The whole service runs as `make run` runs it: the simulator pushes its callbacks in the background
(real time), the webhook queues, the stack's SQS poller (long polling, the template's batch size 10)
invokes the consumer, which fetches over EWS (20 ms injected on every call) and pushes over HTTPS
to the push sink. Mails arrive at a steady pace over 50 mailboxes in a seeded random order; each
one's latency is from just before `deliver` to the push sink's `received_at` for its push, both on
this machine's clock. Everything shares this process and its two cores.
"""

from __future__ import annotations

import statistics
import time
import warnings
from datetime import UTC, datetime

from bench.consumer_stack import (
    arrival_order,
    consumer_stack,
    mailbox_addresses,
    put_devices,
    stdout_to_file,
)
from bench.stats import percentile
from push_sink import Push

MAILBOXES = 50
MAILS = 240
WARM_UP_MAILS = 10
MAILS_PER_SECOND = 10
EWS_LATENCY_MS = 20
POLL_WAIT_SECONDS = 1
WAIT_FOR_PUSHES_SECONDS = 60


def measure() -> tuple[list[float], int]:
    """Latencies in seconds of the measured mails, and how many batches the consumer was invoked with."""
    mailboxes = mailbox_addresses(MAILBOXES)
    with (
        stdout_to_file(),
        consumer_stack(
            mailboxes, dispatch="background", start_pollers=True, poll_wait_seconds=POLL_WAIT_SECONDS
        ) as stack,
    ):
        simulator, sink = stack.simulator, stack.push_sink
        put_devices(stack, mailboxes, "e2e")
        simulator.faults.add("latency", fraction=1.0, latency_ms=EWS_LATENCY_MS)
        order = arrival_order(mailboxes, (WARM_UP_MAILS + MAILS) // MAILBOXES + 1)[: WARM_UP_MAILS + MAILS]
        # The first mails pay the consumer's cold start (secrets, exchangelib's protocol, NTLM).
        for n, mailbox in enumerate(order[:WARM_UP_MAILS]):
            simulator.deliver(mailbox, from_="colleague@contoso.example", subject=f"Warm-up {n}")
        warm = sink.wait_for(WARM_UP_MAILS, timeout=WAIT_FOR_PUSHES_SECONDS)
        assert len(warm) >= WARM_UP_MAILS, f"{len(warm)} of {WARM_UP_MAILS} warm-up pushes arrived"
        since = max(push.seq for push in warm)
        delivered: dict[str, datetime] = {}
        started = time.monotonic()
        for n, mailbox in enumerate(order[WARM_UP_MAILS:]):
            # A steady pace: the n-th mail leaves at n / rate seconds, however long deliver took.
            pause = started + n / MAILS_PER_SECOND - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            subject = f"Latency {n}"
            delivered[subject] = datetime.now(UTC)
            simulator.deliver(mailbox, from_="colleague@contoso.example", subject=subject)
        # Badge-only updates may come too (a callback's two events split over two batches): wait for
        # one more push at a time until every mail's alert is in, or the time is up.
        deadline = time.monotonic() + WAIT_FOR_PUSHES_SECONDS
        pushes = sink.pushes(since=since)
        while len(_alerts(pushes)) < len(delivered) and time.monotonic() < deadline:
            pushes = sink.wait_for(len(pushes) + 1, timeout=deadline - time.monotonic(), since=since)
        alerts = _alerts(pushes)
        missing = sorted(set(delivered) - set(alerts))
        assert not missing, f"{len(missing)} mails never reached the push sink, e.g. {missing[:3]}"
        (consumer,) = [t for t in stack.triggers if t.name == "ConsumerFunction"]
        batches = consumer.batch_size
        latencies = [(alerts[subject].received_at - at).total_seconds() for subject, at in delivered.items()]
    return latencies, batches


def _alerts(pushes: list[Push]) -> dict[str, Push]:
    return {push.payload["mail"]["subject"]: push for push in pushes if push.payload.get("mail")}


def run() -> list[str]:
    # The webhook's answer to a heartbeat carries no metric; Powertools warns about it on each one.
    warnings.filterwarnings("ignore", message="No application metrics to publish")
    latencies, batch_size = measure()
    return [
        f"End-to-end latency on the local stack: {len(latencies)} mails at {MAILS_PER_SECOND}/s over "
        f"{MAILBOXES} mailboxes, delivered in the simulator -> push recorded by the push sink",
        f"  (background push dispatch, SQS long polling {POLL_WAIT_SECONDS} s, consumer batch size "
        f"{batch_size}, {EWS_LATENCY_MS} ms on every EWS call, after {WARM_UP_MAILS} warm-up mails)",
        f"  median {statistics.median(latencies) * 1000:7.1f} ms   p99 {percentile(latencies, 0.99) * 1000:7.1f} ms"
        f"   max {max(latencies) * 1000:7.1f} ms   min {min(latencies) * 1000:7.1f} ms",
    ]


if __name__ == "__main__":
    print("\n".join(run()))

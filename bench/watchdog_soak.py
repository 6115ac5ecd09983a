"""Fault soak: 500 mails over 20 mailboxes while everything that can fail does, and every mail must end
pushed exactly once or with a recorded reason.

The whole local stack on loopback (moto, the API front, webhook, SQS trigger, consumer, watchdog, the
Exchange simulator, the push sink over TLS), with the mailboxes subscribed through the devices API, one
device each. Then, with these faults on for the whole run:
  - the simulator answers ErrorServerBusy to 20 % of EWS calls (fault `server_busy`, fraction 0.2,
    back-off 100 ms), Subscribe, GetItem, GetFolder and FindItem alike;
  - 20 % of Exchange's callbacks get 503 from the local API front (its outage hook, tooling only), so
    Exchange retries them (30 s, doubling) and would drop a subscription failing StatusFrequency minutes;
  - the simulator drops subscriptions silently (DROPS of them, at seeded moments);
  - the push sink answers 503 to 20 % of pushes;
the mails arrive in ROUNDS rounds. Each round: deliver, maybe drop a subscription, let Exchange call
back (manual dispatch), move Exchange's manual clock 30 s on (its retries fall due), run the consumer
until the queue has nothing visible, run the watchdog at the wall clock. Then the recovery: the
watchdog's clock jumps past every heartbeat deadline (as after 2 x StatusFrequency + grace of
silence) and moves on by RECOVERY_STEP each pass, Exchange's clock by a minute, until every mail has
an outcome and nothing is left queued or owed a callback (bounded by MAX_RECOVERY_PASSES).

The clocks: ENS's functions read the wall clock, Exchange reads its manual one (started at the wall
clock's time, so no mail is stale), and the watchdog's is moved forward instead of waiting, as in the
e2e tests. Because ENS's clock does not follow Exchange's, the jumped watchdog sees every subscription
as silent and renews all of them, not only the dropped ones: each renewal replays from the last
watermark ENS saw, so the soak also puts the consumer's exactly-once under every replay there can be.
The notifications queue's visibility timeout is cut to 1 s (180 s in the template) so that a batch the
consumer reported failed comes back within the run.

Outcome of each mail (its subject is unique): pushed once; pushed more than once (a duplicate); not
pushed with a decision recording why (suppressed, with its reason); or lost (none of these). The soak
fails (exit status 1) on any duplicate or lost mail.
"""

from __future__ import annotations

import contextlib
import random
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests

from bench.consumer_stack import _demo_file, mailbox_addresses, stdout_to_file
from ens.adapters.decision_log import device_key
from ens_local.config import DEFAULT_CONFIG, PushSinkSettings, SimulatorSettings, load_settings
from ens_local.stack import LocalStack, with_overrides
from ens_local.tokens import mint

MAILBOXES = 20
MAILS = 500
ROUNDS = 25
DROPS = 8
FAULT_FRACTION = 0.2
BUSY_BACK_OFF_MS = 100
SEED = 20261208
LATER = timedelta(minutes=40)  # past 2 x StatusFrequency 15 + grace 5 minutes
RECOVERY_STEP = timedelta(minutes=10)  # past the first back-offs (5, 10 minutes) of a failed renewal
MAX_RECOVERY_PASSES = 30
MAX_POLLS = 400
SERVERS_SECRET = "ens/exchange-servers"  # noqa: S105 - the name, not the secret
CALLBACK_PATHS = "/ews/notifications/"


@dataclass
class Mail:
    mailbox: str
    item_id: str
    subject: str


@dataclass
class Tally:
    delivered: int = 0
    pushed_once: int = 0
    duplicates: int = 0
    suppressed: Counter[str] = field(default_factory=Counter)  # by recorded reason
    lost: list[Mail] = field(default_factory=list)
    dead_letters: int = 0


@dataclass
class Activity:
    """What the faults and the recovery did, for the figures."""

    callbacks: Counter[str] = field(default_factory=Counter)  # by outcome
    callbacks_refused: int = 0  # by the front's outage
    busy_calls: int = 0
    push_refusals: int = 0
    drops: int = 0
    exchange_drops: int = 0  # subscriptions Exchange gave up on after failed callbacks
    watchdog: Counter[str] = field(default_factory=Counter)
    consumer_batches: int = 0
    consumer_failed_records: int = 0
    recovery_passes: int = 0
    seconds: float = 0.0


@contextlib.contextmanager
def soak_stack(directory: Path, mailboxes: Sequence[str]) -> Iterator[LocalStack]:
    """make run's settings (devices API with demo JWT keys, the simulator, the push sink over TLS) on
    free ports, nothing seeded, the simulator on manual dispatch and a manual, seeded clock."""
    base = with_overrides(
        load_settings(DEFAULT_CONFIG),
        api_port=0,
        aws_port=0,
        stack_name=f"soak-{uuid.uuid4().hex[:6]}",
        seed=False,
    )
    settings = base.model_copy(
        update={
            "exchange_simulator": SimulatorSettings(
                enabled=True,
                port=0,
                load_demo=False,  # Soak.run loads the mailboxes once Exchange's clock is set
                servers_secret=SERVERS_SECRET,
                settings={
                    "dispatch": "manual",
                    "clock": "manual",
                    "fault_seed": SEED,
                    "demo_file": str(_demo_file(directory, mailboxes)),
                },
            ),
            "push_sink": PushSinkSettings(enabled=True, port=0, tls=True),
            "demo_devices": (),
            "demo_subscriptions": (),
        }
    )
    stack = LocalStack(settings, start_pollers=False).start()
    try:
        yield stack
    finally:
        stack.stop()


def device_id(mailbox: str) -> str:
    """Device ids are unique across mailboxes: one phone per mailbox, named after it."""
    return f"phone-{mailbox.partition('@')[0]}"


def register(stack: LocalStack, mailboxes: Sequence[str]) -> dict[str, str]:
    """One device per mailbox through the devices API (which subscribes the mailbox); token → mailbox."""
    tokens = {}
    for n, mailbox in enumerate(mailboxes):
        token = f"soak-token-{n:03d}"
        answer = requests.put(
            f"{stack.api_url}/v1/devices/{device_id(mailbox)}",
            json={
                "mailbox": mailbox,
                "push_token": token,
                "platform": "ios",
                "rules": {"content": "summary"},
            },
            headers={"Authorization": f"Bearer {mint(stack.settings, mailbox)}"},
            timeout=30,
        )
        if answer.status_code != 201:
            raise RuntimeError(f"registering {mailbox}: HTTP {answer.status_code} {answer.text}")
        tokens[token] = mailbox
    return tokens


class Soak:
    def __init__(self, stack: LocalStack, mailboxes: Sequence[str]) -> None:
        self.stack = stack
        self.sim = stack.simulator
        self.mailboxes = list(mailboxes)
        self.random = random.Random(SEED)
        self.mails: list[Mail] = []
        self.activity = Activity()
        self.watchdog_module = stack.functions["WatchdogFunction"].module
        self.sqs = stack.client("sqs")
        self.queue_url = stack.queue_urls["NotificationsQueue"]
        self.dead_letter_url = stack.queue_urls["NotificationsDeadLetterQueue"]
        self.seen_seq = 0

    # -- the run -----------------------------------------------------------------------------------

    def run(self) -> Tally:
        started = time.monotonic()
        clock = self.sim.clock
        clock.advance(seconds=(datetime.now(UTC) - clock.now()).total_seconds())
        # Made now, not at the manual clock's 2024 start: a mailbox's first watermark is as old as the
        # mailbox, and one two years old would send every renewal down the reconcile path.
        self.sim.load_demo()
        tokens = register(self.stack, self.mailboxes)
        self.sqs.set_queue_attributes(QueueUrl=self.queue_url, Attributes={"VisibilityTimeout": "1"})
        self.sim.faults.add("server_busy", fraction=FAULT_FRACTION, back_off_ms=BUSY_BACK_OFF_MS)
        assert self.stack.front is not None
        outage = self.stack.front.fail_requests(CALLBACK_PATHS, fraction=FAULT_FRACTION, seed=SEED)
        self.stack.push_sink.fail_fraction(503, FAULT_FRACTION, seed=SEED)
        self.seen_seq = self.sim.last_request_seq

        drop_rounds = set(self.random.sample(range(ROUNDS), DROPS))
        per_round = MAILS // ROUNDS
        for round_number in range(ROUNDS):
            for _ in range(per_round):
                self._deliver(self.random.choice(self.mailboxes))
            if round_number in drop_rounds:
                self._drop_one()
            self._callbacks()
            clock.advance(seconds=30)
            self._consume()
            self._watchdog(timedelta(0))
            self._count_busy()

        ahead = LATER
        for _ in range(MAX_RECOVERY_PASSES):
            self.activity.recovery_passes += 1
            self._watchdog(ahead)
            self._callbacks()
            clock.advance(minutes=1)
            self._consume()
            self._count_busy()
            if self._quiet():
                break
            ahead += RECOVERY_STEP

        self.activity.callbacks_refused = outage.failed
        self.activity.push_refusals = sum(1 for a in self.stack.push_sink.attempts() if a.status == 503)
        self.activity.seconds = time.monotonic() - started
        return self._tally(tokens)

    def _deliver(self, mailbox: str) -> None:
        subject = f"soak-{len(self.mails):04d}"
        message = self.sim.deliver(mailbox, from_="someone@contoso.example", subject=subject, body="soak")
        self.mails.append(Mail(mailbox, str(self.sim.item_id(mailbox, message)), subject))

    def _drop_one(self) -> None:
        live = [s["subscription_id"] for s in self.sim.subscriptions()]
        if live and self.sim.push.drop_silently(self.random.choice(sorted(live))):
            self.activity.drops += 1

    def _callbacks(self) -> None:
        for attempt in self.sim.run_due_work():
            self.activity.callbacks[attempt.outcome] += 1
            if attempt.outcome == "dropped" and attempt.error != "dropped silently by fault injection":
                self.activity.exchange_drops += 1

    def _consume(self) -> None:
        for _ in range(MAX_POLLS):
            outcomes = self.stack.poll_all_once()
            if all(outcome.empty for outcome in outcomes):
                return
            for outcome in outcomes:
                if not outcome.empty:
                    self.activity.consumer_batches += 1
                    self.activity.consumer_failed_records += outcome.failed

    def _watchdog(self, ahead: timedelta) -> None:
        self.watchdog_module.clock = lambda: datetime.now(UTC) + ahead
        for report in self.stack.run_schedules_once():
            for name, value in report.items():
                if isinstance(value, int):
                    self.activity.watchdog[name] += value

    def _quiet(self) -> bool:
        """Nothing left: no callback owed or being retried, nothing queued, every mail decided."""
        with self.sim.lock:
            owed = any(
                s.pending_events() or s.first_failure is not None
                for s in self.sim.push.subscriptions.values()
            )
        if owed:
            return False
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=self.queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        if any(int(value) for value in attributes.values()):
            return False
        pushed = {p.payload["aps"]["alert"]["subtitle"] for p in self._alerts()}
        return all(m.subject in pushed or self._decision(m) is not None for m in self.mails)

    # -- outcomes ----------------------------------------------------------------------------------

    def _alerts(self) -> list[Any]:
        return [p for p in self.stack.push_sink.pushes() if p.payload.get("kind") != "badge"]

    def _decision(self, mail: Mail) -> dict[str, Any] | None:
        item = self.stack.client("dynamodb").query(
            TableName=self.stack.table_names["DecisionsTable"],
            KeyConditionExpression="device_key = :key",
            FilterExpression="item_id = :item",
            ExpressionAttributeValues={
                ":key": {"S": device_key(mail.mailbox, device_id(mail.mailbox))},
                ":item": {"S": mail.item_id},
            },
        )["Items"]
        return {key: next(iter(value.values())) for key, value in item[0].items()} if item else None

    def _tally(self, tokens: dict[str, str]) -> Tally:
        tally = Tally(delivered=len(self.mails))
        pushes = Counter(
            (tokens.get(p.device_token), p.payload["aps"]["alert"]["subtitle"]) for p in self._alerts()
        )
        for mail in self.mails:
            count = pushes[(mail.mailbox, mail.subject)]
            if count == 1:
                tally.pushed_once += 1
            elif count > 1:
                tally.duplicates += 1
            else:
                decision = self._decision(mail)
                if decision is not None and decision.get("outcome") != "pushed" and decision.get("reason"):
                    tally.suppressed[str(decision["reason"])] += 1
                else:
                    tally.lost.append(mail)
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=self.dead_letter_url, AttributeNames=["ApproximateNumberOfMessages"]
        )["Attributes"]
        tally.dead_letters = int(attributes["ApproximateNumberOfMessages"])
        return tally

    def _count_busy(self) -> None:
        """ErrorServerBusy answers since the last look; called often enough that the simulator's
        1000-entry request log still holds every call since then."""
        with self.sim.lock:
            fresh = [r for r in self.sim.requests if r.seq > self.seen_seq]
        if fresh and fresh[0].seq != self.seen_seq + 1:
            raise RuntimeError("the simulator's request log overflowed between two looks")
        self.activity.busy_calls += sum(r.response_code == "ErrorServerBusy" for r in fresh)
        self.seen_seq = max((r.seq for r in fresh), default=self.seen_seq)


def lines(tally: Tally, activity: Activity) -> list[str]:
    watchdog = activity.watchdog
    reasons = ", ".join(f"{reason} {count}" for reason, count in sorted(tally.suppressed.items())) or "none"
    return [
        f"Fault soak: {MAILS} mails over {MAILBOXES} mailboxes in {ROUNDS} rounds; 20 % ErrorServerBusy, "
        "20 % callbacks 503, 20 % pushes 503, subscriptions dropped",
        f"  delivered                    {tally.delivered:5d}",
        f"  pushed exactly once          {tally.pushed_once:5d}",
        f"  not pushed, reason recorded  {sum(tally.suppressed.values()):5d}  ({reasons})",
        f"  duplicates                   {tally.duplicates:5d}",
        f"  lost                         {len(tally.lost):5d}"
        + (f"  ({', '.join(m.subject for m in tally.lost[:10])})" if tally.lost else ""),
        f"  dead-lettered records        {tally.dead_letters:5d}",
        f"  faults: {activity.busy_calls} EWS calls answered ErrorServerBusy, {activity.callbacks_refused} "
        f"callbacks refused (503), {activity.push_refusals} pushes refused (503), {activity.drops} "
        f"subscriptions dropped silently, {activity.exchange_drops} dropped by Exchange after failed callbacks",
        f"  callbacks: {dict(sorted(activity.callbacks.items()))}; consumer: {activity.consumer_batches} "
        f"batches, {activity.consumer_failed_records} records reported failed and retried",
        f"  watchdog: due {watchdog['due']}, resubscribed {watchdog['resubscribed']} (replayed "
        f"{watchdog['replayed']}), failed attempts {watchdog['failed']}; recovery passes "
        f"{activity.recovery_passes}",
        f"  wall time {activity.seconds:.1f} s",
    ]


def run() -> list[str]:
    mailboxes = mailbox_addresses(MAILBOXES)
    with (
        tempfile.TemporaryDirectory(prefix="ens-soak-") as directory,
        stdout_to_file(),
        soak_stack(Path(directory), mailboxes) as stack,
    ):
        soak = Soak(stack, mailboxes)
        tally = soak.run()
        activity = soak.activity
    result = lines(tally, activity)
    if tally.duplicates or tally.lost:
        raise SystemExit("\n".join([*result, "FAILED: a mail was duplicated or lost"]))
    return result


if __name__ == "__main__":
    print("\n".join(run()))

"""Property: whatever Exchange's callbacks go through, no mail is lost and no gap is made up.

A model of one push subscription: a mailbox producing mail (and events the subscription does not
watch), and Exchange building callbacks the way it does (and the simulator does): each starts at
the PreviousWatermark of its cursor, which moves only when Exchange reads our OK; a backlog goes out
in batches flagged MoreEvents; with nothing to report, a StatusEvent carries the mailbox's newest
watermark. Every retry is rebuilt from the cursor, so it carries the old events plus whatever
arrived meanwhile. The callbacks go to the real receiver (parsing, `judge`, `progress`,
`mail_events`) over in-memory stores that fail the way DynamoDB and SQS do.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ens.core.subscriptions import Subscription, SubscriptionState, new_callback_token
from ens.services.webhook import CallbackReceiver, CallbackRequest, CallbackResult
from support.send_notifications import Body, Event, NotificationSpec, new_mail, send_notification, status
from support.webhook_fakes import InMemoryMailEventQueue, InMemorySubscriptionStore

pytestmark = pytest.mark.unit
XML = "text/xml; charset=utf-8"

# What happens between Exchange and the webhook on one delivery attempt.
DELIVERED = "delivered"  # our OK reaches Exchange
OK_LOST = "ok_lost"  # we processed it all; the OK never reached Exchange
GET_FAILS = "get_fails"  # 503 before anything happened
QUEUE_FAILS = "queue_fails"  # 503, nothing queued
RECORD_FAILS = "record_fails"  # 503 after the events were queued
RECORD_ANSWER_LOST = "record_answer_lost"  # 503 after the events were queued and recorded
ATTEMPTS = [DELIVERED, OK_LOST, GET_FAILS, QUEUE_FAILS, RECORD_FAILS, RECORD_ANSWER_LOST]

MAIL = "mail"  # a NewMail the subscription watches
OTHER = "other"  # an event it does not watch: moves the mailbox's newest watermark only
STEPS = st.one_of(st.sampled_from([MAIL, OTHER]), st.sampled_from(ATTEMPTS))


def watermark(seq: int) -> str:
    return f"wm-{seq}"


@dataclass
class Exchange:
    """One push subscription as Exchange keeps it: the mailbox's events and the acknowledged cursor."""

    batch_size: int
    head: int = 0
    mail: list[int] = field(default_factory=list)  # seqs of the NewMail events, in order
    cursor: int = 0  # the last watermark our OK acknowledged

    def add(self, kind: str) -> None:
        self.head += 1
        if kind == MAIL:
            self.mail.append(self.head)

    def pending(self) -> list[int]:
        return [seq for seq in self.mail if seq > self.cursor]

    def build(self) -> tuple[bytes, int]:
        """The next callback's body and the watermark it acknowledges up to once answered OK."""
        pending = self.pending()
        batch = pending[: self.batch_size]
        if batch:
            events: list[Event] = [new_mail(watermark(seq), f"item-{seq}") for seq in batch]
            last = batch[-1]
        else:
            events = [status(watermark(self.head))]
            last = self.head
        spec = NotificationSpec(
            "sub-1", watermark(self.cursor), events, more_events=len(pending) > len(batch)
        )
        return send_notification(Body([spec])), last


@dataclass
class Model:
    """Exchange, the receiver and its in-memory stores, driven one step at a time."""

    exchange: Exchange
    token: str = field(default_factory=new_callback_token)
    store: InMemorySubscriptionStore = field(default_factory=InMemorySubscriptionStore)
    queue: InMemoryMailEventQueue = field(default_factory=InMemoryMailEventQueue)

    def __post_init__(self) -> None:
        self.store.put(
            Subscription(self.token, "ada@contoso.com", SubscriptionState.ACTIVE, "sub-1", watermark(0))
        )
        self.receiver = CallbackReceiver(self.store, self.queue)

    @property
    def subscription(self) -> Subscription:
        return self.store.subscriptions[self.token]

    def step(self, step: str) -> None:
        if step in (MAIL, OTHER):
            self.exchange.add(step)
        else:
            self.attempt(step)

    def attempt(self, how: str) -> None:
        body, last = self.exchange.build()
        self.store.fail_next_get = how == GET_FAILS
        self.queue.fail_next_send = how == QUEUE_FAILS
        self.store.fail_next_record = how == RECORD_FAILS
        self.store.fail_after_next_record = how == RECORD_ANSWER_LOST
        outcome = self.receiver.receive(CallbackRequest(self.token, body, XML))
        # A fault armed for a call the receiver did not make (a heartbeat queues nothing) is disarmed.
        self.queue.fail_next_send = False
        assert outcome.result is (CallbackResult.RETRY if outcome.status_code == 503 else CallbackResult.OK)
        if outcome.result is CallbackResult.OK and how != OK_LOST:
            self.exchange.cursor = last

    def drain(self) -> None:
        """The trouble ends: Exchange delivers the rest, then a heartbeat."""
        while self.exchange.pending():
            self.attempt(DELIVERED)
        self.attempt(DELIVERED)

    def queued_watermarks(self) -> set[str | None]:
        return {event.watermark for event in self.queue.sent}


@given(steps=st.lists(STEPS, max_size=40), batch_size=st.integers(min_value=1, max_value=3))
def test_no_mail_is_lost_and_no_gap_is_recorded_when_oks_are_lost_and_callbacks_fail(
    steps: list[str], batch_size: int
) -> None:
    model = Model(Exchange(batch_size))

    for step in steps:
        model.step(step)
    model.drain()

    assert model.queued_watermarks() >= {watermark(seq) for seq in model.exchange.mail}
    assert model.subscription.gap_from_watermark is None
    assert model.subscription.last_watermark == watermark(model.exchange.head)


@given(
    before=st.lists(STEPS, max_size=20),
    after=st.lists(STEPS, max_size=20),
    batch_size=st.integers(min_value=1, max_value=3),
)
def test_mail_exchange_skipped_is_a_gap_from_the_last_watermark_seen_and_later_mail_still_arrives(
    before: list[str], after: list[str], batch_size: int
) -> None:
    model = Model(Exchange(batch_size))
    for step in before:
        model.step(step)
    model.drain()
    seen = model.subscription.last_watermark

    model.exchange.add(MAIL)
    skipped = model.exchange.head
    model.exchange.cursor = skipped  # Exchange passed a mail without calling back
    for step in after:
        model.step(step)
    model.drain()

    assert model.subscription.gap_from_watermark == seen
    assert watermark(skipped) not in model.queued_watermarks()
    assert model.queued_watermarks() >= {watermark(seq) for seq in model.exchange.mail if seq != skipped}

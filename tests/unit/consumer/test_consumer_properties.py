"""Property: whatever the batch and whatever fails, every NewMail event ends in a decision for each
device of its mailbox (a mailbox-level one when it has none) or its message is reported failed, and
no key is pushed twice."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ens.errors import AdminActionRequired, DeviceTokenRejected, ExchangeBusy
from support.consumer_fakes import (
    MAILBOX,
    NOW,
    ConsumerWorld,
    make_mail,
    new_mail,
    queued,
    transient,
    unread_changed,
)

pytestmark = pytest.mark.unit

MAILBOXES = (MAILBOX, "bob@contoso.example")
AFTER_HOURS = {"work_hours_only": True, "work_start": "12:00", "work_end": "13:00", "time_zone": "UTC"}


@dataclass(frozen=True)
class DeviceSpec:
    mailbox: str
    device_id: str
    active: bool
    after_hours: bool
    badge_updates: bool
    push_fault: str | None  # None, "rejected", "transient", "unauthorized"


devices = st.builds(
    DeviceSpec,
    mailbox=st.sampled_from(MAILBOXES),
    device_id=st.sampled_from(["phone", "ipad", "watch"]),
    active=st.booleans(),
    after_hours=st.booleans(),
    badge_updates=st.booleans(),
    push_fault=st.sampled_from([None, None, "rejected", "transient", "unauthorized"]),
)
# (mailbox, item or None, state of the mail in Exchange)
new_mails = st.tuples(
    st.sampled_from(MAILBOXES),
    st.sampled_from(["i1", "i2", "i3", "i4", None]),
    st.sampled_from(["unread", "read", "gone", "stale"]),
)
counts = st.tuples(st.sampled_from(MAILBOXES), st.integers(0, 20), st.sampled_from(["09:00:00", "10:00:00"]))
exchange_faults = st.sampled_from([None, "busy_short", "busy_long", "transient", "impersonation_denied"])


@settings(max_examples=200)
@given(
    device_specs=st.lists(devices, max_size=5, unique_by=lambda d: (d.mailbox, d.device_id)),
    mail_events=st.lists(new_mails, min_size=1, max_size=8),
    count_events=st.lists(counts, max_size=3),
    fetch_fault=exchange_faults,
    log_fails=st.booleans(),
    order=st.randoms(use_true_random=False),
)
def test_every_new_mail_ends_in_decisions_or_a_failed_message(
    device_specs: list[DeviceSpec],
    mail_events: list[tuple[str, str | None, str]],
    count_events: list[tuple[str, int, str]],
    fetch_fault: str | None,
    log_fails: bool,
    order: object,
) -> None:
    world = ConsumerWorld(max_parallel_mailboxes=1, seconds_left=8.0)
    for spec in device_specs:
        device = world.device(
            spec.device_id,
            mailbox=spec.mailbox,
            active=spec.active,
            badge_updates=spec.badge_updates,
            **(AFTER_HOURS if spec.after_hours else {}),
        )
        if spec.push_fault == "rejected":
            world.push.fail_device(device.push_token, DeviceTokenRejected(410, "Unregistered"))
        elif spec.push_fault == "transient":
            world.push.fail_device(device.push_token, transient())
        elif spec.push_fault == "unauthorized":
            world.push.fail_device(device.push_token, AdminActionRequired("cns_unauthorized", "401"))
    events = []
    for mailbox, item_id, state in mail_events:
        if item_id is not None and state != "gone":
            received = NOW - (timedelta(hours=2) if state == "stale" else timedelta(seconds=5))
            world.exchange.add_mail(
                mailbox, make_mail(item_id, is_read=state == "read", received_at=received)
            )
        events.append(new_mail(item_id, mailbox=mailbox))
    for mailbox, count, at in count_events:
        events.append(unread_changed(count, mailbox=mailbox, timestamp=f"2026-12-02T{at}Z", watermark=at))
    order.shuffle(events)  # type: ignore[attr-defined]
    fault = {
        None: None,
        "busy_short": ExchangeBusy("ex2019", 1.0),  # waited out: 1 s + 5 s margin fits in 8 s
        "busy_long": ExchangeBusy("ex2019", 4.0),  # does not fit: the mailbox's events are retried
        "transient": transient(),
        "impersonation_denied": AdminActionRequired("impersonation_denied", "no"),
    }[fetch_fault]
    if fault is not None:
        world.exchange.fail("fetch", fault, mailbox=MAILBOX)
    if log_fails:
        world.decisions.failures.append(transient("BatchWriteItem failed"))
    batch = queued(*events)

    report = world.process(batch)

    failed = set(report.failed_message_ids)
    assert failed <= {q.message_id for q in batch}
    assert len(report.failed_message_ids) == len(failed)
    recorded = world.decisions.latest()
    for q in batch:
        if q.event.kind != "NewMail" or q.message_id in failed:
            continue
        mailbox, item_id = q.event.mailbox, q.event.item_id
        owners = [spec.device_id for spec in device_specs if spec.mailbox == mailbox] or [None]
        for device_id in owners:
            assert (mailbox, device_id, "NewMail", item_id) in recorded, (q, device_id)
    keys = [sent.key for sent in world.push.sent]
    assert len(keys) == len(set(keys))
    for decision in world.decisions.records:
        assert "Subject of" not in repr(decision)

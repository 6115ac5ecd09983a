"""The mail consumer's service over in-memory fakes: what one batch asks of Exchange, pushes, records
and reports failed, for every rule and failure combination the docs (docs/consumer.md) describe."""

from __future__ import annotations

import dataclasses
from collections import Counter
from datetime import time, timedelta

import pytest

from ens.core.decisions import Decision, Outcome
from ens.core.rules import Reason, Rule
from ens.errors import AdminActionRequired, DependencyUnavailable, DeviceTokenRejected, ExchangeBusy
from support.consumer_fakes import (
    FOLDER,
    MAILBOX,
    NOW,
    ConsumerWorld,
    new_mail,
    queued,
    transient,
    unread_changed,
)

pytestmark = pytest.mark.unit

BOB = "bob@contoso.example"
CAROL = "carol@contoso.example"
EVERY_DAY = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
# NOW is 10:00 UTC: these hours make it after hours on a work day.
AFTER_HOURS = {
    "work_hours_only": True,
    "work_days": EVERY_DAY,
    "work_start": "12:00",
    "work_end": "13:00",
    "time_zone": "UTC",
}


@pytest.fixture
def world() -> ConsumerWorld:
    return ConsumerWorld()


def outcomes(world: ConsumerWorld) -> set[tuple[str | None, str | None, str, Outcome, Reason | None]]:
    return {
        (d.device_id, d.item_id, d.event_kind, d.outcome, d.reason) for d in world.decisions.latest().values()
    }


# -- grouping ------------------------------------------------------------------------------------------


def test_one_fetch_per_mailbox_carries_every_new_mail_of_the_batch(world: ConsumerWorld) -> None:
    world.device("a-phone")
    world.device("b-phone", mailbox=BOB)
    batch = queued(
        world.mail("a1"), world.mail("b1", mailbox=BOB), world.mail("a2"), world.mail("b2", mailbox=BOB)
    )

    report = world.process(batch)

    fetches = sorted((mailbox, ids) for op, mailbox, ids in world.exchange.log if op == "fetch")
    assert fetches == [(MAILBOX, ["a1", "a2"]), (BOB, ["b1", "b2"])]
    assert world.devices.queries == Counter({MAILBOX: 1, BOB: 1})
    assert (report.fetched, report.pushed, report.failed_message_ids) == (4, 4, [])


def test_a_mail_announced_twice_in_one_batch_is_fetched_once(world: ConsumerWorld) -> None:
    world.device()
    event = world.mail("a1")

    world.process(queued(event, event))

    assert [ids for op, _, ids in world.exchange.log if op == "fetch"] == [["a1"]]


def test_mailboxes_in_parallel_give_the_same_result_as_one_after_another() -> None:
    def run(parallel: int) -> tuple[object, ...]:
        world = ConsumerWorld(max_parallel_mailboxes=parallel)
        events = []
        for index, mailbox in enumerate([MAILBOX, BOB, CAROL, "dave@contoso.example"]):
            world.device(f"phone-{index}", mailbox=mailbox, badge_updates=index % 2 == 0)
            world.device(f"ipad-{index}", mailbox=mailbox, **AFTER_HOURS)
            events += [
                world.mail(f"{mailbox}-1", mailbox=mailbox),
                world.mail(f"{mailbox}-2", mailbox=mailbox),
            ]
            events.append(unread_changed(7 + index, mailbox=mailbox))
        world.push.fail_device("token-phone-1", transient())
        report = world.process(queued(*events))
        return (
            sorted(report.failed_message_ids),
            report.events,
            report.pushed,
            report.badge_updates,
            report.suppressed,
            sorted(report.push_latencies_ms),
            sorted(world.decisions.records, key=repr),
            sorted((sent.key, repr(sent.payload)) for sent in world.push.sent),
        )

    assert run(1) == run(8)


# -- the unread count ----------------------------------------------------------------------------------


def test_the_unread_count_comes_from_the_batchs_own_event_when_it_is_at_least_as_fresh(
    world: ConsumerWorld,
) -> None:
    phone = world.device()
    mail = world.mail("a1")
    world.exchange.unread[(MAILBOX, FOLDER)] = 99

    world.process(queued(mail, unread_changed(3, timestamp=mail.timestamp or "")))

    assert world.exchange.calls["unread_count"] == 0
    (alert,) = world.push.to(phone)
    assert alert.payload["aps"]["badge"] == 3


def test_the_unread_count_is_asked_once_when_the_batchs_event_is_older_than_the_mail(
    world: ConsumerWorld,
) -> None:
    phone = world.device()
    world.device("ipad")
    world.exchange.unread[(MAILBOX, FOLDER)] = 5
    batch = queued(
        unread_changed(1, timestamp="2026-12-02T09:00:00Z"),
        world.mail("a1"),
        world.mail("a2"),
    )

    world.process(batch)

    assert world.exchange.calls["unread_count"] == 1
    assert [sent.payload["aps"]["badge"] for sent in world.push.to(phone)] == [5, 5]


def test_no_unread_count_is_asked_when_nothing_is_pushed(world: ConsumerWorld) -> None:
    world.device(badge_updates=False, **AFTER_HOURS)
    world.exchange.unread[(MAILBOX, FOLDER)] = 5

    report = world.process(queued(world.mail("a1"), new_mail("vanished")))

    assert world.exchange.calls["unread_count"] == 0
    assert world.push.sent == []
    assert (report.gone, report.suppressed) == (1, Counter({"outside_work_hours": 1, "gone": 1}))


def test_an_unavailable_unread_count_still_pushes_the_alert_without_a_badge(world: ConsumerWorld) -> None:
    phone = world.device()
    world.exchange.fail("unread_count", transient())

    report = world.process(queued(world.mail("a1")))

    (alert,) = world.push.to(phone)
    assert "badge" not in alert.payload["aps"]
    assert report.failed_message_ids == []


# -- VIP contacts --------------------------------------------------------------------------------------


def test_vip_contacts_are_not_looked_up_when_no_decision_hinges_on_them(world: ConsumerWorld) -> None:
    world.device("in-hours")  # all mail
    world.device("own-list", vips=[BOB], vip_after_hours=True, **AFTER_HOURS)
    world.device("no-vip-rule", **AFTER_HOURS)

    world.process(queued(world.mail("a1", sender_address=BOB)))

    assert world.exchange.calls["vip_addresses"] == 0
    assert world.decisions.only("own-list", "a1").rule is Rule.VIP_AFTER_HOURS


def test_a_vip_contact_after_hours_is_pushed_and_the_lookup_is_made_once_for_the_batch(
    world: ConsumerWorld,
) -> None:
    phone = world.device("phone", vip_after_hours=True, **AFTER_HOURS)
    world.device("ipad", vip_after_hours=True, **AFTER_HOURS)
    world.exchange.vips[MAILBOX] = frozenset({"ceo@contoso.example"})

    world.process(
        queued(
            world.mail("vip", sender_address="ceo@contoso.example"), world.mail("other", sender_address=BOB)
        )
    )

    assert world.exchange.calls["vip_addresses"] == 1
    assert [
        sent.payload["mail"]["sender"]["address"] for sent in world.push.to(phone) if sent.kind != "badge"
    ] == ["ceo@contoso.example"]
    assert world.decisions.only("phone", "vip").rule is Rule.VIP_AFTER_HOURS
    assert world.decisions.only("ipad", "other").reason is Reason.OUTSIDE_WORK_HOURS


def test_vip_contacts_are_cached_across_batches_until_the_cache_expires() -> None:
    world = ConsumerWorld(vip_cache_seconds=60)
    world.device(vip_after_hours=True, **AFTER_HOURS)

    world.process(queued(world.mail("a1")))
    world.clock.advance(59)
    world.process(queued(world.mail("a2")))
    assert world.exchange.calls["vip_addresses"] == 1

    world.clock.advance(1)
    world.process(queued(world.mail("a3")))
    assert world.exchange.calls["vip_addresses"] == 2


def test_vip_contacts_are_cached_per_mailbox(world: ConsumerWorld) -> None:
    world.device("a", vip_after_hours=True, **AFTER_HOURS)
    world.device("b", mailbox=BOB, vip_after_hours=True, **AFTER_HOURS)

    world.process(queued(world.mail("a1"), world.mail("b1", mailbox=BOB)))
    world.process(queued(world.mail("a2"), world.mail("b2", mailbox=BOB)))

    assert sorted(box for op, box, _ in world.exchange.log if op == "vip_addresses") == [MAILBOX, BOB]


# -- ErrorServerBusy -----------------------------------------------------------------------------------


def test_exchange_busy_is_waited_out_when_the_invocation_has_time(world: ConsumerWorld) -> None:
    phone = world.device()
    world.exchange.fail("fetch", ExchangeBusy("ex2019", 2.5))

    report = world.process(queued(world.mail("a1")))

    assert world.sleep.waits == [2.5]
    assert world.exchange.calls["fetch"] == 2
    assert len(world.push.to(phone)) == 1
    assert report.exchange_errors == Counter({"ErrorServerBusy": 1})
    assert report.failed_message_ids == []


def test_exchange_busy_past_the_time_left_reports_the_mailboxs_events_failed() -> None:
    world = ConsumerWorld(seconds_left=6.0)  # a 2 s back-off plus the 5 s margin does not fit
    world.device("a")
    world.device("b", mailbox=BOB)
    world.exchange.fail("fetch", ExchangeBusy("ex2019", 2.0), mailbox=MAILBOX)
    batch = queued(world.mail("a1"), world.mail("b1", mailbox=BOB), world.mail("a2"))

    report = world.process(batch)

    assert world.sleep.waits == []
    assert sorted(report.failed_message_ids) == ["msg-1", "msg-3"]
    assert report.exchange_errors == Counter({"ErrorServerBusy": 1})
    assert [sent.payload["mailbox"] for sent in world.push.sent] == [BOB]
    assert world.decisions.for_device("a") == []


def test_exchange_unavailable_reports_the_mailboxs_events_failed(world: ConsumerWorld) -> None:
    world.device()
    world.exchange.fail("fetch", transient("timed out"))

    report = world.process(queued(world.mail("a1"), unread_changed(2)))

    assert report.failed_message_ids == ["msg-1", "msg-2"]
    assert report.exchange_errors == Counter({"DependencyUnavailable": 1})


# -- admin refusals ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        ("impersonation_denied", Reason.IMPERSONATION_DENIED),
        ("mailbox_unknown", Reason.MAILBOX_UNKNOWN),
        ("no_server", Reason.NO_SERVER),
    ],
)
def test_an_admin_refusal_is_a_decision_per_device_counted_and_not_retried(
    world: ConsumerWorld, code: str, reason: Reason
) -> None:
    world.device("phone")
    world.device("ipad")
    world.exchange.fail("fetch", AdminActionRequired(code, "refused"))

    report = world.process(queued(world.mail("a1"), world.mail("a2")))

    assert report.failed_message_ids == []
    assert report.admin_actions == Counter({code: 1})
    assert world.push.sent == []
    assert outcomes(world) == {
        (device, item, "NewMail", Outcome.SUPPRESSED, reason)
        for device in ("phone", "ipad")
        for item in ("a1", "a2")
    }


def test_an_admin_refusal_leaves_other_mailboxes_of_the_batch_alone(world: ConsumerWorld) -> None:
    world.device("a")
    bobs = world.device("b", mailbox=BOB)
    world.exchange.fail("fetch", AdminActionRequired("impersonation_denied", "no"), mailbox=MAILBOX)

    report = world.process(queued(world.mail("a1"), world.mail("b1", mailbox=BOB)))

    assert len(world.push.to(bobs)) == 1
    assert report.admin_actions == Counter({"impersonation_denied": 1})


# -- no devices, inactive devices ----------------------------------------------------------------------


def test_a_mailbox_without_devices_gets_mailbox_level_no_devices_decisions(world: ConsumerWorld) -> None:
    report = world.process(queued(world.mail("a1"), unread_changed(1)))

    assert world.exchange.calls == Counter()
    assert outcomes(world) == {
        (None, "a1", "NewMail", Outcome.SUPPRESSED, Reason.NO_DEVICES),
        (None, None, "UnreadCountChanged", Outcome.SUPPRESSED, Reason.NO_DEVICES),
    }
    assert report.suppressed == Counter({"no_devices": 2})


def test_inactive_devices_get_device_inactive_each_and_exchange_is_not_asked(world: ConsumerWorld) -> None:
    world.device("old", active=False)
    world.device("older", active=False)

    report = world.process(queued(world.mail("a1")))

    assert world.exchange.calls == Counter()
    assert outcomes(world) == {
        ("old", "a1", "NewMail", Outcome.SUPPRESSED, Reason.DEVICE_INACTIVE),
        ("older", "a1", "NewMail", Outcome.SUPPRESSED, Reason.DEVICE_INACTIVE),
    }
    assert report.failed_message_ids == []


def test_an_inactive_device_beside_an_active_one_is_recorded_and_not_pushed(world: ConsumerWorld) -> None:
    active = world.device("new")
    world.device("old", active=False)

    world.process(queued(world.mail("a1")))

    assert [sent.device_token for sent in world.push.sent] == [active.push_token]
    assert world.decisions.only("old", "a1").reason is Reason.DEVICE_INACTIVE


# -- CNS failures --------------------------------------------------------------------------------------


def test_cns_unavailable_fails_that_events_message_only(world: ConsumerWorld) -> None:
    world.device(badge_updates=False)
    world.push.fail_next(transient("CNS 503"))  # the first push: the first mail's

    report = world.process(queued(world.mail("a1"), world.mail("a2"), world.mail("a3")))

    assert report.failed_message_ids == ["msg-1"]
    assert [sent.payload["mail"]["internet_message_id"] for sent in world.push.sent] == [
        "<a2@contoso.example>",
        "<a3@contoso.example>",
    ]
    assert report.cns_errors == Counter({"DependencyUnavailable": 1})
    assert world.decisions.for_device("phone", "a1") == []


def test_cns_refusing_our_token_fails_the_event_and_counts_an_admin_action(world: ConsumerWorld) -> None:
    world.device(badge_updates=False)
    world.push.fail_next(AdminActionRequired("cns_unauthorized", "HTTP 401"))

    report = world.process(queued(world.mail("a1"), world.mail("a2")))

    assert report.failed_message_ids == ["msg-1"]
    assert report.admin_actions == Counter({"cns_unauthorized": 1})
    assert report.cns_errors == Counter({"cns_unauthorized": 1})


def test_a_rejected_device_token_deactivates_the_device_once_and_nothing_more_goes_to_it(
    world: ConsumerWorld,
) -> None:
    phone = world.device("phone")
    ipad = world.device("ipad")
    world.push.fail_device(phone.push_token, DeviceTokenRejected(410, "Unregistered"))

    report = world.process(queued(world.mail("a1"), world.mail("a2"), unread_changed(9)))

    assert [(box, device) for box, device, _, _ in world.devices.deactivations] == [(MAILBOX, "phone")]
    assert "410" in world.devices.deactivations[0][2]
    assert world.push.attempts == 1 + len(world.push.to(ipad))  # one try for the phone, ever
    assert world.decisions.only("phone", "a1").reason is Reason.DEVICE_TOKEN_REJECTED
    assert world.decisions.only("phone", "a2").reason is Reason.DEVICE_INACTIVE
    # The count event is at least as fresh as the mails: the alerts carried it, no badge follows.
    assert [sent.kind for sent in world.push.to(ipad)] == ["summary", "summary"]
    assert report.cns_errors == Counter({"410": 1})
    assert report.failed_message_ids == []
    assert world.devices.get(MAILBOX, "phone").active is False


# -- redelivery ----------------------------------------------------------------------------------------


def test_a_redelivered_batch_pushes_nothing_twice(world: ConsumerWorld) -> None:
    world.device()
    batch = queued(world.mail("a1"), world.mail("a2"), unread_changed(4))
    first = world.process(batch)
    sent = list(world.push.sent)

    again = world.process(queued(*[q.event for q in batch], prefix="redelivered"))

    assert world.push.sent == sent
    assert (again.pushed, again.badge_updates) == (0, 0)
    assert again.duplicates_skipped == first.pushed + first.badge_updates
    assert world.decisions.latest().keys() == {
        (MAILBOX, "phone", "NewMail", "a1"),
        (MAILBOX, "phone", "NewMail", "a2"),
        (MAILBOX, "phone", "UnreadCountChanged", None),
    }


def test_the_retry_of_a_failed_push_pushes_it(world: ConsumerWorld) -> None:
    phone = world.device(badge_updates=False)
    world.push.fail_next(transient())
    batch = queued(world.mail("a1"))

    assert world.process(batch).failed_message_ids == ["msg-1"]
    report = world.process(batch)

    assert (report.pushed, report.failed_message_ids) == (1, [])
    assert len(world.push.to(phone)) == 1
    assert world.decisions.only("phone", "a1").outcome is Outcome.PUSHED


# -- the decision log ----------------------------------------------------------------------------------


def test_decisions_hold_no_subject_sender_or_snippet(world: ConsumerWorld) -> None:
    world.device("phone")
    world.device("strict", **AFTER_HOURS)
    world.process(
        queued(
            world.mail(
                "a1",
                subject="Secret merger",
                sender_name="Eve Evans",
                sender_address="eve@rival.example",
                preview="Confidential numbers",
            )
        )
    )

    assert {field.name for field in dataclasses.fields(Decision)}.isdisjoint(
        {"subject", "sender", "sender_name", "sender_address", "snippet", "preview"}
    )
    assert len(world.decisions.records) == 2
    for decision in world.decisions.records:
        text = repr(decision) + repr(decision.to_record(14))
        for secret in ("Secret merger", "Eve Evans", "eve@rival.example", "Confidential numbers"):
            assert secret not in text


def test_a_decision_log_failure_reports_every_event_of_the_mailbox_failed(world: ConsumerWorld) -> None:
    world.device("a")
    world.device("b", mailbox=BOB)
    world.decisions.failures.append(transient("BatchWriteItem failed"))
    world.max_parallel_mailboxes = 1  # the first mailbox's write fails, deterministically

    report = world.process(queued(world.mail("a1"), world.mail("b1", mailbox=BOB), unread_changed(1)))

    assert sorted(report.failed_message_ids) == ["msg-1", "msg-3"]
    assert [d.mailbox for d in world.decisions.records] == [BOB]


def test_a_pushed_decision_carries_the_rule_the_received_time_and_the_latency(world: ConsumerWorld) -> None:
    world.device()

    report = world.process(queued(world.mail("a1", received_at=NOW - timedelta(seconds=3))))

    decision = world.decisions.only("phone", "a1")
    assert (decision.outcome, decision.rule, decision.reason) == (Outcome.PUSHED, Rule.ALL_MAIL, None)
    assert (decision.received_at, decision.decided_at, decision.latency_ms) == (
        NOW - timedelta(seconds=3),
        NOW,
        3000,
    )
    assert report.push_latencies_ms == [3000]
    assert world.devices.pushes_recorded == [(MAILBOX, ("phone",), NOW)]


@pytest.mark.parametrize(
    ("mail_fields", "reason"),
    [
        ({"is_read": True}, Reason.ALREADY_READ),
        ({"received_at": NOW - timedelta(hours=2)}, Reason.STALE),
    ],
)
def test_a_mail_the_rules_suppress_is_recorded_with_its_reason(
    world: ConsumerWorld, mail_fields: dict[str, object], reason: Reason
) -> None:
    world.device(badge_updates=False)

    report = world.process(queued(world.mail("a1", **mail_fields)))

    assert world.push.sent == []
    assert world.decisions.only("phone", "a1").reason is reason
    assert report.suppressed == Counter({reason.value: 1})


def test_a_mail_gone_before_the_fetch_and_one_without_an_item_id_are_recorded(world: ConsumerWorld) -> None:
    world.device(badge_updates=False)

    report = world.process(queued(new_mail("vanished"), new_mail(None)))

    assert outcomes(world) == {
        ("phone", "vanished", "NewMail", Outcome.SUPPRESSED, Reason.GONE),
        ("phone", None, "NewMail", Outcome.SUPPRESSED, Reason.NO_ITEM_ID),
    }
    assert report.gone == 1


# -- badges --------------------------------------------------------------------------------------------


def test_several_count_changes_become_one_badge_per_device_with_the_latest_count(
    world: ConsumerWorld,
) -> None:
    phone = world.device("phone")
    ipad = world.device("ipad")
    batch = queued(
        unread_changed(4, timestamp="2026-12-02T09:00:01Z", watermark="w1"),
        unread_changed(2, timestamp="2026-12-02T09:00:03Z", watermark="w3"),
        unread_changed(3, timestamp="2026-12-02T09:00:02Z", watermark="w2"),
    )

    report = world.process(batch)

    for device in (phone, ipad):
        (badge,) = world.push.to(device)
        assert (badge.kind, badge.payload["aps"], badge.payload["priority"]) == ("badge", {"badge": 2}, 5)
    assert report.badge_updates == 2
    assert Counter(d.outcome for d in world.decisions.for_device("phone")) == Counter(
        {Outcome.BADGE_ONLY: 1, Outcome.SUPPRESSED: 2}
    )
    assert {d.reason for d in world.decisions.for_device("phone") if d.outcome is Outcome.SUPPRESSED} == {
        Reason.COALESCED
    }


def test_no_badge_goes_out_when_an_alert_of_the_batch_carried_the_same_count(world: ConsumerWorld) -> None:
    phone = world.device()
    mail = world.mail("a1")

    world.process(queued(mail, unread_changed(6, timestamp=mail.timestamp or "")))

    assert [(sent.kind, sent.payload["aps"]["badge"]) for sent in world.push.to(phone)] == [("summary", 6)]
    assert world.decisions.only_count("phone").reason is Reason.COALESCED


def test_a_count_event_older_than_the_batchs_mail_does_not_move_the_badge_back(
    world: ConsumerWorld,
) -> None:
    phone = world.device()
    world.exchange.unread[(MAILBOX, FOLDER)] = 6
    batch = queued(world.mail("a1"), unread_changed(5, timestamp="2026-12-02T09:00:00Z"))

    world.process(batch)

    assert [(sent.kind, sent.payload["aps"]["badge"]) for sent in world.push.to(phone)] == [("summary", 6)]
    assert world.decisions.only_count("phone").reason is Reason.COALESCED


def test_a_count_event_older_than_a_suppressed_mail_gives_the_fresh_count_as_badge(
    world: ConsumerWorld,
) -> None:
    phone = world.device(**AFTER_HOURS)
    world.exchange.unread[(MAILBOX, FOLDER)] = 6
    batch = queued(world.mail("a1"), unread_changed(5, timestamp="2026-12-02T09:00:00Z"))

    world.process(batch)

    assert [(sent.kind, sent.payload["aps"]) for sent in world.push.to(phone)] == [("badge", {"badge": 6})]
    assert world.exchange.calls["unread_count"] == 1


def test_a_device_with_badge_updates_off_gets_no_badge_and_the_reason(world: ConsumerWorld) -> None:
    phone = world.device(badge_updates=False)

    report = world.process(queued(unread_changed(3)))

    assert world.push.to(phone) == []
    assert world.decisions.only_count("phone").reason is Reason.BADGE_UPDATES_OFF
    assert report.badge_updates == 0


def test_a_suppressed_mail_whose_badge_went_out_is_recorded_badge_only(world: ConsumerWorld) -> None:
    phone = world.device(**AFTER_HOURS)
    world.exchange.unread[(MAILBOX, FOLDER)] = 8

    report = world.process(queued(world.mail("a1"), world.mail("a2")))

    assert [(sent.kind, sent.payload["aps"]) for sent in world.push.to(phone)] == [("badge", {"badge": 8})]
    for item in ("a1", "a2"):
        decision = world.decisions.only("phone", item)
        assert (decision.outcome, decision.reason) == (Outcome.BADGE_ONLY, Reason.OUTSIDE_WORK_HOURS)
    assert world.exchange.calls["unread_count"] == 1
    assert (report.badge_updates, report.pushed) == (1, 0)


def test_a_suppressed_mail_stays_suppressed_when_its_badge_could_not_go_out(world: ConsumerWorld) -> None:
    world.device(**AFTER_HOURS)
    world.exchange.unread[(MAILBOX, FOLDER)] = 8
    world.push.fail_next(transient())

    report = world.process(queued(world.mail("a1")))

    assert world.decisions.only("phone", "a1").outcome is Outcome.SUPPRESSED
    assert report.failed_message_ids == ["msg-1"]


def test_a_badge_that_could_not_go_out_fails_the_event_that_owes_it(world: ConsumerWorld) -> None:
    world.device(**AFTER_HOURS)
    world.exchange.unread[(MAILBOX, FOLDER)] = 8
    world.push.fail_next(transient())

    report = world.process(queued(new_mail("vanished"), world.mail("a1")))

    # Retrying the gone mail would not send the badge again; retrying the suppressed one does.
    assert report.failed_message_ids == ["msg-2"]


def test_the_work_hours_rule_uses_the_devices_zone(world: ConsumerWorld) -> None:
    # Received 09:59:55 UTC, 10:59:55 in Berlin (CET in December): inside 10:00-12:00 there, not in UTC.
    rules = {**AFTER_HOURS, "work_start": time(10, 0), "work_end": time(12, 0)}
    berlin = world.device("berlin", **{**rules, "time_zone": "Europe/Berlin"})
    world.device("utc", **rules, badge_updates=False)

    world.process(queued(world.mail("a1")))

    assert [sent.kind for sent in world.push.sent] == ["summary"]
    assert world.push.sent[0].device_token == berlin.push_token
    assert world.decisions.only("utc", "a1").reason is Reason.OUTSIDE_WORK_HOURS


def test_devices_unavailable_reports_the_mailboxs_events_failed(world: ConsumerWorld) -> None:
    world.device()
    world.devices.failures.append(DependencyUnavailable("Query failed"))

    report = world.process(queued(world.mail("a1")))

    assert report.failed_message_ids == ["msg-1"]
    assert world.decisions.records == []

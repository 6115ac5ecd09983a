"""Ids, clocks, fault rules and the mailbox event log, without HTTP."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from exchange_simulator import ManualClock, SystemClock
from exchange_simulator.auth import Accounts, ServiceAccount
from exchange_simulator.faults import FaultInjector
from exchange_simulator.ids import IdKind, MalformedIdError, decode_id, encode_id
from exchange_simulator.model import Address, Store

pytestmark = pytest.mark.unit


def test_ids_round_trip_and_refuse_other_kinds():
    item_id = encode_id(IdKind.ITEM, 7, 3, 99)

    assert decode_id(IdKind.ITEM, item_id, 2) == (7, (3, 99))
    with pytest.raises(MalformedIdError):
        decode_id(IdKind.FOLDER, item_id, 2)
    with pytest.raises(MalformedIdError):
        decode_id(IdKind.ITEM, "AAMkAGI2TG93AAA=", 2)


def test_a_manual_clock_moves_only_when_advanced_and_wakes_listeners():
    clock = ManualClock(datetime(2024, 1, 1, tzinfo=UTC))
    woken = []
    clock.on_advance(lambda: woken.append(clock.now()))

    clock.advance(30)
    clock.advance(minutes=1)

    assert woken == [datetime(2024, 1, 1, 0, 0, 30, tzinfo=UTC), datetime(2024, 1, 1, 0, 1, 30, tzinfo=UTC)]
    assert clock.real_seconds_until(clock.now() + timedelta(seconds=1)) is None


def test_a_scaled_system_clock_converts_protocol_time_to_real_time():
    clock = SystemClock(time_scale=60)

    wait = clock.real_seconds_until(clock.now() + timedelta(minutes=1))

    assert 0.9 < wait <= 1.0


def test_count_faults_fire_exactly_n_times_and_only_for_their_operations():
    faults = FaultInjector(seed=1)
    faults.add("server_busy", count=2, operations=["GetItem"], back_off_ms=10)

    decisions = [
        faults.decide(op).server_busy_back_off_ms for op in ("GetFolder", "GetItem", "GetItem", "GetItem")
    ]

    assert decisions == [None, 10, 10, None]
    assert faults.rules() == []


def test_fraction_faults_are_reproducible_with_a_seed():
    def run() -> list[bool]:
        faults = FaultInjector(seed=42)
        faults.add("connection_reset", fraction=0.3)
        return [faults.decide("GetItem").connection_reset for _ in range(50)]

    assert run() == run()
    assert 5 < sum(run()) < 25


@pytest.mark.parametrize(
    "kwargs",
    [
        {"kind": "meteor"},
        {"kind": "server_busy", "count": 0},
        {"kind": "latency"},
        {"kind": "server_busy", "fraction": 2},
    ],
)
def test_nonsense_fault_rules_are_refused(kwargs):
    with pytest.raises(ValueError):  # noqa: PT011 - each case fails a different check
        FaultInjector().add(**kwargs)


def test_service_accounts_log_in_as_user_or_domain_backslash_user():
    accounts = Accounts()
    accounts.add(ServiceAccount("svc-ens", "pw"))

    assert accounts.find("SVC-ENS") is not None
    assert accounts.find("simulator\\svc-ens") is not None
    assert accounts.find("other") is None
    assert accounts.basic("Basic c3ZjLWVuczpwdw==") is not None  # svc-ens:pw
    assert accounts.basic("Basic c3ZjLWVuczpubw==") is None  # svc-ens:no


def test_a_upn_service_account_logs_in_as_upn_account_name_or_domain_backslash_account_name():
    accounts = Accounts()
    account = accounts.add(ServiceAccount("svc-ens@contoso.example", "pw"))

    assert accounts.find("SVC-ENS@contoso.example") is account
    assert accounts.find("svc-ens") is account
    assert accounts.find("SIMULATOR\\svc-ens") is account
    assert accounts.find("simulator\\svc-ens@contoso.example") is None  # DOMAIN\\UPN is no Windows spelling
    assert accounts.find("svc-ens@fabrikam.example") is None


def test_a_plain_service_account_gets_no_invented_upn():
    account = ServiceAccount("ensbot", "pw", domain="CONTOSO")

    assert account.login_names() == {"ensbot", "contoso\\ensbot"}


def test_an_exact_username_wins_over_another_upns_account_name():
    accounts = Accounts()
    first = accounts.add(ServiceAccount("svc@a.example", "pw"))
    plain = accounts.add(ServiceAccount("svc", "pw"))

    assert accounts.find("svc") is plain
    assert accounts.find("svc@a.example") is first


def test_delivery_raises_created_newmail_and_folder_modified_events():
    store = Store(store_number=1)
    now = datetime(2024, 5, 6, tzinfo=UTC)
    mailbox = store.add_mailbox("a@contoso.example", None, now)

    message = store.deliver(
        mailbox,
        now,
        sender=Address.parse("B <b@x.example>"),
        subject="s",
        body="b",
        body_type="Text",
        importance="Normal",
        received=None,
    )

    assert [event.event_type for event in mailbox.events] == ["CreatedEvent", "NewMailEvent", "ModifiedEvent"]
    assert mailbox.events[-1].unread_count == 1
    assert message.arrived_seq == 1
    assert store.decode_watermark(mailbox, store.watermark(mailbox, mailbox.head_seq)) == 3


def test_html_bodies_give_a_plain_text_preview_of_256_characters():
    store = Store(store_number=1)
    now = datetime(2024, 5, 6, tzinfo=UTC)
    mailbox = store.add_mailbox("a@contoso.example", None, now)
    html = "<html><body><p>" + "word " * 100 + "</p></body></html>"

    message = store.deliver(
        mailbox,
        now,
        sender=Address.parse("b@x.example"),
        subject="s",
        body=html,
        body_type="HTML",
        importance="Normal",
        received=None,
    )

    assert len(message.preview()) == 256
    assert "<" not in message.preview()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Bob Brown <bob@x.example>", Address("Bob Brown", "bob@x.example")),
        ("bob@x.example", Address("bob@x.example", "bob@x.example")),
    ],
)
def test_senders_are_accepted_in_the_usual_spellings(value, expected):
    assert Address.parse(value) == expected

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo, available_timezones

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from ens.core.devices import Rules, Weekday
from ens.core.mail import Mail
from ens.core.rules import Reason, Rule, RuleVerdict, decide, in_work_hours, local_time

pytestmark = pytest.mark.unit

STALE_AFTER = timedelta(minutes=60)
RULES_DOC = Path(__file__).resolve().parents[3] / "docs" / "rules.md"
# Deterministic, so a failure reproduces on every run and machine; no example database written.
PROPERTY = settings(derandomize=True, max_examples=300, deadline=None, database=None)


# --- the examples in docs/rules.md -------------------------------------------------------------


@dataclass(frozen=True)
class Example:
    number: str
    case: str
    rules: Rules
    mail: Mail
    local: str
    contact: bool | None  # None: the contact lookup must not be asked
    age: timedelta
    notify: bool
    rule: Rule


_FLAGS = {"H": "work_hours_only", "W": "weekend_alerts", "V": "vip_after_hours"}
_WEEK = list(Weekday)


def _days(cell: str) -> frozenset[Weekday]:
    if cell == "none":
        return frozenset()
    first, _, last = cell.partition("-")
    start, end = _WEEK.index(Weekday(first)), _WEEK.index(Weekday(last or first))
    return frozenset(_WEEK[start : end + 1])


def _example(cells: list[str]) -> Example:
    number, case, zone, days, hours, flags, vips, received, local, sender, contact, read, age, verdict = cells
    start, end = hours.split("-")
    rules = Rules.model_validate(
        {
            "time_zone": zone,
            "work_days": _days(days),
            "work_start": start,
            "work_end": end,
            **{_FLAGS[flag]: True for flag in flags.split() if flag != "—"},
            "vips": [] if vips == "—" else vips.split(),
        }
    )
    mail = Mail(
        item_id=f"item-{number}",
        received_at=datetime.strptime(received, "%Y-%m-%dT%H:%MZ").replace(tzinfo=UTC),
        is_read={"yes": True, "no": False}[read],
        sender_address=None if sender == "—" else sender,
    )
    outcome, rule = verdict.split()
    return Example(
        number=number,
        case=case,
        rules=rules,
        mail=mail,
        local=local,
        contact={"yes": True, "no": False, "—": None}[contact],
        age=timedelta(minutes=int(age)),
        notify={"notify": True, "suppress": False}[outcome],
        rule=Rule(rule),
    )


def _examples() -> list[Example]:
    text = RULES_DOC.read_text(encoding="utf-8")
    table = text.split("<!-- examples:start -->")[1].split("<!-- examples:end -->")[0]
    rows = [line for line in table.strip().splitlines()[2:] if line.startswith("|")]
    return [_example([cell.strip() for cell in row.strip().strip("|").split("|")]) for row in rows]


EXAMPLES = _examples()


class ContactBook:
    """Stands in for the mailbox's VIP contacts and remembers every question asked."""

    def __init__(self, answer: bool | None) -> None:
        self.answer = answer
        self.asked: list[str] = []

    def __call__(self, address: str) -> bool:
        self.asked.append(address)
        return bool(self.answer)


@pytest.mark.parametrize("example", EXAMPLES, ids=[f"{e.number} {e.case}" for e in EXAMPLES])
def test_decision_matches_the_documented_example(example: Example) -> None:
    contacts = ContactBook(example.contact)

    verdict = decide(
        example.rules,
        example.mail,
        now=example.mail.received_at + example.age,
        stale_after=STALE_AFTER,
        is_vip_contact=contacts,
    )

    reason = None if example.notify else Reason(example.rule.value)
    assert verdict == RuleVerdict(notify=example.notify, rule=example.rule, reason=reason)
    assert local_time(example.rules, example.mail.received_at).strftime("%a %H:%M %Z") == example.local
    if example.contact is None:
        assert contacts.asked == []
    else:
        assert contacts.asked == [(example.mail.sender_address or "").lower()]


def test_documented_examples_show_every_rule() -> None:
    assert len(EXAMPLES) >= 40
    assert {example.rule for example in EXAMPLES} == set(Rule)
    assert len({example.number for example in EXAMPLES}) == len(EXAMPLES)


# --- helpers and edges -------------------------------------------------------------------------


def _mail(received_at: datetime, **fields: object) -> Mail:
    return Mail(item_id="item-1", received_at=received_at, is_read=False, **fields)  # type: ignore[arg-type]


def _never_asked(address: str) -> bool:
    raise AssertionError(f"the contact lookup was asked about {address}")


def test_vip_lookup_is_asked_with_the_lower_cased_address_when_the_answer_decides() -> None:
    rules = Rules(work_hours_only=True, vip_after_hours=True)
    contacts = ContactBook(answer=True)

    verdict = decide(
        rules,
        _mail(datetime(2026, 11, 30, 20, tzinfo=UTC), sender_address=" CEO@Contoso.com "),
        now=datetime(2026, 11, 30, 20, tzinfo=UTC),
        stale_after=STALE_AFTER,
        is_vip_contact=contacts,
    )

    assert verdict.rule is Rule.VIP_AFTER_HOURS
    assert contacts.asked == ["ceo@contoso.com"]


def test_vip_lookup_is_not_asked_when_work_hours_only_is_off() -> None:
    verdict = decide(
        Rules(vip_after_hours=True),
        _mail(datetime(2026, 11, 30, 23, tzinfo=UTC), sender_address="ceo@contoso.com"),
        now=datetime(2026, 11, 30, 23, tzinfo=UTC),
        stale_after=STALE_AFTER,
        is_vip_contact=_never_asked,
    )

    assert verdict.rule is Rule.ALL_MAIL


def test_mail_from_the_future_is_not_stale_when_exchange_clock_runs_ahead() -> None:
    received = datetime(2026, 11, 30, 10, tzinfo=UTC)

    verdict = decide(
        Rules(),
        _mail(received),
        now=received - timedelta(minutes=3),
        stale_after=STALE_AFTER,
        is_vip_contact=_never_asked,
    )

    assert verdict.rule is Rule.ALL_MAIL


def test_mail_without_a_time_zone_is_refused_when_built() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        _mail(datetime(2026, 11, 30, 10))


def test_in_work_hours_refuses_a_naive_moment_rather_than_guess_a_zone() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        in_work_hours(Rules(), datetime(2026, 11, 30, 10))


def test_rules_with_equal_start_and_end_are_refused_when_validated() -> None:
    with pytest.raises(ValidationError) as raised:
        Rules.model_validate({"work_start": "09:00", "work_end": "09:00"})

    assert [error["loc"] for error in raised.value.errors()] == [("work_end",)]


@pytest.mark.parametrize("day", list(Weekday))
def test_night_shift_belongs_to_the_day_it_starts_on_for_every_weekday(day: Weekday) -> None:
    rules = Rules(time_zone="UTC", work_days=frozenset({day}), work_start=time(22), work_end=time(6))
    monday = datetime(2026, 11, 30, tzinfo=UTC)  # a Monday
    start = monday + timedelta(days=_WEEK.index(day))

    assert in_work_hours(rules, start + timedelta(hours=22, minutes=30))
    assert in_work_hours(rules, start + timedelta(days=1, hours=5, minutes=59))
    assert not in_work_hours(rules, start + timedelta(days=1, hours=6))
    assert not in_work_hours(rules, start + timedelta(hours=5))  # the night before: no shift began
    assert not in_work_hours(rules, start + timedelta(days=1, hours=22, minutes=30))


# --- properties --------------------------------------------------------------------------------


def _valid_zone(name: str) -> bool:
    try:
        Rules(time_zone=name)
    except ValidationError:
        return False
    return True


ZONES = sorted(zone for zone in available_timezones() if _valid_zone(zone))
DST_ZONES = ["Europe/Berlin", "America/New_York", "Australia/Lord_Howe"]
SENDERS = [None, "", "boss@contoso.com", "CEO@Contoso.com", "bob@fabrikam.com", "not an address"]
wall_clock = st.builds(time, st.integers(0, 23), st.integers(0, 59))


@st.composite
def rules_in(draw: st.DrawFn, zones: st.SearchStrategy[str]) -> Rules:
    start = draw(wall_clock)
    end = draw(wall_clock.filter(lambda end: end != start))
    return Rules(
        time_zone=draw(zones),
        work_days=draw(st.frozensets(st.sampled_from(Weekday))),
        work_start=start,
        work_end=end,
        work_hours_only=draw(st.booleans()),
        weekend_alerts=draw(st.booleans()),
        vip_after_hours=draw(st.booleans()),
        vips=draw(st.frozensets(st.sampled_from(["boss@contoso.com", "ceo@contoso.com"]))),
    )


any_rules = rules_in(st.sampled_from(ZONES))
instants = st.datetimes(
    min_value=datetime(1990, 1, 1), max_value=datetime(2090, 1, 1), timezones=st.just(UTC)
)


@st.composite
def mails(draw: st.DrawFn, received: st.SearchStrategy[datetime] = instants) -> Mail:
    return Mail(
        item_id="item-1",
        received_at=draw(received),
        is_read=draw(st.booleans()),
        sender_address=draw(st.sampled_from(SENDERS)),
    )


# Around each transition of 2026, a day either side: where wall clocks skip and repeat.
_TRANSITIONS = [
    datetime(2026, 3, 29, 1, tzinfo=UTC),  # Berlin springs forward
    datetime(2026, 10, 25, 1, tzinfo=UTC),  # Berlin falls back
    datetime(2026, 3, 8, 7, tzinfo=UTC),  # New York springs forward
    datetime(2026, 11, 1, 6, tzinfo=UTC),  # New York falls back
    datetime(2026, 4, 4, 15, tzinfo=UTC),  # Lord Howe falls back half an hour
    datetime(2026, 10, 3, 15, 30, tzinfo=UTC),  # Lord Howe springs forward half an hour
]
near_transitions = st.builds(
    lambda at, seconds: at + timedelta(seconds=seconds),
    st.sampled_from(_TRANSITIONS),
    st.integers(-2 * 86400, 2 * 86400),
)


def _oracle_in_work_hours(rules: Rules, moment: datetime) -> bool:
    """Shifts as intervals on a circular week of wall-clock minutes: a second, independent reading."""
    local = moment.astimezone(ZoneInfo(rules.time_zone))
    week = 7 * 1440
    at = local.weekday() * 1440 + local.hour * 60 + local.minute + local.second / 60
    start = rules.work_start.hour * 60 + rules.work_start.minute
    end = rules.work_end.hour * 60 + rules.work_end.minute
    length = (end - start) % 1440
    for day in rules.work_days:
        shift_start = _WEEK.index(day) * 1440 + start
        if (at - shift_start) % week < length:
            return True
    return False


def _recording(calls: list[str | None]) -> Callable[[str], bool]:
    def is_vip_contact(address: str) -> bool:
        calls.append(address)
        return address.startswith("ceo@")

    return is_vip_contact


@PROPERTY
@given(rules=any_rules, mail=mails(), age=st.integers(-3600, 7200))
def test_decide_never_raises_and_is_consistent_for_any_valid_rules_and_mail(
    rules: Rules, mail: Mail, age: int
) -> None:
    calls: list[str | None] = []

    verdict = decide(
        rules,
        mail,
        now=mail.received_at + timedelta(seconds=age),
        stale_after=STALE_AFTER,
        is_vip_contact=_recording(calls),
    )

    assert verdict.notify == (verdict.reason is None)
    assert len(calls) <= 1
    assert all(calls)
    assert all(address == address.strip().lower() for address in calls if address)
    if calls:
        assert rules.work_hours_only
        assert rules.vip_after_hours
        assert mail.sender_address is not None
        assert mail.sender_address.lower() not in rules.vips


@PROPERTY
@given(rules=any_rules, mail=mails(), first=st.integers(0, 3600), second=st.integers(0, 3600))
def test_verdict_does_not_change_when_now_moves_within_the_stale_limit(
    rules: Rules, mail: Mail, first: int, second: int
) -> None:
    def verdict_at(seconds: int) -> RuleVerdict:
        now = mail.received_at + timedelta(seconds=seconds)
        return decide(rules, mail, now=now, stale_after=STALE_AFTER, is_vip_contact=_recording([]))

    assert verdict_at(first) == verdict_at(second)


@PROPERTY
@given(
    rules=rules_in(st.sampled_from(ZONES + DST_ZONES * 50)), mail=mails(st.one_of(instants, near_transitions))
)
def test_verdict_depends_only_on_the_wall_clock_time_in_the_device_zone(rules: Rules, mail: Mail) -> None:
    wall_clock_in_utc = local_time(rules, mail.received_at).replace(tzinfo=UTC)
    same_clock_in_utc = rules.model_copy(update={"time_zone": "UTC"})
    shifted_mail = Mail(
        item_id=mail.item_id,
        received_at=wall_clock_in_utc,
        is_read=mail.is_read,
        sender_address=mail.sender_address,
    )

    def verdict(rules: Rules, mail: Mail) -> RuleVerdict:
        return decide(
            rules, mail, now=mail.received_at, stale_after=STALE_AFTER, is_vip_contact=_recording([])
        )

    assert verdict(rules, mail) == verdict(same_clock_in_utc, shifted_mail)


@PROPERTY
@given(rules=rules_in(st.sampled_from(DST_ZONES)), moment=near_transitions)
def test_work_hours_follow_the_wall_clock_across_dst_changes(rules: Rules, moment: datetime) -> None:
    assert in_work_hours(rules, moment) == _oracle_in_work_hours(rules, moment)


@PROPERTY
@given(rules=any_rules, moment=instants)
def test_work_hours_match_the_circular_week_reading_in_any_zone(rules: Rules, moment: datetime) -> None:
    assert in_work_hours(rules, moment) == _oracle_in_work_hours(rules, moment)


@PROPERTY
@given(rules=rules_in(st.sampled_from(DST_ZONES)), moment=near_transitions)
def test_both_passes_through_a_repeated_hour_get_the_same_answer_when_clocks_fall_back(
    rules: Rules, moment: datetime
) -> None:
    local = local_time(rules, moment)
    other = local.replace(fold=1 - local.fold).astimezone(UTC)

    assert in_work_hours(rules, moment) == in_work_hours(rules, other)

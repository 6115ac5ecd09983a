import json
from datetime import UTC, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from ens.core.devices import ContentMode, Device, Rules, Weekday

pytestmark = pytest.mark.unit

REGISTERED = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


def device_fields(**overrides: Any) -> dict[str, Any]:
    return {
        "mailbox": "alice@contoso.com",
        "device_id": "iphone-15.A1:b2_c3",
        "push_token": "a1b2c3d4" * 8,
        "registered_at": "2026-11-30T09:00:00Z",
        "updated_at": "2026-11-30T09:00:00Z",
        **overrides,
    }


def error_locations(
    fields: dict[str, Any], model: type[Rules] | type[Device] = Rules
) -> list[tuple[Any, ...]]:
    with pytest.raises(ValidationError) as raised:
        model.model_validate(fields)
    return [error["loc"] for error in raised.value.errors()]


def test_rules_defaults_are_office_hours_in_utc_with_every_alert_on() -> None:
    rules = Rules()

    assert rules.model_dump(mode="json") == {
        "time_zone": "UTC",
        "work_days": ["mon", "tue", "wed", "thu", "fri"],
        "work_start": "08:00",
        "work_end": "18:00",
        "work_hours_only": False,
        "weekend_alerts": False,
        "vip_after_hours": False,
        "vips": [],
        "content": "summary",
        "snippet_length": 100,
        "badge_updates": True,
    }


def test_device_survives_a_json_round_trip_unchanged() -> None:
    device = Device.model_validate(
        device_fields(
            app_version="4.2.0 (build 17)",
            active=False,
            deactivated_reason="CNS answered 410 for the token",
            deactivated_at="2026-12-01T10:00:00.250+01:00",
            last_push_at="2026-12-01T08:59:59Z",
            rules={
                "time_zone": "Europe/Berlin",
                "work_days": ["sun", "mon"],
                "work_start": "22:00",
                "work_end": "06:30",
                "work_hours_only": True,
                "weekend_alerts": True,
                "vip_after_hours": True,
                "vips": ["ceo@contoso.com", "boss@contoso.com"],
                "content": "count",
                "snippet_length": 0,
                "badge_updates": False,
            },
        )
    )

    stored = json.loads(json.dumps(device.model_dump(mode="json")))

    assert Device.model_validate(stored) == device
    assert stored["rules"]["work_days"] == ["mon", "sun"]
    assert stored["rules"]["vips"] == ["boss@contoso.com", "ceo@contoso.com"]
    assert stored["deactivated_at"] == "2026-12-01T09:00:00.250000Z"


def test_integral_decimals_from_dynamodb_are_read_as_integers() -> None:
    rules = Rules.model_validate({"snippet_length": Decimal("120")})

    assert rules.snippet_length == 120
    assert type(rules.snippet_length) is int


@pytest.mark.parametrize("value", [Decimal("1.5"), "100", 100.0, True])
def test_snippet_length_is_refused_when_not_an_integer(value: object) -> None:
    assert error_locations({"snippet_length": value}) == [("snippet_length",)]


@pytest.mark.parametrize("value", [-1, 257])
def test_snippet_length_is_refused_when_out_of_range(value: int) -> None:
    assert error_locations({"snippet_length": value}) == [("snippet_length",)]


@pytest.mark.parametrize("value", ["yes", 1, "true"])
def test_flags_are_refused_when_not_booleans(value: object) -> None:
    assert error_locations({"work_hours_only": value, "badge_updates": value}) == [
        ("work_hours_only",),
        ("badge_updates",),
    ]


@pytest.mark.parametrize(
    "zone",
    [
        "",
        "local",
        "localtime",
        "/usr/share/zoneinfo/Europe/Berlin",
        "../../etc/passwd",
        "Europe/../UTC",
        "Mars/Olympus_Mons",
        "Europe/Berlin\n",
    ],
)
def test_time_zone_is_refused_when_not_an_iana_name(zone: str) -> None:
    assert error_locations({"time_zone": zone}) == [("time_zone",)]


@pytest.mark.parametrize(
    "zone", ["UTC", "Europe/Berlin", "America/Argentina/Buenos_Aires", "Etc/GMT-14", "Australia/Lord_Howe"]
)
def test_time_zone_is_accepted_when_iana_knows_it(zone: str) -> None:
    rules = Rules(time_zone=zone)

    assert rules.zone.key == zone


def test_work_times_read_and_write_as_hours_and_minutes() -> None:
    rules = Rules.model_validate({"work_start": "07:30", "work_end": "16:45"})

    assert (rules.work_start, rules.work_end) == (time(7, 30), time(16, 45))
    assert rules.model_dump(mode="json")["work_start"] == "07:30"


@pytest.mark.parametrize("value", ["07:30:15", "25:00", "7h30", "07:30+01:00"])
def test_work_start_is_refused_when_not_a_whole_minute_wall_clock_time(value: str) -> None:
    assert error_locations({"work_start": value}) == [("work_start",)]


def test_work_end_before_start_is_a_span_over_midnight() -> None:
    rules = Rules(work_start=time(22), work_end=time(6))

    assert rules.spans_midnight


def test_work_days_are_refused_when_not_weekdays() -> None:
    assert error_locations({"work_days": ["mon", "funday"]}) == [("work_days", 1)]


def test_work_days_may_be_empty_when_no_day_is_a_work_day() -> None:
    assert Rules(work_days=frozenset()).work_days == frozenset()


def test_vips_are_lower_cased_and_stripped() -> None:
    rules = Rules.model_validate({"vips": [" CEO@Contoso.com ", "ceo@contoso.com", "Jürgen@Beispiel.de"]})

    assert rules.vips == frozenset({"ceo@contoso.com", "jürgen@beispiel.de"})


def test_each_implausible_vip_is_named_by_its_position() -> None:
    locations = error_locations(
        {"vips": ["ok@contoso.com", "no-at-sign", "two@@contoso.com", "a b@contoso.com", "x@localhost"]}
    )

    assert locations == [("vips", 1), ("vips", 2), ("vips", 3), ("vips", 4)]


def test_vip_address_is_refused_when_longer_than_254_characters() -> None:
    address = "a" * 60 + "@" + "b" * 190 + ".com"

    assert error_locations({"vips": [address]}) == [("vips", 0)]


def test_vips_are_refused_when_more_than_a_thousand() -> None:
    vips = [f"vip{number}@contoso.com" for number in range(1001)]

    assert error_locations({"vips": vips}) == [("vips",)]


def test_content_is_refused_when_not_a_known_mode() -> None:
    assert error_locations({"content": "full"}) == [("content",)]
    assert Rules.model_validate({"content": "count"}).content is ContentMode.COUNT


def test_unknown_rule_fields_are_refused_so_typos_do_not_pass_silently() -> None:
    assert error_locations({"work_hours_onyl": True}) == [("work_hours_onyl",)]


def test_every_invalid_device_field_is_reported_at_once() -> None:
    fields = device_fields(
        mailbox="not-an-address",
        device_id="has space",
        push_token='with"quote',
        platform="iOS",
        app_version="x" * 65,
        registered_at="2026-11-30T09:00:00",
        rules={"snippet_length": 999, "time_zone": "Nowhere/Land"},
    )

    locations = error_locations(fields, Device)

    assert sorted(locations) == sorted(
        [
            ("mailbox",),
            ("device_id",),
            ("push_token",),
            ("platform",),
            ("app_version",),
            ("registered_at",),
            ("rules", "time_zone"),
            ("rules", "snippet_length"),
        ]
    )


def test_device_mailbox_is_lower_cased_for_the_table_key() -> None:
    device = Device.model_validate(device_fields(mailbox="Alice@Contoso.COM"))

    assert device.mailbox == "alice@contoso.com"


def test_device_times_are_kept_in_utc_whatever_offset_they_came_with() -> None:
    device = Device.model_validate(
        device_fields(updated_at=datetime(2026, 11, 30, 11, tzinfo=timezone(timedelta(hours=2))))
    )

    assert device.updated_at == REGISTERED
    assert device.updated_at.tzinfo is UTC


@pytest.mark.parametrize("token", ["", "a" * 513, "ab cd", "ab\ncd", "back\\slash"])
def test_push_token_is_refused_when_empty_too_long_or_not_printable_ascii(token: str) -> None:
    assert error_locations(device_fields(push_token=token), Device) == [("push_token",)]


def test_device_is_refused_when_it_names_no_registration_time() -> None:
    fields = device_fields()
    del fields["registered_at"]

    assert error_locations(fields, Device) == [("registered_at",)]


def test_device_gets_default_rules_when_none_are_stored() -> None:
    assert Device.model_validate(device_fields()).rules == Rules()


def test_rules_cannot_be_changed_in_place() -> None:
    rules = Rules()

    with pytest.raises(ValidationError):
        rules.work_hours_only = True  # type: ignore[misc]


def test_weekday_of_a_date_follows_the_calendar() -> None:
    assert [Weekday.of(REGISTERED + timedelta(days=offset)) for offset in range(7)] == list(Weekday)


times = st.builds(time, st.integers(0, 23), st.integers(0, 59))


@settings(derandomize=True, max_examples=200, deadline=None, database=None)
@given(
    days=st.frozensets(st.sampled_from(Weekday)),
    start=times,
    end=times,
    vips=st.frozensets(
        st.from_regex(r"[a-z0-9.]{1,20}@[a-z]{1,10}\.[a-z]{2,4}", fullmatch=True), max_size=20
    ),
    snippet_length=st.integers(0, 256),
    flags=st.tuples(st.booleans(), st.booleans(), st.booleans(), st.booleans()),
)
def test_any_valid_rules_survive_a_json_round_trip(
    days: frozenset[Weekday],
    start: time,
    end: time,
    vips: frozenset[str],
    snippet_length: int,
    flags: tuple[bool, bool, bool, bool],
) -> None:
    assume(start != end)
    rules = Rules(
        work_days=days,
        work_start=start,
        work_end=end,
        vips=vips,
        snippet_length=snippet_length,
        work_hours_only=flags[0],
        weekend_alerts=flags[1],
        vip_after_hours=flags[2],
        badge_updates=flags[3],
    )

    assert Rules.model_validate(json.loads(json.dumps(rules.model_dump(mode="json")))) == rules

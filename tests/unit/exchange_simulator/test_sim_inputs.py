"""Settings, deliveries and fault rules given from Python: refused when they make no sense, as the docs say."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from exchange_simulator import DEFAULT_SETTINGS, ExchangeSimulator, ManualClock, soap
from exchange_simulator.faults import FaultInjector

pytestmark = pytest.mark.unit


def test_the_default_settings_are_the_documented_ones():
    assert DEFAULT_SETTINGS == {
        "server_version": "Exchange2016",
        "clock": "system",
        "time_scale": 1.0,
        "dispatch": "background",
        "auth": ["basic", "ntlm"],
        "max_events_per_notification": 50,
        "callback_timeout_seconds": 10.0,
        "fault_seed": None,
        "demo_file": None,
    }


def test_settings_are_read_into_what_the_simulator_uses(tmp_path):
    demo = tmp_path / "demo.toml"
    demo.write_text('[[mailboxes]]\naddress = "erin@contoso.example"\n', encoding="utf-8")

    sim = ExchangeSimulator(
        settings={
            "server_version": "Exchange2019",
            "clock": "manual",
            "dispatch": "manual",
            "auth": ["ntlm"],
            "max_events_per_notification": 5,
            "fault_seed": 7,
            "demo_file": str(demo),
        }
    )

    assert sim.settings.server_version_info == soap.ServerVersion(15, 2, 1118, 7)
    assert isinstance(sim.clock, ManualClock)
    assert sim.settings.auth == ("ntlm",)
    assert sim.push.max_events_per_notification == 5
    assert [m["address"] for m in sim.load_demo()["mailboxes"]] == ["erin@contoso.example"]


@pytest.mark.parametrize(
    ("settings", "key"),
    [
        ({"colour": "red"}, "colour"),
        ({"server_version": "Exchange2013"}, "server_version"),
        ({"clock": "sometimes"}, "clock"),
        ({"time_scale": 0}, "time_scale"),
        ({"dispatch": "eventually"}, "dispatch"),
        ({"auth": []}, "auth"),
        ({"auth": ["kerberos"]}, "auth.0"),
        ({"max_events_per_notification": 0}, "max_events_per_notification"),
        ({"callback_timeout_seconds": -1}, "callback_timeout_seconds"),
        ({"fault_seed": "lucky"}, "fault_seed"),
        ({"demo_file": "/nonexistent/demo.toml"}, "demo_file"),
    ],
)
def test_a_setting_that_makes_no_sense_is_a_one_line_value_error_naming_it(settings, key):
    with pytest.raises(ValueError, match=rf"^invalid settings: {key}: ") as raised:
        ExchangeSimulator(settings=settings)

    # The local stack shows this message as it is: one line, no pydantic links.
    assert "\n" not in str(raised.value)
    assert "errors.pydantic.dev" not in str(raised.value)


@pytest.fixture
def offline_simulator() -> ExchangeSimulator:
    sim = ExchangeSimulator(settings={"clock": "manual", "dispatch": "manual"})
    sim.add_mailbox("alice@contoso.example")
    return sim


@pytest.mark.parametrize(
    ("sender", "expected"),
    [
        ({"from_": "Bob <bob@contoso.example>"}, ("Bob", "bob@contoso.example")),
        ({"sender": "bob@contoso.example"}, ("bob@contoso.example", "bob@contoso.example")),
        ({"from": {"name": "Bob", "address": "bob@contoso.example"}}, ("Bob", "bob@contoso.example")),
        ({}, ("Postmaster", "postmaster@simulator.invalid")),
    ],
)
def test_deliver_takes_the_sender_in_every_spelling(offline_simulator, sender, expected):
    message = offline_simulator.deliver("alice@contoso.example", subject="Hi", **sender)

    assert (message.sender.name, message.sender.email) == expected


def test_a_received_time_without_offset_is_utc(offline_simulator):
    message = offline_simulator.deliver("alice@contoso.example", received="2024-05-06T07:30:00")

    assert message.received == datetime(2024, 5, 6, 7, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    "kwargs",
    [{"importance": "Urgent"}, {"body_type": "RTF"}, {"received": "yesterday"}, {"colour": "red"}],
)
def test_deliver_refuses_what_exchange_would_not_hold(offline_simulator, kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        offline_simulator.deliver("alice@contoso.example", **kwargs)

    assert offline_simulator.store.mailbox("alice@contoso.example").messages == {}


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        ({"kind": "server_busy", "count": 2, "fraction": 0.5}, "give count or fraction, not both"),
        ({"kind": "server_busy", "back_off_ms": -1}, "back_off_ms"),
        ({"kind": "connection_reset", "fraction": 0}, "fraction"),
        ({"kind": "server_busy", "operations": ["GetItems"]}, r"unknown EWS operation\(s\) \['GetItems'\]"),
    ],
)
def test_a_fault_rule_that_makes_no_sense_says_why(kwargs, problem):
    with pytest.raises(ValueError, match=problem):
        FaultInjector().add(**kwargs)


def test_a_fault_rule_fires_once_unless_told_otherwise():
    faults = FaultInjector()

    assert faults.add("server_busy").remaining == 1
    assert faults.add("server_busy", fraction=0.5).remaining is None
    assert faults.add("latency", latency_ms=5, operations=[]).operations is None  # no list: every call

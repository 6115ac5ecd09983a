"""The JSON control API, driven over HTTP the way a curl user or another process would."""

from __future__ import annotations

from urllib.parse import quote

import pytest
import requests
from exchangelib.errors import ErrorServerBusy

from exchange_simulator import ExchangeSimulator
from support.simulator_fixtures import DEMO_MAILBOX

pytestmark = pytest.mark.integration


def call(sim: ExchangeSimulator, method: str, path: str, json=None) -> requests.Response:
    return requests.request(method, sim.control_url + path, json=json, timeout=10)


def test_deliver_creates_a_message_and_returns_its_ids(exchange_simulator: ExchangeSimulator):
    response = call(
        exchange_simulator,
        "POST",
        f"/mailboxes/{DEMO_MAILBOX}/messages",
        {"from": "Bob <bob@contoso.example>", "subject": "Hi", "body": "Hello", "importance": "High"},
    )

    assert response.status_code == 201
    created = response.json()
    assert created["subject"] == "Hi"
    assert created["from"] == {"name": "Bob", "address": "bob@contoso.example"}
    assert created["item_id"] == exchange_simulator.item_id(DEMO_MAILBOX, created["ref"])
    listed = call(exchange_simulator, "GET", f"/mailboxes/{DEMO_MAILBOX}/messages?folder=inbox").json()
    assert "Hi" in [message["subject"] for message in listed]


def test_read_move_and_delete_by_ref_or_by_ews_item_id(exchange_simulator: ExchangeSimulator):
    created = call(exchange_simulator, "POST", f"/mailboxes/{DEMO_MAILBOX}/messages", {"subject": "x"}).json()

    read = call(exchange_simulator, "POST", f"/mailboxes/{DEMO_MAILBOX}/messages/{created['ref']}/read", {})
    assert read.json()["is_read"] is True
    moved = call(
        exchange_simulator,
        "POST",
        f"/mailboxes/{DEMO_MAILBOX}/messages/{quote(created['item_id'], safe='')}/move",
        {"folder": "deleteditems"},
    ).json()
    assert moved["folder"] == "deleteditems"
    assert moved["item_id"] != created["item_id"]  # a move gives a new id, as in Exchange
    deleted = call(exchange_simulator, "DELETE", f"/mailboxes/{DEMO_MAILBOX}/messages/{moved['ref']}")
    assert deleted.status_code == 200
    assert (
        call(exchange_simulator, "DELETE", f"/mailboxes/{DEMO_MAILBOX}/messages/{moved['ref']}").status_code
        == 404
    )


def test_mailboxes_and_service_accounts_can_be_created(exchange_simulator: ExchangeSimulator, ews_account):
    assert (
        call(exchange_simulator, "POST", "/mailboxes", {"address": "dave@contoso.example"}).status_code == 201
    )
    account = call(
        exchange_simulator,
        "POST",
        "/service-accounts",
        {"username": "svc-two", "password": "pw", "can_impersonate": True},
    )
    assert account.status_code == 201

    inbox = ews_account("dave@contoso.example", username="svc-two", password="pw").inbox

    assert inbox.total_count == 0


def test_faults_can_be_injected_listed_and_cleared(exchange_simulator: ExchangeSimulator):
    added = call(
        exchange_simulator, "POST", "/faults", {"kind": "server_busy", "count": 3, "back_off_ms": 100}
    )
    assert added.status_code == 201
    assert call(exchange_simulator, "GET", "/faults").json()[0]["remaining"] == 3

    call(exchange_simulator, "DELETE", "/faults")

    assert call(exchange_simulator, "GET", "/faults").json() == []


def test_push_can_be_paused_resumed_and_run(
    exchange_simulator: ExchangeSimulator, ews_account, callback_listener
):
    subscription_id, _ = ews_account().inbox.subscribe_to_push(callback_listener.url)
    call(exchange_simulator, "POST", "/push/pause")
    call(exchange_simulator, "POST", f"/mailboxes/{DEMO_MAILBOX}/messages", {"subject": "queued"})
    assert call(exchange_simulator, "POST", "/push/run-due").json() == []

    call(exchange_simulator, "POST", "/push/resume")
    ran = call(exchange_simulator, "POST", "/push/run-due").json()

    assert [attempt["outcome"] for attempt in ran] == ["ok"]
    assert call(exchange_simulator, "GET", "/subscriptions").json()[0]["subscription_id"] == subscription_id
    assert call(exchange_simulator, "GET", "/deliveries").json()[-1]["kind"] == "events"


def test_a_subscription_can_be_dropped_silently(exchange_simulator: ExchangeSimulator, ews_account):
    subscription_id, _ = ews_account().inbox.subscribe_to_push("http://127.0.0.1:9/cb")

    dropped = call(exchange_simulator, "POST", f"/subscriptions/{quote(subscription_id, safe='')}/drop")

    assert dropped.status_code == 200
    assert call(exchange_simulator, "GET", "/subscriptions").json() == []


def test_the_manual_clock_advances_on_request(exchange_simulator: ExchangeSimulator):
    before = exchange_simulator.clock.now()

    response = call(exchange_simulator, "POST", "/clock/advance", {"minutes": 5})

    assert response.status_code == 200
    assert (exchange_simulator.clock.now() - before).total_seconds() == 300


def test_watermarks_can_be_expired(exchange_simulator: ExchangeSimulator):
    response = call(exchange_simulator, "POST", f"/mailboxes/{DEMO_MAILBOX}/expire-watermarks")

    assert response.status_code == 200
    mailbox = exchange_simulator.store.mailbox(DEMO_MAILBOX)
    assert mailbox.expired_before_seq == mailbox.head_seq + 1


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("GET", "/nothing-here", None, 404),
        ("DELETE", "/mailboxes", None, 405),
        ("POST", f"/mailboxes/{DEMO_MAILBOX}/messages", {"colour": "red"}, 400),
        ("POST", "/mailboxes/nobody@contoso.example/messages", {"subject": "x"}, 404),
        ("POST", f"/mailboxes/{DEMO_MAILBOX}/messages", {"importance": "Urgent"}, 400),
        ("POST", "/faults", {"kind": "meteor"}, 400),
    ],
)
def test_bad_control_requests_get_json_errors(
    exchange_simulator: ExchangeSimulator, method, path, body, status
):
    response = call(exchange_simulator, method, path, body)

    assert response.status_code == status
    assert "error" in response.json()


MESSAGES = f"/mailboxes/{DEMO_MAILBOX}/messages"


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        # a field no route knows
        (MESSAGES, {"subject": "x", "colour": "red"}, "colour"),
        ("/faults", {"kind": "latency", "latency_ms": 5, "delay": 1}, "delay"),
        ("/clock/advance", {"hours": 1}, "hours"),
        # a JSON type that is not the field's (strict: no "yes" for true, no "3" for 3)
        (MESSAGES, {"is_read": "yes"}, "is_read"),
        (MESSAGES, {"received": "yesterday"}, "received"),
        ("/faults", {"kind": "server_busy", "count": "3"}, "count"),
        (
            "/service-accounts",
            {"username": "svc-two", "password": "pw", "can_impersonate": 1},
            "can_impersonate",
        ),
        (f"{MESSAGES}/1/read", {"is_read": None}, "is_read"),
        # a value outside the field's range or vocabulary
        (MESSAGES, {"body_type": "RTF"}, "body_type"),
        ("/faults", {"kind": "connection_reset", "fraction": 1.5}, "fraction"),
        ("/faults", {"kind": "server_busy", "count": 0}, "count"),
        ("/faults", {"kind": "server_busy", "back_off_ms": -1}, "back_off_ms"),
        ("/clock/advance", {"minutes": -5}, "minutes"),
        ("/mailboxes", {"address": "dave"}, "address"),
        # a required field left out
        (f"{MESSAGES}/1/move", {}, "folder"),
        ("/service-accounts", {"username": "svc-two"}, "password"),
    ],
)
def test_a_body_that_does_not_fit_gets_400_naming_the_field(
    exchange_simulator: ExchangeSimulator, path, body, field
):
    before = call(exchange_simulator, "GET", MESSAGES).json()

    response = call(exchange_simulator, "POST", path, body)

    assert response.status_code == 400
    answer = response.json()
    assert answer["error"].startswith(f"{field}: ")
    assert [detail["loc"][0] for detail in answer["details"]] == [field]
    assert call(exchange_simulator, "GET", MESSAGES).json() == before  # nothing happened


def test_a_fault_rule_that_fires_two_ways_gets_400(exchange_simulator: ExchangeSimulator):
    response = call(
        exchange_simulator, "POST", "/faults", {"kind": "server_busy", "count": 2, "fraction": 0.5}
    )

    assert response.status_code == 400
    assert "give count or fraction, not both" in response.json()["error"]
    assert exchange_simulator.faults.rules() == []


@pytest.mark.parametrize(
    ("body", "problem"), [(b"{nope", "Invalid JSON"), (b"[1, 2]", "Input should be an object")]
)
def test_a_body_that_is_no_json_object_gets_400(exchange_simulator: ExchangeSimulator, body, problem):
    response = requests.post(exchange_simulator.control_url + MESSAGES, data=body, timeout=10)

    assert response.status_code == 400
    assert problem in response.json()["error"]


def test_a_delivered_sender_and_time_arrive_as_given(exchange_simulator: ExchangeSimulator):
    response = call(
        exchange_simulator,
        "POST",
        MESSAGES,
        {"from": {"name": "Bob", "address": "bob@contoso.example"}, "received": "2024-05-06T07:30:00"},
    )

    assert response.status_code == 201
    assert response.json()["from"] == {"name": "Bob", "address": "bob@contoso.example"}
    assert response.json()["received"] == "2024-05-06T07:30:00+00:00"  # no offset means UTC, as in EWS


def test_a_failure_inside_the_simulator_answers_500(exchange_simulator: ExchangeSimulator, monkeypatch):
    def broken() -> list:
        raise KeyError("a simulator bug")

    monkeypatch.setattr(exchange_simulator, "subscriptions", broken)

    response = call(exchange_simulator, "GET", "/subscriptions")

    assert response.status_code == 500
    assert "error" in response.json()


def test_requests_are_logged_with_their_anchor_mailbox(exchange_simulator: ExchangeSimulator, ews_account):
    _ = ews_account().inbox

    (record, *_) = call(exchange_simulator, "GET", "/requests").json()

    assert record["operation"] == "GetFolder"
    assert record["anchor_mailbox"] == DEMO_MAILBOX
    assert record["impersonated"] == DEMO_MAILBOX


def test_contacts_are_added_listed_and_removed_over_the_control_api(exchange_simulator: ExchangeSimulator):
    contacts = f"/mailboxes/{DEMO_MAILBOX}/contacts"

    added = call(
        exchange_simulator,
        "POST",
        contacts,
        {"display_name": "Dana", "emails": ["dana@contoso.example", "d@home.example"], "categories": ["VIP"]},
    )
    listed = call(exchange_simulator, "GET", contacts).json()
    removed = call(exchange_simulator, "DELETE", f"{contacts}/{quote(added.json()['item_id'], safe='')}")
    after = call(exchange_simulator, "GET", contacts).json()

    assert added.status_code == 201
    assert added.json()["emails"] == ["dana@contoso.example", "d@home.example"]
    assert added.json()["item_id"] == exchange_simulator.item_id(DEMO_MAILBOX, added.json()["ref"])
    assert {"Dana", "CEO"} <= {contact["display_name"] for contact in listed}
    assert removed.status_code == 200
    assert "Dana" not in {contact["display_name"] for contact in after}


def test_the_demo_gives_alice_one_vip_and_one_other_contact(exchange_simulator: ExchangeSimulator):
    listed = call(exchange_simulator, "GET", f"/mailboxes/{DEMO_MAILBOX}/contacts").json()

    assert [(c["display_name"], c["emails"][0], c["categories"]) for c in listed] == [
        ("CEO", "ceo@contoso.example", ["VIP"]),
        ("Bob Brown", "bob@contoso.example", ["Colleagues"]),
    ]


@pytest.mark.parametrize(
    ("body", "complaint"),
    [
        ({"display_name": "Both", "email": "a@b.c", "emails": ["a@b.c"]}, "give email or emails"),
        ({"display_name": "Neither"}, "give email or emails"),
        ({"display_name": "Four", "emails": ["a@b.c", "b@b.c", "c@b.c", "d@b.c"]}, "at most 3"),
        ({"display_name": "Bad", "email": "not an address"}, "email"),
        ({"email": "a@b.c"}, "display_name"),
    ],
)
def test_a_contact_that_does_not_fit_gets_400(exchange_simulator: ExchangeSimulator, body, complaint):
    response = call(exchange_simulator, "POST", f"/mailboxes/{DEMO_MAILBOX}/contacts", body)

    assert response.status_code == 400
    assert complaint in response.json()["error"]


def test_removing_an_unknown_contact_gets_404(exchange_simulator: ExchangeSimulator):
    response = call(exchange_simulator, "DELETE", f"/mailboxes/{DEMO_MAILBOX}/contacts/999999")

    assert response.status_code == 404


def test_request_counts_since_a_point_count_by_operation_and_by_mailbox(
    exchange_simulator: ExchangeSimulator, ews_account
):
    _ = ews_account().inbox  # before the point: not counted
    mark = call(exchange_simulator, "GET", "/requests/counts").json()["until"]

    _ = ews_account().inbox
    _ = ews_account("bob@contoso.example").inbox
    list(ews_account("bob@contoso.example").inbox.all().only("subject"))
    counts = call(exchange_simulator, "GET", f"/requests/counts?since={mark}").json()

    assert counts["since"] == mark
    assert counts["until"] == exchange_simulator.last_request_seq
    assert counts["by_mailbox_and_operation"] == {
        DEMO_MAILBOX: {"GetFolder": 2},
        "bob@contoso.example": {"FindItem": 1, "GetFolder": 4},
    }
    assert counts["by_operation"] == {"FindItem": 1, "GetFolder": 6}
    assert counts["by_mailbox"] == {DEMO_MAILBOX: 2, "bob@contoso.example": 5}
    assert counts["total"] == 7


def test_requests_since_a_seq_lists_only_the_later_calls(exchange_simulator: ExchangeSimulator, ews_account):
    _ = ews_account().inbox
    mark = exchange_simulator.last_request_seq
    exchange_simulator.faults.add("server_busy", count=1)
    with pytest.raises(ErrorServerBusy):
        _ = ews_account("bob@contoso.example").inbox

    later = call(exchange_simulator, "GET", f"/requests?since={mark}").json()

    assert [(r["seq"], r["operation"], r["response_code"]) for r in later] == [
        (mark + 1, "GetFolder", "ErrorServerBusy")
    ]
    # Refused before impersonation was looked at, it still counts for its mailbox through X-AnchorMailbox.
    assert exchange_simulator.request_counts(since=mark)["by_mailbox"] == {"bob@contoso.example": 1}


@pytest.mark.parametrize("since", ["-1", "abc", "1.5"])
def test_a_since_that_is_no_seq_gets_400(exchange_simulator: ExchangeSimulator, since):
    response = call(exchange_simulator, "GET", f"/requests/counts?since={since}")

    assert response.status_code == 400
    assert "since" in response.json()["error"]

"""The push sink speaks CNS's contract over real HTTPS, verified with its own CA."""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import requests

from push_sink import PushSink
from support.push_sink_fixtures import DEVICE, cns_headers, sample_payload

pytestmark = pytest.mark.integration


def push(
    sink: PushSink, payload: Any = None, *, token: str | None = None, **kwargs: Any
) -> requests.Response:
    headers = cns_headers() if token is None else cns_headers(token)
    body = json.dumps(sample_payload() if payload is None else payload).encode()
    return requests.post(
        sink.url, data=kwargs.pop("data", body), headers={**headers, **kwargs.pop("headers", {})},
        verify=sink.ca_bundle_path, timeout=10, **kwargs,
    )  # fmt: skip


def control(sink: PushSink, method: str, path: str, **kwargs: Any) -> requests.Response:
    return requests.request(
        method,
        sink.control_url + path,
        verify=sink.ca_bundle_path,
        timeout=kwargs.pop("timeout", 10),
        **kwargs,
    )


def test_an_accepted_push_is_recorded_with_its_apns_id_when_the_token_is_right(push_sink: PushSink) -> None:
    payload = sample_payload(future_field={"kept": True})  # keys the sink does not know pass through

    reply = push(push_sink, payload, headers={"apns-push-type": "alert", "apns-priority": "10"})

    assert reply.status_code == 200
    push_id = reply.json()["id"]
    assert reply.headers["apns-id"] == push_id
    assert uuid.UUID(push_id)
    (recorded,) = control(push_sink, "GET", "/pushes").json()
    assert recorded["seq"] >= 1
    assert recorded["id"] == push_id
    assert recorded["payload"] == payload
    assert recorded["headers"]["apns-push-type"] == "alert"
    assert "authorization" not in {name.lower() for name in recorded["headers"]}
    assert recorded["size"] == len(json.dumps(payload).encode())
    assert [(a.status, a.push_id) for a in push_sink.attempts()] == [(200, push_id)]


@pytest.mark.parametrize("token", ["not-the-token", ""])
def test_a_push_is_refused_401_when_the_bearer_token_is_not_one_the_sink_knows(
    push_sink: PushSink, token: str
) -> None:
    reply = push(push_sink, token=token)

    assert reply.status_code == 401
    assert reply.json() == {"reason": "InvalidProviderToken"}
    assert reply.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
    assert push_sink.pushes() == []
    assert [(a.status, a.reason) for a in push_sink.attempts()] == [(401, "InvalidProviderToken")]


def test_a_push_to_a_device_marked_unregistered_gets_410_with_a_timestamp(push_sink: PushSink) -> None:
    marked = control(push_sink, "POST", f"/devices/{DEVICE}/unregistered")

    reply = push(push_sink)
    other = push(push_sink, sample_payload(device_token="another-device-token"))

    assert marked.status_code == 200
    assert reply.status_code == 410
    assert reply.json()["reason"] == "Unregistered"
    assert reply.json()["timestamp"] <= time.time() * 1000
    assert other.status_code == 200
    assert [p.device_token for p in push_sink.pushes()] == ["another-device-token"]


def test_a_push_to_a_device_marked_bad_gets_400_bad_device_token_until_forgotten(push_sink: PushSink) -> None:
    control(push_sink, "POST", f"/devices/{DEVICE}/bad")

    refused = push(push_sink)
    control(push_sink, "DELETE", f"/devices/{DEVICE}")
    accepted = push(push_sink)

    assert (refused.status_code, refused.json()) == (400, {"reason": "BadDeviceToken"})
    assert accepted.status_code == 200


def test_fail_next_503_with_retry_after_then_the_retry_is_accepted_exactly_once(push_sink: PushSink) -> None:
    push_sink.fail_next(503, count=1, retry_after=7)

    first = push(push_sink)
    second = push(push_sink)

    assert first.status_code == 503
    assert first.headers["Retry-After"] == "7"
    assert first.json() == {"reason": "ServiceUnavailable"}
    assert second.status_code == 200
    assert len(push_sink.pushes()) == 1
    attempts = control(push_sink, "GET", "/attempts").json()
    assert [(a["status"], a["retry_after"], a["device_token"]) for a in attempts] == [
        (503, 7, DEVICE),
        (200, None, DEVICE),
    ]


def test_a_fault_rule_posted_to_the_control_api_answers_its_status_and_reason_count_times(
    push_sink: PushSink,
) -> None:
    created = control(
        push_sink,
        "POST",
        "/faults",
        json={"status": 429, "count": 2, "retry_after": 1, "reason": "Throttled"},
    )

    statuses = [push(push_sink).status_code for _ in range(3)]

    assert created.status_code == 201
    assert created.json()["remaining"] == 2
    assert statuses == [429, 429, 200]
    assert control(push_sink, "GET", "/faults").json() == []  # used up


def test_cleared_faults_no_longer_fire(push_sink: PushSink) -> None:
    push_sink.fail_next(500, count=5)

    cleared = control(push_sink, "DELETE", "/faults")

    assert cleared.status_code == 200
    assert push(push_sink).status_code == 200


def test_fraction_faults_with_a_seed_fail_the_same_pushes_on_every_run(push_sink: PushSink) -> None:
    def run() -> list[int]:
        push_sink.reset()
        control(push_sink, "POST", "/faults", json={"status": 500, "fraction": 0.5, "seed": 42})
        return [push(push_sink).status_code for _ in range(12)]

    first, second = run(), run()

    assert first == second
    assert set(first) == {200, 500}  # some of each: a fraction, neither none nor all
    assert len(push_sink.pushes()) == first.count(200)


def test_a_long_poll_returns_as_soon_as_enough_pushes_arrive(push_sink: PushSink) -> None:
    answers: list[requests.Response] = []
    polling = threading.Thread(
        target=lambda: answers.append(
            control(push_sink, "GET", "/pushes", params={"wait_for": 2, "timeout": 30}, timeout=40)
        )
    )
    started = time.monotonic()
    polling.start()

    push(push_sink)
    push(push_sink, sample_payload(kind="badge", aps={"badge": 4}))
    polling.join(timeout=35)

    assert time.monotonic() - started < 20  # far below the 30 s the poll was willing to wait
    assert [p["payload"]["kind"] for p in answers[0].json()] == ["summary", "badge"]


def test_a_long_poll_times_out_with_an_empty_list_when_nothing_matches(push_sink: PushSink) -> None:
    push(push_sink)
    latest = push_sink.pushes()[-1].seq

    started = time.monotonic()
    reply = control(push_sink, "GET", "/pushes", params={"wait_for": 1, "timeout": 0.3, "since": latest})

    assert reply.status_code == 200
    assert reply.json() == []
    assert time.monotonic() - started >= 0.3


def test_pushes_filter_by_device_token_and_since(push_sink: PushSink) -> None:
    push(push_sink)
    push(push_sink, sample_payload(device_token="second-device"))
    push(push_sink)
    first = push_sink.pushes()[0].seq

    by_device = control(push_sink, "GET", "/pushes", params={"device_token": DEVICE}).json()
    later = push_sink.wait_for(1, timeout=5, device_token=DEVICE, since=first)

    assert [p["payload"]["device_token"] for p in by_device] == [DEVICE, DEVICE]
    assert [p.seq for p in later] == [first + 2]


def test_deleting_pushes_empties_the_records_but_sequence_numbers_go_on(push_sink: PushSink) -> None:
    push(push_sink)
    before = push_sink.pushes()[0].seq

    cleared = control(push_sink, "DELETE", "/pushes")
    push(push_sink)

    assert cleared.status_code == 200
    assert [p.seq for p in push_sink.pushes()] == [before + 1]
    assert len(push_sink.attempts()) == 1


def test_an_oversized_body_gets_413_and_is_not_recorded(push_sink: PushSink) -> None:
    payload = sample_payload(mail={"padding": "x" * (64 * 1024)})

    reply = push(push_sink, payload)

    assert (reply.status_code, reply.json()) == (413, {"reason": "PayloadTooLarge"})
    assert push_sink.pushes() == []
    assert [a.status for a in push_sink.attempts()] == [413]
    assert push(push_sink).status_code == 200  # and the sink still serves


@pytest.mark.parametrize(
    ("body", "content_type", "detail"),
    [
        (b"{not json", "application/json", "Invalid JSON"),
        (b"[]", "application/json", "Input should be an object"),
        (
            json.dumps({k: v for k, v in sample_payload().items() if k != "device_token"}),
            None,
            "device_token",
        ),
        (json.dumps(sample_payload(kind="everything")), None, "kind"),
        (json.dumps(sample_payload(priority="10")), None, "priority"),
        (
            json.dumps(sample_payload(collapse_id="é" * 33)),
            None,
            "collapse_id: Value error, must be at most 64",
        ),
        (json.dumps(sample_payload(aps={"badge": -1})), None, "aps.badge"),
        (json.dumps(sample_payload()), "text/plain", "Content-Type must be application/json"),
    ],
)
def test_a_malformed_push_gets_400_bad_payload_naming_the_problem(
    push_sink: PushSink, body: bytes | str, content_type: str | None, detail: str
) -> None:
    headers = {"Content-Type": content_type} if content_type else {}

    reply = push(push_sink, data=body if isinstance(body, bytes) else body.encode(), headers=headers)

    assert reply.status_code == 400
    assert reply.json()["reason"] == "BadPayload"
    assert detail in reply.json()["detail"]
    assert push_sink.pushes() == []


def test_each_accepted_push_writes_one_console_line_naming_kind_device_mailbox_and_title(
    push_sink: PushSink, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="local_stack.push_sink")

    push(push_sink)
    push(push_sink, sample_payload(kind="count", aps={"badge": 3}))

    accepted = [
        r.getMessage()
        for r in caplog.records
        if r.getMessage().startswith("push ") and "refused" not in r.getMessage()
    ]
    assert accepted == [
        "push summary to device a1b2c3d4… (alice@contoso.example): Board meeting moved",
        "push count to device a1b2c3d4… (alice@contoso.example): badge 3",
    ]
    assert all(record.name == "local_stack.push_sink" for record in caplog.records)
    assert DEVICE not in caplog.text  # the full device token stays off the console


def test_a_client_that_does_not_trust_the_sinks_ca_cannot_connect(push_sink: PushSink) -> None:
    with pytest.raises(requests.exceptions.SSLError):
        requests.post(push_sink.url, json=sample_payload(), headers=cns_headers(), timeout=10)

    assert push(push_sink).status_code == 200  # a failed handshake does not disturb the sink


def test_control_api_refuses_a_fault_rule_that_does_not_fit(push_sink: PushSink) -> None:
    both = control(push_sink, "POST", "/faults", json={"status": 503, "count": 1, "fraction": 0.5})
    typo = control(push_sink, "POST", "/faults", json={"status": 503, "cuont": 1})
    not_an_error = control(push_sink, "POST", "/faults", json={"status": 200})
    unknown = control(push_sink, "GET", "/nowhere")

    assert both.status_code == typo.status_code == not_an_error.status_code == 400
    assert "count or fraction" in both.json()["error"]
    assert "cuont" in typo.json()["error"]
    assert unknown.status_code == 404
    assert push_sink.faults.rules() == []


def test_health_names_the_push_url_and_the_ca_bundle(push_sink: PushSink) -> None:
    health = control(push_sink, "GET", "/health").json()

    assert health == {
        "status": "ok",
        "push_url": push_sink.url,
        "tls": True,
        "ca_bundle_path": push_sink.ca_bundle_path,
    }
    assert push_sink.url.startswith("https://127.0.0.1:")
    assert push_sink.url.endswith("/v1/push")


def test_without_tls_the_sink_serves_plain_http_and_has_no_ca_bundle() -> None:
    with PushSink(tls=False, tokens=["plain"]) as sink:
        reply = requests.post(sink.url, json=sample_payload(), headers=cns_headers("plain"), timeout=10)

        assert sink.url.startswith("http://127.0.0.1:")
        assert sink.ca_bundle_path is None
        assert reply.status_code == 200


def test_stopping_the_sink_removes_its_ca_bundle_and_ends_waiting_long_polls() -> None:
    sink = PushSink(tokens=["t"]).start()
    bundle = Path(str(sink.ca_bundle_path))
    waited: list[int] = []
    waiting = threading.Thread(target=lambda: waited.append(len(sink.wait_for(1, timeout=60))))
    waiting.start()

    sink.stop()
    waiting.join(timeout=10)

    assert not bundle.exists()
    assert waited == [0]
    assert not waiting.is_alive()


def test_the_sink_refuses_to_listen_beyond_loopback() -> None:
    with pytest.raises(ValueError, match="loopback"):
        PushSink(host="0.0.0.0")  # noqa: S104 - the point of the test

"""CnsPushGateway against the push sink over HTTPS (the sink's own CA): what each CNS answer becomes."""

from __future__ import annotations

import json
import socket
from datetime import UTC, datetime, timedelta

import jwt
import pytest

from ens.adapters.push import CnsPushGateway, CnsToken, CnsTokenExpired, CnsUnavailable
from ens.errors import AdminActionRequired, DeviceTokenRejected
from push_sink import PushSink, mint_token
from support.consumer_fakes import RecordingSleep
from support.push_sink_fixtures import DEVICE, PUSH_SINK_TOKEN, sample_payload

pytestmark = pytest.mark.integration

PAYLOAD = json.dumps(sample_payload()).encode()


def plenty() -> float:
    return 60.0


def gateway(sink: PushSink, sleep: RecordingSleep, token: str = PUSH_SINK_TOKEN, **options) -> CnsPushGateway:
    options.setdefault("ca_bundle", sink.ca_bundle_path)
    return CnsPushGateway(sink.url, lambda: CnsToken.parse(token), sleep=sleep, **options)


@pytest.fixture
def sleep() -> RecordingSleep:
    return RecordingSleep()


def test_an_accepted_push_returns_the_sinks_id_after_one_attempt(push_sink: PushSink, sleep) -> None:
    receipt = gateway(push_sink, sleep).send(PAYLOAD, seconds_left=plenty)

    (push,) = push_sink.pushes()
    assert (receipt.status, receipt.push_id, receipt.attempts) == (200, push.id, 1)
    assert push.payload == sample_payload()
    assert push.headers["content-type"] == "application/json"
    assert sleep.waits == []


@pytest.mark.parametrize("status", [429, 503])
def test_a_throttled_or_unavailable_answer_waits_its_retry_after_then_pushes(
    push_sink: PushSink, sleep, status: int
) -> None:
    push_sink.fail_next(status, count=2, retry_after=3)

    receipt = gateway(push_sink, sleep).send(PAYLOAD, seconds_left=plenty)

    assert sleep.waits == [3.0, 3.0]
    assert receipt.attempts == 3
    assert [attempt.status for attempt in push_sink.attempts()] == [status, status, 200]
    assert len(push_sink.pushes()) == 1


def test_without_retry_after_the_waits_double_from_200_ms(push_sink: PushSink, sleep) -> None:
    push_sink.fail_next(502, count=3)

    receipt = gateway(push_sink, sleep).send(PAYLOAD, seconds_left=plenty)

    assert sleep.waits == [0.2, 0.4, 0.8]
    assert receipt.attempts == 4


def test_cns_unavailable_is_raised_when_the_wait_does_not_fit_in_the_time_left(
    push_sink: PushSink, sleep
) -> None:
    push_sink.fail_next(503, count=5, retry_after=10)

    with pytest.raises(CnsUnavailable) as raised:
        # 10 s of Retry-After plus the 7 s of connect and read timeouts do not fit in 15 s.
        gateway(push_sink, sleep).send(PAYLOAD, seconds_left=lambda: 15.0)

    assert raised.value.status == 503
    assert sleep.waits == []
    assert len(push_sink.attempts()) == 1


def test_a_refused_bearer_token_needs_an_admin(push_sink: PushSink, sleep) -> None:
    with pytest.raises(AdminActionRequired) as raised:
        gateway(push_sink, sleep, token=mint_token()).send(PAYLOAD, seconds_left=plenty)

    assert raised.value.code == "cns_unauthorized"
    assert "401" in raised.value.detail
    assert push_sink.pushes() == []


def test_an_unregistered_device_token_is_rejected_with_410(push_sink: PushSink, sleep) -> None:
    push_sink.mark_unregistered(DEVICE)

    with pytest.raises(DeviceTokenRejected) as raised:
        gateway(push_sink, sleep).send(PAYLOAD, seconds_left=plenty)

    assert (raised.value.status, raised.value.reason) == (410, "Unregistered")
    assert sleep.waits == []


def test_a_bad_device_token_is_rejected_with_400(push_sink: PushSink, sleep) -> None:
    push_sink.mark_bad(DEVICE)

    with pytest.raises(DeviceTokenRejected) as raised:
        gateway(push_sink, sleep).send(PAYLOAD, seconds_left=plenty)

    assert (raised.value.status, raised.value.reason) == (400, "BadDeviceToken")


def test_another_400_is_a_refused_payload_not_a_dead_device(push_sink: PushSink, sleep) -> None:
    with pytest.raises(AdminActionRequired) as raised:
        gateway(push_sink, sleep).send(b'{"not": "a push"}', seconds_left=plenty)

    assert raised.value.code == "cns_rejected_payload"


def test_a_refused_connection_is_cns_unavailable(sleep) -> None:
    with socket.socket() as probe:  # a port nothing listens on once closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    unreachable = CnsPushGateway(
        f"https://127.0.0.1:{port}/v1/push", lambda: CnsToken.parse(PUSH_SINK_TOKEN), sleep=sleep
    )

    with pytest.raises(CnsUnavailable) as raised:
        unreachable.send(PAYLOAD, seconds_left=lambda: 1.0)

    assert raised.value.status is None
    assert "ConnectionError" in str(raised.value)


def test_tls_verification_fails_without_the_sinks_ca_bundle(push_sink: PushSink, sleep) -> None:
    with pytest.raises(CnsUnavailable) as raised:
        gateway(push_sink, sleep, ca_bundle=None).send(PAYLOAD, seconds_left=lambda: 1.0)

    assert "SSLError" in str(raised.value)
    assert push_sink.attempts() == []


def test_an_expired_token_sends_nothing(push_sink: PushSink, sleep) -> None:
    expired = mint_token(lifetime=timedelta(seconds=-1))

    with pytest.raises(CnsTokenExpired):
        gateway(push_sink, sleep, token=expired).send(PAYLOAD, seconds_left=plenty)

    assert push_sink.attempts() == []


# -- the token -------------------------------------------------------------------------------------------


def test_a_jwt_tokens_expiry_is_read_without_verifying_its_signature() -> None:
    exp = datetime(2027, 3, 1, 12, 0, tzinfo=UTC)
    token = jwt.encode(
        {"exp": exp, "iss": "cns"}, "a signing key ENS never sees, 32 bytes or more", algorithm="HS256"
    )

    parsed = CnsToken.parse(f"  {token}\n")

    assert (parsed.value, parsed.expires_at) == (token, exp)
    assert parsed.days_left(exp - timedelta(days=10)) == pytest.approx(10.0)


def test_an_opaque_token_has_no_expiry() -> None:
    parsed = CnsToken.parse("opaque-cns-token-0123")

    assert (parsed.value, parsed.expires_at) == ("opaque-cns-token-0123", None)
    assert parsed.days_left(datetime.now(UTC)) is None


def test_an_expired_jwt_parses_and_has_negative_days_left() -> None:
    token = mint_token(lifetime=timedelta(days=-2))

    parsed = CnsToken.parse(token)

    assert parsed.expires_at is not None
    assert parsed.days_left(datetime.now(UTC)) == pytest.approx(-2.0, abs=0.01)

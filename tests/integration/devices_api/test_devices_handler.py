"""The devices API's handler over local AWS (its JWT key secret in Secrets Manager) with a fake registry:
every route and status, the problem documents, and every token that must not pass."""

from __future__ import annotations

import json
import time
from typing import Any

import jwt
import pytest

from ens.core.registrations import Caller, DecisionView
from ens.errors import AdminActionRequired, DependencyUnavailable, ExchangeBusy
from support.fake_registry import MOMENT
from support.jwt_keys import (
    ec_pair,
    es_token,
    hmac_with_public_key_token,
    hs_token,
    rs_token,
    rsa_pair,
    unsigned_token,
)

from .conftest import Answer, DevicesApi

pytestmark = pytest.mark.integration

ALICE = "alice@contoso.example"
REGISTRATION = {"mailbox": ALICE, "push_token": "apns-token-0001", "app_version": "1.2"}


def assert_problem(answer: Answer, status: int) -> dict[str, Any]:
    assert answer.status == status
    assert answer.headers["content-type"] == "application/problem+json"
    problem = answer.json()
    assert problem["status"] == status
    assert {"type", "title", "status", "detail", "instance"} <= set(problem)
    assert "Traceback" not in answer.body
    return dict(problem)


def test_put_answers_201_for_a_new_device_and_never_echoes_its_push_token(devices_api: DevicesApi) -> None:
    answer = devices_api.call("PUT", "/v1/devices/alice-iphone", body=REGISTRATION)

    assert answer.status == 201
    assert answer.headers["content-type"] == "application/json"
    view = answer.json()
    assert (view["device_id"], view["mailbox"], view["app_version"]) == ("alice-iphone", ALICE, "1.2")
    assert view["subscription"]["status"] == "active"
    assert view["rules"]["work_start"] == "08:00"
    assert "apns-token-0001" not in answer.body
    assert devices_api.registry.calls[0][2] == Caller(subject=ALICE)


def test_put_answers_200_when_the_same_body_comes_again_or_the_rules_change(devices_api: DevicesApi) -> None:
    devices_api.call("PUT", "/v1/devices/alice-iphone", body=REGISTRATION)

    again = devices_api.call("PUT", "/v1/devices/alice-iphone", body=REGISTRATION)
    changed = devices_api.call(
        "PUT", "/v1/devices/alice-iphone", body={**REGISTRATION, "rules": {"work_hours_only": True}}
    )

    assert (again.status, changed.status) == (200, 200)
    assert changed.json()["rules"]["work_hours_only"] is True


def test_get_answers_the_device_and_404_for_an_unknown_one(devices_api: DevicesApi) -> None:
    devices_api.call("PUT", "/v1/devices/alice-iphone", body=REGISTRATION)

    found = devices_api.call("GET", "/v1/devices/alice-iphone")
    missing = devices_api.call("GET", "/v1/devices/nobody")

    assert found.status == 200
    assert found.json()["device_id"] == "alice-iphone"
    assert assert_problem(missing, 404)["type"] == "urn:ens:problem:device-not-found"


def test_delete_answers_204_without_a_body_then_404(devices_api: DevicesApi) -> None:
    devices_api.call("PUT", "/v1/devices/alice-iphone", body=REGISTRATION)

    first = devices_api.call("DELETE", "/v1/devices/alice-iphone")
    second = devices_api.call("DELETE", "/v1/devices/alice-iphone")

    assert (first.status, first.body) == (204, "")
    assert_problem(second, 404)


def test_decisions_default_to_20_and_pass_limit_and_since_to_the_registry(devices_api: DevicesApi) -> None:
    devices_api.call("PUT", "/v1/devices/alice-iphone", body=REGISTRATION)
    devices_api.registry.decisions_by_device["alice-iphone"] = [
        DecisionView(
            item_id="AAMk1",
            event_kind="NewMail",
            outcome="pushed",
            reason=None,
            rule=None,
            received_at=MOMENT,
            decided_at=MOMENT,
            latency_ms=120,
        )
    ]

    default = devices_api.call("GET", "/v1/devices/alice-iphone/decisions")
    bounded = devices_api.call(
        "GET", "/v1/devices/alice-iphone/decisions", query="limit=5&since=2026-12-01T10:30:00%2B01:00"
    )

    assert default.status == 200
    assert default.json()[0]["outcome"] == "pushed"
    assert devices_api.registry.decision_queries[0] == (20, None)
    limit, since = devices_api.registry.decision_queries[1]
    assert limit == 5
    assert since == MOMENT
    assert bounded.json()[0]["item_id"] == "AAMk1"


@pytest.mark.parametrize(
    ("query", "location"),
    [
        ("limit=0", "query.limit"),
        ("limit=101", "query.limit"),
        ("limit=ten", "query.limit"),
        ("since=yesterday", "query.since"),
        ("since=2026-12-01T10:00:00", "query.since"),
    ],
)
def test_decisions_refuse_a_limit_outside_1_to_100_or_a_since_without_offset(
    devices_api: DevicesApi, query: str, location: str
) -> None:
    answer = devices_api.call("GET", "/v1/devices/alice-iphone/decisions", query=query)

    problem = assert_problem(answer, 400)
    assert [error["location"] for error in problem["errors"]] == [location]
    assert devices_api.registry.calls == []


@pytest.mark.parametrize("device_id", ["a" * 129, "has%20space", "%2e%2e", "ü"])
def test_a_device_id_outside_the_pattern_is_not_found(devices_api: DevicesApi, device_id: str) -> None:
    answer = devices_api.call("GET", f"/v1/devices/{device_id}")

    assert_problem(answer, 404)
    assert devices_api.registry.calls == []


def test_a_body_that_is_not_json_is_a_400_naming_the_body(devices_api: DevicesApi) -> None:
    answer = devices_api.call("PUT", "/v1/devices/alice-iphone", body="{not json")

    problem = assert_problem(answer, 400)
    assert problem["errors"] == [{"location": "body", "message": "the body is not valid JSON"}]


def test_invalid_fields_are_a_400_listing_each_field_location(devices_api: DevicesApi) -> None:
    body = {
        "mailbox": "not-an-address",
        "push_token": 'has"quote',
        "surprise": 1,
        "rules": {"work_start": "25:00", "snippet_length": "100"},
    }

    answer = devices_api.call("PUT", "/v1/devices/alice-iphone", body=body)

    problem = assert_problem(answer, 400)
    locations = {error["location"] for error in problem["errors"]}
    assert locations == {
        "body.mailbox",
        "body.push_token",
        "body.surprise",
        "body.rules.work_start",
        "body.rules.snippet_length",
    }
    assert all(error["message"] for error in problem["errors"])
    assert devices_api.registry.calls == []


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
def test_a_put_body_that_is_not_declared_json_is_a_415(
    devices_api: DevicesApi, content_type: str | None
) -> None:
    answer = devices_api.call(
        "PUT",
        "/v1/devices/alice-iphone",
        body=REGISTRATION,
        headers={"Content-Type": content_type},  # type: ignore[dict-item]
    )

    assert_problem(answer, 415)
    assert devices_api.registry.calls == []


def test_a_json_body_with_a_charset_is_accepted(devices_api: DevicesApi) -> None:
    answer = devices_api.call(
        "PUT",
        "/v1/devices/alice-iphone",
        body=REGISTRATION,
        headers={"Content-Type": "application/json; charset=utf-8"},
    )

    assert answer.status == 201


def test_a_body_over_64_kib_is_a_413_before_it_is_parsed(devices_api: DevicesApi) -> None:
    body = json.dumps({**REGISTRATION, "app_version": "x" * (64 * 1024)})

    answer = devices_api.call("PUT", "/v1/devices/alice-iphone", body=body)

    assert_problem(answer, 413)
    assert devices_api.registry.calls == []


def test_another_method_on_a_device_is_a_405_naming_the_allowed_ones(devices_api: DevicesApi) -> None:
    answer = devices_api.call("PATCH", "/v1/devices/alice-iphone", body=REGISTRATION)

    assert_problem(answer, 405)
    assert answer.headers["allow"] == "DELETE, GET, PUT"


def test_an_unknown_path_under_v1_is_a_404_problem(devices_api: DevicesApi) -> None:
    assert_problem(devices_api.call("GET", "/v1/elsewhere"), 404)


def test_no_authorization_header_is_a_401_with_a_bare_bearer_challenge(devices_api: DevicesApi) -> None:
    answer = devices_api.call("GET", "/v1/devices/alice-iphone", token=None)

    assert_problem(answer, 401)
    assert answer.headers["www-authenticate"] == "Bearer"


def _other_rsa_token() -> str:
    from cryptography.hazmat.primitives.asymmetric import rsa

    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return jwt.encode(
        {
            "sub": ALICE,
            "iss": "https://idp.contoso.example/",
            "aud": "ens-devices-api",
            "exp": int(time.time()) + 60,
        },
        other,
        algorithm="RS256",
    )


ATTACKS = {
    "alg_none": lambda: unsigned_token(),
    "unconfigured_algorithm": lambda: jwt.encode(
        {
            "sub": ALICE,
            "iss": "https://idp.contoso.example/",
            "aud": "ens-devices-api",
            "exp": int(time.time()) + 60,
        },
        "an-hs512-secret-long-enough-for-sha512-" * 2,
        algorithm="HS512",
    ),
    "hs_rs_confusion": lambda: hmac_with_public_key_token(rsa_pair().public_pem),
    "wrong_key": _other_rsa_token,
    "expired": lambda: hs_token(exp=int(time.time()) - 120),
    "not_yet_valid": lambda: rs_token(nbf=int(time.time()) + 120),
    "wrong_issuer": lambda: es_token(iss="https://evil.example/"),
    "wrong_audience": lambda: hs_token(aud="another-api"),
    "missing_mailbox_claim": lambda: hs_token(sub=None),
    "unknown_kid": lambda: es_token(ec_pair("stranger")),
    "garbage": lambda: "garbage.garbage.garbage",
}


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_a_token_that_must_not_pass_is_a_401_invalid_token_and_reaches_no_registry(
    devices_api: DevicesApi, attack: str
) -> None:
    token = ATTACKS[attack]()

    answer = devices_api.call("PUT", "/v1/devices/alice-iphone", body=REGISTRATION, token=token)

    assert_problem(answer, 401)
    assert answer.headers["www-authenticate"].startswith('Bearer error="invalid_token", error_description="')
    assert devices_api.registry.calls == []
    assert token not in devices_api.output()


def test_an_auth_failure_is_counted_by_reason(devices_api: DevicesApi) -> None:
    devices_api.call("GET", "/v1/devices/alice-iphone", token=hs_token(exp=int(time.time()) - 120))

    metrics = [json.loads(line) for line in devices_api.output().splitlines() if '"_aws"' in line]
    assert any(m.get("ApiAuthFailures") and m.get("reason") == "expired" for m in metrics)


def test_a_caller_acting_for_another_mailbox_is_a_403(devices_api: DevicesApi) -> None:
    answer = devices_api.call(
        "PUT", "/v1/devices/bob-iphone", body={**REGISTRATION, "mailbox": "bob@contoso.example"}
    )

    assert assert_problem(answer, 403)["type"] == "urn:ens:problem:forbidden"


def test_a_device_of_another_mailbox_is_a_403_to_read_or_remove(devices_api: DevicesApi) -> None:
    devices_api.call("PUT", "/v1/devices/alice-iphone", body=REGISTRATION)
    bob = hs_token(sub="bob@contoso.example")

    assert_problem(devices_api.call("GET", "/v1/devices/alice-iphone", token=bob), 403)
    assert_problem(devices_api.call("DELETE", "/v1/devices/alice-iphone", token=bob), 403)


def test_a_token_with_the_admin_scope_may_act_for_any_mailbox(devices_api: DevicesApi) -> None:
    admin = rs_token(sub="helpdesk@contoso.example", scope="openid ens:admin")

    answer = devices_api.call("PUT", "/v1/devices/alice-iphone", body=REGISTRATION, token=admin)

    assert answer.status == 201
    assert devices_api.registry.calls[0][2] == Caller(subject="helpdesk@contoso.example", is_admin=True)


def test_an_exchange_refusal_an_admin_must_fix_is_a_422_naming_the_cause(devices_api: DevicesApi) -> None:
    devices_api.registry.fail_with = AdminActionRequired(
        "impersonation_denied", "the service account may not impersonate"
    )

    answer = devices_api.call("PUT", "/v1/devices/alice-iphone", body=REGISTRATION)

    problem = assert_problem(answer, 422)
    assert (problem["code"], problem["type"]) == (
        "impersonation_denied",
        "urn:ens:problem:admin-action-required",
    )


def test_a_busy_exchange_is_a_503_retrying_after_its_back_off_rounded_up(devices_api: DevicesApi) -> None:
    devices_api.registry.fail_with = ExchangeBusy("mbx1", 2.2)

    answer = devices_api.call("PUT", "/v1/devices/alice-iphone", body=REGISTRATION)

    assert_problem(answer, 503)
    assert answer.headers["retry-after"] == "3"


def test_an_unavailable_dependency_is_a_503_retrying_after_30_seconds(devices_api: DevicesApi) -> None:
    devices_api.registry.fail_with = DependencyUnavailable("DynamoDB timed out")

    answer = devices_api.call("GET", "/v1/devices/alice-iphone")

    assert_problem(answer, 503)
    assert answer.headers["retry-after"] == "30"


def test_an_unexpected_error_is_a_500_without_its_message_or_a_traceback_anywhere(
    devices_api: DevicesApi,
) -> None:
    devices_api.registry.fail_with = RuntimeError("Subject: quarterly figures (confidential)")

    answer = devices_api.call("GET", "/v1/devices/alice-iphone")

    assert_problem(answer, 500)
    output = devices_api.output()
    assert "quarterly figures" not in answer.body + output
    assert "Traceback" not in output
    assert '"error":"RuntimeError"' in output.replace(" ", "")


def test_an_unusable_key_secret_is_a_503_not_a_401(
    devices_api: DevicesApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JWT_KEY_SECRET", "ens-test/no-such-secret")
    devices_api.function.module._current.cache_clear()  # a new container reads the new setting

    answer = devices_api.call("GET", "/v1/devices/alice-iphone")

    assert_problem(answer, 503)
    assert answer.headers["retry-after"] == "30"


def test_each_request_logs_one_line_without_the_token(devices_api: DevicesApi) -> None:
    token = hs_token()

    devices_api.call("PUT", "/v1/devices/alice-iphone", body=REGISTRATION, token=token)
    devices_api.call("GET", "/v1/devices/alice-iphone", token=token)

    output = devices_api.output()
    lines = [json.loads(line) for line in output.splitlines() if '"devices api request"' in line]
    assert [(line["method"], line["route"], line["status"]) for line in lines] == [
        ("PUT", "/v1/devices/{deviceId}", 201),
        ("GET", "/v1/devices/{deviceId}", 200),
    ]
    assert lines[0]["caller"] == ALICE
    assert token not in output
    assert "apns-token-0001" not in output
    metrics = [json.loads(line) for line in output.splitlines() if '"_aws"' in line]
    assert any(m.get("DeviceRegistrations") for m in metrics)

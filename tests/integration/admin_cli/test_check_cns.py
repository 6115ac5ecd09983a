"""check-cns against the push sink (the local CNS): the token's expiry and a probe that pushes nothing."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from push_sink import PushSink, mint_token
from support.push_sink_fixtures import PUSH_SINK_TOKEN

from .conftest import AdminTarget

pytestmark = pytest.mark.integration


def test_check_cns_reports_the_expiry_and_reaches_cns_without_pushing(
    admin: AdminTarget, push_sink: PushSink
) -> None:
    admin.set_cns_token(PUSH_SINK_TOKEN)

    run = admin.run(
        "--json", "check-cns", "--cns-url", push_sink.url, "--ca-bundle", push_sink.ca_bundle_path or ""
    )

    result = run.json()
    assert run.code == 0, run.out
    token = result["steps"][0]
    assert token["name"] == "token"
    assert 364 < token["days_left"] <= 365
    assert [step["name"] for step in result["steps"]] == ["token", "dns", "tcp", "tls", "http"]
    assert "CNS is reachable (nothing was pushed)" in result["steps"][-1]["detail"]
    assert push_sink.pushes() == []
    assert push_sink.attempts() == []


def test_check_cns_takes_the_cns_url_from_the_settings_file(
    admin: AdminTarget, push_sink: PushSink, tmp_path: Path
) -> None:
    admin.set_cns_token(PUSH_SINK_TOKEN)
    target = admin.with_environment(tmp_path / "with-cns.toml", CNS_URL=push_sink.url)

    run = target.run("check-cns", "--ca-bundle", push_sink.ca_bundle_path or "")

    assert run.code == 0, run.out
    assert f"HEAD {push_sink.base_url.rstrip('/')}/ answered HTTP" in run.out


def test_check_cns_fails_when_the_token_has_expired(admin: AdminTarget, push_sink: PushSink) -> None:
    admin.set_cns_token(mint_token(timedelta(days=-1)))

    run = admin.run("check-cns", "--cns-url", push_sink.url, "--ca-bundle", push_sink.ca_bundle_path or "")

    assert run.code == 1
    assert "the CNS token expired at" in run.out
    assert "result: FAILED (token_expired)" in run.out


def test_check_cns_warns_when_the_token_expires_within_two_weeks(
    admin: AdminTarget, push_sink: PushSink
) -> None:
    admin.set_cns_token(mint_token(timedelta(days=3)))

    run = admin.run("check-cns", "--cns-url", push_sink.url, "--ca-bundle", push_sink.ca_bundle_path or "")

    assert run.code == 0
    assert "less than 14 days: renew it soon" in run.out


def test_check_cns_says_tls_when_cns_is_not_trusted(admin: AdminTarget, push_sink: PushSink) -> None:
    admin.set_cns_token(PUSH_SINK_TOKEN)

    run = admin.run("--json", "check-cns", "--cns-url", push_sink.url)

    assert run.code == 1
    assert run.json()["failure"] == "tls"
    assert push_sink.attempts() == []

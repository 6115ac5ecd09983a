"""The webhook's cold start is part of Exchange's wait: keep heavy modules out of its import."""

import json
import subprocess
import sys

import pytest

from support.cold_start import webhook_cold_start_environment

pytestmark = pytest.mark.unit


def modules_after_importing_the_webhook() -> set[str]:
    environment = webhook_cold_start_environment()
    script = "import json, sys, app; print(json.dumps(sorted(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", script],
        env=environment,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return set(json.loads(result.stdout))


def test_webhook_import_loads_neither_exchangelib_nor_xray() -> None:
    modules = modules_after_importing_the_webhook()

    assert "app" in modules
    assert "ens.services.webhook" in modules
    assert not {name for name in modules if name.split(".")[0] in {"exchangelib", "aws_xray_sdk", "pydantic"}}


def test_webhook_refuses_to_start_without_its_settings() -> None:
    environment = webhook_cold_start_environment()
    del environment["SUBSCRIPTIONS_TABLE"]

    result = subprocess.run(
        [sys.executable, "-c", "import app"], env=environment, capture_output=True, text=True, timeout=60
    )

    assert result.returncode != 0
    assert "SUBSCRIPTIONS_TABLE is not set" in result.stderr

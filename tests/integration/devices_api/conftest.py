"""The devices API's handler, cold-started from template.yaml over local AWS, with a fake registry."""

from __future__ import annotations

import io
import json
import sys
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import pytest

from ens_local.api_gateway import build_rest_proxy_event
from ens_local.functions import LoadedFunction
from support.fake_registry import FakeRegistry
from support.jwt_keys import AUDIENCE, ISSUER, hs_token, key_secret

DEVICE_ROUTE = "/v1/devices/{deviceId}"
DECISIONS_ROUTE = "/v1/devices/{deviceId}/decisions"


@dataclass
class Answer:
    status: int
    headers: dict[str, str]  # names lower-cased
    body: str

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class DevicesApi:
    function: LoadedFunction
    registry: FakeRegistry
    output: Callable[[], str]  # everything the function logged and printed so far

    def call(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        token: str | None = "default",  # noqa: S107 (a marker: mint a valid token)
        headers: Mapping[str, str] | None = None,
        query: str = "",
    ) -> Answer:
        sent = {"Content-Type": "application/json"}
        if token == "default":
            token = hs_token()
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        sent.update(headers or {})
        raw = body if isinstance(body, str | bytes) or body is None else json.dumps(body)
        parts = path.split("/")
        route = DECISIONS_ROUTE if path.endswith("/decisions") else DEVICE_ROUTE
        if len(parts) < 4 or not path.startswith("/v1/devices/"):
            route = "/v1/{proxy+}"
        event = build_rest_proxy_event(
            method,
            path,
            route,
            headers={k: v for k, v in sent.items() if v is not None},
            body=raw,
            query=query,
            path_parameters={"deviceId": parts[3]} if route != "/v1/{proxy+}" else {"proxy": path[4:]},
        )
        result = self.function.invoke(event)
        merged = {k.lower(): str(v) for k, v in (result.get("headers") or {}).items()}
        for name, values in (result.get("multiValueHeaders") or {}).items():
            merged[name.lower()] = ", ".join(str(v) for v in values)
        return Answer(result["statusCode"], merged, result.get("body") or "")


@pytest.fixture
def devices_api(
    provision_stack: Any,
    load_lambda: Callable[[str], LoadedFunction],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> Iterator[DevicesApi]:
    prefix = f"ens-test/{uuid.uuid4().hex[:8]}"
    stack = provision_stack(
        environment={
            "JWT_ISSUER": ISSUER,
            "JWT_AUDIENCE": AUDIENCE,
            "JWT_ALGORITHMS": "HS256,RS256,ES256",
            "JWT_KEY_SECRET": f"{prefix}/jwt-keys",
            "EXCHANGE_SERVERS_SECRET": f"{prefix}/exchange-servers",
            "WEBHOOK_BASE_URL": "http://127.0.0.1:9/ews/notifications/",
        }
    )
    secrets = stack.aws.client("secretsmanager")
    secrets.create_secret(Name=f"{prefix}/jwt-keys", SecretString=key_secret())
    secrets.create_secret(Name=f"{prefix}/exchange-servers", SecretString='{"servers": []}')
    function = load_lambda("DevicesFunction")
    registry = FakeRegistry()
    monkeypatch.setattr(function.module, "build_registry", lambda settings, servers: registry)
    # Powertools' Logger keeps the stream it was first created with: point it at a buffer.
    handler = function.module.logger.registered_handler
    previous, buffer = handler.stream, io.StringIO()
    handler.stream = buffer
    capsys.readouterr()
    yield DevicesApi(function, registry, lambda: buffer.getvalue() + capsys.readouterr().out)
    handler.stream = sys.__stdout__ if getattr(previous, "closed", False) else previous

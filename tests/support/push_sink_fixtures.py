"""pytest plugin: the push sink, the local stand-in for the Cloud Notification Service (CNS).

Register it in a conftest.py (tests/conftest.py: pytest_plugins = ["support.push_sink_fixtures"]):

- push_sink_server (session): one PushSink over HTTPS on a free loopback port, accepting PUSH_SINK_TOKEN.
- push_sink: that sink, reset (no pushes, attempts, faults or device marks) before each test.
- cns_headers(token=PUSH_SINK_TOKEN): the headers ENS sends with a push.
- sample_payload(**changes): a valid push payload, with top-level keys replaced by `changes`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from push_sink import PushSink, mint_token

PUSH_SINK_TOKEN = mint_token()
DEVICE = "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90"


def cns_headers(token: str = PUSH_SINK_TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}


def sample_payload(**changes: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "device_token": DEVICE,
        "mailbox": "alice@contoso.example",
        "kind": "summary",
        "push_type": "alert",
        "priority": 10,
        "collapse_id": "alice-mail-1",
        "aps": {
            "alert": {
                "title": "Board meeting moved",
                "subtitle": "ceo@contoso.example",
                "body": "Now at 3pm.",
            },
            "badge": 1,
            "sound": "default",
            "thread-id": "alice@contoso.example",
            "mutable-content": 1,
        },
        "mail": {"item_id": "AAMk-1", "from": "ceo@contoso.example"},
    }
    payload.update(changes)
    return payload


@pytest.fixture(scope="session")
def push_sink_server() -> Iterator[PushSink]:
    sink = PushSink(host="127.0.0.1", port=0, tokens=[PUSH_SINK_TOKEN]).start()
    try:
        yield sink
    finally:
        sink.stop()


@pytest.fixture
def push_sink(push_sink_server: PushSink) -> PushSink:
    push_sink_server.reset()
    return push_sink_server

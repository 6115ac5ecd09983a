"""pytest plugin: the Exchange simulator, a push callback listener, exchangelib accounts, and a schema guard.

Register it once in tests/conftest.py:  pytest_plugins = ["support.simulator_fixtures"]

`ews_schema_guard` is autouse: every SOAP body any ExchangeSimulator produces during a test (responses,
SOAP faults, and the SendNotification callbacks it POSTs) goes through `support.ews_schema.assert_valid_ews`,
and the test errors if one fails. For a fault that means its SOAP 1.1 shape and the EWS parts of its detail
the schema can check (e:ResponseCode's value, t:MessageXml's t:Value); `assert_valid_ews` lists exactly
what is and is not checked. Tests that never start a simulator pay nothing.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

import pytest

from support.ews_schema import assert_valid_ews

if TYPE_CHECKING:
    from exchangelib import Account

    from exchange_simulator import ExchangeSimulator

DEMO_SERVICE_ACCOUNT = "svc-ens@contoso.example"
DEMO_NO_IMPERSONATION_ACCOUNT = "svc-readonly@contoso.example"
DEMO_PASSWORD = "Simulated-Exchange-2016"
DEMO_MAILBOX = "alice@contoso.example"


@pytest.fixture(autouse=True)
def ews_schema_guard() -> Iterator[list[tuple[str, str]]]:
    """Fail the test if any simulator produced a body that Microsoft's EWS schema rejects."""
    from exchange_simulator import GLOBAL_BODY_OBSERVERS

    invalid: list[tuple[str, str]] = []

    def validate(body: bytes, kind: str) -> None:
        try:
            assert_valid_ews(body)
        except AssertionError as e:  # observers run on server threads: collect, report in teardown
            invalid.append((kind, str(e)))

    GLOBAL_BODY_OBSERVERS.append(validate)
    try:
        yield invalid
    finally:
        GLOBAL_BODY_OBSERVERS.remove(validate)
    if invalid:
        details = "\n".join(f"{kind}: {error}" for kind, error in invalid[:5])
        pytest.fail(
            f"{len(invalid)} simulator bodies failed EWS schema validation:\n{details}", pytrace=False
        )


@pytest.fixture
def simulator_settings() -> dict[str, Any]:
    """Override in a test module to change how `exchange_simulator` is built."""
    return {"clock": "manual", "dispatch": "manual"}


@pytest.fixture
def exchange_simulator(simulator_settings: dict[str, Any]) -> Iterator[ExchangeSimulator]:
    """A started simulator with the demo organisation; by default a manual clock and manual dispatch,
    so tests say when time passes (`sim.clock.advance`) and when callbacks go out (`sim.run_due_work`)."""
    from exchange_simulator import ExchangeSimulator

    sim = ExchangeSimulator(host="127.0.0.1", port=0, settings=simulator_settings)
    sim.start()
    sim.load_demo()
    try:
        yield sim
    finally:
        sim.stop()


@dataclass
class ReceivedCallback:
    body: bytes
    path: str
    headers: dict[str, str]


@dataclass
class CallbackListener:
    """A push notification endpoint on 127.0.0.1 that answers the way a test tells it to."""

    url: str
    received: list[ReceivedCallback] = field(default_factory=list)
    # What to answer: "OK", "Unsubscribe", or an HTTP status code to fail with.
    reply: str | int = "OK"
    _condition: threading.Condition = field(default_factory=threading.Condition)

    def record(self, callback: ReceivedCallback) -> str | int:
        with self._condition:
            self.received.append(callback)
            self._condition.notify_all()
            return self.reply

    def wait_for(self, count: int, timeout: float = 5.0) -> list[ReceivedCallback]:
        with self._condition:
            if not self._condition.wait_for(lambda: len(self.received) >= count, timeout=timeout):
                raise AssertionError(
                    f"expected {count} callbacks within {timeout}s, got {len(self.received)}"
                )
            return list(self.received)

    def notifications(self) -> list[Any]:
        """Every received body, parsed by exchangelib's own SendNotification parser."""
        return [parse_notification(callback.body) for callback in list(self.received)]


def parse_notification(body: bytes) -> Any:
    from exchangelib.services import SendNotification

    notifications = list(SendNotification(protocol=None).parse(body))
    assert len(notifications) == 1, notifications
    return notifications[0]


def _reply_body(status: str) -> bytes:
    from exchangelib.services import SendNotification

    service = SendNotification(protocol=None)
    payload = service.ok_payload() if status == "OK" else service.unsubscribe_payload()
    return payload if isinstance(payload, bytes) else payload.encode()


@pytest.fixture
def callback_listener() -> Iterator[CallbackListener]:
    listener = CallbackListener(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            reply = listener.record(ReceivedCallback(body, self.path, dict(self.headers.items())))
            if isinstance(reply, int):
                content, status = b"callback failing on purpose", reply
            else:
                content, status = _reply_body(reply), 200
            self.send_response(status)
            self.send_header("Content-Type", "text/xml; charset=utf-8")
            self.send_header("Content-Length", str(len(content)))
            self.end_headers()
            self.wfile.write(content)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    listener.url = f"http://127.0.0.1:{server.server_address[1]}/ens/notifications"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield listener
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def preview_field() -> None:
    """exchangelib has no item:Preview field: register ENS's own, the one the consumer uses.

    Registered once per process and never removed, since the consumer's adapter relies on it too.
    """
    from ens.adapters.exchange import ensure_preview_field

    ensure_preview_field()


AccountFactory = Callable[..., "Account"]


@pytest.fixture
def ews_account(exchange_simulator: ExchangeSimulator) -> Iterator[AccountFactory]:
    """Build exchangelib Accounts against the simulator: impersonation, pinned version and auth, no
    autodiscover. Defaults to the demo service account, Basic auth, and fail-fast retries."""
    from exchangelib import BASIC, IMPERSONATION, Account, Configuration, Credentials, FailFast, Version
    from exchangelib.protocol import close_connections
    from exchangelib.version import EXCHANGE_2016

    def build(
        mailbox: str = DEMO_MAILBOX,
        *,
        username: str = DEMO_SERVICE_ACCOUNT,
        password: str = DEMO_PASSWORD,
        auth_type: str = BASIC,
        retry_policy: Any = None,
        build_version: Any = EXCHANGE_2016,
    ) -> Account:
        credentials = Credentials(username=username, password=password)
        config = Configuration(
            service_endpoint=exchange_simulator.ews_url,
            credentials=credentials,
            auth_type=auth_type,
            version=Version(build=build_version),
            retry_policy=retry_policy or FailFast(),
            max_connections=4,
        )
        return Account(
            primary_smtp_address=mailbox,
            credentials=credentials,
            autodiscover=False,
            config=config,
            access_type=IMPERSONATION,
        )

    try:
        yield build
    finally:
        # exchangelib caches protocols (and their pooled connections) per endpoint; a later simulator
        # may get the same port, so leave nothing behind.
        close_connections()

"""ExchangeSimulator: the EWS endpoint, the control API and the push dispatcher behind one HTTP server."""

from __future__ import annotations

import contextlib
import json
import logging
import secrets
import socket
import struct
import threading
import time
import tomllib
from array import array
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any, cast
from urllib.parse import parse_qs, urlsplit

from lxml import etree
from pydantic import ValidationError

from exchange_simulator import soap
from exchange_simulator.auth import Accounts, NtlmConnection, ServiceAccount
from exchange_simulator.clock import Clock, ManualClock, SystemClock
from exchange_simulator.ews import CallContext, EwsEndpoint, EwsFault, parse_request
from exchange_simulator.faults import FaultInjector
from exchange_simulator.inputs import (
    ContactSpec,
    Delivery,
    DemoOrganisation,
    ExchangeSimulatorSettings,
    explain,
)
from exchange_simulator.model import BodyType, Contact, Importance, Mailbox, Message, Store
from exchange_simulator.push import DeliveryAttempt, PushEngine
from tooling_http import base_url as loopback_url

log = logging.getLogger(__name__)

EWS_PATH = "/EWS/Exchange.asmx"
CONTROL_PREFIX = "/_sim"
MAX_REQUEST_BYTES = 10 * 1024 * 1024
REQUEST_LOG_LENGTH = 1000
NO_OPERATION = "(none)"  # what the request counts call a body that named no EWS operation
NO_MAILBOX = "(none)"

# Anything that sees a body the simulator produced: (body, what it is, e.g. "GetItem" or "SendNotification").
BodyObserver = Callable[[bytes, str], None]

# Observers every simulator in the process reports to (the test suite's schema check registers here).
GLOBAL_BODY_OBSERVERS: list[BodyObserver] = []

DEFAULT_SETTINGS: dict[str, Any] = ExchangeSimulatorSettings().model_dump(mode="json")


@dataclass(frozen=True)
class RequestRecord:
    """One EWS call as the simulator saw it, for tests and GET /_sim/requests."""

    seq: int  # 1, 2, 3, ... in arrival order over the simulator's life: `since` points for the request log
    at: datetime
    operation: str | None
    account: str | None
    impersonated: str | None
    anchor_mailbox: str | None
    http_status: int
    response_code: str
    # time.monotonic() when the request arrived. `at` is protocol time, which stands still under a manual
    # clock; this measures real gaps between calls, such as how long a client backed off after ErrorServerBusy.
    received_monotonic: float

    @property
    def mailbox(self) -> str | None:
        """The mailbox the call was for: the impersonated one, else X-AnchorMailbox (a call refused before
        impersonation was looked at, such as an injected ErrorServerBusy, still names its mailbox there)."""
        mailbox = self.impersonated or self.anchor_mailbox
        return mailbox.lower() if mailbox else None

    def describe(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "at": self.at.isoformat(),
            "operation": self.operation,
            "account": self.account,
            "impersonated": self.impersonated,
            "anchor_mailbox": self.anchor_mailbox,
            "http_status": self.http_status,
            "response_code": self.response_code,
        }


class ExchangeSimulator:
    """A simulated on-premises Exchange 2016/2019 EWS endpoint.

    >>> sim = ExchangeSimulator(port=0)
    >>> sim.start(); sim.load_demo()
    >>> sim.ews_url  # point exchangelib's Configuration(service_endpoint=...) here
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        settings: Mapping[str, Any] | None = None,
        *,
        clock: Clock | None = None,
    ) -> None:
        try:
            self.settings = ExchangeSimulatorSettings.model_validate(dict(settings or {}))
        except ValidationError as e:
            # Whoever reads this is editing a TOML table or a dict literal: one line naming the keys.
            raise ValueError(f"invalid settings: {explain(e)}") from e
        if clock is None:
            clock = (
                ManualClock() if self.settings.clock == "manual" else SystemClock(self.settings.time_scale)
            )
        self.clock = clock
        self.lock = threading.RLock()
        self.store = Store(store_number=secrets.randbits(31))
        self.accounts = Accounts()
        self.faults = FaultInjector(seed=self.settings.fault_seed)
        self.observers: list[BodyObserver] = []
        # The last REQUEST_LOG_LENGTH calls in full; every call ever as an index into _request_keys, four
        # bytes each, so a benchmark's counts stay exact however many calls it makes.
        self.requests: deque[RequestRecord] = deque(maxlen=REQUEST_LOG_LENGTH)
        self._request_keys: list[tuple[str, str]] = []
        self._request_key_index: dict[tuple[str, str], int] = {}
        self._request_log = array("I")
        self.push = PushEngine(
            store=self.store,
            clock=self.clock,
            lock=self.lock,
            emit=self._emit,
            server_version=self.settings.server_version_info,
            max_events_per_notification=self.settings.max_events_per_notification,
            callback_timeout=self.settings.callback_timeout_seconds,
        )
        self.ews = EwsEndpoint(store=self.store, clock=self.clock, push=self.push)
        self.clock.on_advance(self.push.poke)
        self._host = host
        self._port = port
        self._server: ThreadingHTTPServer | None = None
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()

    # -- lifecycle ---------------------------------------------------------------------------------------
    def start(self) -> ExchangeSimulator:
        if self._server is not None:
            raise RuntimeError("simulator already started")
        if self._host not in ("127.0.0.1", "::1", "localhost"):
            # Tooling with demo credentials has no business listening beyond this machine.
            raise ValueError(f"the simulator only listens on loopback, not {self._host}")
        server = _Server((self._host, self._port), _Handler)
        server.simulator = self
        self._server = server
        # A short poll interval keeps stop() quick; serve_forever only checks for shutdown between polls.
        serving = threading.Thread(
            target=server.serve_forever, args=(0.05,), name="exchange-simulator-http", daemon=True
        )
        serving.start()
        self._threads.append(serving)
        if self.settings.dispatch == "background":
            dispatcher = threading.Thread(
                target=self.push.serve_forever,
                args=(self._stopping,),
                name="exchange-simulator-push",
                daemon=True,
            )
            dispatcher.start()
            self._threads.append(dispatcher)
        log.info("Exchange simulator listening on %s", self.ews_url)
        return self

    def stop(self) -> None:
        self._stopping.set()
        self.push.poke()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)
        self._threads.clear()
        self._server = None

    def __enter__(self) -> ExchangeSimulator:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("simulator not started")
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        return loopback_url("http", self._host, self.port)

    @property
    def ews_url(self) -> str:
        return self.base_url + EWS_PATH

    @property
    def control_url(self) -> str:
        return self.base_url + CONTROL_PREFIX

    # -- directory ---------------------------------------------------------------------------------------
    def add_mailbox(self, address: str, display_name: str | None = None) -> Mailbox:
        with self.lock:
            return self.store.add_mailbox(address, display_name, self.clock.now())

    def add_service_account(
        self, username: str, password: str, *, can_impersonate: bool = True, domain: str | None = None
    ) -> ServiceAccount:
        account = ServiceAccount(username, password, can_impersonate)
        if domain:
            account.domain = domain
        with self.lock:
            return self.accounts.add(account)

    def load_demo(self, path: Path | str | None = None) -> dict[str, Any]:
        """Create the demo organisation (see demo.toml) and return what was created."""
        source = Path(path) if path else self.settings.demo_file
        text = (
            source.read_text(encoding="utf-8")
            if source
            else resources.files("exchange_simulator").joinpath("demo.toml").read_text(encoding="utf-8")
        )
        demo = tomllib.loads(text)
        organisation = DemoOrganisation.model_validate(demo)
        for account in organisation.service_accounts:
            self.add_service_account(**account.model_dump())
        for mailbox in organisation.mailboxes:
            self.add_mailbox(mailbox.address, mailbox.display_name)
            for delivery in mailbox.messages:
                self.deliver_message(mailbox.address, delivery)
            for contact in mailbox.contacts:
                self.add_contact(mailbox.address, contact)
        return demo

    # -- mail --------------------------------------------------------------------------------------------
    def deliver(
        self,
        mailbox: str,
        *,
        subject: str = "",
        body: str = "",
        body_type: BodyType = "Text",
        importance: Importance = "Normal",
        received: datetime | str | None = None,
        folder: str = "inbox",
        internet_message_id: str | None = None,
        is_read: bool = False,
        **sender: Any,
    ) -> Message:
        """Deliver a message as if it came in over SMTP; raises CreatedEvent, NewMailEvent, ModifiedEvent.

        The sender is from_="Name <address>" (or sender=..., or a {"name", "address"} dict); a bad value
        raises pydantic's ValidationError (a ValueError).
        """
        delivery = Delivery.model_validate(
            {
                **sender,
                "subject": subject,
                "body": body,
                "body_type": body_type,
                "importance": importance,
                "received": received,
                "folder": folder,
                "internet_message_id": internet_message_id,
                "is_read": is_read,
            }
        )
        return self.deliver_message(mailbox, delivery)

    def deliver_message(self, mailbox: str, delivery: Delivery) -> Message:
        """`deliver` for an already validated delivery (the control API, the demo file)."""
        with self.lock:
            box = self.store.mailbox(mailbox)
            message = self.store.deliver(
                box,
                self.clock.now(),
                sender=delivery.sender,
                subject=delivery.subject,
                body=delivery.body,
                body_type=delivery.body_type,
                importance=delivery.importance,
                received=delivery.received,
                folder=self.store.resolve_folder(box, delivery.folder),
                internet_message_id=delivery.internet_message_id,
            )
            if delivery.is_read:
                self.store.set_read(box, message, True, self.clock.now())
        self.push.poke()
        return message

    def mark_read(self, mailbox: str, message: str | int, is_read: bool = True) -> Message:
        with self.lock:
            box = self.store.mailbox(mailbox)
            found = self.store.message(box, message)
            self.store.set_read(box, found, is_read, self.clock.now())
        self.push.poke()
        return found

    def move(self, mailbox: str, message: str | int, folder: str) -> Message:
        with self.lock:
            box = self.store.mailbox(mailbox)
            moved = self.store.move(
                box,
                self.store.message(box, message),
                self.store.resolve_folder(box, folder),
                self.clock.now(),
            )
        self.push.poke()
        return moved

    def delete(self, mailbox: str, message: str | int) -> None:
        with self.lock:
            box = self.store.mailbox(mailbox)
            self.store.delete(box, self.store.message(box, message), self.clock.now())
        self.push.poke()

    def item_id(self, mailbox: str, item: Message | Contact | int) -> str:
        with self.lock:
            box = self.store.mailbox(mailbox)
            return self.store.item_id(box, item if isinstance(item, int) else item.number)

    # -- contacts ----------------------------------------------------------------------------------------
    def add_contact(self, mailbox: str, contact: ContactSpec | None = None, **fields: Any) -> Contact:
        """A contact in the mailbox's Contacts folder: add_contact(mailbox, display_name=..., email=... or
        emails=[...], categories=[...]), or a ContactSpec. A bad value raises pydantic's ValidationError."""
        spec = contact if contact is not None else ContactSpec.model_validate(fields)
        with self.lock:
            return self.store.add_contact(
                self.store.mailbox(mailbox),
                display_name=spec.display_name,
                emails=spec.addresses,
                categories=list(spec.categories),
            )

    def contacts(self, mailbox: str) -> list[Contact]:
        with self.lock:
            return list(self.store.mailbox(mailbox).contacts.values())

    def remove_contact(self, mailbox: str, contact: str | int) -> None:
        with self.lock:
            box = self.store.mailbox(mailbox)
            self.store.remove_contact(box, self.store.contact(box, contact))

    def watermark(self, mailbox: str) -> str:
        """The mailbox's current watermark (what a fresh subscription would return)."""
        with self.lock:
            box = self.store.mailbox(mailbox)
            return self.store.watermark(box, box.head_seq)

    # -- push and faults ---------------------------------------------------------------------------------
    def run_due_work(self) -> list[DeliveryAttempt]:
        """Make every callback due at the current protocol time now, in this thread (dispatch='manual')."""
        return self.push.run_due_work()

    def pause_push(self) -> None:
        with self.lock:
            self.push.paused = True

    def resume_push(self) -> None:
        with self.lock:
            self.push.paused = False
        self.push.poke()

    def expire_watermarks(self, mailbox: str) -> None:
        """Every watermark issued for the mailbox so far becomes ErrorInvalidWatermark."""
        with self.lock:
            box = self.store.mailbox(mailbox)
            box.expired_before_seq = box.head_seq + 1

    def subscriptions(self) -> list[dict[str, Any]]:
        with self.lock:
            return [subscription.describe() for subscription in self.push.subscriptions.values()]

    def deliveries(self) -> list[DeliveryAttempt]:
        with self.lock:
            return list(self.push.deliveries)

    # -- bodies ------------------------------------------------------------------------------------------
    def _emit(self, body: bytes, kind: str) -> None:
        for observer in [*GLOBAL_BODY_OBSERVERS, *self.observers]:
            observer(body, kind)

    # -- EWS over HTTP -----------------------------------------------------------------------------------
    def handle_ews(
        self, body: bytes, account: ServiceAccount, anchor_mailbox: str | None
    ) -> tuple[int, bytes | None, str | None]:
        """Return (HTTP status, response body, operation); a None body means: reset the connection."""
        received = time.monotonic()
        operation: str | None = None
        impersonated: str | None = None
        try:
            parsed = parse_request(body)
            self.ews.check_operation(parsed)
            operation = parsed.operation
            decision = self.faults.decide(operation)
            if decision.latency_ms:
                time.sleep(decision.latency_ms / 1000)  # real latency is the point of this fault
            if decision.connection_reset:
                self._record(operation, account, None, anchor_mailbox, 0, "ConnectionReset", received)
                return 0, None, operation
            if decision.server_busy_back_off_ms is not None:
                raise EwsFault(
                    "ErrorServerBusy",
                    "The server cannot service this request right now. Try again later.",
                    back_off_ms=decision.server_busy_back_off_ms,
                )
            with self.lock:
                context: CallContext = self.ews.resolve_target(parsed, account)
                impersonated = context.mailbox.address if context.impersonated else None
                content = self.ews.call(parsed, context)
            status = 200
        except EwsFault as e:
            content = soap.fault(e.code, e.text, back_off_ms=e.back_off_ms)
            status = 500
        except Exception:  # a simulator bug must still answer like a server, not hang up
            log.exception("EWS request failed inside the simulator")
            content = soap.fault("ErrorInternalServerError", "An internal server error occurred.")
            status = 500
        response = soap.envelope(self.settings.server_version_info, content)
        self._emit(response, operation or "Fault")
        self._record(
            operation, account, impersonated, anchor_mailbox, status, _response_code(content), received
        )
        return status, response, operation

    def _record(
        self,
        operation: str | None,
        account: ServiceAccount | None,
        impersonated: str | None,
        anchor: str | None,
        status: int,
        code: str,
        received: float,
    ) -> None:
        with self.lock:
            record = RequestRecord(
                seq=len(self._request_log) + 1,
                at=self.clock.now(),
                operation=operation,
                account=account.username if account else None,
                impersonated=impersonated,
                anchor_mailbox=anchor,
                http_status=status,
                response_code=code,
                received_monotonic=received,
            )
            self.requests.append(record)
            key = (operation or NO_OPERATION, record.mailbox or NO_MAILBOX)
            if key not in self._request_key_index:
                self._request_key_index[key] = len(self._request_keys)
                self._request_keys.append(key)
            self._request_log.append(self._request_key_index[key])

    @property
    def last_request_seq(self) -> int:
        """The seq of the newest EWS call (0 before the first): pass it as `since` to count what follows."""
        with self.lock:
            return len(self._request_log)

    def request_counts(self, since: int = 0) -> dict[str, Any]:
        """EWS calls after `since` (a seq), by operation, by mailbox and by both; exact for any `since`."""
        with self.lock:
            pairs = Counter(self._request_keys[index] for index in self._request_log[since:])
            until = len(self._request_log)
        by_operation: Counter[str] = Counter()
        by_mailbox: Counter[str] = Counter()
        by_mailbox_and_operation: dict[str, dict[str, int]] = {}
        for (operation, mailbox), count in sorted(pairs.items()):
            by_operation[operation] += count
            by_mailbox[mailbox] += count
            by_mailbox_and_operation.setdefault(mailbox, {})[operation] = count
        return {
            "since": since,
            "until": until,
            "total": sum(pairs.values()),
            "by_operation": dict(sorted(by_operation.items())),
            "by_mailbox": dict(sorted(by_mailbox.items())),
            "by_mailbox_and_operation": by_mailbox_and_operation,
        }


def _response_code(content: etree._Element) -> str:
    # An element path selects elements; lxml-stubs type xpath() as any XPath result.
    codes = cast(list[etree._Element], content.xpath(".//*[local-name()='ResponseCode']"))
    values = sorted({code.text for code in codes if code.text})
    return ",".join(values) or "NoError"


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # exchangelib keeps pooled keep-alive connections open; never wait for them when stopping.
    block_on_close = False
    simulator: ExchangeSimulator


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: NTLM authenticates a connection, not a request
    server_version = "Microsoft-IIS/10.0"
    sys_version = ""
    timeout = 120  # idle keep-alive connections are closed eventually
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.ntlm = NtlmConnection(self.server.simulator.accounts)
        self._reset = False

    def finish(self) -> None:
        if self._reset:
            return
        with contextlib.suppress(OSError):  # the client hung up first
            super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    @property
    def sim(self) -> ExchangeSimulator:
        return self.server.simulator

    # -- plumbing ----------------------------------------------------------------------------------------
    def _read_body(self) -> bytes | None:
        length_header = self.headers.get("Content-Length")
        if length_header is None:
            return b""
        try:
            length = int(length_header)
        except ValueError:
            return None
        if length < 0 or length > MAX_REQUEST_BYTES:
            return None
        return self.rfile.read(length)

    def _send(self, status: int, body: bytes, content_type: str, headers: list[tuple[str, str]] = ()) -> None:  # type: ignore[assignment]
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-FEServer", "EXCH01")
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _send_json(self, status: int, payload: Any) -> None:
        self._send(status, json.dumps(payload, indent=1).encode(), "application/json; charset=utf-8")

    def _reset_connection(self) -> None:
        # SO_LINGER 0 makes close() send an RST: the client sees "connection reset by peer".
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.connection.close()
        self.close_connection = True
        self._reset = True

    # -- verbs -------------------------------------------------------------------------------------------
    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        body = self._read_body()
        if body is None:
            self._send(413, b"request too large or malformed Content-Length", "text/plain")
            self.close_connection = True
            return
        if url.path.lower() == EWS_PATH.lower():
            if method != "POST":
                self._send(405, b"EWS takes SOAP requests by POST", "text/plain", [("Allow", "POST")])
                return
            self._ews(body)
            return
        if url.path.startswith(CONTROL_PREFIX + "/") or url.path == CONTROL_PREFIX:
            from exchange_simulator.control import handle_control

            status, payload = handle_control(
                self.sim, method, url.path[len(CONTROL_PREFIX) :], parse_qs(url.query), body
            )
            self._send_json(status, payload)
            return
        self._send(404, b"Not Found", "text/plain")

    def _ews(self, body: bytes) -> None:
        account = self._authenticate()
        if account is None:
            return
        status, response, _ = self.sim.handle_ews(body, account, self.headers.get("X-AnchorMailbox"))
        if response is None:
            self._reset_connection()
            return
        self._send(status, response, "text/xml; charset=utf-8")

    def _authenticate(self) -> ServiceAccount | None:
        auth = self.sim.settings.auth
        authorization = self.headers.get("Authorization", "")
        scheme, _, token = authorization.partition(" ")
        scheme = scheme.lower()
        if scheme == "basic" and "basic" in auth:
            with self.sim.lock:
                account = self.sim.accounts.basic(authorization)
            if account is not None:
                return account
        elif scheme in ("ntlm", "negotiate") and "ntlm" in auth:
            with self.sim.lock:
                challenge, account = self.ntlm.step(token)
            if challenge is not None:
                self._unauthorized(
                    [("WWW-Authenticate", f"{'NTLM' if scheme == 'ntlm' else 'Negotiate'} {challenge}")]
                )
                return None
            if account is not None:
                return account
        elif not authorization and self.ntlm.account is not None:
            return self.ntlm.account  # this connection already authenticated with NTLM
        offers = []
        if "ntlm" in auth:
            offers += [("WWW-Authenticate", "Negotiate"), ("WWW-Authenticate", "NTLM")]
        if "basic" in auth:
            offers.append(("WWW-Authenticate", 'Basic realm="exch01.simulator.invalid"'))
        self._unauthorized(offers)
        return None

    def _unauthorized(self, headers: list[tuple[str, str]]) -> None:
        self._send(
            401, b"401 - Unauthorized: Access is denied due to invalid credentials.", "text/html", headers
        )

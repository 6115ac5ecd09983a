"""PushSink: the Cloud Notification Service (CNS) as ENS's consumer sees it, on one loopback HTTPS server."""

from __future__ import annotations

import contextlib
import hmac
import json
import logging
import shutil
import ssl
import tempfile
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import trustme
from pydantic import ValidationError

from push_sink.faults import FaultRule, Faults
from push_sink.inputs import FaultSpec, PushPayload, explain
from tooling_http import base_url as loopback_url

# Not a name containing "ens": Powertools' Logger(service="ens") filters such records off the root
# handlers, and these lines are what a newcomer watches on the `make run` console.
log = logging.getLogger("local_stack.push_sink")

PUSH_PATH = "/v1/push"
CONTROL_PREFIX = "/_sink"
# APNs takes 4096 bytes; the sink takes more so that an oversized payload is recorded (with its size)
# rather than lost, and refuses only what no notification could be.
MAX_BODY_BYTES = 64 * 1024
# An oversized body up to this size is still read (and dropped) so the 413 reaches the client.
DRAIN_BYTES = 16 * 1024 * 1024
LOOPBACK = ("127.0.0.1", "::1", "localhost")
# Request headers a push record keeps. Never Authorization: it is the CNS credential.
RECORDED_HEADERS = (
    "content-type",
    "user-agent",
    "apns-id",
    "apns-push-type",
    "apns-priority",
    "apns-collapse-id",
    "apns-expiration",
    "apns-topic",
)

Answer = tuple[int, dict[str, Any], list[tuple[str, str]]]  # status, JSON body, extra headers


@dataclass(frozen=True)
class Push:
    """One accepted push, as `GET /_sink/pushes` lists it."""

    seq: int
    id: str
    received_at: datetime
    headers: dict[str, str]
    payload: dict[str, Any]
    size: int  # bytes of the body; APNs would refuse more than 4096

    @property
    def device_token(self) -> str:
        return str(self.payload["device_token"])

    def describe(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "id": self.id,
            "received_at": self.received_at.isoformat(),
            "headers": self.headers,
            "size": self.size,
            "payload": self.payload,
        }


@dataclass(frozen=True)
class Attempt:
    """Every request to the push endpoint, refused ones included, with what the sink answered."""

    seq: int
    received_at: datetime
    status: int
    reason: str | None  # None when accepted
    device_token: str | None  # None when the body was never read or did not parse
    push_id: str | None
    retry_after: int | None

    def describe(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "received_at": self.received_at.isoformat(),
            "status": self.status,
            "reason": self.reason,
            "device_token": self.device_token,
            "push_id": self.push_id,
            "retry_after": self.retry_after,
        }


class PushSink:
    """A local stand-in for CNS: takes ENS's pushes, records them, refuses them on demand.

    >>> sink = PushSink(tokens=["secret"]).start()
    >>> requests.post(sink.url, json=payload, headers={"Authorization": "Bearer secret"},
    ...               verify=sink.ca_bundle_path)
    >>> sink.wait_for(1, timeout=5)
    >>> sink.stop()
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        tls: bool = True,
        tokens: Iterable[str] = (),
        fault_seed: int | None = None,
        max_body_bytes: int = MAX_BODY_BYTES,
    ) -> None:
        if host not in LOOPBACK:
            # Tooling that accepts anyone's pushes has no business listening beyond this machine.
            raise ValueError(f"the push sink only listens on loopback, not {host}")
        self.tls = tls
        self.max_body_bytes = max_body_bytes
        self.faults = Faults(seed=fault_seed)
        self._host = host
        self._port = port
        self._tokens: list[str] = list(tokens)
        self._changed = threading.Condition()  # guards everything below; notified on each new push
        self._pushes: list[Push] = []
        self._attempts: list[Attempt] = []
        self._push_seq = 0
        self._attempt_seq = 0
        self._unregistered: dict[str, int] = {}  # device token -> when, in ms since the epoch
        self._bad: set[str] = set()
        self._stopping = False
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._directory: Path | None = None

    # -- lifecycle ---------------------------------------------------------------------------------------
    def start(self) -> PushSink:
        if self._server is not None:
            raise RuntimeError("push sink already started")
        server = _Server((self._host, self._port), _Handler)
        server.sink = self
        try:
            if self.tls:
                self._directory = Path(tempfile.mkdtemp(prefix="push-sink-"))
                server.socket = self._tls_context(self._directory).wrap_socket(
                    # The handshake then happens in the request's own thread: a client that connects
                    # and says nothing cannot hold up the accept loop.
                    server.socket,
                    server_side=True,
                    do_handshake_on_connect=False,
                )
        except BaseException:
            server.server_close()
            self._remove_directory()
            raise
        self._server = server
        with self._changed:
            self._stopping = False
        # A short poll interval keeps stop() quick; serve_forever only checks for shutdown between polls.
        self._thread = threading.Thread(
            target=server.serve_forever, args=(0.05,), name="push-sink-http", daemon=True
        )
        self._thread.start()
        log.info("push sink (CNS stand-in) listening on %s", self.url)
        return self

    def stop(self) -> None:
        with self._changed:
            self._stopping = True  # long polls answer now instead of holding their thread
            self._changed.notify_all()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None
        self._remove_directory()

    def __enter__(self) -> PushSink:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _tls_context(self, directory: Path) -> ssl.SSLContext:
        ca = trustme.CA(organization_name="ENS local push sink")
        certificate = ca.issue_cert("127.0.0.1", "localhost", "::1")
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        certificate.configure_cert(context)
        ca.cert_pem.write_to_path(str(directory / "ca.pem"))
        return context

    def _remove_directory(self) -> None:
        if self._directory is not None:
            shutil.rmtree(self._directory, ignore_errors=True)
            self._directory = None

    # -- where it listens --------------------------------------------------------------------------------
    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("push sink not started")
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        return loopback_url("https" if self.tls else "http", self._host, self.port)

    @property
    def url(self) -> str:
        """The push endpoint: what ENS's CNS_URL points at."""
        return self.base_url + PUSH_PATH

    @property
    def control_url(self) -> str:
        return self.base_url + CONTROL_PREFIX

    @property
    def ca_bundle_path(self) -> str | None:
        """PEM file of the CA that signed the sink's certificate (requests' verify=); None without TLS."""
        if self._server is None:
            raise RuntimeError("push sink not started")
        return str(self._directory / "ca.pem") if self._directory is not None else None

    # -- configuration -----------------------------------------------------------------------------------
    @property
    def tokens(self) -> tuple[str, ...]:
        with self._changed:
            return tuple(self._tokens)

    def add_token(self, token: str) -> None:
        """Accept `Authorization: Bearer <token>` from now on."""
        with self._changed:
            self._tokens.append(token)

    def mark_unregistered(self, device_token: str) -> None:
        """Pushes to this device answer 410 Unregistered, as when the app was removed."""
        with self._changed:
            self._unregistered[device_token] = int(time.time() * 1000)

    def mark_bad(self, device_token: str) -> None:
        """Pushes to this device answer 400 BadDeviceToken, as for a token of another environment."""
        with self._changed:
            self._bad.add(device_token)

    def forget_device(self, device_token: str) -> None:
        """Undo mark_unregistered and mark_bad for this device."""
        with self._changed:
            self._unregistered.pop(device_token, None)
            self._bad.discard(device_token)

    def devices(self) -> dict[str, list[str]]:
        with self._changed:
            return {"unregistered": sorted(self._unregistered), "bad": sorted(self._bad)}

    # -- faults ------------------------------------------------------------------------------------------
    def add_fault(self, spec: FaultSpec) -> FaultRule:
        return self.faults.install(spec)

    def fail_next(
        self, status: int, count: int = 1, retry_after: int | None = None, reason: str | None = None
    ) -> FaultRule:
        """The next `count` pushes answer `status` (with Retry-After when given) instead of being accepted."""
        return self.add_fault(FaultSpec(status=status, count=count, retry_after=retry_after, reason=reason))

    def fail_fraction(
        self,
        status: int,
        fraction: float,
        *,
        seed: int | None = None,
        retry_after: int | None = None,
        reason: str | None = None,
    ) -> FaultRule:
        """This share of pushes answers `status`, until clear_faults(); `seed` makes the choice repeatable."""
        return self.add_fault(
            FaultSpec(status=status, fraction=fraction, seed=seed, retry_after=retry_after, reason=reason)
        )

    def clear_faults(self) -> None:
        self.faults.clear()

    # -- what it received --------------------------------------------------------------------------------
    def pushes(self, device_token: str | None = None, since: int | None = None) -> list[Push]:
        """Accepted pushes in arrival order; only this device's, only those after seq `since`."""
        with self._changed:
            return self._matching(device_token, since)

    def wait_for(
        self, count: int, timeout: float = 5.0, device_token: str | None = None, since: int | None = None
    ) -> list[Push]:
        """Return as soon as `count` pushes match, or what matched when `timeout` seconds have passed."""
        with self._changed:
            self._changed.wait_for(
                lambda: self._stopping or len(self._matching(device_token, since)) >= count, timeout=timeout
            )
            return self._matching(device_token, since)

    def attempts(self) -> list[Attempt]:
        with self._changed:
            return list(self._attempts)

    def clear_pushes(self) -> None:
        """Forget the recorded pushes and attempts; sequence numbers keep counting, so `since` stays valid."""
        with self._changed:
            self._pushes.clear()
            self._attempts.clear()

    def reset(self) -> None:
        """Back to a fresh sink (pushes, attempts, faults, device marks), same port, CA and tokens."""
        self.clear_pushes()
        self.clear_faults()
        with self._changed:
            self._unregistered.clear()
            self._bad.clear()

    def _matching(self, device_token: str | None, since: int | None) -> list[Push]:
        return [
            push
            for push in self._pushes
            if (device_token is None or push.device_token == device_token)
            and (since is None or push.seq > since)
        ]

    # -- the push endpoint -------------------------------------------------------------------------------
    def handle_push(self, headers: Mapping[str, str], body: bytes | None) -> Answer:
        """Answer one `POST /v1/push`; `body` None means it was over max_body_bytes and was not read."""
        received_at = datetime.now(UTC)
        if body is None:
            return self._refuse(received_at, 413, "PayloadTooLarge", None)
        if not self._authorised(headers.get("authorization", "")):
            return self._refuse(
                received_at,
                401,
                "InvalidProviderToken",
                None,
                headers=[("WWW-Authenticate", 'Bearer error="invalid_token"')],
            )
        content_type = headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != "application/json":
            return self._refuse(
                received_at, 400, "BadPayload", None, detail="Content-Type must be application/json"
            )
        try:
            payload = PushPayload.model_validate_json(body, strict=True)
        except ValidationError as error:
            return self._refuse(received_at, 400, "BadPayload", None, detail=explain(error))
        device = payload.device_token

        refusal = self.faults.decide()
        if refusal is not None:
            retry = [("Retry-After", str(refusal.retry_after))] if refusal.retry_after is not None else []
            return self._refuse(
                received_at, refusal.status, refusal.reason, device, headers=retry, retry=refusal.retry_after
            )
        with self._changed:
            bad = device in self._bad
            unregistered_at = self._unregistered.get(device)
        if bad:
            return self._refuse(received_at, 400, "BadDeviceToken", device)
        if unregistered_at is not None:
            return self._refuse(received_at, 410, "Unregistered", device, timestamp=unregistered_at)

        push_id = str(uuid.uuid4())
        with self._changed:
            self._push_seq += 1
            self._pushes.append(
                Push(
                    seq=self._push_seq,
                    id=push_id,
                    received_at=received_at,
                    headers={name: headers[name] for name in RECORDED_HEADERS if name in headers},
                    payload=json.loads(body),
                    size=len(body),
                )
            )
            self._record(received_at, 200, None, device, push_id, None)
            self._changed.notify_all()
        log.info(
            "push %s to device %s (%s): %s",
            payload.kind,
            _prefix(device),
            payload.mailbox,
            payload.headline(),
        )
        return 200, {"id": push_id}, [("apns-id", push_id)]

    def _authorised(self, authorization: str) -> bool:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return False
        offered = token.strip().encode()
        with self._changed:
            accepted = list(self._tokens)
        # compare_digest on every token: how long a refusal takes says nothing about how close it came.
        return any([hmac.compare_digest(offered, known.encode()) for known in accepted])  # noqa: C419

    def _refuse(
        self,
        received_at: datetime,
        status: int,
        reason: str,
        device: str | None,
        *,
        headers: list[tuple[str, str]] | None = None,
        retry: int | None = None,
        detail: str | None = None,
        timestamp: int | None = None,
    ) -> Answer:
        with self._changed:
            self._record(received_at, status, reason, device, None, retry)
        log.info(
            "push refused %d %s%s%s",
            status,
            reason,
            f" for device {_prefix(device)}" if device else "",
            f": {detail}" if detail else "",
        )
        body: dict[str, Any] = {"reason": reason}
        if detail is not None:
            body["detail"] = detail
        if timestamp is not None:
            body["timestamp"] = timestamp  # APNs: when the device stopped being valid, ms since the epoch
        return status, body, headers or []

    def _record(
        self,
        received_at: datetime,
        status: int,
        reason: str | None,
        device: str | None,
        push_id: str | None,
        retry_after: int | None,
    ) -> None:
        self._attempt_seq += 1
        self._attempts.append(
            Attempt(self._attempt_seq, received_at, status, reason, device, push_id, retry_after)
        )


def _prefix(device_token: str) -> str:
    # Device tokens identify a person's phone: the console shows enough to tell them apart, no more.
    return device_token[:8] + "…" if len(device_token) > 8 else device_token


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # a client's idle keep-alive connection must not hold up stop()
    sink: PushSink

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that distrusts the CA, or hangs up mid-handshake, is the client's story, not a traceback.
        log.debug("connection from %s failed", client_address, exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as an HTTP client with a connection pool expects
    server_version = "ens-local-push-sink"
    sys_version = ""
    timeout = 60  # idle keep-alive connections are closed eventually
    server: _Server

    def version_string(self) -> str:
        return self.server_version

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    def finish(self) -> None:
        with contextlib.suppress(OSError):  # the client hung up first
            super().finish()

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        body = self._read_body()
        if url.path == PUSH_PATH:
            if method != "POST":
                self._send_json(405, {"reason": "MethodNotAllowed"}, [("Allow", "POST")])
                return
            headers = {name.lower(): value for name, value in self.headers.items()}
            status, answer, extra = self.server.sink.handle_push(headers, body)
            self._send_json(status, answer, extra)
            return
        if body is None:
            self._send_json(413, {"error": f"body over {self.server.sink.max_body_bytes} bytes"})
            return
        if url.path == CONTROL_PREFIX or url.path.startswith(CONTROL_PREFIX + "/"):
            from push_sink.control import handle_control

            status, payload = handle_control(
                self.server.sink, method, url.path[len(CONTROL_PREFIX) :], parse_qs(url.query), body
            )
            self._send_json(status, payload)
            return
        self._send_json(404, {"reason": "BadPath"})

    def _read_body(self) -> bytes | None:
        """The request body; None when it is too large to take."""
        if self.headers.get("Transfer-Encoding"):
            self.close_connection = True  # a chunked body is not read: what follows is not a request
            return b""
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            length = -1
        limit = self.server.sink.max_body_bytes
        if 0 <= length <= limit:
            return self.rfile.read(length)
        if limit < length <= DRAIN_BYTES:
            # Read and dropped: closing on unread bytes sends a TCP reset, and the client would see
            # "connection reset" instead of the 413 that says what is wrong.
            self.rfile.read(length)
        else:
            self.close_connection = True
        return None

    def _send_json(self, status: int, payload: Any, headers: list[tuple[str, str]] | None = None) -> None:
        body = json.dumps(payload, indent=1, ensure_ascii=False).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers or []:
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

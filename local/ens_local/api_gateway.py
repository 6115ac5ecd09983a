"""The HTTP front: API Gateway REST API (v1) Lambda proxy integration, on loopback.

Each request becomes the proxy event AWS builds and goes to the very handler the Lambda runs; the
handler's dict becomes the HTTP response. The body travels as UTF-8 text, or base64 encoded when its
Content-Type matches the BinaryMediaTypes of the route's RestApi in the template. Where the local
front must choose, it answers what a REST API answers: 403 "Missing Authentication Token" for an
unknown route or method, 413 beyond the 10 MiB payload limit (handler not called), 500 "Internal
server error" when Lambda would refuse the invocation because the event exceeds its 6 MB payload
limit (handler not called), 502 "Internal server error" when the handler raises, times out or
returns a malformed proxy response.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import random
import re
import threading
import time
import traceback
import uuid
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from ens_local.aws import LOCAL_ACCOUNT_ID
from ens_local.functions import LoadedFunction
from ens_local.template import ApiRoute

log = logging.getLogger("local_stack.api")

MAX_PAYLOAD_BYTES = 10 * 1024 * 1024  # API Gateway's hard limit on a request payload
# Lambda's limit on a synchronous Invoke's request payload, i.e. the JSON event ("6 MB" in the quotas;
# Invoke refuses more with RequestEntityTooLargeException). A body under API Gateway's 10 MiB can still
# make an event above it: the event adds headers and context, and base64 adds a third to binary bodies.
LAMBDA_MAX_EVENT_BYTES = 6 * 1024 * 1024
# Media type a REST API assumes for a request that carries no Content-Type.
_DEFAULT_CONTENT_TYPE = "application/json"
_PROXY_RESPONSE_KEYS = {"statusCode", "headers", "multiValueHeaders", "body", "isBase64Encoded"}
# An oversized body is read and thrown away up to this size before the 413 goes out: a client that
# is still writing when the server closes sees a reset connection instead of API Gateway's answer.
_DRAIN_LIMIT_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class GatewayReply:
    """What goes back on the wire."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes


@dataclass(frozen=True)
class RouteMatch:
    route: ApiRoute
    path_parameters: dict[str, str]


class Router:
    """Matches method + path against the template's routes, most specific route first.

    API Gateway prefers literal segments over {param} over {greedy+}; sorting by that order gives the
    same answer for the route shapes SAM allows. Paths are matched as they came on the wire, still
    percent-encoded (an encoded `/` stays inside its segment), and each path parameter is decoded
    exactly once, as a REST API does: `%2562` arrives as `%62`, never as `b`.
    """

    def __init__(self, routes: Iterable[ApiRoute]) -> None:
        compiled = [(route, _compile(route.path)) for route in routes]
        compiled.sort(key=lambda item: _specificity(item[0].path))
        self._routes = compiled

    def match(self, method: str, path: str) -> RouteMatch | None:
        """The route for a request path as sent (percent-encoded), with its parameters decoded once."""
        for route, pattern in self._routes:
            found = pattern.fullmatch(path)
            if found and route.method in (method, "ANY"):
                return RouteMatch(route, {k: unquote(v) for k, v in found.groupdict().items()})
        return None

    def masked(self, path: str) -> str:
        """The path as it may be logged: path parameters are secrets (callback tokens) and never appear."""
        for route, pattern in self._routes:
            if pattern.fullmatch(path):
                return re.sub(r"\{([^}+]+)\+?\}", r"{\1}", route.path)
        # Unknown paths may still carry a token someone mistyped the route around.
        return "/".join(
            "{…}" if re.fullmatch(r"[A-Za-z0-9_\-.~%=]{16,}", part) else part for part in path.split("/")
        )


def _compile(template_path: str) -> re.Pattern[str]:
    pattern = ""
    for segment in template_path.strip("/").split("/"):
        greedy = re.fullmatch(r"\{([A-Za-z0-9_]+)\+\}", segment)
        single = re.fullmatch(r"\{([A-Za-z0-9_]+)\}", segment)
        if greedy:
            pattern += f"/(?P<{greedy.group(1)}>.+)"
        elif single:
            pattern += f"/(?P<{single.group(1)}>[^/]+)"
        elif segment:
            pattern += "/" + re.escape(segment)
    return re.compile(pattern or "/")


def _specificity(template_path: str) -> tuple[int, int]:
    return ("+}" in template_path, template_path.count("{"))


def is_binary_media_type(content_type: str | None, binary_media_types: Iterable[str]) -> bool:
    """Whether a REST API with these BinaryMediaTypes hands a body of this Content-Type over as binary.

    Patterns are media types in which `*` stands for any run of characters (`*/*`, `image/*`,
    `application/octet-stream`), compared without case. The request's parameters (`; charset=...`,
    `; boundary=...`) do not take part, so `multipart/form-data` matches an upload with a boundary.
    """
    media_type = (content_type or "").split(";", 1)[0].strip().lower() or _DEFAULT_CONTENT_TYPE
    for pattern in binary_media_types:
        regex = ".*".join(re.escape(part) for part in pattern.strip().lower().split("*"))
        if re.fullmatch(regex, media_type):
            return True
    return False


def build_rest_proxy_event(
    method: str,
    path: str,
    route: ApiRoute | str,
    *,
    headers: Sequence[tuple[str, str]] | Mapping[str, str] = (),
    body: bytes | str | None = None,
    binary: bool = False,
    query: str = "",
    path_parameters: Mapping[str, str] | None = None,
    stage: str = "dev",
    source_ip: str = "127.0.0.1",
    api_id: str = "localapi01",
    request_id: str | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The event API Gateway's REST Lambda proxy integration gives the function.

    `route` is the matched resource (its path template, e.g. /ews/notifications/{token}); `path`
    is the request path without the stage, still percent-encoded as a REST API's event carries it. `binary` says whether the request's Content-Type matches
    the API's BinaryMediaTypes (see `is_binary_media_type`): then the body is base64 with
    isBase64Encoded=true and arrives byte-exact. Otherwise, the default of an API that declares
    none, it is UTF-8 text, and bytes that are not valid UTF-8 are replaced with U+FFFD as API
    Gateway does.
    """
    resource = route.path if isinstance(route, ApiRoute) else route
    header_items = list(headers.items()) if isinstance(headers, Mapping) else list(headers)
    single_headers: dict[str, str] = {}
    multi_headers: dict[str, list[str]] = {}
    for name, value in header_items:
        single_headers[name] = value  # the last of repeated headers wins, as in AWS
        multi_headers.setdefault(name, []).append(value)

    query_pairs = parse_qsl(query, keep_blank_values=True)
    single_query: dict[str, str] = {}
    multi_query: dict[str, list[str]] = {}
    for name, value in query_pairs:
        single_query[name] = value
        multi_query.setdefault(name, []).append(value)

    raw = body.encode() if isinstance(body, str) else body
    event_body: str | None
    is_base64 = False
    if not raw:
        event_body = None
    elif binary:
        event_body = base64.b64encode(raw).decode("ascii")
        is_base64 = True
    else:
        event_body = raw.decode("utf-8", errors="replace")

    now = now or datetime.now(UTC)
    request_id = request_id or str(uuid.uuid4())
    host = single_headers.get("Host") or next(
        (v for k, v in single_headers.items() if k.lower() == "host"), ""
    )
    user_agent = next((v for k, v in single_headers.items() if k.lower() == "user-agent"), None)
    return {
        "resource": resource,
        "path": path,
        "httpMethod": method,
        "headers": single_headers or None,
        "multiValueHeaders": multi_headers or None,
        "queryStringParameters": single_query or None,
        "multiValueQueryStringParameters": multi_query or None,
        "pathParameters": dict(path_parameters) if path_parameters else None,
        "stageVariables": None,
        "requestContext": {
            "resourceId": f"{zlib.crc32(resource.encode()):08x}"[:6],
            "resourcePath": resource,
            "httpMethod": method,
            "extendedRequestId": base64.b32encode(uuid.uuid4().bytes)[:16].decode("ascii"),
            "requestTime": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "path": f"/{stage}{path}",
            "accountId": LOCAL_ACCOUNT_ID,
            "protocol": "HTTP/1.1",
            "stage": stage,
            "domainPrefix": host.split(".")[0].split(":")[0] if host else api_id,
            "requestTimeEpoch": int(now.timestamp() * 1000),
            "requestId": request_id,
            "identity": {
                "cognitoIdentityPoolId": None,
                "accountId": None,
                "cognitoIdentityId": None,
                "caller": None,
                "sourceIp": source_ip,
                "principalOrgId": None,
                "accessKey": None,
                "cognitoAuthenticationType": None,
                "cognitoAuthenticationProvider": None,
                "userArn": None,
                "userAgent": user_agent,
                "user": None,
            },
            "domainName": host or f"{api_id}.execute-api.localhost",
            "deploymentId": "local",
            "apiId": api_id,
        },
        "body": event_body,
        "isBase64Encoded": is_base64,
    }


class MalformedProxyResponse(ValueError):
    """The handler's result is not what the proxy integration accepts."""


def reply_from_proxy_result(result: Any) -> GatewayReply:
    """Turn a handler's proxy result into the HTTP response API Gateway would send."""
    if not isinstance(result, Mapping):
        raise MalformedProxyResponse(f"result is {type(result).__name__}, not an object")
    extra = set(result) - _PROXY_RESPONSE_KEYS
    if extra:
        raise MalformedProxyResponse(f"unexpected field(s) {sorted(extra)}")
    status = result.get("statusCode")
    if isinstance(status, str) and status.isdigit():
        status = int(status)
    if not isinstance(status, int) or isinstance(status, bool) or not 100 <= status <= 599:
        raise MalformedProxyResponse(f"statusCode {status!r} is not an HTTP status")

    # AWS merges both maps; a name in multiValueHeaders replaces the same name in headers.
    merged: dict[str, list[str]] = {}
    for name, value in (result.get("headers") or {}).items():
        merged[str(name)] = [_header_text(name, value)]
    for name, values in (result.get("multiValueHeaders") or {}).items():
        if not isinstance(values, list):
            raise MalformedProxyResponse(f"multiValueHeaders[{name!r}] is not a list")
        merged[str(name)] = [_header_text(name, value) for value in values]
    if not any(name.lower() == "content-type" for name in merged):
        merged["Content-Type"] = ["application/json"]  # what a REST API sends when the function says nothing

    body = result.get("body")
    if body is None:
        payload = b""
    elif not isinstance(body, str):
        raise MalformedProxyResponse(f"body is {type(body).__name__}, not a string")
    elif result.get("isBase64Encoded"):
        try:
            payload = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError) as error:
            raise MalformedProxyResponse(f"isBase64Encoded but body is not base64: {error}") from None
    else:
        payload = body.encode("utf-8")
    headers = [(name, value) for name, values in merged.items() for value in values]
    return GatewayReply(status, headers, payload)


def _header_text(name: Any, value: Any) -> str:
    if isinstance(value, (Mapping, list)):
        raise MalformedProxyResponse(f"header {name!r} has a {type(value).__name__} value")
    return "true" if value is True else "false" if value is False else str(value)


def _json_reply(status: int, message: str, error_type: str) -> GatewayReply:
    body = json.dumps({"message": message}).encode()
    return GatewayReply(
        status, [("Content-Type", "application/json"), ("x-amzn-ErrorType", error_type)], body
    )


MISSING_TOKEN = _json_reply(403, "Missing Authentication Token", "MissingAuthenticationTokenException")
TOO_LARGE = _json_reply(413, "Request Too Long", "RequestTooLongException")
INTERNAL_ERROR = _json_reply(502, "Internal server error", "InternalServerErrorException")
# What API Gateway answers when the Lambda service refuses the Invoke itself (the AWS Lambda guide,
# "Handling Lambda errors with an API Gateway API": 500 there, 502 once the function ran).
INVOKE_REFUSED = _json_reply(500, "Internal server error", "InternalServerErrorException")
OUTAGE = _json_reply(503, "Service Unavailable", "ServiceUnavailableException")


class Outage:
    """Test hook, tooling only: the front answers 503 to requests under `path_prefix`, its handler
    never called, as when API Gateway or the function behind it is down.

    `count` fails the next N matching requests; `fraction` fails that share of them (drawn from a
    generator seeded with `seed`) until `ApiGatewayFront.restore()`; neither: every one until then.
    """

    def __init__(
        self, path_prefix: str, *, count: int | None, fraction: float | None, seed: int | None
    ) -> None:
        if count is not None and fraction is not None:
            raise ValueError("an outage takes a count or a fraction, not both")
        if count is not None and count < 1:
            raise ValueError(f"count must be at least 1, got {count}")
        if fraction is not None and not 0 < fraction <= 1:
            raise ValueError(f"fraction must be in (0, 1], got {fraction}")
        self.path_prefix = path_prefix
        self.remaining = count
        self.fraction = fraction
        self.failed = 0
        self._random = random.Random(seed)  # noqa: S311 - chaos, not cryptography

    def fires(self, path: str) -> bool:
        """Whether this request fails; consumes one of `count`. Called under the front's lock."""
        if not path.startswith(self.path_prefix) or self.remaining == 0:
            return False
        if self.fraction is not None and self._random.random() >= self.fraction:
            return False
        if self.remaining is not None:
            self.remaining -= 1
        self.failed += 1
        return True


def lambda_payload_bytes(event: Any) -> int:
    """The size of `event` as the JSON payload of a Lambda Invoke, the size Lambda's limit counts."""
    # Compact and UTF-8, not ASCII-escaped: what a JSON serialiser puts on the wire, whereas
    # json.dumps' default would count 6 bytes for each non-ASCII character.
    return len(json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))


@dataclass(frozen=True)
class RequestRecord:
    """One handled request, for the one-line log and for tests."""

    method: str
    masked_path: str
    status: int
    duration_ms: float
    function: str | None


class ApiGatewayFront:
    """A threaded HTTP server routing the template's Api events to loaded handlers.

    `stages` maps a route's RestApi logical id to its stage name. Requests are accepted both without
    the stage (as `sam local start-api` serves) and with it (as the execute-api URL carries it).
    `binary_media_types` maps a RestApi logical id to its BinaryMediaTypes (`/`, not `~1`); an API
    missing from it has none, so its bodies travel as text.
    """

    def __init__(
        self,
        functions: Mapping[str, LoadedFunction],
        routes: Iterable[ApiRoute],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        stages: Mapping[str, str] | None = None,
        binary_media_types: Mapping[str, Sequence[str]] | None = None,
        on_request: Callable[[RequestRecord], None] | None = None,
    ) -> None:
        # Kept by reference: the stack binds the port first (its URL may go into the functions'
        # environment) and loads the functions afterwards into this same mapping.
        self.functions = functions
        self.routes = list(routes)
        self.router = Router(self.routes)
        self.stages = dict(stages or {})
        self.binary_media_types = {api: tuple(types) for api, types in (binary_media_types or {}).items()}
        self.on_request = on_request or _log_request
        self._server = ThreadingHTTPServer((host, port), _make_request_handler(self))
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None
        self._outage: Outage | None = None
        self._outage_lock = threading.Lock()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        if not isinstance(host, str):  # typed str | bytes | bytearray: decoded, not formatted as b'...'
            host = bytes(host).decode()
        return f"http://{host}:{port}"

    def start(self) -> ApiGatewayFront:
        missing = {route.function for route in self.routes} - set(self.functions)
        if missing:
            raise ValueError(f"routes name functions that are not loaded: {sorted(missing)}")
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="api-gateway", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._server.server_close()

    def fail_requests(
        self,
        path_prefix: str = "/",
        *,
        count: int | None = None,
        fraction: float | None = None,
        seed: int | None = None,
    ) -> Outage:
        """Test hook: answer 503 to requests whose path (without the stage) starts with `path_prefix`,
        replacing any earlier outage; see `Outage`. Tooling only: AWS has no such switch."""
        outage = Outage(path_prefix, count=count, fraction=fraction, seed=seed)
        with self._outage_lock:
            self._outage = outage
        return outage

    def restore(self) -> None:
        """End the outage `fail_requests` began."""
        with self._outage_lock:
            self._outage = None

    def _out(self, path: str) -> bool:
        with self._outage_lock:
            return self._outage is not None and self._outage.fires(path)

    def handle(
        self, method: str, raw_path: str, headers: Sequence[tuple[str, str]], body: bytes, source_ip: str
    ) -> tuple[GatewayReply, RequestRecord]:
        started = time.monotonic()
        split = urlsplit(raw_path)
        # Kept percent-encoded: a REST API's event carries the path as sent, and the router decodes
        # each path parameter once; decoding here too would decode them twice.
        path = split.path or "/"
        found, path = self._match(method, path)
        function_name = None
        if self._out(path):
            reply = OUTAGE
        elif found is None:
            reply = MISSING_TOKEN
        else:
            function = self.functions[found.route.function]
            function_name = function.logical_id
            # The last of repeated Content-Type headers, as in the event's `headers`.
            content_type = next((v for k, v in reversed(headers) if k.lower() == "content-type"), None)
            event = build_rest_proxy_event(
                method,
                path,
                found.route,
                headers=headers,
                body=body,
                binary=is_binary_media_type(content_type, self.binary_media_types.get(found.route.api, ())),
                query=split.query,
                path_parameters=found.path_parameters,
                stage=self.stages.get(found.route.api, "Prod"),
                source_ip=source_ip,
            )
            reply = self._invoke(function, event)
        record = RequestRecord(
            method=method,
            masked_path=self.router.masked(path),
            status=reply.status,
            duration_ms=(time.monotonic() - started) * 1000,
            function=function_name,
        )
        request_id = next((v for k, v in reply.headers if k.lower() == "x-amzn-requestid"), None)
        if request_id is None:
            reply = GatewayReply(
                reply.status, [*reply.headers, ("x-amzn-RequestId", str(uuid.uuid4()))], reply.body
            )
        return reply, record

    def _match(self, method: str, path: str) -> tuple[RouteMatch | None, str]:
        found = self.router.match(method, path)
        if found is None:
            stage, _, rest = path.lstrip("/").partition("/")
            if stage and stage in self.stages.values():
                path = "/" + rest
                found = self.router.match(method, path)
        return found, path

    def _invoke(self, function: LoadedFunction, event: dict[str, Any]) -> GatewayReply:
        size = lambda_payload_bytes(event)
        if size > LAMBDA_MAX_EVENT_BYTES:
            # Lambda refuses the Invoke before any code runs; API Gateway's execution log shows it.
            log.error(
                "%s: the proxy event is %d bytes, over Lambda's %d-byte invocation payload limit "
                "(RequestEntityTooLargeException); API Gateway answers 500",
                function.logical_id,
                size,
                LAMBDA_MAX_EVENT_BYTES,
            )
            return INVOKE_REFUSED
        try:
            result = function.invoke(event)
        except Exception:
            log.error("%s raised; API Gateway answers 502:\n%s", function.logical_id, traceback.format_exc())
            return INTERNAL_ERROR
        try:
            return reply_from_proxy_result(result)
        except MalformedProxyResponse as error:
            log.error(
                "%s: malformed Lambda proxy response (%s); API Gateway answers 502",
                function.logical_id,
                error,
            )
            return INTERNAL_ERROR


def _log_request(record: RequestRecord) -> None:
    log.info(
        "%s %s -> %d %.1f ms%s",
        record.method,
        record.masked_path,
        record.status,
        record.duration_ms,
        f" ({record.function})" if record.function else "",
    )


def _make_request_handler(front: ApiGatewayFront) -> type[BaseHTTPRequestHandler]:
    class RequestHandler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as clients of API Gateway expect
        # Headers and body go out in separate writes: with Nagle's algorithm and the client's delayed
        # ACK, every answer on a kept-alive connection would wait ~40 ms, which API Gateway never does.
        disable_nagle_algorithm = True
        server_version = "ens-local"

        def log_message(self, format: str, *args: Any) -> None:
            """The front logs one line of its own per request; http.server's line would leak tokens."""

        def _serve(self) -> None:
            started = time.monotonic()
            body = self._read_body()
            if body is None:
                reply = TOO_LARGE
                elapsed_ms = (time.monotonic() - started) * 1000
                masked = front.router.masked(urlsplit(self.path).path)
                record = RequestRecord(self.command, masked, 413, elapsed_ms, None)
                self.close_connection = True
            else:
                headers = list(self.headers.items())
                reply, record = front.handle(self.command, self.path, headers, body, self.client_address[0])
            # Logged before the answer goes out, so the line exists by the time the client has it.
            front.on_request(record)
            self._send(reply)

        def _read_body(self) -> bytes | None:
            """The request payload, or None when it exceeds API Gateway's limit (then it is discarded)."""
            if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                return self._read_chunked()
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_PAYLOAD_BYTES:
                if length <= _DRAIN_LIMIT_BYTES:
                    remaining = length
                    while remaining > 0:
                        chunk = self.rfile.read(min(remaining, 1 << 20))
                        if not chunk:
                            break  # the client gave up
                        remaining -= len(chunk)
                return None
            return self.rfile.read(length) if length else b""

        def _read_chunked(self) -> bytes | None:
            chunks: list[bytes] = []
            total = 0
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                total += size
                if total > MAX_PAYLOAD_BYTES:
                    return None
                chunks.append(self.rfile.read(size))
                self.rfile.readline()

        def _send(self, reply: GatewayReply) -> None:
            self.send_response(reply.status)
            for name, value in reply.headers:
                if name.lower() not in ("content-length", "transfer-encoding", "connection"):
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(reply.body)))
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(reply.body)

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _serve  # noqa: N815

    return RequestHandler


__all__ = [
    "INTERNAL_ERROR",
    "INVOKE_REFUSED",
    "LAMBDA_MAX_EVENT_BYTES",
    "MAX_PAYLOAD_BYTES",
    "MISSING_TOKEN",
    "OUTAGE",
    "TOO_LARGE",
    "ApiGatewayFront",
    "GatewayReply",
    "MalformedProxyResponse",
    "Outage",
    "RequestRecord",
    "Router",
    "build_rest_proxy_event",
    "is_binary_media_type",
    "lambda_payload_bytes",
    "reply_from_proxy_result",
]

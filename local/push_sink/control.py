"""The control API: JSON over HTTP under /_sink, for curl and for tests in other processes.

Loopback tooling, so no bearer token: every route maps onto a PushSink method, and Python tests and shell
scripts drive the same code. Bodies and query strings are parsed with pydantic; what does not fit gets 400.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import unquote

from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt, ValidationError

from push_sink.inputs import FaultSpec, explain
from tooling_http import Routes

if TYPE_CHECKING:
    from push_sink.sink import PushSink

log = logging.getLogger("local_stack.push_sink")

MAX_WAIT_SECONDS = 60.0


class PushQuery(BaseModel):
    """`GET /_sink/pushes?device_token=&since=&wait_for=&timeout=`."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    device_token: Annotated[str, Field(min_length=1)] | None = None
    since: NonNegativeInt | None = None
    wait_for: NonNegativeInt | None = None
    timeout: Annotated[float, Field(ge=0.0, le=MAX_WAIT_SECONDS)] = 10.0


# (sink, parsed body or None, path parameters, query) -> (HTTP status, JSON answer)
_ROUTES = Routes()
route = _ROUTES.route


def handle_control(
    sink: PushSink, method: str, path: str, query: dict[str, list[str]], body: bytes
) -> tuple[int, Any]:
    allowed = [
        (route_method, model, handler, match)
        for route_method, pattern, model, handler in _ROUTES
        if (match := pattern.match(path))
    ]
    for route_method, model, handler, match in allowed:
        if route_method != method:
            continue
        params = {name: unquote(value) for name, value in match.groupdict().items()}
        try:
            # curl -X POST without -d sends nothing: that means "all defaults".
            parsed = model.model_validate_json(body.strip() or b"{}", strict=True) if model else None
            return handler(sink, parsed, params, {name: values[-1] for name, values in query.items()})
        except ValidationError as e:
            return 400, {"error": explain(e), "details": json.loads(e.json(include_url=False))}
        except Exception:  # a sink bug still answers instead of dropping the connection
            log.exception("control request %s %s failed inside the push sink", method, path)
            return 500, {"error": "the push sink failed; see its log"}
    if allowed:
        return 405, {"error": f"{method} not allowed on {path}"}
    return 404, {"error": f"no control route {path}", "routes": sorted({p.pattern for _, p, _, _ in _ROUTES})}


@route("GET", "/health")
def _health(sink: PushSink, body: None, params: dict[str, str], query: dict[str, str]) -> tuple[int, Any]:
    return 200, {"status": "ok", "push_url": sink.url, "tls": sink.tls, "ca_bundle_path": sink.ca_bundle_path}


@route("GET", "/pushes")
def _pushes(sink: PushSink, body: None, params: dict[str, str], query: dict[str, str]) -> tuple[int, Any]:
    wanted = PushQuery.model_validate(query)
    if wanted.wait_for is None:
        found = sink.pushes(device_token=wanted.device_token, since=wanted.since)
    else:
        found = sink.wait_for(
            wanted.wait_for, timeout=wanted.timeout, device_token=wanted.device_token, since=wanted.since
        )
    return 200, [push.describe() for push in found]


@route("DELETE", "/pushes")
def _clear_pushes(
    sink: PushSink, body: None, params: dict[str, str], query: dict[str, str]
) -> tuple[int, Any]:
    sink.clear_pushes()
    return 200, {"pushes": "cleared", "attempts": "cleared"}


@route("GET", "/attempts")
def _attempts(sink: PushSink, body: None, params: dict[str, str], query: dict[str, str]) -> tuple[int, Any]:
    return 200, [attempt.describe() for attempt in sink.attempts()]


@route("GET", "/faults")
def _faults(sink: PushSink, body: None, params: dict[str, str], query: dict[str, str]) -> tuple[int, Any]:
    return 200, [rule.describe() for rule in sink.faults.rules()]


@route("POST", "/faults", body=FaultSpec)
def _add_fault(
    sink: PushSink, body: FaultSpec, params: dict[str, str], query: dict[str, str]
) -> tuple[int, Any]:
    return 201, sink.add_fault(body).describe()


@route("DELETE", "/faults")
def _clear_faults(
    sink: PushSink, body: None, params: dict[str, str], query: dict[str, str]
) -> tuple[int, Any]:
    sink.clear_faults()
    return 200, {"faults": "cleared"}


@route("GET", "/devices")
def _devices(sink: PushSink, body: None, params: dict[str, str], query: dict[str, str]) -> tuple[int, Any]:
    return 200, sink.devices()


@route("POST", "/devices/{token}/unregistered")
def _unregister(sink: PushSink, body: None, params: dict[str, str], query: dict[str, str]) -> tuple[int, Any]:
    sink.mark_unregistered(params["token"])
    return 200, {"device_token": params["token"], "status": "unregistered"}


@route("POST", "/devices/{token}/bad")
def _bad(sink: PushSink, body: None, params: dict[str, str], query: dict[str, str]) -> tuple[int, Any]:
    sink.mark_bad(params["token"])
    return 200, {"device_token": params["token"], "status": "bad"}


@route("DELETE", "/devices/{token}")
def _forget(sink: PushSink, body: None, params: dict[str, str], query: dict[str, str]) -> tuple[int, Any]:
    sink.forget_device(params["token"])
    return 200, {"device_token": params["token"], "status": "registered"}


@route("POST", "/reset")
def _reset(sink: PushSink, body: None, params: dict[str, str], query: dict[str, str]) -> tuple[int, Any]:
    sink.reset()
    return 200, {"reset": True}

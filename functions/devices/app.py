"""Devices API Lambda: register, read and remove a device, and read its recent decisions.

Thin: authenticate the bearer token, one call into the device registry, the answer. Every error is
an RFC 9457 problem document (application/problem+json); neither tokens nor stack traces nor mail
content reach an answer or a log line. docs/devices-api.md describes the API; docs/openapi.json is
generated from the routes below (`make openapi`).
"""

from __future__ import annotations

import functools
import json
import math
import re
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Annotated, Any, Protocol, TypeVar

from aws_lambda_powertools import Logger, Metrics, single_metric
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.openapi.params import Body, Path, Query
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import AwareDatetime

from ens.adapters.jwt_auth import JwtAuthenticator, SecretsJwtKeys
from ens.adapters.secrets import BuiltFromSecret
from ens.api.openapi import tidy_openapi
from ens.api.problems import (
    COMMON_PROBLEMS,
    PROBLEM_JSON,
    FieldProblem,
    Problem,
    ProblemRaised,
    check_json_body,
    problem_responses,
    proxy_result,
)
from ens.core.auth import AuthFailure, JwtPolicy, Unauthenticated
from ens.core.registrations import Caller, DecisionView, DeviceRegistration, DeviceView
from ens.errors import AdminActionRequired, DependencyUnavailable, DeviceNotFound, ExchangeBusy, Forbidden
from ens.settings import DevicesSettings

logger = Logger()
metrics = Metrics()

API_TITLE = "ENS devices API"
API_VERSION = "1.0.0"
MAX_BODY_BYTES = 64 * 1024
DEVICE_ID_PATTERN = r"^[A-Za-z0-9._:-]{1,128}$"
DEPENDENCY_RETRY_AFTER_SECONDS = 30
_DEVICE_ID = re.compile(DEVICE_ID_PATTERN)
_DEVICE_PATH = re.compile(r"^/v1/devices/[^/]+(/decisions)?/?$")


class DeviceRegistry(Protocol):
    """What the handler needs of ens.services.devices.DeviceRegistry."""

    def register(
        self, device_id: str, registration: DeviceRegistration, caller: Caller
    ) -> tuple[DeviceView, bool]: ...

    def get(self, device_id: str, caller: Caller) -> DeviceView: ...

    def unregister(self, device_id: str, caller: Caller) -> None: ...

    def decisions(
        self, device_id: str, caller: Caller, *, limit: int, since: datetime | None
    ) -> list[DecisionView]: ...


def _problem(
    status: HTTPStatus, detail: str | None = None, *, kind: str | None = None, **extra: Any
) -> Problem:
    return Problem(
        type=f"urn:ens:problem:{kind}" if kind else "about:blank",
        title=status.phrase,
        status=status.value,
        detail=detail,
        instance=_instance(),
        **extra,
    )


def _instance() -> str | None:
    try:
        return str(app.current_event.path)
    except AttributeError:
        return None


app = APIGatewayRestResolver(enable_validation=True)

DeviceId = Annotated[str, Path(pattern=DEVICE_ID_PATTERN, description="The device's id, chosen by the app")]


@app.put(
    "/v1/devices/<deviceId>",
    summary="Register a device, or update its registration",
    description="201 when the device is new, 200 when it was updated or the body changed nothing.",
    operation_id="putDevice",
    tags=["devices"],
    responses={
        200: {"description": "Updated or unchanged", "content": {"application/json": {"model": DeviceView}}},
        201: {"description": "Registered", "content": {"application/json": {"model": DeviceView}}},
        **problem_responses(
            HTTPStatus.BAD_REQUEST,
            HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
            HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
            HTTPStatus.UNPROCESSABLE_ENTITY,
            *COMMON_PROBLEMS,
        ),
    },
)
def put_device(
    deviceId: DeviceId,  # noqa: N803 (the path parameter's name, as the spec shows it)
    registration: Annotated[DeviceRegistration, Body()],
) -> Response[DeviceView]:
    view, created = _registry().register(deviceId, registration, _caller())
    _count("DeviceRegistrations" if created else "DeviceRegistrationUpdates")
    return _json(HTTPStatus.CREATED if created else HTTPStatus.OK, view)


@app.get(
    "/v1/devices/<deviceId>",
    summary="Read a device's registration and its mailbox's subscription",
    operation_id="getDevice",
    tags=["devices"],
    responses={
        200: {"description": "The device", "content": {"application/json": {"model": DeviceView}}},
        **problem_responses(HTTPStatus.BAD_REQUEST, *COMMON_PROBLEMS),
    },
)
def get_device(deviceId: DeviceId) -> Response[DeviceView]:  # noqa: N803
    return _json(HTTPStatus.OK, _registry().get(deviceId, _caller()))


@app.delete(
    "/v1/devices/<deviceId>",
    summary="Unregister a device (the mailbox's subscription ends with its last device)",
    operation_id="deleteDevice",
    tags=["devices"],
    responses={
        204: {"description": "Unregistered"},
        **problem_responses(HTTPStatus.BAD_REQUEST, *COMMON_PROBLEMS),
    },
)
def delete_device(deviceId: DeviceId) -> Response[None]:  # noqa: N803
    _registry().unregister(deviceId, _caller())
    _count("DeviceUnregistrations")
    return Response(status_code=HTTPStatus.NO_CONTENT.value, body=None, content_type=None)


@app.get(
    "/v1/devices/<deviceId>/decisions",
    summary="The device's recent notification decisions, newest first",
    operation_id="getDeviceDecisions",
    tags=["devices"],
    responses={
        200: {
            "description": "Decisions, newest first",
            "content": {"application/json": {"model": list[DecisionView]}},
        },
        **problem_responses(HTTPStatus.BAD_REQUEST, *COMMON_PROBLEMS),
    },
)
def get_decisions(
    deviceId: DeviceId,  # noqa: N803
    limit: Annotated[int, Query(ge=1, le=100, description="At most this many decisions")] = 20,
    since: Annotated[AwareDatetime | None, Query(description="Only decisions at or after this time")] = None,
) -> Response[list[DecisionView]]:
    decisions = _registry().decisions(deviceId, _caller(), limit=limit, since=since)
    return Response(status_code=HTTPStatus.OK.value, content_type="application/json", body=decisions)


def _json(status: HTTPStatus, view: DeviceView) -> Response[DeviceView]:
    return Response(status_code=status.value, content_type="application/json", body=view)


def _caller() -> Caller:
    caller = app.context.get("caller")
    if not isinstance(caller, Caller):  # the handler authenticates before routing; never reached otherwise
        raise ProblemRaised(_problem(HTTPStatus.UNAUTHORIZED, "no bearer token"))
    return caller


def _registry() -> DeviceRegistry:
    return _current().registry()


def _count(name: str) -> None:
    metrics.add_metric(name=name, unit=MetricUnit.Count, value=1)


# ---- errors → problem documents


def _problem_response(problem: Problem, headers: Mapping[str, str] | None = None) -> Response[str]:
    return Response(
        status_code=problem.status,
        content_type=PROBLEM_JSON,
        body=problem.model_dump_json(exclude_none=True),
        headers=dict(headers or {}),
    )


_ProblemHandler = TypeVar("_ProblemHandler", bound=Callable[..., Response[str]])


def _handles(*errors: type[Exception]) -> Callable[[_ProblemHandler], _ProblemHandler]:
    """app.exception_handler, typed: Powertools' decorator is not."""
    register: Any = app.exception_handler(list(errors))

    def decorate(function: _ProblemHandler) -> _ProblemHandler:
        register(function)
        return function

    return decorate


@_handles(ProblemRaised)
def _raised(error: ProblemRaised) -> Response[str]:
    return _problem_response(error.problem, error.headers)


@_handles(RequestValidationError)
def _invalid(error: RequestValidationError) -> Response[str]:
    details = error.errors()
    if any(tuple(detail.get("loc", ()))[:1] == ("path",) for detail in details):
        # A device id no device can have: as for any unknown device.
        return _problem_response(_problem(HTTPStatus.NOT_FOUND, "no such device", kind="device-not-found"))
    errors = [FieldProblem(location=_location(detail), message=_message(detail)) for detail in details]
    return _problem_response(
        _problem(HTTPStatus.BAD_REQUEST, "the request is not valid", kind="invalid-request", errors=errors)
    )


def _location(detail: Mapping[str, Any]) -> str:
    if detail.get("type") == "json_invalid":
        return "body"  # pydantic appends the offset of the syntax error, which is no field
    parts = [str(part) for part in detail.get("loc", ())]
    # Powertools names the body parameter after the function's argument: the client knows "body".
    if parts[:2] == ["body", "registration"]:
        parts = ["body", *parts[2:]]
    return ".".join(parts) or "body"


def _message(detail: Mapping[str, Any]) -> str:
    kind = str(detail.get("type", ""))
    if kind == "json_invalid":
        return "the body is not valid JSON"
    message = str(detail.get("msg") or kind or "invalid")
    # pydantic's messages name constraints, never the input; keep them short.
    return message[:300]


@_handles(DeviceNotFound)
def _not_found_device(_: DeviceNotFound) -> Response[str]:
    return _problem_response(_problem(HTTPStatus.NOT_FOUND, "no such device", kind="device-not-found"))


@_handles(Forbidden)
def _forbidden(error: Forbidden) -> Response[str]:
    _count("ApiForbidden")
    return _problem_response(_problem(HTTPStatus.FORBIDDEN, error.detail, kind="forbidden"))


@_handles(AdminActionRequired)
def _admin_action(error: AdminActionRequired) -> Response[str]:
    with single_metric(name="ApiAdminActionsRequired", unit=MetricUnit.Count, value=1) as metric:
        metric.add_dimension(name="code", value=error.code)
    return _problem_response(
        _problem(
            HTTPStatus.UNPROCESSABLE_ENTITY,
            error.detail,
            kind="admin-action-required",
            code=error.code,
        )
    )


@_handles(DependencyUnavailable)
def _unavailable(error: DependencyUnavailable) -> Response[str]:
    retry_after = (
        max(1, math.ceil(error.back_off_seconds))
        if isinstance(error, ExchangeBusy)
        else DEPENDENCY_RETRY_AFTER_SECONDS
    )
    _count("ApiDependencyUnavailable")
    # The kind of failure, never its message: it may carry a server's answer.
    logger.warning("dependency unavailable", extra={"error": type(error).__name__})
    return _problem_response(
        _problem(
            HTTPStatus.SERVICE_UNAVAILABLE, "a service this API depends on is unavailable", kind="unavailable"
        ),
        {"Retry-After": str(retry_after)},
    )


@app.not_found
def _no_route(_: NotFoundError) -> Response[str]:
    event = app.current_event
    allowed = sorted(
        route.method for route in app._static_routes + app._dynamic_routes if route.rule.match(event.path)
    )
    if allowed:
        return _problem_response(
            _problem(HTTPStatus.METHOD_NOT_ALLOWED, f"{event.http_method} is not allowed here"),
            {"Allow": ", ".join(allowed)},
        )
    return _problem_response(_problem(HTTPStatus.NOT_FOUND, "no such resource"))


@_handles(Exception)
def _unexpected(error: Exception) -> Response[str]:
    # No traceback and no message: either could carry a token or mail content. The type and the
    # request id (in every log line) are what an operator follows up with.
    logger.error("unexpected error", extra={"error": type(error).__name__})
    _count("ApiUnexpectedErrors")
    return _problem_response(_problem(HTTPStatus.INTERNAL_SERVER_ERROR, "an unexpected error occurred"))


# ---- the container: what lives as long as the Lambda sandbox


class _Container:
    """Settings, the authenticator and the registry, built on the first invocation rather than at
    import, so a deployment missing a setting fails its invocations naming the setting while the local
    stack can still load every function."""

    def __init__(self) -> None:
        self.settings = settings = DevicesSettings.from_environ()
        self.authenticator = JwtAuthenticator(
            JwtPolicy(
                issuer=settings.jwt_issuer,
                audience=settings.jwt_audience,
                algorithms=settings.jwt_algorithms,
                mailbox_claim=settings.jwt_mailbox_claim,
                admin_scope=settings.jwt_admin_scope,
            ),
            SecretsJwtKeys(settings.jwt_key_secret, settings.secrets_max_age_seconds),
        )
        # build_registry is looked up at each build: tests replace it with a fake's.
        self._registry = BuiltFromSecret(
            settings.exchange_servers_secret,
            settings.secrets_max_age_seconds,
            lambda servers: build_registry(settings, servers),
        )

    def registry(self) -> DeviceRegistry:
        """The registry for the servers secret as it is now: rebuilt only when the secret changed."""
        return self._registry.get()


def build_registry(settings: DevicesSettings, servers: str) -> DeviceRegistry:
    """The real registry over DynamoDB and Exchange (tests replace this function with a fake's)."""
    from ens.adapters.aws import client
    from ens.adapters.decision_log import DynamoDecisionLog
    from ens.adapters.device_store import DynamoDeviceStore
    from ens.adapters.exchange import ExchangeMailSource
    from ens.adapters.mailbox_store import DynamoMailboxStore
    from ens.adapters.subscription_store import DynamoSubscriptionStore
    from ens.core.exchange_servers import ExchangeDirectory
    from ens.services.devices import DeviceRegistry as Registry
    from ens.services.devices import RegistryPolicy

    dynamodb = client("dynamodb")
    registry: DeviceRegistry = Registry(
        devices=DynamoDeviceStore(settings.devices_table, dynamodb),
        mailboxes=DynamoMailboxStore(settings.mailboxes_table, dynamodb),
        subscriptions=DynamoSubscriptionStore(settings.subscriptions_table, dynamodb),
        exchange=ExchangeMailSource(
            ExchangeDirectory.from_json(servers),
            max_concurrency_per_server=settings.ews_max_concurrency,
            timeout_seconds=settings.ews_timeout_seconds,
        ),
        decisions=DynamoDecisionLog(settings.decisions_table, dynamodb, settings.decision_ttl_days),
        policy=RegistryPolicy(
            webhook_base_url=settings.webhook_base_url,
            status_frequency_minutes=settings.status_frequency_minutes,
            folders=settings.subscription_folders,
        ),
        clock=lambda: datetime.now(UTC),
    )
    return registry


@functools.cache
def _current() -> _Container:
    return _Container()


# ---- the Lambda entry point


@metrics.log_metrics
@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    started = time.monotonic()
    _count("DevicesApiRequests")  # also keeps Powertools from warning about an empty metrics flush
    caller: Caller | None = None
    reason = ""
    try:
        caller = _admit(event)
        app.context["caller"] = caller
        result = app.resolve(event, context)
    except ProblemRaised as raised:
        reason = raised.reason
        result = proxy_result(raised.problem, raised.headers)
    finally:
        app.context.clear()
    # One line per request; the route's template, not the path, and never a header.
    logger.info(
        "devices api request",
        extra={
            "method": event.get("httpMethod"),
            "route": event.get("resource"),
            "status": result.get("statusCode"),
            "caller": caller.subject if caller else None,
            "admin": caller.is_admin if caller else None,
            "auth_failure": reason or None,
            "duration_ms": round((time.monotonic() - started) * 1000, 1),
        },
    )
    return result


def _admit(event: Mapping[str, Any]) -> Caller:
    """Authentication and the body's envelope, before any routing or parsing."""
    headers = {str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items()}
    path = str(event.get("path") or "")
    try:
        caller = _current().authenticator.authenticate(headers.get("authorization"))
    except Unauthenticated as failure:
        with single_metric(name="ApiAuthFailures", unit=MetricUnit.Count, value=1) as metric:
            metric.add_dimension(name="reason", value=str(failure.reason))
        challenge = (
            "Bearer"
            if failure.reason is AuthFailure.MISSING
            else f'Bearer error="invalid_token", error_description="{failure.description}"'
        )
        raise ProblemRaised(
            Problem(
                type="urn:ens:problem:unauthenticated",
                title=HTTPStatus.UNAUTHORIZED.phrase,
                status=HTTPStatus.UNAUTHORIZED.value,
                detail=failure.description,
                instance=path or None,
            ),
            {"WWW-Authenticate": challenge},
            reason=str(failure.reason),
        ) from None
    except Exception as error:
        # The key secret is missing or malformed: the site's fault, and no reason to blame the client.
        logger.error("the JWT key secret cannot be used", extra={"error": type(error).__name__})
        raise ProblemRaised(
            Problem(
                type="urn:ens:problem:unavailable",
                title=HTTPStatus.SERVICE_UNAVAILABLE.phrase,
                status=HTTPStatus.SERVICE_UNAVAILABLE.value,
                detail="authentication is unavailable",
                instance=path or None,
            ),
            {"Retry-After": str(DEPENDENCY_RETRY_AFTER_SECONDS)},
        ) from None
    if str(event.get("httpMethod")) == "PUT" and _DEVICE_PATH.match(path):
        check_json_body(event, headers, path, MAX_BODY_BYTES)
    return caller


def openapi_document() -> str:
    """docs/openapi.json: the routes above, their models, the bearer scheme and the problem answers."""
    from aws_lambda_powertools.event_handler.openapi.models import HTTPBearer, Server

    document = json.loads(
        app.get_openapi_json_schema(
            title=API_TITLE,
            version=API_VERSION,
            description=(
                "Register iOS devices for new-mail notifications from on-premises Exchange. "
                "Every error is an RFC 9457 problem document. See docs/devices-api.md."
            ),
            servers=[Server(url="/", description="The DevicesApiUrl output of the stack")],
            security_schemes={"bearerAuth": HTTPBearer(bearerFormat="JWT")},
            security=[{"bearerAuth": []}],
        )
    )
    tidy_openapi(document)
    return json.dumps(document, indent=2) + "\n"


if __name__ == "__main__":  # `make openapi`
    print(openapi_document(), end="")

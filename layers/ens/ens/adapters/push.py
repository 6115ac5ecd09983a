"""CNS adapter: POST each payload to the Cloud Notification Service with a JWT bearer token.

The contract (docs/push.md): `POST <CNS_URL>` with a JSON payload and `Authorization: Bearer <token>`;
2xx accepted; 400 BadDeviceToken, 404 and 410 mean the device token is dead; 401/403 mean our token is
refused; 429 and 5xx are transient, with an optional Retry-After. One pooled requests Session for
the life of the container.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import jwt
import requests
from requests.adapters import HTTPAdapter

from ens.errors import AdminActionRequired, DependencyUnavailable, DeviceTokenRejected

_DEVICE_GONE_STATUSES = frozenset({404, 410})
_TRANSIENT_STATUSES = frozenset({429, 500, 502, 503, 504})
_FIRST_BACK_OFF_SECONDS = 0.2
_MAX_BACK_OFF_SECONDS = 5.0


class CnsUnavailable(DependencyUnavailable):
    """CNS kept failing (or was unreachable) until the time this invocation had ran out."""

    def __init__(self, detail: str, status: int | None) -> None:
        super().__init__(detail)
        self.status = status


class CnsTokenExpired(DependencyUnavailable):
    """The CNS bearer token has expired: nothing is sent; the records are retried once it is renewed."""


@dataclass(frozen=True, slots=True)
class CnsToken:
    value: str
    expires_at: datetime | None

    @classmethod
    def parse(cls, value: str) -> CnsToken:
        """Read the token's `exp` without verifying it: it is CNS's token, not ours to check."""
        token = value.strip()
        try:
            claims = jwt.decode(token, options={"verify_signature": False})
        except jwt.InvalidTokenError:
            return cls(token, None)  # an opaque token: CNS will say whether it takes it
        exp = claims.get("exp")
        return cls(token, datetime.fromtimestamp(exp, UTC) if isinstance(exp, int | float) else None)

    def days_left(self, now: datetime) -> float | None:
        if self.expires_at is None:
            return None
        return (self.expires_at - now).total_seconds() / 86400


@dataclass(frozen=True, slots=True)
class PushReceipt:
    status: int
    push_id: str | None
    attempts: int


class CnsPushGateway:
    def __init__(
        self,
        url: str,
        token: Callable[[], CnsToken],
        *,
        ca_bundle: str | None = None,
        pool_size: int = 10,
        connect_timeout: float = 2.0,
        read_timeout: float = 5.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._url = url
        self._token = token
        self._session = requests.Session()
        adapter = HTTPAdapter(pool_connections=1, pool_maxsize=pool_size, max_retries=0)
        self._session.mount("https://", adapter)
        self._session.mount("http://", adapter)
        # Verification is always on: the public CAs, or the one bundle this deployment names.
        self._verify: bool | str = ca_bundle or True
        self._timeout = (connect_timeout, read_timeout)
        self._clock = clock
        self._sleep = sleep

    def send(self, payload: bytes, *, seconds_left: Callable[[], float]) -> PushReceipt:
        """Deliver one payload, retrying transient failures while the invocation has time left."""
        token = self._token()
        if token.expires_at is not None and token.expires_at <= self._clock():
            raise CnsTokenExpired(
                f"the CNS token expired at {token.expires_at.isoformat()}; renew the secret"
            )
        back_off = _FIRST_BACK_OFF_SECONDS
        attempts = 0
        while True:
            attempts += 1
            status: int | None = None
            retry_after: float | None = None
            try:
                response = self._session.post(
                    self._url,
                    data=payload,
                    headers={"Authorization": f"Bearer {token.value}", "Content-Type": "application/json"},
                    timeout=self._timeout,
                    verify=self._verify,
                )
            except requests.RequestException as error:
                failure = f"CNS unreachable: {type(error).__name__}"
            else:
                status = response.status_code
                if 200 <= status < 300:
                    return PushReceipt(status, _push_id(response), attempts)
                reason = _reason(response)
                if status in _DEVICE_GONE_STATUSES or (status == 400 and reason == "BadDeviceToken"):
                    raise DeviceTokenRejected(status, reason)
                if status in (401, 403):
                    raise AdminActionRequired(
                        "cns_unauthorized", f"CNS refused our token: HTTP {status} {reason}"
                    )
                if status not in _TRANSIENT_STATUSES:
                    raise AdminActionRequired(
                        "cns_rejected_payload", f"CNS refused the payload: HTTP {status} {reason}"
                    )
                failure = f"CNS answered HTTP {status} {reason}"
                retry_after = _retry_after(response)
            wait = retry_after if retry_after is not None else back_off
            # Keep a margin for the rest of the batch; past it, SQS redelivers the record later.
            if wait + sum(self._timeout) > seconds_left():
                raise CnsUnavailable(f"{failure}; gave up after {attempts} attempt(s)", status)
            self._sleep(wait)
            back_off = min(back_off * 2, _MAX_BACK_OFF_SECONDS)


def _reason(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return ""
    return str(body.get("reason", "")) if isinstance(body, dict) else ""


def _push_id(response: requests.Response) -> str | None:
    header = response.headers.get("apns-id")
    if header:
        return header
    try:
        body = response.json()
    except ValueError:
        return None
    return str(body["id"]) if isinstance(body, dict) and "id" in body else None


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After", "").strip()
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date: rare from a relay; our own back-off applies

"""Bearer-token authentication for the devices API: keys from Secrets Manager, checks in ens.core.auth.

The secret is read through Powertools Parameters (cached for `max_age_seconds`), so a key rotation
reaches every warm container within that time; the parsed keys are kept until the secret's text
changes, so a warm request costs no PEM or JWK parsing.
"""

from __future__ import annotations

from collections.abc import Callable

from aws_lambda_powertools.utilities.parameters import get_secret

from ens.core.auth import JwtKeys, JwtPolicy, bearer_token, verify
from ens.core.registrations import Caller


class SecretsJwtKeys:
    """The JWT key secret (format: docs/devices-api.md) as parsed keys, re-read every `max_age_seconds`."""

    def __init__(
        self,
        secret_name: str,
        max_age_seconds: int = 300,
        fetch: Callable[[str, int], str] | None = None,
    ) -> None:
        self._name = secret_name
        self._max_age = max_age_seconds
        self._fetch = fetch or _fetch_secret
        self._parsed: tuple[str, JwtKeys] | None = None

    def __call__(self) -> JwtKeys:
        text = self._fetch(self._name, self._max_age)
        if self._parsed is None or self._parsed[0] != text:
            self._parsed = (text, JwtKeys.from_json(text))
        return self._parsed[1]


def _fetch_secret(name: str, max_age: int) -> str:
    return str(get_secret(name, max_age=max_age))


class JwtAuthenticator:
    """`Authorization` header in, Caller out, or ens.core.auth.Unauthenticated."""

    def __init__(self, policy: JwtPolicy, keys: Callable[[], JwtKeys]) -> None:
        self._policy = policy
        self._keys = keys

    def authenticate(self, authorization: str | None) -> Caller:
        token = bearer_token(authorization)
        return verify(token, self._policy, self._keys())

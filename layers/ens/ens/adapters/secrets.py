"""Values built from a Secrets Manager secret, kept until the secret's text changes.

Powertools Parameters caches each read for `max_age` seconds, so a rotated secret (a new Exchange
server, a new password) applies within that time without a redeploy, and nothing is rebuilt when
the text is the same.
"""

from __future__ import annotations

from collections.abc import Callable

from aws_lambda_powertools.utilities.parameters import get_secret


class BuiltFromSecret[T]:
    def __init__(self, secret_id: str, max_age_seconds: int, build: Callable[[str], T]) -> None:
        self._secret_id = secret_id
        self._max_age = max_age_seconds
        self._build = build
        self._built: tuple[str, T] | None = None

    def get(self) -> T:
        text = str(get_secret(self._secret_id, max_age=self._max_age))
        if self._built is None or self._built[0] != text:
            self._built = (text, self._build(text))
        return self._built[1]

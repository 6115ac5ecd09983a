"""Typed settings read from the Lambda environment (names as in template.yaml)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from ens.core.notifications import DEFAULT_MAX_NOTIFICATION_BYTES


class SettingsError(RuntimeError):
    """The function's environment is incomplete or wrong; raised at cold start, named precisely."""


def _required(environ: Mapping[str, str], name: str) -> str:
    value = environ.get(name, "").strip()
    if not value:
        raise SettingsError(f"environment variable {name} is not set")
    return value


def _positive_int(environ: Mapping[str, str], name: str, default: int) -> int:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"environment variable {name}={raw!r} is not a whole number") from None
    if value <= 0:
        raise SettingsError(f"environment variable {name} must be positive, not {value}")
    return value


@dataclass(frozen=True)
class WebhookSettings:
    subscriptions_table: str
    notifications_queue_url: str
    max_notification_bytes: int

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] = os.environ) -> WebhookSettings:
        return cls(
            subscriptions_table=_required(environ, "SUBSCRIPTIONS_TABLE"),
            notifications_queue_url=_required(environ, "NOTIFICATIONS_QUEUE_URL"),
            max_notification_bytes=_positive_int(
                environ, "MAX_NOTIFICATION_BYTES", DEFAULT_MAX_NOTIFICATION_BYTES
            ),
        )

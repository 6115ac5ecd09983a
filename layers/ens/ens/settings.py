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


def _optional(environ: Mapping[str, str], name: str) -> str | None:
    return environ.get(name, "").strip() or None


def _choice(environ: Mapping[str, str], name: str, choices: tuple[str, ...], default: str) -> str:
    value = environ.get(name, "").strip() or default
    if value not in choices:
        raise SettingsError(f"environment variable {name}={value!r} is not one of {', '.join(choices)}")
    return value


@dataclass(frozen=True)
class ConsumerSettings:
    devices_table: str
    decisions_table: str
    idempotency_table: str
    exchange_servers_secret: str
    cns_url: str
    cns_token_secret: str
    cns_ca_bundle: str | None
    content_policy: str
    stale_event_minutes: int
    decision_ttl_days: int
    ews_max_concurrency: int
    ews_timeout_seconds: int
    vip_category: str
    vip_cache_seconds: int
    push_idempotency_hours: int
    secrets_max_age_seconds: int

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] = os.environ) -> ConsumerSettings:
        return cls(
            devices_table=_required(environ, "DEVICES_TABLE"),
            decisions_table=_required(environ, "DECISIONS_TABLE"),
            idempotency_table=_required(environ, "IDEMPOTENCY_TABLE"),
            exchange_servers_secret=_required(environ, "EXCHANGE_SERVERS_SECRET"),
            cns_url=_required(environ, "CNS_URL"),
            cns_token_secret=_required(environ, "CNS_TOKEN_SECRET"),
            cns_ca_bundle=_optional(environ, "CNS_CA_BUNDLE"),
            content_policy=_choice(environ, "CONTENT_POLICY", ("full", "sender_only", "count_only"), "full"),
            stale_event_minutes=_positive_int(environ, "STALE_EVENT_MINUTES", 60),
            decision_ttl_days=_positive_int(environ, "DECISION_TTL_DAYS", 14),
            ews_max_concurrency=_positive_int(environ, "EWS_MAX_CONCURRENCY", 10),
            ews_timeout_seconds=_positive_int(environ, "EWS_TIMEOUT_SECONDS", 10),
            vip_category=environ.get("VIP_CATEGORY", "").strip() or "VIP",
            vip_cache_seconds=_positive_int(environ, "VIP_CACHE_SECONDS", 900),
            push_idempotency_hours=_positive_int(environ, "PUSH_IDEMPOTENCY_HOURS", 72),
            secrets_max_age_seconds=_positive_int(environ, "SECRETS_MAX_AGE_SECONDS", 300),
        )


def _bounded_int(environ: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    value = _positive_int(environ, name, default)
    if not low <= value <= high:
        raise SettingsError(f"environment variable {name} must be within {low}..{high}, not {value}")
    return value


def _names(environ: Mapping[str, str], name: str, default: str) -> tuple[str, ...]:
    raw = environ.get(name, "").strip() or default
    return tuple(part.strip() for part in raw.split(",") if part.strip())


@dataclass(frozen=True)
class DevicesSettings:
    devices_table: str
    subscriptions_table: str
    mailboxes_table: str
    decisions_table: str
    exchange_servers_secret: str
    webhook_base_url: str
    status_frequency_minutes: int
    subscription_folders: tuple[str, ...]
    jwt_issuer: str
    jwt_audience: str
    jwt_algorithms: frozenset[str]
    jwt_key_secret: str
    jwt_mailbox_claim: str
    jwt_admin_scope: str
    decision_ttl_days: int
    ews_max_concurrency: int
    ews_timeout_seconds: int
    secrets_max_age_seconds: int

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] = os.environ) -> DevicesSettings:
        from ens.core.auth import SUPPORTED_ALGORITHMS

        algorithms = frozenset(a.upper() for a in _names(environ, "JWT_ALGORITHMS", "RS256"))
        unknown = algorithms - SUPPORTED_ALGORITHMS
        if unknown:
            raise SettingsError(
                f"environment variable JWT_ALGORITHMS names {sorted(unknown)}; "
                f"known: {', '.join(sorted(SUPPORTED_ALGORITHMS))}"
            )
        webhook_base_url = _required(environ, "WEBHOOK_BASE_URL")
        if not webhook_base_url.endswith("/"):
            webhook_base_url += "/"  # each subscription appends its token
        return cls(
            devices_table=_required(environ, "DEVICES_TABLE"),
            subscriptions_table=_required(environ, "SUBSCRIPTIONS_TABLE"),
            mailboxes_table=_required(environ, "MAILBOXES_TABLE"),
            decisions_table=_required(environ, "DECISIONS_TABLE"),
            exchange_servers_secret=_required(environ, "EXCHANGE_SERVERS_SECRET"),
            webhook_base_url=webhook_base_url,
            # EWS accepts a StatusFrequency of 1..1440 minutes.
            status_frequency_minutes=_bounded_int(environ, "STATUS_FREQUENCY_MINUTES", 15, 1, 1440),
            subscription_folders=_names(environ, "SUBSCRIPTION_FOLDERS", "inbox"),
            jwt_issuer=_required(environ, "JWT_ISSUER"),
            jwt_audience=_required(environ, "JWT_AUDIENCE"),
            jwt_algorithms=algorithms,
            jwt_key_secret=_required(environ, "JWT_KEY_SECRET"),
            jwt_mailbox_claim=environ.get("JWT_MAILBOX_CLAIM", "").strip() or "sub",
            jwt_admin_scope=environ.get("JWT_ADMIN_SCOPE", "").strip() or "ens:admin",
            decision_ttl_days=_positive_int(environ, "DECISION_TTL_DAYS", 14),
            ews_max_concurrency=_positive_int(environ, "EWS_MAX_CONCURRENCY", 10),
            ews_timeout_seconds=_positive_int(environ, "EWS_TIMEOUT_SECONDS", 10),
            secrets_max_age_seconds=_positive_int(environ, "SECRETS_MAX_AGE_SECONDS", 300),
        )


@dataclass(frozen=True)
class WatchdogSettings:
    subscriptions_table: str
    mailboxes_table: str
    notifications_queue_url: str
    exchange_servers_secret: str
    webhook_base_url: str
    status_frequency_minutes: int
    subscription_folders: tuple[str, ...]
    ews_max_concurrency: int
    ews_timeout_seconds: int
    secrets_max_age_seconds: int
    heartbeat_grace_minutes: int
    give_up_after: int
    max_retry_minutes: int
    failed_retry_minutes: int

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] = os.environ) -> WatchdogSettings:
        webhook_base_url = _required(environ, "WEBHOOK_BASE_URL")
        if not webhook_base_url.endswith("/"):
            webhook_base_url += "/"
        return cls(
            subscriptions_table=_required(environ, "SUBSCRIPTIONS_TABLE"),
            mailboxes_table=_required(environ, "MAILBOXES_TABLE"),
            notifications_queue_url=_required(environ, "NOTIFICATIONS_QUEUE_URL"),
            exchange_servers_secret=_required(environ, "EXCHANGE_SERVERS_SECRET"),
            webhook_base_url=webhook_base_url,
            status_frequency_minutes=_bounded_int(environ, "STATUS_FREQUENCY_MINUTES", 15, 1, 1440),
            subscription_folders=_names(environ, "SUBSCRIPTION_FOLDERS", "inbox"),
            ews_max_concurrency=_positive_int(environ, "EWS_MAX_CONCURRENCY", 10),
            ews_timeout_seconds=_positive_int(environ, "EWS_TIMEOUT_SECONDS", 10),
            secrets_max_age_seconds=_positive_int(environ, "SECRETS_MAX_AGE_SECONDS", 300),
            heartbeat_grace_minutes=_positive_int(environ, "HEARTBEAT_GRACE_MINUTES", 5),
            give_up_after=_positive_int(environ, "WATCHDOG_GIVE_UP_AFTER", 5),
            max_retry_minutes=_positive_int(environ, "WATCHDOG_MAX_RETRY_MINUTES", 60),
            failed_retry_minutes=_positive_int(environ, "WATCHDOG_FAILED_RETRY_MINUTES", 360),
        )

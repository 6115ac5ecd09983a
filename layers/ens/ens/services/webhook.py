"""Receiving an EWS push callback: check, judge by token, queue mail events, record progress, reply.

Knows nothing of API Gateway or Lambda; the handler turns a request into `CallbackRequest` and
`CallbackOutcome` back into a response. Order matters: events are queued before the subscription
record moves on and before Exchange hears OK, so a failure anywhere leaves Exchange to retry.
"""

from __future__ import annotations

import enum
import json
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from ens.core.mail_events import MailEvent, mail_events
from ens.core.notifications import (
    DEFAULT_MAX_NOTIFICATION_BYTES,
    REPLY_CONTENT_TYPE,
    NotificationRejected,
    RejectReason,
    SubscriptionStatus,
    check_request,
    parse_send_notification,
    reply,
)
from ens.core.subscriptions import (
    CallbackProgress,
    Subscription,
    Verdict,
    is_well_formed_token,
    judge,
    progress,
)
from ens.errors import DependencyUnavailable

RETRY_AFTER_SECONDS = 30  # Exchange's own first retry interval


class SubscriptionStore(Protocol):
    def get(self, token: str) -> Subscription | None: ...

    def record_callback(
        self, subscription: Subscription, progress: CallbackProgress, seen_at: str
    ) -> bool: ...


class MailEventQueue(Protocol):
    def send(self, events: Sequence[MailEvent]) -> None: ...


@dataclass(frozen=True)
class CallbackRequest:
    token: str | None
    body: bytes | None  # None: the transport's encoding of the body was broken
    content_type: str | None


class CallbackResult(enum.StrEnum):
    """What became of a callback; the handler picks its metric and log level by it."""

    OK = "ok"
    UNSUBSCRIBE = "unsubscribe"
    REJECTED = "rejected"  # the request itself is unacceptable: 4xx
    UNKNOWN_TOKEN = "unknown_token"  # noqa: S105  (a result, not a secret): 404
    RETRY = "retry"  # 503: Exchange is to try again


@dataclass(frozen=True)
class CallbackOutcome:
    """The HTTP answer plus what happened, for logs and metrics."""

    status_code: int
    body: bytes
    content_type: str
    result: CallbackResult
    reason: str | None = None  # why, when not ok
    mailbox: str | None = None
    subscription_id: str | None = None
    events_by_kind: Counter[str] = field(default_factory=Counter)
    queued: int = 0
    gap_from_watermark: str | None = None
    replay: bool = False
    exchange_error: str | None = None  # ResponseCode of an error message Exchange sent
    fault: str | None = None  # the exception behind a dependency_unavailable 503
    headers: dict[str, str] = field(default_factory=dict)


def _utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class CallbackReceiver:
    def __init__(
        self,
        subscriptions: SubscriptionStore,
        queue: MailEventQueue,
        max_body_bytes: int = DEFAULT_MAX_NOTIFICATION_BYTES,
        clock: Callable[[], str] = _utc_now,
    ) -> None:
        self._subscriptions = subscriptions
        self._queue = queue
        self._max_body_bytes = max_body_bytes
        self._clock = clock

    def receive(self, request: CallbackRequest) -> CallbackOutcome:
        """Answer one callback. Never Unsubscribe because of our own fault: a 503 makes Exchange retry."""
        try:
            return self._receive(request)
        except DependencyUnavailable as error:
            return _error(
                503,
                CallbackResult.RETRY,
                "dependency_unavailable",
                "temporarily unavailable; retry",
                fault=type(error.__cause__).__name__ if error.__cause__ else type(error).__name__,
            )

    def _receive(self, request: CallbackRequest) -> CallbackOutcome:
        if not is_well_formed_token(request.token):
            return _not_found()
        try:
            if request.body is None:
                raise NotificationRejected(
                    RejectReason.MALFORMED_BODY, "the body's transport encoding is broken"
                )
            check_request(request.body, request.content_type, self._max_body_bytes)
            notification = parse_send_notification(request.body)
        except NotificationRejected as rejected:
            return _error(
                rejected.http_status, CallbackResult.REJECTED, rejected.reason.value, rejected.detail
            )
        assert request.token is not None  # checked by is_well_formed_token
        subscription = self._subscriptions.get(request.token)
        if subscription is None:
            return _not_found()

        events_by_kind = Counter(event.kind.value for event in notification.events)
        context = {
            "mailbox": subscription.mailbox,
            "subscription_id": subscription.subscription_id,
            "events_by_kind": events_by_kind,
        }
        verdict = judge(subscription, notification)
        if verdict in (Verdict.RETIRED, Verdict.FOREIGN_SUBSCRIPTION):
            return _soap(
                SubscriptionStatus.UNSUBSCRIBE,
                result=CallbackResult.UNSUBSCRIBE,
                reason=verdict.value,
                **context,
            )
        if verdict is Verdict.NOT_YET_ACTIVE:
            return _error(
                503,
                CallbackResult.RETRY,
                verdict.value,
                "the subscription is not active yet; retry",
                **context,
            )

        callback_progress = progress(subscription, notification)
        events = mail_events(
            subscription.mailbox, notification, after_watermark=callback_progress.queued_through
        )
        if events:
            self._queue.send(events)
        if not self._subscriptions.record_callback(subscription, callback_progress, self._clock()):
            # Retired or replaced between our read and write. The events are queued all the same:
            # whether the mailbox still has a registered device is the consumer's decision.
            return _soap(
                SubscriptionStatus.UNSUBSCRIBE,
                result=CallbackResult.UNSUBSCRIBE,
                reason="retired_meanwhile",
                **context,
            )
        return _soap(
            SubscriptionStatus.OK,
            result=CallbackResult.OK,
            queued=len(events),
            gap_from_watermark=callback_progress.gap_from_watermark,
            replay=callback_progress.replay,
            exchange_error=callback_progress.error_code,
            **context,
        )


def _soap(status: SubscriptionStatus, **details: Any) -> CallbackOutcome:
    return CallbackOutcome(status_code=200, body=reply(status), content_type=REPLY_CONTENT_TYPE, **details)


def _not_found() -> CallbackOutcome:
    return _error(404, CallbackResult.UNKNOWN_TOKEN, "unknown_token", "no subscription has this callback URL")


def _error(
    status_code: int, result: CallbackResult, reason: str, message: str, **details: Any
) -> CallbackOutcome:
    """A non-SOAP answer: JSON naming the reason, with Retry-After on a 503."""
    headers = {"Retry-After": str(RETRY_AFTER_SECONDS)} if status_code == 503 else {}
    return CallbackOutcome(
        status_code=status_code,
        body=json.dumps({"error": reason, "message": message}).encode(),
        content_type="application/json",
        result=result,
        reason=reason,
        headers=headers,
        **details,
    )

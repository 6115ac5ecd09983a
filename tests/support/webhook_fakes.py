"""In-memory fakes of the webhook service's Protocols (SubscriptionStore, MailEventQueue).

They keep what the DynamoDB and SQS adapters keep, with the same rules (conditional write on the
subscription's state and id, the first gap wins, a clean callback clears the error), so the
service logic runs thousands of times a second in unit and property tests. Each can be told to fail
the next call the way the real dependency fails: with DependencyUnavailable.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta

from ens.core.mail_events import MailEvent
from ens.core.subscriptions import CallbackProgress, Subscription, SubscriptionState
from ens.core.watchdog import due_after_callback
from ens.errors import DependencyUnavailable


@dataclass
class InMemorySubscriptionStore:
    subscriptions: dict[str, Subscription] = field(default_factory=dict)
    fail_next_get: bool = False
    fail_next_record: bool = False
    # The write succeeds but its answer is lost (a timeout after DynamoDB committed): 503 all the same.
    fail_after_next_record: bool = False

    def put(self, subscription: Subscription) -> None:
        self.subscriptions[subscription.token] = subscription

    def get(self, token: str) -> Subscription | None:
        if self.fail_next_get:
            self.fail_next_get = False
            raise DependencyUnavailable("GetItem failed")
        return self.subscriptions.get(token)

    def record_callback(self, subscription: Subscription, progress: CallbackProgress, seen_at: str) -> bool:
        if self.fail_next_record:
            self.fail_next_record = False
            raise DependencyUnavailable("UpdateItem failed")
        current = self.subscriptions.get(subscription.token)
        if (
            current is None
            or current.state is not SubscriptionState.ACTIVE
            or current.subscription_id != subscription.subscription_id
        ):
            return False
        changes: dict[str, object] = {
            "last_seen_at": seen_at,
            "last_error_code": progress.error_code,
            "due_at": due_after_callback(current, progress, seen_at, timedelta(minutes=5)),
        }
        if (
            progress.last_event_at is not None
            and progress.gap_from_watermark is None
            and current.gap_from_watermark is None
        ):
            changes["last_event_at"] = progress.last_event_at
        if progress.last_watermark is not None:
            changes["last_watermark"] = progress.last_watermark
        if progress.heartbeat:
            changes["last_heartbeat_at"] = seen_at
        if progress.gap_from_watermark is not None and current.gap_from_watermark is None:
            changes["gap_from_watermark"] = progress.gap_from_watermark
        if progress.previous_watermark is not None:
            changes["last_previous_watermark"] = progress.previous_watermark
        self.subscriptions[subscription.token] = dataclasses.replace(current, **changes)  # type: ignore[arg-type]
        if self.fail_after_next_record:
            self.fail_after_next_record = False
            raise DependencyUnavailable("UpdateItem timed out after the write")
        return True


@dataclass
class InMemoryMailEventQueue:
    sent: list[MailEvent] = field(default_factory=list)
    fail_next_send: bool = False

    def send(self, events: Sequence[MailEvent]) -> None:
        if self.fail_next_send:
            self.fail_next_send = False
            raise DependencyUnavailable("SendMessageBatch failed")
        self.sent.extend(events)

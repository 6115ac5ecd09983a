"""The decision log: one record per (mail event, device), for "why didn't my phone buzz?".

A Decision holds identifiers, times and the verdict, never the subject, sender or snippet: the
log explains decisions, it is not a copy of the mail.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from ens.core.ids import digest
from ens.core.rules import Reason, Rule

EVENT_KINDS = frozenset({"NewMail", "UnreadCountChanged"})


class Outcome(enum.StrEnum):
    PUSHED = "pushed"
    BADGE_ONLY = "badge_only"  # no alert (suppressed, or a count change), the badge was updated
    SUPPRESSED = "suppressed"


@dataclass(frozen=True, slots=True)
class Decision:
    mailbox: str
    device_id: str | None  # None: the mailbox had no device / a mailbox-level reason
    item_id: str | None
    event_kind: str  # "NewMail" | "UnreadCountChanged"
    outcome: Outcome
    reason: Reason | None
    rule: Rule | None
    received_at: datetime | None
    decided_at: datetime
    latency_ms: int | None  # received_at → decided_at when pushed

    def __post_init__(self) -> None:
        if self.event_kind not in EVENT_KINDS:
            raise ValueError(f"event_kind must be one of {sorted(EVENT_KINDS)}, got {self.event_kind!r}")
        if self.outcome is Outcome.PUSHED and self.reason is not None:
            raise ValueError("a pushed decision has no suppression reason")
        if self.outcome is Outcome.SUPPRESSED and self.reason is None:
            raise ValueError("a suppressed decision needs its reason")
        for name in ("received_at", "decided_at"):
            moment = getattr(self, name)
            if moment is not None and (moment.tzinfo is None or moment.utcoffset() is None):
                raise ValueError(f"{name} must be timezone-aware")

    @property
    def correlation_id(self) -> str:
        return correlation_id(self.mailbox, self.item_id)

    def to_record(self, ttl_days: int) -> dict[str, Any]:
        """A JSON-able item for the DecisionsTable; `expires_at` is the TTL attribute (epoch seconds)."""
        if ttl_days < 1:
            raise ValueError(f"ttl_days must be at least 1, got {ttl_days}")
        expires_at = self.decided_at + timedelta(days=ttl_days)
        return {
            "mailbox": self.mailbox,
            "device_id": self.device_id,
            "item_id": self.item_id,
            "event_kind": self.event_kind,
            "outcome": str(self.outcome),
            "reason": None if self.reason is None else str(self.reason),
            "rule": None if self.rule is None else str(self.rule),
            "received_at": None if self.received_at is None else _iso(self.received_at),
            "decided_at": _iso(self.decided_at),
            "latency_ms": self.latency_ms,
            "correlation_id": self.correlation_id,
            "expires_at": int(expires_at.timestamp()),
        }


def latency_ms(received_at: datetime | None, decided_at: datetime) -> int | None:
    """Received → decided in whole milliseconds; never negative (Exchange's clock may run ahead)."""
    if received_at is None:
        return None
    return max(0, (decided_at - received_at) // timedelta(milliseconds=1))


def idempotency_key(mailbox: str, item_id: str, device_id: str) -> str:
    """The same (mailbox, item, device) always gives the same key, whichever SQS message carried it."""
    return "push-" + digest("idempotency", mailbox.lower(), item_id, device_id, length=64)


def correlation_id(mailbox: str, item_id: str | None) -> str:
    """For logs: the mailbox in clear (operators search by it), the item as a short hash."""
    return f"{mailbox.lower()}/{digest('item', item_id, length=16) if item_id else '-'}"


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")

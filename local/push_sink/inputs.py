"""What the push sink takes from outside: the push payload ENS sends, and fault rules.

The payload model checks only what the sink relies on (and what APNs itself would refuse); any other key
passes through untouched, so the consumer can grow its payload without the sink standing in the way.
Fault rules and control bodies are strict: an unknown key there is a typo, not intent.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeInt,
    PositiveInt,
    model_validator,
)

from exchange_simulator.inputs import explain

__all__ = ["Alert", "Aps", "FaultSpec", "PushPayload", "explain"]

NonEmptyText = Annotated[str, Field(min_length=1)]

# The reason APNs gives with each status, used when a fault rule names none.
DEFAULT_REASONS = {
    400: "BadRequest",
    403: "Forbidden",
    404: "BadPath",
    405: "MethodNotAllowed",
    410: "Unregistered",
    413: "PayloadTooLarge",
    429: "TooManyRequests",
    500: "InternalServerError",
    503: "ServiceUnavailable",
}


def _at_most_64_bytes(value: str) -> str:
    # APNs counts apns-collapse-id in bytes, not characters.
    if len(value.encode()) > 64:
        raise ValueError("must be at most 64 bytes in UTF-8")
    return value


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True, populate_by_name=True)


class Alert(_Lenient):
    title: str | None = None
    subtitle: str | None = None
    body: str | None = None


class Aps(_Lenient):
    alert: Alert | None = None
    badge: NonNegativeInt | None = None
    sound: str | None = None
    thread_id: str | None = Field(default=None, alias="thread-id")
    mutable_content: Literal[0, 1] | None = Field(default=None, alias="mutable-content")


class PushPayload(_Lenient):
    """The body of `POST /v1/push`: one notification for one device."""

    device_token: NonEmptyText
    mailbox: NonEmptyText
    kind: Literal["summary", "count", "badge"]
    push_type: Literal["alert"]
    priority: Literal[10, 5]
    collapse_id: Annotated[str, AfterValidator(_at_most_64_bytes)]
    aps: Aps
    mail: dict[str, Any] | None = None

    def headline(self) -> str:
        """What the console line says about the notification: its title, else its badge."""
        if self.aps.alert is not None and self.aps.alert.title:
            return self.aps.alert.title
        if self.aps.badge is not None:
            return f"badge {self.aps.badge}"
        return "no alert, no badge"


class FaultSpec(BaseModel):
    """A fault rule: `sink.fail_next(...)`, `sink.fail_fraction(...)`, `POST /_sink/faults`."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    status: Annotated[int, Field(ge=400, le=599)]
    count: PositiveInt | None = None
    fraction: Annotated[float, Field(gt=0.0, le=1.0)] | None = None
    # Seeds this rule's own random numbers, so "30 % fail" picks the same pushes on every run.
    seed: int | None = None
    retry_after: NonNegativeInt | None = None
    reason: NonEmptyText | None = None

    @model_validator(mode="after")
    def _fires_one_way(self) -> Self:
        if self.count is not None and self.fraction is not None:
            raise ValueError("give count or fraction, not both")
        return self

    @property
    def answer_reason(self) -> str:
        return self.reason or DEFAULT_REASONS.get(self.status, "Fault")

"""A mail as the Exchange adapter hands it to the rules and the payload builder."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Mail:
    item_id: str
    received_at: datetime  # aware, UTC
    is_read: bool
    subject: str | None = None
    sender_name: str | None = None
    sender_address: str | None = None  # lower-cased by the adapter
    importance: str | None = None  # "Low" | "Normal" | "High"
    internet_message_id: str | None = None
    folder_id: str | None = None
    preview: str | None = None  # item:Preview, or the truncated text body

    def __post_init__(self) -> None:
        # A naive time would be read in the server's zone: exactly what the rules must never do.
        if self.received_at.tzinfo is None or self.received_at.utcoffset() is None:
            raise ValueError("Mail.received_at must be timezone-aware")


@dataclass(frozen=True, slots=True)
class ReceivedMail:
    """A mail found in the inbox by reconcile (FindItem): enough to queue it as a NewMail event."""

    item_id: str
    change_key: str | None
    received_at: datetime  # aware, UTC
    folder_id: str | None = None

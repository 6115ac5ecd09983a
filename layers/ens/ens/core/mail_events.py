"""The work the webhook hands to the mail consumer: one queue message per relevant event.

Queued:
- NewMail: a message arrived; the consumer fetches it, applies the user's rules and pushes.
- Modified on a folder with UnreadCount: the unread count changed (a mail was read elsewhere,
  for instance); the consumer updates badge-only devices.
Counted but not queued: Status (heartbeat, recorded on the subscription), Created (Exchange raises
it next to NewMail for the same delivery), Moved, Copied, Deleted, FreeBusyChanged, and Modified
on items (read flags, categories: nothing to notify).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from ens.core.notifications import EventKind, NotificationEvent, SendNotification

MESSAGE_VERSION = 1


@dataclass(frozen=True, slots=True)
class MailEvent:
    kind: str  # "NewMail" or "UnreadCountChanged"
    mailbox: str
    subscription_id: str
    watermark: str | None
    timestamp: str | None
    folder_id: str | None
    item_id: str | None = None
    change_key: str | None = None
    unread_count: int | None = None

    def to_message(self) -> str:
        return json.dumps({"v": MESSAGE_VERSION, **asdict(self)}, separators=(",", ":"))

    @classmethod
    def from_message(cls, body: str) -> MailEvent:
        data = json.loads(body)
        version = data.pop("v", None)
        if version != MESSAGE_VERSION:
            raise ValueError(f"unsupported mail event version {version!r}")
        return cls(**data)


def mail_events(
    mailbox: str, notification: SendNotification, after_watermark: str | None = None
) -> list[MailEvent]:
    """The queue messages for a callback's events; with `after_watermark`, only for those after it."""
    events: list[MailEvent] = []
    skipping = after_watermark is not None
    for item in notification.notifications:
        for event in item.events:
            if skipping:
                skipping = event.watermark != after_watermark
                continue
            mail_event = _mail_event(mailbox, item.subscription_id, event)
            if mail_event is not None:
                events.append(mail_event)
    return events


def _mail_event(mailbox: str, subscription_id: str, event: NotificationEvent) -> MailEvent | None:
    if event.kind is EventKind.NEW_MAIL:
        # Queued even without an ItemId (the schema allows a FolderId instead): the consumer
        # records why it cannot push, rather than the mail vanishing here.
        return MailEvent(
            kind="NewMail",
            mailbox=mailbox,
            subscription_id=subscription_id,
            watermark=event.watermark,
            timestamp=event.timestamp,
            folder_id=event.parent_folder_id.id if event.parent_folder_id else None,
            item_id=event.item_id.id if event.item_id else None,
            change_key=event.item_id.change_key if event.item_id else None,
        )
    if event.kind is EventKind.MODIFIED and event.folder_id is not None and event.unread_count is not None:
        return MailEvent(
            kind="UnreadCountChanged",
            mailbox=mailbox,
            subscription_id=subscription_id,
            watermark=event.watermark,
            timestamp=event.timestamp,
            folder_id=event.folder_id.id,
            unread_count=event.unread_count,
        )
    return None

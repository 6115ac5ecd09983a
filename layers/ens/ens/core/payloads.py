"""The JSON the consumer posts to CNS for one device. docs/push.md describes every field.

Texts from the mail are cleaned (control and bidi-override characters become spaces, whitespace
runs collapse) and cut on character boundaries that do not split a visible character (a combining
mark, an emoji's ZWJ sequence or skin tone, a flag), with "…" marking every cut. `encode` keeps the
whole payload within APNs' 4 KB by shortening the snippet, then the subject, then the sender name.
"""

from __future__ import annotations

import copy
import enum
import json
import unicodedata
from datetime import UTC
from typing import Any, Literal

from ens.core.devices import ContentMode, ContentPolicy, Device
from ens.core.ids import digest
from ens.core.mail import Mail

APNS_MAX_PAYLOAD_BYTES = 4096
ELLIPSIS = "…"
ALERT_PRIORITY = 10
BADGE_PRIORITY = 5
SENDER_ONLY_BODY = "New message"
COUNT_TITLE = "New mail"
UNKNOWN_SENDER = "Unknown sender"

# Identifiers cannot be shortened, only dropped: these caps (UTF-8 bytes as JSON) keep a payload
# from a valid Device within APNs' limit whatever Exchange sends. Real ones are far shorter.
MAX_MESSAGE_ID_BYTES = 512
MAX_FOLDER_ID_BYTES = 256
MAX_SENDER_ADDRESS_BYTES = 320

Content = Literal["full", "sender_only", "count"]


class PushKind(enum.StrEnum):
    SUMMARY = "summary"
    COUNT = "count"
    BADGE = "badge"


class PayloadTooLarge(ValueError):
    """Even with every text shortened to nothing the payload exceeds APNs' limit."""


def effective_content(mode: ContentMode, policy: ContentPolicy) -> Content:
    """The device's choice, capped by the administrator's policy."""
    if policy is ContentPolicy.COUNT_ONLY or mode is ContentMode.COUNT:
        return "count"
    if policy is ContentPolicy.SENDER_ONLY:
        return "sender_only"
    return "full"


def alert_payload(
    device: Device, mail: Mail, *, unread_count: int | None, policy: ContentPolicy
) -> dict[str, Any]:
    content = effective_content(device.rules.content, policy)
    ids = {
        "internet_message_id": _identifier(mail.internet_message_id, MAX_MESSAGE_ID_BYTES),
        "folder_id": _identifier(mail.folder_id, MAX_FOLDER_ID_BYTES),
    }
    if content == "count":
        kind = PushKind.COUNT
        collapse_id = count_collapse_id(device.mailbox)
        mail_part: dict[str, Any] = ids
        alert = {"title": COUNT_TITLE, "body": count_text(unread_count)}
    else:
        kind = PushKind.SUMMARY
        collapse_id = mail_collapse_id(device.mailbox, mail.item_id)
        name = clean_text(mail.sender_name) or None
        address = _identifier(mail.sender_address, MAX_SENDER_ADDRESS_BYTES)
        sender = {"name": name, "address": address}
        received_at = mail.received_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        title = name or address or UNKNOWN_SENDER
        if content == "sender_only":
            mail_part = {"sender": sender, "received_at": received_at, **ids}
            alert = {"title": title, "body": SENDER_ONLY_BODY}
        else:
            subject = clean_text(mail.subject) or None
            snippet = cut(clean_text(mail.preview), device.rules.snippet_length) or None
            mail_part = {
                "sender": sender,
                "subject": subject,
                "snippet": snippet,
                "received_at": received_at,
                **ids,
            }
            alert = _without_none({"title": title, "subtitle": subject, "body": snippet})
    aps: dict[str, Any] = {"alert": alert}
    if unread_count is not None:
        aps["badge"] = _count(unread_count)
    aps |= {"sound": "default", "thread-id": thread_id(device.mailbox), "mutable-content": 1}
    return {
        "device_token": device.push_token,
        "mailbox": device.mailbox,
        "kind": str(kind),
        "unread_count": None if unread_count is None else _count(unread_count),
        "push_type": "alert",
        "priority": ALERT_PRIORITY,
        "collapse_id": collapse_id,
        "mail": mail_part,
        "aps": aps,
    }


def badge_payload(device: Device, *, unread_count: int) -> dict[str, Any]:
    """A badge-only update: an alert-type push with no alert text, no sound, at low priority."""
    count = _count(unread_count)
    return {
        "device_token": device.push_token,
        "mailbox": device.mailbox,
        "kind": str(PushKind.BADGE),
        "unread_count": count,
        "push_type": "alert",
        "priority": BADGE_PRIORITY,
        "collapse_id": badge_collapse_id(device.mailbox),
        "mail": None,
        "aps": {"badge": count},
    }


def count_text(unread_count: int | None) -> str:
    if unread_count is None:
        return SENDER_ONLY_BODY
    return "1 unread message" if unread_count == 1 else f"{unread_count} unread messages"


# Collapse ids and the thread id are hashes: APNs sees them, and they need not name the mailbox.
# The prefixes keep a count alert and a badge update from replacing each other on the phone.
def mail_collapse_id(mailbox: str, item_id: str) -> str:
    return "m-" + digest("collapse-mail", mailbox.lower(), item_id)


def count_collapse_id(mailbox: str) -> str:
    return "c-" + digest("collapse-count", mailbox.lower())


def badge_collapse_id(mailbox: str) -> str:
    return "b-" + digest("collapse-badge", mailbox.lower())


def thread_id(mailbox: str) -> str:
    return "t-" + digest("thread", mailbox.lower())


def encode(payload: dict[str, Any]) -> bytes:
    """Compact UTF-8 JSON within APNS_MAX_PAYLOAD_BYTES: snippet, then subject, then sender name give way."""
    data = _dump(payload)
    if len(data) <= APNS_MAX_PAYLOAD_BYTES:
        return data
    shrinking = copy.deepcopy(payload)
    for field in _SHRINKABLE:
        data = _shrink(shrinking, field)
        if len(data) <= APNS_MAX_PAYLOAD_BYTES:
            return data
    raise PayloadTooLarge(f"{len(data)} bytes with every text shortened; APNs takes {APNS_MAX_PAYLOAD_BYTES}")


# --- texts -------------------------------------------------------------------------------------

# Bidi embeddings, overrides and isolates: on a lock screen they can make a sender or subject
# read as something else, so they go with the control characters.
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def clean_text(text: str | None) -> str:
    """Control, bidi-control and lone-surrogate characters become spaces; whitespace runs collapse."""
    if not text:
        return ""
    cleaned = "".join(" " if _unprintable(char) else char for char in text)
    return " ".join(cleaned.split())


def _unprintable(char: str) -> bool:
    return unicodedata.category(char) in ("Cc", "Cs", "Zl", "Zp") or char in _BIDI_CONTROLS


def cut(text: str, limit: int) -> str:
    """At most `limit` characters, "…" included when cut, never splitting a visible character."""
    if len(text) <= limit:
        return text
    if limit <= 0:
        return ""
    keep = limit - 1
    while keep > 0 and not _cluster_boundary(text, keep):
        keep -= 1
    return text[:keep].rstrip() + ELLIPSIS


_ZWJ = "\u200d"


def _extends(char: str) -> bool:
    """Characters that belong to the character before them (a simplification of UAX #29)."""
    code = ord(char)
    return (
        unicodedata.category(char) in ("Mn", "Me", "Mc")
        or char == _ZWJ
        or 0xFE00 <= code <= 0xFE0F  # variation selectors (text/emoji presentation)
        or 0x1F3FB <= code <= 0x1F3FF  # skin tones
        or 0xE0020 <= code <= 0xE007F  # tag characters (subdivision flags)
        or 0xE0100 <= code <= 0xE01EF  # variation selectors supplement
    )


def _regional_indicator(char: str) -> bool:
    return 0x1F1E6 <= ord(char) <= 0x1F1FF


def _cluster_boundary(text: str, index: int) -> bool:
    """Whether a cut between text[index - 1] and text[index] leaves every visible character whole."""
    before, after = text[index - 1], text[index]
    if _extends(after) or before == _ZWJ:
        return False
    if _regional_indicator(before) and _regional_indicator(after):
        # Flags are pairs of regional indicators: cut only after an even run of them.
        run = 0
        while index - run - 1 >= 0 and _regional_indicator(text[index - run - 1]):
            run += 1
        return run % 2 == 0
    return True


def _identifier(value: str | None, max_bytes: int) -> str | None:
    """An identifier is whole or absent: a shortened one would point nowhere."""
    if not value or any(_unprintable(char) for char in value):
        return None
    return value if len(_dump(value)) <= max_bytes else None


def _count(unread_count: int) -> int:
    if unread_count < 0:
        raise ValueError(f"unread count must not be negative, got {unread_count}")
    return unread_count


def _without_none(values: dict[str, str | None]) -> dict[str, str]:
    return {key: value for key, value in values.items() if value is not None}


# --- size ----------------------------------------------------------------------------------------

# Each shrinkable text lives in `mail` and, where it is the same text, in the alert too.
_SHRINKABLE: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...] = (
    (("mail", "snippet"), ("aps", "alert", "body")),
    (("mail", "subject"), ("aps", "alert", "subtitle")),
    (("mail", "sender", "name"), ("aps", "alert", "title")),
)


def _dump(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _get(payload: dict[str, Any], path: tuple[str, ...]) -> Any:
    node: Any = payload
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def _set(payload: dict[str, Any], path: tuple[str, ...], value: str | None) -> None:
    parent = _get(payload, path[:-1])
    if not isinstance(parent, dict):
        return
    if value is None and path[0] == "aps":
        parent.pop(path[-1], None)
    else:
        parent[path[-1]] = value


def _shrink(payload: dict[str, Any], field: tuple[tuple[str, ...], tuple[str, ...]]) -> bytes:
    """Shorten one text (in `mail` and its twin in the alert) to the longest length that fits."""
    primary, twin = field
    original = _get(payload, primary)
    if not isinstance(original, str):
        return _dump(payload)
    linked = _get(payload, twin) == original

    def apply(length: int) -> bytes:
        text = cut(original, length) or None
        _set(payload, primary, text)
        if linked:
            _set(payload, twin, text)
        return _dump(payload)

    low, high = 0, len(original) - 1  # the longest length known to fit is found between them
    while low < high:
        middle = (low + high + 1) // 2
        if len(apply(middle)) <= APNS_MAX_PAYLOAD_BYTES:
            low = middle
        else:
            high = middle - 1
    return apply(low)

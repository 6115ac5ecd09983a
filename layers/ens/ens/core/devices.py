"""A device and its notification rules: the one model the consumer and the devices API share.

Stored as JSON (``model_dump(mode="json")``) and read back with ``model_validate``; DynamoDB hands
numbers back as ``decimal.Decimal``, so integer fields take integral Decimals. Integers and booleans
are otherwise strict: a devices API that silently read ``"yes"`` as true or ``"100"`` as a number
would store rules nobody asked for.
"""

from __future__ import annotations

import datetime
import enum
import re
from decimal import Decimal
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    Strict,
    ValidationInfo,
    field_serializer,
    field_validator,
)

MAX_ADDRESS_LENGTH = 254  # RFC 5321's path limit, less the angle brackets
MAX_VIPS = 1000
MAX_SNIPPET_LENGTH = 256  # what item:Preview holds; a longer snippet would need the body
MAX_ZONE_NAME_LENGTH = 64


class Weekday(enum.StrEnum):
    MON = "mon"
    TUE = "tue"
    WED = "wed"
    THU = "thu"
    FRI = "fri"
    SAT = "sat"
    SUN = "sun"

    @classmethod
    def of(cls, day: datetime.date) -> Weekday:
        return _WEEK[day.weekday()]


_WEEK = tuple(Weekday)
_WEEK_ORDER = {day: index for index, day in enumerate(_WEEK)}


class ContentMode(enum.StrEnum):
    """What a device asks to see on its lock screen."""

    SUMMARY = "summary"
    COUNT = "count"


class ContentPolicy(enum.StrEnum):
    """The administrator's cap on what any device may receive, whatever the device asks for."""

    FULL = "full"
    SENDER_ONLY = "sender_only"
    COUNT_ONLY = "count_only"


def _integral(value: Any) -> Any:
    if isinstance(value, Decimal) and value == value.to_integral_value():
        return int(value)
    return value


# Strict, except that DynamoDB's integral Decimals count as integers.
StrictInt = Annotated[int, Strict(), BeforeValidator(_integral)]
StrictBool = Annotated[bool, Strict()]

# Plausible, not RFC 5322-complete: one @, no whitespace or control characters, a dotted domain.
_ADDRESS = re.compile(r"[^@\s\x00-\x1f\x7f]{1,64}@[^@\s\x00-\x1f\x7f.]+(\.[^@\s\x00-\x1f\x7f.]+)+")


def _address(value: str) -> str:
    address = value.strip().lower()
    if len(address) > MAX_ADDRESS_LENGTH:
        raise ValueError(f"an address has at most {MAX_ADDRESS_LENGTH} characters")
    if not _ADDRESS.fullmatch(address):
        raise ValueError("not a plausible e-mail address")
    return address


Address = Annotated[str, Strict(), AfterValidator(_address)]

# Zone names as the IANA database spells them ("Europe/Berlin", "Etc/GMT+5", "UTC"): no paths,
# no dots (so no "..") and not the system's own notion of local time.
_ZONE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)*")
_NOT_A_ZONE = frozenset({"local", "localtime", "posixrules", "factory"})


def _zone_name(value: str) -> str:
    if not value:
        raise ValueError("a time zone is required, e.g. Europe/Berlin")
    if len(value) > MAX_ZONE_NAME_LENGTH or not _ZONE_NAME.fullmatch(value) or value.lower() in _NOT_A_ZONE:
        raise ValueError("not an IANA time zone name, e.g. Europe/Berlin")
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(f"unknown time zone {value!r}") from None
    return value


def _minute(value: datetime.time) -> datetime.time:
    if value.tzinfo is not None:
        raise ValueError("a local wall-clock time, without offset")
    if value.second or value.microsecond:
        raise ValueError("whole minutes only (HH:MM)")
    return value


def _hh_mm(value: datetime.time) -> str:
    return value.strftime("%H:%M")


WallClock = Annotated[datetime.time, AfterValidator(_minute), PlainSerializer(_hh_mm, return_type=str)]


def _utc(value: datetime.datetime) -> datetime.datetime:
    return value.astimezone(datetime.UTC)


UtcDatetime = Annotated[AwareDatetime, AfterValidator(_utc)]

_DEFAULT_WORK_DAYS = frozenset({Weekday.MON, Weekday.TUE, Weekday.WED, Weekday.THU, Weekday.FRI})


class Rules(BaseModel):
    """When a device wants to hear about a mail, and what it wants to see. See docs/rules.md."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    time_zone: Annotated[str, Strict(), AfterValidator(_zone_name)] = "UTC"
    work_days: frozenset[Weekday] = _DEFAULT_WORK_DAYS
    work_start: WallClock = datetime.time(8, 0)
    work_end: WallClock = datetime.time(18, 0)
    work_hours_only: StrictBool = False
    weekend_alerts: StrictBool = False
    vip_after_hours: StrictBool = False
    vips: Annotated[frozenset[Address], Field(max_length=MAX_VIPS)] = frozenset()
    content: ContentMode = ContentMode.SUMMARY
    snippet_length: Annotated[StrictInt, Field(ge=0, le=MAX_SNIPPET_LENGTH)] = 100
    badge_updates: StrictBool = True

    @field_validator("work_end")
    @classmethod
    def _end_differs_from_start(cls, end: datetime.time, info: ValidationInfo) -> datetime.time:
        # An empty span and a 24-hour span would both be spelled start == end: refuse the ambiguity.
        if info.data.get("work_start") == end:
            raise ValueError("work_end must differ from work_start (an end before the start spans midnight)")
        return end

    # Sorted, so the stored JSON is the same for the same rules (sets iterate in hash order).
    @field_serializer("work_days")
    def _days_in_week_order(self, days: frozenset[Weekday]) -> list[str]:
        return [str(day) for day in sorted(days, key=_WEEK_ORDER.__getitem__)]

    @field_serializer("vips")
    def _vips_sorted(self, vips: frozenset[str]) -> list[str]:
        return sorted(vips)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)

    @property
    def spans_midnight(self) -> bool:
        return self.work_end < self.work_start


_DEVICE_ID = r"^[A-Za-z0-9._:-]{1,128}$"
# Printable ASCII but the quote and backslash: APNs/CNS tokens are hex or base64, and a token that
# needs no JSON escaping has a known byte size, which keeps every payload within APNs' limit.
_PUSH_TOKEN = r"^[\x21\x23-\x5b\x5d-\x7e]{1,512}$"  # noqa: S105 (a pattern, not a secret)
_PLATFORM = r"^[a-z][a-z0-9_]{0,31}$"
_PRINTABLE = r"^[^\x00-\x1f\x7f]*$"


class Device(BaseModel):
    """One phone registered for one mailbox. Keyed by (mailbox, device_id) in the DevicesTable."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    mailbox: Address
    device_id: Annotated[str, Strict(), Field(pattern=_DEVICE_ID)]
    push_token: Annotated[str, Strict(), Field(pattern=_PUSH_TOKEN)]
    platform: Annotated[str, Strict(), Field(pattern=_PLATFORM)] = "ios"
    app_version: Annotated[str, Strict(), Field(min_length=1, max_length=64, pattern=_PRINTABLE)] | None = (
        None
    )
    active: StrictBool = True
    deactivated_reason: Annotated[str, Strict(), Field(max_length=256, pattern=_PRINTABLE)] | None = None
    deactivated_at: UtcDatetime | None = None
    registered_at: UtcDatetime
    updated_at: UtcDatetime
    last_push_at: UtcDatetime | None = None
    rules: Rules = Rules()

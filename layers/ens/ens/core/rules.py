"""Whether a mail deserves an alert on one device now: the seed product's rules, made exact.

docs/rules.md states the semantics and holds the table of examples the tests run.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, time, timedelta

from ens.core.devices import Rules, Weekday
from ens.core.mail import Mail


class Reason(enum.StrEnum):
    """Why no alert was pushed: recorded in the decision log."""

    STALE = "stale"
    ALREADY_READ = "already_read"
    OUTSIDE_WORK_HOURS = "outside_work_hours"
    NON_WORK_DAY = "non_work_day"
    GONE = "gone"
    NO_ITEM_ID = "no_item_id"
    DEVICE_INACTIVE = "device_inactive"
    NO_DEVICES = "no_devices"
    IMPERSONATION_DENIED = "impersonation_denied"
    MAILBOX_UNKNOWN = "mailbox_unknown"
    DEVICE_TOKEN_REJECTED = "device_token_rejected"  # noqa: S105 (a reason, not a secret)
    NO_SERVER = "no_server"
    # Unread-count events: no badge update for this device, and why.
    BADGE_UPDATES_OFF = "badge_updates_off"  # the device does not want badge-only updates
    COALESCED = "coalesced"  # a newer count in the same batch (or an alert carrying it) stood for this one


class Rule(enum.StrEnum):
    """The rule that decided."""

    ALL_MAIL = "all_mail"
    WORK_HOURS = "work_hours"
    WEEKEND_ALERTS = "weekend_alerts"
    VIP_AFTER_HOURS = "vip_after_hours"
    OUTSIDE_WORK_HOURS = "outside_work_hours"
    NON_WORK_DAY = "non_work_day"
    STALE = "stale"
    ALREADY_READ = "already_read"


@dataclass(frozen=True, slots=True)
class RuleVerdict:
    notify: bool
    rule: Rule
    reason: Reason | None  # None when notify


def _notify(rule: Rule) -> RuleVerdict:
    return RuleVerdict(notify=True, rule=rule, reason=None)


def _suppress(rule: Rule, reason: Reason) -> RuleVerdict:
    return RuleVerdict(notify=False, rule=rule, reason=reason)


def decide(
    rules: Rules,
    mail: Mail,
    *,
    now: datetime,
    stale_after: timedelta,
    is_vip_contact: Callable[[str], bool],
) -> RuleVerdict:
    """The verdict for one mail on one device. `is_vip_contact` is asked only when its answer decides."""
    if now - mail.received_at > stale_after:
        return _suppress(Rule.STALE, Reason.STALE)
    if mail.is_read:
        return _suppress(Rule.ALREADY_READ, Reason.ALREADY_READ)
    if not rules.work_hours_only:
        return _notify(Rule.ALL_MAIL)
    local = local_time(rules, mail.received_at)
    if _in_work_hours(rules, local):
        return _notify(Rule.WORK_HOURS)
    non_work_day = Weekday.of(local) not in rules.work_days
    if non_work_day and rules.weekend_alerts:
        return _notify(Rule.WEEKEND_ALERTS)
    if rules.vip_after_hours and is_vip(rules, mail.sender_address, is_vip_contact):
        return _notify(Rule.VIP_AFTER_HOURS)
    if non_work_day:
        return _suppress(Rule.NON_WORK_DAY, Reason.NON_WORK_DAY)
    return _suppress(Rule.OUTSIDE_WORK_HOURS, Reason.OUTSIDE_WORK_HOURS)


def is_vip(rules: Rules, sender_address: str | None, is_vip_contact: Callable[[str], bool]) -> bool:
    """The device's own list first: it is free, the contact lookup may cost an Exchange request."""
    address = (sender_address or "").strip().lower()
    if not address:
        return False
    return address in rules.vips or is_vip_contact(address)


def local_time(rules: Rules, moment: datetime) -> datetime:
    """The moment on the device's wall clock (raises on a naive moment: no server zone guessing)."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("moment must be timezone-aware")
    return moment.astimezone(rules.zone)


def in_work_hours(rules: Rules, moment: datetime) -> bool:
    """Whether `moment` falls in a shift: on a work day, between start and end on the wall clock."""
    return _in_work_hours(rules, local_time(rules, moment))


def _in_work_hours(rules: Rules, local: datetime) -> bool:
    # Wall-clock comparison, fold ignored: both passes through a repeated hour are the same hour
    # of the working day, and a shift starting in a skipped hour starts when the clock resumes.
    clock = time(local.hour, local.minute, local.second, local.microsecond)
    today = Weekday.of(local)
    if not rules.spans_midnight:
        return today in rules.work_days and rules.work_start <= clock < rules.work_end
    if clock >= rules.work_start:
        return today in rules.work_days
    # After midnight: the shift belongs to the day it started on.
    yesterday = Weekday.of(local.date() - timedelta(days=1))
    return clock < rules.work_end and yesterday in rules.work_days

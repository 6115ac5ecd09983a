"""Push subscriptions and the SendNotification callbacks Exchange makes for them.

Exchange's rules, as documented for push notifications and reproduced here:
- every event a subscription matches is POSTed to its URL; a backlog goes out in batches flagged
  MoreEvents, the next batch right after the previous one is acknowledged;
- with nothing to report, a StatusEvent heartbeat goes out every StatusFrequency minutes;
- a failed callback is retried after 30 s, the wait doubling each time, and the subscription is dropped
  once StatusFrequency minutes have passed since the first failure;
- a SendNotificationResult of Unsubscribe ends the subscription.
"""

from __future__ import annotations

import http.client
import logging
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from lxml import etree

from exchange_simulator import soap
from exchange_simulator.clock import Clock, ews_datetime
from exchange_simulator.model import Mailbox, MailboxEvent, Store
from exchange_simulator.soap import m, sub, t

log = logging.getLogger(__name__)

FIRST_RETRY_SECONDS = 30


@dataclass
class Subscription:
    subscription_id: str
    mailbox: Mailbox
    folders: set[int] | None  # None: SubscribeToAllFolders
    event_types: set[str]
    url: str
    status_frequency: int  # minutes
    caller_data: str | None
    request_version: str
    cursor_seq: int  # last watermark the callback acknowledged
    created: datetime
    last_delivery: datetime  # last successful callback (or creation): heartbeats count from here
    service_account: str
    first_failure: datetime | None = None
    next_attempt: datetime | None = None
    failures: int = 0
    in_flight: bool = False

    def matches(self, event: MailboxEvent) -> bool:
        if event.event_type not in self.event_types:
            return False
        return self.folders is None or event.touches(self.folders)

    def pending_events(self) -> list[MailboxEvent]:
        return [event for event in self.mailbox.events_after(self.cursor_seq) if self.matches(event)]

    def drop_deadline(self) -> datetime | None:
        if self.first_failure is None:
            return None
        return self.first_failure + timedelta(minutes=self.status_frequency)

    def describe(self) -> dict[str, Any]:
        return {
            "subscription_id": self.subscription_id,
            "mailbox": self.mailbox.address,
            "folders": None if self.folders is None else sorted(self.folders),
            "event_types": sorted(self.event_types),
            "url": self.url,
            "status_frequency": self.status_frequency,
            "caller_data": self.caller_data,
            "service_account": self.service_account,
            "failures": self.failures,
            "first_failure": self.first_failure.isoformat() if self.first_failure else None,
            "next_attempt": self.next_attempt.isoformat() if self.next_attempt else None,
        }


@dataclass(frozen=True)
class DeliveryAttempt:
    """One POST to a callback URL (or a drop), as recorded for tests and the control API."""

    subscription_id: str
    at: datetime
    kind: str  # "events" | "status" | "dropped"
    outcome: str  # "ok" | "unsubscribe" | "failed" | "dropped"
    event_types: tuple[str, ...] = ()
    more_events: bool = False
    http_status: int | None = None
    error: str | None = None
    attempt: int = 1

    def describe(self) -> dict[str, Any]:
        return {
            "subscription_id": self.subscription_id,
            "at": self.at.isoformat(),
            "kind": self.kind,
            "outcome": self.outcome,
            "event_types": list(self.event_types),
            "more_events": self.more_events,
            "http_status": self.http_status,
            "error": self.error,
            "attempt": self.attempt,
        }


@dataclass
class _Prepared:
    subscription: Subscription
    body: bytes
    kind: str
    event_types: tuple[str, ...]
    more_events: bool
    last_seq: int


@dataclass
class PushEngine:
    store: Store
    clock: Clock
    lock: threading.RLock
    emit: Callable[[bytes, str], None]  # every body we produce goes past the observers
    server_version: soap.ServerVersion
    max_events_per_notification: int = 50
    callback_timeout: float = 10.0
    subscriptions: dict[str, Subscription] = field(default_factory=dict)
    deliveries: deque[DeliveryAttempt] = field(default_factory=lambda: deque(maxlen=1000))
    paused: bool = False
    _wakeup: threading.Condition = field(init=False)
    _delivered: threading.Condition = field(init=False)

    def __post_init__(self) -> None:
        self._wakeup = threading.Condition(self.lock)
        self._delivered = threading.Condition(self.lock)

    # -- scheduling --------------------------------------------------------------------------------------
    def poke(self) -> None:
        """Something changed (new event, subscription, clock jump, resume): re-plan."""
        with self._wakeup:
            self._wakeup.notify_all()

    def _due_action(self, subscription: Subscription, now: datetime) -> str | None:
        if subscription.in_flight:
            return None
        deadline = subscription.drop_deadline()
        if deadline is not None:
            if now >= deadline:
                return "drop"
            return "deliver" if subscription.next_attempt and now >= subscription.next_attempt else None
        if subscription.pending_events():
            return "deliver"
        if now >= subscription.last_delivery + timedelta(minutes=subscription.status_frequency):
            return "deliver"
        return None

    def next_due(self) -> datetime | None:
        """The protocol time of the earliest pending work (now if something is due already)."""
        with self.lock:
            if self.paused:
                return None
            now = self.clock.now()
            candidates: list[datetime] = []
            for subscription in self.subscriptions.values():
                if subscription.in_flight:
                    continue
                deadline = subscription.drop_deadline()
                if deadline is not None:
                    candidates.append(min(deadline, subscription.next_attempt or deadline))
                elif subscription.pending_events():
                    candidates.append(now)
                else:
                    candidates.append(
                        subscription.last_delivery + timedelta(minutes=subscription.status_frequency)
                    )
            return min(candidates, default=None)

    def run_due_work(self) -> list[DeliveryAttempt]:
        """Do every callback that is due at the current protocol time, synchronously.

        Loops until nothing is due, so a MoreEvents backlog drains within one call.
        """
        attempts: list[DeliveryAttempt] = []
        while True:
            with self.lock:
                if self.paused:
                    break
                now = self.clock.now()
                work: list[_Prepared] = []
                for subscription in list(self.subscriptions.values()):
                    action = self._due_action(subscription, now)
                    if action == "drop":
                        attempts.append(
                            self._drop(subscription, now, "no successful callback within StatusFrequency")
                        )
                    elif action == "deliver":
                        subscription.in_flight = True
                        work.append(self._prepare(subscription))
            if not work:
                break
            # Callbacks go out without the lock: a webhook may well call GetItem on us meanwhile.
            for prepared in work:
                attempts.append(self._post_and_record(prepared))
        return attempts

    # -- building ----------------------------------------------------------------------------------------
    def _prepare(self, subscription: Subscription) -> _Prepared:
        mailbox = subscription.mailbox
        pending = subscription.pending_events()
        batch = pending[: self.max_events_per_notification]
        more_events = len(pending) > len(batch)
        root = etree.Element(m("SendNotification"), nsmap={"m": soap.MESSAGES_NS, "t": soap.TYPES_NS})
        messages = sub(root, m("ResponseMessages"))
        message = soap.success_message(messages, "SendNotification")
        notification = sub(message, m("Notification"))
        sub(notification, t("SubscriptionId"), subscription.subscription_id)
        sub(notification, t("PreviousWatermark"), self.store.watermark(mailbox, subscription.cursor_seq))
        sub(notification, t("MoreEvents"), "true" if more_events else "false")
        if batch:
            for event in batch:
                self._event_element(notification, mailbox, event)
            last_seq = batch[-1].seq
            kind = "events"
        else:
            # A heartbeat carries the newest watermark: events the subscription does not match are
            # skipped over, so a resume from it replays nothing the client cares about.
            last_seq = mailbox.head_seq
            status = sub(notification, t("StatusEvent"))
            sub(status, t("Watermark"), self.store.watermark(mailbox, last_seq))
            kind = "status"
        body = _notification_envelope(subscription.request_version, root)
        self.emit(body, "SendNotification")
        return _Prepared(
            subscription=subscription,
            body=body,
            kind=kind,
            event_types=tuple(event.event_type for event in batch) or ("StatusEvent",),
            more_events=more_events,
            last_seq=last_seq,
        )

    def _event_element(self, notification: etree._Element, mailbox: Mailbox, event: MailboxEvent) -> None:
        element = sub(notification, t(event.event_type))
        sub(element, t("Watermark"), self.store.watermark(mailbox, event.seq))
        sub(element, t("TimeStamp"), ews_datetime(event.timestamp))
        if event.item is not None:
            sub(
                element, t("ItemId"), Id=self.store.item_id(mailbox, event.item), ChangeKey=_change_key(event)
            )
        else:
            sub(element, t("FolderId"), Id=self.store.folder_id(mailbox, event.folder or event.parent_folder))
        sub(element, t("ParentFolderId"), Id=self.store.folder_id(mailbox, event.parent_folder))
        if event.event_type in ("MovedEvent", "CopiedEvent"):
            if event.old_item is not None:
                sub(element, t("OldItemId"), Id=self.store.item_id(mailbox, event.old_item))
            else:
                sub(element, t("OldFolderId"), Id=self.store.folder_id(mailbox, event.folder or 0))
            sub(
                element,
                t("OldParentFolderId"),
                Id=self.store.folder_id(mailbox, event.old_parent_folder or 0),
            )
        if event.event_type == "ModifiedEvent" and event.unread_count is not None:
            sub(element, t("UnreadCount"), str(event.unread_count))

    # -- delivering --------------------------------------------------------------------------------------
    def _post_and_record(self, prepared: _Prepared) -> DeliveryAttempt:
        subscription = prepared.subscription
        status, reply, error = self._post(subscription.url, prepared.body)
        verdict = _subscription_status(reply) if status == 200 and reply is not None else None
        with self.lock:
            subscription.in_flight = False
            now = self.clock.now()
            attempt_number = subscription.failures + 1
            alive = self.subscriptions.get(subscription.subscription_id) is subscription
            if verdict in ("OK", "Unsubscribe"):
                subscription.cursor_seq = max(subscription.cursor_seq, prepared.last_seq)
                subscription.last_delivery = now
                subscription.first_failure = subscription.next_attempt = None
                subscription.failures = 0
                if verdict == "Unsubscribe" and alive:
                    del self.subscriptions[subscription.subscription_id]
                outcome = "ok" if verdict == "OK" else "unsubscribe"
            else:
                outcome = "failed"
                if error is None:
                    error = f"HTTP {status}" if status != 200 else "no SendNotificationResult in the reply"
                subscription.failures += 1
                if subscription.first_failure is None:
                    subscription.first_failure = now
                wait = FIRST_RETRY_SECONDS * 2 ** (subscription.failures - 1)
                subscription.next_attempt = now + timedelta(seconds=wait)
            attempt = DeliveryAttempt(
                subscription_id=subscription.subscription_id,
                at=now,
                kind=prepared.kind,
                outcome=outcome,
                event_types=prepared.event_types,
                more_events=prepared.more_events,
                http_status=status,
                error=error,
                attempt=attempt_number,
            )
            self._record(attempt)
        return attempt

    def _drop(self, subscription: Subscription, now: datetime, reason: str) -> DeliveryAttempt:
        self.subscriptions.pop(subscription.subscription_id, None)
        attempt = DeliveryAttempt(
            subscription_id=subscription.subscription_id,
            at=now,
            kind="dropped",
            outcome="dropped",
            error=reason,
        )
        self._record(attempt)
        return attempt

    def drop_silently(self, subscription_id: str) -> bool:
        """Fault injection: the subscription vanishes, as after a mailbox move or a server restart."""
        with self.lock:
            subscription = self.subscriptions.pop(subscription_id, None)
            if subscription is not None:
                self._record(
                    DeliveryAttempt(
                        subscription_id=subscription_id,
                        at=self.clock.now(),
                        kind="dropped",
                        outcome="dropped",
                        error="dropped silently by fault injection",
                    )
                )
            return subscription is not None

    def _record(self, attempt: DeliveryAttempt) -> None:
        log.info("push %s %s %s", attempt.subscription_id[-12:], attempt.kind, attempt.outcome)
        self.deliveries.append(attempt)
        self._delivered.notify_all()

    def wait_for_deliveries(self, count: int, timeout: float) -> bool:
        """Block until at least `count` attempts were recorded in total (for tests and scripts)."""
        with self._delivered:
            return self._delivered.wait_for(lambda: len(self.deliveries) >= count, timeout=timeout)

    def _post(self, url: str, body: bytes) -> tuple[int | None, bytes | None, str | None]:
        parts = urlsplit(url)
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        connection_class = (
            http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        )
        connection = connection_class(parts.hostname or "", parts.port, timeout=self.callback_timeout)
        try:
            connection.request(
                "POST",
                path,
                body=body,
                headers={
                    "Content-Type": "text/xml; charset=utf-8",
                    "User-Agent": "ExchangeServicesClient/15.01.2507.006",
                    "Connection": "close",
                },
            )
            response = connection.getresponse()
            return response.status, response.read(), None
        except (TimeoutError, OSError, http.client.HTTPException) as e:
            return None, None, f"{type(e).__name__}: {e}"
        finally:
            connection.close()

    # -- background dispatcher ---------------------------------------------------------------------------
    def serve_forever(self, stopping: threading.Event) -> None:
        while not stopping.is_set():
            try:
                self.run_due_work()
            except Exception:  # a bug must not silently end all pushes
                log.exception("push dispatcher failed; continuing")
            with self._wakeup:
                if stopping.is_set():
                    return
                due = self.next_due()
                timeout = 1.0 if due is None else self.clock.real_seconds_until(due)
                if timeout is None:
                    timeout = 1.0  # manual clock: only poke() or an advance makes it due
                if timeout > 0:
                    self._wakeup.wait(timeout=min(timeout, 1.0))


def _change_key(event: MailboxEvent) -> str:
    # Notifications carry a ChangeKey; clients use the ItemId only, so a stable stand-in suffices.
    return f"CQAAAB{event.seq:010d}"


def _notification_envelope(request_version: str, body_content: etree._Element) -> bytes:
    # Exchange's own callbacks use the soap11 prefix and echo the subscriber's RequestServerVersion.
    env = etree.Element(soap.s("Envelope"), nsmap={"soap11": soap.SOAP_NS})
    header = sub(env, soap.s("Header"))
    etree.SubElement(
        header, t("RequestServerVersion"), {"Version": request_version}, nsmap={"t": soap.TYPES_NS}
    )
    body = sub(env, soap.s("Body"))
    body.append(body_content)
    return etree.tostring(env, xml_declaration=True, encoding="utf-8")


def _subscription_status(reply: bytes) -> str | None:
    try:
        root = soap.parse_request(reply)
    except (etree.XMLSyntaxError, soap.DoctypeForbidden):  # an unreadable reply is a failed delivery
        return None
    status = root.find(f".//{m('SendNotificationResult')}/{m('SubscriptionStatus')}")
    if status is None or status.text is None:
        return None
    value = status.text.strip()
    return value if value in ("OK", "Unsubscribe") else None

"""Subscribe: push subscriptions to folders or the whole mailbox, optionally resuming from a watermark."""

from __future__ import annotations

import ipaddress
from datetime import timedelta
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from lxml import etree

from exchange_simulator import soap
from exchange_simulator.ids import IdKind, encode_id
from exchange_simulator.model import Mailbox, Store
from exchange_simulator.operations.common import (
    CallContext,
    EwsFault,
    ItemError,
    folder_from_id_element,
    text_of,
)
from exchange_simulator.push import Subscription
from exchange_simulator.soap import m, sub, t

if TYPE_CHECKING:
    from exchange_simulator.ews import EwsEndpoint

OPERATION = "Subscribe"

EVENT_TYPES = frozenset(
    {
        "CopiedEvent",
        "CreatedEvent",
        "DeletedEvent",
        "ModifiedEvent",
        "MovedEvent",
        "NewMailEvent",
        "FreeBusyChangedEvent",
    }
)
WATERMARK_RETENTION = timedelta(days=30)


def call(endpoint: EwsEndpoint, request: etree._Element, context: CallContext) -> etree._Element:
    root, messages = soap.response_root(OPERATION)
    push_request = request.find(m("PushSubscriptionRequest"))
    if push_request is None:
        soap.error_message(
            messages,
            OPERATION,
            "ErrorInvalidSubscriptionRequest",
            "The Exchange simulator implements push subscriptions only.",
        )
        return root
    mailbox = context.mailbox
    frequency_text = text_of(push_request, t("StatusFrequency"))
    try:
        frequency = int(frequency_text or "")
    except ValueError:
        frequency = 0
    if not 1 <= frequency <= 1440:
        # Exchange rejects this during schema validation, before the operation runs.
        raise EwsFault(
            "ErrorSchemaValidation",
            f"The request failed schema validation: The 'StatusFrequency' element is invalid - "
            f"The value '{frequency_text}' is invalid according to its datatype "
            "'SubscriptionStatusFrequencyType' - must be between 1 and 1440.",
        )
    event_types = {elem.text or "" for elem in push_request.iterfind(f"{t('EventTypes')}/{t('EventType')}")}
    if not event_types or not event_types <= EVENT_TYPES:
        raise EwsFault(
            "ErrorSchemaValidation",
            f"The request failed schema validation: invalid EventTypes {sorted(event_types - EVENT_TYPES)}.",
        )
    try:
        folders = _subscription_folders(endpoint.store, push_request, context)
        url = _validate_url(endpoint.allowed_callback_hosts, text_of(push_request, t("URL")) or "")
        cursor = _resume_point(
            endpoint, mailbox, text_of(push_request, m("Watermark")) or text_of(push_request, t("Watermark"))
        )
    except ItemError as e:
        soap.error_message(messages, OPERATION, e.code, e.text)
        return root
    now = endpoint.clock.now()
    subscription_id = encode_id(
        IdKind.SUBSCRIPTION, endpoint.store.store_number, mailbox.number, next(endpoint.subscription_numbers)
    )
    endpoint.push.subscriptions[subscription_id] = Subscription(
        subscription_id=subscription_id,
        mailbox=mailbox,
        folders=folders,
        event_types=event_types,
        url=url,
        status_frequency=frequency,
        caller_data=text_of(push_request, t("CallerData")),
        request_version=context.request_version,
        cursor_seq=cursor,
        created=now,
        last_delivery=now,
        service_account=context.account.username,
    )
    response = soap.success_message(messages, OPERATION)
    sub(response, m("SubscriptionId"), subscription_id)
    sub(response, m("Watermark"), endpoint.store.watermark(mailbox, cursor))
    endpoint.push.poke()
    return root


def _subscription_folders(
    store: Store, push_request: etree._Element, context: CallContext
) -> set[int] | None:
    if push_request.get("SubscribeToAllFolders") in ("true", "1"):
        return None
    folder_ids = push_request.find(t("FolderIds"))
    if folder_ids is None or len(folder_ids) == 0:
        raise ItemError("ErrorInvalidSubscriptionRequest", "Give FolderIds or SubscribeToAllFolders.")
    return {folder_from_id_element(store, context, element).number for element in folder_ids}


def _validate_url(allowed_callback_hosts: set[str], url: str) -> str:
    # Exchange insists on an absolute http(s) URL; the simulator also refuses to call anything that is
    # not this machine, so a demo can never POST mail metadata to the internet.
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ItemError("ErrorInvalidPushSubscriptionUrl", f"The push subscription URL is invalid: {url!r}")
    try:
        _ = parts.port
    except ValueError:
        raise ItemError(
            "ErrorInvalidPushSubscriptionUrl", f"The push subscription URL is invalid: {url!r}"
        ) from None
    host = parts.hostname.lower()
    if host not in allowed_callback_hosts:
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = host == "localhost"
        if not loopback:
            raise ItemError(
                "ErrorInvalidPushSubscriptionUrl",
                f"The Exchange simulator only calls back to loopback addresses, not {host}.",
            )
    return url.strip()


def _resume_point(endpoint: EwsEndpoint, mailbox: Mailbox, watermark: str | None) -> int:
    if not watermark:
        return mailbox.head_seq
    seq = endpoint.store.decode_watermark(mailbox, watermark)
    if seq is None:
        raise ItemError(
            "ErrorInvalidWatermark",
            "The watermark used for creating this subscription was not recognized.",
        )
    if (
        seq < mailbox.expired_before_seq
        or mailbox.event_time(seq) < endpoint.clock.now() - WATERMARK_RETENTION
    ):
        raise ItemError(
            "ErrorInvalidWatermark", "The watermark used for creating this subscription has expired."
        )
    return seq

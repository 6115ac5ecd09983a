from pathlib import Path

import pytest

from ens.core.notifications import (
    REPLY_CONTENT_TYPE,
    EventKind,
    ExchangeId,
    NotificationRejected,
    RejectReason,
    SubscriptionStatus,
    check_request,
    parse_send_notification,
    reply,
)
from support.ews_schema import assert_valid_ews, soap_parts
from support.send_notifications import (
    Body,
    ErrorSpec,
    Event,
    NotificationSpec,
    new_mail,
    new_mail_body,
    send_notification,
    status,
)

pytestmark = pytest.mark.unit
EVENTS = Path(__file__).resolve().parents[2] / "events" / "ews"
MAX = 1024 * 1024


def rejection(body: bytes, content_type: str = "text/xml; charset=utf-8") -> NotificationRejected:
    def check_and_parse() -> None:
        check_request(body, content_type, MAX)
        parse_send_notification(body)

    with pytest.raises(NotificationRejected) as caught:
        check_and_parse()
    return caught.value


@pytest.mark.parametrize("prefix", ["soap11", "s", "soap", "SOAP-ENV"])
def test_envelope_prefix_does_not_matter(prefix: str) -> None:
    parsed = parse_send_notification(new_mail_body("sub-1", "wm-0", prefix=prefix))

    assert [event.kind for event in parsed.events] == [EventKind.NEW_MAIL]
    assert parsed.notifications[0].subscription_id == "sub-1"


def test_new_mail_notification_from_exchange_is_read_in_full() -> None:
    parsed = parse_send_notification((EVENTS / "send_notification_newmail_soap11.xml").read_bytes())

    (notification,) = parsed.notifications
    assert notification.subscription_id == "FwBleGNoMjAxOS5jb250b3NvLmxvY2FsEAAAAO0qY8V4V0FNiTzq2RXYT7w="
    assert notification.previous_watermark == "AQAAAIGKsfO4yHRAjDvXmRTkWi8yDAAAAAAAAAE="
    assert notification.more_events is False
    (event,) = notification.events
    assert event.kind is EventKind.NEW_MAIL
    assert event.watermark == "AQAAAIGKsfO4yHRAjDvXmRTkWi80DAAAAAAAAAE="
    assert event.timestamp == "2026-11-28T09:15:02Z"
    assert event.item_id is not None
    assert event.item_id.change_key == "CQAAABYAAAD2sL5Fvm5fQI9XJr5IBGqjAAAAAAC2"
    assert event.parent_folder_id == ExchangeId(
        "AAMkAGRkNzc5N2Y0LWE3YjAtNDYzOS1hNTE1LTNkYzY3NTQ0NWVmMAAuAAAAAACOlgJ7w7C5R7lq1a4wvCcOAQD2sL5Fvm5fQI9XJr5IBGqjAAAAAAEMAAA=",
        "AQAAAA==",
    )


def test_every_event_type_of_the_schema_is_parsed_with_its_fields() -> None:
    body = send_notification(
        Body(
            [
                NotificationSpec(
                    "sub-1",
                    "wm-0",
                    [
                        status("wm-1"),
                        new_mail("wm-2", "item-2", "ck-2"),
                        Event("Created", "wm-3", item_id="item-3|ck-3"),
                        Event("Modified", "wm-4", folder_id="inbox|fck", unread_count=7),
                        Event(
                            "Moved",
                            "wm-5",
                            item_id="item-5",
                            old_id="item-5-old",
                            old_parent_folder_id="drafts",
                        ),
                        Event("Copied", "wm-6", folder_id="folder-6", old_id="folder-6-old"),
                        Event("Deleted", "wm-7", item_id="item-7"),
                        Event("FreeBusyChanged", "wm-8", item_id="item-8"),
                    ],
                )
            ]
        )
    )

    events = parse_send_notification(body).events

    assert [event.kind for event in events] == list(EventKind)
    assert [event.watermark for event in events] == [f"wm-{n}" for n in range(1, 9)]
    by_kind = {event.kind: event for event in events}
    assert by_kind[EventKind.STATUS].timestamp is None
    assert by_kind[EventKind.NEW_MAIL].item_id == ExchangeId("item-2", "ck-2")
    assert by_kind[EventKind.MODIFIED].folder_id == ExchangeId("inbox", "fck")
    assert by_kind[EventKind.MODIFIED].unread_count == 7
    assert by_kind[EventKind.MOVED].old_item_id == ExchangeId("item-5-old")
    assert by_kind[EventKind.MOVED].old_parent_folder_id == ExchangeId("drafts")
    assert by_kind[EventKind.COPIED].old_folder_id == ExchangeId("folder-6-old")
    assert by_kind[EventKind.FREE_BUSY_CHANGED].item_id == ExchangeId("item-8")


def test_test_bodies_are_what_the_ews_schema_allows() -> None:
    body = send_notification(
        Body(
            [
                NotificationSpec(
                    "s", "w0", [status("w1"), Event("Modified", "w2", folder_id="f", unread_count=1)]
                )
            ]
        )
    )
    _, (request,) = soap_parts(body)
    from support.ews_schema import messages_schema

    assert messages_schema().validate(request), messages_schema().error_log


def test_several_notifications_and_more_events_in_one_body() -> None:
    body = send_notification(
        Body(
            [
                NotificationSpec("sub-1", "wm-0", [new_mail("wm-1", "a")], more_events=True),
                NotificationSpec("sub-1", "wm-1", [new_mail("wm-2", "b"), new_mail("wm-3", "c")]),
            ]
        )
    )

    parsed = parse_send_notification(body)

    assert [n.more_events for n in parsed.notifications] == [True, False]
    assert [e.item_id.id for e in parsed.events if e.item_id] == ["a", "b", "c"]
    assert parsed.subscription_ids == {"sub-1"}


def test_error_message_without_notification_is_accepted_as_an_error() -> None:
    parsed = parse_send_notification((EVENTS / "send_notification_error_no_notification.xml").read_bytes())

    assert parsed.notifications == ()
    assert parsed.errors[0].response_code == "ErrorReadEventsFailed"


def test_schema_valid_error_message_with_a_notification_is_taken_for_an_error_when_exchange_sends_it() -> (
    None
):
    body = (EVENTS / "send_notification_error_read_events_failed.xml").read_bytes()
    assert_valid_ews(body)

    parsed = parse_send_notification(body)

    assert parsed.notifications == ()  # its StatusEvent is no heartbeat: Exchange could not read events
    (error,) = parsed.errors
    assert (error.response_code, error.response_class) == ("ErrorReadEventsFailed", "Error")
    assert parsed.subscription_ids == {"FwBleGNoMjAxOS5jb250b3NvLmxvY2FsEAAAAO0qY8V4V0FNiTzq2RXYT7w="}


@pytest.mark.parametrize("response_class", ["Error", "Warning"])
def test_error_or_warning_message_is_an_error_whether_or_not_it_carries_a_notification(
    response_class: str,
) -> None:
    with_notification = ErrorSpec(
        "ErrorReadEventsFailed", subscription_id="sub-1", response_class=response_class
    )
    without_notification = ErrorSpec("ErrorReadEventsFailed", response_class=response_class)

    for spec in (with_notification, without_notification):
        parsed = parse_send_notification(send_notification(Body([spec])))

        assert [e.response_code for e in parsed.errors] == ["ErrorReadEventsFailed"]
        assert parsed.events == ()


def test_error_message_without_notification_fixture_is_known_not_to_be_schema_valid() -> None:
    # Kept on purpose: the shape some servers send. The schema-valid shape has its own fixture.
    body = (EVENTS / "send_notification_error_no_notification.xml").read_bytes()

    with pytest.raises(AssertionError, match="Notification"):
        assert_valid_ews(body)


def test_whitespace_around_previous_watermark_is_stripped_when_a_proxy_indents_the_body() -> None:
    body = new_mail_body("sub-1", "wm-0").replace(
        b"<t:PreviousWatermark>wm-0</t:PreviousWatermark>",
        b"<t:PreviousWatermark>\n        wm-0\n      </t:PreviousWatermark>",
    )

    (notification,) = parse_send_notification(body).notifications

    assert notification.previous_watermark == "wm-0"


def test_error_message_next_to_a_notification_keeps_both() -> None:
    body = send_notification(Body([ErrorSpec(), NotificationSpec("sub-1", "wm-0", [status("wm-1")])]))

    parsed = parse_send_notification(body)

    assert len(parsed.notifications) == 1
    assert parsed.errors[0].response_code == "ErrorReadEventsFailed"


@pytest.mark.parametrize("status_value", list(SubscriptionStatus))
def test_reply_validates_against_the_ews_schema(status_value: SubscriptionStatus) -> None:
    (result,) = assert_valid_ews(reply(status_value))

    assert (
        result.tag == "{http://schemas.microsoft.com/exchange/services/2006/messages}SendNotificationResult"
    )
    assert result[0].text == status_value.value
    assert REPLY_CONTENT_TYPE == "text/xml; charset=utf-8"


def test_malformed_xml_is_rejected() -> None:
    assert rejection(b"<soap:Envelope><unclosed>").reason is RejectReason.MALFORMED_XML


def test_external_entity_to_a_local_file_is_refused_and_not_read() -> None:
    body = (
        b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
        b'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>&xxe;</s:Body></s:Envelope>'
    )

    error = rejection(body)

    assert error.reason is RejectReason.DTD_FORBIDDEN
    assert "root:" not in str(error)


def test_billion_laughs_is_refused_without_expansion() -> None:
    entities = "".join(f'<!ENTITY lol{n} "{f"&lol{n - 1};" * 10}">' for n in range(1, 10))
    body = (
        f'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol0 "lol">{entities}]>'
        f'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>&lol9;</s:Body></s:Envelope>'
    ).encode()

    assert rejection(body).reason is RejectReason.DTD_FORBIDDEN


def test_the_hardened_parser_itself_neither_expands_entities_nor_reads_files() -> None:
    # Defence in depth: ENS refuses DOCTYPEs before parsing, but the parser must be safe on its own.
    from lxml import etree

    from ens.core.ews import hardened_parser

    xxe = b'<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd"><!ENTITY y "expanded">]><r>&x;&y;</r>'

    root = etree.fromstring(xxe, hardened_parser())

    assert "root:" not in etree.tostring(root).decode()
    assert "expanded" not in (root.text or "")
    assert "expanded" not in "".join(root.itertext())


def test_oversized_body_is_refused_before_parsing() -> None:
    assert rejection(b"<" + b"x" * MAX + b"/>").http_status == 413


@pytest.mark.parametrize(
    "content_type", ["application/json", "text/plain", None, "multipart/form-data", "application/soap+xml"]
)
def test_other_media_types_are_refused(content_type: str | None) -> None:
    error = rejection(new_mail_body("s", "w"), content_type=content_type)  # type: ignore[arg-type]

    assert (error.reason, error.http_status) == (RejectReason.UNSUPPORTED_MEDIA_TYPE, 415)


def test_utf16_body_is_refused() -> None:
    body = new_mail_body("s", "w").decode().replace("utf-8", "utf-16").encode("utf-16")

    error = rejection(body)

    assert (error.reason, error.http_status) == (RejectReason.UNSUPPORTED_ENCODING, 415)


def test_declared_non_utf8_charset_is_refused() -> None:
    error = rejection(new_mail_body("s", "w"), content_type="text/xml; charset=iso-8859-1")

    assert error.reason is RejectReason.UNSUPPORTED_ENCODING


@pytest.mark.parametrize("body", [b"", b"   \r\n"])
def test_empty_body_is_refused(body: bytes) -> None:
    assert rejection(body).reason is RejectReason.EMPTY_BODY


def test_xml_that_is_not_soap_is_refused() -> None:
    assert rejection(b"<rss><channel/></rss>").reason is RejectReason.NOT_SOAP


def test_soap_envelope_without_send_notification_is_refused() -> None:
    body = (
        b'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>'
        b'<m:GetItem xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages"/></s:Body></s:Envelope>'
    )

    assert rejection(body).reason is RejectReason.NOT_SEND_NOTIFICATION


def test_send_notification_without_any_notification_is_refused() -> None:
    body = send_notification(Body([]))

    assert rejection(body).reason is RejectReason.NO_NOTIFICATION


def test_notification_without_subscription_id_is_refused() -> None:
    body = new_mail_body("", "w")

    assert rejection(body).reason is RejectReason.INVALID_NOTIFICATION


def test_prefix_alone_does_not_make_an_element_ews() -> None:
    # Right prefixes bound to the wrong namespaces: nothing may be taken for a notification.
    body = new_mail_body("s", "w").replace(
        b"http://schemas.microsoft.com/exchange/services/2006/messages", b"urn:not-ews"
    )

    assert rejection(body).reason is RejectReason.NOT_SEND_NOTIFICATION

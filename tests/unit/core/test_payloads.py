import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ens.core.devices import ContentMode, ContentPolicy, Device, Rules
from ens.core.mail import Mail
from ens.core.payloads import (
    APNS_MAX_PAYLOAD_BYTES,
    PayloadTooLarge,
    alert_payload,
    badge_payload,
    clean_text,
    cut,
    effective_content,
    encode,
)

pytestmark = pytest.mark.unit

PROPERTY = settings(derandomize=True, max_examples=200, deadline=None, database=None)
RECEIVED = datetime(2026, 11, 30, 9, 15, 2, 123000, tzinfo=UTC)


def device(**rules: Any) -> Device:
    return Device(
        mailbox="alice@contoso.com",
        device_id="iphone-1",
        push_token="a1b2c3d4" * 8,
        registered_at=RECEIVED,
        updated_at=RECEIVED,
        rules=Rules(**rules),
    )


def mail(**fields: Any) -> Mail:
    values: dict[str, Any] = {
        "item_id": "AAMkADk0-item-1",
        "received_at": RECEIVED,
        "is_read": False,
        "subject": "Quarterly figures",
        "sender_name": "Bob Builder",
        "sender_address": "bob@fabrikam.com",
        "importance": "Normal",
        "internet_message_id": "<1234@fabrikam.com>",
        "folder_id": "AQMkADk0-inbox",
        "preview": "Hi Alice, the figures are attached.",
    }
    return Mail(**(values | fields))


def text_of(payload: dict[str, Any]) -> str:
    return encode(payload).decode("utf-8")


# --- content ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "policy", "expected"),
    [
        (ContentMode.SUMMARY, ContentPolicy.FULL, "full"),
        (ContentMode.SUMMARY, ContentPolicy.SENDER_ONLY, "sender_only"),
        (ContentMode.SUMMARY, ContentPolicy.COUNT_ONLY, "count"),
        (ContentMode.COUNT, ContentPolicy.FULL, "count"),
        (ContentMode.COUNT, ContentPolicy.SENDER_ONLY, "count"),
        (ContentMode.COUNT, ContentPolicy.COUNT_ONLY, "count"),
    ],
)
def test_policy_caps_what_the_device_asked_for(
    mode: ContentMode, policy: ContentPolicy, expected: str
) -> None:
    assert effective_content(mode, policy) == expected


def test_summary_payload_carries_sender_subject_snippet_and_ids() -> None:
    payload = alert_payload(device(), mail(), unread_count=3, policy=ContentPolicy.FULL)

    collapse_id, thread_id = payload.pop("collapse_id"), payload["aps"].pop("thread-id")
    assert payload == {
        "device_token": "a1b2c3d4" * 8,
        "mailbox": "alice@contoso.com",
        "kind": "summary",
        "unread_count": 3,
        "push_type": "alert",
        "priority": 10,
        "mail": {
            "sender": {"name": "Bob Builder", "address": "bob@fabrikam.com"},
            "subject": "Quarterly figures",
            "snippet": "Hi Alice, the figures are attached.",
            "received_at": "2026-11-30T09:15:02Z",
            "internet_message_id": "<1234@fabrikam.com>",
            "folder_id": "AQMkADk0-inbox",
        },
        "aps": {
            "alert": {
                "title": "Bob Builder",
                "subtitle": "Quarterly figures",
                "body": "Hi Alice, the figures are attached.",
            },
            "badge": 3,
            "sound": "default",
            "mutable-content": 1,
        },
    }
    assert collapse_id.startswith("m-")
    assert thread_id.startswith("t-")


def test_sender_only_policy_leaves_subject_and_snippet_out_of_the_whole_payload() -> None:
    payload = alert_payload(device(), mail(), unread_count=3, policy=ContentPolicy.SENDER_ONLY)

    assert payload["kind"] == "summary"
    assert payload["aps"]["alert"] == {"title": "Bob Builder", "body": "New message"}
    assert payload["mail"]["sender"] == {"name": "Bob Builder", "address": "bob@fabrikam.com"}
    assert "Quarterly" not in text_of(payload)
    assert "figures" not in text_of(payload)


@pytest.mark.parametrize(
    ("content", "policy"),
    [(ContentMode.COUNT, ContentPolicy.FULL), (ContentMode.SUMMARY, ContentPolicy.COUNT_ONLY)],
)
def test_count_payload_names_no_sender_subject_or_snippet(
    content: ContentMode, policy: ContentPolicy
) -> None:
    payload = alert_payload(device(content=content), mail(), unread_count=7, policy=policy)

    assert payload["kind"] == "count"
    assert payload["aps"]["alert"] == {"title": "New mail", "body": "7 unread messages"}
    assert payload["mail"] == {"internet_message_id": "<1234@fabrikam.com>", "folder_id": "AQMkADk0-inbox"}
    for secret in ("Bob", "fabrikam.com>", "bob@", "Quarterly", "attached"):
        assert secret not in text_of(payload).replace("<1234@fabrikam.com>", "")


@pytest.mark.parametrize(
    ("count", "body"), [(1, "1 unread message"), (0, "0 unread messages"), (None, "New message")]
)
def test_count_alert_speaks_in_singular_or_plural(count: int | None, body: str) -> None:
    payload = alert_payload(
        device(content=ContentMode.COUNT), mail(), unread_count=count, policy=ContentPolicy.FULL
    )

    assert payload["aps"]["alert"]["body"] == body


def test_badge_is_left_out_when_the_unread_count_is_unknown() -> None:
    payload = alert_payload(device(), mail(), unread_count=None, policy=ContentPolicy.FULL)

    assert payload["unread_count"] is None
    assert "badge" not in payload["aps"]


def test_sender_address_is_the_title_when_the_sender_has_no_name() -> None:
    payload = alert_payload(device(), mail(sender_name="  "), unread_count=None, policy=ContentPolicy.FULL)

    assert payload["aps"]["alert"]["title"] == "bob@fabrikam.com"
    assert payload["mail"]["sender"] == {"name": None, "address": "bob@fabrikam.com"}


def test_mail_without_subject_or_preview_has_no_subtitle_or_body() -> None:
    payload = alert_payload(
        device(), mail(subject=None, preview=""), unread_count=None, policy=ContentPolicy.FULL
    )

    assert payload["aps"]["alert"] == {"title": "Bob Builder"}
    assert (payload["mail"]["subject"], payload["mail"]["snippet"]) == (None, None)


def test_snippet_is_cut_to_the_device_snippet_length_with_an_ellipsis() -> None:
    payload = alert_payload(
        device(snippet_length=12),
        mail(preview="Hello Alice, here is more"),
        unread_count=None,
        policy=ContentPolicy.FULL,
    )

    assert payload["mail"]["snippet"] == "Hello Alice…"
    assert payload["aps"]["alert"]["body"] == "Hello Alice…"


def test_snippet_length_zero_sends_no_snippet() -> None:
    payload = alert_payload(device(snippet_length=0), mail(), unread_count=None, policy=ContentPolicy.FULL)

    assert payload["mail"]["snippet"] is None
    assert "body" not in payload["aps"]["alert"]


def test_texts_lose_control_and_bidi_override_characters_and_runs_of_whitespace() -> None:
    payload = alert_payload(
        device(),
        mail(
            sender_name="Bob\x00\u202eredliB",
            subject="Re:\r\n\tfigures",
            preview="Hi\n\n  Alice,\u2028\x07see\u00a0below",
        ),
        unread_count=None,
        policy=ContentPolicy.FULL,
    )

    assert payload["aps"]["alert"] == {
        "title": "Bob redliB",
        "subtitle": "Re: figures",
        "body": "Hi Alice, see below",
    }


def test_identifiers_that_are_too_long_or_not_printable_are_left_out_rather_than_cut() -> None:
    payload = alert_payload(
        device(),
        mail(
            internet_message_id="<" + "x" * 600 + "@fabrikam.com>",
            folder_id="bad\nid",
            sender_address="a" * 400,
        ),
        unread_count=None,
        policy=ContentPolicy.FULL,
    )

    assert payload["mail"]["internet_message_id"] is None
    assert payload["mail"]["folder_id"] is None
    assert payload["mail"]["sender"]["address"] is None


def test_negative_unread_count_is_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        badge_payload(device(), unread_count=-1)


# --- badge and ids ------------------------------------------------------------------------------


def test_badge_payload_is_an_alert_push_without_alert_text_at_low_priority() -> None:
    payload = badge_payload(device(), unread_count=2)

    collapse_id = payload.pop("collapse_id")
    assert payload == {
        "device_token": "a1b2c3d4" * 8,
        "mailbox": "alice@contoso.com",
        "kind": "badge",
        "unread_count": 2,
        "push_type": "alert",
        "priority": 5,
        "mail": None,
        "aps": {"badge": 2},
    }
    assert collapse_id.startswith("b-")


def test_summary_collapse_id_is_per_mail_and_count_collapse_id_is_per_mailbox() -> None:
    def collapse_id(content: ContentMode, item_id: str) -> str:
        payload = alert_payload(
            device(content=content), mail(item_id=item_id), unread_count=1, policy=ContentPolicy.FULL
        )
        return str(payload["collapse_id"])

    assert collapse_id(ContentMode.SUMMARY, "item-1") == collapse_id(ContentMode.SUMMARY, "item-1")
    assert collapse_id(ContentMode.SUMMARY, "item-1") != collapse_id(ContentMode.SUMMARY, "item-2")
    assert collapse_id(ContentMode.COUNT, "item-1") == collapse_id(ContentMode.COUNT, "item-2")
    assert collapse_id(ContentMode.COUNT, "item-1") != badge_payload(device(), unread_count=1)["collapse_id"]


def test_collapse_and_thread_ids_are_short_and_do_not_name_the_mailbox() -> None:
    payloads = [
        alert_payload(device(content=content), mail(), unread_count=1, policy=ContentPolicy.FULL)
        for content in ContentMode
    ] + [badge_payload(device(), unread_count=1)]

    for payload in payloads:
        assert len(payload["collapse_id"].encode()) <= 64
        assert "alice" not in payload["collapse_id"]
    for payload in payloads[:2]:
        assert payload["aps"]["thread-id"] == payloads[0]["aps"]["thread-id"]
        assert "alice" not in payload["aps"]["thread-id"]


def test_thread_id_differs_per_mailbox() -> None:
    other = device().model_copy(update={"mailbox": "bob@contoso.com"})

    assert (
        alert_payload(device(), mail(), unread_count=1, policy=ContentPolicy.FULL)["aps"]["thread-id"]
        != alert_payload(other, mail(), unread_count=1, policy=ContentPolicy.FULL)["aps"]["thread-id"]
    )


# --- cutting text ---------------------------------------------------------------------------------

FAMILY = "\U0001f469\u200d\U0001f469\u200d\U0001f467"  # 👩‍👩‍👧, five code points, one picture
THUMB = "\U0001f44d\U0001f3fd"  # 👍🏽 with a skin tone
FLAGS = "\U0001f1e9\U0001f1ea\U0001f1eb\U0001f1f7"  # 🇩🇪🇫🇷
E_ACUTE = "e\u0301"  # e + combining acute


@pytest.mark.parametrize(
    ("text", "limit", "expected"),
    [
        ("short", 10, "short"),
        ("exactly ten", 11, "exactly ten"),
        ("Hello world", 6, "Hello…"),
        ("漢字仮名交じり文", 4, "漢字仮…"),
        (f"ab{FAMILY}cd", 8, f"ab{FAMILY}…"),
        (f"ab{FAMILY}cd", 7, "ab…"),
        (f"ab{THUMB}cd", 5, f"ab{THUMB}…"),
        (f"ab{THUMB}cd", 4, "ab…"),
        (FLAGS + "x", 4, "\U0001f1e9\U0001f1ea…"),
        (FLAGS + "x", 3, "\U0001f1e9\U0001f1ea…"),
        (E_ACUTE * 4, 4, E_ACUTE + "…"),
        ("anything", 0, ""),
        ("anything", 1, "…"),
    ],
)
def test_cut_keeps_every_visible_character_whole(text: str, limit: int, expected: str) -> None:
    assert cut(text, limit) == expected


def test_clean_text_replaces_lone_surrogates_so_the_json_is_valid_utf8() -> None:
    assert clean_text("ok\ud800ok") == "ok ok"


# --- encoding -------------------------------------------------------------------------------------


def test_encode_is_compact_utf8_json() -> None:
    payload = alert_payload(device(), mail(subject="Café ☕"), unread_count=1, policy=ContentPolicy.FULL)

    data = encode(payload)

    assert b'"subtitle":"Caf\xc3\xa9 \xe2\x98\x95"' in data
    assert data == json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    assert json.loads(data) == payload


def test_oversized_payload_gives_up_snippet_first_and_keeps_subject_and_sender() -> None:
    payload = alert_payload(
        device(snippet_length=256),
        mail(subject="S" * 600, sender_name="N" * 600, preview="漢" * 400),
        unread_count=1,
        policy=ContentPolicy.FULL,
    )

    decoded = json.loads(encode(payload))

    assert len(encode(payload)) <= APNS_MAX_PAYLOAD_BYTES
    assert decoded["mail"]["subject"] == "S" * 600
    assert decoded["mail"]["sender"]["name"] == "N" * 600
    assert decoded["mail"]["snippet"].endswith("…")
    assert decoded["aps"]["alert"]["body"] == decoded["mail"]["snippet"]


def test_oversized_payload_cuts_subject_next_and_sender_name_last() -> None:
    payload = alert_payload(
        device(), mail(subject="主" * 2000, sender_name="N" * 900), unread_count=1, policy=ContentPolicy.FULL
    )

    decoded = json.loads(encode(payload))

    assert decoded["mail"]["snippet"] is None
    assert "body" not in decoded["aps"]["alert"]
    assert decoded["mail"]["subject"].endswith("…")
    assert decoded["aps"]["alert"]["subtitle"] == decoded["mail"]["subject"]
    assert decoded["mail"]["sender"]["name"] == "N" * 900


def test_encode_does_not_change_the_payload_it_was_given() -> None:
    payload = alert_payload(device(), mail(subject="S" * 5000), unread_count=1, policy=ContentPolicy.FULL)
    before = json.dumps(payload)

    encode(payload)

    assert json.dumps(payload) == before


def test_largest_valid_device_with_largest_identifiers_fits() -> None:
    biggest = Device(
        mailbox="ü" * 64 + "@" + ("ü" * 60 + ".") * 3 + "üüüüü",
        device_id="d" * 128,
        push_token="t" * 512,
        registered_at=RECEIVED,
        updated_at=RECEIVED,
        rules=Rules(snippet_length=256),
    )
    huge = mail(
        subject="😀" * 5000,
        sender_name="😀" * 5000,
        sender_address="ü" * 150 + "@x.de",
        preview="😀" * 5000,
        internet_message_id="<" + "m" * 500 + ">",
        folder_id="f" * 250,
        item_id="i" * 5000,
    )

    for policy in ContentPolicy:
        assert (
            len(encode(alert_payload(biggest, huge, unread_count=10**9, policy=policy)))
            <= APNS_MAX_PAYLOAD_BYTES
        )


def test_payload_that_cannot_fit_is_refused_rather_than_sent() -> None:
    with pytest.raises(PayloadTooLarge):
        encode({"device_token": "x" * 5000})


tricky_text = st.text(
    alphabet=st.sampled_from(
        [
            "a",
            " ",
            "\n",
            "\x00",
            "\u202e",
            "é",
            "\u0301",
            "漢",
            "😀",
            "\u200d",
            "\U0001f3fd",
            "\U0001f1e9",
            "\ufe0f",
            '"',
            "\\",
        ]
    ),
    max_size=3000,
)


@PROPERTY
@given(
    subject=tricky_text,
    name=tricky_text,
    preview=tricky_text,
    snippet_length=st.integers(0, 256),
    policy=st.sampled_from(ContentPolicy),
    content=st.sampled_from(ContentMode),
)
def test_any_mail_encodes_to_valid_utf8_json_within_the_apns_limit(
    subject: str, name: str, preview: str, snippet_length: int, policy: ContentPolicy, content: ContentMode
) -> None:
    payload = alert_payload(
        device(snippet_length=snippet_length, content=content),
        mail(subject=subject, sender_name=name, preview=preview),
        unread_count=5,
        policy=policy,
    )

    data = encode(payload)

    assert len(data) <= APNS_MAX_PAYLOAD_BYTES
    decoded = json.loads(data.decode("utf-8"))
    for text in (decoded["mail"].get("snippet"), decoded["mail"].get("subject")):
        if text:
            assert not any(char in text for char in "\x00\n\u202e")
            assert not text.startswith(" ")


@PROPERTY
@given(text=tricky_text, limit=st.integers(0, 300))
def test_cut_text_is_a_prefix_marked_by_an_ellipsis_within_the_limit(text: str, limit: int) -> None:
    result = cut(text, limit)

    assert len(result) <= limit
    if result == text:
        return
    if result:
        assert result.endswith("…")
        assert text.startswith(result[:-1])


# --- docs/push.md ---------------------------------------------------------------------------------


def test_examples_in_push_doc_are_what_the_code_builds() -> None:
    doc = (Path(__file__).resolve().parents[3] / "docs" / "push.md").read_text(encoding="utf-8")
    examples = [json.loads(block.split("```")[0]) for block in doc.split("```json\n")[1:]]
    phone = device(snippet_length=40)
    delivered = mail(
        item_id="AAMkADk0ZmI1-item",
        received_at=datetime(2026, 11, 30, 9, 15, 2, tzinfo=UTC),
        internet_message_id="<CAF1234@mail.fabrikam.com>",
        folder_id="AQMkADk0ZmI1-inbox",
        preview="Hi Alice,\r\n\r\nthe figures for Q3 are attached; see the second tab.",
    )

    built = [
        alert_payload(phone, delivered, unread_count=3, policy=policy)
        for policy in (ContentPolicy.FULL, ContentPolicy.SENDER_ONLY, ContentPolicy.COUNT_ONLY)
    ] + [badge_payload(phone, unread_count=2)]

    assert examples == built

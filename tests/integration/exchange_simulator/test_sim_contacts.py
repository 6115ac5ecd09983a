"""Contacts with categories: how the consumer finds a user's VIP senders, through exchangelib.

`account.contacts.filter(categories__contains=["VIP"]).only("email_addresses", "categories")` is a FindItem
(IdOnly, restriction IsEqualTo item:Categories, 100 per page) on the Contacts folder, then GetItem for the
email addresses, which exchangelib never asks of FindItem (indexed fields are "complex" to it).
"""

from __future__ import annotations

import pytest
from exchangelib import UTC, EWSDateTime
from exchangelib.errors import ErrorItemNotFound, ErrorUnsupportedPathForQuery
from exchangelib.folders import Contacts, FolderCollection, Root
from exchangelib.properties import DistinguishedFolderId

from exchange_simulator import ExchangeSimulator
from support.simulator_fixtures import DEMO_MAILBOX

pytestmark = pytest.mark.integration


def vip_addresses(query) -> list[str]:
    return sorted(address.email for contact in query for address in contact.email_addresses or [])


def test_vip_contacts_are_found_by_category_and_the_others_are_not(ews_account):
    # The demo gives Alice the CEO in category VIP and Bob Brown in category Colleagues.
    found = list(
        ews_account().contacts.filter(categories__contains=["VIP"]).only("email_addresses", "categories")
    )

    assert [(c.categories, [a.email for a in c.email_addresses]) for c in found] == [
        (["VIP"], ["ceo@contoso.example"])
    ]


def test_categories_match_without_regard_to_case(exchange_simulator: ExchangeSimulator, ews_account):
    exchange_simulator.add_contact(
        DEMO_MAILBOX, display_name="Dana", email="dana@contoso.example", categories=["vip"]
    )
    exchange_simulator.add_contact(
        DEMO_MAILBOX, display_name="Eve", email="eve@contoso.example", categories=["Family", "Vip"]
    )
    contacts = ews_account().contacts

    assert vip_addresses(contacts.filter(categories__contains=["VIP"]).only("email_addresses")) == [
        "ceo@contoso.example",
        "dana@contoso.example",
        "eve@contoso.example",
    ]
    assert vip_addresses(
        contacts.filter(categories__in=["family", "colleagues"]).only("email_addresses")
    ) == [
        "bob.brown@fabrikam.example",
        "bob@contoso.example",
        "eve@contoso.example",
    ]


def test_every_address_of_a_contact_comes_back_with_its_key(
    exchange_simulator: ExchangeSimulator, ews_account
):
    exchange_simulator.add_contact(
        DEMO_MAILBOX,
        display_name="Frank",
        emails=["frank@contoso.example", "frank@home.example", "f@fabrikam.example"],
        categories=["VIP"],
    )

    (frank,) = (
        ews_account()
        .contacts.filter(categories__contains=["VIP"], display_name="Frank")
        .only("display_name", "email_addresses")
    )

    assert frank.display_name == "Frank"
    assert [(a.label, a.email) for a in frank.email_addresses] == [
        ("EmailAddress1", "frank@contoso.example"),
        ("EmailAddress2", "frank@home.example"),
        ("EmailAddress3", "f@fabrikam.example"),
    ]


def test_a_contact_in_another_mailbox_is_not_visible(exchange_simulator: ExchangeSimulator, ews_account):
    carols = exchange_simulator.add_contact(
        "carol@contoso.example", display_name="Carol's VIP", email="vip@fabrikam.example", categories=["VIP"]
    )
    account = ews_account()

    found = vip_addresses(account.contacts.filter(categories__contains=["VIP"]).only("email_addresses"))
    (fetched,) = account.fetch(ids=[(exchange_simulator.item_id("carol@contoso.example", carols), None)])

    assert found == ["ceo@contoso.example"]
    assert isinstance(fetched, ErrorItemNotFound)


def test_all_vip_contacts_are_read_across_pages(exchange_simulator: ExchangeSimulator, ews_account):
    for n in range(250):
        exchange_simulator.add_contact(
            DEMO_MAILBOX, display_name=f"VIP {n:03d}", email=f"vip{n:03d}@contoso.example", categories=["VIP"]
        )
    for n in range(40):
        exchange_simulator.add_contact(
            DEMO_MAILBOX, display_name=f"Other {n:03d}", email=f"other{n:03d}@contoso.example"
        )
    account = ews_account()
    # A Contacts folder on a locally built root: no GetFolder for the account's root or its Contacts folder.
    # Its DistinguishedFolderId is given up front: exchangelib fills it in on first use otherwise, which
    # changes the folder's hash and breaks its own paging bookkeeping (KeyError after the last page).
    contacts = FolderCollection(
        account=account,
        folders=[
            Contacts(root=Root(account=account), _distinguished_id=DistinguishedFolderId(id="contacts"))
        ],
    )
    mark = exchange_simulator.last_request_seq

    found = vip_addresses(contacts.filter(categories__contains=["VIP"]).only("email_addresses"))

    assert found == sorted(["ceo@contoso.example", *(f"vip{n:03d}@contoso.example" for n in range(250))])
    # 251 contacts: three FindItem pages of 100, GetItem in exchangelib's chunks of 100 ids, and the
    # account's root folder, which exchangelib's fetch() gets once per Account to validate the fields.
    assert exchange_simulator.request_counts(since=mark)["by_operation"] == {
        "FindItem": 3,
        "GetFolder": 1,
        "GetItem": 3,
    }


def test_a_mailbox_without_vip_contacts_finds_none(ews_account):
    assert list(ews_account("bob@contoso.example").contacts.filter(categories__contains=["VIP"])) == []


def test_a_restriction_on_a_property_contacts_cannot_be_searched_by_is_refused(ews_account):
    with pytest.raises(ErrorUnsupportedPathForQuery, match="cannot be used in a restriction"):
        list(ews_account().contacts.filter(datetime_received__gt=EWSDateTime(2024, 1, 1, tzinfo=UTC)))

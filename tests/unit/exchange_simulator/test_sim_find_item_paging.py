"""FindItem's IndexedPageItemView over contacts, checked on the raw response without HTTP."""

from __future__ import annotations

import pytest

from exchange_simulator import ExchangeSimulator, soap
from support.ews_schema import assert_valid_ews

pytestmark = pytest.mark.unit

MAILBOX = "alice@contoso.example"


@pytest.fixture
def sim_with_contacts():
    sim = ExchangeSimulator(settings={"clock": "manual", "dispatch": "manual"})
    sim.add_service_account("svc", "pw")
    sim.add_mailbox(MAILBOX)
    for n in range(5):
        sim.add_contact(MAILBOX, display_name=f"VIP {n}", email=f"vip{n}@contoso.example", categories=["VIP"])
    sim.add_contact(MAILBOX, display_name="Not a VIP", email="other@contoso.example", categories=["Other"])
    return sim


def find_vips(sim: ExchangeSimulator, view: str) -> tuple[dict[str, str], list[str]]:
    body = (
        '<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"'
        ' xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages"'
        ' xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types"><s:Header>'
        f"<t:ExchangeImpersonation><t:ConnectingSID><t:PrimarySmtpAddress>{MAILBOX}</t:PrimarySmtpAddress>"
        "</t:ConnectingSID></t:ExchangeImpersonation></s:Header><s:Body>"
        '<m:FindItem Traversal="Shallow"><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape>'
        '<t:AdditionalProperties><t:FieldURI FieldURI="contacts:DisplayName"/></t:AdditionalProperties>'
        f"</m:ItemShape>{view}"
        '<m:Restriction><t:IsEqualTo><t:FieldURI FieldURI="item:Categories"/>'
        '<t:FieldURIOrConstant><t:Constant Value="vip"/></t:FieldURIOrConstant></t:IsEqualTo></m:Restriction>'
        '<m:ParentFolderIds><t:DistinguishedFolderId Id="contacts"/></m:ParentFolderIds></m:FindItem>'
        "</s:Body></s:Envelope>"
    ).encode()
    status, response, _ = sim.handle_ews(body, sim.accounts.find("svc"), None)
    assert status == 200
    (root,) = assert_valid_ews(response)
    root_folder = root.find(f".//{{{soap.MESSAGES_NS}}}RootFolder")
    assert root_folder is not None
    names = [name.text or "" for name in root_folder.iter(soap.t("DisplayName"))]
    return dict(root_folder.attrib), names


@pytest.mark.parametrize(
    ("offset", "names", "next_offset", "last"),
    [
        (0, ["VIP 0", "VIP 1"], "2", "false"),
        (2, ["VIP 2", "VIP 3"], "4", "false"),
        (4, ["VIP 4"], "5", "true"),
        (6, [], "6", "true"),
    ],
)
def test_each_page_says_where_the_next_starts_and_whether_it_was_the_last(
    sim_with_contacts, offset, names, next_offset, last
):
    paging, found = find_vips(
        sim_with_contacts,
        f'<m:IndexedPageItemView MaxEntriesReturned="2" Offset="{offset}" BasePoint="Beginning"/>',
    )

    assert found == names
    assert paging == {
        "IndexedPagingOffset": next_offset,
        "TotalItemsInView": "5",
        "IncludesLastItemInRange": last,
    }


def test_without_a_page_view_every_match_comes_back_in_file_as_order(sim_with_contacts):
    paging, found = find_vips(sim_with_contacts, "")

    assert found == [f"VIP {n}" for n in range(5)]
    assert paging["IncludesLastItemInRange"] == "true"

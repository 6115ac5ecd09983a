"""Authentication, impersonation and injected faults, seen from exchangelib and from raw SOAP."""

from __future__ import annotations

from itertools import pairwise

import pytest
import requests
from exchangelib import NTLM, FaultTolerance
from exchangelib.errors import (
    ErrorImpersonateUserDenied,
    ErrorNonExistentMailbox,
    ErrorServerBusy,
    UnauthorizedError,
)
from lxml import etree

from exchange_simulator import ExchangeSimulator
from support.ews_schema import assert_valid_ews
from support.simulator_fixtures import (
    DEMO_MAILBOX,
    DEMO_NO_IMPERSONATION_ACCOUNT,
    DEMO_PASSWORD,
    DEMO_SERVICE_ACCOUNT,
)

pytestmark = pytest.mark.integration

M = "{http://schemas.microsoft.com/exchange/services/2006/messages}"
T = "{http://schemas.microsoft.com/exchange/services/2006/types}"


def soap_request(body: str, impersonation: str = "") -> bytes:
    header = '<t:RequestServerVersion Version="Exchange2016"/>' + (
        f"<t:ExchangeImpersonation><t:ConnectingSID>{impersonation}</t:ConnectingSID></t:ExchangeImpersonation>"
        if impersonation
        else ""
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        '<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"'
        ' xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages"'
        ' xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types">'
        f"<s:Header>{header}</s:Header><s:Body>{body}</s:Body></s:Envelope>"
    ).encode()


GET_INBOX = (
    "<m:GetFolder><m:FolderShape><t:BaseShape>Default</t:BaseShape></m:FolderShape>"
    '<m:FolderIds><t:DistinguishedFolderId Id="inbox"/></m:FolderIds></m:GetFolder>'
)


def post(sim: ExchangeSimulator, body: bytes, auth=(DEMO_SERVICE_ACCOUNT, DEMO_PASSWORD), **headers: str):
    return requests.post(
        sim.ews_url,
        data=body,
        auth=auth,
        headers={"Content-Type": "text/xml; charset=utf-8", **headers},
        timeout=10,
    )


def test_ntlm_authenticates_a_service_account(ews_account):
    account = ews_account(auth_type=NTLM)

    assert account.inbox.total_count == 1


@pytest.mark.parametrize("login", ["svc-ens@contoso.example", "svc-ens", "SIMULATOR\\svc-ens"])
def test_basic_accepts_the_upn_the_account_name_and_domain_backslash_account_name(
    exchange_simulator: ExchangeSimulator, login
):
    identity = f"<t:PrimarySmtpAddress>{DEMO_MAILBOX}</t:PrimarySmtpAddress>"

    response = post(exchange_simulator, soap_request(GET_INBOX, identity), auth=(login, DEMO_PASSWORD))

    assert response.status_code == 200
    assert exchange_simulator.requests[-1].account == DEMO_SERVICE_ACCOUNT


def test_ntlm_authenticates_domain_backslash_account_name_of_a_upn_account(ews_account):
    account = ews_account(auth_type=NTLM, username="SIMULATOR\\svc-ens")

    assert account.inbox.total_count == 1


def test_ntlm_with_a_wrong_password_is_refused(ews_account):
    with pytest.raises(UnauthorizedError):
        _ = ews_account(auth_type=NTLM, password="wrong").inbox


def test_basic_with_a_wrong_password_is_refused_with_401(exchange_simulator: ExchangeSimulator, ews_account):
    with pytest.raises(UnauthorizedError):
        _ = ews_account(password="wrong").inbox

    response = post(exchange_simulator, soap_request(GET_INBOX), auth=("svc-ens@contoso.example", "nope"))
    assert response.status_code == 401
    assert "Basic" in response.headers["WWW-Authenticate"]
    assert "NTLM" in response.headers["WWW-Authenticate"]


def test_impersonation_without_the_right_is_denied(ews_account):
    account = ews_account(username=DEMO_NO_IMPERSONATION_ACCOUNT)

    with pytest.raises(ErrorImpersonateUserDenied):
        _ = account.inbox


def test_impersonating_an_unknown_mailbox_fails(ews_account):
    with pytest.raises(ErrorNonExistentMailbox):
        _ = ews_account("nobody@contoso.example").inbox


@pytest.mark.parametrize(
    "identity",
    [
        f"<t:PrimarySmtpAddress>{DEMO_MAILBOX}</t:PrimarySmtpAddress>",
        f"<t:SmtpAddress>{DEMO_MAILBOX.upper()}</t:SmtpAddress>",
        f"<t:PrincipalName>{DEMO_MAILBOX}</t:PrincipalName>",
    ],
)
def test_every_impersonation_form_reaches_the_mailbox(exchange_simulator: ExchangeSimulator, identity):
    response = post(exchange_simulator, soap_request(GET_INBOX, impersonation=identity))

    assert response.status_code == 200
    (body,) = assert_valid_ews(response.content)
    assert body.find(f".//{T}DisplayName").text == "Inbox"
    assert exchange_simulator.requests[-1].impersonated == DEMO_MAILBOX


def test_the_x_anchor_mailbox_header_is_recorded(exchange_simulator: ExchangeSimulator, ews_account):
    _ = ews_account().inbox

    assert {record.anchor_mailbox for record in exchange_simulator.requests} == {DEMO_MAILBOX}


def test_every_response_carries_server_version_info(exchange_simulator: ExchangeSimulator):
    response = post(exchange_simulator, soap_request(GET_INBOX))

    info = etree.fromstring(response.content).find(f".//{T}ServerVersionInfo")
    assert info.get("MajorVersion") == "15"
    assert info.get("MinorVersion") == "1"


def test_server_busy_is_honoured_by_exchangelibs_fault_tolerance(
    exchange_simulator: ExchangeSimulator, ews_account
):
    back_off_ms = 300
    # Without BackOffMilliseconds exchangelib would wait its own RETRY_WAIT (10 s); a max_wait below that
    # turns such a fallback into RateLimitError, so a retry at all means the simulator's value was read.
    account = ews_account(retry_policy=FaultTolerance(max_wait=1))
    exchange_simulator.faults.add("server_busy", count=2, back_off_ms=back_off_ms, operations=["GetFolder"])

    assert account.inbox.total_count == 1

    calls = list(exchange_simulator.requests)[:3]
    assert [(r.operation, r.http_status, r.response_code) for r in calls] == [
        ("GetFolder", 500, "ErrorServerBusy"),
        ("GetFolder", 500, "ErrorServerBusy"),
        ("GetFolder", 200, "NoError"),
    ]
    # A retry arrives no earlier than the busy answer went out plus the back-off, and that answer went out
    # after its request arrived: so honouring the back-off means these gaps are at least the back-off.
    gaps = [later.received_monotonic - earlier.received_monotonic for earlier, later in pairwise(calls)]
    assert min(gaps) >= back_off_ms / 1000, f"retried after {gaps} s, back-off was {back_off_ms} ms"


def test_server_busy_reaches_a_fail_fast_client_with_its_back_off(
    exchange_simulator: ExchangeSimulator, ews_account
):
    exchange_simulator.faults.add("server_busy", count=1, back_off_ms=297749)

    with pytest.raises(ErrorServerBusy) as raised:
        _ = ews_account().inbox

    assert raised.value.back_off == pytest.approx(297.749)


def test_server_busy_for_a_fraction_of_calls_is_reproducible(exchange_simulator: ExchangeSimulator):
    exchange_simulator.faults.add("server_busy", fraction=0.5, back_off_ms=10)

    statuses = [
        post(
            exchange_simulator,
            soap_request(GET_INBOX, f"<t:PrimarySmtpAddress>{DEMO_MAILBOX}</t:PrimarySmtpAddress>"),
        ).status_code
        for _ in range(40)
    ]

    assert 5 < statuses.count(500) < 35
    assert set(statuses) == {200, 500}


def test_a_connection_reset_fault_hangs_up_without_an_answer(exchange_simulator: ExchangeSimulator):
    exchange_simulator.faults.add("connection_reset", count=1)

    with pytest.raises(requests.ConnectionError):
        post(exchange_simulator, soap_request(GET_INBOX))
    assert (
        post(
            exchange_simulator,
            soap_request(GET_INBOX, f"<t:PrimarySmtpAddress>{DEMO_MAILBOX}</t:PrimarySmtpAddress>"),
        ).status_code
        == 200
    )


def test_latency_fault_delays_the_answer(exchange_simulator: ExchangeSimulator):
    exchange_simulator.faults.add("latency", count=1, latency_ms=150)
    identity = f"<t:PrimarySmtpAddress>{DEMO_MAILBOX}</t:PrimarySmtpAddress>"

    response = post(exchange_simulator, soap_request(GET_INBOX, identity))

    assert response.status_code == 200
    assert response.elapsed.total_seconds() >= 0.15


def test_an_unimplemented_operation_gets_a_schema_valid_error(exchange_simulator: ExchangeSimulator):
    body = '<m:ResolveNames ReturnFullContactData="false"><m:UnresolvedEntry>bob</m:UnresolvedEntry></m:ResolveNames>'

    response = post(
        exchange_simulator, soap_request(body, f"<t:PrimarySmtpAddress>{DEMO_MAILBOX}</t:PrimarySmtpAddress>")
    )

    assert response.status_code == 200
    (root,) = assert_valid_ews(response.content)
    assert root.find(f".//{M}ResponseCode").text == "ErrorInvalidOperation"


@pytest.mark.parametrize(
    "body",
    [
        b"this is not xml",
        b"<a>not soap</a>",
        soap_request("<x:Bogus xmlns:x='urn:nothing'/>"),
        soap_request("<m:NoSuchOperation/>"),
    ],
)
def test_garbage_gets_a_soap_fault_not_a_crash(exchange_simulator: ExchangeSimulator, body):
    response = post(exchange_simulator, body)

    assert response.status_code == 500
    fault = etree.fromstring(response.content).find(".//{http://schemas.xmlsoap.org/soap/envelope/}Fault")
    assert fault.findtext("faultcode").startswith("a:Error")


def test_impersonation_by_sid_reaches_the_mailbox(exchange_simulator: ExchangeSimulator):
    from exchange_simulator.ews import mailbox_sid

    sid = mailbox_sid(exchange_simulator.store.mailbox(DEMO_MAILBOX))

    response = post(exchange_simulator, soap_request(GET_INBOX, impersonation=f"<t:SID>{sid}</t:SID>"))

    assert response.status_code == 200
    assert exchange_simulator.requests[-1].impersonated == DEMO_MAILBOX

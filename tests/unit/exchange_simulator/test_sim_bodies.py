"""Bodies the simulator builds, validated against Microsoft's EWS schema without any HTTP."""

from __future__ import annotations

import pytest
from exchangelib.errors import ErrorServerBusy
from exchangelib.services import GetItem
from lxml import etree

from exchange_simulator import ExchangeSimulator, ManualClock, soap
from exchange_simulator.ews import UNSUPPORTED_OPERATIONS, EwsEndpoint, parse_request
from exchange_simulator.push import PushEngine
from support.ews_schema import assert_valid_ews

pytestmark = pytest.mark.unit


@pytest.fixture
def offline_simulator():
    """Not started: the EWS endpoint and push engine work on the store directly."""
    sim = ExchangeSimulator(settings={"clock": "manual", "dispatch": "manual"})
    sim.add_service_account("svc", "pw")
    sim.add_mailbox("alice@contoso.example")
    return sim


def request(body: str) -> bytes:
    return (
        '<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"'
        ' xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages"'
        ' xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types"><s:Header>'
        "<t:ExchangeImpersonation><t:ConnectingSID><t:PrimarySmtpAddress>alice@contoso.example"
        "</t:PrimarySmtpAddress></t:ConnectingSID></t:ExchangeImpersonation>"
        f"</s:Header><s:Body>{body}</s:Body></s:Envelope>"
    ).encode()


@pytest.mark.parametrize("operation", sorted(UNSUPPORTED_OPERATIONS))
def test_every_unimplemented_operation_gets_a_schema_valid_error(offline_simulator, operation):
    account = offline_simulator.accounts.find("svc")

    status, body, _ = offline_simulator.handle_ews(request(f"<m:{operation}/>"), account, None)

    assert status == 200
    (root,) = assert_valid_ews(body)
    assert root.findtext(f".//{{{soap.MESSAGES_NS}}}ResponseCode") == "ErrorInvalidOperation"


def test_a_server_busy_fault_carries_the_back_off_where_exchangelib_looks(offline_simulator):
    offline_simulator.faults.add("server_busy", back_off_ms=1234)

    status, body, _ = offline_simulator.handle_ews(
        request("<m:GetItem/>"), offline_simulator.accounts.find("svc"), None
    )

    assert status == 500
    fault = etree.fromstring(body).find(f".//{{{soap.SOAP_NS}}}Fault")
    with pytest.raises(ErrorServerBusy) as raised:
        GetItem._raise_soap_errors(fault=fault)  # exchangelib's own fault parser
    assert raised.value.back_off == pytest.approx(1.234)


def test_notifications_for_every_event_kind_are_schema_valid(offline_simulator):
    sim = offline_simulator
    pushed: list[bytes] = []
    sim.observers.append(lambda body, kind: pushed.append(body))
    mailbox = "alice@contoso.example"
    box = sim.store.mailbox(mailbox)
    parsed = parse_request(
        request(
            '<m:Subscribe><m:PushSubscriptionRequest SubscribeToAllFolders="true"><t:EventTypes>'
            + "".join(
                f"<t:EventType>{kind}</t:EventType>"
                for kind in ("CreatedEvent", "NewMailEvent", "ModifiedEvent", "MovedEvent", "DeletedEvent")
            )
            + "</t:EventTypes><t:StatusFrequency>1</t:StatusFrequency><t:URL>http://127.0.0.1:9/x</t:URL>"
            "</m:PushSubscriptionRequest></m:Subscribe>"
        )
    )
    context = sim.ews.resolve_target(parsed, sim.accounts.find("svc"))
    sim.ews.call(parsed, context)
    message = sim.deliver(mailbox, subject="s")
    sim.mark_read(mailbox, message.number)
    moved = sim.move(mailbox, message.number, "deleteditems")
    sim.delete(mailbox, moved.number)
    (subscription,) = sim.push.subscriptions.values()

    prepared = sim.push._prepare(subscription)  # build, do not POST

    assert len(subscription.pending_events()) == len(box.events)
    assert_valid_ews(prepared.body)
    assert b"<soap11:Envelope" in prepared.body


def test_endpoint_and_push_engine_share_the_simulators_store(offline_simulator):
    assert isinstance(offline_simulator.ews, EwsEndpoint)
    assert isinstance(offline_simulator.push, PushEngine)
    assert offline_simulator.ews.store is offline_simulator.push.store
    assert isinstance(offline_simulator.clock, ManualClock)


def test_the_schema_guard_reports_an_invalid_body(offline_simulator, ews_schema_guard):
    offline_simulator._emit(request("<m:GetItemResponse><m:Nonsense/></m:GetItemResponse>"), "test")

    assert len(ews_schema_guard) == 1
    ews_schema_guard.clear()  # the guard did its job; do not fail this test in teardown


SUBSCRIPTION_OK_REPLY = (
    '<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>'
    '<m:SendNotificationResult xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages">'
    "<m:SubscriptionStatus>OK</m:SubscriptionStatus></m:SendNotificationResult></s:Body></s:Envelope>"
)


@pytest.mark.parametrize("encoding", ["utf-8", "utf-16"])
def test_a_doctype_is_refused_before_anything_in_it_is_used(encoding):
    body = f'<?xml version="1.0" encoding="{encoding}"?><!DOCTYPE x [<!ENTITY e "e">]><x>&e;</x>'

    with pytest.raises(soap.DoctypeForbidden, match="DTD is prohibited"):
        soap.parse_request(body.encode(encoding))


def test_a_push_reply_with_a_doctype_counts_as_unreadable():
    from exchange_simulator.push import _subscription_status

    assert _subscription_status(SUBSCRIPTION_OK_REPLY.encode()) == "OK"
    assert _subscription_status(f"<!DOCTYPE s:Envelope []>{SUBSCRIPTION_OK_REPLY}".encode()) is None

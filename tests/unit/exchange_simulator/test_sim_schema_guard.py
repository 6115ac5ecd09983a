"""The schema guard checks SOAP faults too: their SOAP 1.1 shape and the EWS parts of their detail."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from lxml import etree

from exchange_simulator import ExchangeSimulator, soap
from support.ews_schema import ERRORS_NS, assert_valid_ews

pytestmark = pytest.mark.unit

T = f"{{{soap.TYPES_NS}}}"
M = f"{{{soap.MESSAGES_NS}}}"
E = f"{{{ERRORS_NS}}}"


def busy_fault() -> etree._Element:
    return soap.fault("ErrorServerBusy", "The server cannot service this request right now.", back_off_ms=300)


def envelope(fault: etree._Element) -> bytes:
    return soap.envelope(soap.ServerVersion(), fault)


def detail_of(fault: etree._Element) -> etree._Element:
    detail = fault.find("detail")
    assert detail is not None
    return detail


def drop_value_name(fault: etree._Element) -> None:
    value = fault.find(f"detail/{T}MessageXml/{T}Value")
    assert value is not None
    del value.attrib["Name"]


def add_invalid_global_element(fault: etree._Element) -> None:
    etree.SubElement(detail_of(fault), f"{T}ServerVersionInfo", MajorVersion="fifteen")


def add_undeclared_ews_element(fault: etree._Element) -> None:
    # m:ResponseCode exists only inside response messages; on its own the schema knows no such element.
    etree.SubElement(detail_of(fault), f"{M}ResponseCode").text = "ErrorServerBusy"


def misspell_detail_response_code(fault: etree._Element) -> None:
    code = fault.find(f"detail/{E}ResponseCode")
    assert code is not None
    code.text = "ErrorServerBusyish"


def misspell_faultcode(fault: etree._Element) -> None:
    faultcode = fault.find("faultcode")
    assert faultcode is not None
    faultcode.text = "a:ErrorServerBusyish"


def undeclared_faultcode_prefix(fault: etree._Element) -> None:
    faultcode = fault.find("faultcode")
    assert faultcode is not None
    faultcode.text = "x:ErrorServerBusy"


def drop_faultstring(fault: etree._Element) -> None:
    faultstring = fault.find("faultstring")
    assert faultstring is not None
    fault.remove(faultstring)


def empty_faultstring(fault: etree._Element) -> None:
    faultstring = fault.find("faultstring")
    assert faultstring is not None
    faultstring.text = " "


def drop_faultcode(fault: etree._Element) -> None:
    faultcode = fault.find("faultcode")
    assert faultcode is not None
    fault.remove(faultcode)


def detail_before_faultstring(fault: etree._Element) -> None:
    faultstring = fault.find("faultstring")
    assert faultstring is not None
    fault.append(faultstring)


@pytest.mark.parametrize(
    ("breakage", "reported"),
    [
        (drop_value_name, "'Name' is required"),
        (add_invalid_global_element, "MajorVersion"),
        (add_undeclared_ews_element, "does not declare globally"),
        (misspell_detail_response_code, "'ErrorServerBusyish' is no m:ResponseCodeType value"),
        (misspell_faultcode, "'a:ErrorServerBusyish' is no m:ResponseCodeType value"),
        (undeclared_faultcode_prefix, "no QName with a declared prefix"),
        (drop_faultstring, "faultstring is missing"),
        (empty_faultstring, "faultstring is missing or empty"),
        (drop_faultcode, "SOAP 1.1 wants faultcode, faultstring"),
        (detail_before_faultstring, "SOAP 1.1 wants faultcode, faultstring"),
    ],
)
def test_an_invalid_fault_is_reported(breakage: Callable[[etree._Element], None], reported: str):
    fault = busy_fault()
    breakage(fault)

    with pytest.raises(AssertionError, match="soap:Fault") as raised:
        assert_valid_ews(envelope(fault))

    assert reported in str(raised.value)


@pytest.mark.parametrize(
    "fault",
    [
        busy_fault(),
        soap.fault("ErrorSchemaValidation", "The request failed schema validation."),
        soap.fault("ErrorInternalServerError", "An internal server error occurred."),
    ],
)
def test_the_faults_the_simulator_sends_pass(fault: etree._Element):
    (body,) = assert_valid_ews(envelope(fault))

    assert body.tag == f"{{{soap.SOAP_NS}}}Fault"


def test_message_xml_children_the_schema_does_not_declare_are_accepted_as_its_lax_content_is():
    # Exchange sends t:LineNumber/t:LinePosition with ErrorSchemaValidation; the schema declares neither.
    fault = soap.fault("ErrorSchemaValidation", "The request failed schema validation.")
    message_xml = etree.SubElement(detail_of(fault), f"{T}MessageXml")
    etree.SubElement(message_xml, f"{T}LineNumber").text = "1"

    assert_valid_ews(envelope(fault))


def test_the_schema_guard_reports_an_invalid_element_in_a_faults_detail(ews_schema_guard):
    sim = ExchangeSimulator(settings={"clock": "manual", "dispatch": "manual"})
    fault = busy_fault()
    drop_value_name(fault)

    sim._emit(envelope(fault), "Fault")

    assert len(ews_schema_guard) == 1
    assert "'Name' is required" in ews_schema_guard[0][1]
    ews_schema_guard.clear()  # the guard did its job; do not fail this test in teardown

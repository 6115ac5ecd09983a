"""ExchangeMailSource against the Exchange simulator: exactly the EWS requests it names, Exchange's
answers mapped to ENS's (a Mail, None for a vanished one, ExchangeBusy, AdminActionRequired)."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from exchangelib.protocol import close_connections

from ens.adapters.exchange import ExchangeMailSource
from ens.core.exchange_servers import ExchangeDirectory
from ens.errors import AdminActionRequired, DependencyUnavailable, ExchangeBusy
from exchange_simulator import ExchangeSimulator
from support.consumer_flow import servers_secret, simulator_server
from support.simulator_fixtures import DEMO_MAILBOX, DEMO_NO_IMPERSONATION_ACCOUNT

pytestmark = pytest.mark.integration

SourceFactory = Callable[..., ExchangeMailSource]


@pytest.fixture
def mail_source(exchange_simulator: ExchangeSimulator) -> Iterator[SourceFactory]:
    """Build an ExchangeMailSource whose one server (default for every domain) is the simulator."""
    requests: list[tuple[str, str, str]] = []

    def build(**server: Any) -> ExchangeMailSource:
        server = {"default": True, **server}
        directory = ExchangeDirectory.from_json(
            servers_secret(
                simulator_server("sim", server.pop("ews_url", exchange_simulator.ews_url), **server)
            )
        )
        return ExchangeMailSource(
            directory, max_concurrency_per_server=4, timeout_seconds=5, on_request=_record(requests)
        )

    build.requests = requests  # type: ignore[attr-defined]
    try:
        yield build
    finally:
        # exchangelib caches protocols and their pools per endpoint: a later test may reuse this port.
        close_connections()


def _record(into: list[tuple[str, str, str]]) -> Callable[[str, str, str], None]:
    return lambda server, operation, mailbox: into.append((server, operation, mailbox))


def delivered(sim: ExchangeSimulator, count: int = 1, **fields: Any) -> list[tuple[str, str | None]]:
    """Deliver `count` mails to Alice; their (item id, change key)s."""
    refs = []
    for index in range(count):
        message = sim.deliver(DEMO_MAILBOX, **{"subject": f"Mail {index}", **fields})
        refs.append((sim.item_id(DEMO_MAILBOX, message), sim.store.change_key(message)))
    return refs


def operations(sim: ExchangeSimulator, since: int) -> dict[str, int]:
    return sim.request_counts(since=since)["by_operation"]


def inbox_id(sim: ExchangeSimulator) -> str:
    box = sim.store.mailbox(DEMO_MAILBOX)
    return sim.store.folder_id(box, box.distinguished["inbox"])


def test_many_mails_are_fetched_with_one_get_item(exchange_simulator, mail_source) -> None:
    refs = delivered(exchange_simulator, 7)
    source = mail_source()
    before = exchange_simulator.last_request_seq

    found = source.fetch(DEMO_MAILBOX, refs)

    assert operations(exchange_simulator, before) == {"GetItem": 1}
    assert [found[item_id].subject for item_id, _ in refs] == [f"Mail {index}" for index in range(7)]
    assert mail_source.requests == [("sim", "GetItem", DEMO_MAILBOX)]


def test_more_than_100_ids_are_fetched_in_chunks_of_100(exchange_simulator, mail_source) -> None:
    refs = delivered(exchange_simulator, 201)
    before = exchange_simulator.last_request_seq

    found = mail_source().fetch(DEMO_MAILBOX, refs)

    assert operations(exchange_simulator, before) == {"GetItem": 3}
    assert len(found) == 201
    assert all(mail is not None for mail in found.values())


def test_a_mail_deleted_or_moved_before_the_fetch_is_none(exchange_simulator, mail_source) -> None:
    kept, deleted, moved = delivered(exchange_simulator, 3)
    exchange_simulator.delete(DEMO_MAILBOX, deleted[0])
    exchange_simulator.move(DEMO_MAILBOX, moved[0], "deleteditems")

    found = mail_source().fetch(DEMO_MAILBOX, [kept, deleted, moved])

    assert found[kept[0]] is not None
    assert (found[deleted[0]], found[moved[0]]) == (None, None)


def test_a_mails_fields_are_mapped_for_the_rules_and_the_payload(exchange_simulator, mail_source) -> None:
    (ref,) = delivered(
        exchange_simulator,
        from_="Bob Brown <Bob.Brown@Contoso.Example>",
        subject="Budget",
        body="Numbers   attached.\nPlease check.",
        importance="High",
        received="2024-05-06T12:15:00+02:00",
        internet_message_id="<budget-1@contoso.example>",
    )

    mail = mail_source().fetch(DEMO_MAILBOX, [ref])[ref[0]]

    assert mail is not None
    assert mail.item_id == ref[0]
    assert mail.received_at == datetime(2024, 5, 6, 10, 15, tzinfo=UTC)
    assert mail.received_at.tzinfo is UTC
    assert (mail.sender_name, mail.sender_address) == ("Bob Brown", "bob.brown@contoso.example")
    assert (mail.subject, mail.importance, mail.is_read) == ("Budget", "High", False)
    assert mail.internet_message_id == "<budget-1@contoso.example>"
    assert mail.folder_id == inbox_id(exchange_simulator)
    assert mail.preview == "Numbers attached. Please check."


def test_a_read_mail_is_fetched_as_read(exchange_simulator, mail_source) -> None:
    (ref,) = delivered(exchange_simulator, is_read=True)

    mail = mail_source().fetch(DEMO_MAILBOX, [ref])[ref[0]]

    assert mail is not None
    assert mail.is_read is True


def test_a_server_pinned_to_2010_sp2_gets_the_text_body_cut_to_256_characters(
    exchange_simulator, mail_source
) -> None:
    body = "".join(f"word{index}\n " for index in range(100))
    (ref,) = delivered(exchange_simulator, body=body)
    before = exchange_simulator.last_request_seq

    mail = mail_source(version="2010_SP2").fetch(DEMO_MAILBOX, [ref])[ref[0]]

    assert mail is not None
    assert mail.preview == " ".join(body.split())[:256]
    assert len(mail.preview) == 256
    assert operations(exchange_simulator, before) == {"GetItem": 1}


def test_a_server_pinned_to_2010_sp2_gets_an_html_bodys_text(exchange_simulator, mail_source) -> None:
    (ref,) = delivered(
        exchange_simulator,
        body="<html><head><style>p {color: red}</style></head><body><p>Please review the <b>Q2</b>"
        " figures.</p><!-- hidden --><script>alert(1)</script></body></html>",
        body_type="HTML",
    )

    mail = mail_source(version="2010_SP2").fetch(DEMO_MAILBOX, [ref])[ref[0]]

    assert mail is not None
    assert mail.preview == "Please review the Q2 figures."


def test_the_unread_count_of_a_folder_by_id_is_one_get_folder(exchange_simulator, mail_source) -> None:
    delivered(exchange_simulator, 3)
    delivered(exchange_simulator, 1, is_read=True)
    source = mail_source()
    before = exchange_simulator.last_request_seq

    count = source.unread_count(DEMO_MAILBOX, inbox_id(exchange_simulator))

    assert count == 3
    assert operations(exchange_simulator, before) == {"GetFolder": 1}


def test_vip_addresses_are_one_find_item_and_one_get_item(exchange_simulator, mail_source) -> None:
    source = mail_source()
    before = exchange_simulator.last_request_seq

    addresses = source.vip_addresses(DEMO_MAILBOX)

    assert addresses == frozenset({"ceo@contoso.example"})
    assert operations(exchange_simulator, before) == {"FindItem": 1, "GetItem": 1}


def test_vip_addresses_follow_the_configured_category_and_are_lower_cased(
    exchange_simulator, mail_source
) -> None:
    exchange_simulator.add_contact(
        DEMO_MAILBOX,
        display_name="Dana",
        emails=["Dana@Fabrikam.Example", "dana@home.example"],
        categories=["Board"],
    )
    directory = ExchangeDirectory.from_json(
        servers_secret(simulator_server("sim", exchange_simulator.ews_url, default=True))
    )

    source = ExchangeMailSource(directory, max_concurrency_per_server=2, vip_category="Board")

    assert source.vip_addresses(DEMO_MAILBOX) == frozenset({"dana@fabrikam.example", "dana@home.example"})


def test_server_busy_becomes_exchange_busy_with_the_back_off(exchange_simulator, mail_source) -> None:
    refs = delivered(exchange_simulator)
    exchange_simulator.faults.add(kind="server_busy", count=1, operations=["GetItem"], back_off_ms=1500)

    with pytest.raises(ExchangeBusy) as raised:
        mail_source().fetch(DEMO_MAILBOX, refs)

    assert (raised.value.server, raised.value.back_off_seconds) == ("sim", 1.5)


def test_an_account_without_impersonation_rights_needs_an_admin(exchange_simulator, mail_source) -> None:
    refs = delivered(exchange_simulator)

    with pytest.raises(AdminActionRequired) as raised:
        mail_source(username=DEMO_NO_IMPERSONATION_ACCOUNT).fetch(DEMO_MAILBOX, refs)

    assert raised.value.code == "impersonation_denied"
    assert "sim" in raised.value.detail


def test_an_unknown_mailbox_needs_an_admin(mail_source) -> None:
    with pytest.raises(AdminActionRequired) as raised:
        mail_source().fetch("nobody@contoso.example", [("AAMkAGI2", None)])

    assert raised.value.code == "mailbox_unknown"


def test_a_mailbox_no_server_serves_needs_an_admin(exchange_simulator, mail_source) -> None:
    source = mail_source(default=False, domains=["fabrikam.example"])
    before = exchange_simulator.last_request_seq

    with pytest.raises(AdminActionRequired) as raised:
        source.fetch(DEMO_MAILBOX, [("AAMkAGI2", None)])

    assert raised.value.code == "no_server"
    assert source.server_name(DEMO_MAILBOX) is None
    assert exchange_simulator.last_request_seq == before


def test_a_server_that_is_down_is_dependency_unavailable(mail_source) -> None:
    with socket.socket() as probe:  # a port nothing listens on once closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    source = mail_source(ews_url=f"http://127.0.0.1:{port}/EWS/Exchange.asmx")

    with pytest.raises(DependencyUnavailable) as raised:
        source.unread_count(DEMO_MAILBOX, "AAMkAGI2")

    assert not isinstance(raised.value, ExchangeBusy)
    assert "sim" in str(raised.value)


@pytest.mark.parametrize("auth_type", ["NTLM", "Basic"])
def test_ntlm_and_basic_authentication_both_work(exchange_simulator, mail_source, auth_type: str) -> None:
    refs = delivered(exchange_simulator)

    found = mail_source(auth_type=auth_type).fetch(DEMO_MAILBOX, refs)

    assert found[refs[0][0]] is not None
    (request,) = [r for r in exchange_simulator.requests if r.operation == "GetItem"]
    assert (request.account, request.impersonated) == ("svc-ens@contoso.example", DEMO_MAILBOX)

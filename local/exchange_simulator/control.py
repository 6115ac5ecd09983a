"""The control API: JSON over HTTP under /_sim, for curl, demos and tests in other processes.

Every route maps onto an ExchangeSimulator method, so Python tests and shell scripts drive the same code.
A route that takes a body names its model in `inputs`; the body is parsed strictly (JSON types as they
are: "true" is no boolean) before the handler runs, and a body that does not fit gets 400.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from pydantic import ValidationError

from exchange_simulator import inputs
from exchange_simulator.clock import ManualClock
from exchange_simulator.model import Contact, Message, NotFoundError
from tooling_http import Routes

if TYPE_CHECKING:
    from exchange_simulator.simulator import ExchangeSimulator

log = logging.getLogger(__name__)

# (simulator, parsed body or None, path parameters, query) -> (HTTP status, JSON answer)
_ROUTES = Routes()
route = _ROUTES.route


class BadQuery(ValueError):
    """A query parameter that does not fit: 400."""


def handle_control(
    sim: ExchangeSimulator, method: str, path: str, query: dict[str, list[str]], body: bytes
) -> tuple[int, Any]:
    path_matched = False
    for route_method, pattern, body_model, handler in _ROUTES:
        match = pattern.match(path)
        if match is None:
            continue
        path_matched = True
        if route_method != method:
            continue
        params = {name: unquote(value) for name, value in match.groupdict().items()}
        try:
            # curl -X POST without -d sends nothing: that means "all defaults".
            parsed = (
                body_model.model_validate_json(body.strip() or b"{}", strict=True) if body_model else None
            )
            return handler(sim, parsed, params, query)
        except ValidationError as e:
            return 400, {"error": inputs.explain(e), "details": json.loads(e.json(include_url=False))}
        except NotFoundError as e:
            return 404, {"error": str(e)}
        except BadQuery as e:
            return 400, {"error": str(e)}
        except Exception:  # a simulator bug still answers, as EWS does, instead of dropping the connection
            log.exception("control request %s %s failed inside the simulator", method, path)
            return 500, {"error": "the simulator failed; see its log"}
    if path_matched:
        return 405, {"error": f"{method} not allowed on {path}"}
    return 404, {"error": f"no control route {path}", "routes": sorted({p.pattern for _, p, _, _ in _ROUTES})}


def message_json(sim: ExchangeSimulator, mailbox: str, message: Message) -> dict[str, Any]:
    with sim.lock:
        box = sim.store.mailbox(mailbox)
        folder = box.folders[message.folder]
        return {
            "ref": message.number,
            "item_id": sim.store.item_id(box, message.number),
            "folder": folder.distinguished or sim.store.folder_id(box, folder.number),
            "subject": message.subject,
            "from": {"name": message.sender.name, "address": message.sender.email},
            "received": message.received.isoformat(),
            "importance": message.importance,
            "is_read": message.is_read,
            "watermark": sim.store.watermark(box, box.head_seq),
        }


@route("GET", "/health")
def _health(sim: ExchangeSimulator, body: None, params: dict[str, str], query: Any) -> tuple[int, Any]:
    return 200, {"status": "ok", "ews_url": sim.ews_url, "now": sim.clock.now().isoformat()}


@route("GET", "/mailboxes")
def _list_mailboxes(
    sim: ExchangeSimulator, body: None, params: dict[str, str], query: Any
) -> tuple[int, Any]:
    with sim.lock:
        return 200, [
            {
                "address": box.address,
                "display_name": box.display_name,
                "messages": len(box.messages),
                "unread_in_inbox": box.unread_count(box.distinguished["inbox"]),
                "watermark": sim.store.watermark(box, box.head_seq),
            }
            for box in sim.store.mailboxes.values()
        ]


@route("POST", "/mailboxes", body=inputs.MailboxSpec)
def _create_mailbox(
    sim: ExchangeSimulator, body: inputs.MailboxSpec, params: dict[str, str], query: Any
) -> tuple[int, Any]:
    box = sim.add_mailbox(body.address, body.display_name)
    return 201, {"address": box.address, "display_name": box.display_name}


@route("GET", "/service-accounts")
def _list_accounts(sim: ExchangeSimulator, body: None, params: dict[str, str], query: Any) -> tuple[int, Any]:
    with sim.lock:
        return 200, [account.describe() for account in sim.accounts.all()]


@route("POST", "/service-accounts", body=inputs.ServiceAccountSpec)
def _create_account(
    sim: ExchangeSimulator, body: inputs.ServiceAccountSpec, params: dict[str, str], query: Any
) -> tuple[int, Any]:
    account = sim.add_service_account(**body.model_dump())
    return 201, account.describe()


@route("GET", "/mailboxes/{mailbox}/messages")
def _list_messages(
    sim: ExchangeSimulator, body: None, params: dict[str, str], query: dict[str, list[str]]
) -> tuple[int, Any]:
    with sim.lock:
        box = sim.store.mailbox(params["mailbox"])
        messages = list(box.messages.values())
        if "folder" in query:
            folder = sim.store.resolve_folder(box, query["folder"][0])
            messages = [message for message in messages if message.folder == folder.number]
    return 200, [message_json(sim, params["mailbox"], message) for message in messages]


@route("POST", "/mailboxes/{mailbox}/messages", body=inputs.Delivery)
def _deliver(
    sim: ExchangeSimulator, body: inputs.Delivery, params: dict[str, str], query: Any
) -> tuple[int, Any]:
    message = sim.deliver_message(params["mailbox"], body)
    return 201, message_json(sim, params["mailbox"], message)


@route("POST", "/mailboxes/{mailbox}/messages/{message}/read", body=inputs.ReadFlag)
def _mark_read(
    sim: ExchangeSimulator, body: inputs.ReadFlag, params: dict[str, str], query: Any
) -> tuple[int, Any]:
    message = sim.mark_read(params["mailbox"], params["message"], body.is_read)
    return 200, message_json(sim, params["mailbox"], message)


@route("POST", "/mailboxes/{mailbox}/messages/{message}/move", body=inputs.MoveTarget)
def _move(
    sim: ExchangeSimulator, body: inputs.MoveTarget, params: dict[str, str], query: Any
) -> tuple[int, Any]:
    message = sim.move(params["mailbox"], params["message"], body.folder)
    return 200, message_json(sim, params["mailbox"], message)


@route("DELETE", "/mailboxes/{mailbox}/messages/{message}")
def _delete(sim: ExchangeSimulator, body: None, params: dict[str, str], query: Any) -> tuple[int, Any]:
    sim.delete(params["mailbox"], params["message"])
    return 200, {"deleted": params["message"]}


def contact_json(sim: ExchangeSimulator, mailbox: str, contact: Contact) -> dict[str, Any]:
    with sim.lock:
        return {
            "ref": contact.number,
            "item_id": sim.store.item_id(sim.store.mailbox(mailbox), contact.number),
            "display_name": contact.display_name,
            "emails": list(contact.emails),
            "categories": list(contact.categories),
        }


@route("GET", "/mailboxes/{mailbox}/contacts")
def _list_contacts(sim: ExchangeSimulator, body: None, params: dict[str, str], query: Any) -> tuple[int, Any]:
    return 200, [contact_json(sim, params["mailbox"], c) for c in sim.contacts(params["mailbox"])]


@route("POST", "/mailboxes/{mailbox}/contacts", body=inputs.ContactSpec)
def _add_contact(
    sim: ExchangeSimulator, body: inputs.ContactSpec, params: dict[str, str], query: Any
) -> tuple[int, Any]:
    contact = sim.add_contact(params["mailbox"], body)
    return 201, contact_json(sim, params["mailbox"], contact)


@route("DELETE", "/mailboxes/{mailbox}/contacts/{contact}")
def _remove_contact(
    sim: ExchangeSimulator, body: None, params: dict[str, str], query: Any
) -> tuple[int, Any]:
    sim.remove_contact(params["mailbox"], params["contact"])
    return 200, {"deleted": params["contact"]}


@route("POST", "/mailboxes/{mailbox}/expire-watermarks")
def _expire(sim: ExchangeSimulator, body: None, params: dict[str, str], query: Any) -> tuple[int, Any]:
    sim.expire_watermarks(params["mailbox"])
    return 200, {"expired_watermarks_of": params["mailbox"]}


@route("GET", "/subscriptions")
def _subscriptions(sim: ExchangeSimulator, body: None, params: dict[str, str], query: Any) -> tuple[int, Any]:
    return 200, sim.subscriptions()


@route("POST", "/subscriptions/{subscription}/drop")
def _drop(sim: ExchangeSimulator, body: None, params: dict[str, str], query: Any) -> tuple[int, Any]:
    if not sim.push.drop_silently(params["subscription"]):
        raise NotFoundError(f"no subscription {params['subscription']!r}")
    return 200, {"dropped": params["subscription"]}


@route("GET", "/deliveries")
def _deliveries(sim: ExchangeSimulator, body: None, params: dict[str, str], query: Any) -> tuple[int, Any]:
    return 200, [attempt.describe() for attempt in sim.deliveries()]


@route("POST", "/push/pause")
def _pause(sim: ExchangeSimulator, body: None, params: dict[str, str], query: Any) -> tuple[int, Any]:
    sim.pause_push()
    return 200, {"push": "paused"}


@route("POST", "/push/resume")
def _resume(sim: ExchangeSimulator, body: None, params: dict[str, str], query: Any) -> tuple[int, Any]:
    sim.resume_push()
    return 200, {"push": "resumed"}


@route("POST", "/push/run-due")
def _run_due(sim: ExchangeSimulator, body: None, params: dict[str, str], query: Any) -> tuple[int, Any]:
    return 200, [attempt.describe() for attempt in sim.run_due_work()]


@route("GET", "/faults")
def _faults(sim: ExchangeSimulator, body: None, params: dict[str, str], query: Any) -> tuple[int, Any]:
    return 200, [rule.describe() for rule in sim.faults.rules()]


@route("POST", "/faults", body=inputs.FaultSpec)
def _add_fault(
    sim: ExchangeSimulator, body: inputs.FaultSpec, params: dict[str, str], query: Any
) -> tuple[int, Any]:
    rule = sim.faults.install(body)
    return 201, rule.describe()


@route("DELETE", "/faults")
def _clear_faults(sim: ExchangeSimulator, body: None, params: dict[str, str], query: Any) -> tuple[int, Any]:
    sim.faults.clear()
    return 200, {"faults": "cleared"}


def _since(query: dict[str, list[str]]) -> int:
    text = query.get("since", ["0"])[0]
    if not text.isdigit():
        raise BadQuery(f"since must be a request seq (0, 1, 2, ...), not {text!r}")
    return int(text)


@route("GET", "/requests")
def _requests(
    sim: ExchangeSimulator, body: None, params: dict[str, str], query: dict[str, list[str]]
) -> tuple[int, Any]:
    since = _since(query)
    with sim.lock:
        return 200, [record.describe() for record in sim.requests if record.seq > since]


@route("GET", "/requests/counts")
def _request_counts(
    sim: ExchangeSimulator, body: None, params: dict[str, str], query: dict[str, list[str]]
) -> tuple[int, Any]:
    return 200, sim.request_counts(_since(query))


@route("GET", "/clock")
def _clock(sim: ExchangeSimulator, body: None, params: dict[str, str], query: Any) -> tuple[int, Any]:
    return 200, {"now": sim.clock.now().isoformat(), "manual": isinstance(sim.clock, ManualClock)}


@route("POST", "/clock/advance", body=inputs.ClockAdvance)
def _advance(
    sim: ExchangeSimulator, body: inputs.ClockAdvance, params: dict[str, str], query: Any
) -> tuple[int, Any]:
    if not isinstance(sim.clock, ManualClock):
        return 400, {"error": "the clock only advances by hand with settings clock='manual'"}
    now = sim.clock.advance(body.seconds, minutes=body.minutes)
    return 200, {"now": now.isoformat()}

"""Demo subscriptions for `make run`, standing in for the devices API until it exists.

Two kinds, both written with ENS's own DynamoDB adapter, so the records are exactly what the
webhook reads:
- static ones from [[demo_subscriptions]] (fixed token and SubscriptionId), so a hand-written
  SendNotification can be POSTed with curl;
- live ones for [exchange_simulator] subscribe_mailboxes: a real EWS push subscription made with
  exchangelib against the simulator, whose callbacks reach the webhook when mail is delivered.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ens.adapters.subscription_store import DynamoSubscriptionStore
from ens.core.exchange_servers import ExchangeDirectory
from ens.core.subscriptions import Subscription, SubscriptionState, new_callback_token

if TYPE_CHECKING:
    from ens_local.stack import LocalStack

log = logging.getLogger("local_stack.demo")

# Exchange calls the webhook with a StatusEvent this often (minutes) on demo subscriptions.
DEMO_STATUS_FREQUENCY_MINUTES = 1
DEMO_EVENT_TYPES = ("NewMailEvent", "ModifiedEvent")


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _store(stack: LocalStack) -> DynamoSubscriptionStore:
    return DynamoSubscriptionStore(stack.table_names["SubscriptionsTable"], stack.client("dynamodb"))


def seed_demo_subscriptions(stack: LocalStack) -> None:
    """Write the [[demo_subscriptions]] records as active subscriptions."""
    store = _store(stack)
    for demo in stack.settings.demo_subscriptions:
        store.put(
            Subscription(
                token=demo.token,
                mailbox=demo.mailbox,
                state=SubscriptionState.ACTIVE,
                subscription_id=demo.subscription_id,
                last_watermark=demo.last_watermark,
                created_at=_now(),
            )
        )
        log.info("demo subscription %s for %s (static)", demo.subscription_id, demo.mailbox)


def register_demo_devices(stack: LocalStack) -> list[dict[str, Any]]:
    """Register each [[demo_devices]] entry through the devices API, as a phone's app would: with a
    token minted from the settings file, so the API subscribes the mailbox in Exchange itself."""
    import requests

    from ens_local.tokens import mint

    registered: list[dict[str, Any]] = []
    for table in stack.settings.demo_devices:
        body = {key: value for key, value in table.items() if key != "device_id"}
        token = mint(stack.settings, str(table["mailbox"]))
        answer = requests.put(
            f"{stack.api_url}/v1/devices/{table['device_id']}",
            json=body,
            headers={"Authorization": f"Bearer {token}"},
            timeout=60,
        )
        if answer.status_code not in (200, 201):
            raise RuntimeError(
                f"registering demo device {table['device_id']} failed: HTTP {answer.status_code} {answer.text[:500]}"
            )
        registered.append(answer.json())
        log.info(
            "demo device %s registered for %s through the devices API", table["device_id"], table["mailbox"]
        )
    return registered


def subscribe_demo_mailboxes(stack: LocalStack) -> list[Subscription]:
    """Subscribe each mailbox of [exchange_simulator] subscribe_mailboxes to push, like ENS will.

    The service account comes from local Secrets Manager, as the consumer will read it in AWS.
    A pending record is written before Subscribe so that an early callback gets 503, not 404.
    """
    options = stack.settings.exchange_simulator
    if not options.subscribe_mailboxes:
        return []
    if stack.simulator is None:
        raise RuntimeError("[exchange_simulator] subscribe_mailboxes needs the simulator enabled")
    from exchangelib import IMPERSONATION, Account

    from ens.adapters.exchange import exchange_configuration

    secret = stack.client("secretsmanager").get_secret_value(SecretId=options.servers_secret)
    directory = ExchangeDirectory.from_json(secret["SecretString"])
    store = _store(stack)
    subscribed: list[Subscription] = []
    for mailbox in options.subscribe_mailboxes:
        token = new_callback_token()
        created_at = _now()
        store.put(
            Subscription(token=token, mailbox=mailbox, state=SubscriptionState.PENDING, created_at=created_at)
        )
        server = directory.server_for(mailbox)
        if server is None:
            raise RuntimeError(
                f"the Exchange servers secret {options.servers_secret} routes {mailbox} to no server"
            )
        configuration = exchange_configuration(server, max_connections=1)
        account = Account(mailbox, config=configuration, autodiscover=False, access_type=IMPERSONATION)
        subscription_id, watermark = account.inbox.subscribe_to_push(
            callback_url=f"{stack.api_url}/ews/notifications/{token}",
            event_types=DEMO_EVENT_TYPES,
            status_frequency=DEMO_STATUS_FREQUENCY_MINUTES,
        )
        subscription = Subscription(
            token=token,
            mailbox=mailbox,
            state=SubscriptionState.ACTIVE,
            subscription_id=subscription_id,
            last_watermark=watermark,
            created_at=created_at,
        )
        store.put(subscription)
        subscribed.append(subscription)
        log.info("demo subscription %s for %s (live, simulator push)", subscription_id, mailbox)
    return subscribed

"""subscriptions, device, decisions: the tables of a provisioned local stack, written with ENS's adapters."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ens.adapters.decision_log import DynamoDecisionLog
from ens.adapters.device_store import DynamoDeviceStore
from ens.adapters.mailbox_store import DynamoMailboxStore
from ens.adapters.subscription_store import DynamoSubscriptionStore
from ens.core.decisions import Decision, Outcome
from ens.core.devices import Device
from ens.core.registrations import MailboxState, MailboxSubscription
from ens.core.rules import Reason, Rule
from ens.core.subscriptions import Subscription, SubscriptionState
from ens.core.watchdog import DUE_SHARD

from .conftest import AdminTarget

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC)
PUSH_TOKEN = "demo-apns-token-alice-0001-secret-part"


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _mailbox(
    admin: AdminTarget, mailbox: str, token: str, state: MailboxState, due_at: datetime, **fields
) -> None:
    dynamodb = admin.client("dynamodb")
    DynamoMailboxStore(admin.stack.table_names["MailboxesTable"], dynamodb).claim(
        MailboxSubscription(
            mailbox=mailbox,
            token=token,
            state=state,
            created_at=NOW,
            updated_at=NOW,
            subscription_id=f"sub-{token}",
            reason="impersonation_denied" if state is MailboxState.FAILED else None,
        )
    )
    DynamoSubscriptionStore(admin.stack.table_names["SubscriptionsTable"], dynamodb).put(
        Subscription(
            token=token,
            mailbox=mailbox,
            state=SubscriptionState.ACTIVE,
            subscription_id=f"sub-{token}",
            last_heartbeat_at=_iso(NOW - timedelta(minutes=3)),
            due_shard=DUE_SHARD,
            due_at=_iso(due_at),
            **fields,
        )
    )


@pytest.fixture
def populated(admin: AdminTarget) -> AdminTarget:
    _mailbox(admin, "alice@contoso.example", "a" * 43, MailboxState.ACTIVE, NOW + timedelta(minutes=30))
    _mailbox(
        admin,
        "carol@contoso.example",
        "c" * 43,
        MailboxState.FAILED,
        NOW - timedelta(minutes=5),
        watchdog_failures=5,
        last_failure="impersonation_denied",
    )
    dynamodb = admin.client("dynamodb")
    DynamoDeviceStore(admin.stack.table_names["DevicesTable"], dynamodb).put(
        Device.model_validate(
            {
                "mailbox": "alice@contoso.example",
                "device_id": "alice-iphone",
                "push_token": PUSH_TOKEN,
                "registered_at": NOW,
                "updated_at": NOW,
            }
        )
    )
    log = DynamoDecisionLog(admin.stack.table_names["DecisionsTable"], dynamodb, ttl_days=1)
    log.record(
        [
            Decision(
                "alice@contoso.example",
                "alice-iphone",
                f"item-{n}",
                "NewMail",
                Outcome.PUSHED,
                None,
                Rule.ALL_MAIL,
                NOW,
                NOW + timedelta(seconds=n),
                40,
            )
            for n in range(3)
        ]
        + [
            Decision(
                "alice@contoso.example",
                "alice-iphone",
                "item-late",
                "NewMail",
                Outcome.SUPPRESSED,
                Reason.OUTSIDE_WORK_HOURS,
                Rule.OUTSIDE_WORK_HOURS,
                NOW,
                NOW + timedelta(seconds=10),
                None,
            ),
            Decision(
                "alice@contoso.example",
                None,
                "item-old",
                "NewMail",
                Outcome.SUPPRESSED,
                Reason.NO_DEVICES,
                None,
                NOW,
                NOW - timedelta(days=1),
                None,
            ),
        ]
    )
    return admin


def test_subscriptions_lists_every_mailbox_with_its_record(populated: AdminTarget) -> None:
    run = populated.run("subscriptions")

    assert run.code == 0
    header, alice, carol = run.out.splitlines()
    assert header.split()[:3] == ["mailbox", "mailbox_state", "subscription_state"]
    assert alice.split()[:3] == ["alice@contoso.example", "active", "active"]
    assert carol.split()[:3] == ["carol@contoso.example", "failed", "active"]


def test_subscriptions_failed_shows_only_failed_or_failing_mailboxes(populated: AdminTarget) -> None:
    rows = populated.run("--json", "subscriptions", "--failed").json()

    assert [(row["mailbox"], row["watchdog_failures"], row["reason"]) for row in rows] == [
        ("carol@contoso.example", 5, "impersonation_denied")
    ]


def test_subscriptions_due_shows_what_the_watchdog_would_take_now(populated: AdminTarget) -> None:
    rows = populated.run("--json", "subscriptions", "--due").json()

    assert [row["mailbox"] for row in rows] == ["carol@contoso.example"]


def test_device_lists_the_mailboxs_devices_with_the_push_token_masked(populated: AdminTarget) -> None:
    table = populated.run("device", "alice@contoso.example")
    found = populated.run("--json", "device", "alice@contoso.example").json()

    assert table.code == 0
    assert "alice@contoso.example: subscription active" in table.out
    assert "alice-iphone" in table.out
    assert PUSH_TOKEN not in table.out + str(found)
    assert found["devices"][0]["push_token"] == "demo-a…part"
    assert found["subscription"]["subscription_state"] == "active"


def test_device_says_so_when_the_mailbox_has_nothing(populated: AdminTarget) -> None:
    run = populated.run("device", "nobody@contoso.example")

    assert run.code == 0
    assert run.out.splitlines() == ["nobody@contoso.example: no shared subscription", "(none)"]


def test_decisions_shows_the_newest_per_device_and_the_mailbox_level_ones(populated: AdminTarget) -> None:
    rows = populated.run("--json", "decisions", "alice@contoso.example", "--limit", "2").json()

    assert [(row["device_id"], row["item_id"], row["outcome"]) for row in rows] == [
        ("alice-iphone", "item-late", "suppressed"),
        ("alice-iphone", "item-2", "pushed"),
        ("-", "item-old", "suppressed"),
    ]
    assert rows[0]["reason"] == "outside_work_hours"


def test_decisions_refuses_a_limit_below_one(populated: AdminTarget) -> None:
    run = populated.run("decisions", "alice@contoso.example", "--limit", "0")

    assert run.code == 2
    assert "--limit must be at least 1" in run.err

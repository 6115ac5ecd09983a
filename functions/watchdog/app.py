"""Watchdog Lambda: on each EventBridge schedule, renew the push subscriptions that are due.

The run itself is ens.services.watchdog.Watchdog; this handler builds it (on the first invocation, like
the consumer's) and turns its report into metrics of the watchdog's own names.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from aws_lambda_powertools import Logger, Metrics, single_metric
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from ens.adapters.aws import client
from ens.adapters.exchange import ExchangeMailSource
from ens.adapters.mail_event_queue import SqsMailEventQueue
from ens.adapters.mailbox_store import DynamoMailboxStore
from ens.adapters.secrets import BuiltFromSecret
from ens.adapters.subscription_store import DynamoSubscriptionStore
from ens.core.exchange_servers import ExchangeDirectory
from ens.core.watchdog import WatchdogPolicy
from ens.services.watchdog import RunReport, SubscribeSettings, Watchdog
from ens.settings import WatchdogSettings

logger = Logger()
metrics = Metrics()


def _utc_now() -> datetime:
    return datetime.now(UTC)


# What the watchdog takes for "now". Tests of the whole local stack move it forward instead of waiting
# for a subscription to become due.
clock: Callable[[], datetime] = _utc_now


class _Container:
    """Settings, clients and the policy for the life of the Lambda container; the Watchdog itself is
    rebuilt only when the servers secret changes."""

    def __init__(self) -> None:
        self.settings = settings = WatchdogSettings.from_environ()
        self.dynamodb = client("dynamodb")
        self.policy = WatchdogPolicy(
            grace=timedelta(minutes=settings.heartbeat_grace_minutes),
            give_up_after=settings.give_up_after,
            max_retry=timedelta(minutes=settings.max_retry_minutes),
            failed_retry=timedelta(minutes=settings.failed_retry_minutes),
        )
        self._watchdog = BuiltFromSecret(
            settings.exchange_servers_secret, settings.secrets_max_age_seconds, self._build_watchdog
        )

    def watchdog(self) -> Watchdog:
        """The watchdog for the servers secret as it is now: rebuilt only when the secret changed."""
        return self._watchdog.get()

    def _build_watchdog(self, servers: str) -> Watchdog:
        settings = self.settings
        return Watchdog(
            subscriptions=DynamoSubscriptionStore(
                settings.subscriptions_table, self.dynamodb, grace=self.policy.grace
            ),
            mailboxes=DynamoMailboxStore(settings.mailboxes_table, self.dynamodb),
            exchange=ExchangeMailSource(
                ExchangeDirectory.from_json(servers),
                max_concurrency_per_server=settings.ews_max_concurrency,
                timeout_seconds=settings.ews_timeout_seconds,
            ),
            queue=SqsMailEventQueue(settings.notifications_queue_url, client("sqs")),
            subscribe=SubscribeSettings(
                webhook_base_url=settings.webhook_base_url,
                status_frequency_minutes=settings.status_frequency_minutes,
                folders=settings.subscription_folders,
            ),
            policy=self.policy,
            clock=lambda: clock(),
        )


@functools.cache
def _current() -> _Container:
    return _Container()


@metrics.log_metrics
@logger.inject_lambda_context
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    report = _current().watchdog().run(lambda: context.get_remaining_time_in_millis() / 1000)
    _observe(report)
    summary = {
        "due": sum(report.due.values()),
        "resubscribed": report.resubscribed,
        "replayed": report.replayed,
        "reconciled_mails": report.reconciled_mails,
        "failed": sum(report.failures.values()),
    }
    logger.info("watchdog run", extra=summary)
    return summary


def _observe(report: RunReport) -> None:
    metrics.add_metric(name="WatchdogDue", unit=MetricUnit.Count, value=sum(report.due.values()))
    for name, value in (
        ("Resubscribed", report.resubscribed),
        ("Replayed", report.replayed),
        ("Reconciled", report.reconciled),
        ("ReconciledMails", report.reconciled_mails),
        ("SubscriptionsRetired", report.retired),
        ("SubscriptionsFailed", report.still_failing),
        ("WatchdogBacklog", report.left_for_next_run),
    ):
        if value:
            metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
    for dimension, name, counts in (
        ("cause", "WatchdogDueBy", report.due),
        ("reason", "ResubscribeFailures", report.failures),
    ):
        for label, count in counts.items():
            with single_metric(name=name, unit=MetricUnit.Count, value=count) as metric:
                metric.add_dimension(name=dimension, value=label)

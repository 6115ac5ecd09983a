"""Consumer Lambda: mail events from SQS → Exchange → rules → CNS, with a partial batch response.

The batch is processed as a whole (grouped by mailbox, one GetItem per mailbox) rather than record by
record, which is why Powertools' BatchProcessor is not used; its contract is kept: only the records
that failed are reported in `batchItemFailures`, and SQS retries just those.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime, timedelta
from typing import Any

from aws_lambda_powertools import Logger, Metrics, single_metric
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes import SQSEvent, event_source
from aws_lambda_powertools.utilities.parameters import get_secret
from aws_lambda_powertools.utilities.typing import LambdaContext

from ens.adapters.aws import client
from ens.adapters.decision_log import DynamoDecisionLog
from ens.adapters.device_store import DynamoDeviceStore
from ens.adapters.exchange import ExchangeMailSource
from ens.adapters.push import CnsPushGateway, CnsToken
from ens.adapters.push_ledger import IdempotentPushDelivery
from ens.adapters.secrets import BuiltFromSecret
from ens.core.devices import ContentPolicy
from ens.core.exchange_servers import ExchangeDirectory
from ens.core.mail_events import MailEvent
from ens.services.consumer import BatchReport, ConsumerPolicy, MailConsumer, QueuedEvent, VipCache
from ens.settings import ConsumerSettings

logger = Logger()
metrics = Metrics()
_CNS_TOKEN_WARNING_DAYS = 14


class _Container:
    """What lives as long as the Lambda container: settings, clients, caches, the consumer.

    Built on the first invocation rather than at import, so that a deployment missing a setting fails
    its invocations with the setting's name while the local stack can still load every function.
    """

    def __init__(self) -> None:
        self.settings = settings = ConsumerSettings.from_environ()
        self.dynamodb = client("dynamodb")
        self.delivery = IdempotentPushDelivery(
            CnsPushGateway(settings.cns_url, self.cns_token, ca_bundle=settings.cns_ca_bundle),
            table_name=settings.idempotency_table,
            dynamodb=self.dynamodb,
            expires_after_seconds=settings.push_idempotency_hours * 3600,
        )
        self.policy = ConsumerPolicy(
            stale_after=timedelta(minutes=settings.stale_event_minutes),
            content_policy=ContentPolicy(settings.content_policy),
            vip_cache_seconds=settings.vip_cache_seconds,
            max_parallel_mailboxes=settings.ews_max_concurrency,
        )
        self.vip_cache = VipCache(settings.vip_cache_seconds)
        self._consumer = BuiltFromSecret(
            settings.exchange_servers_secret, settings.secrets_max_age_seconds, self._build_consumer
        )

    def cns_token(self) -> CnsToken:
        secret = get_secret(self.settings.cns_token_secret, max_age=self.settings.secrets_max_age_seconds)
        return CnsToken.parse(str(secret))

    def consumer(self) -> MailConsumer:
        """The consumer for the servers secret as it is now: rebuilt only when the secret changed."""
        return self._consumer.get()

    def _build_consumer(self, servers: str) -> MailConsumer:
        settings = self.settings
        return MailConsumer(
            devices=DynamoDeviceStore(settings.devices_table, self.dynamodb),
            exchange=ExchangeMailSource(
                ExchangeDirectory.from_json(servers),
                max_concurrency_per_server=settings.ews_max_concurrency,
                timeout_seconds=settings.ews_timeout_seconds,
                vip_category=settings.vip_category,
            ),
            push=self.delivery,
            decisions=DynamoDecisionLog(settings.decisions_table, self.dynamodb, settings.decision_ttl_days),
            policy=self.policy,
            vip_cache=self.vip_cache,
        )


@functools.cache
def _current() -> _Container:
    return _Container()


@metrics.log_metrics
@logger.inject_lambda_context
@event_source(data_class=SQSEvent)
def handler(event: SQSEvent, context: LambdaContext) -> dict[str, Any]:
    container = _current()
    container.delivery.register_lambda_context(context)
    batch: list[QueuedEvent] = []
    unreadable: list[str] = []
    for record in event.records:
        try:
            batch.append(QueuedEvent(record.message_id, MailEvent.from_message(record.body)))
        except (ValueError, TypeError, KeyError):
            # Never the body: it may carry mail ids. The redrive policy moves it to the dead-letter queue.
            logger.error(
                "unreadable mail event left for the dead-letter queue",
                extra={"message_id": record.message_id},
            )
            unreadable.append(record.message_id)
    _observe_token(container.cns_token())
    report = container.consumer().process(batch, lambda: context.get_remaining_time_in_millis() / 1000)
    _observe(report, len(unreadable))
    failed = [*unreadable, *report.failed_message_ids]
    return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in failed]}


def _observe_token(token: CnsToken) -> None:
    days_left = token.days_left(datetime.now(UTC))
    if days_left is None:
        return
    metrics.add_metric(name="CnsTokenDaysLeft", unit=MetricUnit.Count, value=max(days_left, 0))
    if days_left <= 0:
        logger.error("the CNS token has expired: no push is sent until the secret is renewed")
    elif days_left <= _CNS_TOKEN_WARNING_DAYS:
        logger.warning("the CNS token expires soon", extra={"days_left": round(days_left, 1)})


def _observe(report: BatchReport, unreadable: int) -> None:
    for kind, count in report.events.items():
        metrics.add_metric(name=f"{kind}Received", unit=MetricUnit.Count, value=count)
    metrics.add_metric(name="MailsFetched", unit=MetricUnit.Count, value=report.fetched)
    metrics.add_metric(name="PushesSent", unit=MetricUnit.Count, value=report.pushed)
    metrics.add_metric(name="BadgeUpdatesSent", unit=MetricUnit.Count, value=report.badge_updates)
    if report.gone:
        metrics.add_metric(name="MailsGone", unit=MetricUnit.Count, value=report.gone)
    if report.duplicates_skipped:
        metrics.add_metric(
            name="DuplicatePushesSkipped", unit=MetricUnit.Count, value=report.duplicates_skipped
        )
    if unreadable:
        metrics.add_metric(name="UnreadableMailEvents", unit=MetricUnit.Count, value=unreadable)
    if report.failed_message_ids:
        metrics.add_metric(
            name="MailEventsRetried", unit=MetricUnit.Count, value=len(report.failed_message_ids)
        )
    for latency in report.push_latencies_ms:
        metrics.add_metric(name="PushLatency", unit=MetricUnit.Milliseconds, value=latency)
    for dimension, name, counts in (
        ("reason", "MailsSuppressed", report.suppressed),
        ("status", "CnsErrors", report.cns_errors),
        ("code", "ExchangeErrors", report.exchange_errors),
        ("code", "AdminActionsRequired", report.admin_actions),
    ):
        for value, count in counts.items():
            with single_metric(name=name, unit=MetricUnit.Count, value=count) as metric:
                metric.add_dimension(name=dimension, value=value)

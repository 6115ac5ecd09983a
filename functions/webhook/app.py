"""Webhook Lambda: EWS push callbacks from Exchange, through API Gateway.

Cold start is part of Exchange's wait, so this module imports neither exchangelib nor an X-Ray
tracer, and builds its AWS clients once.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEvent, event_source
from aws_lambda_powertools.utilities.typing import LambdaContext

from ens.adapters.aws import client
from ens.adapters.mail_event_queue import SqsMailEventQueue
from ens.adapters.subscription_store import DynamoSubscriptionStore
from ens.services.webhook import CallbackOutcome, CallbackReceiver, CallbackRequest, CallbackResult
from ens.settings import WebhookSettings

logger = Logger()
metrics = Metrics()
settings = WebhookSettings.from_environ()
receiver = CallbackReceiver(
    subscriptions=DynamoSubscriptionStore(settings.subscriptions_table, client("dynamodb")),
    queue=SqsMailEventQueue(settings.notifications_queue_url, client("sqs")),
    max_body_bytes=settings.max_notification_bytes,
)

_METRIC_BY_RESULT = {
    CallbackResult.OK: "CallbacksAccepted",
    CallbackResult.UNSUBSCRIBE: "Unsubscribes",
    CallbackResult.REJECTED: "CallbacksRejected",
    CallbackResult.UNKNOWN_TOKEN: "CallbacksRejected",
    CallbackResult.RETRY: "CallbacksRetried",
}
_WARNING_RESULTS = frozenset({CallbackResult.REJECTED, CallbackResult.UNKNOWN_TOKEN, CallbackResult.RETRY})


@metrics.log_metrics
@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@event_source(data_class=APIGatewayProxyEvent)
def handler(event: APIGatewayProxyEvent, context: LambdaContext) -> dict[str, Any]:
    body: bytes | None
    try:
        body = (
            base64.b64decode(event.body or "", validate=True)
            if event.is_base64_encoded
            else (event.body or "").encode()
        )
    except binascii.Error:
        body = None
    outcome = receiver.receive(
        CallbackRequest(
            token=(event.path_parameters or {}).get("token"),
            body=body,
            content_type=event.headers.get("content-type"),
        )
    )
    _observe(outcome, len(body or b""))
    return {
        "statusCode": outcome.status_code,
        "headers": {"Content-Type": outcome.content_type, **outcome.headers},
        "body": outcome.body.decode(),
        "isBase64Encoded": False,
    }


def _observe(outcome: CallbackOutcome, body_bytes: int) -> None:
    metrics.add_metric(name="Notifications", unit=MetricUnit.Count, value=1)
    metrics.add_metric(name=_METRIC_BY_RESULT[outcome.result], unit=MetricUnit.Count, value=1)
    for kind, count in outcome.events_by_kind.items():
        metrics.add_metric(name=f"{kind}Events", unit=MetricUnit.Count, value=count)
    if outcome.queued:
        metrics.add_metric(name="MailEventsQueued", unit=MetricUnit.Count, value=outcome.queued)
    if outcome.gap_from_watermark:
        metrics.add_metric(name="WatermarkGaps", unit=MetricUnit.Count, value=1)
    if outcome.exchange_error:
        metrics.add_metric(name="ExchangeErrorNotifications", unit=MetricUnit.Count, value=1)
    if outcome.replay:
        metrics.add_metric(name="ReplayedCallbacks", unit=MetricUnit.Count, value=1)
    # Neither the token nor any mail content is logged: only what an operator needs to follow up.
    log = logger.warning if outcome.result in _WARNING_RESULTS else logger.info
    log(
        "callback %s",
        outcome.result,
        extra={
            "status_code": outcome.status_code,
            "reason": outcome.reason,
            "mailbox": outcome.mailbox,
            "subscription_id": outcome.subscription_id,
            "events": dict(outcome.events_by_kind),
            "queued": outcome.queued,
            "watermark_gap": outcome.gap_from_watermark is not None,
            "replay": outcome.replay,
            "exchange_error": outcome.exchange_error,
            "fault": outcome.fault,
            "body_bytes": body_bytes,
        },
    )

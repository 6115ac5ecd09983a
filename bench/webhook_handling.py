"""In-process handling time of the webhook per request, against local AWS (moto over HTTP).

The handler is invoked directly with API Gateway events, as Lambda would. Baseline in the same
process: the AWS round trips an accepted NewMail callback cannot avoid (GetItem, SendMessageBatch,
UpdateItem), made with plain boto3. The ratio shows what ENS adds on top of its AWS calls.
Absolute figures are moto's, not DynamoDB's or SQS's: compare ratios, not milliseconds.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import statistics
import uuid

from bench.stats import summary, time_calls
from ens.adapters.subscription_store import DynamoSubscriptionStore
from ens.core.subscriptions import Subscription, SubscriptionState, new_callback_token
from ens_local.api_gateway import build_rest_proxy_event
from ens_local.aws import LocalAws, provision
from ens_local.functions import load_template_function
from ens_local.template import Template
from support.queues import take_all
from support.send_notifications import Body, NotificationSpec, new_mail, send_notification, status

REQUESTS = 300
ROUNDS = 6
ROUTE = "/ews/notifications/{token}"


def run() -> list[str]:
    aws = LocalAws(stack_name=f"bench-{uuid.uuid4().hex[:6]}").start()
    try:
        return _measure(aws)
    finally:
        aws.stop()


def _measure(aws: LocalAws) -> list[str]:
    template = Template.load()
    stack = provision(aws, template)
    resolver = stack.resolver()
    for spec in template.functions():
        os.environ.update({key: str(value) for key, value in resolver.resolve(spec.environment).items()})
    os.environ.update(aws.environment())
    # Metrics stay on (a real invocation prints its EMF line); logs below ERROR are skipped as in
    # a quiet production setting. Both go to /dev/null instead of the terminal.
    os.environ["POWERTOOLS_LOG_LEVEL"] = "ERROR"
    webhook = load_template_function(template, "WebhookFunction")
    dynamodb, sqs = aws.client("dynamodb"), aws.client("sqs")
    table, queue_url = stack.table_names["SubscriptionsTable"], stack.queue_urls["NotificationsQueue"]
    token = new_callback_token()
    DynamoSubscriptionStore(table, dynamodb).put(
        Subscription(
            token=token,
            mailbox="ada@contoso.com",
            state=SubscriptionState.ACTIVE,
            subscription_id="sub-1",
            last_watermark="wm-0",
        )
    )

    def invoke(body: bytes) -> None:
        event = build_rest_proxy_event(
            "POST",
            f"/ews/notifications/{token}",
            ROUTE,
            headers={"Content-Type": "text/xml; charset=utf-8"},
            body=body,
            binary=True,  # WebhookApi's BinaryMediaTypes ("*~1*"): every body arrives base64, byte-exact
            path_parameters={"token": token},
        )
        assert webhook.invoke(event)["statusCode"] == 200

    def aws_floor() -> None:
        dynamodb.get_item(TableName=table, Key={"token": {"S": token}}, ConsistentRead=True)
        sqs.send_message_batch(QueueUrl=queue_url, Entries=[{"Id": "0", "MessageBody": "{}"}])
        dynamodb.update_item(
            TableName=table,
            Key={"token": {"S": token}},
            UpdateExpression="SET last_seen_at = :now",
            ExpressionAttributeValues={":now": {"S": "now"}},
        )

    # Each callback continues the watermark chain, as Exchange's do: a repeated body would be taken
    # for Exchange resending it, and acknowledged without being queued.
    watermarks = itertools.count(1)

    def next_new_mail() -> bytes:
        n = next(watermarks)
        return send_notification(
            Body([NotificationSpec("sub-1", f"wm-{n - 1}", [new_mail(f"wm-{n}", f"item-{n}")])])
        )

    def next_heartbeat() -> bytes:
        n = next(watermarks)
        return send_notification(Body([NotificationSpec("sub-1", f"wm-{n - 1}", [status(f"wm-{n}")])]))

    floor: list[float] = []
    new_mail_samples: list[float] = []
    heartbeat_samples: list[float] = []
    queued = 0
    per_round = REQUESTS // ROUNDS
    # Interleaved rounds, the queue emptied after each: moto's SQS slows down as a queue grows,
    # which would otherwise favour whichever series ran first. Bodies are built before the clock
    # starts; the warm-up calls are the first of each round's bodies.
    with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull):
        for _ in range(ROUNDS):
            floor += time_calls(aws_floor, per_round, warmup=5)
            take_all(sqs, queue_url)  # the floor's own messages
            mail_bodies = iter([next_new_mail() for _ in range(per_round + 5)])
            new_mail_samples += time_calls(
                lambda bodies=mail_bodies: invoke(next(bodies)), per_round, warmup=5
            )
            queued += len(take_all(sqs, queue_url))
            heartbeat_bodies = iter([next_heartbeat() for _ in range(per_round + 5)])
            heartbeat_samples += time_calls(
                lambda bodies=heartbeat_bodies: invoke(next(bodies)), per_round, warmup=5
            )
            queued += len(take_all(sqs, queue_url))
    # The figures mean something only if every NewMail callback really queued its mail event.
    assert queued == ROUNDS * (per_round + 5), (
        f"{queued} mail events queued, expected {ROUNDS * (per_round + 5)}"
    )
    stored = DynamoSubscriptionStore(table, dynamodb).get(token)
    assert stored is not None
    assert stored.gap_from_watermark is None, "the watermark chain broke"
    ratio = statistics.median(new_mail_samples) / statistics.median(floor)
    return [
        "Webhook handling per request, in process, against local AWS (moto server over HTTP)",
        f"  NewMail callback (1 event)   {summary(new_mail_samples, 1e-3, 'ms')}",
        f"  Status heartbeat             {summary(heartbeat_samples, 1e-3, 'ms')}",
        f"  AWS floor (3 boto3 calls)    {summary(floor, 1e-3, 'ms')}",
        f"  NewMail / AWS floor          {ratio:.2f}x (median ratio)",
    ]


if __name__ == "__main__":
    print("\n".join(run()))

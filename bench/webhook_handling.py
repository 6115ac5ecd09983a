"""In-process handling time of the webhook per request, against local AWS (moto over HTTP).

The handler is invoked directly with API Gateway events, as Lambda would. Baseline in the same
process: the AWS round trips an accepted NewMail callback cannot avoid (GetItem, SendMessageBatch,
UpdateItem), made with plain boto3. The ratio shows what ENS adds on top of its AWS calls.
Absolute figures are moto's, not DynamoDB's or SQS's: compare ratios, not milliseconds.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import uuid
from typing import Any

from bench.stats import summary, time_calls
from ens.adapters.subscription_store import DynamoSubscriptionStore
from ens.core.subscriptions import Subscription, SubscriptionState, new_callback_token
from ens_local.api_gateway import build_rest_proxy_event
from ens_local.aws import LocalAws, provision
from ens_local.functions import load_template_function
from ens_local.template import Template
from support.send_notifications import Body, NotificationSpec, new_mail_body, send_notification, status

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
            token=token, mailbox="ada@contoso.com", state=SubscriptionState.ACTIVE, subscription_id="sub-1"
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

    new_mail = new_mail_body("sub-1", "wm-0")
    heartbeat = send_notification(Body([NotificationSpec("sub-1", "wm-0", [status("wm-1")])]))
    floor: list[float] = []
    new_mail_samples: list[float] = []
    heartbeat_samples: list[float] = []
    # Interleaved rounds, the queue emptied after each: moto's SQS slows down as a queue grows,
    # which would otherwise favour whichever series ran first.
    with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull):
        for _ in range(ROUNDS):
            floor += time_calls(aws_floor, REQUESTS // ROUNDS, warmup=5)
            new_mail_samples += time_calls(lambda: invoke(new_mail), REQUESTS // ROUNDS, warmup=5)
            heartbeat_samples += time_calls(lambda: invoke(heartbeat), REQUESTS // ROUNDS, warmup=5)
            _drain(sqs, queue_url)
    ratio = statistics.median(new_mail_samples) / statistics.median(floor)
    return [
        "Webhook handling per request, in process, against local AWS (moto server over HTTP)",
        f"  NewMail callback (1 event)   {summary(new_mail_samples, 1e-3, 'ms')}",
        f"  Status heartbeat             {summary(heartbeat_samples, 1e-3, 'ms')}",
        f"  AWS floor (3 boto3 calls)    {summary(floor, 1e-3, 'ms')}",
        f"  NewMail / AWS floor          {ratio:.2f}x (median ratio)",
    ]


def _drain(sqs: Any, queue_url: str) -> None:
    """Empty the queue (PurgeQueue is allowed once a minute only)."""
    while messages := sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages"):
        sqs.delete_message_batch(
            QueueUrl=queue_url,
            Entries=[{"Id": m["MessageId"], "ReceiptHandle": m["ReceiptHandle"]} for m in messages],
        )


if __name__ == "__main__":
    print("\n".join(run()))

"""What the issue fixes about template.yaml, read the way the local stack reads it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ens_local.template import FunctionSpec, Template

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def template() -> Template:
    return Template.load()


def test_functions_run_python_313_on_arm64(template: Template) -> None:
    assert template.globals_function["Runtime"] == "python3.13"
    assert template.globals_function["Architectures"] == ["arm64"]


def test_webhook_is_a_post_route_with_a_path_token(template: Template) -> None:
    (webhook,) = [spec for spec in template.functions() if spec.logical_id == "WebhookFunction"]

    assert [(route.method, route.path) for route in webhook.routes] == [
        ("POST", "/ews/notifications/{token}")
    ]
    assert webhook.handler == "app.handler"


def test_xray_tracing_is_off_unless_the_site_turns_it_on_and_the_webhook_creates_no_tracer(
    template: Template,
) -> None:
    webhook_source = (Path(__file__).resolve().parents[3] / "functions" / "webhook" / "app.py").read_text()

    assert template.globals_function["Tracing"] == {"Fn::If": ["TracingOn", "Active", "PassThrough"]}
    assert template.parameters["XRayTracing"]["Default"] == "false"
    assert "Tracing" not in template.properties("WebhookFunction")
    assert "Tracer" not in webhook_source  # an X-Ray tracer costs the webhook ≈ 300 ms of cold start


def test_notifications_queue_redrives_to_its_dead_letter_queue(template: Template) -> None:
    redrive = template.properties("NotificationsQueue")["RedrivePolicy"]

    assert redrive["deadLetterTargetArn"] == {"Fn::GetAtt": ["NotificationsDeadLetterQueue", "Arn"]}
    assert template.resources["NotificationsDeadLetterQueue"]["Type"] == "AWS::SQS::Queue"


def test_every_function_setting_is_a_parameter_or_a_resource(template: Template) -> None:
    known = set(template.parameters) | set(template.resources)
    for spec in template.functions():
        for value in spec.environment.values():
            if isinstance(value, dict) and "Ref" in value:
                assert value["Ref"] in known


def test_the_body_limit_default_is_the_same_in_the_template_and_the_code(template: Template) -> None:
    from ens.core.notifications import DEFAULT_MAX_NOTIFICATION_BYTES

    assert int(template.parameters["MaxNotificationBytes"]["Default"]) == DEFAULT_MAX_NOTIFICATION_BYTES


def test_the_webhook_may_only_read_and_update_subscriptions(template: Template) -> None:
    policies = template.properties("WebhookFunction")["Policies"]
    dynamodb_actions = {
        action
        for policy in policies
        for statement in policy.get("Statement", [])
        for action in statement.get("Action", [])  # the KMS key's !If has none: test_production.py
        if action.startswith("dynamodb:")
    }

    assert dynamodb_actions == {"dynamodb:GetItem", "dynamodb:UpdateItem"}
    assert not any("DynamoDBCrudPolicy" in policy for policy in policies)


def test_callback_bodies_reach_the_webhook_byte_exact(template: Template) -> None:
    assert template.properties("WebhookApi")["BinaryMediaTypes"] == ["*~1*"]


def test_an_alarm_fires_when_most_callbacks_are_refused_and_notifies_like_the_others(
    template: Template,
) -> None:
    alarm = template.properties("WebhookRefusalsAlarm")
    metrics = {query["Id"]: query for query in alarm["Metrics"]}
    watched = {
        query_id: query["MetricStat"]["Metric"]["MetricName"]
        for query_id, query in metrics.items()
        if "MetricStat" in query
    }
    (returned,) = [query for query in metrics.values() if query.get("ReturnData")]
    webhook_source = (Path(__file__).resolve().parents[3] / "functions" / "webhook" / "app.py").read_text()

    assert watched == {"refused": "CallbacksRejected", "answered": "Notifications"}
    assert all(f'"{name}"' in webhook_source for name in watched.values())  # names the webhook emits
    assert {"refused", "answered"} <= set(re.findall(r"[a-z]+", returned["Expression"]))
    assert (alarm["ComparisonOperator"], alarm["Threshold"]) == ("GreaterThanThreshold", 0.5)
    assert alarm["AlarmActions"] == template.properties("WebhookRetriesAlarm")["AlarmActions"]


def _consumer(template: Template) -> FunctionSpec:
    (consumer,) = [spec for spec in template.functions() if spec.logical_id == "ConsumerFunction"]
    return consumer


def test_the_consumer_is_triggered_by_the_notifications_queue_with_partial_batch_failures(
    template: Template,
) -> None:
    (trigger,) = _consumer(template).queue_triggers

    assert trigger.queue == "NotificationsQueue"
    assert trigger.report_batch_item_failures
    assert trigger.batch_size_source == {"Ref": "ConsumerBatchSize"}


def test_the_queue_hides_a_message_six_times_as_long_as_the_consumer_may_run(template: Template) -> None:
    visibility = int(template.properties("NotificationsQueue")["VisibilityTimeout"])

    assert visibility >= 6 * _consumer(template).timeout_seconds


def test_the_consumer_reads_every_setting_it_requires_from_the_template(template: Template) -> None:
    from ens.settings import ConsumerSettings

    environment = dict.fromkeys(_consumer(template).environment, "1")
    environment["CONTENT_POLICY"] = "full"

    ConsumerSettings.from_environ(environment)  # raises naming the first missing variable


def test_consumer_defaults_in_the_template_match_the_code(template: Template) -> None:
    from ens.settings import ConsumerSettings

    defaults = ConsumerSettings.from_environ(
        dict.fromkeys(
            (
                "DEVICES_TABLE",
                "DECISIONS_TABLE",
                "IDEMPOTENCY_TABLE",
                "EXCHANGE_SERVERS_SECRET",
                "CNS_URL",
                "CNS_TOKEN_SECRET",
            ),
            "x",
        )
    )
    parameters = template.parameters

    assert parameters["ContentPolicy"]["Default"] == defaults.content_policy
    assert int(parameters["StaleEventMinutes"]["Default"]) == defaults.stale_event_minutes
    assert int(parameters["DecisionRetentionDays"]["Default"]) == defaults.decision_ttl_days
    assert int(parameters["EwsMaxConcurrency"]["Default"]) == defaults.ews_max_concurrency
    assert parameters["VipCategory"]["Default"] == defaults.vip_category
    assert int(parameters["VipCacheSeconds"]["Default"]) == defaults.vip_cache_seconds


def test_ttl_attributes_are_the_ones_the_code_writes(template: Template) -> None:
    from datetime import UTC, datetime

    from ens.core.decisions import Decision, Outcome

    record = Decision(
        mailbox="a@contoso.example",
        device_id="d",
        item_id="i",
        event_kind="NewMail",
        outcome=Outcome.PUSHED,
        reason=None,
        rule=None,
        received_at=None,
        decided_at=datetime.now(UTC),
        latency_ms=None,
    ).to_record(14)
    decisions_ttl = template.properties("DecisionsTable")["TimeToLiveSpecification"]
    idempotency_ttl = template.properties("IdempotencyTable")["TimeToLiveSpecification"]

    assert decisions_ttl == {"AttributeName": "expires_at", "Enabled": True}
    assert "expires_at" in record
    assert idempotency_ttl == {"AttributeName": "expiration", "Enabled": True}  # Powertools' default


def test_the_consumer_may_touch_only_its_tables_and_its_two_secrets(template: Template) -> None:
    statements = [
        statement
        for policy in template.properties("ConsumerFunction")["Policies"]
        for statement in policy.get("Statement", [])
        if "Fn::If" not in statement  # the KMS key's, when there is one (test_production.py)
    ]
    by_resource = {str(statement["Resource"]): sorted(statement["Action"]) for statement in statements}

    assert by_resource["{'Fn::GetAtt': ['DevicesTable', 'Arn']}"] == ["dynamodb:Query", "dynamodb:UpdateItem"]
    assert by_resource["{'Fn::GetAtt': ['DecisionsTable', 'Arn']}"] == [
        "dynamodb:BatchWriteItem",
        "dynamodb:PutItem",
    ]
    assert "dynamodb:Scan" not in str(statements)
    (secrets,) = [
        statement for statement in statements if statement["Action"] == ["secretsmanager:GetSecretValue"]
    ]
    assert secrets["Resource"] == [{"Ref": "ExchangeServersSecretArn"}, {"Ref": "CnsTokenSecretArn"}]

"""What the issue fixes about template.yaml, read the way the local stack reads it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ens_local.template import Template

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


def test_webhook_has_no_xray_tracing(template: Template) -> None:
    assert "Tracing" not in template.globals_function
    assert "Tracing" not in template.properties("WebhookFunction")


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
        for action in statement["Action"]
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

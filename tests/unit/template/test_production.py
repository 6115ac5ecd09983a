"""The production template: every site choice a documented Parameter that reaches its function,
encryption, recovery, networking, least privilege, alarms and dashboard (issue 9)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cfnlint.decode import cfn_yaml

from ens_local.template import Resolver, Template

pytestmark = pytest.mark.unit
REPO = Path(__file__).resolve().parents[3]
STATEFUL_TABLES = ("SubscriptionsTable", "DevicesTable", "MailboxesTable")
VPC_FUNCTIONS = ("ConsumerFunction", "DevicesFunction", "WatchdogFunction")
FUNCTIONS = ("WebhookFunction", *VPC_FUNCTIONS)


@pytest.fixture(scope="module")
def template() -> Template:
    return Template.load()


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(json.dumps(cfn_yaml.load(str(REPO / "template.yaml"))))
    return loaded


def _references(value: Any) -> Iterator[str]:
    """Every name a !Ref or a ${Name} in a !Sub points at."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "Ref":
                yield str(item)
            elif key == "Fn::Sub":
                text = item if isinstance(item, str) else item[0]
                yield from (name.split(".")[0] for name in re.findall(r"\$\{([^}!]+)\}", text))
                if not isinstance(item, str):
                    yield from _references(item[1])
            else:
                yield from _references(item)
    elif isinstance(value, list):
        for item in value:
            yield from _references(item)


def _statements(template: Template, function: str) -> list[Any]:
    return [
        statement
        for policy in template.properties(function)["Policies"]
        for statement in (policy.get("Statement", []) if isinstance(policy, dict) else [])
    ]


def _resolver(template: Template, **parameters: str) -> Resolver:
    return Resolver(
        refs={**template.parameter_defaults(), **parameters, **{name: name for name in template.resources}},
        attribute=lambda resource, attribute: f"{resource}.{attribute}",
        pseudo={"AWS::Region": "eu-west-1", "AWS::AccountId": "123456789012", "AWS::StackName": "ens"},
        conditions=template.conditions,
        list_refs=template.list_parameters(),
    )


def test_every_parameter_is_documented_in_deploy_md(template: Template) -> None:
    deploy = (REPO / "docs" / "deploy.md").read_text(encoding="utf-8")
    section = deploy.split("\n## Parameters\n", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"^\| `([A-Za-z0-9]+)` \|", section, flags=re.MULTILINE))

    assert set(template.parameters) - documented == set()
    assert documented - set(template.parameters) == set()  # no row for a Parameter that is gone


def test_every_parameter_reaches_a_resource_or_an_output(document: dict[str, Any]) -> None:
    used = set(_references([document["Resources"], document["Conditions"], document["Outputs"]]))
    used |= set(_references(document["Globals"]))

    assert set(document["Parameters"]) - used == set()


def test_every_setting_parameter_reaches_the_environment_of_a_function(template: Template) -> None:
    in_environments = {
        name
        for spec in template.functions()
        for name in _references(spec.environment)
        if name in template.parameters
    }
    # These shape resources, not a function's settings: where each one goes is tested below.
    infrastructure = {
        "Stage",
        "NotificationsMaxReceiveCount",
        "ConsumerBatchSize",
        "ConsumerBatchingWindowSeconds",
        "ConsumerMaxConcurrency",
        "WatchdogIntervalMinutes",
        "AlarmActionArn",
        "AlarmEmail",
        "PushLatencyAlarmMilliseconds",
        "SubnetIds",
        "SecurityGroupIds",
        "KmsKeyArn",
        "XRayTracing",
        "DomainName",
        "CertificateArn",
        "ApiAccessLogRetentionDays",
        "CreateApiGatewayLoggingRole",
    }

    assert set(template.parameters) - infrastructure <= in_environments


def test_the_secrets_are_given_by_arn_and_each_function_reads_only_its_own(template: Template) -> None:
    readable = {
        function: sorted(
            str(resource["Ref"])
            for statement in _statements(template, function)
            if statement.get("Action") == ["secretsmanager:GetSecretValue"]
            for resource in statement["Resource"]
        )
        for function in FUNCTIONS
    }

    assert readable == {
        "WebhookFunction": [],
        "ConsumerFunction": ["CnsTokenSecretArn", "ExchangeServersSecretArn"],
        "DevicesFunction": ["ExchangeServersSecretArn", "JwtKeySecretArn"],
        "WatchdogFunction": ["ExchangeServersSecretArn"],
    }
    for name in ("CnsTokenSecretArn", "ExchangeServersSecretArn", "JwtKeySecretArn"):
        pattern = template.parameters[name]["AllowedPattern"]
        assert re.fullmatch(pattern, f"arn:aws:secretsmanager:eu-west-1:123456789012:secret:ens/x-{'a' * 6}")
        assert not re.fullmatch(pattern, "ens/exchange-servers")  # a name: IAM could not scope to it
        assert "Default" not in template.parameters[name]


def test_no_inline_statement_grants_every_resource(template: Template) -> None:
    for function in FUNCTIONS:
        for statement in _statements(template, function):
            assert "*" not in json.dumps(statement.get("Resource", "")).replace("}-*", "")


def test_a_kms_key_when_given_encrypts_tables_queues_and_environments_and_each_function_may_use_it(
    template: Template,
) -> None:
    with_key = _resolver(template, KmsKeyArn="arn:aws:kms:eu-west-1:123456789012:key/abc")
    without = _resolver(template)
    for table in template.logical_ids("AWS::DynamoDB::Table"):
        sse = template.properties(table)["SSESpecification"]
        assert without.resolve(sse) == {"SSEEnabled": True}
        assert with_key.resolve(sse)["KMSMasterKeyId"].endswith("key/abc")
    for queue in template.logical_ids("AWS::SQS::Queue"):
        properties = template.properties(queue)
        assert without.resolve(dict(properties))["SqsManagedSseEnabled"] is True
        assert with_key.resolve(dict(properties))["KmsMasterKeyId"].endswith("key/abc")
    assert with_key.resolve(template.globals_function["KmsKeyArn"]).endswith("key/abc")
    for function in FUNCTIONS:
        granted = [
            with_key.resolve(statement)
            for statement in _statements(template, function)
            if "Fn::If" in statement
        ]
        assert granted == [
            {
                "Effect": "Allow",
                "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
                "Resource": "arn:aws:kms:eu-west-1:123456789012:key/abc",
            }
        ]
        assert [without.resolve(statement) for statement in _statements(template, function)].count(None) == 1


def test_the_tables_that_hold_state_have_point_in_time_recovery(template: Template) -> None:
    for table in STATEFUL_TABLES:
        recovery = template.properties(table)["PointInTimeRecoverySpecification"]
        assert recovery == {"PointInTimeRecoveryEnabled": True}


def test_both_queues_hide_a_message_at_least_six_times_the_consumer_s_timeout(template: Template) -> None:
    (consumer,) = [spec for spec in template.functions() if spec.logical_id == "ConsumerFunction"]
    for queue in ("NotificationsQueue", "NotificationsDeadLetterQueue"):
        assert int(template.properties(queue)["VisibilityTimeout"]) >= 6 * consumer.timeout_seconds


def test_the_functions_that_reach_exchange_run_in_the_vpc_when_subnets_are_given_and_the_webhook_never(
    template: Template,
) -> None:
    in_vpc = _resolver(template, SubnetIds="subnet-1,subnet-2", SecurityGroupIds="sg-1")
    outside = _resolver(template)
    for function in VPC_FUNCTIONS:
        properties = dict(template.properties(function))
        assert in_vpc.resolve(properties)["VpcConfig"] == {
            "SubnetIds": ["subnet-1", "subnet-2"],
            "SecurityGroupIds": ["sg-1"],
        }
        assert "VpcConfig" not in outside.resolve(properties)
    assert "VpcConfig" not in template.properties("WebhookFunction")


def test_a_custom_domain_changes_the_callback_url_exchange_is_given_and_the_devices_api_url(
    template: Template, document: dict[str, Any]
) -> None:
    custom = _resolver(template, DomainName="ens.contoso.com", CertificateArn="arn:aws:acm:x")
    default = _resolver(template)
    watchdog = template.properties("WatchdogFunction")["Environment"]["Variables"]["WEBHOOK_BASE_URL"]

    assert custom.resolve(watchdog) == "https://ens.contoso.com/exchange/ews/notifications/"
    assert default.resolve(watchdog) == (
        "https://WebhookApi.execute-api.eu-west-1.amazonaws.com/dev/ews/notifications/"
    )
    assert custom.resolve(document["Outputs"]["WebhookBaseUrl"]["Value"]) == custom.resolve(watchdog)
    assert custom.resolve(document["Outputs"]["DevicesApiUrl"]["Value"]) == "https://ens.contoso.com/"
    assert template.properties("WebhookApiMapping")["BasePath"] == "exchange"
    assert "BasePath" not in template.properties("DevicesApiMapping")


def test_each_api_writes_access_logs_without_the_callback_token_and_is_throttled(template: Template) -> None:
    for api in ("WebhookApi", "DevicesApi"):
        properties = template.properties(api)
        log_format = properties["AccessLogSetting"]["Format"]
        assert "$context.resourcePath" in log_format
        assert "$context.path" not in log_format  # the webhook's path holds the token, a secret
        (group,) = properties["AccessLogSetting"]["DestinationArn"]["Fn::GetAtt"][:1]
        assert template.properties(group)["RetentionInDays"] == {"Ref": "ApiAccessLogRetentionDays"}
        assert properties["MethodSettings"][0]["ThrottlingRateLimit"] > 0


def _emitted_metric_names() -> set[str]:
    source = "\n".join(path.read_text() for path in (REPO / "functions").glob("*/app.py"))
    # Metric names are CamelCase string literals (add_metric(name=...), the (name, value) tables).
    return set(re.findall(r'"([A-Z][A-Za-z0-9]+)"', source))


def test_the_issue_s_alarms_exist_and_watch_metrics_the_functions_emit(template: Template) -> None:
    alarms = {
        logical_id: template.properties(logical_id)
        for logical_id in template.logical_ids("AWS::CloudWatch::Alarm")
    }
    emitted = _emitted_metric_names()

    def watched(alarm: dict[str, Any]) -> set[str]:
        names = {alarm["MetricName"]} if "MetricName" in alarm else set()
        for query in alarm.get("Metrics", []):
            if "MetricStat" in query:
                names.add(query["MetricStat"]["Metric"]["MetricName"])
            names.update(re.findall(r"SUM\((\w+)\)", query.get("Expression", "")))
        return names

    expected = {
        "NotificationsDeadLetterAlarm": "ApproximateNumberOfMessagesVisible",
        "ConsumerErrorsAlarm": "Errors",
        "CnsFailuresAlarm": "CnsErrors",
        "ExchangeErrorsAlarm": "ExchangeErrors",
        "SubscriptionsFailingAlarm": "SubscriptionsFailed",
        "CnsTokenExpiryAlarm": "CnsTokenDaysLeft",
        "Webhook5xxAlarm": "5XXError",
        "PushLatencyAlarm": "PushLatency",
    }
    for logical_id, metric in expected.items():
        assert metric in watched(alarms[logical_id]), logical_id
    for alarm in alarms.values():
        assert all(name in emitted for name in watched(alarm) if alarm.get("Namespace", "ENS") == "ENS")
        assert alarm["AlarmActions"] == alarms["NotificationsDeadLetterAlarm"]["AlarmActions"]
    assert alarms["PushLatencyAlarm"]["ExtendedStatistic"] == "p99"


def test_alarms_notify_the_given_topic_else_the_stack_s_own_for_an_email_else_no_one(
    template: Template,
) -> None:
    actions = template.properties("PushLatencyAlarm")["AlarmActions"]

    assert _resolver(template, AlarmActionArn="arn:aws:sns:x").resolve(actions) == ["arn:aws:sns:x"]
    assert _resolver(template, AlarmEmail="ops@contoso.com").resolve(actions) == ["AlarmTopic"]
    assert _resolver(template).resolve({"AlarmActions": actions}) == {}


def test_the_dashboard_is_valid_json_and_shows_the_alarmed_metrics(template: Template) -> None:
    body = template.properties("Dashboard")["DashboardBody"]["Fn::Sub"][0]
    filled = re.sub(r"\$\{[A-Za-z:]+\}", "1", body)
    widgets = json.loads(filled)["widgets"]
    shown = json.dumps(widgets)

    for metric in (
        "CnsErrors",
        "ExchangeErrors",
        "PushLatency",
        "CnsTokenDaysLeft",
        "SubscriptionsFailed",
        "5XXError",
    ):
        assert metric in shown
    assert "GROUP BY code" in shown


def test_the_local_stack_stand_ins_are_the_only_values_a_deployment_must_choose_among_secrets(
    template: Template,
) -> None:
    required = {name for name, spec in template.parameters.items() if "Default" not in spec}

    assert required == set(template.local_parameters)

"""The whole local stack: built from the template, environment applied, functions wired."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jwt
import pytest
import requests

from ens_local.aws import LocalAws, ProvisionedStack
from ens_local.config import settings_from_mapping
from ens_local.functions import EnvironmentConflict
from ens_local.stack import LocalStack, LocalStackError
from ens_local.template import DEFAULT_TEMPLATE, REPO_ROOT
from support.push_sink_fixtures import cns_headers, sample_payload

pytestmark = pytest.mark.integration

HANDLERS = Path(__file__).parent / "handlers"
Factory = Callable[..., LocalStack]


def echo_webhook(document: dict[str, Any]) -> None:
    webhook = document["Resources"]["WebhookFunction"]["Properties"]
    webhook["CodeUri"] = str(HANDLERS / "api")
    webhook["Handler"] = "app.echo"


def with_consumer(document: dict[str, Any]) -> None:
    """What a later issue will do: add a function subscribed to the notifications queue."""
    echo_webhook(document)
    document["Resources"]["ConsumerFunction"] = {
        "Type": "AWS::Serverless::Function",
        "Properties": {
            "CodeUri": str(HANDLERS / "consumer"),
            "Handler": "app.handler",
            "Timeout": 30,
            "Environment": {"Variables": {"CONSUMER_ONLY": "yes"}},
            "Events": {
                "MailEvents": {
                    "Type": "SQS",
                    "Properties": {
                        "Queue": {"Fn::GetAtt": ["NotificationsQueue", "Arn"]},
                        "BatchSize": 5,
                        "FunctionResponseTypes": ["ReportBatchItemFailures"],
                    },
                }
            },
        },
    }


def send(stack: LocalStack, *bodies: str) -> None:
    sqs = stack.client("sqs")
    for body in bodies:
        sqs.send_message(QueueUrl=stack.queue_urls["NotificationsQueue"], MessageBody=body)


def test_a_function_added_to_the_template_is_triggered_by_its_queue_without_runner_changes(
    local_stack_factory: Factory, template_copy: Callable[..., Path]
) -> None:
    stack = local_stack_factory(template_copy(with_consumer), start_pollers=False)
    send(stack, *[f"mail-{i}" for i in range(7)])

    outcomes = [stack.poll_all_once()[0] for _ in range(3)]

    consumer = stack.functions["ConsumerFunction"].module
    assert [len(batch) for batch in consumer.BATCHES] == [5, 2]
    assert [outcome.received for outcome in outcomes] == [5, 2, 0]
    trigger = stack.triggers[0]
    assert (trigger.name, trigger.batch_size, trigger.report_batch_item_failures) == (
        "ConsumerFunction",
        5,
        True,
    )


def test_the_background_pollers_deliver_what_the_webhook_side_queues(
    local_stack_factory: Factory, template_copy: Callable[..., Path]
) -> None:
    stack = local_stack_factory(template_copy(with_consumer))
    consumer = stack.functions["ConsumerFunction"].module

    send(stack, "mail-a", "mail-b")
    with consumer.INVOKED:
        consumer.INVOKED.wait_for(lambda: sum(len(batch) for batch in consumer.BATCHES) >= 2, timeout=10)

    assert sorted(body for batch in consumer.BATCHES for body in batch) == ["mail-a", "mail-b"]


def test_a_test_can_attach_its_own_consumer_to_a_template_queue(
    local_stack_factory: Factory, template_copy: Callable[..., Path]
) -> None:
    stack = local_stack_factory(template_copy(echo_webhook), start_pollers=False)
    seen: list[str] = []
    trigger = stack.attach_consumer(
        "NotificationsQueue", lambda event, _: seen.extend(r["body"] for r in event["Records"])
    )

    send(stack, "one")
    outcome = trigger.poll_once()

    assert (outcome.received, outcome.deleted) == (1, 1)
    assert seen == ["one"]
    with pytest.raises(KeyError, match="NoSuchQueue"):
        stack.attach_consumer("NoSuchQueue", lambda event, _: None)


def test_the_functions_environment_is_resolved_applied_and_restored(
    local_stack_factory: Factory, template_copy: Callable[..., Path]
) -> None:
    before = dict(os.environ)
    stack = local_stack_factory(
        template_copy(with_consumer),
        start_pollers=False,
        parameters={"LogLevel": "DEBUG"},
        environment={
            "POWERTOOLS_SERVICE_NAME": "ens-test",
            "CALLBACK_BASE_URL": "${api_url}/dev/ews/notifications/",
        },
    )
    name = stack.settings.stack.stack_name

    assert (
        os.environ["SUBSCRIPTIONS_TABLE"]
        == f"{name}-SubscriptionsTable"
        == stack.table_names["SubscriptionsTable"]
    )
    assert os.environ["NOTIFICATIONS_QUEUE_URL"] == stack.queue_urls["NotificationsQueue"]
    assert os.environ["POWERTOOLS_LOG_LEVEL"] == "DEBUG"  # from [parameters] through !Ref LogLevel
    assert os.environ["POWERTOOLS_SERVICE_NAME"] == "ens-test"  # [environment] wins over the template
    assert os.environ["CALLBACK_BASE_URL"] == f"{stack.api_url}/dev/ews/notifications/"
    assert os.environ["CONSUMER_ONLY"] == "yes"
    assert os.environ["AWS_ENDPOINT_URL"] == stack.aws_endpoint_url
    assert os.environ["AWS_SAM_LOCAL"] == "true"

    stack.stop()
    assert dict(os.environ) == before


def test_two_functions_needing_different_values_for_one_variable_stop_the_start(
    local_stack_factory: Factory, template_copy: Callable[..., Path]
) -> None:
    def conflicting(document: dict[str, Any]) -> None:
        with_consumer(document)
        document["Resources"]["ConsumerFunction"]["Properties"]["Environment"]["Variables"][
            "POWERTOOLS_SERVICE_NAME"
        ] = "ens-consumer"

    before = dict(os.environ)
    with pytest.raises(
        EnvironmentConflict, match=r"POWERTOOLS_SERVICE_NAME.*WebhookFunction.*ConsumerFunction"
    ):
        local_stack_factory(template_copy(conflicting))

    assert dict(os.environ) == before


def test_secrets_are_created_under_their_aws_names(
    local_stack_factory: Factory, template_copy: Callable[..., Path]
) -> None:
    stack = local_stack_factory(
        template_copy(echo_webhook),
        secrets={"ens/test/plain": "s3cret", "ens/test/json": json.dumps({"url": "${aws_endpoint_url}"})},
    )
    secretsmanager = stack.client("secretsmanager")

    assert secretsmanager.get_secret_value(SecretId="ens/test/plain")["SecretString"] == "s3cret"
    stored = json.loads(secretsmanager.get_secret_value(SecretId="ens/test/json")["SecretString"])
    assert stored == {"url": stack.aws_endpoint_url}


def test_seeders_run_after_provisioning_when_seeding_is_on(
    local_stack_factory: Factory, template_copy: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from ens_local import stack as stack_module

    statuses: list[str] = []

    def seeder(stack: LocalStack) -> None:
        # describe_table, not list_tables: the shared local AWS holds more tables than one page lists.
        table = stack.client("dynamodb").describe_table(TableName=stack.table_names["SubscriptionsTable"])
        statuses.append(table["Table"]["TableStatus"])

    monkeypatch.setattr(stack_module, "SEEDERS", [seeder])

    local_stack_factory(template_copy(echo_webhook), seed=True)

    assert statuses == ["ACTIVE"]


def test_an_enabled_simulator_that_cannot_be_imported_is_a_clear_error(
    local_stack_factory: Factory, template_copy: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "exchange_simulator", None)  # makes the import fail

    with pytest.raises(LocalStackError, match=r"\[exchange_simulator\] enabled = true.*enabled = false"):
        local_stack_factory(template_copy(echo_webhook), simulator=True)


def test_an_enabled_push_sink_takes_pushes_with_the_token_from_its_secret_at_the_placeholder_urls(
    local_aws: LocalAws, stack_name: str, template_copy: Callable[..., Path]
) -> None:
    settings = settings_from_mapping(
        {
            "stack": {
                "template": str(template_copy(echo_webhook)),
                "api_port": 0,
                "aws_port": 0,
                "stack_name": stack_name,
                "poll_wait_seconds": 0,
                "seed": False,
            },
            "environment": {"CNS_URL": "${push_sink_url}", "CNS_CA_BUNDLE": "${push_sink_ca_bundle}"},
            "push_sink": {"port": 0, "token_secret": f"{stack_name}/cns-token"},
        }
    )
    stack = LocalStack(settings, aws=local_aws).start()
    try:
        sink = stack.push_sink
        token = stack.client("secretsmanager").get_secret_value(SecretId=f"{stack_name}/cns-token")[
            "SecretString"
        ]
        bundle = os.environ["CNS_CA_BUNDLE"]

        reply = requests.post(
            os.environ["CNS_URL"],
            json=sample_payload(),
            headers=cns_headers(token),
            verify=bundle,
            timeout=10,
        )

        assert reply.status_code == 200
        assert [push.id for push in sink.pushes()] == [reply.json()["id"]]
        assert (os.environ["CNS_URL"], bundle) == (sink.url, sink.ca_bundle_path)
        claims = jwt.decode(token, options={"verify_signature": False})
        assert claims["iss"] == "ens-local-push-sink"
        assert claims["exp"] - claims["iat"] == 365 * 24 * 3600
        banner = f"  CNS         {sink.url} (push sink; CA {bundle}, token in secret {stack_name}/cns-token; "
        assert any(line.startswith(banner) for line in stack.describe())
    finally:
        stack.stop()
    assert stack.push_sink is None
    assert not Path(bundle).exists()


def test_with_the_push_sink_disabled_the_stack_runs_against_the_cns_url_it_is_given(
    local_stack_factory: Factory, template_copy: Callable[..., Path]
) -> None:
    stack = local_stack_factory(
        template_copy(echo_webhook), environment={"CNS_URL": "https://cns.example.com/v1/push"}
    )

    assert stack.push_sink is None
    assert os.environ["CNS_URL"] == "https://cns.example.com/v1/push"
    assert not any("push sink" in line for line in stack.describe())


def test_the_provisioned_stack_fixture_points_the_environment_at_its_own_resources(
    provisioned_stack: ProvisionedStack,
) -> None:
    assert os.environ["SUBSCRIPTIONS_TABLE"] == provisioned_stack.table_names["SubscriptionsTable"]
    assert provisioned_stack.aws.stack_name in os.environ["NOTIFICATIONS_QUEUE_URL"]
    assert os.environ["AWS_ENDPOINT_URL"] == provisioned_stack.aws.endpoint_url
    # The parameter's default in template.yaml, through the function's !Ref.
    assert os.environ["MAX_NOTIFICATION_BYTES"] == provisioned_stack.parameters["MaxNotificationBytes"]
    assert provisioned_stack.parameters["MaxNotificationBytes"] == str(
        provisioned_stack.template.parameters["MaxNotificationBytes"]["Default"]
    )


def test_the_table_and_queues_come_from_the_template_definitions(provisioned_stack: ProvisionedStack) -> None:
    dynamodb = provisioned_stack.aws.client("dynamodb")
    sqs = provisioned_stack.aws.client("sqs")

    table = dynamodb.describe_table(TableName=provisioned_stack.table_names["SubscriptionsTable"])["Table"]
    attributes = sqs.get_queue_attributes(
        QueueUrl=provisioned_stack.queue_urls["NotificationsQueue"], AttributeNames=["All"]
    )["Attributes"]

    assert table["KeySchema"] == [{"AttributeName": "token", "KeyType": "HASH"}]
    assert [index["IndexName"] for index in table["GlobalSecondaryIndexes"]] == ["ByMailbox", "ByDueAt"]
    assert attributes["VisibilityTimeout"] == "180"
    redrive = json.loads(attributes["RedrivePolicy"])
    assert redrive["deadLetterTargetArn"] == provisioned_stack.queue_arn("NotificationsDeadLetterQueue")
    assert int(redrive["maxReceiveCount"]) == 5


def test_python_m_ens_local_serves_until_sigterm(tmp_path: Path, template_copy: Callable[..., Path]) -> None:
    settings = tmp_path / "settings.toml"
    settings.write_text(
        f'[stack]\ntemplate = "{template_copy(echo_webhook)}"\napi_port = 0\naws_port = 0\n'
        'stack_name = "ens-cli-test"\npoll_wait_seconds = 0\n',
        encoding="utf-8",
    )
    environment = {**os.environ, "PYTHONPATH": str(REPO_ROOT / "local"), "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "ens_local", "--config", str(settings)],
        cwd=REPO_ROOT,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        lines: list[str] = []
        assert process.stdout is not None
        for line in process.stdout:  # bounded by the test timeout; ends at "ready"
            lines.append(line)
            if "ready; Ctrl-C stops" in line:
                break
        banner = "".join(lines)
        api = re.search(r"API front\s+POST\s+(http://127\.0\.0\.1:\d+)/ews/notifications/\{token\}", banner)
        assert api, banner
        assert re.search(r"local AWS\s+http://127\.0\.0\.1:\d+", banner), banner

        response = requests.post(
            f"{api.group(1)}/ews/notifications/secret-token-123456789", data=b"x", timeout=10
        )
        assert response.status_code == 200
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=20)
    assert process.returncode == 0, output
    assert "POST /ews/notifications/{token} -> 200" in output
    assert "secret-token-123456789" not in output
    assert "HTTP/1.1" not in output  # neither werkzeug's nor http.server's per-request lines


def test_python_m_ens_local_reports_a_bad_settings_file_and_exits_2(tmp_path: Path) -> None:
    settings = tmp_path / "bad.toml"
    settings.write_text(f'[stack]\ntemplate = "{DEFAULT_TEMPLATE}"\napi_prot = 1\n', encoding="utf-8")

    result = subprocess.run(
        [sys.executable, "-m", "ens_local", "--config", str(settings)],
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT / "local")},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 2
    assert "bad.toml: unknown key stack.api_prot" in result.stderr

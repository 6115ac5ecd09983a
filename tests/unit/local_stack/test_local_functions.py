"""Loading handlers as the Lambda runtime would, in one process."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pytest
from aws_lambda_powertools import Logger

from ens_local.functions import (
    EnvironmentConflict,
    FunctionLoadError,
    FunctionTimeout,
    LambdaContext,
    apply_environment,
    load_function,
    merge_environments,
    restore_environment,
)
from ens_local.template import FunctionSpec

pytestmark = pytest.mark.unit


def function_dir(root: Path, name: str, helper_value: str) -> Path:
    directory = root / name
    directory.mkdir()
    (directory / "helper.py").write_text(f"VALUE = {helper_value!r}\n", encoding="utf-8")
    (directory / "app.py").write_text(
        "import helper\n"
        "COLD_STARTS = []\n"
        "COLD_STARTS.append(1)\n"
        "def handler(event, context):\n"
        "    return {'helper': helper.VALUE, 'cold_starts': len(COLD_STARTS), 'name': context.function_name}\n",
        encoding="utf-8",
    )
    return directory


def spec(
    code_dir: Path, logical_id: str = "OneFunction", handler: str = "app.handler", timeout: int = 3
) -> FunctionSpec:
    return FunctionSpec(logical_id, code_dir, handler, timeout, {}, memory_mb=256)


def test_each_load_is_a_cold_start_with_fresh_module_state(tmp_path: Path) -> None:
    code = function_dir(tmp_path, "one", "one")

    first = load_function(spec(code))
    first.invoke({})
    second = load_function(spec(code))

    assert first.module is not second.module
    assert second.invoke({})["cold_starts"] == 1


def test_two_functions_with_the_same_module_names_each_run_their_own_code(tmp_path: Path) -> None:
    one = load_function(spec(function_dir(tmp_path, "one", "from one"), "OneFunction"))
    two = load_function(spec(function_dir(tmp_path, "two", "from two"), "TwoFunction"))

    assert one.invoke({})["helper"] == "from one"
    assert two.invoke({})["helper"] == "from two"


def test_the_function_name_defaults_to_the_logical_id_and_can_carry_the_stack(tmp_path: Path) -> None:
    code = function_dir(tmp_path, "one", "x")

    assert load_function(spec(code)).invoke({})["name"] == "OneFunction"
    assert (
        load_function(spec(code), function_name="ens-local-OneFunction").invoke({})["name"]
        == "ens-local-OneFunction"
    )


def test_a_missing_handler_is_a_clear_load_error(tmp_path: Path) -> None:
    code = function_dir(tmp_path, "one", "x")

    with pytest.raises(FunctionLoadError, match="not found in CodeUri"):
        load_function(spec(code, handler="missing.handler"))
    with pytest.raises(FunctionLoadError, match="no callable 'nope'"):
        load_function(spec(code, handler="app.nope"))
    with pytest.raises(FunctionLoadError, match=r"not module\.function"):
        load_function(spec(code, handler="handler"))


def test_an_import_error_in_the_handler_module_names_the_function(tmp_path: Path) -> None:
    code = tmp_path / "broken"
    code.mkdir()
    (code / "app.py").write_text("import not_a_module_anywhere\n", encoding="utf-8")

    with pytest.raises(FunctionLoadError, match="BrokenFunction: importing"):
        load_function(spec(code, "BrokenFunction"))


def test_an_invocation_longer_than_the_timeout_fails_like_a_lambda_timeout(tmp_path: Path) -> None:
    function = load_function(spec(function_dir(tmp_path, "one", "x"), timeout=0))

    with pytest.raises(FunctionTimeout, match=r"Task timed out after 0\.00 seconds"):
        function.invoke({})


def test_the_context_is_what_powertools_inject_lambda_context_reads() -> None:
    stream = io.StringIO()
    logger = Logger(service="test", logger_handler=__import__("logging").StreamHandler(stream))
    context = LambdaContext(
        function_name="ens-local-WebhookFunction", memory_limit_in_mb=512, timeout_seconds=10
    )

    @logger.inject_lambda_context
    def handler(event: dict, context: LambdaContext) -> None:
        logger.info("hello")

    handler({}, context)

    line = json.loads(stream.getvalue().splitlines()[-1])
    assert line["function_name"] == "ens-local-WebhookFunction"
    assert line["function_request_id"] == context.aws_request_id
    assert line["function_memory_size"] == 512
    assert line["function_arn"] == "arn:aws:lambda:eu-west-1:123456789012:function:ens-local-WebhookFunction"
    assert 0 < context.get_remaining_time_in_millis() <= 10_000
    assert context.log_group_name == "/aws/lambda/ens-local-WebhookFunction"
    assert "[$LATEST]" in context.log_stream_name


def test_two_functions_needing_different_values_for_one_variable_are_refused() -> None:
    with pytest.raises(EnvironmentConflict) as conflict:
        merge_environments(
            {"WebhookFunction": {"TABLE": "a", "SAME": "x"}, "ConsumerFunction": {"TABLE": "b", "SAME": "x"}}
        )

    message = str(conflict.value)
    assert "TABLE" in message
    assert "WebhookFunction" in message
    assert "ConsumerFunction" in message
    assert "[environment]" in message


def test_an_override_settles_a_conflict_and_wins_over_the_template() -> None:
    merged = merge_environments({"A": {"TABLE": "a", "ONLY_A": 1}, "B": {"TABLE": "b"}}, {"TABLE": "chosen"})

    assert merged == {"TABLE": "chosen", "ONLY_A": "1"}


def test_applied_variables_are_restored_exactly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENS_TEST_EXISTING", "before")
    monkeypatch.delenv("ENS_TEST_NEW", raising=False)

    previous = apply_environment({"ENS_TEST_EXISTING": "during", "ENS_TEST_NEW": "during"})
    assert os.environ["ENS_TEST_NEW"] == "during"
    restore_environment(previous)

    assert os.environ["ENS_TEST_EXISTING"] == "before"
    assert "ENS_TEST_NEW" not in os.environ

"""The local stack's own log lines must survive Powertools' filter on the root handlers."""

from __future__ import annotations

import importlib
import logging
import pkgutil

import pytest
from aws_lambda_powertools import Logger

import ens_local

pytestmark = pytest.mark.unit


def test_no_logger_of_the_local_stack_has_a_name_powertools_would_swallow() -> None:
    loggers = {
        f"{module.name}.{attribute}": value.name
        for module in pkgutil.iter_modules(ens_local.__path__, "ens_local.")
        for attribute, value in vars(importlib.import_module(module.name)).items()
        if isinstance(value, logging.Logger)
    }

    assert "ens_local.aws.log" in loggers
    assert {name for name in loggers.values() if "ens" in name} == set()
    assert all(name == "local_stack" or name.startswith("local_stack.") for name in loggers.values())


def test_a_provisioning_line_gets_through_a_root_handler_filtered_by_powertools() -> None:
    from ens_local.aws import log

    seen: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: seen.append(record.getMessage())  # type: ignore[method-assign]
    root = logging.getLogger()
    root.addHandler(handler)
    level = log.level
    try:
        Logger(service="ens")  # puts its filter on every handler the root logger has
        log.setLevel(logging.DEBUG)
        log.debug("created table %s", "t")
    finally:
        root.removeHandler(handler)
        log.setLevel(level)

    assert seen == ["created table t"]

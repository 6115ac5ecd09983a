"""Simulator fixtures for these tests.

Once tests/conftest.py registers `pytest_plugins = ["support.simulator_fixtures"]`, this import is
redundant but harmless (a conftest fixture of the same name simply shadows the plugin's).
"""

from support.simulator_fixtures import (  # noqa: F401
    callback_listener,
    ews_account,
    ews_schema_guard,
    exchange_simulator,
    preview_field,
    simulator_settings,
)

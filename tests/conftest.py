"""Fixtures shared by every test layer live in tests/support; this registers them."""

pytest_plugins = ["support.local_stack_fixtures", "support.simulator_fixtures", "support.push_sink_fixtures"]

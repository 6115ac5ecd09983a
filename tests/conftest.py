"""Fixtures shared by every test layer live in tests/support; this registers them."""

from hypothesis import HealthCheck, settings

pytest_plugins = ["support.local_stack_fixtures", "support.simulator_fixtures", "support.push_sink_fixtures"]

# Property tests run the same examples on every machine and every run (derandomize, no example
# database), so CI is deterministic; no deadline, since two cores are shared with other jobs.
settings.register_profile(
    "ens",
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=300,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("ens")

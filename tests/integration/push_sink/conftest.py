# The push sink's fixtures, for this folder; registering support.push_sink_fixtures in tests/conftest.py
# would make them global and this file unnecessary.
from support.push_sink_fixtures import push_sink, push_sink_server

__all__ = ["push_sink", "push_sink_server"]

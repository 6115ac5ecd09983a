"""A local stand-in for the Cloud Notification Service (CNS) that ENS's consumer pushes to.

Tooling only: it lives in local/ and never ships in a Lambda layer. See docs/push-sink.md.
"""

from push_sink.faults import FaultRule
from push_sink.inputs import FaultSpec, PushPayload
from push_sink.sink import CONTROL_PREFIX, LOOPBACK, MAX_BODY_BYTES, PUSH_PATH, Attempt, Push, PushSink
from push_sink.tokens import ISSUER, mint_token

__all__ = [
    "CONTROL_PREFIX",
    "ISSUER",
    "LOOPBACK",
    "MAX_BODY_BYTES",
    "PUSH_PATH",
    "Attempt",
    "FaultRule",
    "FaultSpec",
    "Push",
    "PushPayload",
    "PushSink",
    "mint_token",
]

"""boto3 clients configured once for every adapter: short timeouts, standard retries.

AWS_ENDPOINT_URL (set by the local stack and tests) points them at local AWS.
"""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config

# Exchange waits for the webhook's answer: a stuck AWS call must fail fast into a 5xx it retries.
_CLIENT_CONFIG = Config(
    connect_timeout=2,
    read_timeout=5,
    retries={"mode": "standard", "max_attempts": 3},
)


def client(service: str) -> Any:
    return boto3.client(service, config=_CLIENT_CONFIG)

"""boto3 clients configured once for every adapter: short timeouts, standard retries.

AWS_ENDPOINT_URL (set by the local stack and tests) points them at local AWS.
"""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config

# Exchange waits for the webhook's answer: a stuck AWS call must fail fast into a 503 it retries.
# Worst case per call: 2 attempts x (1 s connect + 2 s read) plus a short back-off, about 6.5 s;
# a callback makes three calls in a row (batches of mail events go in parallel), within the
# webhook's 20 s Timeout in template.yaml.
_CLIENT_CONFIG = Config(
    connect_timeout=1,
    read_timeout=2,
    retries={"mode": "standard", "max_attempts": 2},
)


def client(service: str) -> Any:
    return boto3.client(service, config=_CLIENT_CONFIG)

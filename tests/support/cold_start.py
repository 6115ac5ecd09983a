"""A fresh interpreter that can import the webhook handler as Lambda would, for tests and benchmarks."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def webhook_cold_start_environment() -> dict[str, str]:
    """os.environ plus the handler's folder and layer on PYTHONPATH, and the settings it requires.

    The queue URL points at a closed port: importing creates clients but sends nothing.
    """
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO / "functions" / "webhook"), str(REPO / "layers" / "ens")]),
        "SUBSCRIPTIONS_TABLE": "subscriptions",
        "NOTIFICATIONS_QUEUE_URL": "http://127.0.0.1:1/123456789012/notifications",
        "AWS_DEFAULT_REGION": "eu-west-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "POWERTOOLS_SERVICE_NAME": "ens",
        "POWERTOOLS_METRICS_NAMESPACE": "ENS",
    }

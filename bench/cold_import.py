"""Cold import of the webhook handler module, next to `import boto3` alone.

Each figure is `python -X importtime` in a fresh interpreter: the cumulative time of the top-level
import, median of several runs. The handler's figure includes building its two boto3 clients,
which is module-level work a cold start pays too.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
from collections.abc import Mapping

from support.cold_start import webhook_cold_start_environment

RUNS = 9


def import_microseconds(module: str, environment: Mapping[str, str] | None = None) -> tuple[int, int]:
    """(self, cumulative) -X importtime of `module` in a fresh interpreter (the webhook's environment
    unless another is given)."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"import {module}"],
        env=dict(environment) if environment is not None else webhook_cold_start_environment(),
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    for line in result.stderr.splitlines():
        if not line.startswith("import time:"):
            continue
        self_time, cumulative, name = (part.strip() for part in line.removeprefix("import time:").split("|"))
        if name == module:
            return int(self_time), int(cumulative)
    raise RuntimeError(f"no importtime line for {module}")


def run() -> list[str]:
    boto3_alone = [import_microseconds("boto3")[1] for _ in range(RUNS)]
    webhook_runs = [import_microseconds("app") for _ in range(RUNS)]
    boto3_ms = statistics.median(boto3_alone) / 1000
    webhook_ms = statistics.median(cumulative for _, cumulative in webhook_runs) / 1000
    module_body_ms = statistics.median(self_time for self_time, _ in webhook_runs) / 1000
    return [
        f"Cold import (python -X importtime, fresh interpreter, median of {RUNS})",
        f"  import boto3 alone          {boto3_ms:7.1f} ms",
        f"  import webhook handler      {webhook_ms:7.1f} ms  ({webhook_ms / boto3_ms:.2f}x boto3 alone)",
        f"  webhook beyond boto3        {webhook_ms - boto3_ms:7.1f} ms",
        f"    of which app.py's own body {module_body_ms:6.1f} ms (settings, Logger, Metrics, two boto3 clients)",
    ]


if __name__ == "__main__":
    print("\n".join(run()))

"""Cold import of the consumer handler module, next to `import boto3` alone, and its memory.

As bench/cold_import.py does for the webhook: `python -X importtime` in a fresh interpreter, the
cumulative time of the top-level import, median of several runs. The consumer builds its clients on
the first invocation, not at import, so this is imports only; exchangelib (with lxml, requests,
tzlocal...) is most of it. The peak RSS after the import (VmHWM) is read in one more fresh interpreter.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
from collections.abc import Mapping

from bench.cold_import import RUNS, import_microseconds
from support.cold_start import REPO, webhook_cold_start_environment


def consumer_cold_start_environment() -> dict[str, str]:
    """The webhook's environment helper with the consumer's folder on PYTHONPATH instead."""
    return {
        **webhook_cold_start_environment(),
        "PYTHONPATH": f"{REPO / 'functions' / 'consumer'}:{REPO / 'layers' / 'ens'}",
    }


def peak_rss_after_import_kib(module: str, environment: Mapping[str, str] | None = None) -> int:
    """VmHWM after `import module` in a fresh interpreter (the consumer's environment unless another is given)."""
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            f"import {module}; from bench.lambda_worker import memory_kib; print(memory_kib())",
        ],
        env=dict(environment) if environment is not None else consumer_cold_start_environment(),
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return int(result.stdout.strip())


def run() -> list[str]:
    environment = consumer_cold_start_environment()
    boto3_alone = [import_microseconds("boto3", environment)[1] for _ in range(RUNS)]
    consumer_runs = [import_microseconds("app", environment) for _ in range(RUNS)]
    exchangelib_alone = [import_microseconds("exchangelib", environment)[1] for _ in range(RUNS)]
    boto3_ms = statistics.median(boto3_alone) / 1000
    consumer_ms = statistics.median(cumulative for _, cumulative in consumer_runs) / 1000
    exchangelib_ms = statistics.median(exchangelib_alone) / 1000
    return [
        f"Cold import of the consumer (python -X importtime, fresh interpreter, median of {RUNS})",
        f"  import boto3 alone          {boto3_ms:7.1f} ms",
        f"  import exchangelib alone    {exchangelib_ms:7.1f} ms",
        f"  import consumer handler     {consumer_ms:7.1f} ms  ({consumer_ms / boto3_ms:.2f}x boto3 alone)",
        f"  peak RSS after the import   {peak_rss_after_import_kib('app') / 1024:7.1f} MiB (VmHWM)",
        f"    (import boto3 alone: {peak_rss_after_import_kib('boto3') / 1024:.1f} MiB)",
    ]


if __name__ == "__main__":
    print("\n".join(run()))

"""Timing and summary helpers shared by the benchmarks."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def time_calls(call: Callable[[], object], repeat: int, warmup: int = 20) -> list[float]:
    """Seconds taken by each of `repeat` calls, after `warmup` untimed ones."""
    for _ in range(warmup):
        call()
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        samples.append(time.perf_counter() - start)
    return samples


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def summary(samples: list[float], unit: float = 1e-6, unit_name: str = "µs") -> str:
    return (
        f"median {statistics.median(samples) / unit:8.1f} {unit_name}   "
        f"p99 {percentile(samples, 0.99) / unit:8.1f} {unit_name}   (n={len(samples)})"
    )

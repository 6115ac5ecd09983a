"""Fault injection: make the simulator misbehave the ways a real Exchange server does."""

from __future__ import annotations

import itertools
import random
import threading
from dataclasses import dataclass
from typing import Any

from exchange_simulator.inputs import FaultKind, FaultSpec


@dataclass
class FaultRule:
    rule_id: int
    kind: FaultKind
    remaining: int | None  # the next N matching calls; None means "until cleared"
    fraction: float | None  # or this share of matching calls
    operations: frozenset[str] | None  # EWS operation names; None matches every call
    back_off_ms: int = 5000
    latency_ms: int = 0

    def describe(self) -> dict[str, Any]:
        return {
            "id": self.rule_id,
            "kind": self.kind,
            "remaining": self.remaining,
            "fraction": self.fraction,
            "operations": sorted(self.operations) if self.operations else None,
            "back_off_ms": self.back_off_ms,
            "latency_ms": self.latency_ms,
        }


@dataclass(frozen=True)
class FaultDecision:
    latency_ms: int = 0
    server_busy_back_off_ms: int | None = None
    connection_reset: bool = False


class FaultInjector:
    def __init__(self, seed: int | None = None) -> None:
        self._lock = threading.Lock()
        self._rules: list[FaultRule] = []
        self._ids = itertools.count(1)
        # Seeded so that "30% of calls fail" fails the same calls on every run of a test.
        self._random = random.Random(seed)  # noqa: S311 - chaos, not cryptography

    def add(
        self,
        kind: FaultKind,
        *,
        count: int | None = None,
        fraction: float | None = None,
        operations: list[str] | None = None,
        back_off_ms: int = 5000,
        latency_ms: int = 0,
    ) -> FaultRule:
        """Add a rule; a nonsense one raises pydantic's ValidationError (a ValueError)."""
        return self.install(
            FaultSpec(
                kind=kind,
                count=count,
                fraction=fraction,
                operations=frozenset(operations) if operations is not None else None,
                back_off_ms=back_off_ms,
                latency_ms=latency_ms,
            )
        )

    def install(self, spec: FaultSpec) -> FaultRule:
        """`add` for an already validated rule (the control API)."""
        with self._lock:
            rule = FaultRule(
                rule_id=next(self._ids),
                kind=spec.kind,
                # Without a count or a fraction a rule fires once.
                remaining=None if spec.fraction is not None else spec.count or 1,
                fraction=spec.fraction,
                operations=spec.operations or None,
                back_off_ms=spec.back_off_ms,
                latency_ms=spec.latency_ms,
            )
            self._rules.append(rule)
            return rule

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def rules(self) -> list[FaultRule]:
        with self._lock:
            return list(self._rules)

    def decide(self, operation: str | None) -> FaultDecision:
        """Consume the rules that fire for this call and say what to do to it."""
        latency = 0
        busy: int | None = None
        reset = False
        with self._lock:
            for rule in list(self._rules):
                if rule.operations is not None and operation not in rule.operations:
                    continue
                if rule.kind != "latency" and (busy is not None or reset):
                    continue  # one failure per call is enough; leave the rule for the next call
                if rule.fraction is not None and self._random.random() >= rule.fraction:
                    continue
                if rule.remaining is not None:
                    rule.remaining -= 1
                    if rule.remaining == 0:
                        self._rules.remove(rule)
                if rule.kind == "latency":
                    latency += rule.latency_ms
                elif rule.kind == "server_busy":
                    busy = rule.back_off_ms
                else:
                    reset = True
        return FaultDecision(latency_ms=latency, server_busy_back_off_ms=busy, connection_reset=reset)

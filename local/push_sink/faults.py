"""Faults on demand: make the sink answer the way CNS does when it is overloaded, throttling or broken."""

from __future__ import annotations

import itertools
import random
import threading
from dataclasses import dataclass
from typing import Any

from push_sink.inputs import FaultSpec


@dataclass
class FaultRule:
    rule_id: int
    spec: FaultSpec
    remaining: int | None  # the next N pushes; None with a fraction: until cleared
    random: random.Random

    def describe(self) -> dict[str, Any]:
        return {
            "id": self.rule_id,
            **self.spec.model_dump(exclude={"count"}),
            "reason": self.spec.answer_reason,
            "remaining": self.remaining,
        }


@dataclass(frozen=True)
class Refusal:
    """What a fault makes the sink answer instead of accepting a push."""

    status: int
    reason: str
    retry_after: int | None
    rule_id: int


class Faults:
    def __init__(self, seed: int | None = None) -> None:
        self._lock = threading.Lock()
        self._rules: list[FaultRule] = []
        self._ids = itertools.count(1)
        self._seed = seed

    def install(self, spec: FaultSpec) -> FaultRule:
        with self._lock:
            rule = FaultRule(
                rule_id=next(self._ids),
                spec=spec,
                # Without a count or a fraction a rule fires once.
                remaining=None if spec.fraction is not None else spec.count or 1,
                # Chaos, not cryptography; one generator per rule keeps a seeded rule independent of
                # whatever other rules drew before it.
                random=random.Random(spec.seed if spec.seed is not None else self._seed),  # noqa: S311
            )
            self._rules.append(rule)
            return rule

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def rules(self) -> list[FaultRule]:
        with self._lock:
            return list(self._rules)

    def decide(self) -> Refusal | None:
        """Consume the first rule that fires for this push; None lets the push through."""
        with self._lock:
            for rule in list(self._rules):
                if rule.spec.fraction is not None and rule.random.random() >= rule.spec.fraction:
                    continue
                if rule.remaining is not None:
                    rule.remaining -= 1
                    if rule.remaining == 0:
                        self._rules.remove(rule)
                return Refusal(rule.spec.status, rule.spec.answer_reason, rule.spec.retry_after, rule.rule_id)
        return None

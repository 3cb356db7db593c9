"""Per-provider execution statistics for ``gw.provider_health()`` (core-pipeline.md §20).

Every provider call the gateway makes (direct, reroute, fallback, weighted
route) is recorded once, with its outcome and wall time (retries and backoff
included). Recording is O(1): counters plus one slot of a 1000-sample ring
buffer; percentiles are computed only when someone reads them. The figures
are per process and start at zero with the gateway.
"""

from __future__ import annotations

import math
from typing import Any

from acteon._clock import Clock
from acteon.outcomes import Executed, Failed, Outcome

LATENCY_SAMPLES = 1000
"""How many recent latencies each provider keeps for its percentiles."""


class ProviderStats:
    """Counters and recent latencies of one provider."""

    __slots__ = ("failures", "last_error", "last_request_at", "latency_total", "next_slot", "samples", "successes")

    def __init__(self) -> None:
        self.successes = 0
        self.failures = 0
        self.latency_total = 0.0
        self.samples: list[float] = []
        self.next_slot = 0
        self.last_request_at: float | None = None
        self.last_error: str | None = None

    @property
    def total(self) -> int:
        return self.successes + self.failures

    def percentile_ms(self, pct: float) -> float:
        """Nearest-rank percentile of the kept samples, in milliseconds (0 with no samples)."""
        if not self.samples:
            return 0.0
        ordered = sorted(self.samples)
        rank = max(math.ceil(pct / 100.0 * len(ordered)), 1)
        return ordered[rank - 1] * 1000.0

    def to_dict(self) -> dict[str, Any]:
        """The execution fields of a health entry (``last_*`` omitted until they exist)."""
        total = self.total
        out: dict[str, Any] = {
            "total_requests": total,
            "successes": self.successes,
            "failures": self.failures,
            "success_rate": 100.0 * self.successes / total if total else 0.0,
            "avg_latency_ms": 1000.0 * self.latency_total / total if total else 0.0,
            "p50_latency_ms": self.percentile_ms(50),
            "p95_latency_ms": self.percentile_ms(95),
            "p99_latency_ms": self.percentile_ms(99),
        }
        if self.last_request_at is not None:
            out["last_request_at"] = int(self.last_request_at * 1000)
        if self.last_error is not None:
            out["last_error"] = self.last_error
        return out


class ProviderHealthRegistry:
    """Statistics of every provider the gateway has called, by name."""

    __slots__ = ("_clock", "_stats")

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._stats: dict[str, ProviderStats] = {}

    def record(self, provider: str, outcome: Outcome, seconds: float) -> None:
        """Count one call: ``Executed`` is a success (whatever its response status), anything else a failure."""
        stats = self._stats.get(provider)
        if stats is None:
            stats = self._stats[provider] = ProviderStats()
        if type(outcome) is Executed:
            stats.successes += 1
        else:
            stats.failures += 1
            stats.last_error = outcome.message if isinstance(outcome, Failed) else outcome.kind
        stats.latency_total += seconds
        samples = stats.samples
        if len(samples) < LATENCY_SAMPLES:
            samples.append(seconds)
        else:
            slot = stats.next_slot
            samples[slot] = seconds
            stats.next_slot = slot + 1 if slot + 1 < LATENCY_SAMPLES else 0
        stats.last_request_at = self._clock.time()

    def get(self, provider: str) -> ProviderStats:
        """The provider's statistics (all zero if it was never called)."""
        return self._stats.get(provider) or ProviderStats()

    def reset(self) -> None:
        self._stats.clear()

"""Retry backoff schedules (core-pipeline.md §6.2, DECISIONS D14).

Pure functions of the attempt number and a random source; nothing here sleeps.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, Literal

from acteon._exceptions import ConfigurationError


@dataclass(slots=True)
class RetryStrategy:
    """``kind`` is ``exponential``, ``linear`` or ``constant``.

    * exponential: ``base * multiplier**attempt``
    * linear: ``base * (attempt + 1)``
    * constant: ``base``

    With ``jitter`` the delay gains a uniform random extra of ``0..jitter_fraction``
    of itself (D14; upstream used a fixed ``+10 % * (attempt % 5)``), then is
    capped at ``max_delay``. Times are seconds; ``attempt`` is zero-based.
    """

    kind: Literal["exponential", "linear", "constant"] = "exponential"
    base_delay: float = 0.1
    max_delay: float = 30.0
    multiplier: float = 2.0
    jitter: bool = True
    jitter_fraction: float = 0.4
    rng: random.Random = field(default_factory=random.Random, repr=False, compare=False)

    def raw_delay(self, attempt: int) -> float:
        if self.kind == "exponential":
            return float(self.base_delay * self.multiplier**attempt)
        if self.kind == "linear":
            return self.base_delay * (attempt + 1)
        return self.base_delay

    def delay_for(self, attempt: int) -> float:
        raw = self.raw_delay(attempt)
        if self.jitter and self.kind == "exponential" and self.jitter_fraction > 0:
            raw *= 1.0 + self.rng.uniform(0.0, self.jitter_fraction)
        return min(raw, self.max_delay)

    @classmethod
    def from_config(cls, data: dict[str, Any] | None) -> RetryStrategy:
        """From ``{"strategy": "exponential", "base_ms": 100, "max_ms": 30000, ...}``."""
        if not data:
            return cls()
        data = dict(data)
        kind = data.pop("strategy", data.pop("kind", "exponential"))
        if kind not in ("exponential", "linear", "constant"):
            raise ConfigurationError(f"executor.retry.strategy must be exponential, linear or constant, got {kind!r}")
        out = cls(kind=kind)

        def number(key: str, scale: float = 1.0) -> float:
            value = data.pop(key)
            if isinstance(value, bool) or not isinstance(value, int | float | str):
                raise ConfigurationError(f"executor.retry.{key} must be a number, got {value!r}")
            try:
                result = float(value) * scale
            except ValueError:
                raise ConfigurationError(f"executor.retry.{key} must be a number, got {value!r}") from None
            if result < 0:
                raise ConfigurationError(f"executor.retry.{key} must be >= 0, got {value!r}")
            return result

        if "base_ms" in data:
            out.base_delay = number("base_ms", 0.001)
        if "base_delay_seconds" in data:
            out.base_delay = number("base_delay_seconds")
        if "max_ms" in data:
            out.max_delay = number("max_ms", 0.001)
        if "max_delay_seconds" in data:
            out.max_delay = number("max_delay_seconds")
        if "multiplier" in data:
            out.multiplier = number("multiplier")
        if "jitter" in data:
            jitter = data.pop("jitter")
            if not isinstance(jitter, bool):
                raise ConfigurationError(f"executor.retry.jitter must be true or false, got {jitter!r}")
            out.jitter = jitter
        if "jitter_fraction" in data:
            out.jitter_fraction = number("jitter_fraction")
        if data:
            raise ConfigurationError(f"unknown executor.retry keys: {', '.join(sorted(data))}")
        return out

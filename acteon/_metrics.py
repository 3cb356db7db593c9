"""Gateway counters (core-pipeline.md §15): plain integers, incremented inline."""

from __future__ import annotations

from typing import Any

_COUNTERS = (
    "dispatched", "executed", "deduplicated", "suppressed", "rerouted", "throttled", "failed",
    "pending_approval", "llm_guardrail_allowed", "llm_guardrail_denied", "llm_guardrail_errors",
    "chains_started", "chains_completed", "chains_failed", "chains_cancelled", "circuit_open",
    "circuit_transitions", "circuit_fallbacks", "scheduled", "recurring_dispatched",
    "recurring_errors", "recurring_skipped", "quota_exceeded", "quota_warned", "quota_degraded",
    "quota_notified", "rule_errors", "grouped", "state_changed",
)


class GatewayMetrics:
    """Monotonic counters; :meth:`snapshot` copies them into a dict."""

    __slots__ = _COUNTERS

    def __init__(self) -> None:
        for name in _COUNTERS:
            setattr(self, name, 0)

    def snapshot(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in _COUNTERS}

    def __getitem__(self, name: str) -> int:
        value: int = getattr(self, name)
        return value

    def __repr__(self) -> str:
        nonzero: dict[str, Any] = {k: v for k, v in self.snapshot().items() if v}
        return f"GatewayMetrics({nonzero})"

"""Gateway counters (core-pipeline.md §15): plain integers, incremented inline."""

from __future__ import annotations

from typing import Any

_COUNTERS = (
    "dispatched", "executed", "deduplicated", "suppressed", "rerouted", "throttled", "failed",
    "pending_approval", "llm_guardrail_allowed", "llm_guardrail_denied", "llm_guardrail_errors",
    "chains_started", "chains_completed", "chains_failed", "chains_cancelled", "chains_timed_out",
    "circuit_open",
    "circuit_transitions", "circuit_fallbacks", "scheduled", "recurring_dispatched",
    "recurring_errors", "recurring_skipped", "quota_exceeded", "quota_warned", "quota_degraded",
    "quota_notified", "rule_errors", "grouped", "state_changed",
    "approvals_approved", "approvals_rejected", "approvals_expired", "rules_reloaded", "rules_reload_failed",
    "groups_flushed", "state_timeouts",
    "budget_downgraded", "budget_alerts",
)


class GatewayMetrics:
    """Monotonic counters; :meth:`snapshot` copies them into a dict."""

    __slots__ = _COUNTERS

    dispatched: int
    executed: int
    deduplicated: int
    suppressed: int
    rerouted: int
    throttled: int
    failed: int
    pending_approval: int
    llm_guardrail_allowed: int
    llm_guardrail_denied: int
    llm_guardrail_errors: int
    chains_started: int
    chains_completed: int
    chains_failed: int
    chains_cancelled: int
    chains_timed_out: int
    circuit_open: int
    circuit_transitions: int
    circuit_fallbacks: int
    scheduled: int
    recurring_dispatched: int
    recurring_errors: int
    recurring_skipped: int
    quota_exceeded: int
    quota_warned: int
    quota_degraded: int
    quota_notified: int
    rule_errors: int
    grouped: int
    state_changed: int
    groups_flushed: int
    state_timeouts: int
    budget_downgraded: int
    budget_alerts: int
    approvals_approved: int
    approvals_rejected: int
    approvals_expired: int
    rules_reloaded: int
    rules_reload_failed: int

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

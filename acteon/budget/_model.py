"""Budgets and spend (cost-aware routing): what a tenant may spend per window.

Costs are in whatever currency unit the application picks (one unit for every
provider and budget). The state store keeps spend as an integer count of
micro-units (1e-6), so concurrent processes add to it with one atomic
``increment`` and never round differently.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_serializer, field_validator

from acteon._exceptions import ConfigurationError
from acteon._timefmt import format_rfc3339
from acteon.quotas._model import QuotaWindow, first_error

MICRO = 1_000_000
DEFAULT_SPEND_WINDOW = QuotaWindow.MONTHLY
"""Window spend is tracked in for a (namespace, tenant) without a budget."""


def to_micro(amount: float) -> int:
    """A cost or limit in integer micro-units."""
    return round(amount * MICRO)


def from_micro(micro: int) -> float:
    return micro / MICRO


def check_cost(name: str, cost: Any) -> float:
    """A provider's cost as a float; anything but a finite non-negative number is refused."""
    if isinstance(cost, bool) or not isinstance(cost, int | float) or not cost >= 0 or cost == float("inf"):
        raise ConfigurationError(f"cost of provider '{name}' must be a non-negative number, got {cost!r}")
    return float(cost)


class BudgetPolicy(BaseModel):
    """A spending limit for one (namespace, tenant) per window, with automatic downgrades.

    ``downgrade`` maps an expensive provider to a cheaper one: once the
    remaining budget is smaller than the cost of the provider an action asks
    for, the action goes to the cheaper provider (following the map further
    while that one is not affordable either). ``alert_provider`` receives one
    ``budget_exhausted_notification`` per window, when spend first reaches the limit.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    namespace: str
    tenant: str
    limit: float = Field(gt=0)
    window: QuotaWindow = DEFAULT_SPEND_WINDOW
    downgrade: dict[str, str] = Field(default_factory=dict)
    alert_provider: str | None = None
    description: str | None = None

    @field_validator("namespace", "tenant")
    @classmethod
    def _scope(cls, value: str) -> str:
        if not value or ":" in value:
            raise ValueError(f"must be non-empty and must not contain ':', got {value!r}")
        return value

    @property
    def key(self) -> str:
        return f"{self.namespace}:{self.tenant}"

    @property
    def limit_micro(self) -> int:
        return to_micro(self.limit)

    def validate_routes(self, providers: Mapping[str, object]) -> None:
        """Refuse a zero window, self or circular downgrades and unknown cheaper providers."""
        if self.window.seconds <= 0:
            raise ConfigurationError(f"budget '{self.key}' has a zero-duration window")
        for source, target in self.downgrade.items():
            if source == target:
                raise ConfigurationError(f"budget '{self.key}' downgrades '{source}' to itself")
            if target not in providers:
                raise ConfigurationError(
                    f"budget '{self.key}' downgrades '{source}' to unknown provider '{target}'"
                )
        for start in self.downgrade:
            path = [start]
            current = self.downgrade[start]
            while current in self.downgrade:
                if current in path:
                    cycle = " → ".join([*path[path.index(current):], current])
                    raise ConfigurationError(f"budget '{self.key}' downgrade chain contains a cycle: {cycle}")
                path.append(current)
                current = self.downgrade[current]


class BudgetStatus(BaseModel):
    """Spend of one (namespace, tenant) in the current window, and its budget if it has one."""

    model_config = ConfigDict(frozen=True)

    namespace: str
    tenant: str
    spent: float
    limit: float | None
    remaining: float | None
    exhausted: bool
    window: QuotaWindow
    resets_at: datetime

    @field_serializer("resets_at")
    def _ser_time(self, value: datetime) -> str:
        return format_rfc3339(value)

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def rule_value(self) -> dict[str, Any]:
        """The ``budget`` map rule conditions read (``budget.remaining``, ``budget.spent``, ...)."""
        out = self.to_dict()
        out["has_budget"] = self.limit is not None
        return out


def coerce_budgets(budgets: Any) -> list[BudgetPolicy]:
    """Budgets from ``BudgetPolicy`` objects or dicts; errors name the entry and the field."""
    out: list[BudgetPolicy] = []
    for i, item in enumerate(budgets or ()):
        if isinstance(item, BudgetPolicy):
            out.append(item)
            continue
        try:
            out.append(BudgetPolicy.model_validate(item))
        except ValidationError as exc:
            raise ConfigurationError(f"budgets[{i}]: {first_error(exc)}") from exc
    return out

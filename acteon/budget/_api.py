"""Budget methods of the gateway: spend queries and runtime budget changes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from acteon.budget._model import BudgetPolicy, BudgetStatus, coerce_budgets

if TYPE_CHECKING:
    from acteon._clock import Clock
    from acteon.budget._router import CostRouter


class BudgetMixin:
    """``budget_status``, ``list_budgets``, ``set_budget`` and ``remove_budget`` on the gateway.

    Budgets live in the process (like providers): give every process the same
    ``budgets=[...]``. Spend is shared through the state store.
    """

    _costs: CostRouter
    _clock: Clock

    async def budget_status(self, namespace: str, tenant: str) -> BudgetStatus:
        """Spend of the pair in its current window, with its budget's limit and remainder if any."""
        return await self._costs.status(namespace, tenant, self._clock.now())

    def list_budgets(self) -> list[BudgetPolicy]:
        """The configured budgets, ordered by namespace and tenant."""
        return [self._costs.budgets[pair] for pair in sorted(self._costs.budgets)]

    def set_budget(self, budget: BudgetPolicy | Mapping[str, Any]) -> BudgetPolicy:
        """Add or replace the budget of a (namespace, tenant). Validated like ``budgets=[...]``."""
        (policy,) = coerce_budgets([budget])
        self._costs.set_budget(policy)
        return policy

    def remove_budget(self, namespace: str, tenant: str) -> bool:
        """Drop the pair's budget; ``False`` if it had none. Its spend keeps being metered."""
        return self._costs.budgets.pop((namespace, tenant), None) is not None

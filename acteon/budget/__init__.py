"""Cost-aware routing: provider costs, per-tenant spend, budgets and automatic downgrades.

::

    gw = AsyncGateway(
        providers=[premium, basic],
        provider_costs={"email-premium": 0.01, "email-basic": 0.001},
        budgets=[{"namespace": "notifications", "tenant": "acme", "limit": 50.0,
                  "window": "monthly", "downgrade": {"email-premium": "email-basic"}}],
    )
    status = await gw.budget_status("notifications", "acme")

Rules read the budget of the action's (namespace, tenant) as ``budget.remaining``,
``budget.spent``, ``budget.limit``, ``budget.exhausted``. See docs/cost-routing.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from acteon.budget._model import BudgetPolicy, BudgetStatus, coerce_budgets
from acteon.budget._router import ALERT_ACTION_TYPE, CostRouter, spend_key

if TYPE_CHECKING:
    from acteon._gateway import AsyncGateway


def attach(gateway: AsyncGateway, options: dict[str, Any]) -> None:
    """Set up costs and budgets (``provider_costs``, ``budgets``) and the ``budget`` rule identifier."""
    router = CostRouter(gateway, options.get("provider_costs"), coerce_budgets(options.get("budgets")))
    gateway._costs = router
    gateway._rule_lookups["budget"] = router.rule_value


__all__ = ["ALERT_ACTION_TYPE", "BudgetPolicy", "BudgetStatus", "attach", "spend_key"]

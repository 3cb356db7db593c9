"""Cost-aware routing: spend metering, budget downgrades, budget alerts and the ``budget`` rule value.

Three gateway hooks carry it:

- an outcome hook meters every executed action: the cost of the provider that
  ran it (``Executed`` → the action's provider, ``Rerouted`` → the new one) is
  added to the (namespace, tenant) spend counter of the current window with
  one atomic increment; the increment that first reaches the budget's limit
  sends the alert, so exactly one process sends it, without a claim;
- a route hook runs before an allowed action executes: when the tenant's
  remaining budget is smaller than the requested provider's cost and the
  budget names a cheaper provider for it, the action goes there instead,
  exactly like a ``reroute`` verdict (outcome ``Rerouted``);
- a rule lookup answers ``budget.*`` in rule conditions, read from the store
  only by rules that use it.

Budgets are soft: actions already past the check when the limit is reached
still run and are counted (use a quota or a rule to refuse work).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import datetime
from time import perf_counter
from typing import TYPE_CHECKING, Any

from acteon._action import Action
from acteon._exceptions import StateError
from acteon._timefmt import format_rfc3339
from acteon.budget._model import (
    DEFAULT_SPEND_WINDOW,
    BudgetPolicy,
    BudgetStatus,
    check_cost,
    from_micro,
    to_micro,
)
from acteon.outcomes import Executed, Outcome, Rerouted
from acteon.quotas._model import QuotaWindow, WindowBucket

if TYPE_CHECKING:
    from acteon._gateway import AsyncGateway

_log = logging.getLogger("acteon.budget")

ALERT_ACTION_TYPE = "budget_exhausted_notification"


def spend_key(namespace: str, tenant: str, window: QuotaWindow, index: int) -> str:
    """``{ns}:{tenant}:cost_spend:{window label}:{index}``: micro-units spent in one window."""
    return f"{namespace}:{tenant}:cost_spend:{window.label}:{index}"


class CostRouter:
    """Provider costs and budgets of one gateway."""

    def __init__(
        self, gateway: AsyncGateway, costs: Mapping[str, Any] | None, budgets: Sequence[BudgetPolicy]
    ) -> None:
        self._gw = gateway
        self._costs: dict[str, int] = {name: to_micro(check_cost(name, c)) for name, c in (costs or {}).items()}
        self.budgets: dict[tuple[str, str], BudgetPolicy] = {}
        self._metering = False
        self._routing = False
        for budget in budgets:
            self.set_budget(budget)
        self.install_hooks()

    # ------------------------------------------------------------------ configuration

    def cost_micro(self, provider: str) -> int:
        """A provider's cost per action: the ``provider_costs`` entry, else its ``cost`` attribute, else 0."""
        cost = self._costs.get(provider)
        if cost is not None:
            return cost
        attr = getattr(self._gw._providers.get(provider), "cost", None)
        return 0 if attr is None else to_micro(check_cost(provider, attr))

    def has_costs(self) -> bool:
        return any(self._costs.values()) or any(
            getattr(p, "cost", None) for p in self._gw._providers.values()
        )

    def set_budget(self, budget: BudgetPolicy) -> None:
        budget.validate_routes(self._gw._providers)
        self.budgets[(budget.namespace, budget.tenant)] = budget
        self.install_hooks()

    def install_hooks(self) -> None:
        """Hook into the gateway only where there is something to do, so others pay nothing."""
        gw = self._gw
        if not self._metering and (self.has_costs() or self.budgets):
            gw._outcome_hooks.append(self.meter)
            self._metering = True
        if not self._routing and any(b.downgrade for b in self.budgets.values()):
            gw._route_hooks.append(self.route)
            self._routing = True

    def window_for(self, namespace: str, tenant: str) -> QuotaWindow:
        budget = self.budgets.get((namespace, tenant))
        return DEFAULT_SPEND_WINDOW if budget is None else budget.window

    # ------------------------------------------------------------------ spend

    async def spent_micro(self, namespace: str, tenant: str, now: datetime) -> tuple[int, QuotaWindow, WindowBucket]:
        window = self.window_for(namespace, tenant)
        bucket = window.bucket(now)
        raw = await self._gw._state.get(spend_key(namespace, tenant, window, bucket.index))
        return (int(raw) if raw is not None else 0), window, bucket

    async def status(self, namespace: str, tenant: str, now: datetime) -> BudgetStatus:
        spent, window, bucket = await self.spent_micro(namespace, tenant, now)
        budget = self.budgets.get((namespace, tenant))
        limit = None if budget is None else budget.limit_micro
        return BudgetStatus(
            namespace=namespace,
            tenant=tenant,
            spent=from_micro(spent),
            limit=None if budget is None else budget.limit,
            remaining=None if limit is None else from_micro(max(limit - spent, 0)),
            exhausted=limit is not None and spent >= limit,
            window=window,
            resets_at=bucket.end,
        )

    async def rule_value(self, action: Action, now: datetime) -> dict[str, Any]:
        """The ``budget`` identifier of rule conditions, for the action's (namespace, tenant)."""
        return (await self.status(action.namespace, action.tenant, now)).rule_value()

    async def meter(self, action: Action, outcome: Outcome) -> None:
        """Outcome hook: add the executing provider's cost to the pair's spend."""
        kind = type(outcome)
        if kind is Executed:
            provider = action.provider
        elif kind is Rerouted:
            provider = outcome.new_provider  # type: ignore[attr-defined]
        else:
            return
        cost = self.cost_micro(provider)
        if cost <= 0:
            return
        ns, tenant = action.namespace, action.tenant
        now = self._gw._clock.now()
        window = self.window_for(ns, tenant)
        bucket = window.bucket(now)
        key = spend_key(ns, tenant, window, bucket.index)
        try:
            total = await self._gw._state.increment_window(key, cost, int(bucket.end.timestamp() * 1000))
        except StateError as exc:
            _log.warning("spend counter %s unavailable (%s); %s not metered", key, exc, action.id)
            return
        budget = self.budgets.get((ns, tenant))
        if budget is not None and budget.alert_provider and total - cost < budget.limit_micro <= total:
            await self._alert(budget, total, bucket, action, now)

    async def _alert(
        self, budget: BudgetPolicy, total: int, bucket: WindowBucket, cause: Action, now: datetime
    ) -> None:
        """Tell the budget's alert provider that the window's budget is used up (once per window)."""
        gw = self._gw
        gw._metrics.budget_alerts += 1
        note = Action(
            namespace=budget.namespace,
            tenant=budget.tenant,
            provider=budget.alert_provider or "",
            action_type=ALERT_ACTION_TYPE,
            payload={
                "namespace": budget.namespace,
                "tenant": budget.tenant,
                "limit": budget.limit,
                "spent": from_micro(total),
                "window": budget.window.label,
                "window_start": format_rfc3339(bucket.start),
                "resets_at": format_rfc3339(bucket.end),
                "action_id": cause.id,
            },
            created_at=now,
        )
        started = perf_counter()
        outcome = await gw._execute_action(note)
        await gw._finish(note, "allow", None, outcome, now, started, None)

    # ------------------------------------------------------------------ routing

    async def route(self, action: Action) -> Outcome | None:
        """Route hook: the downgraded outcome, or ``None`` to execute as asked."""
        budget = self.budgets.get((action.namespace, action.tenant))
        if budget is None or action.provider not in budget.downgrade:
            return None
        try:
            spent, _, _ = await self.spent_micro(action.namespace, action.tenant, self._gw._clock.now())
        except StateError as exc:
            _log.warning("spend of %s unavailable (%s); not downgrading", budget.key, exc)
            return None
        remaining = budget.limit_micro - spent
        target = action.provider
        # Validated acyclic at set-up, so this walk ends.
        while target in budget.downgrade and remaining < self.cost_micro(target):
            target = budget.downgrade[target]
        if target == action.provider:
            return None
        self._gw._metrics.budget_downgraded += 1
        return await self._gw._reroute(action, target)

"""Cost-aware routing: provider costs, spend per (namespace, tenant), budgets, downgrades, alerts, rules."""

from __future__ import annotations

from typing import Any

import pytest

from acteon import AsyncGateway, ConfigurationError, StateBackendError
from acteon.audit import AuditQuery
from acteon.budget import ALERT_ACTION_TYPE, BudgetPolicy, spend_key
from acteon.outcomes import Executed, Rerouted, Suppressed
from acteon.quotas import QuotaWindow
from acteon.state import MemoryStateStore
from acteon.testing import FailingProvider, RecordingProvider
from tests.quotas.conftest import Env, act

pytestmark = pytest.mark.anyio

PROVIDERS = ("premium", "standard", "basic", "ops", "free")
COSTS = {"premium": 0.01, "standard": 0.004, "basic": 0.001}


def budget(limit: float, **extra: Any) -> dict[str, Any]:
    return {"namespace": "ns", "tenant": "tenant-1", "limit": limit, **extra}


def env(**kw: Any) -> Env:
    kw.setdefault("provider_costs", COSTS)
    return Env(providers=PROVIDERS, **kw)


async def test_spend_is_metered_per_tenant_in_micro_units() -> None:
    async with env() as e:
        for _ in range(3):
            await e.gw.dispatch(act(provider="premium"))
        await e.gw.dispatch(act(provider="basic"))
        await e.gw.dispatch(act(provider="free"))  # no cost configured: nothing metered
        await e.gw.dispatch(act(provider="premium", tenant="other"))
        status = await e.gw.budget_status("ns", "tenant-1")
        assert status.spent == pytest.approx(0.031)
        assert (status.limit, status.remaining, status.exhausted) == (None, None, False)
        assert status.window == QuotaWindow.MONTHLY  # no budget: spend is kept per 30-day window
        assert (await e.gw.budget_status("ns", "other")).spent == pytest.approx(0.01)
        index = QuotaWindow.MONTHLY.bucket(e.clock.now()).index
        assert await e.state.get(spend_key("ns", "tenant-1", QuotaWindow.MONTHLY, index)) == "31000"


async def test_only_executions_cost_money() -> None:
    rules = "rules:\n  - {name: hush, condition: {field: action.action_type, eq: quiet}, action: {type: suppress}}\n"
    async with Env(providers=("premium",), rules=rules, provider_costs=COSTS) as e:
        e.gw.register_provider(FailingProvider("premium", kind="non_retryable"))
        assert (await e.gw.dispatch(act(provider="premium"))).kind == "failed"
        out = await e.gw.dispatch(act(provider="premium").model_copy(update={"action_type": "quiet"}))
        assert isinstance(out, Suppressed)
        assert (await e.gw.budget_status("ns", "tenant-1")).spent == 0


class Costly(RecordingProvider):
    cost = 0.5


async def test_provider_cost_attribute() -> None:
    async with AsyncGateway(providers=[Costly("premium")], background=False) as gw:
        await gw.dispatch(act(provider="premium"))
        assert (await gw.budget_status("ns", "tenant-1")).spent == 0.5
    # provider_costs wins over the attribute
    async with AsyncGateway(providers=[Costly("premium")], provider_costs={"premium": 0.25}, background=False) as gw:
        await gw.dispatch(act(provider="premium"))
        assert (await gw.budget_status("ns", "tenant-1")).spent == 0.25


async def test_downgrade_when_the_budget_cannot_pay_for_the_provider() -> None:
    async with env(budgets=[budget(0.025, window="daily", downgrade={"premium": "basic"})]) as e:
        outcomes = [await e.gw.dispatch(act(provider="premium")) for _ in range(4)]
        assert [type(o) for o in outcomes] == [Executed, Executed, Rerouted, Rerouted]
        rerouted = outcomes[2]
        assert isinstance(rerouted, Rerouted)
        assert (rerouted.original_provider, rerouted.new_provider) == ("premium", "basic")
        assert (len(e["premium"].actions), len(e["basic"].actions)) == (2, 2)
        status = await e.gw.budget_status("ns", "tenant-1")
        assert status.spent == pytest.approx(0.022)
        assert status.remaining == pytest.approx(0.003)
        assert e.counters("budget_downgraded", "rerouted", "executed") == {
            "budget_downgraded": 2, "rerouted": 2, "executed": 2}
        page = await e.audit.query(AuditQuery(namespace="ns", outcome="rerouted"))
        assert len(page.records) == 2
        # a new window brings the budget back
        e.clock.advance(86400)
        assert isinstance(await e.gw.dispatch(act(provider="premium")), Executed)


async def test_downgrade_follows_the_chain_while_unaffordable() -> None:
    chain = {"premium": "standard", "standard": "basic"}
    async with env(budgets=[budget(0.015, downgrade=chain)]) as e:
        kinds = []
        for _ in range(4):
            out = await e.gw.dispatch(act(provider="premium"))
            kinds.append(out.new_provider if isinstance(out, Rerouted) else out.kind)  # type: ignore[attr-defined]
        # 0.010 spent -> 0.005 left: standard (0.004) fits; then 0.001 left: basic; then basic again
        assert kinds == ["executed", "standard", "basic", "basic"]


async def test_unlisted_providers_and_other_tenants_are_untouched() -> None:
    async with env(budgets=[budget(0.001, downgrade={"premium": "basic"})]) as e:
        await e.gw.dispatch(act(provider="premium"))
        assert isinstance(await e.gw.dispatch(act(provider="standard")), Executed)
        assert isinstance(await e.gw.dispatch(act(provider="premium", tenant="other")), Executed)
        assert isinstance(await e.gw.dispatch(act(provider="premium")), Rerouted)


async def test_spend_read_errors_do_not_stop_traffic() -> None:
    class BrokenReads(MemoryStateStore):
        async def get(self, key: object) -> str | None:
            if ":cost_spend:" in str(key):
                raise StateBackendError("down")
            return await super().get(key)  # type: ignore[arg-type]

    async with env(state=BrokenReads(), budgets=[budget(0.001, downgrade={"premium": "basic"})]) as e:
        assert [(await e.gw.dispatch(act(provider="premium"))).kind for _ in range(2)] == ["executed"] * 2


async def test_alert_is_sent_once_when_the_limit_is_reached() -> None:
    async with env(budgets=[budget(0.03, alert_provider="ops")]) as e:
        for _ in range(6):
            await e.gw.dispatch(act(provider="premium"))  # budgets without downgrade never stop traffic
        assert len(e["premium"].actions) == 6
        alerts = e["ops"].actions
        assert len(alerts) == 1
        assert alerts[0].action_type == ALERT_ACTION_TYPE
        assert alerts[0].payload["limit"] == 0.03
        assert alerts[0].payload["spent"] == pytest.approx(0.03)
        assert e.counters("budget_alerts") == {"budget_alerts": 1}
        page = await e.audit.query(AuditQuery(action_type=ALERT_ACTION_TYPE))
        assert len(page.records) == 1


async def test_rules_read_the_remaining_budget() -> None:
    rules = """
rules:
  - name: cheap-when-low
    condition:
      all:
        - {field: action.provider, eq: premium}
        - {field: budget.remaining, lt: 0.015}
    action: {type: reroute, target_provider: standard}
"""
    async with env(rules=rules, budgets=[budget(0.03)]) as e:
        outs = [await e.gw.dispatch(act(provider="premium")) for _ in range(3)]
        assert [o.kind for o in outs] == ["executed", "executed", "rerouted"]
        # reroute verdicts are metered on the provider that ran
        assert (await e.gw.budget_status("ns", "tenant-1")).spent == pytest.approx(0.024)


async def test_cel_rules_read_budget_fields_and_unbudgeted_tenants_have_nulls() -> None:
    cel = """
rules:
  - name: over
    condition: 'budget.has_budget && budget.spent >= budget.limit'
    action: {type: suppress}
  - name: no-budget
    condition: 'budget.limit == null && budget.exhausted == false'
    action: {type: deny}
"""
    from acteon.rules import load_rules

    async with env(rules=load_rules(cel, format="cel"), budgets=[budget(0.01)]) as e:
        assert (await e.gw.dispatch(act(provider="premium"))).kind == "executed"
        assert await e.gw.dispatch(act(provider="premium")) == Suppressed("over")
        assert await e.gw.dispatch(act(provider="premium", tenant="other")) == Suppressed("no-budget")


async def test_rules_not_reading_budget_never_touch_the_spend_counter() -> None:
    class CountingReads(MemoryStateStore):
        reads = 0

        async def get(self, key: object) -> str | None:
            if ":cost_spend:" in str(key):
                CountingReads.reads += 1
            return await super().get(key)  # type: ignore[arg-type]

    rules = "rules:\n  - {name: r, condition: {field: action.action_type, eq: other}, action: {type: suppress}}\n"
    async with env(rules=rules, state=CountingReads()) as e:
        for _ in range(5):
            await e.gw.dispatch(act(provider="premium"))
        assert CountingReads.reads == 0


async def test_playground_and_dry_run_see_the_budget() -> None:
    rules = "rules:\n  - {name: low, condition: {field: budget.exhausted, eq: true}, action: {type: reroute, target_provider: basic}}\n"
    async with env(rules=rules, budgets=[budget(0.01)]) as e:
        await e.gw.dispatch(act(provider="premium"))
        dry = await e.gw.dispatch(act(provider="premium"), dry_run=True)
        assert dry.to_wire()["DryRun"]["would_be_provider"] == "basic"
        trace = await e.gw.evaluate_rules(act(provider="premium"))
        assert trace.matched_rule == "low"


async def test_runtime_budget_changes() -> None:
    async with env() as e:
        assert e.gw.list_budgets() == []
        e.gw.set_budget(budget(0.005, downgrade={"premium": "basic"}))
        await e.gw.dispatch(act(provider="premium"))
        assert isinstance(await e.gw.dispatch(act(provider="premium")), Rerouted)
        assert [b.limit for b in e.gw.list_budgets()] == [0.005]
        assert e.gw.remove_budget("ns", "tenant-1") is True
        assert e.gw.remove_budget("ns", "tenant-1") is False
        assert isinstance(await e.gw.dispatch(act(provider="premium")), Executed)


def test_budget_validation() -> None:
    def build(**kw: Any) -> None:
        Env(providers=PROVIDERS, provider_costs=COSTS, **kw)

    with pytest.raises(ConfigurationError, match="downgrades 'premium' to unknown provider 'pigeon'"):
        build(budgets=[budget(1.0, downgrade={"premium": "pigeon"})])
    with pytest.raises(ConfigurationError, match="downgrades 'premium' to itself"):
        build(budgets=[budget(1.0, downgrade={"premium": "premium"})])
    with pytest.raises(ConfigurationError, match="cycle: premium → basic → premium"):
        build(budgets=[budget(1.0, downgrade={"premium": "basic", "basic": "premium"})])
    with pytest.raises(ConfigurationError, match="zero-duration window"):
        build(budgets=[budget(1.0, window={"custom": {"seconds": 0}})])
    with pytest.raises(ConfigurationError, match=r"budgets\[0\]: limit"):
        build(budgets=[budget(0)])
    with pytest.raises(ConfigurationError, match=r"budgets\[0\]: downgrad"):
        build(budgets=[{**budget(1.0), "downgrad": {}}])
    with pytest.raises(ConfigurationError, match="cost of provider 'premium' must be a non-negative number"):
        Env(providers=PROVIDERS, provider_costs={"premium": -1})
    assert BudgetPolicy(namespace="a", tenant="b", limit=2).window == QuotaWindow.MONTHLY


async def test_no_costs_and_no_budgets_install_no_hooks() -> None:
    async with Env() as e:
        assert e.gw._route_hooks == [] and e.gw._outcome_hooks == []
        assert (await e.gw.budget_status("ns", "tenant-1")).spent == 0

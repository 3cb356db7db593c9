"""Quota policy CRUD, persistence, the policy cache (§10.3, §10.5, D12), usage, config and the blocking twin."""

from __future__ import annotations

import json
from typing import Any

import pytest

from acteon import AsyncGateway, ConfigurationError, Gateway
from acteon.quotas import (
    InvalidQuotaPolicy,
    InvalidQuotaWindow,
    QuotaPolicy,
    QuotaPolicyConflict,
    QuotaPolicyNotFound,
    QuotaWindow,
    index_key,
    policy_key,
)
from acteon.state import MemoryStateStore
from acteon.testing import FakeClock, RecordingProvider
from tests.quotas.conftest import START, Env, act, quota

pytestmark = pytest.mark.anyio


def body(max_actions: int = 2, tenant: str = "tenant-1", **extra: Any) -> dict[str, Any]:
    return {"namespace": "ns", "tenant": tenant, "max_actions": max_actions, "window": "hourly",
            "overage_behavior": "block", **extra}


async def test_create_stores_the_upstream_json_and_enforces_at_once() -> None:
    async with Env() as env:
        created = await env.gw.create_quota_policy(body(description="trial", labels={"plan": "free"}))
        assert created.enabled and created.created_at == created.updated_at == env.clock.now()
        stored = json.loads(await env.state.get(f"_system:_quotas:quota:{created.id}") or "")
        assert stored == {
            "id": created.id, "namespace": "ns", "tenant": "tenant-1", "max_actions": 2, "window": "hourly",
            "overage_behavior": "block", "enabled": True, "created_at": START, "updated_at": START,
            "description": "trial", "labels": {"plan": "free"},
        }
        assert await env.state.get("_system:_quotas:quota:idx:ns:tenant-1") == created.id
        assert await env.run(3) == ["executed", "executed", "quota_exceeded"]


async def test_one_policy_per_pair() -> None:
    async with Env() as env:
        await env.gw.create_quota_policy(body())
        with pytest.raises(QuotaPolicyConflict) as err:
            await env.gw.create_quota_policy(body(max_actions=9))
        assert str(err.value) == "a quota policy already exists for namespace=ns tenant=tenant-1"
        await env.gw.create_quota_policy(body(tenant="other"))  # another pair is fine


async def test_an_orphaned_index_does_not_block_a_new_policy() -> None:
    async with Env() as env:
        await env.state.set(index_key("ns", "tenant-1"), "gone")  # a create that died half-way
        created = await env.gw.create_quota_policy(body())
        assert await env.state.get(index_key("ns", "tenant-1")) == created.id


async def test_a_policy_without_its_index_is_not_listed() -> None:
    async with Env() as env:
        orphan = QuotaPolicy.model_validate(body())
        await env.state.set(policy_key(orphan.id), orphan.model_dump_json())  # a create that lost its race
        assert await env.gw.list_quota_policies() == []
        assert await env.run(5) == ["executed"] * 5  # and not enforced


async def test_create_validates_its_input() -> None:
    async with Env() as env:
        with pytest.raises(InvalidQuotaWindow) as bad_window:
            await env.gw.create_quota_policy(body(window="0"))
        assert str(bad_window.value) == "invalid window: custom seconds must be greater than 0"
        with pytest.raises(InvalidQuotaWindow, match=r"invalid window: yearly \(expected"):
            await env.gw.create_quota_policy(body(window="yearly"))
        with pytest.raises(InvalidQuotaPolicy, match="max_actions = 0"):
            await env.gw.create_quota_policy(body(max_actions=0))
        with pytest.raises(InvalidQuotaPolicy, match="invalid overage_behavior"):
            await env.gw.create_quota_policy(body(overage_behavior={"degrade": {}}))
        with pytest.raises(InvalidQuotaPolicy, match="namespace"):
            await env.gw.create_quota_policy({"tenant": "t", "max_actions": 1, "window": "daily",
                                              "overage_behavior": "warn"})
        assert await env.gw.list_quota_policies() == []
        # a window given as seconds (API string form) becomes a custom window
        created = await env.gw.create_quota_policy(body(window="7200"))
        assert created.window == QuotaWindow.custom(7200)
        assert created.to_wire()["window"] == {"custom": {"seconds": 7200}}


async def test_get_list_update_delete() -> None:
    async with Env() as env:
        a = await env.gw.create_quota_policy(body(tenant="a"))
        env.clock.advance(10)
        b = await env.gw.create_quota_policy(body(tenant="b"))
        c = await env.gw.create_quota_policy(body(tenant="c", namespace="other"))
        assert await env.gw.get_quota_policy(a.id) == a
        assert await env.gw.get_quota_policy("nope") is None
        assert await env.gw.get_quota_policy("idx:ns:a") is None
        assert [p.id for p in await env.gw.list_quota_policies()] == [a.id, b.id, c.id]
        assert [p.id for p in await env.gw.list_quota_policies(namespace="ns")] == [a.id, b.id]
        assert [p.id for p in await env.gw.list_quota_policies(tenant="b")] == [b.id]
        assert [p.id for p in await env.gw.list_quota_policies(limit=1, offset=1)] == [b.id]

        env.clock.advance(5)
        updated = await env.gw.update_quota_policy(
            a.id, max_actions=1, window="daily", overage_behavior={"notify": {"target": "ops"}},
            description="tightened", labels={"x": "y"},
        )
        assert (updated.max_actions, updated.window, updated.overage_behavior.target) == (1, QuotaWindow.DAILY, "ops")
        assert (updated.namespace, updated.tenant, updated.created_at) == ("ns", "a", a.created_at)
        assert updated.updated_at == env.clock.now() != a.updated_at
        assert await env.gw.get_quota_policy(a.id) == updated
        # the live gateway uses the new policy at once
        assert await env.run(2, tenant="a") == ["executed", "executed"]
        assert len(env["ops"].actions) == 1
        disabled = await env.gw.update_quota_policy(a.id, enabled=False)
        assert disabled.enabled is False and disabled.max_actions == 1  # untouched fields stay
        with pytest.raises(QuotaPolicyNotFound) as missing:
            await env.gw.update_quota_policy("nope", max_actions=3)
        assert str(missing.value) == "quota policy not found: nope"
        with pytest.raises(InvalidQuotaWindow):
            await env.gw.update_quota_policy(b.id, window="fortnightly")

        await env.gw.delete_quota_policy(b.id)
        assert await env.state.get(policy_key(b.id)) is None
        assert await env.state.get(index_key("ns", "b")) is None
        assert await env.run(5, tenant="b") == ["executed"] * 5  # no longer enforced
        with pytest.raises(QuotaPolicyNotFound):
            await env.gw.delete_quota_policy(b.id)
        # the pair is free again
        await env.gw.create_quota_policy(body(tenant="b"))


async def test_usage_query() -> None:
    async with Env() as env:
        assert await env.gw.quota_usage("ns", "tenant-1") is None
        await env.gw.create_quota_policy(body(max_actions=5, overage_behavior="warn"))
        await env.run(7)
        usage = await env.gw.quota_usage("ns", "tenant-1")
        assert usage is not None
        assert usage.to_wire() == {
            "tenant": "tenant-1", "namespace": "ns", "used": 7, "limit": 5, "remaining": 0, "window": "hourly",
            "resets_at": "2026-02-10T15:00:00Z", "overage_behavior": "warn",
        }


# --------------------------------------------------------------------------- cache (§10.3, D12)


async def test_build_time_policies_never_expire_from_the_cache() -> None:
    async with Env(quota_policies=[quota(2, window="daily")]) as env:
        assert await env.run(1) == ["executed"]
        env.clock.advance(3 * 3600)  # upstream stopped enforcing 60 s after build
        assert await env.run(2) == ["executed", "quota_exceeded"]


async def two_gateways(store: MemoryStateStore, clock: FakeClock, **kw: Any) -> tuple[AsyncGateway, AsyncGateway]:
    def one() -> AsyncGateway:
        return AsyncGateway(state=store, providers=[RecordingProvider("email")], clock=clock, background=False, **kw)

    return one(), one()


async def test_other_processes_see_stored_changes_within_sixty_seconds() -> None:
    clock = FakeClock(START)
    store = MemoryStateStore()
    writer, reader = await two_gateways(store, clock)
    async with writer, reader:
        assert (await reader.dispatch(act())).kind == "executed"  # caches "no policy"
        created = await writer.create_quota_policy(body(max_actions=1))
        clock.advance(59)
        assert (await reader.dispatch(act())).kind == "executed"  # still the cached absence
        clock.advance(1)
        # re-read after 60 s: from now on the reader counts and limits
        assert [(await reader.dispatch(act())).kind for _ in range(2)] == ["executed", "quota_exceeded"]
        await writer.update_quota_policy(created.id, max_actions=10)
        assert (await writer.dispatch(act())).kind == "executed"  # the writer's cache is refreshed at once
        assert (await reader.dispatch(act())).kind == "quota_exceeded"
        clock.advance(60)
        assert (await reader.dispatch(act())).kind == "executed"
        await writer.delete_quota_policy(created.id)
        clock.advance(60)
        assert (await reader.quota_usage("ns", "tenant-1")) is None


async def test_a_stored_policy_overrides_a_build_time_one() -> None:
    async with Env(quota_policies=[quota(100, id="static")]) as env:
        assert [p.id for p in await env.gw.list_quota_policies()] == ["static"]
        stored = await env.gw.create_quota_policy(body(max_actions=1))
        assert [p.id for p in await env.gw.list_quota_policies()] == [stored.id]
        assert await env.run(2) == ["executed", "quota_exceeded"]
        await env.gw.delete_quota_policy(stored.id)
        assert await env.run(2) == ["executed", "executed"]  # the build-time policy applies again
        assert (await env.gw.quota_usage("ns", "tenant-1")).limit == 100  # type: ignore[union-attr]


async def test_build_time_policies_can_be_changed_in_process() -> None:
    async with Env(quota_policies=[quota(100, id="static")]) as env:
        assert (await env.gw.get_quota_policy("static")).max_actions == 100  # type: ignore[union-attr]
        changed = await env.gw.update_quota_policy("static", max_actions=1)
        assert changed.max_actions == 1
        assert await env.state.get(policy_key("static")) is None  # not persisted
        assert await env.run(2) == ["executed", "quota_exceeded"]
        await env.gw.delete_quota_policy("static")
        assert await env.run(2) == ["executed", "executed"]
        assert await env.gw.list_quota_policies() == []


async def test_corrupt_policies_are_skipped_in_listings() -> None:
    async with Env() as env:
        good = await env.gw.create_quota_policy(body())
        await env.state.set(policy_key("junk"), "{")
        assert [p.id for p in await env.gw.list_quota_policies()] == [good.id]


# --------------------------------------------------------------------------- config and blocking twin


def test_config_sections(tmp_path: Any) -> None:
    config = tmp_path / "acteon.toml"
    config.write_text(
        """
[quotas]
enabled = true
[[quotas.policies]]
namespace = "ns"
tenant = "tenant-1"
max_actions = 1
window = "daily"
overage_behavior = { degrade = { fallback_provider = "cheap" } }

[[providers]]
name = "email"
type = "log"
cost = 0.01

[[providers]]
name = "cheap"
type = "log"
cost = 0.001

[[budgets]]
namespace = "ns"
tenant = "tenant-1"
limit = 5.0
downgrade = { email = "cheap" }
"""
    )
    gw = Gateway.from_config(config, background=False)
    with gw:
        policy = gw.list_quota_policies()[0]
        assert policy.overage_behavior.fallback_provider == "cheap"
        assert [gw.dispatch(act()).kind for _ in range(2)] == ["executed", "executed"]
        assert gw.metrics.snapshot()["quota_degraded"] == 1
        status = gw.budget_status("ns", "tenant-1")
        assert (status.spent, status.limit) == (0.011, 5.0)
        assert [b.downgrade for b in gw.list_budgets()] == [{"email": "cheap"}]


def test_config_errors_name_the_section() -> None:
    with pytest.raises(ConfigurationError, match=r"unknown \[quotas\] keys: polices"):
        Gateway.from_config({"quotas": {"polices": []}})
    with pytest.raises(ConfigurationError, match=r"\[\[budgets\]\] must be an array of tables"):
        Gateway.from_config({"budgets": {"limit": 1}})


def test_blocking_twin() -> None:
    with Gateway(providers=[RecordingProvider("email")], clock=FakeClock(START), background=False) as gw:
        created = gw.create_quota_policy(body(max_actions=1))
        assert gw.get_quota_policy(created.id) == created
        assert [gw.dispatch(act()).kind for _ in range(2)] == ["executed", "quota_exceeded"]
        assert gw.quota_usage("ns", "tenant-1").used == 1  # type: ignore[union-attr]
        assert gw.update_quota_policy(created.id, max_actions=3).max_actions == 3
        assert [p.id for p in gw.list_quota_policies(namespace="ns")] == [created.id]
        gw.delete_quota_policy(created.id)
        assert gw.get_quota_policy(created.id) is None
        assert isinstance(created, QuotaPolicy)

"""Quota enforcement in the pipeline: core-pipeline.md §10.3-10.4 and §22 scenarios 43-49, with D12.

D12 changes three upstream expectations: a blocked outcome reports the true
usage (the count after the refused action was rolled back), ``degrade`` really
executes on the fallback provider, and ``notify`` really sends a notification.
"""

from __future__ import annotations

import pytest

from acteon import StateBackendError
from acteon.audit import AuditQuery
from acteon.outcomes import DryRun, Executed, QuotaExceeded, Suppressed
from acteon.quotas import NOTIFICATION_ACTION_TYPE, QuotaPolicy, quota_exempt
from acteon.state import MemoryStateStore
from tests.quotas.conftest import Env, act, quota

pytestmark = pytest.mark.anyio

RULES_SUPPRESS_ALL = "rules:\n  - {name: hush, condition: {all: []}, action: {type: suppress}}\n"


async def test_43_block_reports_true_usage() -> None:
    async with Env(quota_policies=[quota(3)]) as env:
        assert await env.run(3) == ["executed"] * 3
        blocked = await env.gw.dispatch(act())
        assert blocked == QuotaExceeded("tenant-1", 3, 3, "block")  # upstream said used=4 (D12)
        assert blocked.to_wire() == {
            "QuotaExceeded": {"tenant": "tenant-1", "limit": 3, "used": 3, "overage_behavior": "block"}}
        assert env.counters("executed", "quota_exceeded") == {"executed": 3, "quota_exceeded": 1}
        assert len(env["email"].actions) == 3


async def test_44_warn_lets_everything_through() -> None:
    async with Env(quota_policies=[quota(2, "warn")]) as env:
        assert await env.run(3) == ["executed"] * 3
        assert env.counters("quota_warned", "quota_exceeded") == {"quota_warned": 1, "quota_exceeded": 0}


async def test_45_under_the_limit_and_disabled_policies_do_nothing() -> None:
    async with Env(quota_policies=[quota(10)]) as env:
        assert await env.run(5) == ["executed"] * 5
        counters = env.counters("quota_exceeded", "quota_warned", "quota_degraded", "quota_notified")
        assert set(counters.values()) == {0}
    async with Env(quota_policies=[quota(2, enabled=False)]) as env:
        assert await env.run(5) == ["executed"] * 5
        assert (await env.gw.quota_usage("ns", "tenant-1")).used == 0  # type: ignore[union-attr]


async def test_46_tenants_are_counted_separately() -> None:
    async with Env(quota_policies=[quota(2, tenant="a"), quota(3, tenant="b")]) as env:
        assert await env.run(3, tenant="a") == ["executed", "executed", "quota_exceeded"]
        assert await env.run(4, tenant="b") == ["executed"] * 3 + ["quota_exceeded"]
        assert env.counters("executed", "quota_exceeded") == {"executed": 5, "quota_exceeded": 2}


async def test_47_degrade_really_executes_on_the_fallback() -> None:
    async with Env(quota_policies=[quota(2, {"degrade": {"fallback_provider": "sms-fallback"}})]) as env:
        outcomes = [await env.gw.dispatch(act()) for _ in range(3)]
        assert [o.kind for o in outcomes] == ["executed"] * 3
        assert len(env["email"].actions) == 2
        assert len(env["sms-fallback"].actions) == 1  # upstream returned QuotaExceeded here (D12)
        assert env["sms-fallback"].actions[0].provider == "sms-fallback"
        assert env.counters("quota_degraded", "quota_exceeded") == {"quota_degraded": 1, "quota_exceeded": 0}
        # the audit and event of the degraded dispatch name the provider that ran it
        page = await env.audit.query(AuditQuery(namespace="ns", tenant="tenant-1"))
        assert sorted(r.provider for r in page.records) == ["email", "email", "sms-fallback"]


async def test_degrade_counts_toward_the_quota_and_rules_see_the_fallback() -> None:
    rules = ("rules:\n  - {name: only-email, condition: {field: action.provider, eq: sms-fallback},"
             " action: {type: suppress}}\n")
    async with Env(rules=rules, quota_policies=[quota(1, {"degrade": {"fallback_provider": "sms-fallback"}})]) as env:
        assert await env.run(2) == ["executed", "suppressed"]
        usage = await env.gw.quota_usage("ns", "tenant-1")
        assert usage is not None and usage.used == 2  # degraded actions run, so they count


async def test_degrade_without_a_registered_fallback_refuses() -> None:
    async with Env(quota_policies=[quota(1, {"degrade": {"fallback_provider": "pigeon"}})]) as env:
        assert await env.run(1) == ["executed"]
        assert await env.gw.dispatch(act()) == QuotaExceeded("tenant-1", 1, 1, "degrade:pigeon")
        assert env.counters("quota_degraded", "quota_exceeded") == {"quota_degraded": 0, "quota_exceeded": 1}


async def test_48_no_policy_and_dry_run() -> None:
    async with Env() as env:
        assert await env.run(10) == ["executed"] * 10
    async with Env(quota_policies=[quota(1)]) as env:
        assert await env.run(2) == ["executed", "quota_exceeded"]
        dry = await env.gw.dispatch(act(), dry_run=True)
        assert isinstance(dry, DryRun)
        assert env.counters("quota_exceeded") == {"quota_exceeded": 1}


async def test_dry_run_neither_counts_nor_checks() -> None:
    async with Env(quota_policies=[quota(2)]) as env:
        for _ in range(5):
            assert isinstance(await env.gw.dispatch(act(), dry_run=True), DryRun)
        assert (await env.gw.quota_usage("ns", "tenant-1")).used == 0  # type: ignore[union-attr]
        assert await env.run(2) == ["executed", "executed"]


async def test_49_simulation() -> None:
    async with Env(quota_policies=[quota(10)]) as env:
        outcomes = [await env.gw.dispatch(act()) for _ in range(15)]
        assert sum(isinstance(o, Executed) for o in outcomes) == 10
        blocked = [o for o in outcomes if isinstance(o, QuotaExceeded)]
        assert len(blocked) == 5
        assert {o.used for o in blocked} == {10}  # upstream: 11 each (D12)
    async with Env(quota_policies=[quota(100, "warn", window="daily")]) as env:
        assert await env.run(105) == ["executed"] * 105
        assert env.counters("quota_warned") == {"quota_warned": 5}
    async with Env(providers=("email", "log"), quota_policies=[quota(5, {"degrade": {"fallback_provider": "log"}})]) as env:
        assert await env.run(8) == ["executed"] * 8
        assert (len(env["email"].actions), len(env["log"].actions)) == (5, 3)
        assert env.counters("quota_degraded") == {"quota_degraded": 3}


async def test_quota_counts_before_rules_and_rules_never_run_when_blocked() -> None:
    async with Env(rules=RULES_SUPPRESS_ALL, quota_policies=[quota(2)]) as env:
        assert await env.run(3) == ["suppressed", "suppressed", "quota_exceeded"]
        # the blocked dispatch is audited with verdict allow and no rule
        page = await env.audit.query(AuditQuery(namespace="ns", outcome="quota_exceeded"))
        assert len(page.records) == 1
        record = page.records[0]
        assert (record.verdict, record.matched_rule) == ("allow", None)
        assert record.outcome_details == {"tenant": "tenant-1", "limit": 2, "used": 2, "overage_behavior": "block"}


async def test_blocked_dispatch_publishes_an_event() -> None:
    async with Env(quota_policies=[quota(1)]) as env:
        sub = env.gw.events(outcome="quota_exceeded")
        await env.run(2)
        event = await sub.__anext__()
        assert event.data["outcome"] == {
            "QuotaExceeded": {"tenant": "tenant-1", "limit": 1, "used": 1, "overage_behavior": "block"}}
        await sub.aclose()


async def test_window_rollover_resets_the_count() -> None:
    async with Env(quota_policies=[quota(2)]) as env:
        assert await env.run(3) == ["executed", "executed", "quota_exceeded"]
        usage = await env.gw.quota_usage("ns", "tenant-1")
        assert usage is not None and usage.resets_at.isoformat() == "2026-02-10T15:00:00+00:00"
        env.clock.set("2026-02-10T15:00:00Z")
        assert await env.run(3) == ["executed", "executed", "quota_exceeded"]


async def test_counter_key_and_ttl_in_the_store() -> None:
    async with Env(quota_policies=[quota(5)]) as env:
        await env.run(2)
        index = int(env.clock.time()) // 3600
        key = f"ns:tenant-1:quota_usage:ns:tenant-1:hourly:{index}"
        assert await env.state.get(key) == "2"
        env.clock.advance(3601)  # the counter's TTL is the window length
        assert await env.state.get(key) is None


async def test_notify_really_sends_once_per_window() -> None:
    async with Env(quota_policies=[quota(2, {"notify": {"target": "ops"}}, id="pol-1")]) as env:
        assert await env.run(5) == ["executed"] * 5  # notify never blocks
        notes = env["ops"].actions
        assert len(notes) == 1
        note = notes[0]
        assert (note.namespace, note.tenant, note.provider, note.action_type) == (
            "ns", "tenant-1", "ops", NOTIFICATION_ACTION_TYPE)
        assert note.payload["policy_id"] == "pol-1"
        assert (note.payload["limit"], note.payload["used"], note.payload["window"]) == (2, 3, "hourly")
        assert note.payload["resets_at"] == "2026-02-10T15:00:00Z"
        assert env.counters("quota_notified") == {"quota_notified": 3}
        assert len(env["email"].actions) == 5
        # the notification is itself audited, and does not count toward the quota
        page = await env.audit.query(AuditQuery(action_type=NOTIFICATION_ACTION_TYPE))
        assert [r.outcome for r in page.records] == ["executed"]
        assert (await env.gw.quota_usage("ns", "tenant-1")).used == 5  # type: ignore[union-attr]
        # next window: one more notification
        env.clock.advance(3600)
        await env.run(3)
        assert len(env["ops"].actions) == 2


async def test_notify_to_a_missing_target_is_audited_as_failed_and_does_not_stop_traffic() -> None:
    async with Env(quota_policies=[quota(1, {"notify": {"target": "nobody"}})]) as env:
        assert await env.run(3) == ["executed"] * 3
        page = await env.audit.query(AuditQuery(action_type=NOTIFICATION_ACTION_TYPE))
        assert [r.outcome for r in page.records] == ["failed"]


async def test_exempt_deliveries_are_not_counted() -> None:
    async with Env(quota_policies=[quota(1)]) as env:
        with quota_exempt("scheduled"):
            assert await env.run(3) == ["executed"] * 3
        assert await env.run(2) == ["executed", "quota_exceeded"]


async def test_payload_markers_do_not_bypass_the_quota() -> None:
    # Upstream skipped payloads carrying `_scheduled_dispatch: true`; anyone could forge that (D11/D12).
    async with Env(quota_policies=[quota(1)]) as env:
        forged = [await env.gw.dispatch(act(payload={"_scheduled_dispatch": True, "_recurring_dispatch": True}))
                  for _ in range(2)]
        assert [o.kind for o in forged] == ["executed", "quota_exceeded"]


class BrokenCounters(MemoryStateStore):
    async def increment(self, key: object, delta: int, ttl: float | None = None) -> int:
        raise StateBackendError("counter store down")


class BrokenReads(MemoryStateStore):
    async def get(self, key: object) -> str | None:
        if str(key).startswith("_system:_quotas:"):
            raise StateBackendError("policy store down")
        return await super().get(key)  # type: ignore[arg-type]


async def test_counter_errors_fail_open() -> None:
    async with Env(state=BrokenCounters(), quota_policies=[quota(1)]) as env:
        assert await env.run(3) == ["executed"] * 3


async def test_policy_lookup_errors_fail_open_but_keep_build_time_policies() -> None:
    async with Env(state=BrokenReads()) as env:
        assert await env.run(3) == ["executed"] * 3
    async with Env(state=BrokenReads(), quota_policies=[quota(1)]) as env:
        assert await env.run(2) == ["executed", "quota_exceeded"]


async def test_corrupt_stored_policy_fails_open() -> None:
    async with Env() as env:
        await env.state.set("_system:_quotas:quota:idx:ns:tenant-1", "bad")
        await env.state.set("_system:_quotas:quota:bad", "{not json")
        assert await env.run(3) == ["executed"] * 3


async def test_suppressed_actions_still_count() -> None:
    async with Env(rules=RULES_SUPPRESS_ALL, quota_policies=[quota(5)]) as env:
        outcomes = [await env.gw.dispatch(act()) for _ in range(2)]
        assert all(isinstance(o, Suppressed) for o in outcomes)
        assert (await env.gw.quota_usage("ns", "tenant-1")).used == 2  # type: ignore[union-attr]


async def test_policy_objects_are_accepted() -> None:
    p = QuotaPolicy(namespace="ns", tenant="tenant-1", max_actions=1, window="daily", overage_behavior="block")  # type: ignore[arg-type]
    async with Env(quota_policies=[p]) as env:
        assert await env.run(2) == ["executed", "quota_exceeded"]

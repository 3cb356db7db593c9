"""Recurring actions: lifecycle and the firing job (core-pipeline.md §12, server-api.md §2.13, §22 63-64, D12)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import pytest

from acteon import Gateway
from acteon.outcomes import QuotaExceeded
from acteon.scheduling import (
    CronIntervalTooShort,
    InvalidCronExpression,
    InvalidTimezone,
    RecurringAction,
    RecurringConflictError,
    RecurringLimitError,
    RecurringNotFoundError,
    RecurringValidationError,
)
from acteon.state import MemoryStateStore
from acteon.state._base import StateStore
from acteon.state.sqlite import SQLiteStateStore
from acteon.testing import FakeClock
from tests.scheduling.conftest import NS, START, TENANT, Env, rule, rules_text

pytestmark = pytest.mark.anyio

PENDING = f"{NS}:{TENANT}:pending_recurring:"
DATA = f"{NS}:{TENANT}:recurring_action:"


def at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


async def create(env: Env, cron: str = "*/5 * * * *", **kwargs: Any) -> RecurringAction:
    kwargs.setdefault("provider", "email")
    kwargs.setdefault("action_type", "digest")
    return await env.gw.create_recurring(NS, TENANT, cron_expr=cron, **kwargs)


async def indexed(state: StateStore, rid: str) -> bool:
    return PENDING + rid in await state.get_expired_timeouts(2**62)


# ----------------------------------------------------------------------------- scenario 63: lifecycle


async def test_lifecycle() -> None:
    async with Env() as env:
        rec = await create(env, "0 9 * * MON-FRI", timezone="US/Eastern", name="weekday digest",
                           payload={"kind": "digest"}, metadata={"team": "ops"}, labels={"env": "prod"})
        assert isinstance(rec.id, str) and rec.id
        assert rec.enabled and rec.status == "active"
        assert rec.next_execution_at == at("2026-01-15T14:00:00Z")  # 09:00 New York, same day
        assert rec.description == "weekday digest"
        assert rec.created_at == rec.updated_at == env.clock.now()
        assert await env.gw.get_recurring(NS, TENANT, rec.id) == rec
        assert await env.state.get(PENDING + rec.id) == str(int(rec.next_execution_at.timestamp() * 1000))
        assert await indexed(env.state, rec.id)

        paused = await env.gw.pause_recurring(NS, TENANT, rec.id)
        assert paused.enabled is False and paused.next_execution_at is None
        assert not await indexed(env.state, rec.id)
        with pytest.raises(RecurringConflictError, match=r"^recurring action is already paused$"):
            await env.gw.pause_recurring(NS, TENANT, rec.id)

        env.clock.advance(2 * 86_400)  # Saturday: the next weekday run is Monday
        resumed = await env.gw.resume_recurring(NS, TENANT, rec.id)
        assert resumed.enabled is True and resumed.next_execution_at == at("2026-01-19T14:00:00Z")  # Monday
        assert resumed.to_detail()["next_execution_at"] == "2026-01-19T14:00:00Z"
        with pytest.raises(RecurringConflictError, match=r"^recurring action is already active$"):
            await env.gw.resume_recurring(NS, TENANT, rec.id)

        assert await env.gw.delete_recurring(NS, TENANT, rec.id) is True
        assert await env.gw.get_recurring(NS, TENANT, rec.id) is None
        assert await env.gw.delete_recurring(NS, TENANT, rec.id) is False
        assert not await indexed(env.state, rec.id)


async def test_unknown_ids() -> None:
    async with Env() as env:
        assert await env.gw.get_recurring(NS, TENANT, "nope") is None
        assert await env.gw.delete_recurring(NS, TENANT, "nope") is False
        for call in (env.gw.pause_recurring, env.gw.resume_recurring):
            with pytest.raises(RecurringNotFoundError) as info:
                await call(NS, TENANT, "nope")
            assert str(info.value) == "recurring action not found: nope"
        with pytest.raises(RecurringNotFoundError):
            await env.gw.update_recurring(NS, TENANT, "nope", payload={"a": 1})


@pytest.mark.parametrize("kwargs,error", [
    ({"cron": "not a cron"}, InvalidCronExpression),
    ({"cron": "*/30 * * * * *"}, InvalidCronExpression),
    ({"cron": "0 9 * * *", "timezone": "Mars/Olympus"}, InvalidTimezone),
    ({"cron": "0 9 * * *", "timezone": ""}, InvalidTimezone),
    ({"cron": "0 0 30 2 *"}, RecurringValidationError),
    ({"cron": "0 9 * * *", "max_executions": 0}, RecurringValidationError),
    ({"cron": "0 9 * * *", "ends_at": "2026-01-01T00:00:00Z"}, RecurringValidationError),
    ({"cron": "0 9 * * *", "metadata": {"n": 1}}, RecurringValidationError),
    ({"cron": "0 9 * * *", "payload": {"x": object()}}, RecurringValidationError),
    ({"cron": "0 9 * * *", "provider": ""}, RecurringValidationError),
])
async def test_create_validation(kwargs: dict[str, Any], error: type[Exception]) -> None:
    async with Env() as env:
        cron = kwargs.pop("cron")
        with pytest.raises(error):
            await create(env, cron, **kwargs)
        assert await env.gw.list_recurring(NS, TENANT) == []


async def test_namespace_with_colon_is_refused() -> None:
    async with Env() as env:
        with pytest.raises(RecurringValidationError, match="namespace"):
            await env.gw.create_recurring("a:b", TENANT, provider="email", action_type="x", cron_expr="0 9 * * *")


async def test_minimum_interval_on_create() -> None:  # scenario 60 (API form)
    async with Env(scheduling={"min_interval_seconds": 300}) as env:
        with pytest.raises(CronIntervalTooShort) as info:
            await create(env, "* * * * *")
        assert str(info.value) == "cron interval too short: 60s between occurrences, minimum is 300s"
        await create(env, "*/5 * * * *")
    async with Env() as env:
        await create(env, "* * * * *")  # exactly the default minimum


async def test_tenant_limit_ignores_claim_keys() -> None:
    async with Env(scheduling={"max_recurring_per_tenant": 2}) as env:
        first = await create(env)
        await env.state.set(f"{DATA}{first.id}:claim:123", "someone", 600)  # a claim is not a definition
        await create(env)
        with pytest.raises(RecurringLimitError) as info:
            await create(env)
        assert str(info.value) == "recurring action limit reached for tenant (2)"
        await env.gw.create_recurring(NS, "other-tenant", provider="email", action_type="x", cron_expr="0 9 * * *")


async def test_update() -> None:
    async with Env() as env:
        rec = await create(env, "0 9 * * *", name="n1", dedup_key="d1")
        env.clock.advance(60)
        new = await env.gw.update_recurring(NS, TENANT, rec.id, payload={"v": 2}, metadata={"team": "web"},
                                            name="n2", labels={"a": "b"}, max_executions=5)
        assert new.action_template.payload == {"v": 2} and new.action_template.metadata == {"team": "web"}
        assert new.action_template.dedup_key == "d1"  # not given: kept
        assert new.description == "n2" and new.labels == {"a": "b"} and new.max_executions == 5
        assert new.next_execution_at == rec.next_execution_at  # schedule unchanged
        assert new.updated_at == env.clock.now() and new.created_at == rec.created_at
        both = await env.gw.update_recurring(NS, TENANT, rec.id, name="ignored", description="wins")
        assert both.description == "wins"
        moved = await env.gw.update_recurring(NS, TENANT, rec.id, cron_expr="30 14 * * *", timezone="Europe/London")
        assert moved.next_execution_at == at("2026-01-15T14:30:00Z")
        assert await env.state.get(PENDING + rec.id) == str(int(at("2026-01-15T14:30:00Z").timestamp() * 1000))
        with pytest.raises(InvalidCronExpression):
            await env.gw.update_recurring(NS, TENANT, rec.id, cron_expr="bad")
        with pytest.raises(InvalidTimezone):
            await env.gw.update_recurring(NS, TENANT, rec.id, timezone="Nowhere/Land")


async def test_update_checks_the_minimum_interval_of_an_active_action() -> None:
    async with Env(scheduling={"min_interval_seconds": 3600}) as env:
        rec = await create(env, "0 9 * * *")
        with pytest.raises(CronIntervalTooShort):
            await env.gw.update_recurring(NS, TENANT, rec.id, cron_expr="*/30 * * * *")
        assert (await env.gw.get_recurring(NS, TENANT, rec.id)) == rec


async def test_paused_update_cannot_slip_past_the_minimum_on_resume() -> None:
    async with Env(scheduling={"min_interval_seconds": 300}) as env:
        rec = await create(env, "*/5 * * * *")
        await env.gw.pause_recurring(NS, TENANT, rec.id)
        stored = await env.gw.update_recurring(NS, TENANT, rec.id, cron_expr="* * * * *")  # allowed while paused
        assert stored.cron_expr == "* * * * *" and stored.next_execution_at is None
        with pytest.raises(CronIntervalTooShort):
            await env.gw.resume_recurring(NS, TENANT, rec.id)
        assert (await env.gw.get_recurring(NS, TENANT, rec.id)).enabled is False  # type: ignore[union-attr]


async def test_list_filters_and_pages() -> None:
    async with Env() as env:
        ids = []
        for _ in range(5):
            ids.append((await create(env)).id)
            env.clock.advance(1)
        await env.gw.pause_recurring(NS, TENANT, ids[1])
        await env.state.set(f"{DATA}{ids[0]}:claim:1", "x", 60)
        assert [r.id for r in await env.gw.list_recurring(NS, TENANT)] == ids
        assert [r.id for r in await env.gw.list_recurring(NS, TENANT, status="paused")] == [ids[1]]
        assert len(await env.gw.list_recurring(NS, TENANT, status="active")) == 4
        assert len(await env.gw.list_recurring(NS, TENANT, status="anything")) == 5
        assert [r.id for r in await env.gw.list_recurring(NS, TENANT, limit=2, offset=1)] == ids[1:3]
        assert await env.gw.list_recurring(NS, "nobody") == []


async def test_crud_is_audited() -> None:
    async with Env() as env:
        rec = await create(env)
        env.clock.advance(1)
        await env.gw.pause_recurring(NS, TENANT, rec.id)
        env.clock.advance(1)
        await env.gw.resume_recurring(NS, TENANT, rec.id)
        env.clock.advance(1)
        await env.gw.update_recurring(NS, TENANT, rec.id, payload={"v": 1})
        env.clock.advance(1)
        await env.gw.delete_recurring(NS, TENANT, rec.id)
        page = await env.gw.audit_query({"provider": "system", "limit": 10})
        records = page.records
        assert [r.action_type for r in records][::-1] == [
            "recurring.create", "recurring.pause", "recurring.resume", "recurring.update", "recurring.delete"]
        for r in records:
            assert (r.verdict, r.outcome, r.caller_id, r.auth_method) == ("allow", "executed", "system", "unknown")
            assert r.verdict_details == {} and r.outcome_details == {}
            assert r.metadata == {"recurring_id": rec.id}
            assert r.action_payload["id"] == rec.id and r.action_id != rec.id


async def test_detail_and_summary_shapes() -> None:
    async with Env() as env:
        rec = await create(env, "0 9 * * *")
        detail = rec.to_detail()
        assert set(detail) == {"id", "namespace", "tenant", "cron_expr", "timezone", "enabled", "provider",
                               "action_type", "payload", "metadata", "execution_count", "created_at",
                               "updated_at", "next_execution_at"}
        summary = (await env.gw.pause_recurring(NS, TENANT, rec.id)).to_summary()
        assert summary["next_execution_at"] is None and "description" not in summary
        assert list(summary)[-1] == "created_at"


# ----------------------------------------------------------------------------- scenario 64: the job


async def test_due_occurrence_is_dispatched_from_the_template() -> None:
    async with Env() as env:
        rec = await create(env, payload={"kind": "digest"}, metadata={"team": "ops", "run": "{{recurring_id}}"},
                           dedup_key="{{recurring_id}}-{{execution_time}}")
        summary = await env.advance(299)
        assert summary["recurring_actions"] == 0 and env.email.actions == []
        summary = await env.advance(1)  # 12:05
        assert summary["recurring_actions"] == 1
        [sent] = env.email.actions
        assert (sent.namespace, sent.tenant, sent.provider, sent.action_type) == (NS, TENANT, "email", "digest")
        assert sent.payload == {"kind": "digest", "_recurring_dispatch": True}
        assert sent.metadata == {"team": "ops", "run": rec.id}
        assert sent.dedup_key == f"{rec.id}-2026-01-15T12:05:00Z"
        after = await env.gw.get_recurring(NS, TENANT, rec.id)
        assert after is not None
        assert after.execution_count == 1 and after.last_executed_at == at("2026-01-15T12:05:00Z")
        assert after.next_execution_at == at("2026-01-15T12:10:00Z")
        assert env.counters("recurring_dispatched", "executed") == {"recurring_dispatched": 1, "executed": 1}
        record = await env.gw.audit_get(sent.id)
        assert record is not None and record.outcome == "executed"


async def test_execution_count_is_preserved() -> None:  # scenario 64: full definition carried
    async with Env() as env:
        rec = await create(env, metadata={"team": "ops"})
        stored = rec.model_copy(update={"execution_count": 42})
        await env.state.set(DATA + rec.id, stored.to_json())
        await env.advance(300)
        after = await env.gw.get_recurring(NS, TENANT, rec.id)
        assert after is not None and after.execution_count == 43
        assert env.email.actions[0].metadata == {"team": "ops"}


async def test_stale_index_entries_are_cleaned_up() -> None:  # scenario 64: disabled, deleted, ends_at
    async with Env() as env:
        disabled = await create(env)
        stored = disabled.model_copy(update={"enabled": False})
        await env.state.set(DATA + disabled.id, stored.to_json())
        deleted = await create(env)
        await env.state.delete(DATA + deleted.id)
        await env.advance(300)
        assert env.email.actions == []
        for rid in (disabled.id, deleted.id):
            assert await env.state.get(PENDING + rid) is None
            assert not await indexed(env.state, rid)


async def test_ends_at_ends_the_schedule() -> None:
    async with Env() as env:
        rec = await create(env, "*/10 * * * *", ends_at="2026-01-15T12:25:00Z")
        for _ in range(6):
            await env.advance(600)
        assert len(env.email.actions) == 2  # 12:10 and 12:20
        after = await env.gw.get_recurring(NS, TENANT, rec.id)
        assert after is not None and after.next_execution_at is None and after.enabled is True
        assert not await indexed(env.state, rec.id)


async def test_max_executions() -> None:
    async with Env() as env:
        rec = await create(env, max_executions=3)
        for _ in range(6):
            await env.advance(300)
        assert len(env.email.actions) == 3
        after = await env.gw.get_recurring(NS, TENANT, rec.id)
        assert after is not None and after.execution_count == 3 and after.next_execution_at is None
        raised = await env.gw.update_recurring(NS, TENANT, rec.id, max_executions=4)  # re-arms from now
        assert raised.next_execution_at is not None
        await env.advance(300)
        await env.advance(300)
        assert len(env.email.actions) == 4


async def test_resume_honours_limits() -> None:
    async with Env() as env:
        rec = await create(env, max_executions=1)
        await env.advance(300)
        await env.gw.pause_recurring(NS, TENANT, rec.id)
        resumed = await env.gw.resume_recurring(NS, TENANT, rec.id)
        assert resumed.enabled and resumed.next_execution_at is None
        await env.advance(3600)
        assert len(env.email.actions) == 1


async def test_no_backfill_after_downtime() -> None:
    async with Env() as env:
        rec = await create(env, "0 * * * *")  # first run 13:00
        env.clock.set("2026-01-15T17:20:00Z")  # down through 13:00..17:00
        await env.gw.tick()
        await env.gw.tick()
        assert len(env.email.actions) == 1  # one late run, never five
        after = await env.gw.get_recurring(NS, TENANT, rec.id)
        assert after is not None and after.next_execution_at == at("2026-01-15T18:00:00Z")
        assert after.last_executed_at == at("2026-01-15T17:20:00Z")


async def test_resume_does_not_backfill() -> None:
    async with Env() as env:
        rec = await create(env, "0 * * * *")
        await env.gw.pause_recurring(NS, TENANT, rec.id)
        env.clock.set("2026-01-15T17:20:00Z")
        await env.gw.resume_recurring(NS, TENANT, rec.id)
        await env.gw.tick()
        assert env.email.actions == []
        await env.advance(40 * 60)
        assert len(env.email.actions) == 1


async def test_claimed_occurrence_is_skipped() -> None:  # replaces upstream's 5 s guard (scenario 64)
    async with Env() as env:
        rec = await create(env)
        due_ms = int(at("2026-01-15T12:05:00Z").timestamp() * 1000)
        env.clock.advance(300)
        await env.state.set(f"{DATA}{rec.id}:claim:{due_ms}", "other-process", 300)
        await env.gw.tick()
        assert env.email.actions == []
        assert env.counters("recurring_skipped") == {"recurring_skipped": 1}


async def test_dispatch_error_is_retried_until_the_next_occurrence() -> None:
    broken = rules_text(rule("broken", "{type: reroute, target_provider: nowhere}",
                             condition="{field: action.action_type, eq: digest}"))
    async with Env(broken) as env:
        failures = env.gw.events(event_type="recurring_action_failed")
        rec = await create(env, "0 * * * *")  # 13:00, 14:00, ...
        await env.advance(3600)  # 13:00 fails
        assert env.counters("recurring_errors") == {"recurring_errors": 1}
        event = failures.get_nowait()
        assert event is not None and event.data["recurring_id"] == rec.id
        assert event.data["execution_time"] == "2026-01-15T13:00:00Z"
        still = await env.gw.get_recurring(NS, TENANT, rec.id)
        assert still is not None and still.next_execution_at == at("2026-01-15T13:00:00Z")
        await env.advance(30)  # retried 30 s later, fails again
        assert env.counters("recurring_errors") == {"recurring_errors": 2}
        env.gw.reload_rules("rules: []\n")
        await env.advance(30)  # the fix is in: the 13:00 occurrence runs late, once
        assert len(env.email.actions) == 1
        after = await env.gw.get_recurring(NS, TENANT, rec.id)
        assert after is not None and after.execution_count == 1
        assert after.next_execution_at == at("2026-01-15T14:00:00Z")
        await failures.aclose()


async def test_failing_occurrence_is_given_up_when_the_next_is_due() -> None:
    broken = rules_text(rule("broken", "{type: reroute, target_provider: nowhere}"))
    async with Env(broken, scheduling={"retry_backoff_seconds": 120}) as env:
        rec = await create(env, "* * * * *")
        await env.advance(60)  # 12:01 fails; a retry at 12:03 would come after the 12:02 run
        after = await env.gw.get_recurring(NS, TENANT, rec.id)
        assert after is not None and after.execution_count == 0
        assert after.next_execution_at == at("2026-01-15T12:02:00Z")


async def test_occurrences_count_toward_quota() -> None:  # D12
    policy = {"namespace": NS, "tenant": TENANT, "max_actions": 1, "window": "daily", "overage_behavior": "block"}
    async with Env(quota_policies=[policy]) as env:
        outcomes = env.gw.events(event_type="action_dispatched")
        await create(env)
        await env.advance(300)
        await env.advance(300)
        assert len(env.email.actions) == 1
        kinds = []
        while (event := outcomes.get_nowait()) is not None:
            kinds.append(event.outcome_kind)
        assert kinds == ["executed", QuotaExceeded.kind]
        assert env.counters("recurring_dispatched") == {"recurring_dispatched": 2}
        await outcomes.aclose()


async def test_dst_in_the_job() -> None:
    clock = FakeClock("2026-03-06T12:00:00Z")
    async with Env(clock=clock) as env:
        await create(env, "0 9 * * *", timezone="America/New_York", dedup_key="{{execution_time}}")
        for _ in range(4):
            await env.advance(86_400)
        # 09:00 in New York is 14:00Z until DST starts on 2026-03-08, then 13:00Z.
        assert [a.dedup_key for a in env.email.actions] == [
            "2026-03-06T14:00:00Z", "2026-03-07T14:00:00Z", "2026-03-08T13:00:00Z", "2026-03-09T13:00:00Z"]
        [rec] = await env.gw.list_recurring(NS, TENANT)
        assert rec.next_execution_at == at("2026-03-10T13:00:00Z")


async def test_two_gateways_on_one_store_fire_each_occurrence_once() -> None:
    state = MemoryStateStore()
    clock = FakeClock(START)
    async with Env(state=state, clock=clock) as one, Env(state=state, clock=clock) as two:
        for _ in range(5):
            await create(one)
        for _ in range(3):
            clock.advance(300)
            async with anyio.create_task_group() as tg:
                tg.start_soon(one.gw.tick)
                tg.start_soon(two.gw.tick)
        assert len(one.email.actions) + len(two.email.actions) == 15
        assert len({a.id for a in one.email.actions + two.email.actions}) == 15


async def test_restart_fires_from_the_sqlite_file(tmp_path: Path) -> None:
    clock = FakeClock(START)
    async with SQLiteStateStore(tmp_path / "s.db") as store, Env(state=store, clock=clock) as env:
        rec = await create(env)
    clock.advance(300)
    async with SQLiteStateStore(tmp_path / "s.db") as store, Env(state=store, clock=clock) as env:
        assert (await env.gw.tick())["recurring_actions"] == 1
        after = await env.gw.get_recurring(NS, TENANT, rec.id)
        assert after is not None and after.execution_count == 1


async def test_every_backend_fires(any_store: StateStore) -> None:
    async with Env(state=any_store) as env:
        rec = await create(env)
        await env.advance(300)
        await env.advance(300)
        assert len(env.email.actions) == 2
        assert (await env.gw.get_recurring(NS, TENANT, rec.id)).execution_count == 2  # type: ignore[union-attr]
        assert await env.gw.delete_recurring(NS, TENANT, rec.id)


async def test_unreadable_definition_is_unscheduled() -> None:
    async with Env() as env:
        await env.state.set(DATA + "bad", "{oops")
        await env.state.set(PENDING + "bad", "1")
        await env.state.index_timeout(PENDING + "bad", 1)
        assert (await env.gw.tick())["recurring_actions"] == 0
        assert not await indexed(env.state, "bad")
        assert await env.gw.list_recurring(NS, TENANT) == []


async def test_blocking_twin() -> None:
    clock = FakeClock(START)
    with Gateway(clock=clock, background=False) as gw:
        rec = gw.create_recurring(NS, TENANT, provider="email", action_type="digest", cron_expr="0 9 * * *")
        assert gw.get_recurring(NS, TENANT, rec.id) == rec
        assert [r.id for r in gw.list_recurring(NS, TENANT)] == [rec.id]
        assert gw.update_recurring(NS, TENANT, rec.id, description="d").description == "d"
        assert gw.pause_recurring(NS, TENANT, rec.id).enabled is False
        assert gw.resume_recurring(NS, TENANT, rec.id).enabled is True
        assert gw.delete_recurring(NS, TENANT, rec.id) is True


async def test_stored_json_is_the_upstream_shape() -> None:
    async with Env() as env:
        rec = await create(env, "0 9 * * *")
        raw = await env.state.get(DATA + rec.id)
        assert raw is not None
        assert list(json.loads(raw)) == [
            "id", "namespace", "tenant", "cron_expr", "timezone", "enabled", "action_template", "created_at",
            "updated_at", "last_executed_at", "next_execution_at", "ends_at", "max_executions", "execution_count",
            "description", "labels",
        ]
        assert json.loads(raw)["next_execution_at"] == "2026-01-16T09:00:00Z"
        assert datetime(2026, 1, 16, 9, tzinfo=UTC) == rec.next_execution_at


async def test_a_run_that_cannot_be_recorded_is_not_fired_again_while_claimed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from acteon import StateBackendError

    async with Env() as env:
        await create(env)
        recurring = env.gw._scheduling.recurring  # type: ignore[union-attr]

        async def broken_advance(*args: Any, **kwargs: Any) -> None:
            raise StateBackendError("store went away")

        monkeypatch.setattr(recurring, "_advance", broken_advance)
        await env.advance(300)  # 12:05 runs, but the run cannot be recorded
        assert len(env.email.actions) == 1
        monkeypatch.undo()
        await env.gw.tick()
        await env.advance(299)  # the claim still holds the 12:05 occurrence
        assert len(env.email.actions) == 1
        assert env.counters("recurring_skipped")["recurring_skipped"] >= 1

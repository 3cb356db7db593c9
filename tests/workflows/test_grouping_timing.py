"""Group timers with Alertmanager semantics (peers.md §12, DECISIONS D16).

Covers the timer rules and the "consequences worth testing" of peers.md §12,
workflows.md §14 scenarios 49 (persistent group) and 50 (cap), and acteon's
``max_group_size`` early flush. All times are relative to T0 = 12:00:00.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from acteon._timefmt import parse_rfc3339
from acteon.outcomes import Grouped
from acteon.workflows._group_model import EventGroup, GroupEvent, Timers, plan_flush
from tests.workflows._env import T0, Env, alert

pytestmark = pytest.mark.anyio

START = parse_rfc3339(T0)


def rules(wait: int = 30, interval: int = 300, repeat: int | None = None, max_size: int | None = None) -> str:
    extra = "" if repeat is None else f", repeat_interval_seconds: {repeat}"
    extra += "" if max_size is None else f", max_group_size: {max_size}"
    return f"""
rules:
  - name: batch
    condition: {{field: action.action_type, eq: alert}}
    action: {{type: group, group_by: [metadata.cluster], group_wait_seconds: {wait},
              group_interval_seconds: {interval}{extra}}}
"""


def at(seconds: float) -> datetime:
    return START + timedelta(seconds=seconds)


async def grouped(env: Env, **kw: object) -> Grouped:
    outcome = await env.gw.dispatch(alert(**kw))
    assert isinstance(outcome, Grouped), outcome
    return outcome


async def run_until(env: Env, seconds: float) -> None:
    """Tick once at ``T0 + seconds``."""
    env.clock.set(at(seconds))
    await env.gw.tick()


def sent(env: Env) -> list[int]:
    return [a.payload["event_count"] for a in env.notifications()]


# ----------------------------------------------------------------------------- first flush


async def test_arrivals_never_move_the_first_flush() -> None:
    async with Env(rules(wait=30)) as env:
        first = await grouped(env)
        env.clock.set(at(29))
        later = await grouped(env)
        assert first.notify_at == later.notify_at == at(30)
        await run_until(env, 29.9)
        assert sent(env) == []
        await run_until(env, 30)
        assert sent(env) == [2]


async def test_an_alert_that_already_waited_flushes_at_once() -> None:
    async with Env(rules(wait=30)) as env:
        outcome = await grouped(env, starts_at=at(-31))
        assert outcome.notify_at == at(0)
        await env.gw.tick()
        assert sent(env) == [1]
    async with Env(rules(wait=30)) as env:
        assert (await grouped(env, starts_at=at(-29))).notify_at == at(30)


async def test_fired_and_resolved_within_group_wait_sends_nothing() -> None:
    async with Env(rules(wait=30)) as env:
        await grouped(env, fingerprint="disk-full")
        env.clock.set(at(10))
        resolved = await grouped(env, fingerprint="disk-full", ends_at=at(10))
        assert resolved.group_size == 1  # the same alert, updated in place
        await run_until(env, 30)
        assert sent(env) == []
        assert await env.gw.list_groups() == []  # an empty group ends


# ----------------------------------------------------------------------------- ephemeral groups


async def test_a_late_alert_waits_for_the_next_interval_tick_not_group_wait() -> None:
    async with Env(rules(wait=30, interval=300)) as env:
        first = await grouped(env)
        await run_until(env, 30)
        assert sent(env) == [1]
        env.clock.set(at(100))
        late = await grouped(env, payload={"late": True})
        assert late.group_id == first.group_id
        assert late.notify_at == at(330)  # the cadence runs from the flush at T0+30
        await run_until(env, 329)
        assert sent(env) == [1]
        await run_until(env, 330)
        assert sent(env) == [1, 1]
        assert env.notifications()[-1].payload["events"] == [{"late": True}]  # delivered events are not resent


async def test_a_quiet_group_ends_and_the_next_alert_starts_fresh() -> None:
    async with Env(rules(wait=30, interval=300)) as env:
        first = await grouped(env)
        await run_until(env, 30)
        await run_until(env, 330)  # a tick with nothing new: the group ends
        assert await env.gw.list_groups() == []
        env.clock.set(at(400))
        fresh = await grouped(env)
        assert fresh.group_id != first.group_id
        assert fresh.notify_at == at(430)  # group_wait again
        await run_until(env, 430)
        assert sent(env) == [1, 1]


# ----------------------------------------------------------------------------- persistent groups (scenario 49)


async def test_persistent_group_repeats_then_is_evicted() -> None:
    async with Env(rules(wait=30, interval=300, repeat=3600)) as env:
        await grouped(env)
        await run_until(env, 30)
        assert sent(env) == [1]
        for hour in (1, 2, 3):
            await run_until(env, 30 + hour * 3600 - 1)
            assert len(sent(env)) == hour
            await run_until(env, 30 + hour * 3600)
            assert len(sent(env)) == hour + 1
            if hour < 3:
                [summary] = await env.gw.list_groups()
                detail = await env.gw.get_group(summary["group_key"])
                assert detail is not None and summary["state"] == "notified"
        # evicted right after the third re-send
        assert await env.gw.list_groups() == []
        await run_until(env, 30 + 4 * 3600)
        assert len(sent(env)) == 4
        assert all(p == 1 for p in sent(env))  # every repeat carries the retained event


async def test_new_alert_on_a_notified_persistent_group_resets_idle_and_rides_the_next_tick() -> None:
    async with Env(rules(wait=30, interval=300, repeat=3600)) as env:
        await grouped(env, payload={"a": 1})
        await run_until(env, 30)
        env.clock.set(at(40 * 60))
        outcome = await grouped(env, payload={"a": 2})
        # Alertmanager cadence: the next tick after T0+40 min is T0+40 min 30 s
        # (upstream head waits a full interval from the arrival: T0+45 min).
        assert outcome.notify_at == at(40 * 60 + 30)
        [summary] = await env.gw.list_groups()
        assert summary["state"] == "pending"
        await run_until(env, 40 * 60 + 30)
        assert sent(env) == [1, 2]  # the whole retained set, not just the new alert
        assert env.notifications()[-1].payload["events"] == [{"a": 1}, {"a": 2}]
        # idle count restarted: three more quiet repeats before eviction
        for k in (1, 2, 3):
            await run_until(env, 40 * 60 + 30 + k * 3600)
        assert len(sent(env)) == 5
        assert await env.gw.list_groups() == []


async def test_repeat_interval_rounds_up_to_whole_intervals() -> None:
    async with Env(rules(wait=30, interval=300, repeat=400)) as env:
        await grouped(env)
        await run_until(env, 30)
        await run_until(env, 30 + 400)
        assert len(sent(env)) == 1
        await run_until(env, 30 + 599)
        assert len(sent(env)) == 1
        await run_until(env, 30 + 600)
        assert len(sent(env)) == 2


async def test_persistent_group_reports_a_resolve_once_then_ends() -> None:
    async with Env(rules(wait=30, interval=300, repeat=3600)) as env:
        await grouped(env, fingerprint="db-down", payload={"state": "firing"})
        await run_until(env, 30)
        env.clock.set(at(60))
        await grouped(env, fingerprint="db-down", ends_at=at(60), payload={"state": "resolved"})
        await run_until(env, 330)
        notes = env.notifications()
        assert len(notes) == 2
        assert notes[1].payload["events"] == [{"state": "resolved"}]
        assert notes[1].payload["resolved_count"] == 1
        assert notes[1].payload["event_details"][0]["resolved"] is True
        assert await env.gw.list_groups() == []  # nothing left firing


async def test_status_resolved_counts_as_resolved() -> None:
    event = GroupEvent("a", "fp", "resolved", {}, START)
    assert event.resolved_at(START)
    assert not GroupEvent("b", "fp", "firing", {}, START).resolved_at(START)


# ----------------------------------------------------------------------------- size (scenario 50 and early flush)


async def test_cap_keeps_the_newest_events() -> None:
    async with Env(rules(wait=30, max_size=2)) as env:
        for name in ("a1", "a2", "a3", "a4"):
            outcome = await grouped(env, payload={"id": name})
            assert outcome.group_size <= 2
        [summary] = await env.gw.list_groups()
        detail = await env.gw.get_group(summary["group_key"])
        assert detail is not None
        assert [e["payload"]["id"] for e in detail["events"]] == ["a3", "a4"]


async def test_full_group_flushes_early() -> None:
    async with Env(rules(wait=60, max_size=3)) as env:
        env.clock.set(at(1))
        assert (await grouped(env)).notify_at == at(61)
        env.clock.set(at(2))
        assert (await grouped(env)).notify_at == at(61)
        env.clock.set(at(3))
        assert (await grouped(env)).notify_at == at(3)  # full: due now
        await env.gw.tick()
        assert sent(env) == [3]


# ----------------------------------------------------------------------------- cadence after downtime


def test_a_late_tick_keeps_the_cadence() -> None:
    group = EventGroup.new(alert(), "k", {}, Timers(30, 300, None, 100), "webhook", "r", START)
    group.add(GroupEvent("a", "fp", None, {}, START), group.timers, None, "r", START)
    plan = plan_flush(group, at(30 + 1000))  # the job ran 1000 s late
    assert plan.send and plan.tick == at(30 + 900)
    assert plan.group.notify_at == at(30 + 1200)


async def test_one_tick_after_long_downtime_sends_one_repeat() -> None:
    async with Env(rules(wait=30, interval=300, repeat=3600)) as env:
        await grouped(env)
        await run_until(env, 30)
        await run_until(env, 30 + 10 * 3600 + 5)  # asleep for ten hours
        assert len(sent(env)) == 2
        await env.gw.tick()
        assert len(sent(env)) == 2

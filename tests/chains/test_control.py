"""Pause / resume / cancel by API, restarts on a shared SQLite file, the blocking twin, and
entity subscriptions of chains (workflows.md §3.12, §4.9, §10.3; issue points 6-7)."""

from __future__ import annotations

from pathlib import Path

import pytest

from acteon import Action, AsyncGateway, ChainError, Gateway
from acteon.audit import MemoryAuditStore
from acteon.outcomes import ChainStarted
from acteon.state.sqlite import SQLiteStateStore
from acteon.testing import FakeClock, RecordingProvider
from tests.chains._helpers import Env, start_rule, step

pytestmark = pytest.mark.anyio

THREE = {"name": "c", "steps": [step("a"), step("b"), step("c")]}


async def test_pause_stops_before_the_next_step_and_resume_continues() -> None:
    p = RecordingProvider("p")
    async with Env([THREE], [p]) as env:
        started = await env.start()
        await env.ticks(1)
        detail = await env.gw.pause_chain("ns", "t1", started.chain_id, reason="maintenance", paused_by="ops")
        assert detail.status == "paused" and detail.to_dict()["paused_status"] == "running"
        assert await env.ticks(3, advance=60) == [0, 0, 0]
        assert [a.action_type for a in p.actions] == ["a"]
        with pytest.raises(ChainError, match="already paused"):
            await env.gw.pause_chain("ns", "t1", started.chain_id)
        assert [c.chain_id for c in await env.gw.list_chains("ns", "t1", status="paused")] == [started.chain_id]
        detail = await env.gw.resume_chain("ns", "t1", started.chain_id, resumed_by="ops")
        assert detail.status == "running"
        with pytest.raises(ChainError, match=r"chain is not paused \(status: Running\)"):
            await env.gw.resume_chain("ns", "t1", started.chain_id)
        assert await env.run_to_end(started.chain_id) == "completed"
        assert [a.action_type for a in p.actions] == ["a", "b", "c"]
        outcomes = await env.outcomes(started.chain_id)
        assert outcomes.index("chain_paused") < outcomes.index("chain_resumed")
        events = env.drain("chain_paused", "chain_resumed")
        assert [e.type for e in events] == ["chain_paused", "chain_resumed"]
        assert events[0].data["paused_by"] == "ops" and events[0].chain_id == started.chain_id


async def test_a_paused_chain_still_times_out_and_can_be_cancelled() -> None:
    chain = dict(THREE, timeout_seconds=30)
    async with Env([chain], [RecordingProvider("p"), RecordingProvider("webhook")]) as env:
        first = await env.start()
        second = await env.start()
        await env.gw.pause_chain("ns", "t1", first.chain_id)
        await env.gw.pause_chain("ns", "t1", second.chain_id)
        await env.gw.cancel_chain("ns", "t1", second.chain_id, "no longer needed")
        env.clock.advance(30)
        await env.ticks(1)
        assert (await env.state(first.chain_id)).status == "timed_out"
        assert (await env.state(second.chain_id)).status == "cancelled"
        with pytest.raises(ChainError, match=r"chain is not active \(status: TimedOut\)"):
            await env.gw.pause_chain("ns", "t1", first.chain_id)
        with pytest.raises(ChainError, match="chain not found: nope"):
            await env.gw.resume_chain("ns", "t1", "nope")


async def test_paused_timer_and_signal_resume_where_they_were() -> None:
    chain = {"name": "c", "steps": [{"name": "t", "timer": {"duration_seconds": 10}},
                                    {"name": "w", "wait_for_signal": {"signal_name": "go"}}, step("end")]}
    async with Env([chain], [RecordingProvider("p")]) as env:
        started = await env.start()
        await env.ticks(1)
        await env.gw.pause_chain("ns", "t1", started.chain_id)
        env.clock.advance(20)
        await env.ticks(2)
        assert (await env.state(started.chain_id)).paused_status == "waiting_timer"
        await env.gw.resume_chain("ns", "t1", started.chain_id)
        await env.ticks(2)  # the timer fires; then the signal wait begins
        assert (await env.state(started.chain_id)).status == "waiting_signal"
        await env.gw.pause_chain("ns", "t1", started.chain_id)
        await env.gw.signal_chain("ns", "t1", started.chain_id, "go", {"v": 1})  # buffered while paused
        await env.ticks(2)
        assert (await env.state(started.chain_id)).status == "paused"
        await env.gw.resume_chain("ns", "t1", started.chain_id)
        assert await env.run_to_end(started.chain_id) == "completed"


async def test_paused_parent_picks_up_its_sub_chain_after_resume() -> None:
    parent = {"name": "parent", "steps": [{"name": "run", "sub_chain": "child"}, step("after")]}
    child = {"name": "child", "steps": [step("x"), step("y")]}
    async with Env([parent, child], [RecordingProvider("p")]) as env:
        started = await env.start("parent")
        await env.ticks(1)
        await env.gw.pause_chain("ns", "t1", started.chain_id)
        await env.ticks(5, advance=5)
        child_id = (await env.state(started.chain_id)).child_chain_ids[0]
        assert (await env.state(child_id)).status == "completed"  # pausing does not reach sub-chains
        assert (await env.state(started.chain_id)).status == "paused"
        await env.gw.resume_chain("ns", "t1", started.chain_id)
        assert await env.run_to_end(started.chain_id) == "completed"


def rules() -> str:
    return start_rule("c")


async def test_restart_continues_the_chain_from_the_same_sqlite_file(tmp_path: Path) -> None:
    """A gateway dies between steps; a new one on the same file finishes the chain."""
    path = tmp_path / "state.db"
    chain = {"name": "c", "steps": [step("a"), step("b", delay_seconds=30), {"name": "t", "timer": {
        "duration_seconds": 60}}, step("c", payload_template={"prev": "{{steps.a.body}}"})]}
    clock = FakeClock()
    first = RecordingProvider("p", response={"n": 1})
    gw = AsyncGateway(rules=rules(), state=SQLiteStateStore(path), providers=[first], chains=[chain], clock=clock,
                      background=False)
    async with gw:
        outcome = await gw.dispatch(Action(namespace="ns", tenant="t1", provider="p", action_type="c"))
        assert isinstance(outcome, ChainStarted)
        await gw.tick()
    assert [a.action_type for a in first.actions] == ["a"]

    clock.advance(30)
    second = RecordingProvider("p", response={"n": 2})
    # The new process does not even know the definition: the chain carries its own copy.
    gw2 = AsyncGateway(state=SQLiteStateStore(path), providers=[second], clock=clock, background=False)
    async with gw2:
        await gw2.tick()
        detail = await gw2.get_chain("ns", "t1", outcome.chain_id)
        assert detail is not None and detail.status == "running" and detail.current_step == 2
        await gw2.tick()
        assert (await gw2.get_chain("ns", "t1", outcome.chain_id)).status == "waiting_timer"  # type: ignore[union-attr]

    clock.advance(60)
    third = RecordingProvider("p")
    async with AsyncGateway(state=SQLiteStateStore(path), providers=[third], clock=clock, background=False) as gw3:
        await gw3.tick()
        await gw3.tick()
        detail = await gw3.get_chain("ns", "t1", outcome.chain_id)
        assert detail is not None and detail.status == "completed"
        assert detail.execution_path == ["a", "b", "t", "c"]
    assert [a.action_type for a in second.actions] == ["b"]
    assert third.payloads == [{"prev": {"n": 1}}]


def test_blocking_gateway_has_the_chain_methods() -> None:
    clock = FakeClock()
    p = RecordingProvider("p")
    with Gateway(rules=rules(), providers=[p, RecordingProvider("webhook")], chains=[THREE], clock=clock,
                 background=False, audit=MemoryAuditStore()) as gw:
        started = gw.dispatch(Action(namespace="ns", tenant="t1", provider="p", action_type="c"))
        assert isinstance(started, ChainStarted)
        gw.tick()
        assert gw.pause_chain("ns", "t1", started.chain_id).status == "paused"
        assert gw.resume_chain("ns", "t1", started.chain_id).status == "running"
        gw.tick()
        assert [c.status for c in gw.list_chains("ns", "t1")] == ["running"]
        assert gw.cancel_chain("ns", "t1", started.chain_id, "done").status == "cancelled"
        detail = gw.get_chain("ns", "t1", started.chain_id)
        assert detail is not None and detail.cancel_reason == "done"
        assert [d.name for d in gw.chain_definitions()] == ["c"]
        gw.register_chain({"name": "w", "steps": [{"name": "w", "wait_for_signal": {"signal_name": "s"}}]})
        with pytest.raises(ChainError, match="chain not found"):
            gw.signal_chain("ns", "t1", "missing", "s")


async def test_entity_subscription_catch_up_and_end() -> None:  # workflows.md §14 scenario 60
    chain = {"name": "c", "steps": [step("step0"), step("step1")]}
    async with Env([chain], [RecordingProvider("p")]) as env:
        started = await env.start()
        await env.run_to_end(started.chain_id)
        sub = await env.gw.subscribe_entity("chain", started.chain_id, namespace="ns", tenant="t1")
        events = [event async for event in sub]
        assert [(e.type, e.data.get("step_name"), e.data.get("next_step"), e.data.get("status")) for e in events] == [
            ("chain_step_completed", "step0", "step1", None),
            ("chain_step_completed", "step1", None, None),
            ("chain_completed", None, None, "completed"),
            ("subscription_end", None, None, None),
        ]
        assert events[0].action_type is None and events[0].action_id is None


async def test_live_chain_subscription_ends_with_the_chain() -> None:
    chain = {"name": "c", "steps": [step("a"), step("b")]}
    async with Env([chain], [RecordingProvider("p")]) as env:
        started = await env.start()
        sub = await env.gw.subscribe_entity("chain", started.chain_id, namespace="ns", tenant="t1")
        await env.run_to_end(started.chain_id)
        types = [event.type async for event in sub]
        assert types[-2:] == ["chain_completed", "subscription_end"]
        assert "chain_advanced" in types

"""Chains end to end on a FakeClock: workflows.md §14 scenarios 1, 8, 18-30 and D18."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from acteon import Action, ChainError, ProviderResponse
from acteon.chains._engine import epoch_ms
from acteon.outcomes import ChainStarted
from acteon.providers import FunctionProvider
from acteon.testing import FailingProvider, RecordingProvider
from tests.chains._helpers import Env, start_rule, step

pytestmark = pytest.mark.anyio

RESEARCH = {"name": "research", "steps": [
    step("search", payload_template={"q": "{{origin.payload.q}}"}),
    step("summarize", payload_template={"hits": "{{prev.body.hits}}"}),
    step("email", payload_template={"text": "{{steps.summarize.body.summary}}", "i": "{{step_index}}"}),
]}


def responder(action: Action) -> Any:
    return {"search": {"hits": 3}, "summarize": {"summary": "short"}}.get(action.action_type, {"ok": True})


async def test_1_linear_success() -> None:
    p = RecordingProvider("p", response=responder)
    async with Env([RESEARCH], [p]) as env:
        started = await env.start(payload={"q": "rust"})
        assert started == ChainStarted(started.chain_id, "research", 3, "search")
        assert p.actions == []  # nothing runs during the dispatch
        assert await env.ticks(4) == [1, 1, 1, 0]
        st = await env.state(started.chain_id)
        assert st.status == "completed"
        assert st.execution_path == ["search", "summarize", "email"]
        assert p.payloads == [{"q": "rust"}, {"hits": 3}, {"text": "short", "i": 2}]
        assert all(a.provider == "p" and a.metadata == {} for a in p.actions)

        records = await env.audit_records(started.chain_id)
        assert [r.outcome for r in records] == ["chain_started"] + ["chain_step_completed"] * 3 + ["chain_completed"]
        terminal = records[-1]
        assert terminal.outcome_details["completed_steps"] == 3
        assert terminal.outcome_details["execution_path"] == ["search", "summarize", "email"]
        assert (terminal.provider, terminal.action_type, terminal.verdict) == ("chain", "research", "chain")
        step_record = records[1]
        assert step_record.action_id == terminal.action_id == records[0].action_id
        assert step_record.outcome_details == {"step_name": "search", "step_index": 0, "total_steps": 3,
                                               "response_body": {"hits": 3}}
        assert step_record.action_payload == {"q": "rust"}

        events = env.drain("chain_step_completed", "chain_completed")
        assert [(e.type, e.data.get("next_step")) for e in events] == [
            ("chain_step_completed", "summarize"), ("chain_step_completed", "email"),
            ("chain_step_completed", None), ("chain_completed", None)]
        assert "next_step" not in events[2].data
        assert events[-1].data == {"chain_id": started.chain_id, "status": "completed",
                                   "execution_path": ["search", "summarize", "email"]}
        assert all(e.chain_id == started.chain_id and e.action_id == records[0].action_id for e in events)
        assert env.gw.metrics["chains_started"] == 1 and env.gw.metrics["chains_completed"] == 1


async def test_chain_advanced_event_has_no_action_fields() -> None:
    async with Env([RESEARCH], [RecordingProvider("p")]) as env:
        started = await env.start()
        await env.ticks(1)
        (advanced,) = env.drain("chain_advanced")
        assert advanced.data == {"chain_id": started.chain_id}
        assert advanced.action_type is None and advanced.action_id is None
        assert (advanced.namespace, advanced.tenant) == ("ns", "t1")


async def test_8_prev_follows_the_path_not_the_list() -> None:
    chain = {"name": "c", "steps": [
        step("check", branches=[{"field": "body.level", "operator": "eq", "value": "low", "target": "log"}]),
        step("escalate"),
        step("log"),
        step("notify", payload_template={"prev_id": "{{prev.body.id}}", "esc": "{{steps.escalate.body}}"}),
    ]}
    p = RecordingProvider("p", response=lambda a: {"check": {"level": "low"}, "log": {"id": "L1"}}.get(
        a.action_type, {"id": a.action_type}))
    async with Env([chain], [p]) as env:
        started = await env.start()
        assert await env.run_to_end(started.chain_id) == "completed"
        st = await env.state(started.chain_id)
        assert st.execution_path == ["check", "log", "notify"]
        assert p.payloads[-1] == {"prev_id": "L1", "esc": None}
        assert st.step_results[1] is None


async def test_18_abort_by_default() -> None:
    chain = {"name": "c", "steps": [step("a"), step("b", provider="bad"), step("c")]}
    bad = FailingProvider("bad", kind="non_retryable", message="M")
    p = RecordingProvider("p")
    async with Env([chain], [p, bad]) as env:
        started = await env.start()
        assert await env.run_to_end(started.chain_id) == "failed"
        st = await env.state(started.chain_id)
        result = st.step_results[1]
        assert (result.success, result.error, result.response_body) == (False, "execution failed: M", None)
        assert st.step_results[2] is None and [a.action_type for a in p.actions] == ["a"]
        assert await env.outcomes(started.chain_id) == ["chain_started", "chain_step_completed", "chain_step_failed",
                                                        "chain_failed"]
        events = env.drain("chain_step_completed", "chain_completed")
        assert events[1].data["success"] is False and "next_step" not in events[1].data
        assert events[2].data["status"] == "failed"
        assert env.gw.metrics["chains_failed"] == 1


async def test_19_skip_routes_to_recovery() -> None:
    chain = {"name": "c", "steps": [
        step("pay", provider="bad", on_failure="skip",
             branches=[{"field": "success", "operator": "eq", "value": False, "target": "refund"}]),
        step("ship"),
        step("refund", payload_template={"why": "{{prev.error}}", "ok": "{{prev.success}}"}),
    ]}
    p = RecordingProvider("p")
    async with Env([chain], [p, FailingProvider("bad", kind="non_retryable", message="card declined")]) as env:
        started = await env.start()
        assert await env.run_to_end(started.chain_id) == "completed"
        st = await env.state(started.chain_id)
        assert st.execution_path == ["pay", "refund"]
        assert p.payloads == [{"why": "execution failed: card declined", "ok": False}]
        assert await env.outcomes(started.chain_id) == ["chain_started", "chain_step_skipped", "chain_step_completed",
                                                        "chain_completed"]


async def test_20_skip_on_the_last_step_completes() -> None:
    chain = {"name": "c", "steps": [step("a"), step("b", provider="bad", on_failure="skip")]}
    async with Env([chain], [RecordingProvider("p"), FailingProvider("bad", kind="non_retryable")]) as env:
        started = await env.start()
        assert await env.run_to_end(started.chain_id) == "completed"


DLQ_CONFIG = {"executor": {"dlq_enabled": True, "max_retries": 2}}


@pytest.mark.parametrize("kind,step_policy,chain_policy,letters", [
    ("non_retryable", "dlq", "abort", 1),
    ("retryable", "dlq", "abort", 1),  # the executor's own dead letter is not added a second time
    ("retryable", None, "abort", 1),  # upstream docs: chain abort => DLQ
    ("non_retryable", None, "abort", 1),
    ("retryable", None, "abort_no_dlq", 0),  # ... abort_no_dlq => no DLQ, not even the executor's
    ("retryable", "abort", "abort_no_dlq", 0),
    ("retryable", "dlq", "abort_no_dlq", 1),
    ("retryable", "skip", "abort", 0),  # a skipped step was handled by the chain
])
async def test_21_dead_letters_exactly_once(kind: str, step_policy: str | None, chain_policy: str,
                                            letters: int) -> None:
    extra = {} if step_policy is None else {"on_failure": step_policy}
    chain = {"name": "c", "on_failure": chain_policy,
             "steps": [step("a", provider="bad", payload_template={"id": "{{origin.payload.id}}"}, **extra)]}
    async with Env([chain], [FailingProvider("bad", kind=kind, message="down")], config=DLQ_CONFIG) as env:
        started = await env.start(payload={"id": 7})
        status = await env.run_to_end(started.chain_id)
        assert status == ("completed" if step_policy == "skip" else "failed")
        dead = env.gw.dlq_list()
        assert len(dead) == letters
        if letters:
            assert dead[0].action.payload == {"id": 7} and dead[0].action.provider == "bad"
            assert "down" in dead[0].error
            assert dead[0].attempts == (3 if kind == "retryable" else 1)


async def test_22_provider_failure_status_is_still_executed() -> None:
    flaky = FunctionProvider("p", lambda a: ProviderResponse.failure({"code": 500}), inline=True)
    async with Env([{"name": "c", "steps": [step("a"), step("b")]}], [flaky]) as env:
        started = await env.start()
        assert await env.run_to_end(started.chain_id) == "completed"
        st = await env.state(started.chain_id)
        assert st.step_results[0].success and st.step_results[0].response_body == {"code": 500}


async def test_23_open_circuit_fails_the_chain_even_with_skip() -> None:
    chain = {"name": "c", "steps": [step("a", on_failure="skip"), step("b")]}
    async with Env([chain], [RecordingProvider("p")], circuit_breaker={"failure_threshold": 5}) as env:
        await env.gw.trip_circuit("p")
        started = await env.start()
        assert await env.run_to_end(started.chain_id) == "failed"
        st = await env.state(started.chain_id)
        assert st.step_results[0].error == 'unexpected outcome: CircuitOpen { provider: "p", fallback_chain: [] }'


async def test_rerouted_step_counts_as_executed() -> None:
    breaker = {"providers": {"p": {"failure_threshold": 1, "recovery_timeout_seconds": 3600,
                                   "fallback_provider": "backup"}}}
    backup = RecordingProvider("backup", response={"via": "backup"})
    chain = {"name": "c", "steps": [step("a"), step("b", payload_template={"v": "{{prev.body.via}}"})]}
    async with Env([chain], [FailingProvider("p", kind="non_retryable"), backup], circuit_breaker=breaker,
                   config={"executor": {"max_retries": 0}}) as env:
        await env.gw.trip_circuit("p")
        started = await env.start()
        assert await env.run_to_end(started.chain_id) == "completed"
        assert backup.payloads[-1] == {"v": "backup"}


async def test_24_delay_is_measured_from_the_previous_step() -> None:
    chain = {"name": "c", "steps": [step("a"), step("b", delay_seconds=30)]}
    p = RecordingProvider("p")
    async with Env([chain], [p]) as env:
        t0 = env.clock.now()
        started = await env.start()
        env.clock.advance(1)
        assert await env.ticks(1) == [1]  # step a finishes at T0+1 s
        pending = f"ns:t1:pending_chains:{started.chain_id}"
        expected = epoch_ms(t0 + timedelta(seconds=31))
        assert await env.gw.state.get_ready_chains(expected - 1) == []
        assert await env.gw.state.get_ready_chains(expected) == [pending]
        env.clock.set(t0 + timedelta(seconds=10))
        assert await env.ticks(1) == [0]
        env.clock.set(t0 + timedelta(seconds=20))
        assert await env.ticks(1) == [0]
        env.clock.set(t0 + timedelta(seconds=31))
        assert await env.ticks(1) == [1]
        assert [a.action_type for a in p.actions] == ["a", "b"]


async def test_25_chain_timeout_is_enforced_at_the_deadline() -> None:
    chain = {"name": "c", "timeout_seconds": 60, "steps": [step("a"), step("b", delay_seconds=120)]}
    p = RecordingProvider("p")
    async with Env([chain], [p]) as env:
        t0 = env.clock.now()
        started = await env.start()
        await env.ticks(1)
        env.clock.set(t0 + timedelta(seconds=59))
        assert await env.ticks(1) == [0]
        env.clock.set(t0 + timedelta(seconds=60))  # upstream would wait for the delay (T0+120 s); D18
        assert await env.ticks(1) == [1]
        st = await env.state(started.chain_id)
        assert st.status == "timed_out" and st.execution_path == ["a", "b"]
        assert [a.action_type for a in p.actions] == ["a"]
        assert (await env.outcomes(started.chain_id))[-1] == "chain_timed_out"
        assert env.drain("chain_completed")[0].data["status"] == "timed_out"
        assert await env.gw.state.get_ready_chains(10**15) == []
        assert env.gw.metrics["chains_timed_out"] == 1


@pytest.mark.parametrize("key_suffix", ["", ":a1"])
async def test_26_claim_without_result_fails_as_interrupted(key_suffix: str) -> None:
    chain = {"name": "c", "steps": [step("a"), step("email", on_failure="skip"), step("c")]}
    p = RecordingProvider("p")
    async with Env([chain], [p]) as env:
        started = await env.start()
        await env.ticks(1)
        # A process ran `email` and died before saving its result.
        await env.gw.state.set(f"ns:t1:dedup:chain-step:{started.chain_id}:email{key_suffix}", "dispatched")
        await env.ticks(1)
        st = await env.state(started.chain_id)
        assert st.status == "failed"
        assert st.step_results[1].error == "step interrupted (duplicate dispatch detected)"
        assert [a.action_type for a in p.actions] == ["a"]
        assert (await env.outcomes(started.chain_id))[-2:] == ["chain_step_failed", "chain_failed"]


async def test_claims_are_removed_after_a_step() -> None:
    async with Env([RESEARCH], [RecordingProvider("p")]) as env:
        started = await env.start()
        await env.run_to_end(started.chain_id)
        assert await env.gw.state.scan_keys("ns", "t1", "dedup") == []


async def test_27_quota_block_and_degrade() -> None:
    chain = {"name": "c", "steps": [step("a"), step("b")]}
    quota = {"namespace": "ns", "tenant": "t1", "max_actions": 2, "window": "hourly", "overage_behavior": "block"}
    async with Env([chain], [RecordingProvider("p")], quota_policies=[quota]) as env:
        started = await env.start()  # the origin dispatch counts 1, step a counts 2, step b is over
        assert await env.run_to_end(started.chain_id) == "failed"
        st = await env.state(started.chain_id)
        assert st.step_results[1].error == "quota exceeded \u2014 chain step blocked"
        assert (await env.outcomes(started.chain_id))[-2:] == ["chain_step_quota_exceeded", "chain_failed"]
    degrade = dict(quota, overage_behavior={"degrade": {"fallback_provider": "backup-sms"}})
    backup = RecordingProvider("backup-sms")
    async with Env([chain], [RecordingProvider("p"), backup], quota_policies=[degrade]) as env:
        started = await env.start()
        assert await env.run_to_end(started.chain_id) == "completed"
        assert [a.action_type for a in backup.actions] == ["b"]
        records = await env.audit_records(started.chain_id)
        assert [r.provider for r in records if r.outcome == "chain_step_completed"] == ["p", "backup-sms"]


async def test_28_second_advancer_respects_the_delay() -> None:
    chain = {"name": "c", "steps": [step("a"), step("b", delay_seconds=30)]}
    p = RecordingProvider("p")
    async with Env([chain], [p]) as env:
        started = await env.start()
        engine = env.gw._chains
        # Process A advances; process B had seen the chain in the ready index too.
        assert await engine.advance("ns", "t1", started.chain_id) is True
        assert await engine.advance("ns", "t1", started.chain_id) is False
        assert [a.action_type for a in p.actions] == ["a"]


async def test_advance_skips_a_chain_another_process_holds() -> None:
    p = RecordingProvider("p")
    async with Env([RESEARCH], [p]) as env:
        started = await env.start()
        guard = await env.gw._lock.try_acquire(f"chain:{started.chain_id}", 60)
        assert guard is not None
        assert await env.ticks(1) == [0] and p.actions == []
        await guard.release()
        assert await env.ticks(1) == [1]


async def test_29_cancel() -> None:
    chain = {"name": "c", "steps": [step("a"), step("b", delay_seconds=60)]}
    webhook = RecordingProvider("webhook")
    async with Env([chain], [RecordingProvider("p"), webhook]) as env:
        started = await env.start()
        await env.ticks(1)
        detail = await env.gw.cancel_chain("ns", "t1", started.chain_id, reason="operator abort", cancelled_by="alice")
        assert detail.status == "cancelled" and detail.cancel_reason == "operator abort"
        (note,) = webhook.actions
        assert note.action_type == "chain_cancelled"
        assert note.payload == {"chain_id": started.chain_id, "chain_name": "c", "cancel_reason": "operator abort",
                                "cancelled_by": "alice", "current_step": 1, "total_steps": 2,
                                "cancelled_at": note.payload["cancelled_at"]}
        with pytest.raises(ChainError, match=r"^chain error: chain is not running \(status: Cancelled\)$"):
            await env.gw.cancel_chain("ns", "t1", started.chain_id)
        with pytest.raises(ChainError, match="chain error: chain not found: nope"):
            await env.gw.cancel_chain("ns", "t1", "nope")
        env.clock.advance(120)
        assert await env.ticks(1) == [0]
        assert (await env.outcomes(started.chain_id))[-1] == "chain_cancelled"
        assert env.drain("chain_completed")[-1].data["status"] == "cancelled"
        assert env.gw.metrics["chains_cancelled"] == 1
    custom = dict(chain, on_cancel={"provider": "slack", "action_type": "notify"})
    slack = RecordingProvider("slack")
    async with Env([custom], [RecordingProvider("p"), slack]) as env:
        started = await env.start()
        await env.gw.cancel_chain("ns", "t1", started.chain_id, "x")
        assert [a.action_type for a in slack.actions] == ["notify"]


async def test_30_finished_chains_are_kept_for_the_ttl_and_listable() -> None:
    chains = {"definitions": [RESEARCH], "completed_chain_ttl_seconds": 604800}
    async with Env(chains, [RecordingProvider("p")]) as env:
        started = await env.start()
        env.clock.advance(1)
        running = await env.start()
        await env.gw.cancel_chain("ns", "t1", running.chain_id)
        env.clock.advance(1)
        other = await env.start()
        await env.run_to_end(started.chain_id)
        listed = await env.gw.list_chains("ns", "t1", status="completed")  # oldest first
        assert [c.chain_id for c in listed] == [started.chain_id, other.chain_id]  # D18: finished ones listed
        assert [c.chain_id for c in await env.gw.list_chains("ns", "t1", status="cancelled")] == [running.chain_id]
        assert len(await env.gw.list_chains("ns", "t1")) == 3
        assert await env.gw.list_chains("ns", "other") == []
        env.clock.advance(604800 - 3)
        assert await env.gw.get_chain("ns", "t1", started.chain_id) is not None
        env.clock.advance(4)
        assert await env.gw.get_chain("ns", "t1", started.chain_id) is None
        assert await env.gw.list_chains("ns", "t1", status="completed") == []
        summary = listed[0].to_dict()
        assert set(summary) == {"chain_id", "chain_name", "status", "current_step", "total_steps", "started_at",
                                "updated_at"}


async def test_unknown_status_filter_is_an_error() -> None:
    from acteon import UsageError

    async with Env([RESEARCH], [RecordingProvider("p")]) as env:
        with pytest.raises(UsageError, match="unknown chain status 'done'"):
            await env.gw.list_chains("ns", "t1", status="done")


async def test_unknown_provider_is_an_ordinary_failure() -> None:
    chain = {"name": "c", "steps": [step("a", provider="nobody", on_failure="skip"), step("b")]}
    async with Env([chain], [RecordingProvider("p")]) as env:
        started = await env.start()
        assert await env.run_to_end(started.chain_id) == "completed"
        st = await env.state(started.chain_id)
        assert st.step_results[0].error == "provider not found: nobody"


async def test_rules_do_not_apply_to_step_actions() -> None:
    # The step's action type matches the starting rule; it must not start another chain.
    chain = {"name": "loop", "steps": [step("loop"), step("b")]}
    p = RecordingProvider("p")
    async with Env([chain], [p], rules=start_rule("loop")) as env:
        started = await env.start("loop")
        assert await env.run_to_end(started.chain_id) == "completed"
        assert len(await env.gw.list_chains("ns", "t1")) == 1
        assert env.gw.metrics["chains_started"] == 1


async def test_detail_view() -> None:
    async with Env([RESEARCH], [RecordingProvider("p", response=responder)]) as env:
        started = await env.start()
        await env.ticks(1)
        detail = await env.gw.get_chain("ns", "t1", started.chain_id)
        assert detail is not None
        data = detail.to_dict()
        assert data["steps"][0] == {"name": "search", "provider": "p", "status": "completed",
                                    "response_body": {"hits": 3}, "error": None,
                                    "completed_at": data["steps"][0]["completed_at"]}
        assert data["steps"][1]["status"] == "pending" and data["expires_at"] is None
        assert data["execution_path"] == ["search", "summarize"]
        assert "cancel_reason" not in data
        assert [(n["step"], n["status"]) for n in data["execution_tree"]] == [("search", "completed"),
                                                                                ("summarize", "running")]
        assert await env.gw.get_chain("ns", "t1", "missing") is None


async def test_unreadable_state_is_reported_and_retried_later() -> None:
    async with Env([RESEARCH], [RecordingProvider("p")]) as env:
        started = await env.start()
        await env.gw.state.set(f"ns:t1:chain:{started.chain_id}", "{not json")
        with pytest.raises(ChainError, match="chain error: failed to deserialize chain state"):
            await env.gw._chains.advance("ns", "t1", started.chain_id)
        assert await env.ticks(1) == [0]  # logged, not retried at once, other jobs unaffected
        pending = f"ns:t1:pending_chains:{started.chain_id}"
        assert await env.gw.state.get_ready_chains(epoch_ms(env.clock.now())) == []
        assert await env.gw.state.get_ready_chains(epoch_ms(env.clock.now() + timedelta(seconds=60))) == [pending]


async def test_vanished_state_drops_its_index_entry() -> None:
    async with Env([RESEARCH], [RecordingProvider("p")]) as env:
        started = await env.start()
        await env.gw.state.delete(f"ns:t1:chain:{started.chain_id}")
        assert await env.ticks(1) == [0]
        assert await env.gw.state.get_ready_chains(10**15) == []


async def test_dry_run_starts_nothing() -> None:
    from acteon.outcomes import DryRun

    async with Env([RESEARCH], [RecordingProvider("p")]) as env:
        outcome = await env.gw.dispatch(Action(namespace="ns", tenant="t1", provider="p", action_type="research"),
                                        dry_run=True)
        assert outcome == DryRun("chain", "start-research", "p")
        assert await env.gw.list_chains("ns", "t1") == [] and env.gw.metrics["chains_started"] == 0


async def test_61_chain_id_filter_selects_one_chain() -> None:
    from acteon import EventFilter

    async with Env([RESEARCH], [RecordingProvider("p")]) as env:
        first = await env.start()
        second = await env.start()
        only_first = env.gw.events(EventFilter(chain_id=first.chain_id))
        by_action = env.gw.events(action_id=(await env.state(second.chain_id)).origin_action.id)
        await env.run_to_end(first.chain_id)
        seen = []
        while (event := only_first.get_nowait()) is not None:
            seen.append(event)
        assert {e.type for e in seen} == {"chain_advanced", "chain_step_completed", "chain_completed"}
        assert {e.chain_id for e in seen} == {first.chain_id}
        mine = []
        while (event := by_action.get_nowait()) is not None:
            mine.append(event)
        assert mine and {e.chain_id for e in mine} == {second.chain_id}
        await only_first.aclose()
        await by_action.aclose()

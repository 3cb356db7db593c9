"""Head extensions: retry (§4.2), parallel groups (§4.3), sub-chains (§4.4), timers (§4.5),
signals (§4.6); workflows.md §14 scenarios 31-38."""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any

import anyio
import pytest

from acteon import Action, ChainError, ProviderExecutionFailed
from acteon.chains._steps import child_id_for
from acteon.providers import FunctionProvider
from acteon.testing import FailingProvider, FakeClock, RecordingProvider
from tests.chains._helpers import Env, step

pytestmark = pytest.mark.anyio

NO_EXECUTOR_RETRIES = {"executor": {"max_retries": 0}}


# ----------------------------------------------------------------------------- retry


async def test_31_retry_with_backoff_then_success() -> None:
    flaky = FailingProvider("p", script=["retryable", "retryable", "ok"])
    chain = {"name": "c", "steps": [step("a", retry={"max_retries": 3, "backoff_ms": 500, "strategy": "exponential",
                                                     "jitter_ms": 100})]}
    async with Env([chain], [flaky], config=NO_EXECUTOR_RETRIES) as env:
        env.gw._chains.rng = random.Random(7)
        jitters = [random.Random(7).randint(0, 100)]
        started = await env.start()
        t0 = env.clock.now()
        assert await env.ticks(1) == [1]
        st = await env.state(started.chain_id)
        assert st.status == "running" and st.step_results[0] is None
        assert st.ready_at == t0 + timedelta(milliseconds=500 + jitters[0])
        env.clock.advance(0.4)
        assert await env.ticks(1) == [0]  # not due yet
        env.clock.set(st.ready_at)
        assert await env.ticks(1) == [1]
        st = await env.state(started.chain_id)
        delay = (st.ready_at - env.clock.now()).total_seconds() * 1000
        assert 1000 <= delay <= 1100  # 500 * 2^(2-1) plus jitter up to 100 ms
        env.clock.set(st.ready_at)
        assert await env.ticks(1) == [1]
        st = await env.state(started.chain_id)
        assert st.status == "completed" and st.step_results[0].attempt == 3
        assert [h["success"] for h in st.step_history[0]] == [False, False, True]
        assert st.step_attempts == [3]
        outcomes = await env.outcomes(started.chain_id)
        assert outcomes.count("chain_step_retrying") == 2 and outcomes[-1] == "chain_completed"
        assert flaky.calls == 3


async def test_31_non_retryable_error_skips_retries() -> None:
    bad = FailingProvider("p", kind="non_retryable")
    chain = {"name": "c", "steps": [step("a", retry={"max_retries": 3, "backoff_ms": 1})]}
    async with Env([chain], [bad], config=NO_EXECUTOR_RETRIES) as env:
        started = await env.start()
        await env.ticks(1)
        assert (await env.state(started.chain_id)).status == "failed" and bad.calls == 1


async def test_retries_exhausted_apply_the_policy() -> None:
    bad = FailingProvider("p")
    chain = {"name": "c", "steps": [step("a", on_failure="skip", retry={"max_retries": 2, "backoff_ms": 10,
                                                                        "strategy": "linear"}),
                                    step("b", provider="q")]}
    async with Env([chain], [bad, RecordingProvider("q")], config=NO_EXECUTOR_RETRIES) as env:
        started = await env.start()
        assert await env.run_to_end(started.chain_id, advance=0.05) == "completed"
        assert bad.calls == 3  # 1 + 2 retries
        st = await env.state(started.chain_id)
        assert st.step_attempts[0] == 3 and not st.step_results[0].success


# ----------------------------------------------------------------------------- parallel


class Slow(FunctionProvider):
    """Sleeps on the gateway clock (a FakeClock jumps) before answering."""

    def __init__(self, name: str, clock: FakeClock, seconds: float, body: Any = None, fail: bool = False) -> None:
        async def run(action: Action) -> Any:
            await clock.sleep(seconds)
            if fail:
                raise ProviderExecutionFailed(f"{name} broke")
            return body if body is not None else {"from": name}

        super().__init__(name, run)
        self.calls = 0


def group(*subs: dict[str, Any], **options: Any) -> dict[str, Any]:
    return {"steps": list(subs), **options}


async def test_32_all_fail_fast_abandons_the_rest() -> None:
    clock = FakeClock()
    gate = anyio.Event()

    async def pager(action: Action) -> Any:
        await gate.wait()  # never released: only the failure can end the group
        return {"paged": True}

    chain = {"name": "c", "steps": [
        {"name": "notify", "on_failure": "skip", "parallel": group(step("slack"), step("email", provider="bad"),
                                                                   step("pager", provider="pager"))},
        step("after", payload_template={"merged": "{{prev.body}}"}),
    ]}
    providers = [RecordingProvider("p", response={"ts": 1}), FailingProvider("bad", kind="non_retryable"),
                 FunctionProvider("pager", pager)]
    async with Env([chain], providers, clock=clock, config=NO_EXECUTOR_RETRIES) as env:
        started = await env.start()
        await env.ticks(1)
        st = await env.state(started.chain_id)
        parent = st.step_results[0]
        assert parent.success is False and parent.error == "one or more parallel sub-steps failed"
        assert parent.response_body == {"slack": {"ts": 1}}
        assert set(st.parallel_sub_results) == {"slack", "email"}  # pager abandoned: no result
        assert st.status == "running" and st.parallel_state is None
        records = await env.audit_records(started.chain_id)
        subs = [r for r in records if r.outcome_details.get("is_parallel_sub_step")]
        assert sorted(r.outcome_details["step_name"] for r in subs) == ["email", "slack"]
        parent_record = next(r for r in records if r.outcome_details.get("is_parallel_step"))
        assert (parent_record.provider, parent_record.action_type, parent_record.outcome) == (
            "parallel", "notify", "chain_step_skipped")
        assert parent_record.outcome_details["parallel_join_policy"] == "all"
        await env.ticks(1)  # skip => the chain goes on
        st = await env.state(started.chain_id)
        assert st.status == "completed"
        assert providers[0].payloads[-1] == {"merged": {"slack": {"ts": 1}}}
        detail = await env.gw.get_chain("ns", "t1", started.chain_id)
        assert detail is not None
        tree = detail.execution_tree[0]
        assert tree["kind"] == "parallel" and tree["status"] == "failed"
        assert {c["step"]: c["status"] for c in tree["children"]} == {"slack": "completed", "email": "failed",
                                                                      "pager": "abandoned"}


async def test_all_best_effort_waits_for_everyone() -> None:
    chain = {"name": "c", "steps": [{"name": "g", "parallel": group(step("a", provider="bad"), step("b"),
                                                                    on_failure="best_effort")}]}
    async with Env([chain], [RecordingProvider("p"), FailingProvider("bad", kind="non_retryable")],
                   config=NO_EXECUTOR_RETRIES) as env:
        started = await env.start()
        await env.ticks(1)
        st = await env.state(started.chain_id)
        assert set(st.parallel_sub_results) == {"a", "b"} and st.status == "failed"


async def test_all_success_merges_bodies_and_branches_on_them() -> None:
    chain = {"name": "c", "steps": [
        {"name": "g", "parallel": group(step("sev", payload_template={"i": "{{step_index}}"}), step("b"),
                                        max_concurrency=1),
         "branches": [{"field": "body.sev.severity", "operator": "eq", "value": "high", "target": "page"}]},
        step("ignore"),
        step("page", payload_template={"s": "{{steps.sev.body.severity}}", "all": "{{prev.body}}"}),
    ]}
    p = RecordingProvider("p", response=lambda a: {"severity": "high"} if a.action_type == "sev" else {"x": 1})
    async with Env([chain], [p]) as env:
        started = await env.start()
        assert await env.run_to_end(started.chain_id) == "completed"
        st = await env.state(started.chain_id)
        assert st.execution_path == ["g", "page"]
        assert p.payloads[-1] == {"s": "high", "all": {"sev": {"severity": "high"}, "b": {"x": 1}}}
        assert {"i": 0} in p.payloads


async def test_33_any_join_ends_at_the_first_success() -> None:
    clock = FakeClock()
    chain = {"name": "c", "steps": [
        {"name": "race", "parallel": group(step("fast", provider="fast"), step("slow", provider="slow"),
                                           step("broken", provider="bad"), join="any")},
        step("use", payload_template={"ts": "{{steps.fast.body.ts}}"}),
    ]}
    gate = anyio.Event()

    async def slow(action: Action) -> Any:
        await gate.wait()
        return {"ts": 2}

    p = RecordingProvider("p")
    providers = [RecordingProvider("fast", response={"ts": 1}), FunctionProvider("slow", slow),
                 FailingProvider("bad", kind="non_retryable"), p]
    async with Env([chain], providers, clock=clock, config=NO_EXECUTOR_RETRIES) as env:
        started = await env.start()
        assert await env.run_to_end(started.chain_id) == "completed"
        st = await env.state(started.chain_id)
        assert st.step_results[0].success and st.step_results[0].response_body == {"fast": {"ts": 1}}
        assert "slow" not in st.parallel_sub_results
        assert p.payloads == [{"ts": 1}]


@pytest.mark.parametrize("policy,status", [(None, "failed"), ("skip", "completed")])
async def test_34_group_timeout_honours_on_failure(policy: str | None, status: str) -> None:
    clock = FakeClock()
    extra = {} if policy is None else {"on_failure": policy}
    chain = {"name": "c", "steps": [
        {"name": "g", "parallel": group(step("a", provider="slow"), step("b", provider="slow"), timeout_seconds=2),
         **extra},
        step("next"),
    ]}
    async with Env([chain], [Slow("slow", clock, 5), RecordingProvider("p")], clock=clock) as env:
        started = await env.start()
        assert await env.run_to_end(started.chain_id) == status
        st = await env.state(started.chain_id)
        assert st.step_results[0].error == "parallel group timed out after 2s"
        assert st.parallel_sub_results == {}
        assert await env.gw.state.scan_keys("ns", "t1", "dedup") == []


async def test_group_timeout_in_real_time() -> None:
    async def hang(action: Action) -> Any:
        await anyio.sleep(30)

    chain = {"name": "c", "steps": [{"name": "g", "parallel": group(step("a", provider="hang"), timeout_seconds=0.2)}]}
    async with Env([chain], [FunctionProvider("hang", hang)]) as env:
        started = await env.start()
        with anyio.fail_after(10):
            await env.ticks(1)
        st = await env.state(started.chain_id)
        assert st.status == "failed" and st.step_results[0].error == "parallel group timed out after 200ms"


async def test_parallel_resume_does_not_rerun_finished_sub_steps() -> None:
    # A process died mid-group: `a` finished and was saved, `b` was called but not saved.
    p = RecordingProvider("p")
    chain = {"name": "c", "steps": [{"name": "g", "parallel": group(step("a"), step("b"), step("c"),
                                                                    on_failure="best_effort")}]}
    async with Env([chain], [p]) as env:
        started = await env.start()
        engine = env.gw._chains
        st, version = await engine.load("ns", "t1", started.chain_id)
        from acteon.chains._state import StepResult

        now = env.clock.now()
        st.parallel_state = {"step_name": "g", "step_index": 0, "sub_steps": {"a": "completed", "b": "pending",
                                                                              "c": "pending"},
                             "started_at": "2026-01-15T12:00:00Z", "expires_at": None}
        st.status = "waiting_parallel"
        st.parallel_sub_results["a"] = StepResult("a", True, {"ok": 1}, None, now, 1, now)
        await env.gw.state.compare_and_swap(f"ns:t1:chain:{started.chain_id}", version, st.to_json())
        await env.gw.state.set(f"ns:t1:dedup:chain-step:{started.chain_id}:g:b", "dispatched")
        await env.ticks(1)
        st = await env.state(started.chain_id)
        assert [a.action_type for a in p.actions] == ["c"]
        assert st.parallel_sub_results["b"].error == "step interrupted (duplicate dispatch detected)"
        assert st.status == "failed"


# ----------------------------------------------------------------------------- sub-chains


PAGE_AND_NOTIFY = {"name": "page-and-notify", "timeout_seconds": 300,
                   "steps": [step("page"), step("notify", provider="final")]}


async def test_35_sub_chain_result_deadline_and_templates() -> None:
    parent = {"name": "incident", "timeout_seconds": 60, "steps": [
        step("triage"),
        {"name": "escalate", "sub_chain": "page-and-notify"},
        step("close", payload_template={"ok": "{{prev.body.ok}}", "origin": "{{origin.payload.id}}"}),
    ]}
    p = RecordingProvider("p")
    final = RecordingProvider("final", response={"ok": True})
    async with Env([parent, PAGE_AND_NOTIFY], [p, final]) as env:
        t0 = env.clock.now()
        started = await env.start("incident", payload={"id": "INC-1"})
        await env.ticks(2)  # triage; then the child starts and the parent waits
        parent_state = await env.state(started.chain_id)
        assert parent_state.status == "waiting_sub_chain"
        (child_id,) = parent_state.child_chain_ids
        assert child_id == child_id_for(started.chain_id, 1)
        child = await env.state(child_id)
        assert child.parent_chain_id == started.chain_id and child.parent_step_index == 1
        assert child.expires_at == t0 + timedelta(seconds=60)  # the parent's deadline is sooner than 300 s
        assert child.origin_action.id == parent_state.origin_action.id
        assert await env.run_to_end(started.chain_id) == "completed"
        st = await env.state(started.chain_id)
        assert st.step_results[1].step_name == "sub_chain:page-and-notify"
        assert st.step_results[1].response_body == {"ok": True}
        assert p.payloads[-1] == {"ok": True, "origin": "INC-1"}
        assert (await env.state(child_id)).status == "completed"
        # The child woke the parent: no 5 s poll was needed (the clock never moved).
        assert env.clock.now() == t0
        detail = await env.gw.get_chain("ns", "t1", started.chain_id)
        assert detail is not None
        sub = detail.execution_tree[1]["sub_chain"]
        assert sub["chain_id"] == child_id and [n["step"] for n in sub["path"]] == ["page", "notify"]


@pytest.mark.parametrize("policy,status", [(None, "failed"), ("skip", "completed"), ("dlq", "failed")])
async def test_failed_sub_chain_applies_the_step_policy(policy: str | None, status: str) -> None:
    child = {"name": "child", "steps": [step("x", provider="bad")]}
    extra = {} if policy is None else {"on_failure": policy}
    parent = {"name": "parent", "steps": [{"name": "run", "sub_chain": "child", **extra}, step("after")]}
    async with Env([parent, child], [RecordingProvider("p"), FailingProvider("bad", kind="non_retryable")]) as env:
        started = await env.start("parent")
        assert await env.run_to_end(started.chain_id) == status
        st = await env.state(started.chain_id)
        assert st.step_results[0].error == "sub-chain `child` Failed"


async def test_35_cancelling_the_parent_cancels_the_child() -> None:
    parent = {"name": "incident", "steps": [{"name": "escalate", "sub_chain": "page-and-notify"}]}
    slow_child = dict(PAGE_AND_NOTIFY, steps=[step("page", delay_seconds=600), step("notify", provider="final")])
    async with Env([parent, slow_child], [RecordingProvider("p"), RecordingProvider("final"),
                                          RecordingProvider("webhook")]) as env:
        started = await env.start("incident")
        await env.ticks(1)
        child_id = (await env.state(started.chain_id)).child_chain_ids[0]
        await env.gw.cancel_chain("ns", "t1", started.chain_id, "stop", "bob")
        child = await env.state(child_id)
        assert child.status == "cancelled"
        assert child.cancel_reason == f"parent chain {started.chain_id} cancelled" and child.cancelled_by == "bob"


async def test_missing_sub_chain_definition_fails_the_step() -> None:
    parent = {"name": "parent", "steps": [{"name": "run", "sub_chain": "child"}]}
    async with Env([parent, {"name": "child", "steps": [step("x")]}], [RecordingProvider("p")]) as env:
        started = await env.start("parent")
        env.gw._chains.defs.pop("child")  # e.g. a process that does not know it
        await env.ticks(1)
        st = await env.state(started.chain_id)
        assert st.status == "failed"
        assert st.step_results[0].error == "chain error: sub-chain configuration not found: child"


# ----------------------------------------------------------------------------- timers


async def test_38_timer_waits_then_fires() -> None:
    chain = {"name": "c", "steps": [step("a"), {"name": "wait", "timer": {"duration_seconds": 3600}},
                                    step("b", payload_template={"at": "{{prev.body.fired_at}}"})]}
    p = RecordingProvider("p")
    async with Env([chain], [p]) as env:
        started = await env.start()
        await env.ticks(2)
        st = await env.state(started.chain_id)
        assert st.status == "waiting_timer" and st.wait_state["kind"] == "timer"
        env.clock.advance(1800)
        assert await env.ticks(1) == [0]  # early: nothing due
        await env.gw._chains.advance("ns", "t1", started.chain_id)  # an early wake only re-arms
        assert (await env.state(started.chain_id)).status == "waiting_timer"
        env.clock.advance(1800)
        assert await env.ticks(1) == [1]
        st = await env.state(started.chain_id)
        assert st.step_results[1].response_body == {"fired_at": "2026-01-15T13:00:00Z"}
        await env.ticks(1)
        assert p.payloads[-1] == {"at": "2026-01-15T13:00:00Z"}


async def test_timer_until_in_the_past_fires_next_tick() -> None:
    chain = {"name": "c", "steps": [{"name": "wait", "timer": {"until": "2020-01-01T00:00:00Z"}}, step("b")]}
    async with Env([chain], [RecordingProvider("p")]) as env:
        started = await env.start()
        assert await env.run_to_end(started.chain_id) == "completed"


async def test_chain_deadline_cuts_a_timer_short() -> None:
    chain = {"name": "c", "timeout_seconds": 100, "steps": [{"name": "wait", "timer": {"duration_seconds": 3600}}]}
    async with Env([chain], [RecordingProvider("p")]) as env:
        started = await env.start()
        await env.ticks(1)
        env.clock.advance(100)
        await env.ticks(1)
        assert (await env.state(started.chain_id)).status == "timed_out"


# ----------------------------------------------------------------------------- signals


SIGNAL_CHAIN = {"name": "c", "steps": [
    step("a", delay_seconds=10),
    {"name": "approval", "wait_for_signal": {"signal_name": "approved"}},
    {"name": "again", "wait_for_signal": {"signal_name": "approved"}},
    step("b", payload_template={"first": "{{steps.approval.body.by}}", "second": "{{prev.body.by}}"}),
]}


async def test_36_early_signals_are_buffered_and_consumed_fifo() -> None:
    p = RecordingProvider("p")
    async with Env([SIGNAL_CHAIN], [p]) as env:
        started = await env.start()
        await env.gw.signal_chain("ns", "t1", started.chain_id, "approved", {"by": "renzo"})
        await env.gw.signal_chain("ns", "t1", started.chain_id, "approved", {"by": "ada"})
        assert await env.run_to_end(started.chain_id, advance=10) == "completed"
        assert p.payloads[-1] == {"first": "renzo", "second": "ada"}
        assert await env.gw.state.get(f"ns:t1:chain_signal:{started.chain_id}:approved") is None


async def test_signal_wakes_a_waiting_chain() -> None:
    chain = {"name": "c", "steps": [{"name": "w", "wait_for_signal": {"signal_name": "go"}}, step("b")]}
    async with Env([chain], [RecordingProvider("p")]) as env:
        started = await env.start()
        await env.ticks(1)
        assert (await env.state(started.chain_id)).status == "waiting_signal"
        assert await env.gw.state.get_ready_chains(10**15) == []  # nothing to wake it but a signal
        await env.gw.signal_chain("ns", "t1", started.chain_id, "go", 1)
        assert await env.run_to_end(started.chain_id) == "completed"
        with pytest.raises(ChainError, match=r"chain is not active \(status: Completed\)"):
            await env.gw.signal_chain("ns", "t1", started.chain_id, "go")
        with pytest.raises(ChainError, match="signal name must not be empty"):
            await env.gw.signal_chain("ns", "t1", started.chain_id, "")


async def test_37_signal_timeout_jumps_to_on_timeout() -> None:
    chain = {"name": "c", "steps": [
        {"name": "w", "wait_for_signal": {"signal_name": "approved", "timeout_seconds": 60, "on_timeout": "escalate"}},
        step("normal"),
        step("escalate", payload_template={"why": "{{prev.error}}"}),
    ]}
    p = RecordingProvider("p")
    async with Env([chain], [p]) as env:
        started = await env.start()
        await env.ticks(1)
        env.clock.advance(59)
        assert await env.ticks(1) == [0]
        env.clock.advance(1)
        assert await env.run_to_end(started.chain_id) == "completed"
        st = await env.state(started.chain_id)
        assert st.step_results[0].error == "signal wait timed out: approved"
        assert st.execution_path == ["w", "escalate"]
        assert p.payloads == [{"why": "signal wait timed out: approved"}]
        assert "chain_step_timed_out" in await env.outcomes(started.chain_id)


async def test_signal_timeout_without_target_applies_the_policy() -> None:
    chain = {"name": "c", "steps": [{"name": "w", "wait_for_signal": {"signal_name": "x", "timeout_seconds": 5}}]}
    async with Env([chain], [RecordingProvider("p")]) as env:
        started = await env.start()
        assert await env.run_to_end(started.chain_id, advance=5) == "failed"


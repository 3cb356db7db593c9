"""Parallel steps: fan out to sub-steps, join ``all`` or ``any`` (workflows.md §4.3).

The group runs inside one advance, under the chain lock. Differences from
upstream, all toward "each side effect once, policies honoured":

* each sub-step's result is saved as soon as it finishes (upstream saves the
  whole group at the end, so a crash re-runs finished sub-steps); a sub-step
  whose claim exists without a result is reported as interrupted, never re-run;
* a group timeout applies the parent step's ``on_failure`` (upstream always
  fails the chain, although its docs say the policy applies);
* the deadline is read from the gateway clock too, so a sub-step that finishes
  after it counts as late even when the clock is a ``FakeClock``;
* after the group the chain's status is ``running`` again.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import anyio

from acteon._action import Action
from acteon._dlq import capture_dead_letters
from acteon._timefmt import coerce_datetime, format_rfc3339, format_rust_duration
from acteon.chains._model import DEFAULT_PARALLEL_TIMEOUT, ChainStepConfig, ParallelConfig
from acteon.chains._records import StepAudit
from acteon.chains._state import StepResult
from acteon.chains._steps import (
    INTERRUPTED,
    claim_ttl,
    execute_step_action,
    push_dead_letter,
    rust_debug,
    wants_dead_letter,
)
from acteon.chains._templates import TemplateRenderError, render
from acteon.outcomes import Executed, Failed, Outcome, Rerouted

if TYPE_CHECKING:
    from acteon.chains._engine import ChainEngine, Run

GROUP_FAILED = "one or more parallel sub-steps failed"


def _claim_key(run: Run, parent: str, sub: str) -> str:
    st = run.state
    return f"{st.namespace}:{st.tenant}:dedup:chain-step:{st.chain_id}:{parent}:{sub}"


async def run_parallel(eng: ChainEngine, run: Run, index: int, step: ChainStepConfig) -> None:
    group = step.parallel
    assert group is not None
    st = run.state
    now = eng.now()
    ps = st.parallel_state
    if ps is None or ps.get("step_index") != index:
        timeout = group.timeout_seconds
        ps = {
            "step_name": step.name,
            "step_index": index,
            "sub_steps": {sub.name: "pending" for sub in group.steps},
            "started_at": format_rfc3339(now),
            "expires_at": None if timeout is None else format_rfc3339(now + timedelta(seconds=timeout)),
        }
        for sub in group.steps:
            st.parallel_sub_results.pop(sub.name, None)
        st.parallel_state = ps
        st.status = "waiting_parallel"
        st.updated_at = now
        if not await eng.save(run):
            return
    if ps.get("expires_at"):
        deadline = coerce_datetime(ps["expires_at"])
    else:
        deadline = coerce_datetime(ps["started_at"]) + timedelta(seconds=DEFAULT_PARALLEL_TIMEOUT)
    runner = _GroupRunner(eng, run, index, step, group, deadline)
    await runner.run()
    await runner.finish()


class _GroupRunner:
    def __init__(self, eng: ChainEngine, run: Run, index: int, step: ChainStepConfig, group: ParallelConfig,
                 deadline: datetime) -> None:
        self.eng = eng
        self.run_ = run
        self.index = index
        self.step = step
        self.group = group
        self.deadline = deadline
        self.timed_out = False
        self.write_lock = anyio.Lock()
        self.durations: list[int] = []
        self.ctx = eng.template_context(run, index)

    async def run(self) -> None:
        st = self.run_.state
        pending = [s for s in self.group.steps if s.name not in st.parallel_sub_results]
        remaining = (self.deadline - self.eng.now()).total_seconds()
        if remaining <= 0:
            self.timed_out = True
            return
        if not pending:
            return
        limit = anyio.CapacityLimiter(self.group.max_concurrency or len(pending))
        with anyio.move_on_after(remaining) as scope:
            async with anyio.create_task_group() as tg:
                for sub in pending:
                    tg.start_soon(self._one, sub, limit, tg.cancel_scope)
        if scope.cancelled_caught:
            self.timed_out = True

    async def _one(self, sub: ChainStepConfig, limit: anyio.CapacityLimiter, group_scope: anyio.CancelScope) -> None:
        async with limit:
            eng, run = self.eng, self.run_
            st = run.state
            started = eng.now()
            claim = _claim_key(run, self.step.name, sub.name)
            payload: Any = None
            if not await eng.store.check_and_set(claim, "dispatched", claim_ttl(eng, run, started)):
                outcome: Outcome = Failed("INTERRUPTED", INTERRUPTED, False, 0)
            else:
                try:
                    payload = render(sub.payload_template, self.ctx)
                except TemplateRenderError as exc:
                    outcome = Failed("TEMPLATE_ERROR", str(exc), False, 0)
                else:
                    action = Action(
                        id=str(uuid.uuid4()), namespace=st.namespace, tenant=st.tenant, provider=sub.provider,
                        action_type=sub.action_type, payload=payload, created_at=started,
                        trace_context=dict(st.origin_action.trace_context),
                    )
                    # A sub-step's failure is the group's to report: its dead letters are held back.
                    with capture_dead_letters():
                        outcome, action = await execute_step_action(eng, action)
            completed = eng.now()
            if completed > self.deadline:
                # Finished after the group's deadline (by the gateway clock): too late to count.
                self.timed_out = True
                group_scope.cancel()
                return
            success = isinstance(outcome, Executed | Rerouted)
            if success:
                assert isinstance(outcome, Executed | Rerouted)
                result = StepResult(sub.name, True, outcome.response.body, None, completed, 1, started)
            elif isinstance(outcome, Failed):
                result = StepResult(sub.name, False, None, outcome.message, completed, 1, started)
            else:
                result = StepResult(sub.name, False, None, f"unexpected outcome: {rust_debug(outcome)}", completed,
                                    1, started)
            duration = max(0, int((completed - started).total_seconds() * 1000))
            self.durations.append(duration)
            # Save and audit even if a sibling cancels the group meanwhile: the call happened.
            with anyio.CancelScope(shield=True):
                async with self.write_lock:
                    st.parallel_sub_results[sub.name] = result
                    if st.parallel_state is not None:
                        st.parallel_state["sub_steps"][sub.name] = "completed" if success else "failed"
                    st.updated_at = completed
                    await eng.save(run)
                audit = StepAudit(sub.provider, sub.action_type,
                                  "chain_step_completed" if success else "chain_step_failed", payload, duration,
                                  {"is_parallel_sub_step": True, "parent_step_name": self.step.name,
                                   "parent_step_index": self.index})
                await eng.recorder.step(st, self.index, sub.name, result.error, result.response_body, audit,
                                        completed)
            if self.group.join == "any" and success:
                group_scope.cancel()
            elif self.group.join == "all" and not success and self.group.on_failure == "fail_fast":
                group_scope.cancel()

    async def finish(self) -> None:
        eng, run, step, group = self.eng, self.run_, self.step, self.group
        st = run.state
        now = eng.now()
        subs = [(s.name, st.parallel_sub_results.get(s.name)) for s in group.steps]
        recorded = [r for _, r in subs if r is not None]
        merged = {name: r.response_body for name, r in subs if r is not None and r.success}
        error: str | None
        if self.timed_out:
            total = (self.deadline - coerce_datetime((st.parallel_state or {}).get("started_at")
                                                     or format_rfc3339(now))).total_seconds()
            success, error = False, f"parallel group timed out after {format_rust_duration(total)}"
        elif group.join == "any":
            success = any(r.success for r in recorded)
            error = None if success else GROUP_FAILED
        else:
            success = len(recorded) == len(group.steps) and all(r.success for r in recorded)
            error = None if success else GROUP_FAILED
        for name, _ in subs:
            await eng.store.delete(_claim_key(run, step.name, name))
        st.parallel_state = None
        st.status = "running"
        started = min((r.started_at for r in recorded if r.started_at is not None), default=now)
        result = StepResult(step.name, success, merged, error, now, 1, started)
        policy = step.on_failure
        if success:
            outcome = "chain_step_completed"
        elif policy == "skip":
            outcome = "chain_step_skipped"
        else:
            outcome = "chain_step_failed"
        details = {
            "is_parallel_step": True,
            "parallel_join_policy": group.join,
            "parallel_sub_step_results": [
                {"step_name": name, "success": r.success, "completed_at": format_rfc3339(r.completed_at or now),
                 **({} if r.error is None else {"error": r.error})}
                for name, r in subs if r is not None
            ],
        }
        audit = StepAudit("parallel", step.name, outcome, merged, max(self.durations, default=0), details)
        if not success and policy != "skip" and wants_dead_letter(eng, run, policy):
            synthetic = Action(namespace=st.namespace, tenant=st.tenant, provider=step.provider or "parallel",
                               action_type=step.action_type or step.name, payload=merged)
            push_dead_letter(eng, [], synthetic, error or GROUP_FAILED, 1)
        await eng.conclude_step(run, self.index, result, audit, proceed=success or policy == "skip")

"""Running one step of a chain: provider steps, timers and sub-chains.

Provider steps follow workflows.md §3.6 steps 7-13 and the outcome matrix of
§3.9, with the port's choices: a ``Rerouted`` outcome (a circuit-breaker
fallback that ran) counts as success; chain-level ``on_failure`` decides
whether an aborting failure is dead-lettered (``abort``) or not
(``abort_no_dlq``); a ``dlq`` step dead-letters exactly once, never also via
the executor; a ``skip`` step is not dead-lettered.

Step actions go to their providers through the gateway's admission hooks
(quotas) and ``_execute_action`` (circuit breakers, executor retries and
timeouts) but not through the rules: a chain's steps are the operator's own
follow-ups, and upstream bypasses rules, dedup and the LLM guardrail for them.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from acteon._action import Action
from acteon._dlq import DeadLetter, capture_dead_letters
from acteon._timefmt import coerce_datetime, format_rfc3339
from acteon.chains._model import ChainStepConfig
from acteon.chains._records import StepAudit
from acteon.chains._state import StepResult
from acteon.chains._templates import TemplateRenderError, render
from acteon.outcomes import Executed, Failed, Outcome, QuotaExceeded, Rerouted

if TYPE_CHECKING:
    from acteon.chains._engine import ChainEngine, Run

INTERRUPTED = "step interrupted (duplicate dispatch detected)"
QUOTA_BLOCKED = "quota exceeded \u2014 chain step blocked"


async def run_step(eng: ChainEngine, run: Run) -> None:
    index = run.state.current_step
    step = run.cfg.steps[index]
    kind = step.kind
    if kind == "timer":
        await run_timer(eng, run, index, step)
    elif kind == "sub_chain":
        await run_sub_chain(eng, run, index, step)
    elif kind == "parallel":
        from acteon.chains._parallel import run_parallel

        await run_parallel(eng, run, index, step)
    elif kind == "wait_for_signal":
        from acteon.chains._signals import run_wait_for_signal

        await run_wait_for_signal(eng, run, index, step)
    else:
        await run_provider_step(eng, run, index, step)


# --------------------------------------------------------------------------- shared helpers


def claim_ttl(eng: ChainEngine, run: Run, now: datetime) -> float:
    expires = run.state.expires_at
    if expires is None:
        return 86400.0
    return max(1.0, (expires - now).total_seconds())


def rust_debug(outcome: Outcome) -> str:
    """A Rust ``Debug``-like rendering of an outcome, for ``unexpected outcome: ...``."""
    wire = outcome.to_wire()
    if isinstance(wire, str):
        return wire
    ((tag, inner),) = wire.items()

    def show(value: Any) -> str:
        if isinstance(value, str):
            return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
        if value is None:
            return "None"
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, list):
            return "[" + ", ".join(show(v) for v in value) + "]"
        if isinstance(value, dict):
            return "{" + ", ".join(f"{show(k)}: {show(v)}" for k, v in value.items()) + "}"
        return str(value)

    if not isinstance(inner, dict):
        return f"{tag}({show(inner)})"
    return f"{tag} {{ " + ", ".join(f"{k}: {show(v)}" for k, v in inner.items()) + " }"


async def execute_step_action(eng: ChainEngine, action: Action) -> tuple[Outcome, Action]:
    """Admission hooks (quotas may block or switch provider), the provider call (circuit
    breakers and routing live in ``_execute_action``), then the outcome hooks."""
    gw = eng.gw
    now = eng.now()
    outcome: Outcome | None = None
    for hook in gw._admission_hooks:
        admitted = await hook(action, now)
        if isinstance(admitted, Outcome):
            outcome = admitted
            break
        action = admitted
    if outcome is None:
        outcome = await gw._execute_action(action)
    for seen in gw._outcome_hooks:  # spend metering and the like see chain steps too
        await seen(action, outcome)
    return outcome, action


def wants_dead_letter(eng: ChainEngine, run: Run, policy: str | None) -> bool:
    """Dead-letter a failure that ends the chain? ``dlq`` steps always; ``abort``/unset steps
    when the chain's ``on_failure`` is ``abort`` (``abort_no_dlq`` says no), as upstream documents."""
    if eng.gw._dlq is None:
        return False
    if policy == "dlq":
        return True
    return policy in (None, "abort") and run.cfg.on_failure == "abort"


def push_dead_letter(eng: ChainEngine, captured: list[DeadLetter], action: Action, error: str, attempts: int) -> None:
    dlq = eng.gw._dlq
    if dlq is None:
        return
    if captured:
        dlq.push(captured[-1])  # the executor's own letter (it knows the attempt count)
    else:
        dlq.push(DeadLetter(action, error, max(attempts, 1), eng.now()))


def _duration_ms(started: datetime, completed: datetime) -> int:
    return max(0, int((completed - started).total_seconds() * 1000))


def _attempt_entry(result: StepResult, duration_ms: int) -> dict[str, Any]:
    return {
        "attempt": result.attempt,
        "started_at": None if result.started_at is None else format_rfc3339(result.started_at),
        "completed_at": None if result.completed_at is None else format_rfc3339(result.completed_at),
        "success": result.success,
        "response_body": result.response_body,
        "error": result.error,
        "duration_ms": duration_ms,
    }


# --------------------------------------------------------------------------- provider steps


async def interrupted(eng: ChainEngine, run: Run, index: int, step: ChainStepConfig, claim: str) -> None:
    """A claim without a result: a process died after the call. Fail; never run it twice."""
    now = eng.now()
    result = StepResult(step.name, False, None, INTERRUPTED, now, run.state.attempts_of(index) or 1, now)
    audit = StepAudit(step.provider, step.action_type, "chain_step_failed")
    await eng.conclude_step(run, index, result, audit, proceed=False, claim=claim)


async def run_provider_step(eng: ChainEngine, run: Run, index: int, step: ChainStepConfig) -> None:
    st = run.state
    ns, tenant = st.namespace, st.tenant
    attempt = st.attempts_of(index) + 1
    started = eng.now()
    claim = f"{ns}:{tenant}:dedup:chain-step:{st.chain_id}:{step.name}:a{attempt}"
    created = await eng.store.check_and_set(claim, "dispatched", claim_ttl(eng, run, started))
    if created and attempt == 1:
        # Upstream's claim key has no attempt suffix; honour one left behind by it.
        created = await eng.store.get(f"{ns}:{tenant}:dedup:chain-step:{st.chain_id}:{step.name}") is None
    if not created:
        await interrupted(eng, run, index, step, claim)
        return

    action: Action | None = None
    captured: list[DeadLetter] = []
    try:
        payload = render(step.payload_template, eng.template_context(run, index))
    except TemplateRenderError as exc:
        outcome: Outcome = Failed("TEMPLATE_ERROR", str(exc), False, 0)
        payload = None
    else:
        action = Action(
            id=str(uuid.uuid4()), namespace=ns, tenant=tenant, provider=step.provider,
            action_type=step.action_type, payload=payload, created_at=started,
            trace_context=dict(st.origin_action.trace_context),
        )
        with capture_dead_letters() as captured:
            outcome, action = await execute_step_action(eng, action)
    completed = eng.now()
    duration = _duration_ms(started, completed)
    provider = step.provider if action is None else action.provider

    if isinstance(outcome, Executed | Rerouted):
        body = outcome.response.body
        result = StepResult(step.name, True, body, None, completed, attempt, started)
        _record_attempt(run, index, attempt, result, duration)
        audit = StepAudit(provider, step.action_type, "chain_step_completed", payload, duration)
        await eng.conclude_step(run, index, result, audit, proceed=True, claim=claim)
        return

    if isinstance(outcome, Failed):
        error = outcome.message
        result = StepResult(step.name, False, None, error, completed, attempt, started)
        _record_attempt(run, index, attempt, result, duration)
        retry = step.retry
        if retry is not None and outcome.retryable and attempt <= retry.max_retries:
            await _schedule_retry(eng, run, index, step, result, claim, payload, provider, duration)
            return
        if step.on_failure == "skip":
            audit = StepAudit(provider, step.action_type, "chain_step_skipped", payload, duration)
            await eng.conclude_step(run, index, result, audit, proceed=True, claim=claim)
            return
        if action is not None and wants_dead_letter(eng, run, step.on_failure):
            push_dead_letter(eng, captured, action, error, outcome.attempts)
        audit = StepAudit(provider, step.action_type, "chain_step_failed", payload, duration)
        await eng.conclude_step(run, index, result, audit, proceed=False, claim=claim)
        return

    if isinstance(outcome, QuotaExceeded):
        result = StepResult(step.name, False, None, QUOTA_BLOCKED, completed, attempt, started)
        _record_attempt(run, index, attempt, result, duration)
        audit = StepAudit(provider, step.action_type, "chain_step_quota_exceeded", None, 0)
        await eng.conclude_step(run, index, result, audit, proceed=False, claim=claim)
        return

    # CircuitOpen and anything else: the step did not run; the chain fails whatever the policy.
    error = f"unexpected outcome: {rust_debug(outcome)}"
    result = StepResult(step.name, False, None, error, completed, attempt, started)
    _record_attempt(run, index, attempt, result, duration)
    if action is not None and wants_dead_letter(eng, run, None):
        push_dead_letter(eng, captured, action, error, 0)
    audit = StepAudit(provider, step.action_type, "chain_step_failed", payload, duration)
    await eng.conclude_step(run, index, result, audit, proceed=False, claim=claim)


def _record_attempt(run: Run, index: int, attempt: int, result: StepResult, duration_ms: int) -> None:
    st = run.state
    if index < len(st.step_attempts):
        st.step_attempts[index] = attempt
    if index < len(st.step_history):
        st.step_history[index].append(_attempt_entry(result, duration_ms))


async def _schedule_retry(eng: ChainEngine, run: Run, index: int, step: ChainStepConfig, result: StepResult,
                          claim: str, payload: Any, provider: str, duration: int) -> None:
    """Engine-level retry (§4.2): the attempt's claim is dropped and the step re-armed later."""
    assert step.retry is not None
    st = run.state
    attempt = result.attempt or 1
    delay_ms = step.retry.base_delay_ms(attempt)
    if step.retry.jitter_ms:
        delay_ms += eng.rng.randint(0, step.retry.jitter_ms)  # random jitter (D14)
    now = eng.now()
    st.step_results[index] = None
    st.updated_at = now
    st.ready_at = now + timedelta(milliseconds=delay_ms)
    if not await eng.save(run):
        return
    # The next attempt claims its own key (`:a{n+1}`); this one is done with.
    await eng.store.delete(claim)
    await eng.schedule(run)
    audit = StepAudit(provider, step.action_type, "chain_step_retrying", payload, duration,
                      {"attempt": attempt, "retry_delay_ms": delay_ms})
    await eng.recorder.step(st, index, step.name, result.error, None, audit, result.completed_at or now)


# --------------------------------------------------------------------------- timers


async def run_timer(eng: ChainEngine, run: Run, index: int, step: ChainStepConfig) -> None:
    """Durable timer (§4.5): arm on arrival, fire once its time has come."""
    assert step.timer is not None
    st = run.state
    now = eng.now()
    ws = st.wait_state
    if ws is None or ws.get("kind") != "timer" or ws.get("step_index") != index:
        if step.timer.until is not None:
            fire_at = step.timer.until
        else:
            fire_at = now + timedelta(seconds=step.timer.duration_seconds or 0)
        st.wait_state = {"kind": "timer", "step_index": index, "fire_at": format_rfc3339(fire_at)}
        st.status = "waiting_timer"
        st.ready_at = fire_at
        st.updated_at = now
        if await eng.save(run):
            await eng.schedule(run)
        return
    fire_at = coerce_datetime(ws["fire_at"])
    if now < fire_at:
        await eng.schedule(run)  # early wake: re-arm only
        return
    result = StepResult(step.name, True, {"fired_at": format_rfc3339(now)}, None, now, 1, fire_at)
    audit = StepAudit(step.provider or "timer", step.action_type or step.name, "chain_step_completed", None, 0)
    await eng.conclude_step(run, index, result, audit, proceed=True)


# --------------------------------------------------------------------------- sub-chains


def child_id_for(parent_id: str, index: int) -> str:
    """The child of a sub-chain step has an id derived from its parent and step, so a
    crash between writing the child and the parent can never start a second child."""
    try:
        base = uuid.UUID(parent_id)
    except ValueError:
        base = uuid.uuid5(uuid.NAMESPACE_URL, parent_id)
    return str(uuid.uuid5(base, f"sub_chain:{index}"))


async def run_sub_chain(eng: ChainEngine, run: Run, index: int, step: ChainStepConfig) -> None:
    """Sub-chain (§4.4): start the child once, then poll it (and get woken when it ends)."""
    from acteon._exceptions import ChainError

    assert step.sub_chain is not None
    st = run.state
    name = step.sub_chain
    now = eng.now()
    child_id = child_id_for(st.chain_id, index)
    loaded = await eng.load(st.namespace, st.tenant, child_id)
    if loaded is None and child_id not in st.child_chain_ids:
        try:
            cfg = eng.startable(name, sub=True)
        except ChainError as exc:
            result = StepResult(f"sub_chain:{name}", False, None, str(exc), now, 1, now)
            await _conclude_sub_chain(eng, run, index, step, result)
            return
        expires = [t for t in (st.expires_at, now + timedelta(seconds=cfg.timeout_seconds)
                               if cfg.timeout_seconds else None) if t is not None]
        child = eng.new_state(cfg, st.origin_action, now, st.caller, chain_id=child_id,
                              expires_at=min(expires) if expires else None)
        child.parent_chain_id = st.chain_id
        child.parent_step_index = index
        child.search_attributes = dict(st.search_attributes)
        await eng.persist_new(child, create_only=True)
        loaded = (child, 1)
    child_state = None if loaded is None else loaded[0]
    if child_state is not None and child_state.is_active:
        st.ready_at = now + _poll_interval()
        if st.status != "waiting_sub_chain" or child_id not in st.child_chain_ids:
            if child_id not in st.child_chain_ids:
                st.child_chain_ids.append(child_id)
            st.status = "waiting_sub_chain"
            st.updated_at = now
            if not await eng.save(run):
                return
        await eng.schedule(run)  # a poll only re-arms; the child also wakes us when it ends
        return
    if child_id not in st.child_chain_ids:
        st.child_chain_ids.append(child_id)
    if child_state is None:
        result = StepResult(f"sub_chain:{name}", False, None, f"sub-chain `{name}` not found", now, 1, now)
    elif child_state.status == "completed":
        last = _last_result(child_state)
        result = StepResult(f"sub_chain:{name}", True, None if last is None else last.response_body, None,
                            now, 1, child_state.started_at)
    else:
        from acteon.chains._state import variant

        result = StepResult(f"sub_chain:{name}", False, None, f"sub-chain `{name}` {variant(child_state.status)}",
                            now, 1, child_state.started_at)
    await _conclude_sub_chain(eng, run, index, step, result)


def _poll_interval() -> timedelta:
    from acteon.chains._engine import SUB_CHAIN_POLL

    return SUB_CHAIN_POLL


async def _conclude_sub_chain(eng: ChainEngine, run: Run, index: int, step: ChainStepConfig,
                              result: StepResult) -> None:
    audit = StepAudit("sub_chain", step.sub_chain or step.name,
                      "chain_step_completed" if result.success else
                      ("chain_step_skipped" if step.on_failure == "skip" else "chain_step_failed"),
                      None, 0, {"sub_chain": step.sub_chain})
    proceed = result.success or step.on_failure == "skip"
    await eng.conclude_step(run, index, result, audit, proceed=proceed)


def _last_result(child: Any) -> StepResult | None:
    """The child's outcome: the last result along its path, else its last recorded one."""
    snapshot = child.config_snapshot or {}
    names = [str(s.get("name")) for s in snapshot.get("steps") or []]
    if len(names) != len(child.step_results):
        names = [r.step_name if r is not None else "" for r in child.step_results]
    for name in reversed(child.execution_path):
        if name in names:
            found: StepResult | None = child.step_results[names.index(name)]
            if found is not None:
                return found
    for r in reversed(child.step_results):
        if r is not None:
            last: StepResult = r
            return last
    return None

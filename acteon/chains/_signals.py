"""``wait_for_signal`` steps and signal delivery (workflows.md §4.6).

A signal is buffered per chain and name (``chain_signal:{chain_id}:{name}``,
a JSON array, FIFO, 7 days) whether or not the chain waits for it yet, so an
early signal is not lost. A waiting step takes the oldest payload as its
result; the payload is removed only after the chain state moved on (a crash
in between delivers it again: at least once).
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from acteon._exceptions import ChainError
from acteon._timefmt import coerce_datetime, format_rfc3339
from acteon.chains._model import ChainStepConfig
from acteon.chains._records import StepAudit
from acteon.chains._state import StepResult, variant

if TYPE_CHECKING:
    from acteon.chains._engine import ChainEngine, Run

SIGNAL_TTL = 7 * 86400


def buffer_key(namespace: str, tenant: str, chain_id: str, name: str) -> str:
    return f"{namespace}:{tenant}:chain_signal:{chain_id}:{name}"


def _read_buffer(raw: str | None) -> list[Any]:
    if raw is None:
        return []
    value = json.loads(raw)
    return value if isinstance(value, list) else [value]  # a legacy single value is a one-item list


async def signal_chain(eng: ChainEngine, namespace: str, tenant: str, chain_id: str, name: str,
                       payload: Any) -> None:
    if not name:
        raise ChainError("signal name must not be empty")
    guard = await eng.lock_for_control(chain_id)
    try:
        loaded = await eng.load(namespace, tenant, chain_id)
        if loaded is None:
            raise ChainError(f"chain not found: {chain_id}")
        st = loaded[0]
        if not st.is_active:
            raise ChainError(f"chain is not active (status: {variant(st.status)})")
        key = buffer_key(namespace, tenant, chain_id, name)
        items = _read_buffer(await eng.store.get(key))
        items.append(payload)
        await eng.store.set(key, json.dumps(items), SIGNAL_TTL)
        ws = st.wait_state or {}
        if st.status == "waiting_signal" and ws.get("signal_name") == name:
            await eng.store.index_chain_ready(f"{namespace}:{tenant}:pending_chains:{chain_id}", 0)
    finally:
        await guard.release()


async def run_wait_for_signal(eng: ChainEngine, run: Run, index: int, step: ChainStepConfig) -> None:
    cfg = step.wait_for_signal
    assert cfg is not None
    st = run.state
    now = eng.now()
    key = buffer_key(st.namespace, st.tenant, st.chain_id, cfg.signal_name)
    items = _read_buffer(await eng.store.get(key))
    if items:
        result = StepResult(step.name, True, items[0], None, now, 1, now)
        audit = StepAudit(step.provider or "signal", step.action_type or step.name, "chain_step_completed",
                          None, 0, {"signal_name": cfg.signal_name})
        if not await eng.conclude_step(run, index, result, audit, proceed=True):
            return  # not recorded: the signal stays for the next attempt
        rest = items[1:]
        if rest:
            await eng.store.set(key, json.dumps(rest), SIGNAL_TTL)
        else:
            await eng.store.delete(key)
        return
    ws = st.wait_state
    if ws is not None and ws.get("kind") == "signal" and ws.get("step_index") == index:
        timeout_at = ws.get("timeout_at")
        if timeout_at is not None and now >= coerce_datetime(timeout_at):
            await _timed_out(eng, run, index, step)
            return
        await eng.schedule(run)
        return
    timeout = None if cfg.timeout_seconds is None else now + timedelta(seconds=cfg.timeout_seconds)
    st.wait_state = {
        "kind": "signal",
        "step_index": index,
        "signal_name": cfg.signal_name,
        "timeout_at": None if timeout is None else format_rfc3339(timeout),
        "on_timeout": cfg.on_timeout,
    }
    st.status = "waiting_signal"
    st.updated_at = now
    st.ready_at = None
    if await eng.save(run):
        await eng.schedule(run)


async def _timed_out(eng: ChainEngine, run: Run, index: int, step: ChainStepConfig) -> None:
    cfg = step.wait_for_signal
    assert cfg is not None
    now = eng.now()
    result = StepResult(step.name, False, None, f"signal wait timed out: {cfg.signal_name}", now, 1, now)
    provider, action_type = step.provider or "signal", step.action_type or step.name
    if cfg.on_timeout is not None:
        target = run.cfg.step_index(cfg.on_timeout)
        audit = StepAudit(provider, action_type, "chain_step_timed_out", None, 0, {"signal_name": cfg.signal_name})
        await eng.conclude_step(run, index, result, audit, proceed=True, jump=target)
        return
    skip = step.on_failure == "skip"
    audit = StepAudit(provider, action_type, "chain_step_skipped" if skip else "chain_step_failed", None, 0,
                      {"signal_name": cfg.signal_name})
    await eng.conclude_step(run, index, result, audit, proceed=skip)

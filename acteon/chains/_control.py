"""Operator control of running chains: cancel (§3.12), and pause / resume (acteon's own).

Upstream has no explicit pause (§4.9). Here a paused chain runs no step and
ignores timers, sub-chain completions and signals (signals are still
buffered) until it is resumed; its deadline keeps counting and is enforced
while it is paused. Pausing does not reach into sub-chains, which run on; the
parent picks up their result after it is resumed. Cancelling does reach them.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from acteon._action import Action
from acteon._exceptions import ActeonError, ChainError, LockFailed
from acteon._timefmt import format_rfc3339
from acteon.chains._state import ChainState, variant

if TYPE_CHECKING:
    from acteon.chains._engine import ChainEngine, Run

_log = logging.getLogger("acteon.chains")


async def _load_run(eng: ChainEngine, namespace: str, tenant: str, chain_id: str) -> Run:
    from acteon.chains._engine import Run

    loaded = await eng.load(namespace, tenant, chain_id)
    if loaded is None:
        raise ChainError(f"chain not found: {chain_id}")
    st, version = loaded
    cfg = eng.config_for(st)
    if cfg is None:
        raise ChainError(f"chain configuration not found: {st.chain_name}")
    return Run(st, version, cfg)


async def cancel_chain(eng: ChainEngine, namespace: str, tenant: str, chain_id: str, reason: str | None,
                       cancelled_by: str | None) -> ChainState:
    guard = await eng.lock_for_control(chain_id)
    try:
        run = await _load_run(eng, namespace, tenant, chain_id)
        st = run.state
        if not st.is_active:
            raise ChainError(f"chain is not running (status: {variant(st.status)})")
        st.cancel_reason = reason
        st.cancelled_by = cancelled_by
        st.paused_status = None
        if not await eng.terminate(run, "cancelled", "chain_cancelled"):
            raise ChainError(f"chain {chain_id} changed while it was being cancelled; try again")
    finally:
        await guard.release()
    await _notify_cancelled(eng, run)
    for child in st.child_chain_ids:
        try:
            await cancel_chain(eng, namespace, tenant, child, f"parent chain {chain_id} cancelled", cancelled_by)
        except (ChainError, LockFailed) as exc:  # finished children, or one busy past the wait
            _log.debug("not cancelling child chain %s: %s", child, exc)
    return st


async def _notify_cancelled(eng: ChainEngine, run: Run) -> None:
    """Dispatch the cancel notification through the whole pipeline (rules apply)."""
    st = run.state
    target = run.cfg.on_cancel
    payload: dict[str, Any] = {
        "chain_id": st.chain_id,
        "chain_name": st.chain_name,
        "cancel_reason": st.cancel_reason,
        "cancelled_by": st.cancelled_by,
        "current_step": st.current_step,
        "total_steps": st.total_steps,
        "cancelled_at": format_rfc3339(st.updated_at),
    }
    action = Action(
        namespace=st.namespace,
        tenant=st.tenant,
        provider="webhook" if target is None else target.provider,
        action_type="chain_cancelled" if target is None else target.action_type,
        payload=payload,
    )
    try:
        await eng.gw.dispatch(action)
    except ActeonError as exc:
        _log.warning("chain %s: cancel notification failed: %s", st.chain_id, exc)


async def pause_chain(eng: ChainEngine, namespace: str, tenant: str, chain_id: str, reason: str | None,
                      paused_by: str | None) -> ChainState:
    guard = await eng.lock_for_control(chain_id)
    try:
        run = await _load_run(eng, namespace, tenant, chain_id)
        st = run.state
        if st.status == "paused":
            raise ChainError(f"chain is already paused: {chain_id}")
        if not st.is_active:
            raise ChainError(f"chain is not active (status: {variant(st.status)})")
        now = eng.now()
        st.paused_status = st.status
        st.status = "paused"
        st.pause_reason = reason
        st.paused_by = paused_by
        st.updated_at = now
        if not await eng.save(run):
            raise ChainError(f"chain {chain_id} changed while it was being paused; try again")
        await eng.schedule(run)  # only the deadline can wake a paused chain
    finally:
        await guard.release()
    extra = {"pause_reason": reason, "paused_by": paused_by}
    await eng.recorder.control(st, "chain_paused", now, extra)
    eng.recorder.control_event(st, "chain_paused", extra)
    return st


async def resume_chain(eng: ChainEngine, namespace: str, tenant: str, chain_id: str,
                       resumed_by: str | None) -> ChainState:
    guard = await eng.lock_for_control(chain_id)
    try:
        run = await _load_run(eng, namespace, tenant, chain_id)
        st = run.state
        if st.status != "paused":
            raise ChainError(f"chain is not paused (status: {variant(st.status)})")
        now = eng.now()
        st.status = st.paused_status or "running"
        st.paused_status = None
        st.pause_reason = None
        st.paused_by = None
        st.updated_at = now
        if not await eng.save(run):
            raise ChainError(f"chain {chain_id} changed while it was being resumed; try again")
        # Look at it on the next tick: a timer may have come due, a child may have
        # finished or a signal may be waiting; a pending delay is re-armed there.
        await eng.store.index_chain_ready(run.pending_key, 0)
    finally:
        await guard.release()
    extra = {"resumed_by": resumed_by}
    await eng.recorder.control(st, "chain_resumed", now, extra)
    eng.recorder.control_event(st, "chain_resumed", extra)
    return st

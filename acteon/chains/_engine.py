"""The chain engine: definitions, starting chains, and the advancement loop.

How a chain moves (workflows.md §3.3-§3.6, D8, D18):

* The ``chain`` verdict writes a ``ChainState`` (with a snapshot of its
  definition, so any process can advance it and later edits of the definition
  do not change running chains), a ``pending_chains`` entry and a chain-ready
  index entry. Nothing runs during the dispatch.
* The background job ``chains`` reads ``get_ready_chains(now)`` and advances
  each due chain by one step. An advance holds the lock ``chain:{id}``
  (renewed while a slow step runs, released on every path) and writes the new
  state with compare-and-swap on the stored version, so a write never
  overwrites a change it did not see. Every provider call is preceded by a
  claim key; a claim found without a recorded result means a process died
  after the call, and the step is failed as interrupted instead of being run
  twice.
* The ready index holds one wake-up time per chain: the next step's due time,
  a timer's fire time or a sub-chain poll, capped by the chain deadline -- so
  deadlines are enforced even when nothing else would wake the chain.
"""

from __future__ import annotations

import logging
import random
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

import anyio

from acteon._action import Action
from acteon._caller import Caller
from acteon._events import StreamEvent
from acteon._exceptions import ActeonError, ChainError, ConfigurationError, StateError
from acteon._timefmt import format_rfc3339
from acteon.chains._branching import next_step
from acteon.chains._model import ChainConfig, ChainConfigError
from acteon.chains._records import ChainRecorder, StepAudit
from acteon.chains._state import ChainState, StepResult
from acteon.chains._templates import StepView, TemplateContext
from acteon.chains._validate import branch_messages, check_definition, check_sub_chain_graph
from acteon.outcomes import ChainStarted, Outcome
from acteon.rules import Verdict
from acteon.state._base import LockGuard

if TYPE_CHECKING:
    from acteon._gateway import AsyncGateway

_log = logging.getLogger("acteon.chains")
T = TypeVar("T")

ADVANCE_LOCK_TTL = 60.0
"""Seconds the advance lock lives; renewed every third of it while a step runs."""
CONTROL_LOCK_TTL = 30.0
CONTROL_LOCK_WAIT = 5.0
SUB_CHAIN_POLL = timedelta(seconds=5)
MISSING_DEFINITION_RETRY = timedelta(seconds=60)
DEFAULT_COMPLETED_TTL_FROM_CONFIG = 604800

_OPTION_KEYS = frozenset({"definitions", "max_concurrent_advances", "completed_chain_ttl_seconds"})


def epoch_ms(value: datetime) -> int:
    return int(value.timestamp() * 1000)


@dataclass(slots=True)
class Run:
    """One loaded chain: its state, the store version it was read at, and its definition."""

    state: ChainState
    version: int
    cfg: ChainConfig

    @property
    def key(self) -> str:
        st = self.state
        return f"{st.namespace}:{st.tenant}:chain:{st.chain_id}"

    @property
    def pending_key(self) -> str:
        st = self.state
        return f"{st.namespace}:{st.tenant}:pending_chains:{st.chain_id}"


def parse_options(value: Any) -> tuple[list[Any], int, float | None]:
    """``chains=`` is a list of definitions or the ``[chains]`` table shape."""
    if value is None:
        return [], 16, None
    if isinstance(value, Mapping):
        unknown = sorted(set(value) - _OPTION_KEYS)
        if unknown:
            raise ConfigurationError(f"[chains]: unknown key(s) {', '.join(unknown)} "
                                     f"(allowed: {', '.join(sorted(_OPTION_KEYS))})")
        limit = value.get("max_concurrent_advances", 16)
        ttl = value.get("completed_chain_ttl_seconds")
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ConfigurationError(f"[chains]: max_concurrent_advances must be an integer >= 1, got {limit!r}")
        if ttl is not None and (isinstance(ttl, bool) or not isinstance(ttl, int | float) or ttl <= 0):
            raise ConfigurationError(f"[chains]: completed_chain_ttl_seconds must be a number > 0, got {ttl!r}")
        defs = value.get("definitions") or []
        if not isinstance(defs, Sequence) or isinstance(defs, str):
            raise ConfigurationError("[chains]: definitions must be a list of chain definitions")
        return list(defs), limit, ttl
    if isinstance(value, Sequence) and not isinstance(value, str):
        return list(value), 16, None
    raise ConfigurationError(
        f"chains= takes a list of chain definitions or a [chains] table, got {type(value).__name__}"
    )


class ChainEngine:
    """Task chains of one gateway. Created by :func:`acteon.chains.attach`."""

    def __init__(self, gateway: AsyncGateway, options: Any) -> None:
        self.gw = gateway
        defs, self.max_concurrent_advances, self.completed_ttl = parse_options(options)
        self.defs: dict[str, ChainConfig] = {}
        parsed = [ChainConfig.from_dict(d, f"chains[{i}]") for i, d in enumerate(defs)]
        for cfg in parsed:
            if cfg.name in self.defs:
                raise ChainConfigError(f"chain '{cfg.name}' is defined twice")
            check_definition(cfg)
            self.defs[cfg.name] = cfg
        check_sub_chain_graph(self.defs)
        self.recorder = ChainRecorder(gateway)
        self.rng = random.Random()
        """Source of retry jitter; tests may seed or replace it."""

    # ------------------------------------------------------------------ plumbing

    @property
    def store(self) -> Any:
        return self.gw._state

    def now(self) -> datetime:
        return self.gw._clock.now()

    def register(self, definition: Mapping[str, Any] | ChainConfig) -> ChainConfig:
        """Validate and add or replace a definition; the previous one stays on any error."""
        cfg = ChainConfig.from_dict(definition)
        check_definition(cfg)
        candidate = dict(self.defs)
        old = candidate.get(cfg.name)
        if old is not None:
            cfg = ChainConfig(cfg.name, cfg.steps, cfg.on_failure, cfg.timeout_seconds, cfg.on_cancel,
                              max(old.version + 1, cfg.version))
        candidate[cfg.name] = cfg
        check_sub_chain_graph(candidate)
        self.defs = candidate
        return cfg

    def config_for(self, st: ChainState) -> ChainConfig | None:
        """The definition pinned in the state, else the registered one."""
        if st.config_snapshot is not None:
            try:
                return ChainConfig.from_dict(st.config_snapshot)
            except ChainError as exc:
                _log.error("chain %s: stored definition is unreadable (%s); using the registered one",
                           st.chain_id, exc)
        return self.defs.get(st.chain_name)

    async def load(self, namespace: str, tenant: str, chain_id: str) -> tuple[ChainState, int] | None:
        found = await self.store.get_versioned(f"{namespace}:{tenant}:chain:{chain_id}")
        if found is None:
            return None
        return ChainState.from_json(found[0]), found[1]

    async def save(self, run: Run, *, terminal: bool = False) -> bool:
        """Compare-and-swap the state; ``False`` (logged) when someone changed it meanwhile."""
        ttl = self.completed_ttl if terminal else None
        result = await self.store.compare_and_swap(run.key, run.version, run.state.to_json(), ttl)
        if result.ok:
            run.version += 1
            return True
        _log.warning("chain %s changed while it was being advanced (stored version %s, expected %s); "
                     "this advance's write is dropped", run.state.chain_id, result.current_version, run.version)
        return False

    def wake_ms(self, st: ChainState) -> int | None:
        """When the chain next needs the engine (ms), or ``None`` for never."""
        if st.is_terminal:
            return None
        times: list[int] = []
        if st.status == "waiting_signal":
            timeout_at = (st.wait_state or {}).get("timeout_at")
            if timeout_at:
                from acteon._timefmt import coerce_datetime

                times.append(epoch_ms(coerce_datetime(timeout_at)))
        elif st.status != "paused":
            times.append(0 if st.ready_at is None else epoch_ms(st.ready_at))
        if st.expires_at is not None:
            times.append(epoch_ms(st.expires_at))
        return min(times) if times else None

    async def schedule(self, run: Run) -> None:
        wake = self.wake_ms(run.state)
        if wake is None:
            await self.store.remove_chain_ready_index(run.pending_key)
        else:
            await self.store.index_chain_ready(run.pending_key, wake)

    async def with_renewal(self, guard: LockGuard, fn: Callable[[], Awaitable[T]]) -> T:
        """Run ``fn`` while a helper task keeps the advance lock alive (real time, not the
        clock: a slow provider call must not let another process take the chain)."""

        async def renew() -> None:
            while True:
                await anyio.sleep(ADVANCE_LOCK_TTL / 3)
                try:
                    await guard.extend(ADVANCE_LOCK_TTL)
                except StateError as exc:
                    _log.warning("could not renew lock %s: %s", guard.name, exc)
                    return

        results: list[T] = []
        errors: list[Exception] = []
        async with anyio.create_task_group() as tg:
            tg.start_soon(renew)
            try:
                results.append(await fn())
            except Exception as exc:  # re-raised below as itself, not inside an ExceptionGroup
                errors.append(exc)
            finally:
                tg.cancel_scope.cancel()
        if errors:
            raise errors[0]
        return results[0]

    async def lock_for_control(self, chain_id: str) -> LockGuard:
        from acteon._exceptions import LockFailed, StateTimeout

        try:
            guard: LockGuard = await self.gw._lock.acquire(f"chain:{chain_id}", CONTROL_LOCK_TTL, CONTROL_LOCK_WAIT)
        except StateTimeout as exc:
            raise LockFailed(str(exc)) from exc
        return guard

    # ------------------------------------------------------------------ starting

    async def handle_verdict(self, action: Action, verdict: Verdict, now: datetime, caller: Caller | None) -> Outcome:
        name = verdict.chain
        if not isinstance(name, str) or not name:
            raise ChainError(f"rule '{verdict.rule}' gives no chain name")
        st = await self.start(action, name, now, caller)
        return ChainStarted(st.chain_id, st.chain_name, st.total_steps, st.execution_path[0])

    def new_state(self, cfg: ChainConfig, origin: Action, now: datetime, caller: dict[str, str] | None,
                  chain_id: str | None = None, expires_at: datetime | None = None) -> ChainState:
        n = len(cfg.steps)
        first_delay = cfg.steps[0].delay_seconds
        return ChainState(
            chain_id=chain_id or str(uuid.uuid4()),
            chain_name=cfg.name,
            origin_action=origin,
            current_step=0,
            total_steps=n,
            status="running",
            step_results=[None] * n,
            started_at=now,
            updated_at=now,
            expires_at=expires_at,
            execution_path=[cfg.steps[0].name],
            step_attempts=[0] * n,
            step_history=[[] for _ in range(n)],
            caller=caller,
            chain_version=cfg.version,
            config_snapshot=cfg.to_dict(),
            search_attributes=dict(origin.metadata),
            ready_at=now + timedelta(seconds=first_delay) if first_delay else None,
        )

    def startable(self, name: str, *, sub: bool = False) -> ChainConfig:
        label = "sub-chain" if sub else "chain"
        cfg = self.defs.get(name)
        if cfg is None:
            raise ChainError(f"{label} configuration not found: {name}")
        if not cfg.steps:
            raise ChainError(f"{label} '{name}' has no steps")
        if cfg.has_branches:
            msgs = branch_messages(cfg)
            if msgs:
                raise ChainError(f"invalid chain configuration '{name}': {'; '.join(msgs)}")
        return cfg

    async def start(self, action: Action, name: str, now: datetime, caller: Caller | None) -> ChainState:
        cfg = self.startable(name)
        expires = now + timedelta(seconds=cfg.timeout_seconds) if cfg.timeout_seconds else None
        st = self.new_state(cfg, action, now, None if caller is None else caller.to_wire(), expires_at=expires)
        await self.persist_new(st)
        return st

    async def persist_new(self, st: ChainState, *, create_only: bool = False) -> bool:
        """Write a new chain, its pending entry and its ready-index entry."""
        key = f"{st.namespace}:{st.tenant}:chain:{st.chain_id}"
        if create_only:
            if not await self.store.check_and_set(key, st.to_json()):
                return False
        else:
            await self.store.set(key, st.to_json())
        pending: dict[str, Any] = {"chain_id": st.chain_id, "chain_name": st.chain_name,
                                   "started_at": format_rfc3339(st.started_at)}
        if st.parent_chain_id is not None:
            pending["parent_chain_id"] = st.parent_chain_id
        import json

        pending_key = f"{st.namespace}:{st.tenant}:pending_chains:{st.chain_id}"
        await self.store.set(pending_key, json.dumps(pending))
        wake = self.wake_ms(st)
        if wake is not None:
            await self.store.index_chain_ready(pending_key, wake)
        self.gw._metrics.chains_started += 1
        return True

    # ------------------------------------------------------------------ the job

    async def run_due(self, now: datetime) -> int:
        """Background job: advance every chain that is due; returns how many advanced."""
        keys: list[str] = await self.store.get_ready_chains(epoch_ms(now))
        if not keys:
            return 0
        advanced = 0
        limiter = anyio.CapacityLimiter(self.max_concurrent_advances)

        async def one(namespace: str, tenant: str, chain_id: str) -> None:
            nonlocal advanced
            async with limiter:
                try:
                    if await self.advance(namespace, tenant, chain_id):
                        advanced += 1
                except ActeonError as exc:
                    _log.error("advancing chain %s failed: %s", chain_id, exc)
                except Exception:  # one broken chain must not stop the others
                    _log.exception("advancing chain %s crashed", chain_id)

        async with anyio.create_task_group() as tg:
            for key in keys:
                parts = key.split(":", 3)
                if len(parts) < 4 or parts[2] != "pending_chains":
                    _log.warning("ignoring malformed chain-ready key %r", key)
                    continue
                tg.start_soon(one, parts[0], parts[1], parts[3])
        return advanced

    async def advance(self, namespace: str, tenant: str, chain_id: str) -> bool:
        """Advance one chain by at most one step. ``False`` when there was nothing to do
        (another process holds it, it is not due, or it is finished)."""
        guard = await self.gw._lock.try_acquire(f"chain:{chain_id}", ADVANCE_LOCK_TTL)
        if guard is None:
            return False  # another advancer has it; the index entry stays for the next tick
        try:
            return await self.with_renewal(guard, lambda: self._advance_locked(namespace, tenant, chain_id))
        finally:
            await guard.release()

    async def _advance_locked(self, namespace: str, tenant: str, chain_id: str) -> bool:
        pending_key = f"{namespace}:{tenant}:pending_chains:{chain_id}"
        try:
            loaded = await self.load(namespace, tenant, chain_id)
        except ChainError:
            # Unreadable state: look again in a minute (someone may repair it), not every tick.
            retry_at = self.now() + MISSING_DEFINITION_RETRY
            await self.store.index_chain_ready(pending_key, epoch_ms(retry_at))
            raise
        if loaded is None:
            # Upstream keeps retrying a vanished chain forever; drop its index entry instead.
            await self.store.remove_chain_ready_index(pending_key)
            await self.store.delete(pending_key)
            return False
        st, version = loaded
        now = self.now()
        if st.is_terminal:
            await self.store.remove_chain_ready_index(pending_key)
            await self.store.delete(pending_key)
            return False
        cfg = self.config_for(st)
        if cfg is None:
            _log.error("chain %s: chain configuration not found: %s (retrying later)", chain_id, st.chain_name)
            await self.store.index_chain_ready(pending_key, epoch_ms(now + MISSING_DEFINITION_RETRY))
            return False
        run = Run(st, version, cfg)
        if st.expires_at is not None and now >= st.expires_at:
            await self.terminate(run, "timed_out", "chain_timed_out")
            return True
        if st.status == "paused" or (st.status == "running" and st.ready_at is not None and now < st.ready_at):
            await self.schedule(run)  # woken early (or by another process): only re-arm
            return False
        if st.current_step >= len(cfg.steps) or st.current_step >= len(st.step_results):
            await self.terminate(run, "failed", "chain_definition_changed")
            return True
        self.recorder.advanced(namespace, tenant, chain_id)
        from acteon.chains._steps import run_step

        await run_step(self, run)
        return True

    async def catchup(self, namespace: str, tenant: str, chain_id: str) -> list[StreamEvent] | None:
        """Entity-subscription history of a chain (§10.3): one ``chain_step_completed`` per
        recorded step in completion order, then ``chain_completed`` if it has finished."""
        loaded = await self.load(namespace, tenant, chain_id)
        if loaded is None:
            return None
        st = loaded[0]
        cfg = self.config_for(st)
        names = [s.name for s in cfg.steps] if cfg is not None else [r.step_name if r else "" for r in st.step_results]
        done = [(r, names[i] if i < len(names) else r.step_name, i)
                for i, r in enumerate(st.step_results) if r is not None]
        done.sort(key=lambda item: item[0].completed_at or st.started_at)
        events: list[StreamEvent] = []
        for result, name, index in done:
            data: dict[str, Any] = {"chain_id": chain_id, "step_name": name, "step_index": index,
                                    "success": result.success}
            if name in st.execution_path:
                pos = st.execution_path.index(name)
                if pos + 1 < len(st.execution_path):
                    data["next_step"] = st.execution_path[pos + 1]
            events.append(StreamEvent("chain_step_completed", result.completed_at or st.updated_at, namespace,
                                      tenant, None, None, data, chain_id=chain_id))
        if st.is_terminal:
            data = {"chain_id": chain_id, "status": st.status}
            if st.execution_path:
                data["execution_path"] = list(st.execution_path)
            events.append(StreamEvent("chain_completed", st.updated_at, namespace, tenant, None, None, data,
                                      chain_id=chain_id))
        return events

    # ------------------------------------------------------------------ finishing steps

    def template_context(self, run: Run, index: int) -> TemplateContext:
        st, cfg = run.state, run.cfg
        names = [s.name for s in cfg.steps]
        prev: StepResult | None = None
        if len(st.execution_path) >= 2:
            prev = st.step_lookup(st.execution_path[-2], names)
        elif index > 0:
            prev = st.step_results[index - 1]

        def view(r: StepResult | None) -> StepView | None:
            return None if r is None else StepView(r.success, r.response_body, r.error)

        return TemplateContext(
            origin=st.origin_action.to_wire(),
            prev=view(prev),
            step_lookup=lambda name: view(st.step_lookup(name, names)),
            chain_id=st.chain_id,
            step_index=index,
        )

    async def conclude_step(self, run: Run, index: int, result: StepResult, audit: StepAudit, *,
                            proceed: bool, claim: str | None = None, jump: int | None = None) -> bool:
        """Record a finished step, then move on (``proceed``) or fail the chain.

        Order as upstream: state, ready index, step audit, step event; then the
        terminal audit and event when the chain ended. ``False`` when the state could
        not be written (someone changed the chain meanwhile): nothing else happened.
        """
        st, cfg = run.state, run.cfg
        now = self.now()
        st.step_results[index] = result
        st.updated_at = now
        st.wait_state = None
        nxt = (next_step(cfg, index, result) if jump is None else jump) if proceed else None
        if nxt is not None:
            nxt_step = cfg.steps[nxt]
            st.current_step = nxt
            st.execution_path.append(nxt_step.name)
            st.status = "running"
            st.ready_at = now + timedelta(seconds=nxt_step.delay_seconds) if nxt_step.delay_seconds else None
            if not await self.save(run):
                return False
            await self.schedule(run)
        else:
            st.status = "completed" if proceed else "failed"
            st.ready_at = None
            if not await self.save(run, terminal=True):
                return False
            await self.cleanup(run)
        if claim is not None:
            await self.store.delete(claim)
        step = cfg.steps[index]
        await self.recorder.step(st, index, result.step_name, result.error, result.response_body, audit,
                                 result.completed_at or now)
        next_name = None if nxt is None else cfg.steps[nxt].name
        self.recorder.step_completed(st, step.name, index, audit.action_type, result.success, next_name)
        if nxt is None:
            await self.after_terminal(run, "chain_completed" if proceed else "chain_failed")
        return True

    async def cleanup(self, run: Run) -> None:
        await self.store.remove_chain_ready_index(run.pending_key)
        await self.store.delete(run.pending_key)

    async def terminate(self, run: Run, status: str, outcome: str) -> bool:
        """End the chain without a step result (timeout, cancel, broken definition)."""
        st = run.state
        st.status = status
        st.updated_at = self.now()
        st.ready_at = None
        st.wait_state = None
        if not await self.save(run, terminal=True):
            return False
        await self.cleanup(run)
        await self.after_terminal(run, outcome)
        return True

    async def after_terminal(self, run: Run, outcome: str) -> None:
        st = run.state
        metrics = self.gw._metrics
        if st.status == "completed":
            metrics.chains_completed += 1
        elif st.status == "cancelled":
            metrics.chains_cancelled += 1
        elif st.status == "timed_out":
            metrics.chains_timed_out += 1
        else:
            metrics.chains_failed += 1
        await self.recorder.terminal(st, outcome, self.now())
        self.recorder.completed(st)
        if st.parent_chain_id is not None:
            # Wake the parent now instead of at its next poll.
            parent_pending = f"{st.namespace}:{st.tenant}:pending_chains:{st.parent_chain_id}"
            if await self.store.get(parent_pending) is not None:
                await self.store.index_chain_ready(parent_pending, 0)

"""Chain methods of the gateway (``ChainsMixin``, mixed into ``AsyncGateway``).

The blocking ``Gateway`` has the same methods (``acteon/_sync.py``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from acteon._exceptions import ChainError, UsageError
from acteon.chains._model import ChainConfig
from acteon.chains._state import STATUSES, ChainState
from acteon.chains._views import ChainDetail, ChainSummary, build_detail

if TYPE_CHECKING:
    from acteon.chains._engine import ChainEngine

_log = logging.getLogger("acteon.chains")


class ChainsMixin:
    """Task-chain management on the gateway."""

    _chains: ChainEngine

    # ------------------------------------------------------------------ definitions

    def register_chain(self, definition: Mapping[str, Any] | ChainConfig) -> ChainConfig:
        """Add or replace a chain definition (the ``[[chains.definitions]]`` shape).

        The definition is validated on its own and together with every other
        definition (sub-chains must exist, no sub-chain cycles); on any problem
        a :class:`~acteon.chains.ChainConfigError` lists them all and the
        previous definition stays. Replacing bumps ``version``. Running chains
        keep the definition they started with.
        """
        return self._chains.register(definition)

    def chain_definitions(self) -> list[ChainConfig]:
        """Every registered definition, by name."""
        return [self._chains.defs[name] for name in sorted(self._chains.defs)]

    # ------------------------------------------------------------------ queries

    async def list_chains(self, namespace: str, tenant: str, status: str | None = None) -> list[ChainSummary]:
        """Chains of one namespace and tenant, oldest first; finished ones included (D18)
        until their ``completed_chain_ttl_seconds`` runs out. ``status`` filters
        (``running``, ``completed``, ``failed``, ``cancelled``, ``timed_out``,
        ``paused``, ``waiting_*``)."""
        if status is not None and status not in STATUSES:
            raise UsageError(f"unknown chain status {status!r} (expected one of {', '.join(sorted(STATUSES))})")
        pairs = await self._chains.store.scan_keys(namespace, tenant, "chain")
        out: list[ChainState] = []
        for key, value in pairs:
            try:
                st = ChainState.from_json(value)
            except ChainError as exc:
                _log.warning("skipping unreadable chain state %s: %s", key, exc)
                continue
            if status is None or st.status == status:
                out.append(st)
        out.sort(key=lambda s: (s.started_at, s.chain_id))
        return [ChainSummary.of(st) for st in out]

    async def get_chain(self, namespace: str, tenant: str, chain_id: str) -> ChainDetail | None:
        """One chain with its steps, the path taken (``execution_path``) and the path as a
        tree (``execution_tree``: parallel sub-steps and sub-chains nested); ``None`` if unknown."""
        engine = self._chains
        loaded = await engine.load(namespace, tenant, chain_id)
        if loaded is None:
            return None

        async def load_child(child_id: str) -> tuple[ChainState, ChainConfig | None] | None:
            found = await engine.load(namespace, tenant, child_id)
            return None if found is None else (found[0], engine.config_for(found[0]))

        return await build_detail(loaded[0], engine.config_for(loaded[0]), load_child)

    # ------------------------------------------------------------------ control

    async def cancel_chain(
        self, namespace: str, tenant: str, chain_id: str, reason: str | None = None, cancelled_by: str | None = None
    ) -> ChainDetail:
        """Cancel an active chain (and its sub-chains), then dispatch the cancel notification
        (``on_cancel``, default ``webhook``/``chain_cancelled``) through the pipeline.

        Raises ``ChainError`` (``chain not found: ...``, ``chain is not running (status: ...)``)
        or ``LockFailed`` when a step holds the chain longer than 5 s.
        """
        from acteon.chains._control import cancel_chain

        st = await cancel_chain(self._chains, namespace, tenant, chain_id, reason, cancelled_by)
        return await self._detail_of(st)

    async def pause_chain(
        self, namespace: str, tenant: str, chain_id: str, reason: str | None = None, paused_by: str | None = None
    ) -> ChainDetail:
        """Stop an active chain before its next step until :meth:`resume_chain`. Its deadline
        still applies. A step already running finishes first."""
        from acteon.chains._control import pause_chain

        st = await pause_chain(self._chains, namespace, tenant, chain_id, reason, paused_by)
        return await self._detail_of(st)

    async def resume_chain(
        self, namespace: str, tenant: str, chain_id: str, resumed_by: str | None = None
    ) -> ChainDetail:
        """Continue a paused chain where it stopped (on the next background tick)."""
        from acteon.chains._control import resume_chain

        st = await resume_chain(self._chains, namespace, tenant, chain_id, resumed_by)
        return await self._detail_of(st)

    async def signal_chain(
        self, namespace: str, tenant: str, chain_id: str, signal_name: str, payload: Any = None
    ) -> None:
        """Deliver a signal to a chain. A ``wait_for_signal`` step waiting for this name
        completes with ``payload`` as its body on the next tick; a signal that arrives
        before the step is kept (7 days) and consumed when the step is reached."""
        from acteon.chains._signals import signal_chain

        await signal_chain(self._chains, namespace, tenant, chain_id, signal_name, payload)

    async def _detail_of(self, st: ChainState) -> ChainDetail:
        detail = await self.get_chain(st.namespace, st.tenant, st.chain_id)
        if detail is None:  # expired at once (a tiny completed_chain_ttl): show what we had
            return await build_detail(st, self._chains.config_for(st), _no_child)
        return detail


async def _no_child(chain_id: str) -> None:
    return None

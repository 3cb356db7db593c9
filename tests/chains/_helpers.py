"""Shared pieces of the chain tests: a gateway on a FakeClock, a starting rule, event capture."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from acteon import Action, AsyncGateway
from acteon._events import StreamEvent, Subscription
from acteon.audit import MemoryAuditStore
from acteon.audit._model import AuditRecord
from acteon.outcomes import ChainStarted
from acteon.providers._base import Provider
from acteon.state._base import StateStore
from acteon.testing import FakeClock


def start_rule(chain: str, action_type: str | None = None) -> str:
    """A rule that starts ``chain`` for actions of type ``action_type`` (default: the chain name)."""
    return f"""
rules:
  - name: start-{chain}
    condition: {{field: action.action_type, eq: {action_type or chain}}}
    action: {{type: chain, chain: {chain}}}
"""


def step(name: str, provider: str = "p", **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"name": name, "provider": provider, "action_type": name,
                           "payload_template": extra.pop("payload_template", {"step": name})}
    out.update(extra)
    return out


class Env:
    """A gateway (memory stores, FakeClock, no background loop) plus helpers."""

    def __init__(
        self,
        chains: Sequence[Mapping[str, Any]] | Mapping[str, Any],
        providers: Sequence[Provider],
        *,
        rules: str | None = None,
        state: StateStore | str | None = None,
        clock: FakeClock | None = None,
        config: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        self.clock = clock or FakeClock()
        self.audit = MemoryAuditStore()
        first = chains["definitions"][0] if isinstance(chains, Mapping) else chains[0]
        self.gw = AsyncGateway(
            rules=rules if rules is not None else start_rule(str(first["name"])),
            state=state,
            audit=self.audit,
            providers=list(providers),
            chains=chains,
            clock=self.clock,
            background=False,
            config=config,
            **kwargs,
        )
        self.events: Subscription | None = None

    async def __aenter__(self) -> Env:
        await self.gw.__aenter__()
        self.events = self.gw.events()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        if self.events is not None:
            await self.events.aclose()
        await self.gw.__aexit__(None, None, None)

    async def start(self, action_type: str | None = None, payload: Any = None, **extra: Any) -> ChainStarted:
        rules = self.gw.rules
        if action_type is None:
            action_type = str(rules.rules[0].name).removeprefix("start-")
        outcome = await self.gw.dispatch(
            Action(namespace="ns", tenant="t1", provider="p", action_type=action_type,
                   payload={} if payload is None else payload, **extra)
        )
        assert isinstance(outcome, ChainStarted), outcome
        return outcome

    async def ticks(self, n: int = 1, advance: float = 0.0) -> list[int]:
        """Run ``n`` ticks (moving the clock ``advance`` seconds before each); chains advanced per tick."""
        out = []
        for _ in range(n):
            if advance:
                self.clock.advance(advance)
            summary = await self.gw.tick()
            out.append(summary["chains"])
        return out

    async def run_to_end(self, chain_id: str, limit: int = 50, advance: float = 0.0) -> str:
        for _ in range(limit):
            detail = await self.gw.get_chain("ns", "t1", chain_id)
            assert detail is not None
            if detail.state.is_terminal:
                return detail.status
            await self.ticks(1, advance)
        raise AssertionError(f"chain {chain_id} did not finish in {limit} ticks")

    async def state(self, chain_id: str) -> Any:
        detail = await self.gw.get_chain("ns", "t1", chain_id)
        assert detail is not None
        return detail.state

    def drain(self, *types: str) -> list[StreamEvent]:
        assert self.events is not None
        out = []
        while (event := self.events.get_nowait()) is not None:
            if not types or event.type in types:
                out.append(event)
        return out

    async def audit_records(self, chain_id: str) -> list[AuditRecord]:
        """Records of one chain in the order they were written (ids only order by millisecond)."""
        await self.audit.flush()
        return [r for r in self.audit._records.values() if r.chain_id == chain_id]

    async def outcomes(self, chain_id: str) -> list[str]:
        return [r.outcome for r in await self.audit_records(chain_id) if r.verdict == "chain"]

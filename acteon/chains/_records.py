"""Audit records and stream events of chains (workflows.md §3.14, §3.15, §10).

Audit is best effort, as upstream: a store failure is logged and never stops a
chain. Events carry the chain id in ``StreamEvent.chain_id`` so that
``EventFilter(chain_id=...)`` selects one chain, and the origin action id so an
action subscription also sees its chain.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from acteon._audit_builder import action_metadata, fast_uuid7
from acteon._events import StreamEvent
from acteon._exceptions import ActeonError
from acteon.audit._model import AuditRecord
from acteon.chains._state import ChainState

if TYPE_CHECKING:
    from acteon._gateway import AsyncGateway

_log = logging.getLogger("acteon.chains")


@dataclass(slots=True)
class StepAudit:
    """What the audit record of one step says besides the chain's common fields."""

    provider: str
    action_type: str
    outcome: str
    payload: Any = None
    duration_ms: int = 0
    details: dict[str, Any] = field(default_factory=dict)


class ChainRecorder:
    """Writes chain audit records and publishes chain events for one gateway."""

    def __init__(self, gateway: AsyncGateway) -> None:
        self._gw = gateway

    # ------------------------------------------------------------------ audit

    def _record(
        self,
        st: ChainState,
        provider: str,
        action_type: str,
        outcome: str,
        details: dict[str, Any],
        payload: Any,
        dispatched_at: datetime,
        completed_at: datetime,
        duration_ms: int,
    ) -> AuditRecord:
        builder = self._gw._audit_builder
        caller = st.caller or {}
        return AuditRecord(
            id=fast_uuid7(dispatched_at),
            action_id=st.origin_action.id,
            namespace=st.namespace,
            tenant=st.tenant,
            provider=provider,
            action_type=action_type,
            verdict="chain",
            outcome=outcome,
            dispatched_at=dispatched_at,
            completed_at=completed_at,
            chain_id=st.chain_id,
            matched_rule=None,
            action_payload=payload if builder.store_payload else None,
            verdict_details={},
            outcome_details=details,
            metadata=action_metadata(st.origin_action),
            duration_ms=max(duration_ms, 0),
            expires_at=None if builder.ttl is None else dispatched_at + builder.ttl,
            caller_id=str(caller.get("id", "")),
            auth_method=str(caller.get("auth_method", "")),
        )

    async def _write(self, record: AuditRecord) -> None:
        audit = self._gw._audit
        if audit is None:
            return
        try:
            await audit.record(record)
        except ActeonError as exc:
            _log.error("chain %s: could not write audit record %s: %s", record.chain_id, record.outcome, exc)

    async def step(self, st: ChainState, index: int, step_name: str, error: str | None, response_body: Any,
                   audit: StepAudit, completed_at: datetime) -> None:
        if self._gw._audit is None:
            return
        details: dict[str, Any] = {"step_name": step_name, "step_index": index, "total_steps": st.total_steps}
        if response_body is not None:
            details["response_body"] = response_body
        if error is not None:
            details["error"] = error
        details.update(audit.details)
        dispatched = completed_at - timedelta(milliseconds=max(audit.duration_ms, 0))
        await self._write(self._record(st, audit.provider, audit.action_type, audit.outcome, details,
                                       audit.payload, dispatched, completed_at, audit.duration_ms))

    async def terminal(self, st: ChainState, outcome: str, now: datetime) -> None:
        if self._gw._audit is None:
            return
        details: dict[str, Any] = {
            "chain_name": st.chain_name,
            "total_steps": st.total_steps,
            "completed_steps": sum(1 for r in st.step_results if r is not None),
            "current_step": st.current_step,
            "status": st.status,
            "cancel_reason": st.cancel_reason,
            "cancelled_by": st.cancelled_by,
            "step_results": [None if r is None else r.summary() for r in st.step_results],
        }
        if st.execution_path:
            details["execution_path"] = list(st.execution_path)
        if st.parallel_sub_results:
            subs = []
            for name, r in st.parallel_sub_results.items():
                entry = r.summary()
                entry["step_name"] = name
                if r.response_body is not None:
                    entry["response_body"] = r.response_body
                subs.append(entry)
            details["parallel_sub_results"] = subs
        duration = int((now - st.started_at).total_seconds() * 1000)
        await self._write(self._record(st, "chain", st.chain_name, outcome, details, st.origin_action.payload,
                                       st.started_at, now, duration))

    async def control(self, st: ChainState, outcome: str, now: datetime, extra: dict[str, Any]) -> None:
        """Pause/resume: an operator decision, audited like a terminal record without ending the chain."""
        if self._gw._audit is None:
            return
        details = {"chain_name": st.chain_name, "total_steps": st.total_steps, "current_step": st.current_step,
                   "status": st.status, **extra}
        await self._write(self._record(st, "chain", st.chain_name, outcome, details, None, now, now, 0))

    # ------------------------------------------------------------------ events

    def _publish(self, event: StreamEvent) -> None:
        if self._gw._events.has_subscribers:
            self._gw._events.publish(event)

    def advanced(self, namespace: str, tenant: str, chain_id: str) -> None:
        self._publish(StreamEvent("chain_advanced", self._gw._clock.now(), namespace, tenant, None, None,
                                  {"chain_id": chain_id}, chain_id=chain_id))

    def step_completed(self, st: ChainState, step_name: str, index: int, action_type: str, success: bool,
                       next_step: str | None) -> None:
        data: dict[str, Any] = {"chain_id": st.chain_id, "step_name": step_name, "step_index": index,
                                "success": success}
        if next_step is not None:
            data["next_step"] = next_step
        self._publish(StreamEvent("chain_step_completed", self._gw._clock.now(), st.namespace, st.tenant,
                                  action_type, st.origin_action.id, data, chain_id=st.chain_id))

    def completed(self, st: ChainState) -> None:
        data: dict[str, Any] = {"chain_id": st.chain_id, "status": st.status}
        if st.execution_path:
            data["execution_path"] = list(st.execution_path)
        self._publish(StreamEvent("chain_completed", self._gw._clock.now(), st.namespace, st.tenant,
                                  st.chain_name, st.origin_action.id, data, chain_id=st.chain_id))

    def control_event(self, st: ChainState, event_type: str, extra: dict[str, Any]) -> None:
        data = {"chain_id": st.chain_id, "status": st.status, **extra}
        self._publish(StreamEvent(event_type, self._gw._clock.now(), st.namespace, st.tenant, st.chain_name,
                                  st.origin_action.id, data, chain_id=st.chain_id))


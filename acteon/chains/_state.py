"""The stored state of one chain execution (workflows.md §3.4, §4.1).

``ChainState`` is kept as JSON at ``{ns}:{tenant}:chain:{chain_id}`` with the
upstream field names and order, so records written by either implementation
read back. acteon adds ``ready_at`` (when a delayed step becomes due; lets a
second process see that the step is not due yet, §3.11) and the pause fields
``paused_status``/``pause_reason``/``paused_by``. Unknown fields are ignored and
missing ones take their defaults, as upstream's serde does.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from acteon._action import Action
from acteon._exceptions import ChainError
from acteon._timefmt import coerce_datetime, format_rfc3339

ACTIVE = frozenset({
    "running", "waiting_sub_chain", "waiting_parallel", "waiting_timer", "waiting_signal", "waiting_worker",
    "paused",
})
TERMINAL = frozenset({"completed", "failed", "cancelled", "timed_out"})
STATUSES = ACTIVE | TERMINAL


def variant(status: str) -> str:
    """Upstream's enum name of a status: ``timed_out`` -> ``TimedOut``."""
    return "".join(part.capitalize() for part in status.split("_"))


def _ts(value: datetime | None) -> str | None:
    return None if value is None else format_rfc3339(value)


def _opt_dt(value: Any) -> datetime | None:
    return None if value is None else coerce_datetime(value)


@dataclass(slots=True)
class StepResult:
    step_name: str
    success: bool
    response_body: Any = None
    error: str | None = None
    completed_at: datetime | None = None
    attempt: int | None = None
    started_at: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "step_name": self.step_name,
            "success": self.success,
            "response_body": self.response_body,
            "error": self.error,
            "completed_at": _ts(self.completed_at),
            "attempt": self.attempt,
            "started_at": _ts(self.started_at),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StepResult:
        return cls(
            step_name=str(data.get("step_name", "")),
            success=bool(data.get("success", False)),
            response_body=data.get("response_body"),
            error=data.get("error"),
            completed_at=_opt_dt(data.get("completed_at")),
            attempt=data.get("attempt"),
            started_at=_opt_dt(data.get("started_at")),
        )

    def summary(self) -> dict[str, Any]:
        """The terminal-audit form: ``{step_name, success, completed_at, error?}``."""
        out: dict[str, Any] = {"step_name": self.step_name, "success": self.success,
                               "completed_at": _ts(self.completed_at)}
        if self.error is not None:
            out["error"] = self.error
        return out


def _opt_result(data: Any) -> StepResult | None:
    return None if data is None else StepResult.from_json(data)


@dataclass(slots=True)
class ChainState:
    chain_id: str
    chain_name: str
    origin_action: Action
    current_step: int
    total_steps: int
    status: str
    step_results: list[StepResult | None]
    started_at: datetime
    updated_at: datetime
    expires_at: datetime | None = None
    cancel_reason: str | None = None
    cancelled_by: str | None = None
    execution_path: list[str] = field(default_factory=list)
    parent_chain_id: str | None = None
    parent_step_index: int | None = None
    child_chain_ids: list[str] = field(default_factory=list)
    parallel_state: dict[str, Any] | None = None
    parallel_sub_results: dict[str, StepResult] = field(default_factory=dict)
    step_attempts: list[int] = field(default_factory=list)
    step_history: list[list[dict[str, Any]]] = field(default_factory=list)
    caller: dict[str, str] | None = None
    chain_version: int = 1
    config_snapshot: dict[str, Any] | None = None
    search_attributes: dict[str, Any] = field(default_factory=dict)
    wait_state: dict[str, Any] | None = None
    ready_at: datetime | None = None
    paused_status: str | None = None
    pause_reason: str | None = None
    paused_by: str | None = None

    @property
    def namespace(self) -> str:
        return self.origin_action.namespace

    @property
    def tenant(self) -> str:
        return self.origin_action.tenant

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL

    def attempts_of(self, index: int) -> int:
        return self.step_attempts[index] if index < len(self.step_attempts) else 0

    def to_json(self) -> str:
        data: dict[str, Any] = {
            "chain_id": self.chain_id,
            "chain_name": self.chain_name,
            "origin_action": self.origin_action.to_wire(),
            "current_step": self.current_step,
            "total_steps": self.total_steps,
            "status": self.status,
            "step_results": [None if r is None else r.to_json() for r in self.step_results],
            "started_at": format_rfc3339(self.started_at),
            "updated_at": format_rfc3339(self.updated_at),
            "expires_at": _ts(self.expires_at),
            "namespace": self.namespace,
            "tenant": self.tenant,
            "cancel_reason": self.cancel_reason,
            "cancelled_by": self.cancelled_by,
            "execution_path": list(self.execution_path),
            "parent_chain_id": self.parent_chain_id,
            "parent_step_index": self.parent_step_index,
            "child_chain_ids": list(self.child_chain_ids),
            "parallel_state": self.parallel_state,
            "parallel_sub_results": {k: v.to_json() for k, v in self.parallel_sub_results.items()},
            "step_attempts": list(self.step_attempts),
            "step_history": self.step_history,
            "caller": self.caller,
            "chain_version": self.chain_version,
        }
        # Upstream leaves these out instead of writing null/empty.
        if self.config_snapshot is not None:
            data["config_snapshot"] = self.config_snapshot
        if self.search_attributes:
            data["search_attributes"] = self.search_attributes
        if self.wait_state is not None:
            data["wait_state"] = self.wait_state
        # acteon additions.
        if self.ready_at is not None:
            data["ready_at"] = format_rfc3339(self.ready_at)
        if self.paused_status is not None:
            data["paused_status"] = self.paused_status
            data["pause_reason"] = self.pause_reason
            data["paused_by"] = self.paused_by
        return json.dumps(data, ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> ChainState:
        try:
            data = json.loads(text)
            origin = Action.model_validate(data["origin_action"])
            return cls(
                chain_id=str(data["chain_id"]),
                chain_name=str(data["chain_name"]),
                origin_action=origin,
                current_step=int(data["current_step"]),
                total_steps=int(data["total_steps"]),
                status=str(data["status"]),
                step_results=[_opt_result(r) for r in data.get("step_results") or []],
                started_at=coerce_datetime(data["started_at"]),
                updated_at=coerce_datetime(data["updated_at"]),
                expires_at=_opt_dt(data.get("expires_at")),
                cancel_reason=data.get("cancel_reason"),
                cancelled_by=data.get("cancelled_by"),
                execution_path=[str(p) for p in data.get("execution_path") or []],
                parent_chain_id=data.get("parent_chain_id"),
                parent_step_index=data.get("parent_step_index"),
                child_chain_ids=[str(c) for c in data.get("child_chain_ids") or []],
                parallel_state=data.get("parallel_state"),
                parallel_sub_results={
                    str(k): StepResult.from_json(v) for k, v in (data.get("parallel_sub_results") or {}).items()
                },
                step_attempts=[int(a) for a in data.get("step_attempts") or []],
                step_history=[list(h) for h in data.get("step_history") or []],
                caller=data.get("caller"),
                chain_version=int(data.get("chain_version") or 1),
                config_snapshot=data.get("config_snapshot"),
                search_attributes=dict(data.get("search_attributes") or {}),
                wait_state=data.get("wait_state"),
                ready_at=_opt_dt(data.get("ready_at")),
                paused_status=data.get("paused_status"),
                pause_reason=data.get("pause_reason"),
                paused_by=data.get("paused_by"),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ChainError(f"failed to deserialize chain state: {exc}") from exc

    def step_lookup(self, name: str, step_names: list[str]) -> StepResult | None:
        """Result of the first step with this name; falls back to parallel sub-steps."""
        for i, step_name in enumerate(step_names):
            if step_name == name:
                return self.step_results[i] if i < len(self.step_results) else None
        return self.parallel_sub_results.get(name)

"""What the chain API returns: summaries and details (server-api.md §2.7 shapes).

``to_dict()`` gives the HTTP JSON. Upstream names unstarted steps ``step-<i>``
and reports an empty provider for every step; acteon gives the definition's
name and provider. ``execution_tree`` is acteon's: the path taken, with the
sub-steps of parallel groups and the paths of sub-chains nested under their
step.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from acteon._timefmt import format_rfc3339
from acteon.chains._model import ChainConfig
from acteon.chains._state import ChainState

MAX_TREE_DEPTH = 8


@dataclass(frozen=True, slots=True)
class ChainSummary:
    chain_id: str
    chain_name: str
    status: str
    current_step: int
    total_steps: int
    started_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, st: ChainState) -> ChainSummary:
        return cls(st.chain_id, st.chain_name, st.status, st.current_step, st.total_steps, st.started_at,
                   st.updated_at)

    def to_dict(self) -> dict[str, Any]:
        return {
            "chain_id": self.chain_id,
            "chain_name": self.chain_name,
            "status": self.status,
            "current_step": self.current_step,
            "total_steps": self.total_steps,
            "started_at": format_rfc3339(self.started_at),
            "updated_at": format_rfc3339(self.updated_at),
        }


@dataclass(frozen=True, slots=True)
class ChainStepInfo:
    name: str
    provider: str
    status: str
    """``completed``, ``failed`` or ``pending``."""
    response_body: Any = None
    error: str | None = None
    completed_at: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "provider": self.provider,
            "status": self.status,
            "response_body": self.response_body,
            "error": self.error,
            "completed_at": None if self.completed_at is None else format_rfc3339(self.completed_at),
        }


@dataclass(frozen=True, slots=True)
class ChainDetail:
    """One chain: its summary fields, its steps, the path taken and the full stored state."""

    chain_id: str
    chain_name: str
    status: str
    current_step: int
    total_steps: int
    started_at: datetime
    updated_at: datetime
    steps: list[ChainStepInfo]
    expires_at: datetime | None
    cancel_reason: str | None
    cancelled_by: str | None
    execution_path: list[str]
    execution_tree: list[dict[str, Any]]
    parent_chain_id: str | None
    child_chain_ids: list[str]
    state: ChainState = field(repr=False)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = ChainSummary.of(self.state).to_dict()
        out["steps"] = [s.to_dict() for s in self.steps]
        out["expires_at"] = None if self.expires_at is None else format_rfc3339(self.expires_at)
        if self.cancel_reason is not None:
            out["cancel_reason"] = self.cancel_reason
        if self.cancelled_by is not None:
            out["cancelled_by"] = self.cancelled_by
        if self.execution_path:
            out["execution_path"] = list(self.execution_path)
        out["execution_tree"] = self.execution_tree
        if self.parent_chain_id is not None:
            out["parent_chain_id"] = self.parent_chain_id
        if self.child_chain_ids:
            out["child_chain_ids"] = list(self.child_chain_ids)
        if self.state.status == "paused":
            out["paused_status"] = self.state.paused_status
            out["pause_reason"] = self.state.pause_reason
            out["paused_by"] = self.state.paused_by
        return out


def step_infos(st: ChainState, cfg: ChainConfig | None) -> list[ChainStepInfo]:
    out = []
    for i in range(st.total_steps):
        result = st.step_results[i] if i < len(st.step_results) else None
        step = cfg.steps[i] if cfg is not None and i < len(cfg.steps) else None
        name = step.name if step is not None else (result.step_name if result is not None else f"step-{i}")
        if step is None:
            provider = ""
        else:
            provider = step.provider if step.kind == "provider" else (step.provider or step.kind)
        if result is None:
            out.append(ChainStepInfo(name, provider, "pending"))
        else:
            out.append(ChainStepInfo(name, provider, "completed" if result.success else "failed",
                                     result.response_body, result.error, result.completed_at))
    return out


ChildLoader = Callable[[str], Awaitable[tuple[ChainState, ChainConfig | None] | None]]


async def execution_tree(st: ChainState, cfg: ChainConfig | None, load_child: ChildLoader,
                         depth: int = 0) -> list[dict[str, Any]]:
    """The path taken as a tree: parallel sub-steps and sub-chain paths nest under their step."""
    from acteon.chains._steps import child_id_for

    nodes: list[dict[str, Any]] = []
    if cfg is None:
        return [{"step": name} for name in st.execution_path]
    last = -1
    for position, name in enumerate(st.execution_path):
        index = last + 1 if last + 1 < len(cfg.steps) and cfg.steps[last + 1].name == name else cfg.step_index(name)
        if index is None:
            nodes.append({"step": name})
            continue
        last = index
        step = cfg.steps[index]
        result = st.step_results[index] if index < len(st.step_results) else None
        is_current = position == len(st.execution_path) - 1
        if result is not None and not (is_current and st.is_active):
            status = "completed" if result.success else "failed"
        elif is_current and st.is_active:
            status = st.status
        else:
            status = "not_run"
        node: dict[str, Any] = {"step": name, "index": index, "kind": step.kind, "status": status}
        if result is not None and result.error is not None:
            node["error"] = result.error
        if step.parallel is not None:
            ps = st.parallel_state if st.parallel_state and st.parallel_state.get("step_index") == index else None
            children = []
            for sub in step.parallel.steps:
                sub_result = st.parallel_sub_results.get(sub.name)
                if sub_result is not None:
                    sub_status = "completed" if sub_result.success else "failed"
                elif ps is not None:
                    sub_status = "running"
                else:
                    sub_status = "abandoned" if result is not None else "not_run"
                child: dict[str, Any] = {"step": sub.name, "status": sub_status}
                if sub_result is not None and sub_result.error is not None:
                    child["error"] = sub_result.error
                children.append(child)
            node["children"] = children
        if step.sub_chain is not None:
            child_id = child_id_for(st.chain_id, index)
            info: dict[str, Any] = {"chain_name": step.sub_chain, "chain_id": child_id}
            loaded = await load_child(child_id) if depth < MAX_TREE_DEPTH and child_id in st.child_chain_ids else None
            if loaded is not None:
                info["status"] = loaded[0].status
                info["path"] = await execution_tree(loaded[0], loaded[1], load_child, depth + 1)
            node["sub_chain"] = info
        nodes.append(node)
    return nodes


async def build_detail(st: ChainState, cfg: ChainConfig | None, load_child: ChildLoader) -> ChainDetail:
    return ChainDetail(
        chain_id=st.chain_id,
        chain_name=st.chain_name,
        status=st.status,
        current_step=st.current_step,
        total_steps=st.total_steps,
        started_at=st.started_at,
        updated_at=st.updated_at,
        steps=step_infos(st, cfg),
        expires_at=st.expires_at,
        cancel_reason=st.cancel_reason,
        cancelled_by=st.cancelled_by,
        execution_path=list(st.execution_path),
        execution_tree=await execution_tree(st, cfg, load_child),
        parent_chain_id=st.parent_chain_id,
        child_chain_ids=list(st.child_chain_ids),
        state=st,
    )

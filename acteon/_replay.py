"""Action replay from the audit trail (core-pipeline.md §14).

A replay rebuilds an action from its audit record -- a new id and ``created_at``,
the stored payload, labels and typed fields, plus the label ``replayed_from`` --
and sends it through the full pipeline (quotas, rules, dedup, breakers) under the
replaying caller's identity. Because ``dedup_key`` is restored, replaying an
action whose dedup key is still live gives ``Deduplicated``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import anyio

from acteon._action import Action
from acteon._caller import Caller
from acteon._exceptions import ActeonError
from acteon._timefmt import parse_rfc3339
from acteon.audit._model import AuditQuery, AuditRecord

if TYPE_CHECKING:
    from acteon.audit._base import AuditStore
    from acteon.outcomes import Outcome


class _Dispatcher(Protocol):
    async def dispatch(self, action: Action, *, dry_run: bool = ..., caller: Caller | None = ...) -> Outcome: ...

_BULK_CONCURRENCY = 32


class ReplayError(ActeonError):
    """A replay could not start: audit off, no record, or no stored payload.

    ``code`` is ``NOT_FOUND`` (audit disabled or no record) or ``VALIDATION_ERROR``
    (payload not stored), the upstream HTTP mapping (404 / 422).
    """

    def __init__(self, message: str, code: str) -> None:
        self.code = code
        super().__init__(message)


@dataclass(slots=True)
class ReplayResult:
    original_action_id: str
    new_action_id: str
    success: bool
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "original_action_id": self.original_action_id,
            "new_action_id": self.new_action_id,
            "success": self.success,
            "error": self.error,
        }


@dataclass(slots=True)
class BulkReplaySummary:
    replayed: int = 0
    failed: int = 0
    skipped: int = 0
    results: list[ReplayResult] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "replayed": self.replayed,
            "failed": self.failed,
            "skipped": self.skipped,
            "results": [r.to_dict() for r in self.results],
        }


def action_from_record(record: AuditRecord) -> Action | None:
    """The replay action for a record, or ``None`` when the payload was not stored."""
    if record.action_payload is None:
        return None
    labels: dict[str, str] = {}
    typed: dict[str, Any] = {}
    metadata = record.metadata if isinstance(record.metadata, dict) else {}
    for key, value in metadata.items():
        if key.startswith("__"):
            continue
        labels[key] = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    for system_key, name in (("__dedup_key", "dedup_key"), ("__fingerprint", "fingerprint"),
                             ("__status", "status")):
        value = metadata.get(system_key)
        if isinstance(value, str):
            typed[name] = value
    for system_key, name in (("__starts_at", "starts_at"), ("__ends_at", "ends_at")):
        value = metadata.get(system_key)
        if isinstance(value, str):
            try:
                typed[name] = parse_rfc3339(value)
            except ValueError:
                pass  # upstream ignores a timestamp it cannot parse
    labels["replayed_from"] = record.action_id
    return Action(
        namespace=record.namespace,
        tenant=record.tenant,
        provider=record.provider,
        action_type=record.action_type,
        payload=record.action_payload,
        metadata=labels,
        **typed,
    )


class ReplayMixin:
    """``replay_action`` and ``replay_audit`` on the gateway."""

    _audit: AuditStore | None

    if TYPE_CHECKING:  # provided by AsyncGateway

        async def dispatch(
            self, action: Action, *, dry_run: bool = False, caller: Caller | None = None
        ) -> Outcome: ...

    async def replay_action(self, action_id: str, *, caller: Caller | None = None) -> ReplayResult:
        """Replay the most recent audited dispatch of ``action_id`` through the full pipeline.

        Raises :class:`ReplayError` when audit is off, no record exists, or the record
        has no stored payload. ``success`` is whether the dispatch returned an outcome
        (a ``Failed`` or ``Suppressed`` outcome still counts); an error is reported in
        ``error`` instead of raising.
        """
        if self._audit is None:
            raise ReplayError("audit is not enabled", "NOT_FOUND")
        record = await self._audit.get_by_action_id(action_id)
        if record is None:
            raise ReplayError(f"no audit record found for action: {action_id}", "NOT_FOUND")
        action = action_from_record(record)
        if action is None:
            raise ReplayError("audit record has no stored payload (privacy mode was enabled)", "VALIDATION_ERROR")
        return await _replay_one(self, record, action, caller)

    async def replay_audit(
        self,
        query: AuditQuery | Mapping[str, Any] | None = None,
        *,
        caller: Caller | None = None,
    ) -> BulkReplaySummary:
        """Replay every record matching ``query`` (filters of §14; limit default 50, at most 1000).

        Records without a stored payload are skipped; up to 32 replays run at once.
        """
        if self._audit is None:
            raise ReplayError("audit is not enabled", "NOT_FOUND")
        if query is None:
            query = AuditQuery()
        elif not isinstance(query, AuditQuery):
            query = AuditQuery.from_params(dict(query))
        page = await self._audit.query(query)
        summary = BulkReplaySummary()
        todo: list[tuple[AuditRecord, Action]] = []
        for record in page.records:
            action = action_from_record(record)
            if action is None:
                summary.skipped += 1
            else:
                todo.append((record, action))
        results: list[ReplayResult | None] = [None] * len(todo)
        limiter = anyio.CapacityLimiter(_BULK_CONCURRENCY)

        async def run(index: int, record: AuditRecord, action: Action) -> None:
            async with limiter:
                results[index] = await _replay_one(self, record, action, caller)

        async with anyio.create_task_group() as tg:
            for index, (record, action) in enumerate(todo):
                tg.start_soon(run, index, record, action)
        for result in results:
            if result is None:  # pragma: no cover - every task stores its result
                continue
            summary.results.append(result)
            if result.success:
                summary.replayed += 1
            else:
                summary.failed += 1
        return summary


async def _replay_one(gw: _Dispatcher, record: AuditRecord, action: Action, caller: Caller | None) -> ReplayResult:
    try:
        await gw.dispatch(action, caller=caller)
    except ActeonError as exc:
        return ReplayResult(record.action_id, action.id, False, str(exc))
    return ReplayResult(record.action_id, action.id, True, None)

"""Recurring (cron) actions: definitions, lifecycle and the firing job
(core-pipeline.md §12, server-api.md §2.13, DECISIONS D12).

Keys (upstream layout):

- ``{ns}:{t}:recurring_action:{id}`` -- the :class:`RecurringAction` JSON, no TTL;
- ``{ns}:{t}:pending_recurring:{id}`` -- next occurrence in epoch ms, plus an entry in
  the shared timeout index at that time (absent while paused or exhausted);
- ``{ns}:{t}:recurring_action:{id}:claim:{occurrence_ms}`` -- the claim of one
  occurrence, so exactly one process fires it (not counted toward the tenant limit).

The ``recurring_actions`` job fires what is due: it claims the occurrence,
re-reads the definition (an occurrence that was fired or rescheduled meanwhile is
skipped), builds the action from the template (``{{recurring_id}}`` and
``{{execution_time}}`` resolved in metadata values and ``dedup_key``), dispatches
it through the full pipeline -- it counts toward quotas -- and then advances the
definition to the first occurrence after *now*: missed occurrences are never
back-filled. ``ends_at`` and ``max_executions`` end the schedule. A dispatch that
raises is retried after ``retry_backoff_seconds`` until the next occurrence is due.

Definition changes (API and job alike) take the lock ``recurring:{ns}:{t}:{id}``
so the index always follows the latest saved definition.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from acteon._action import Action
from acteon._audit_builder import fast_uuid7
from acteon._events import StreamEvent
from acteon._exceptions import ActeonError, LockFailed, SerializationError, StateTimeout
from acteon._timefmt import coerce_datetime, format_rfc3339
from acteon.audit._model import AuditRecord
from acteon.scheduling._config import SchedulingConfig
from acteon.scheduling._cron import check_min_interval, next_occurrence, parse_cron, validate_timezone
from acteon.scheduling._errors import (
    RecurringConflictError,
    RecurringLimitError,
    RecurringNotFoundError,
    RecurringValidationError,
)
from acteon.scheduling._model import RecurringAction, RecurringActionTemplate, _ms_ceil
from acteon.scheduling._origin import trusted_dispatch

if TYPE_CHECKING:
    from acteon._gateway import AsyncGateway

_log = logging.getLogger("acteon.scheduling")

_PAYLOAD_MARKER = "_recurring_dispatch"
_PLACEHOLDER = re.compile(r"\{\{\s*(recurring_id|execution_time)\s*\}\}")
_OCCURRENCE_IDS = uuid.UUID("6f1d5c1e-5a53-4c55-9a3c-1f0e5b6a7c21")
_LOCK_TTL = 30.0
_LOCK_WAIT = 5.0


def _key(ns: str, tenant: str, rid: str) -> str:
    return f"{ns}:{tenant}:recurring_action:{rid}"


def _pending_key(ns: str, tenant: str, rid: str) -> str:
    return f"{ns}:{tenant}:pending_recurring:{rid}"


def _check_scope(namespace: str, tenant: str) -> None:
    for label, value in (("namespace", namespace), ("tenant", tenant)):
        if not isinstance(value, str) or not value or ":" in value:
            raise RecurringValidationError(f"{label} must be a non-empty string without ':' (got {value!r})")


def _check_json(label: str, value: Any) -> None:
    try:
        json.dumps(value)
    except (TypeError, ValueError) as exc:
        raise RecurringValidationError(f"{label} is not JSON-serializable: {exc}") from exc


def _check_str_map(label: str, value: Mapping[str, Any] | None) -> dict[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise RecurringValidationError(f"{label} must be a mapping of strings, got {type(value).__name__}")
    for key, item in value.items():
        if not isinstance(key, str) or not isinstance(item, str):
            raise RecurringValidationError(f"{label} entry {key!r} must map a string to a string, got {item!r}")
    return dict(value)


def _check_max_executions(value: int | None) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise RecurringValidationError(f"max_executions must be a positive integer, got {value!r}")


def _render(text: str, recurring_id: str, execution_time: str) -> str:
    values = {"recurring_id": recurring_id, "execution_time": execution_time}
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], text)


def _limited(rec: RecurringAction, candidate: datetime | None) -> datetime | None:
    """``candidate`` if the schedule is still running then, else ``None`` (exhausted)."""
    if candidate is None:
        return None
    if rec.ends_at is not None and candidate > rec.ends_at:
        return None
    if rec.max_executions is not None and rec.execution_count >= rec.max_executions:
        return None
    return candidate


class RecurringActions:
    """CRUD and the firing job of recurring actions for one gateway."""

    def __init__(self, gateway: AsyncGateway, config: SchedulingConfig) -> None:
        self._gw = gateway
        self._config = config

    # ------------------------------------------------------------------ storage helpers

    async def _load(self, ns: str, tenant: str, rid: str) -> RecurringAction | None:
        raw = await self._gw._state.get(_key(ns, tenant, rid))
        if raw is None:
            return None
        try:
            return RecurringAction.from_json(raw)
        except ValueError as exc:
            raise SerializationError(f"recurring action {ns}:{tenant}:{rid} is unreadable: {exc}") from exc

    async def _require(self, ns: str, tenant: str, rid: str) -> RecurringAction:
        rec = await self._load(ns, tenant, rid)
        if rec is None:
            raise RecurringNotFoundError(rid)
        return rec

    async def _save(self, rec: RecurringAction) -> None:
        """Write the definition, then make the index match it."""
        state = self._gw._state
        await state.set(_key(rec.namespace, rec.tenant, rec.id), rec.to_json())
        pending = _pending_key(rec.namespace, rec.tenant, rec.id)
        if rec.enabled and rec.next_execution_at is not None:
            due_ms = _ms_ceil(rec.next_execution_at)
            await state.set(pending, str(due_ms))
            await state.index_timeout(pending, due_ms)
        else:
            await self._forget(pending)

    async def _forget(self, pending: str) -> None:
        await self._gw._state.delete(pending)
        await self._gw._state.remove_timeout_index(pending)

    @asynccontextmanager
    async def _locked(self, ns: str, tenant: str, rid: str) -> AsyncIterator[None]:
        try:
            guard = await self._gw._lock.acquire(f"recurring:{ns}:{tenant}:{rid}", _LOCK_TTL, _LOCK_WAIT)
        except StateTimeout as exc:
            raise LockFailed(str(exc)) from exc
        try:
            yield
        finally:
            await guard.release()

    async def _count(self, ns: str, tenant: str) -> int:
        # Claim keys share the kind; only plain ids are definitions (upstream counted both).
        prefix = len(f"{ns}:{tenant}:recurring_action:")
        keys = await self._gw._state.scan_keys(ns, tenant, "recurring_action")
        return sum(1 for key, _ in keys if ":" not in key[prefix:])

    async def _audit(self, operation: str, rec: RecurringAction, now: datetime) -> None:
        """One audit record per definition change, in the upstream server's shape."""
        gw = self._gw
        if gw._audit is None:
            return
        builder = gw._audit_builder
        record = AuditRecord(
            id=fast_uuid7(now),
            action_id=str(uuid.uuid4()),
            namespace=rec.namespace,
            tenant=rec.tenant,
            provider="system",
            action_type=f"recurring.{operation}",
            verdict="allow",
            outcome="executed",
            dispatched_at=now,
            completed_at=now,
            action_payload=rec.to_dict() if builder.store_payload else None,
            verdict_details={},
            outcome_details={},
            metadata={"recurring_id": rec.id},
            expires_at=None if builder.ttl is None else now + builder.ttl,
            caller_id="system",
            auth_method="unknown",
        )
        try:
            await gw._audit.record(record)
        except ActeonError as exc:  # the change itself succeeded; say so loudly, do not undo it
            _log.error("could not audit recurring.%s of %s: %s", operation, rec.id, exc)

    # ------------------------------------------------------------------ CRUD

    async def create(
        self,
        namespace: str,
        tenant: str,
        *,
        provider: str,
        action_type: str,
        cron_expr: str,
        payload: Any = None,
        metadata: Mapping[str, str] | None = None,
        timezone: str = "UTC",
        name: str | None = None,
        description: str | None = None,
        dedup_key: str | None = None,
        ends_at: datetime | str | None = None,
        max_executions: int | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> RecurringAction:
        _check_scope(namespace, tenant)
        if await self._count(namespace, tenant) >= self._config.max_recurring_per_tenant:
            raise RecurringLimitError(self._config.max_recurring_per_tenant)
        now = self._gw._clock.now()
        parse_cron(cron_expr)
        validate_timezone(timezone)
        first = check_min_interval(cron_expr, timezone, now, self._config.min_interval_seconds)
        for label, value in (("provider", provider), ("action_type", action_type)):
            if not isinstance(value, str) or not value:
                raise RecurringValidationError(f"{label} must be a non-empty string (got {value!r})")
        payload = {} if payload is None else payload
        _check_json("payload", payload)
        _check_max_executions(max_executions)
        end = self._end_time(ends_at, now)
        try:
            rec = RecurringAction(
                id=str(uuid.uuid4()),
                namespace=namespace,
                tenant=tenant,
                cron_expr=cron_expr,
                timezone=timezone,
                enabled=True,
                action_template=RecurringActionTemplate(
                    provider=provider, action_type=action_type, payload=payload,
                    metadata=_check_str_map("metadata", metadata) or {}, dedup_key=dedup_key,
                ),
                created_at=now,
                updated_at=now,
                ends_at=end,
                max_executions=max_executions,
                description=description if description is not None else name,
                labels=_check_str_map("labels", labels) or {},
            )
        except ValidationError as exc:
            raise RecurringValidationError(f"invalid recurring action: {exc.errors()[0]['msg']}") from exc
        rec = rec.model_copy(update={"next_execution_at": _limited(rec, first)})
        await self._save(rec)
        await self._audit("create", rec, now)
        return rec

    @staticmethod
    def _end_time(ends_at: datetime | str | None, now: datetime) -> datetime | None:
        if ends_at is None:
            return None
        try:
            end = coerce_datetime(ends_at)
        except ValueError as exc:
            raise RecurringValidationError(f"ends_at: {exc}") from exc
        if end <= now:
            raise RecurringValidationError(f"ends_at {format_rfc3339(end)} is not in the future")
        return end

    async def get(self, namespace: str, tenant: str, recurring_id: str) -> RecurringAction | None:
        return await self._load(namespace, tenant, recurring_id)

    async def list(
        self, namespace: str, tenant: str, *, status: str | None = None, limit: int = 100, offset: int = 0
    ) -> list[RecurringAction]:
        """Definitions of a namespace/tenant, oldest first; ``status`` ``"active"``/``"paused"``."""
        if limit < 0 or offset < 0:
            raise RecurringValidationError(f"limit and offset must be >= 0 (got {limit}, {offset})")
        prefix = len(f"{namespace}:{tenant}:recurring_action:")
        out: list[RecurringAction] = []
        for key, value in await self._gw._state.scan_keys(namespace, tenant, "recurring_action"):
            if ":" in key[prefix:]:
                continue
            try:
                rec = RecurringAction.from_json(value)
            except ValueError as exc:
                _log.warning("recurring action %s is unreadable (%s); not listed", key, exc)
                continue
            if status in ("active", "paused") and rec.status != status:
                continue
            out.append(rec)
        out.sort(key=lambda r: (r.created_at, r.id))
        return out[offset:offset + limit]

    async def update(
        self,
        namespace: str,
        tenant: str,
        recurring_id: str,
        *,
        payload: Any = None,
        metadata: Mapping[str, str] | None = None,
        cron_expr: str | None = None,
        timezone: str | None = None,
        ends_at: datetime | str | None = None,
        max_executions: int | None = None,
        description: str | None = None,
        name: str | None = None,
        dedup_key: str | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> RecurringAction:
        """Change the given fields (``None`` leaves a field as it is)."""
        now = self._gw._clock.now()
        if cron_expr is not None:
            parse_cron(cron_expr)
        if timezone is not None:
            validate_timezone(timezone)
        if payload is not None:
            _check_json("payload", payload)
        _check_max_executions(max_executions)
        end = self._end_time(ends_at, now)
        meta, lab = _check_str_map("metadata", metadata), _check_str_map("labels", labels)
        async with self._locked(namespace, tenant, recurring_id):
            rec = await self._require(namespace, tenant, recurring_id)
            tpl = rec.action_template
            template = tpl.model_copy(update={
                "payload": tpl.payload if payload is None else payload,
                "metadata": tpl.metadata if meta is None else meta,
                "dedup_key": tpl.dedup_key if dedup_key is None else dedup_key,
            })
            changes: dict[str, Any] = {"action_template": template, "updated_at": now}
            if cron_expr is not None:
                changes["cron_expr"] = cron_expr
            if timezone is not None:
                changes["timezone"] = timezone
            if end is not None:
                changes["ends_at"] = end
            if max_executions is not None:
                changes["max_executions"] = max_executions
            if description is not None or name is not None:
                changes["description"] = description if description is not None else name
            if lab is not None:
                changes["labels"] = lab
            new = rec.model_copy(update=changes)
            if new.enabled:
                nxt = new.next_execution_at
                if new.cron_expr != rec.cron_expr or new.timezone != rec.timezone:
                    nxt = check_min_interval(new.cron_expr, new.timezone, now, self._config.min_interval_seconds)
                elif nxt is None and (end is not None or max_executions is not None):
                    nxt = next_occurrence(new.cron_expr, new.timezone, now)  # limits raised: re-arm
                new = new.model_copy(update={"next_execution_at": _limited(new, nxt)})
            await self._save(new)
        await self._audit("update", new, now)
        return new

    async def pause(self, namespace: str, tenant: str, recurring_id: str) -> RecurringAction:
        now = self._gw._clock.now()
        async with self._locked(namespace, tenant, recurring_id):
            rec = await self._require(namespace, tenant, recurring_id)
            if not rec.enabled:
                raise RecurringConflictError("recurring action is already paused")
            rec = rec.model_copy(update={"enabled": False, "next_execution_at": None, "updated_at": now})
            await self._save(rec)
        await self._audit("pause", rec, now)
        return rec

    async def resume(self, namespace: str, tenant: str, recurring_id: str) -> RecurringAction:
        """Re-enable; the next run is the first occurrence after now (nothing missed is run).

        Unlike upstream, the minimum interval, ``ends_at`` and ``max_executions`` are
        checked again, so pause → update → resume cannot slip past them.
        """
        now = self._gw._clock.now()
        async with self._locked(namespace, tenant, recurring_id):
            rec = await self._require(namespace, tenant, recurring_id)
            if rec.enabled:
                raise RecurringConflictError("recurring action is already active")
            first = check_min_interval(rec.cron_expr, rec.timezone, now, self._config.min_interval_seconds)
            rec = rec.model_copy(update={"enabled": True, "updated_at": now})
            rec = rec.model_copy(update={"next_execution_at": _limited(rec, first)})
            await self._save(rec)
        await self._audit("resume", rec, now)
        return rec

    async def delete(self, namespace: str, tenant: str, recurring_id: str) -> bool:
        """Remove the definition and its schedule; ``False`` if there was none."""
        now = self._gw._clock.now()
        async with self._locked(namespace, tenant, recurring_id):
            raw = await self._gw._state.get(_key(namespace, tenant, recurring_id))
            await self._forget(_pending_key(namespace, tenant, recurring_id))
            if raw is None:
                return False
            await self._gw._state.delete(_key(namespace, tenant, recurring_id))
        try:
            await self._audit("delete", RecurringAction.from_json(raw), now)
        except ValueError:
            pass  # an unreadable definition is still deleted; there is nothing to audit
        return True

    # ------------------------------------------------------------------ firing job

    async def run_due(self, now: datetime) -> int:
        """Fire every occurrence due at ``now``; returns how many were dispatched."""
        due = await self._gw._state.get_expired_timeouts(int(now.timestamp() * 1000))
        fired = 0
        for key in due:
            parts = key.split(":", 3)
            if len(parts) != 4 or parts[2] != "pending_recurring":
                continue
            try:
                fired += await self._fire(parts[0], parts[1], parts[3], now)
            except ActeonError as exc:  # one broken definition must not stop the others
                _log.error("recurring action %s: %s", key, exc)
        return fired

    async def _fire(self, ns: str, tenant: str, rid: str, now: datetime) -> int:
        state = self._gw._state
        pending = _pending_key(ns, tenant, rid)
        try:
            rec = await self._load(ns, tenant, rid)
        except SerializationError as exc:
            _log.error("%s; unscheduling it", exc)
            await self._forget(pending)
            return 0
        if rec is None or not rec.enabled or rec.next_execution_at is None:
            await self._forget(pending)  # deleted, paused or exhausted: a stale index entry
            return 0
        occurrence = rec.next_execution_at
        occurrence_ms = _ms_ceil(occurrence)
        if occurrence_ms > int(now.timestamp() * 1000):
            await state.index_timeout(pending, occurrence_ms)  # rescheduled: wait for the new time
            return 0
        if _limited(rec, occurrence) is None:
            await self._advance(rec, occurrence, now, executed=False)
            return 0
        claim_key = f"{_key(ns, tenant, rid)}:claim:{occurrence_ms}"
        owner = uuid.uuid4().hex
        if not await state.check_and_set(claim_key, owner, self._config.claim_ttl_seconds):
            self._gw._metrics.recurring_skipped += 1  # another process fires this occurrence
            return 0
        # Re-read after claiming: if the occurrence was fired (and the definition
        # advanced) or changed since the first read, it is not ours to fire.
        fresh = await self._load(ns, tenant, rid)
        if fresh is None or not fresh.enabled or fresh.next_execution_at != occurrence:
            self._gw._metrics.recurring_skipped += 1
            await self._release(claim_key, owner)
            return 0
        action = self._occurrence_action(fresh, occurrence, now)
        try:
            with trusted_dispatch("recurring", action.id):
                await self._gw.dispatch(action)
        except Exception as exc:  # any pipeline failure: retry while the next run is far enough
            self._gw._metrics.recurring_errors += 1
            _log.warning("recurring action %s occurrence %s failed: %s", rid, format_rfc3339(occurrence), exc)
            self._gw._events.publish(StreamEvent(
                "recurring_action_failed", now, ns, tenant, action.action_type, action.id,
                {"recurring_id": rid, "execution_time": format_rfc3339(occurrence), "error": str(exc)},
            ))
            await self._after_failure(fresh, occurrence, now)
            await self._release(claim_key, owner)
            return 0
        self._gw._metrics.recurring_dispatched += 1
        # Released only once the run is recorded: if recording fails, the claim keeps
        # other processes from firing this occurrence again until it expires.
        await self._advance(fresh, occurrence, now, executed=True)
        await self._release(claim_key, owner)
        return 1

    async def _release(self, claim_key: str, owner: str) -> None:
        if await self._gw._state.get(claim_key) == owner:
            await self._gw._state.delete(claim_key)

    def _occurrence_action(self, rec: RecurringAction, occurrence: datetime, now: datetime) -> Action:
        tpl = rec.action_template
        when = format_rfc3339(occurrence)
        payload = tpl.payload
        if isinstance(payload, dict):
            payload = {**payload, _PAYLOAD_MARKER: True}
        return Action(
            # One id per occurrence: every process would build the same action.
            id=str(uuid.uuid5(_OCCURRENCE_IDS, f"{rec.namespace}:{rec.tenant}:{rec.id}:{when}")),
            namespace=rec.namespace,
            tenant=rec.tenant,
            provider=tpl.provider,
            action_type=tpl.action_type,
            payload=payload,
            metadata={k: _render(v, rec.id, when) for k, v in tpl.metadata.items()},
            dedup_key=None if tpl.dedup_key is None else _render(tpl.dedup_key, rec.id, when),
            created_at=now,
        )

    async def _after_failure(self, rec: RecurringAction, occurrence: datetime, now: datetime) -> None:
        retry_at = now + timedelta(seconds=self._config.retry_backoff_seconds)
        following = next_occurrence(rec.cron_expr, rec.timezone, now)
        if following is not None and retry_at >= following:
            _log.warning("recurring action %s: giving up occurrence %s, the next one is due first",
                         rec.id, format_rfc3339(occurrence))
            await self._advance(rec, occurrence, now, executed=False)
        else:
            await self._gw._state.index_timeout(_pending_key(rec.namespace, rec.tenant, rec.id),
                                                _ms_ceil(retry_at))

    async def _advance(self, seen: RecurringAction, occurrence: datetime, now: datetime, *, executed: bool) -> None:
        """Record an occurrence (run or given up) and schedule the first one after ``now``."""
        async with self._locked(seen.namespace, seen.tenant, seen.id):
            rec = await self._load(seen.namespace, seen.tenant, seen.id)
            if rec is None:
                return
            changes: dict[str, Any] = {"updated_at": now}
            if executed:
                changes.update(last_executed_at=now, execution_count=rec.execution_count + 1)
            rec = rec.model_copy(update=changes)
            nxt = rec.next_execution_at
            if rec.enabled and nxt == occurrence:
                nxt = next_occurrence(rec.cron_expr, rec.timezone, now)  # no backfill
            # (otherwise the schedule was changed meanwhile; keep the new next run)
            rec = rec.model_copy(update={"next_execution_at": _limited(rec, nxt) if rec.enabled else None})
            await self._save(rec)


__all__ = ["RecurringActions"]

"""Gateway methods for scheduled and recurring actions (mixed into ``AsyncGateway``).

The blocking twins live in ``acteon._sync.Gateway``. Each method forwards to the
feature objects that :func:`acteon.scheduling.attach` put on the gateway.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from acteon._exceptions import UsageError
from acteon.scheduling._model import RecurringAction, ScheduledAction

if TYPE_CHECKING:
    from acteon.scheduling import SchedulingFeature


class SchedulingMixin:
    """``list_scheduled`` / ``get_scheduled`` / ``cancel_scheduled`` and the recurring CRUD."""

    _scheduling: SchedulingFeature | None = None

    def _require_scheduling(self) -> SchedulingFeature:
        if self._scheduling is None:
            raise UsageError("scheduled and recurring actions are not enabled on this gateway")
        return self._scheduling

    # ------------------------------------------------------------------ scheduled

    async def list_scheduled(self, namespace: str, tenant: str) -> list[ScheduledAction]:
        """Scheduled actions of a namespace/tenant still waiting for delivery, soonest first."""
        return await self._require_scheduling().scheduled.list(namespace, tenant)

    async def get_scheduled(self, namespace: str, tenant: str, scheduled_id: str) -> ScheduledAction | None:
        """One waiting scheduled action by its id (the ``action_id`` of ``Scheduled``)."""
        return await self._require_scheduling().scheduled.get(namespace, tenant, scheduled_id)

    async def cancel_scheduled(self, namespace: str, tenant: str, scheduled_id: str) -> bool:
        """Cancel a waiting scheduled action; ``False`` if it is unknown, already
        delivered, or being delivered at this moment."""
        return await self._require_scheduling().scheduled.cancel(namespace, tenant, scheduled_id)

    # ------------------------------------------------------------------ recurring

    async def create_recurring(
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
        """Create a recurring action; it first runs at the next occurrence of ``cron_expr``.

        Raises ``RecurringLimitError`` (tenant full), ``InvalidCronExpression``,
        ``InvalidTimezone``, ``CronIntervalTooShort``, ``CronNoFutureOccurrence`` or
        ``RecurringValidationError``.
        """
        return await self._require_scheduling().recurring.create(
            namespace, tenant, provider=provider, action_type=action_type, cron_expr=cron_expr,
            payload=payload, metadata=metadata, timezone=timezone, name=name, description=description,
            dedup_key=dedup_key, ends_at=ends_at, max_executions=max_executions, labels=labels,
        )

    async def get_recurring(self, namespace: str, tenant: str, recurring_id: str) -> RecurringAction | None:
        """One recurring action, or ``None``."""
        return await self._require_scheduling().recurring.get(namespace, tenant, recurring_id)

    async def list_recurring(
        self, namespace: str, tenant: str, *, status: str | None = None, limit: int = 100, offset: int = 0
    ) -> list[RecurringAction]:
        """Recurring actions of a namespace/tenant, oldest first (``status``: ``"active"``/``"paused"``)."""
        return await self._require_scheduling().recurring.list(
            namespace, tenant, status=status, limit=limit, offset=offset
        )

    async def update_recurring(
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
        """Change the given fields; ``None`` keeps a field. A new cron or time zone of an
        active action reschedules it from now. Raises ``RecurringNotFoundError``."""
        return await self._require_scheduling().recurring.update(
            namespace, tenant, recurring_id, payload=payload, metadata=metadata, cron_expr=cron_expr,
            timezone=timezone, ends_at=ends_at, max_executions=max_executions, description=description,
            name=name, dedup_key=dedup_key, labels=labels,
        )

    async def pause_recurring(self, namespace: str, tenant: str, recurring_id: str) -> RecurringAction:
        """Stop firing until resumed; ``RecurringConflictError`` if already paused."""
        return await self._require_scheduling().recurring.pause(namespace, tenant, recurring_id)

    async def resume_recurring(self, namespace: str, tenant: str, recurring_id: str) -> RecurringAction:
        """Fire again from the next occurrence after now (missed runs are not made up);
        ``RecurringConflictError`` if already active."""
        return await self._require_scheduling().recurring.resume(namespace, tenant, recurring_id)

    async def delete_recurring(self, namespace: str, tenant: str, recurring_id: str) -> bool:
        """Delete a recurring action; ``False`` if there was none."""
        return await self._require_scheduling().recurring.delete(namespace, tenant, recurring_id)

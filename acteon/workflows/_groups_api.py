"""Gateway methods for event groups: list, inspect and flush (server-api.md §2.8 equivalents)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from acteon._exceptions import UsageError

if TYPE_CHECKING:
    from acteon.workflows.grouping import GroupEngine

_STATES = ("pending", "notified")


class GroupsMixin:
    """``list_groups`` / ``get_group`` / ``flush_group`` on ``AsyncGateway``."""

    _grouping: GroupEngine

    async def list_groups(
        self,
        namespace: str | None = None,
        tenant: str | None = None,
        *,
        state: str | None = None,
        limit: int | None = 100,
    ) -> list[dict[str, Any]]:
        """Summaries of the live groups, oldest first.

        Each is ``{group_id, group_key, namespace, tenant, event_count, state,
        notify_at, created_at}``. ``state`` keeps only ``"pending"`` groups
        (waiting for their next flush) or ``"notified"`` ones (sent, waiting
        for stragglers or a repeat); ``None`` lists both. Without
        ``namespace``/``tenant`` every scope is listed.
        """
        if state is not None and state not in _STATES:
            raise UsageError(f"list_groups(state=...) must be one of {', '.join(_STATES)}, got {state!r}")
        if limit is not None and limit < 0:
            raise UsageError(f"list_groups(limit=...) must not be negative, got {limit}")
        groups = await self._grouping.list_groups(namespace, tenant, state, limit)
        return [g.summary() for g in groups]

    async def get_group(
        self, group: str, namespace: str | None = None, tenant: str | None = None
    ) -> dict[str, Any] | None:
        """One group by its ``group_key`` (or ``group_id``), or ``None``.

        ``{"group": summary, "labels": {...}, "event_fingerprints": [...],
        "events": [{action_id, fingerprint, status, payload, received_at}, ...]}``.
        """
        found = await self._grouping.load(group, namespace, tenant)
        if found is None:
            return None
        return {
            "group": found.summary(),
            "labels": dict(found.labels),
            "event_fingerprints": [str(e.get("fingerprint", "")) for e in found.events],
            "events": [dict(e) for e in found.events],
        }

    async def flush_group(
        self, group: str, namespace: str | None = None, tenant: str | None = None
    ) -> dict[str, Any]:
        """Send the group's notification now, through the full pipeline.

        Returns ``{group_id, group_key, event_count, status: "flushed", outcome}``
        where ``outcome`` is the notification's dispatch outcome. Raises
        ``GroupNotFound`` for an unknown group and ``GroupNotPending`` when it
        holds nothing to send (or a flush of it is already running).
        """
        return await self._grouping.flush(group, namespace, tenant)

"""Gateway methods for state-machine events: list, inspect, transition (server-api.md §2.9 equivalents)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from acteon._exceptions import UsageError
from acteon.outcomes import StateChanged

if TYPE_CHECKING:
    from acteon.workflows.state_machines import StateMachineEngine


class StateMachinesMixin:
    """``list_events`` / ``get_event`` / ``transition_event`` / ``state_machines`` on ``AsyncGateway``."""

    _state_machines: StateMachineEngine

    @property
    def state_machines(self) -> dict[str, dict[str, Any]]:
        """The configured state-machine definitions by name (normalised dict form, a copy)."""
        return {name: m.to_dict() for name, m in self._state_machines.machines.items()}

    async def list_events(
        self, namespace: str, tenant: str, *, status: str | None = None, limit: int | None = 100
    ) -> list[dict[str, Any]]:
        """Events of one scope: ``[{fingerprint, state, action_type, updated_at, state_machine}]``.

        ``status`` keeps only events in that state. Ordered by fingerprint.
        """
        if limit is not None and limit < 0:
            raise UsageError(f"list_events(limit=...) must not be negative, got {limit}")
        return await self._state_machines.list_events(namespace, tenant, status, limit)

    async def get_event(self, namespace: str, tenant: str, fingerprint: str) -> dict[str, Any] | None:
        """The stored event (``state``, ``fingerprint``, ``updated_at``, ``action_type``,
        ``state_machine``, ...) plus ``timeout`` (``{expires_at, transition_to}`` or
        ``None``); ``None`` when there is no such event."""
        return await self._state_machines.get_event(namespace, tenant, fingerprint)

    async def transition_event(
        self, namespace: str, tenant: str, fingerprint: str, to_state: str, *, force: bool = False
    ) -> StateChanged:
        """Move an event to ``to_state`` by hand.

        The move must be a transition of the event's state machine (DECISIONS
        D17), else ``InvalidTransition``; ``force=True`` skips that check (the
        state must still exist). Timeouts follow the new state, and a
        ``notify: true`` transition sends its notification. Raises
        ``EventNotFound`` for an unknown fingerprint.
        """
        return await self._state_machines.transition(namespace, tenant, fingerprint, to_state, force)

"""The audit-store contract (state-audit.md B5)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from types import TracebackType
from typing import Self

from acteon._clock import SYSTEM_CLOCK, Clock
from acteon.audit._model import AuditPage, AuditQuery, AuditRecord


class AuditStore(ABC):
    """Where every dispatch outcome is recorded.

    ``record`` may buffer; :meth:`flush` and :meth:`aclose` write everything
    buffered, so nothing accepted is lost on a clean shutdown.
    """

    _clock: Clock = SYSTEM_CLOCK
    _clock_explicit: bool = False

    def use_clock(self, clock: Clock) -> None:
        if not self._clock_explicit:
            self._clock = clock

    async def start(self) -> None:
        """Open connections / create schema. Idempotent."""

    async def flush(self) -> None:
        """Write anything buffered."""

    async def aclose(self) -> None:
        """Flush and release resources. Idempotent."""
        await self.flush()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    @abstractmethod
    async def record(self, entry: AuditRecord) -> None:
        """Persist one record; a duplicate ``id`` or ``(namespace, tenant, sequence_number)``
        raises ``AuditStorageError('unique constraint violation: ...')``."""

    @abstractmethod
    async def get_by_action_id(self, action_id: str) -> AuditRecord | None:
        """Most recent record of the action (non-intent first on ties)."""

    @abstractmethod
    async def get_by_id(self, record_id: str) -> AuditRecord | None:
        """Exact lookup."""

    @abstractmethod
    async def query(self, query: AuditQuery) -> AuditPage:
        """Filter, sort and page (B2-B4)."""

    @abstractmethod
    async def cleanup_expired(self) -> int:
        """Delete records whose ``expires_at <= now``; returns how many."""

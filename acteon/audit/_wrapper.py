"""Shared base of the audit decorators: forward everything to the wrapped store."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from acteon._clock import Clock
from acteon._exceptions import NotSupportedError
from acteon.audit._base import AuditStore
from acteon.audit._model import AuditPage, AuditQuery, AuditRecord

if TYPE_CHECKING:
    from acteon.audit.hash_chain import HashChainVerification


class AuditStoreWrapper(AuditStore):
    """An :class:`AuditStore` that delegates every call to ``inner``.

    Subclasses override only what they change, so lifecycle calls (``start``,
    ``flush``, ``aclose``) and the clock always reach the real storage.
    """

    def __init__(self, inner: AuditStore) -> None:
        if not isinstance(inner, AuditStore):
            raise TypeError(f"{type(self).__name__} wraps an AuditStore, got {type(inner).__name__}")
        self.inner = inner

    def use_clock(self, clock: Clock) -> None:
        self.inner.use_clock(clock)

    async def start(self) -> None:
        await self.inner.start()

    async def flush(self) -> None:
        await self.inner.flush()

    async def aclose(self) -> None:
        await self.inner.aclose()

    async def record(self, entry: AuditRecord) -> None:
        await self.inner.record(entry)

    async def get_by_action_id(self, action_id: str) -> AuditRecord | None:
        return await self.inner.get_by_action_id(action_id)

    async def get_by_id(self, record_id: str) -> AuditRecord | None:
        return await self.inner.get_by_id(record_id)

    async def query(self, query: AuditQuery) -> AuditPage:
        return await self.inner.query(query)

    async def cleanup_expired(self) -> int:
        return await self.inner.cleanup_expired()

    async def verify_chain(
        self, namespace: str, tenant: str, from_: datetime | None = None, to: datetime | None = None
    ) -> HashChainVerification:
        """Verify through the hash-chain layer further down the stack."""
        store: AuditStore = self.inner
        while isinstance(store, AuditStoreWrapper):
            if type(store).verify_chain is not AuditStoreWrapper.verify_chain:
                return await store.verify_chain(namespace, tenant, from_, to)
            store = store.inner
        raise NotSupportedError("this audit store has no hash chain (enable compliance hash_chain)")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.inner!r})"

"""``open_audit_store(url, **options)``: pick a backend by URL scheme."""

from __future__ import annotations

from typing import Any

from acteon.audit._base import AuditStore
from acteon.state._open import _build, _parse_store_url


def open_audit_store(url: str, **options: Any) -> AuditStore:
    """``memory://``, ``sqlite:///path/to/audit.db`` or ``redis://host:port/db``.

    ``options`` go to the backend's constructor (``prefix``, ``write_behind``,
    ``batch_size``, ...); one it does not take is a ``ConfigurationError``.
    """
    backend, path = _parse_store_url(url, "audit store", "audit.db")
    store: AuditStore
    if backend == "memory":
        from acteon.audit.memory import MemoryAuditStore

        store = _build("the memory audit store", MemoryAuditStore, **options)
    elif backend == "sqlite":
        from acteon.audit.sqlite import SQLiteAuditStore

        store = _build("the SQLite audit store", SQLiteAuditStore, path, **options)
    else:
        from acteon.audit.redis import RedisAuditStore

        store = _build("the Redis audit store", RedisAuditStore, url, **options)
    return store

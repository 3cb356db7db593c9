"""``open_audit_store(url, **options)``: pick a backend by URL scheme."""

from __future__ import annotations

from typing import Any

from acteon._exceptions import ConfigurationError
from acteon.audit._base import AuditStore
from acteon.state._open import _build


def open_audit_store(url: str, **options: Any) -> AuditStore:
    """``memory://``, ``sqlite:///path/to/audit.db`` or ``redis://host:port/db``.

    ``options`` go to the backend's constructor (``prefix``, ``write_behind``,
    ``batch_size``, ...); one it does not take is a ``ConfigurationError``.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ConfigurationError(f"audit store URL {url!r} has no scheme; known: memory, sqlite, redis")
    scheme = scheme.lower()
    store: AuditStore
    if scheme == "memory":
        from acteon.audit.memory import MemoryAuditStore

        store = _build("the memory audit store", MemoryAuditStore, **options)
        return store
    if scheme == "sqlite":
        from acteon.audit.sqlite import SQLiteAuditStore

        path = rest[1:] if rest.startswith("/") else rest
        if not path:
            raise ConfigurationError(f"sqlite URL {url!r} names no file: use sqlite:///path/to/audit.db")
        store = _build("the SQLite audit store", SQLiteAuditStore, path, **options)
        return store
    if scheme in ("redis", "rediss", "unix"):
        from acteon.audit.redis import RedisAuditStore

        store = _build("the Redis audit store", RedisAuditStore, url, **options)
        return store
    raise ConfigurationError(f"unknown audit store scheme {scheme!r}; known: memory, sqlite, redis")

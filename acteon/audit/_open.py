"""``open_audit_store(url)``: pick a backend by URL scheme."""

from __future__ import annotations

from typing import Any

from acteon._exceptions import ConfigurationError
from acteon.audit._base import AuditStore


def open_audit_store(url: str, **options: Any) -> AuditStore:
    """``memory://``, ``sqlite:///path/to/audit.db`` or ``redis://host:port/db``."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ConfigurationError(f"audit store URL {url!r} has no scheme; known: memory, sqlite, redis")
    scheme = scheme.lower()
    if scheme == "memory":
        from acteon.audit.memory import MemoryAuditStore

        return MemoryAuditStore(**options)
    if scheme == "sqlite":
        from acteon.audit.sqlite import SQLiteAuditStore

        path = rest[1:] if rest.startswith("/") else rest
        if not path:
            raise ConfigurationError(f"sqlite URL {url!r} names no file: use sqlite:///path/to/audit.db")
        return SQLiteAuditStore(path, **options)
    if scheme in ("redis", "rediss", "unix"):
        from acteon.audit.redis import RedisAuditStore

        return RedisAuditStore(url, **options)
    raise ConfigurationError(f"unknown audit store scheme {scheme!r}; known: memory, sqlite, redis")

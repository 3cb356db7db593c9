"""``open_state_store(url)``: pick a backend by URL scheme."""

from __future__ import annotations

from typing import Any

from acteon._exceptions import ConfigurationError
from acteon.state._base import StateStore


def open_state_store(url: str, **options: Any) -> StateStore:
    """``memory://``, ``sqlite:///path/to/file.db`` or ``redis://host:port/db``."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ConfigurationError(f"state store URL {url!r} has no scheme; known: memory, sqlite, redis")
    scheme = scheme.lower()
    if scheme == "memory":
        from acteon.state.memory import MemoryStateStore

        return MemoryStateStore(**options)
    if scheme == "sqlite":
        from acteon.state.sqlite import SQLiteStateStore

        path = rest[1:] if rest.startswith("/") else rest
        if not path:
            raise ConfigurationError(f"sqlite URL {url!r} names no file: use sqlite:///path/to/state.db")
        return SQLiteStateStore(path, **options)
    if scheme in ("redis", "rediss", "unix"):
        from acteon.state.redis import RedisStateStore

        return RedisStateStore(url, **options)
    raise ConfigurationError(f"unknown state store scheme {scheme!r}; known: memory, sqlite, redis")

"""``open_state_store(url, **options)``: pick a backend by URL scheme."""

from __future__ import annotations

import inspect
from typing import Any

from acteon._exceptions import ConfigurationError
from acteon.state._base import StateStore


def check_backend_options(what: str, cls: type[Any], options: dict[str, Any]) -> None:
    """Refuse keyword options the chosen backend's constructor does not take.

    A typo in a config file (``prefx = ...``) would otherwise surface as a bare
    ``TypeError`` from deep inside the store, without saying which backend it
    reached or what it does accept.
    """
    params = inspect.signature(cls.__init__).parameters
    known = sorted(
        name for name, p in params.items() if p.kind is inspect.Parameter.KEYWORD_ONLY
    )
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise ConfigurationError(
            f"{what} ({cls.__name__}) does not take the option(s) {', '.join(unknown)}; "
            f"it takes: {', '.join(known) or 'none'}"
        )


def _build(what: str, cls: type[Any], *args: Any, **options: Any) -> Any:
    check_backend_options(what, cls, options)
    try:
        return cls(*args, **options)
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(f"{what} ({cls.__name__}): {exc}") from exc


def open_state_store(url: str, **options: Any) -> StateStore:
    """``memory://``, ``sqlite:///path/to/file.db`` or ``redis://host:port/db``.

    ``options`` go to the backend's constructor (``prefix``, ``pool_size``,
    ``busy_timeout``, ...); one it does not take is a ``ConfigurationError``.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ConfigurationError(f"state store URL {url!r} has no scheme; known: memory, sqlite, redis")
    scheme = scheme.lower()
    store: StateStore
    if scheme == "memory":
        from acteon.state.memory import MemoryStateStore

        store = _build("the memory state store", MemoryStateStore, **options)
        return store
    if scheme == "sqlite":
        from acteon.state.sqlite import SQLiteStateStore

        path = rest[1:] if rest.startswith("/") else rest
        if not path:
            raise ConfigurationError(f"sqlite URL {url!r} names no file: use sqlite:///path/to/state.db")
        store = _build("the SQLite state store", SQLiteStateStore, path, **options)
        return store
    if scheme in ("redis", "rediss", "unix"):
        from acteon.state.redis import RedisStateStore

        store = _build("the Redis state store", RedisStateStore, url, **options)
        return store
    raise ConfigurationError(f"unknown state store scheme {scheme!r}; known: memory, sqlite, redis")

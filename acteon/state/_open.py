"""``open_state_store(url, **options)``: pick a backend by URL scheme."""

from __future__ import annotations

import inspect
from typing import Any, Literal

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


def _parse_store_url(url: str, what: str, example_file: str) -> tuple[Literal["memory", "sqlite", "redis"], str]:
    """Which backend a store URL names, and the SQLite file path (``""`` for the others).

    ``what`` ("state store", "audit store") and ``example_file`` (shown in the
    hint for a ``sqlite://`` URL without a path) only shape the error messages.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ConfigurationError(f"{what} URL {url!r} has no scheme; known: memory, sqlite, redis")
    scheme = scheme.lower()
    if scheme == "memory":
        return "memory", ""
    if scheme == "sqlite":
        path = rest[1:] if rest.startswith("/") else rest
        if not path:
            raise ConfigurationError(f"sqlite URL {url!r} names no file: use sqlite:///path/to/{example_file}")
        return "sqlite", path
    if scheme in ("redis", "rediss", "unix"):
        return "redis", ""
    raise ConfigurationError(f"unknown {what} scheme {scheme!r}; known: memory, sqlite, redis")


def open_state_store(url: str, **options: Any) -> StateStore:
    """``memory://``, ``sqlite:///path/to/file.db`` or ``redis://host:port/db``.

    ``options`` go to the backend's constructor (``prefix``, ``pool_size``,
    ``busy_timeout``, ...); one it does not take is a ``ConfigurationError``.
    """
    backend, path = _parse_store_url(url, "state store", "state.db")
    store: StateStore
    if backend == "memory":
        from acteon.state.memory import MemoryStateStore

        store = _build("the memory state store", MemoryStateStore, **options)
    elif backend == "sqlite":
        from acteon.state.sqlite import SQLiteStateStore

        store = _build("the SQLite state store", SQLiteStateStore, path, **options)
    else:
        from acteon.state.redis import RedisStateStore

        store = _build("the Redis state store", RedisStateStore, url, **options)
    return store

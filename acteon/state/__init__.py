"""State stores and distributed locks (memory, SQLite, Redis)."""

from acteon.state._base import CasResult, DistributedLock, LockGuard, StateStore
from acteon.state._keys import KeyKind, StateKey, canonical
from acteon.state._open import open_state_store
from acteon.state.memory import MemoryDistributedLock, MemoryStateStore

__all__ = [
    "CasResult",
    "DistributedLock",
    "KeyKind",
    "LockGuard",
    "MemoryDistributedLock",
    "MemoryStateStore",
    "RedisStateStore",
    "SQLiteStateStore",
    "StateKey",
    "StateStore",
    "canonical",
    "open_state_store",
]


def __getattr__(name: str) -> object:
    # Backends with optional dependencies are imported on first use.
    if name == "SQLiteStateStore":
        from acteon.state.sqlite import SQLiteStateStore

        return SQLiteStateStore
    if name == "RedisStateStore":
        from acteon.state.redis import RedisStateStore

        return RedisStateStore
    raise AttributeError(name)

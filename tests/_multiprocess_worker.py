"""The spawned-process half of the multi-process tests (see ``tests/_multiprocess.py``).

A ``spawn`` child imports the ``_mp_*workers.py`` modules -- and through them
this one -- by module path in a fresh interpreter, so nothing here imports
pytest or a test module: a child should start quickly and carry no test
machinery.

Every worker entry point has the shape ``fn(shared, worker, start_at, *args)``:
``shared`` says where the data lives (:class:`SharedBackend`, picklable),
``worker`` is the process's index and ``start_at`` the common wall-clock instant
at which all of them begin (:func:`wait_until`).
"""

from __future__ import annotations

import asyncio
import importlib
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass

from acteon.audit._base import AuditStore
from acteon.state._base import StateStore

BACKENDS = ("sqlite", "redis")

# Imported during the warm-up so that no process pays them once the race is on.
BACKEND_MODULES = ("acteon.state.sqlite", "acteon.state.redis", "acteon.audit.sqlite", "acteon.audit.redis")


def open_shared_store(backend: str, target: str, prefix: str = "") -> StateStore:
    """A new (not yet started) state store on the shared SQLite file or Redis prefix."""
    if backend == "sqlite":
        from acteon.state.sqlite import SQLiteStateStore

        return SQLiteStateStore(target)
    if backend == "redis":
        from acteon.state.redis import RedisStateStore

        return RedisStateStore(target, prefix=prefix)
    raise ValueError(f"shared backend: unknown name {backend!r}; expected one of {BACKENDS}")


def open_shared_audit(backend: str, target: str, prefix: str = "") -> AuditStore:
    """A new (not yet started) audit store next to the shared state (a sibling file for SQLite)."""
    if backend == "sqlite":
        from acteon.audit.sqlite import SQLiteAuditStore

        return SQLiteAuditStore(target + ".audit")
    if backend == "redis":
        from acteon.audit.redis import RedisAuditStore

        return RedisAuditStore(target, prefix=prefix)
    raise ValueError(f"shared backend: unknown name {backend!r}; expected one of {BACKENDS}")


@dataclass(frozen=True)
class SharedBackend:
    """Where every process finds the shared data: a SQLite file path, or a Redis URL and key prefix."""

    backend: str
    target: str
    prefix: str = ""

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"SharedBackend.backend: unknown name {self.backend!r}; expected one of {BACKENDS}")

    def open_state(self) -> StateStore:
        return open_shared_store(self.backend, self.target, self.prefix)

    def open_audit(self) -> AuditStore:
        return open_shared_audit(self.backend, self.target, self.prefix)


async def wait_until(start_at: float) -> None:
    """Sleep until the common start instant (wall clock), so the processes really overlap."""
    await asyncio.sleep(max(0.0, start_at - time.time()))


def warm_up(modules: Sequence[str], seconds: float) -> int:
    """Import the backends and ``modules``, then stay busy so that the pool must start every worker."""
    for name in (*BACKEND_MODULES, *modules):
        importlib.import_module(name)
    time.sleep(seconds)
    return os.getpid()

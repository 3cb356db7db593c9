"""The test-process half of the multi-process tests: real OS processes sharing one backend.

A module that races spawned processes on one SQLite file or one Redis key
prefix declares its two fixtures with the factories below and keeps only its
scenarios::

    pool = pool_fixture(workers)               # module-scoped SpawnPool
    shared = shared_fixture(state=True)        # sqlite and redis params

    async def test_x(pool: SpawnPool, shared: SharedStore) -> None:
        results = pool.race(workers.run, shared.where, "scenario", lead=0.3, timeout=60)

The worker functions live in pytest-free modules (``_mp_*workers.py``) built
on ``tests/_multiprocess_worker.py``, because a ``spawn`` child imports them
by module path.
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import AsyncExitStack, contextmanager
from functools import partial
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

import pytest

from acteon.audit._base import AuditStore
from acteon.state._base import StateStore
from tests._multiprocess_worker import SharedBackend, warm_up
from tests.conftest import require_redis
from tests.contract.conftest import REDIS_PARAM, _delete_prefix, redis_prefix

PROCESSES = 4
WARM_UP_SECONDS = 0.5

R = TypeVar("R")
S = TypeVar("S", bound="SharedStore")


class SpawnPool:
    """A started pool of ``processes`` spawned workers, one per process."""

    def __init__(self, executor: ProcessPoolExecutor, processes: int) -> None:
        self.executor = executor
        self.processes = processes

    def race(
        self, fn: Callable[..., R], where: SharedBackend, *args: Any, lead: float = 0.3, timeout: float = 60
    ) -> list[R]:
        """Call ``fn(where, worker, start_at, *args)`` once per process; results in worker order.

        ``start_at`` is ``lead`` seconds from now: long enough for every
        process to open its stores first, so the work itself overlaps.
        """
        start_at = time.time() + lead
        futures = [self.executor.submit(fn, where, worker, start_at, *args) for worker in range(self.processes)]
        return [f.result(timeout=timeout) for f in futures]


@contextmanager
def spawn_pool(processes: int = PROCESSES, preload: Sequence[str] = ()) -> Iterator[SpawnPool]:
    """A ``spawn``-context pool whose every worker has started and imported ``preload``.

    A pool starts its processes lazily; keeping each busy during the warm-up
    forces all of them up, and the distinct pids prove that the races below
    really run in ``processes`` interpreters.
    """
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(processes, mp_context=ctx) as executor:
        pids = list(executor.map(partial(warm_up, tuple(preload)), [WARM_UP_SECONDS] * processes))
        assert len(set(pids)) == processes
        yield SpawnPool(executor, processes)


def pool_fixture(workers: ModuleType, *preload: str, processes: int = PROCESSES) -> Any:
    """A module-scoped :class:`SpawnPool` fixture whose workers have imported ``workers`` and ``preload``."""

    @pytest.fixture(scope="module")
    def pool() -> Iterator[SpawnPool]:
        with spawn_pool(processes, (workers.__name__, *preload)) as started:
            yield started

    return pool


class SharedStore:
    """The shared backend as the test process sees it.

    ``where`` goes to the workers; ``store`` and ``audit`` are this process's
    own started stores on the same data, when the fixture was asked to open them.
    """

    def __init__(self, where: SharedBackend, store: StateStore | None = None, audit: AuditStore | None = None) -> None:
        self.where = where
        self._store = store
        self._audit = audit

    @property
    def store(self) -> StateStore:
        if self._store is None:
            raise RuntimeError("SharedStore.store: the fixture did not open it (use shared_fixture(state=True))")
        return self._store

    @property
    def audit(self) -> AuditStore:
        if self._audit is None:
            raise RuntimeError("SharedStore.audit: the fixture did not open it (use shared_fixture(audit=True))")
        return self._audit


def shared_fixture(
    cls: type[S] = SharedStore,  # type: ignore[assignment]
    *,
    filename: str = "shared.db",
    state: bool = False,
    audit: bool = False,
) -> Any:
    """A fixture parametrized over a SQLite file under ``tmp_path`` and a Redis key prefix.

    The Redis param carries the ``redis`` mark and calls ``require_redis()``
    (a failure, not a skip, under ``ACTEON_REQUIRE_SERVICES=1``); its random
    prefix is deleted afterwards, whatever the test did. ``cls`` lets a module
    add its own helpers to :class:`SharedStore`.
    """

    async def opened(stack: AsyncExitStack, where: SharedBackend) -> S:
        store = await stack.enter_async_context(where.open_state()) if state else None
        audit_store = await stack.enter_async_context(where.open_audit()) if audit else None
        return cls(where, store, audit_store)

    @pytest.fixture(params=["sqlite", REDIS_PARAM])
    async def shared(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[S]:
        if request.param == "sqlite":
            async with AsyncExitStack() as stack:
                yield await opened(stack, SharedBackend("sqlite", str(tmp_path / filename)))
            return
        url = require_redis()
        prefix = redis_prefix()
        try:
            async with AsyncExitStack() as stack:
                yield await opened(stack, SharedBackend("redis", url, prefix))
        finally:
            await _delete_prefix(url, prefix)

    return shared

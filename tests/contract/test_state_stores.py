"""The state-store and lock contracts, once per bundled backend."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from acteon.state._base import DistributedLock, StateStore
from acteon.testing._contracts import DistributedLockContract, StateStoreContract, TimeControl
from tests.contract.conftest import REDIS_PARAM, make_state_store


@pytest.fixture(params=["memory", "sqlite", "sqlite-offload", REDIS_PARAM])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def state_store(backend: str, tmp_path: Path, time_control: TimeControl) -> AsyncIterator[StateStore]:
    async with make_state_store(backend, tmp_path, time_control) as store:
        yield store


@pytest.fixture
def lock(state_store: StateStore) -> DistributedLock:
    return state_store.distributed_lock()


class TestBundledStateStores(StateStoreContract):
    """The shared state contract, once per bundled backend."""


class TestBundledLocks(DistributedLockContract):
    """The shared lock contract, once per bundled backend."""

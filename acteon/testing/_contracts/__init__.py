"""Conformance suites for state stores, distributed locks and audit stores.

Every bundled backend (memory, SQLite, Redis) passes these classes, and a
third-party backend can run them too. A contract is a plain class whose name
does not start with ``Test``, so pytest does not collect it on its own.
Subclass it in a test module named ``test_*.py`` and provide the fixtures its
tests ask for::

    import pytest
    from acteon.testing._contracts import FakeTimeControl, StateStoreContract
    from acteon.testing import FakeClock

    @pytest.fixture
    def time_control() -> FakeTimeControl:
        return FakeTimeControl(FakeClock())

    @pytest.fixture
    async def state_store(time_control):
        async with MyStateStore(clock=time_control.clock) as store:
            yield store

    class TestMyStateStore(StateStoreContract):
        pass

Fixtures
--------
``state_store``
    A started, empty :class:`~acteon.state.StateStore` (used by
    :class:`StateStoreContract`).
``lock``
    A :class:`~acteon.state.DistributedLock` with no lock held, normally
    ``state_store.distributed_lock()`` (used by :class:`DistributedLockContract`).
``audit_store``
    A started, empty :class:`~acteon.audit.AuditStore` (used by :class:`AuditStoreContract`).
``time_control``
    A :class:`TimeControl`: how the tests move time. For a backend whose TTLs
    follow the injected clock, build the store on a ``FakeClock`` and pass
    :class:`FakeTimeControl`. For a backend whose TTLs run on a server's clock
    (Redis), pass :class:`RealTimeControl`. The tests then scale every TTL down
    (1 s becomes 0.15 s by default) and really sleep.

The classes carry ``@pytest.mark.anyio``, and pytest passes a base class's
marks on to subclasses, so the test functions run on the event loop that the
``anyio_backend`` fixture chooses.

Part D of ``state-audit.md`` lists the behaviours checked here. The numbers in
the docstrings (``D1`` ... ``D46``) refer to it.

Each contract lives in its own module (``_state``, ``_lock``, ``_audit``; the
time controls in ``_support``). They form a package rather than sibling modules
so that ``pytest.register_assert_rewrite("acteon.testing._contracts")`` keeps
covering all of them.
"""

from __future__ import annotations

from acteon.testing._contracts._audit import AuditStoreContract
from acteon.testing._contracts._lock import DistributedLockContract
from acteon.testing._contracts._state import StateStoreContract
from acteon.testing._contracts._support import FakeTimeControl, RealTimeControl, TimeControl

__all__ = [
    "AuditStoreContract",
    "DistributedLockContract",
    "FakeTimeControl",
    "RealTimeControl",
    "StateStoreContract",
    "TimeControl",
]

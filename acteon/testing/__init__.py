"""Helpers for testing code that uses acteon, and for testing acteon backends.

* :class:`FakeClock` -- one clock for TTLs, windows, schedules and timeouts; tests move it.
* :class:`RecordingProvider`, :class:`FailingProvider` -- providers to assert on.
* ``StateStoreContract``, ``DistributedLockContract``, ``AuditStoreContract`` -- the
  conformance suites every backend (including third-party ones) must pass, and
  ``TimeControl``, ``FakeTimeControl``, ``RealTimeControl`` -- how they move time.
* A pytest plugin (``acteon.testing.pytest_plugin``) with ``acteon_gateway``,
  ``recording_provider`` and ``fake_clock`` fixtures.
"""

from acteon.testing._clock import FakeClock
from acteon.testing._providers import FailingProvider, RecordingProvider

__all__ = [
    "AuditStoreContract",
    "DistributedLockContract",
    "FailingProvider",
    "FakeClock",
    "FakeTimeControl",
    "RealTimeControl",
    "RecordingProvider",
    "StateStoreContract",
    "TimeControl",
]

# Loaded on first access: they import pytest, which plain users of acteon need not have.
_CONTRACT_NAMES = frozenset(
    {
        "StateStoreContract",
        "DistributedLockContract",
        "AuditStoreContract",
        "TimeControl",
        "FakeTimeControl",
        "RealTimeControl",
    }
)


def __getattr__(name: str) -> object:
    if name in _CONTRACT_NAMES:
        import pytest

        # Covers the package and its submodules, so failed contract asserts explain themselves.
        pytest.register_assert_rewrite("acteon.testing._contracts")
        from acteon.testing import _contracts

        return getattr(_contracts, name)
    raise AttributeError(name)

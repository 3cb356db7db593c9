"""Helpers for testing code that uses acteon, and for testing acteon backends.

* :class:`FakeClock` -- one clock for TTLs, windows, schedules and timeouts; tests move it.
* :class:`RecordingProvider`, :class:`FailingProvider` -- providers to assert on.
* ``StateStoreContract``, ``DistributedLockContract``, ``AuditStoreContract`` -- the
  conformance suites every backend (including third-party ones) must pass.
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
    "RecordingProvider",
    "StateStoreContract",
]


def __getattr__(name: str) -> object:
    # The contracts import pytest; load them only when asked for.
    if name in ("StateStoreContract", "DistributedLockContract", "AuditStoreContract"):
        import pytest

        pytest.register_assert_rewrite("acteon.testing._contracts")
        from acteon.testing import _contracts

        return getattr(_contracts, name)
    raise AttributeError(name)

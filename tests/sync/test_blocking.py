"""Smoke tests through the blocking Gateway."""

from __future__ import annotations

import threading

import pytest

from acteon import Action, Gateway, ProviderNotFoundError
from acteon.audit import MemoryAuditStore
from acteon.outcomes import Deduplicated, Executed
from acteon.testing import FakeClock, RecordingProvider

RULES = """
rules:
  - {name: dedup, condition: {field: action.action_type, eq: send_email}, action: {type: deduplicate, ttl_seconds: 60}}
  - {name: bad, condition: {field: action.action_type, eq: broken}, action: {type: reroute, target_provider: nowhere}}
"""


def make(**kw: str) -> Action:
    data = {"namespace": "ns", "tenant": "t", "provider": "email", "action_type": "send_email"}
    data.update(kw)
    return Action(**data)  # type: ignore[arg-type]


def test_dispatch_dedup_and_errors_cross_the_portal() -> None:
    email = RecordingProvider("email")
    with Gateway(rules=RULES, providers=[email], audit=MemoryAuditStore(), clock=FakeClock(),
                 background=False) as gw:
        assert isinstance(gw.dispatch(make(dedup_key="k")), Executed)
        assert isinstance(gw.dispatch(make(dedup_key="k")), Deduplicated)
        with pytest.raises(ProviderNotFoundError):
            gw.dispatch(make(action_type="broken"))
        assert gw.metrics.snapshot()["dispatched"] == 3
        assert gw.audit_query().total == 3
        batch = gw.dispatch_batch([make(dedup_key=str(i)) for i in range(5)])
        assert all(isinstance(r, Executed) for r in batch)


def test_usable_from_many_threads_and_close_twice() -> None:
    email = RecordingProvider("email")
    gw = Gateway(providers=[email], background=False)
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(20):
                gw.dispatch(make())
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    gw.close()
    gw.close()
    assert errors == [] and len(email.actions) == 80


def test_trace_context_travels_in_the_action() -> None:
    email = RecordingProvider("email")
    with Gateway(providers=[email], background=False) as gw:
        gw.dispatch(make().model_copy(update={"trace_context": {"traceparent": "00-abc-def-01"}}))
    assert email.actions[0].trace_context == {"traceparent": "00-abc-def-01"}


def test_blocking_events() -> None:
    with Gateway(providers=[RecordingProvider("email")], background=False) as gw:
        sub = gw.events()
        gw.dispatch(make())
        event = sub.get(timeout=2)
        assert event is not None and event.type == "action_dispatched"
        assert sub.get(timeout=0.05) is None
        sub.close()

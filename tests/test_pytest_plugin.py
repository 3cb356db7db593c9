"""The acteon pytest plugin's fixtures, used the way an application's tests would."""

from __future__ import annotations

import pytest

from acteon import Action
from acteon.outcomes import Deduplicated, Executed, Suppressed
from acteon.testing import FakeClock, RecordingProvider


@pytest.fixture
def acteon_rules() -> str:
    return """
rules:
  - {name: no-spam, condition: {field: action.action_type, eq: spam}, action: {type: suppress}}
  - {name: once, condition: {field: action.action_type, eq: welcome}, action: {type: deduplicate, ttl_seconds: 60}}
"""


def make(action_type: str) -> Action:
    return Action(namespace="app", tenant="t", provider="recorder", action_type=action_type,
                  dedup_key="k" if action_type == "welcome" else None)


def test_gateway_fixture(acteon_gateway, recording_provider: RecordingProvider, fake_clock: FakeClock) -> None:  # type: ignore[no-untyped-def]
    assert acteon_gateway.dispatch(make("spam")) == Suppressed("no-spam")
    assert isinstance(acteon_gateway.dispatch(make("welcome")), Executed)
    assert isinstance(acteon_gateway.dispatch(make("welcome")), Deduplicated)
    fake_clock.advance(61)
    assert isinstance(acteon_gateway.dispatch(make("welcome")), Executed)
    assert [a.action_type for a in recording_provider.actions] == ["welcome", "welcome"]


@pytest.mark.anyio
async def test_async_gateway_fixture(acteon_async_gateway, recording_provider: RecordingProvider) -> None:  # type: ignore[no-untyped-def]
    assert isinstance(await acteon_async_gateway.dispatch(make("ping")), Executed)
    assert recording_provider.calls == 1

"""examples/events.py runs and shows filtered subscriptions and a tick-driven delivery."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "events.py"


def test_events_example(capsys: pytest.CaptureFixture[str]) -> None:
    runpy.run_path(str(EXAMPLE), run_name="__main__")
    out = capsys.readouterr().out
    assert "reminder: scheduled" in out
    assert out.count("failure seen by the acme subscriber") == 1
    assert "tick ran the due jobs: scheduled_actions=1" in out
    assert "reminder event: action_dispatched {'Executed'" in out

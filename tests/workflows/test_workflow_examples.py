"""The grouping and state-machine examples run and tell the story they claim."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def run(name: str, capsys: pytest.CaptureFixture[str]) -> str:
    runpy.run_path(str(EXAMPLES / name), run_name="__main__")
    return capsys.readouterr().out


def test_grouping_example(capsys: pytest.CaptureFixture[str]) -> None:
    out = run("grouping.py", capsys)
    assert "3 alert(s): ['api down', 'db slow', 'queue backlog']" in out
    assert "waits for the next tick at 12:06:00" in out
    assert out.count("PAGE") == 3


def test_state_machine_inhibition_example(capsys: pytest.CaptureFixture[str]) -> None:
    out = run("state_machine_inhibition.py", capsys)
    assert "pod alert during the incident:  suppressed" in out
    assert "pod alert after the incident:   executed" in out
    assert "timeout_notification: firing -> stale" in out
    assert "the incident is now stale (by timeout)" in out

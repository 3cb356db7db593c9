"""The incident-response example runs and takes the paths it describes."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "incident_response_chain.py"


def test_incident_response_example(capsys: pytest.CaptureFixture[str]) -> None:
    runpy.run_path(str(EXAMPLE), run_name="__main__")
    out = capsys.readouterr().out
    assert "completed; path: triage -> escalate -> page-oncall -> close" in out
    assert "completed; path: triage -> log-only -> close" in out
    assert "sub-chain oncall-handoff (completed):" in out
    assert "'severity': 'critical', 'slack_ts': '1718000000.001', 'acknowledged': True" in out
    for channel in ("slack: completed", "email: completed", "pager: completed"):
        assert channel in out

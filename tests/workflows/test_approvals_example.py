"""examples/approvals.py runs and tells the story it claims."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "approvals.py"


def test_approvals_example(capsys: pytest.CaptureFixture[str]) -> None:
    runpy.run_path(str(EXAMPLE), run_name="__main__")
    out = capsys.readouterr().out
    assert out.count("[slack] Approval Required: process_refund") == 3
    assert "[payments] refunding 2500 to grace" in out
    assert "refunding 2500 to linus" not in out and "refunding 2500 to barbara" not in out
    assert "'approval_expiry': 1" in out
    for line in ("grace    approved", "linus    rejected", "barbara  expired"):
        assert line in out
    stream = out.split("event stream:")[1].split()
    assert stream.count("approval_required") == 3
    assert "approval_expired" in stream and stream.count("approval_resolved") == 2

"""The runnable examples at the top of the scheduling docs still run."""

from __future__ import annotations

import re
import runpy
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[2] / "docs"


@pytest.mark.parametrize("page", ["scheduled-actions.md", "recurring-actions.md"])
def test_first_example_runs(page: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = (DOCS / page).read_text(encoding="utf-8")
    example = re.findall(r"```python\n(.*?)```", text, re.S)[0]
    script = tmp_path / "example.py"
    script.write_text(example, encoding="utf-8")
    runpy.run_path(str(script), run_name="__main__")
    out = capsys.readouterr().out
    expected = {
        "scheduled-actions.md": "'_scheduled_dispatch': True",
        "recurring-actions.md": "digest-2026-01-15T14:00:00Z",
    }[page]
    assert expected in out

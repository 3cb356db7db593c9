"""Helpers for the command-line tests: run ``acteon`` in-process or as a real subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from acteon.cli import main

# The public conformance case R01 (rules.md §16.7).
R01_RULES = """\
rules:
  - {name: block-spam, priority: 1, condition: {field: action.action_type, eq: "spam"}, action: {type: suppress}}
"""
R01_FIXTURE = """\
tests:
  - name: "spam is suppressed"
    action: {namespace: notifications, tenant: acme, provider: email, action_type: spam, payload: {}}
    expect: {verdict: suppress, matched_rule: block-spam}
  - name: "normal email is allowed"
    action:
      {namespace: notifications, tenant: acme, provider: email, action_type: send_email, payload: {to: "user@example.com"}}
    expect: {verdict: allow}
  - name: "verdict compare is case-insensitive"
    action: {namespace: notifications, tenant: acme, provider: email, action_type: spam}
    expect: {verdict: SUPPRESS}
  - name: "wrong rule name fails"
    action: {namespace: notifications, tenant: acme, provider: email, action_type: spam}
    expect: {verdict: suppress, matched_rule: other-rule}
  - name: "rule asserted but none matched"
    action: {namespace: notifications, tenant: acme, provider: email, action_type: send_email}
    expect: {verdict: allow, matched_rule: block-spam}
"""


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


class Cli:
    """``cli("rules", "validate", ...)`` runs ``main(argv)`` in this process and captures its output."""

    def __init__(self, capsys: pytest.CaptureFixture[str], cwd: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self._capsys = capsys
        self.cwd = cwd
        monkeypatch.chdir(cwd)

    def __call__(self, *argv: str) -> Result:
        self._capsys.readouterr()
        code = main(list(argv))
        captured = self._capsys.readouterr()
        return Result(code, captured.out, captured.err)


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Cli:
    return Cli(capsys, tmp_path, monkeypatch)


def run_subprocess(*argv: str, cwd: Path, stdin: str | None = None, module: str = "acteon.cli") -> Result:
    """The real thing: ``python -m acteon.cli ...`` in a fresh interpreter."""
    proc = subprocess.run(
        [sys.executable, "-m", module, *argv], cwd=cwd, input=stdin, capture_output=True, text=True, timeout=60,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path

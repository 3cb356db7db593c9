"""The ``acteon`` entry point itself: help, version, usage errors, ``python -m acteon``."""

from __future__ import annotations

from pathlib import Path

from acteon.cli import main

from .conftest import Cli, run_subprocess


def test_help_and_version(cli: Cli) -> None:
    result = cli("--help")
    assert result.code == 0 and "rules" in result.out and "dispatch" in result.out
    result = cli("--version")
    assert result.code == 0 and result.out.startswith("acteon ")
    assert cli("rules", "--help").code == 0


def test_usage_errors_exit_2(cli: Cli) -> None:
    assert cli().code == 2
    assert cli("frobnicate").code == 2
    result = cli("rules")
    assert result.code == 2 and "COMMAND" in result.err


def test_main_returns_instead_of_exiting() -> None:
    assert main(["--version"]) == 0


def test_python_dash_m_acteon(tmp_path: Path) -> None:
    result = run_subprocess("--help", cwd=tmp_path, module="acteon")
    assert result.code == 0 and "validate" in result.out
    result = run_subprocess("rules", "validate", "missing", cwd=tmp_path, module="acteon")
    assert (result.code, result.err) == (2, "acteon: error: path missing does not exist\n")

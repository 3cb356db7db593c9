"""Helpers shared by the ``acteon`` subcommands: user errors, input files, output.

Exit statuses (documented in docs/cli.md):

* ``0`` -- success;
* ``1`` -- the check or the command failed: validation errors, failing rule
  tests, rules/fixtures/actions/config that do not load, a dispatch that raised
  or returned a ``Failed`` outcome;
* ``2`` -- usage errors: a bad command line, or a file named on it that does
  not exist or cannot be read.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


class CliError(Exception):
    """A user mistake or a failed command: printed as ``acteon: error: <message>``, never a traceback."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


def read_input(path: str, what: str) -> str:
    """The text of ``path`` (``-`` = standard input); missing/unreadable is a usage error."""
    if path == "-":
        return sys.stdin.read()
    p = Path(path)
    if p.is_dir():
        raise CliError(f"{what} {path} is a directory, not a file", EXIT_USAGE)
    try:
        return p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CliError(f"{what} {path} does not exist", EXIT_USAGE) from None
    except (OSError, UnicodeDecodeError) as exc:
        detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise CliError(f"cannot read {what} {path}: {detail}", EXIT_USAGE) from None


def require_paths(paths: Sequence[str], what: str) -> list[Path]:
    """Every path must exist (a file or a directory); else a usage error naming it."""
    out = []
    for raw in paths:
        p = Path(raw)
        if not p.exists():
            raise CliError(f"{what} {raw} does not exist", EXIT_USAGE)
        out.append(p)
    return out


def read_json(path: str, what: str) -> Any:
    text = read_input(path, what)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise CliError(f"{what} {path} is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})") from None


def parse_pairs(items: Sequence[str] | None, option: str) -> dict[str, str]:
    """``KEY=VALUE`` arguments (split on the first ``=``) into a dict."""
    out: dict[str, str] = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise CliError(f"{option} expects KEY=VALUE, got {item!r}", EXIT_USAGE)
        out[key] = value
    return out


def parse_at(text: str | None) -> datetime | None:
    if text is None:
        return None
    from acteon._timefmt import coerce_datetime

    try:
        return coerce_datetime(text)
    except ValueError as exc:
        raise CliError(f"--at expects an RFC 3339 time such as 2026-01-15T14:00:00Z: {exc}", EXIT_USAGE) from None


def check_timezone(name: str | None) -> None:
    if name is None:
        return
    from acteon.rules._time import is_valid_zone

    if not is_valid_zone(name):
        raise CliError(f"invalid timezone: {name} (IANA names are case-sensitive, e.g. US/Eastern)", EXIT_USAGE)


def print_json(value: Any, out: TextIO | None = None) -> None:
    stream = out if out is not None else sys.stdout
    stream.write(json.dumps(value, indent=2, ensure_ascii=False, default=str) + "\n")


def print_text(text: str, out: TextIO | None = None) -> None:
    stream = out if out is not None else sys.stdout
    stream.write(text if text.endswith("\n") else text + "\n")


def read_action(path: str) -> Any:
    """An :class:`acteon.Action` from a JSON file in wire form, with a readable error."""
    from pydantic import ValidationError

    from acteon._action import Action

    data = read_json(path, "action file")
    if not isinstance(data, dict):
        raise CliError(f"action file {path} must hold a JSON object (the action's wire form)")
    try:
        return Action.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '<action>'}: {err['msg']}" for err in exc.errors()
        )
        raise CliError(f"invalid action in {path}: {problems}") from None

"""``acteon dispatch --config acteon.toml action.json [--dry-run]``."""

from __future__ import annotations

import json
from pathlib import Path

from .conftest import Cli, run_subprocess, write

CONFIG = """\
[rules]
directory = "rules"

[audit]
enabled = true
url = "sqlite:///audit.db"

[[providers]]
name = "email"
type = "log"
"""
RULES = """\
rules:
  - {name: block-spam, condition: {field: action.action_type, eq: spam}, action: {type: suppress}}
  - name: bad-label
    condition: {all: [{field: action.action_type, eq: retry}, {field: action.metadata.retry, gt: 2}]}
    action: {type: deny}
"""


def setup(directory: Path) -> None:
    write(directory, "acteon.toml", CONFIG)
    write(directory, "rules/r.yaml", RULES)


def act(action_type: str, provider: str = "email", **extra: object) -> str:
    return json.dumps({"namespace": "n", "tenant": "t", "provider": provider, "action_type": action_type,
                       "payload": {"to": "x@y.z"}, **extra})


def test_dispatch_prints_outcome_wire_json(cli: Cli) -> None:
    setup(cli.cwd)
    write(cli.cwd, "spam.json", act("spam"))
    result = cli("dispatch", "spam.json")  # --config defaults to ./acteon.toml
    assert result.code == 0, result.err
    assert result.json() == {"Suppressed": {"rule": "block-spam"}}
    write(cli.cwd, "ok.json", act("send_email"))
    result = cli("dispatch", "--config", "acteon.toml", "ok.json")
    assert result.code == 0, result.err
    assert "Executed" in result.json()
    assert (cli.cwd / "audit.db").exists()


def test_dry_run(cli: Cli) -> None:
    setup(cli.cwd)
    write(cli.cwd, "spam.json", act("spam"))
    result = cli("dispatch", "spam.json", "--dry-run")
    assert result.code == 0, result.err
    wire = result.json()
    assert list(wire) == ["DryRun"]
    assert wire["DryRun"]["verdict"] == "suppress"


def test_failed_outcome_exits_1(cli: Cli) -> None:
    setup(cli.cwd)
    write(cli.cwd, "nowhere.json", act("send_email", provider="sms"))
    result = cli("dispatch", "nowhere.json")
    assert result.code == 1
    assert result.json()["Failed"]["code"] == "PROVIDER_NOT_FOUND"


def test_errors_are_one_line_messages(cli: Cli) -> None:
    setup(cli.cwd)
    write(cli.cwd, "bad.json", act("retry", metadata={"retry": "5"}))
    result = cli("dispatch", "bad.json")
    assert result.code == 1 and result.out == ""
    assert result.err.startswith("acteon: error: type error: cannot compare string and int")
    assert "bad-label" in result.err
    assert cli("dispatch", "missing.json").code == 2
    result = cli("dispatch", "bad.json", "--config", "other.toml")
    assert (result.code, result.err) == (2, "acteon: error: config file other.toml does not exist\n")
    write(cli.cwd, "broken.toml", "[rules\n")
    result = cli("dispatch", "bad.json", "--config", "broken.toml")
    assert result.code == 1 and result.err.startswith("acteon: error: configuration error: invalid config file")
    write(cli.cwd, "rules/zz.yaml", "rules: [\n")
    result = cli("dispatch", "bad.json")
    assert result.code == 1 and "YAML parse error" in result.err


def test_subprocess_dispatch(tmp_path: Path) -> None:
    setup(tmp_path)
    result = run_subprocess("dispatch", "-", "--config", "acteon.toml", cwd=tmp_path, stdin=act("spam"))
    assert result.code == 0, result.err
    assert json.loads(result.out) == {"Suppressed": {"rule": "block-spam"}}

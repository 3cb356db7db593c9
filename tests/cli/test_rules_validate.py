"""``acteon rules validate``: load errors, unknown keys, CEL precedence, run-time failures, --strict."""

from __future__ import annotations

from pathlib import Path

from .conftest import Cli, run_subprocess, write

GOOD = "rules:\n  - {name: ok, priority: 1, condition: {field: action.action_type, eq: spam}, action: {type: suppress}}\n"
UNKNOWN_KEY = (
    "rules:\n  - name: noisy\n    reason: spam\n"
    "    condition: {field: action.action_type, eq: x}\n    action: {type: suppress}\n"
)
METADATA_NUMBER = (
    "rules:\n  - name: retry-storm\n    condition: {field: action.metadata.retry, gt: 2}\n    action: {type: deny}\n"
)
CEL_PRECEDENCE = (
    "rules:\n  - name: mixed\n    condition: 'action.payload.a == action.payload.b < action.payload.c'\n"
    "    action: {type: deny}\n"
)
BROKEN = "rules:\n  - name: slow\n    condition: {all: []}\n    action: {type: throttle, max_count: 10}\n"


def test_clean_directory(cli: Cli) -> None:
    write(cli.cwd, "rules/a.yaml", GOOD)
    write(cli.cwd, "rules/notes.md", "not a rule file")
    result = cli("rules", "validate", "rules")
    assert result.code == 0
    assert result.out.splitlines() == [
        "rules/a.yaml: 1 rule, ok",
        "valid: 1 file, 1 rule, 0 errors, 0 warnings",
    ]
    assert result.err == ""


def test_errors_name_file_rule_and_key_and_every_file_is_checked(cli: Cli) -> None:
    write(cli.cwd, "rules/a.yaml", BROKEN)
    write(cli.cwd, "rules/b.yaml", "rules: [\n")
    write(cli.cwd, "rules/c.yaml", GOOD)
    result = cli("rules", "validate", "rules", "--format", "json")
    assert result.code == 1
    report = result.json()
    assert (report["valid"], report["errors"], report["total_files"], report["total_rules"]) == (False, 2, 3, 1)
    a, b, c = report["files"]
    (err,) = a["errors"]
    assert err["file"] == "rules/a.yaml" and err["rule"] == "slow" and err["key"] == "action"
    assert "missing field `window_seconds`" in err["message"]
    assert "YAML parse error" in b["errors"][0]["message"]
    assert (c["rules"], c["errors"]) == (1, [])

    text = cli("rules", "validate", "rules")
    assert text.code == 1
    assert "rules/a.yaml: FAILED" in text.out
    assert "  error: parse error: " in text.out
    assert text.out.splitlines()[-1] == "INVALID: 3 files, 1 rule, 2 errors, 0 warnings"


def test_warnings_kinds(cli: Cli) -> None:
    write(cli.cwd, "a.yaml", UNKNOWN_KEY)
    write(cli.cwd, "b.yaml", METADATA_NUMBER)
    write(cli.cwd, "c.cel", CEL_PRECEDENCE)
    result = cli("rules", "validate", "a.yaml", "b.yaml", "c.cel", "--format", "json")
    assert result.code == 0
    report = result.json()
    kinds = {f["path"]: [w["kind"] for w in f["warnings"]] for f in report["files"]}
    assert kinds["a.yaml"] == ["unknown_key"]
    assert kinds["b.yaml"] == ["runtime_error"]
    assert kinds["c.cel"][0] == "cel_precedence"
    message = report["files"][1]["warnings"][0]["message"]
    assert message.startswith("file b.yaml, rule 'retry-storm', key 'condition': (action.metadata.retry > 2)")
    assert "always a type error" in message
    assert "unknown key 'reason'" in report["files"][0]["warnings"][0]["message"]
    assert "Rust gateway" in report["files"][2]["warnings"][0]["message"]
    # the loader's own log lines are not repeated on stderr
    assert result.err == ""


def test_strict_turns_warnings_into_failure(cli: Cli) -> None:
    write(cli.cwd, "a.yaml", UNKNOWN_KEY)
    assert cli("rules", "validate", "a.yaml").code == 0
    result = cli("rules", "validate", "--strict", "a.yaml")
    assert result.code == 1
    assert result.out.splitlines()[-1] == (
        "INVALID (--strict: warnings count as errors): 1 file, 1 rule, 0 errors, 1 warning")
    assert cli("rules", "validate", "--strict", "a.yaml", "--format", "json").json()["valid"] is False


def test_duplicate_names_across_files(cli: Cli) -> None:
    write(cli.cwd, "rules/a.yaml", GOOD)
    write(cli.cwd, "rules/b.yaml", GOOD)
    report = cli("rules", "validate", "rules", "--format", "json").json()
    (warning,) = report["files"][1]["warnings"]
    assert warning["kind"] == "duplicate_name"
    assert "rule 'ok'" in warning["message"] and "rules/a.yaml" in warning["message"]


def test_empty_directory_is_a_warning(cli: Cli) -> None:
    (cli.cwd / "empty").mkdir()
    result = cli("rules", "validate", "empty")
    assert result.code == 0
    assert "no rule files" in result.out
    assert cli("rules", "validate", "empty", "--strict").code == 1


def test_missing_path_is_a_usage_error(cli: Cli) -> None:
    result = cli("rules", "validate", "nope")
    assert (result.code, result.out, result.err) == (2, "", "acteon: error: path nope does not exist\n")
    assert cli("rules", "validate").code == 2


def test_subprocess_validate(tmp_path: Path) -> None:
    write(tmp_path, "rules/a.yaml", METADATA_NUMBER)
    result = run_subprocess("rules", "validate", "rules", cwd=tmp_path)
    assert result.code == 0, result.err
    assert "warning: file rules/a.yaml, rule 'retry-storm'" in result.out
    write(tmp_path, "rules/b.yaml", BROKEN)
    result = run_subprocess("rules", "validate", "rules", "--strict", cwd=tmp_path)
    assert result.code == 1
    assert "Traceback" not in result.out + result.err

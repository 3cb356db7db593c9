"""``acteon rules test`` -- the fixture runner of rules.md §11 and conformance case R01 (§16.7)."""

from __future__ import annotations

from pathlib import Path

from .conftest import R01_FIXTURE, R01_RULES, Cli, run_subprocess, write


def r01(directory: Path) -> None:
    write(directory, "rules/spam.yaml", R01_RULES)
    write(directory, "fixtures.yaml", R01_FIXTURE)


def test_r01_json_summary_and_exit_status(cli: Cli) -> None:
    r01(cli.cwd)
    result = cli("rules", "test", "fixtures.yaml", "--rules", "rules", "--format", "json")
    assert result.code == 1
    summary = result.json()
    assert list(summary) == ["total", "passed", "failed", "results", "duration_ms"]
    assert (summary["total"], summary["passed"], summary["failed"]) == (5, 3, 2)
    results = summary["results"]
    assert [r["name"] for r in results] == [
        "spam is suppressed", "normal email is allowed", "verdict compare is case-insensitive",
        "wrong rule name fails", "rule asserted but none matched"]
    assert [r["passed"] for r in results] == [True, True, True, False, False]
    first = results[0]
    assert list(first) == ["name", "passed", "expected_verdict", "actual_verdict", "expected_rule", "actual_rule",
                           "duration_us"]
    assert (first["expected_rule"], first["actual_rule"]) == ("block-spam", "block-spam")
    assert "expected_rule" not in results[1] and "actual_rule" not in results[1]
    assert (results[2]["expected_verdict"], results[2]["actual_verdict"]) == ("SUPPRESS", "suppress")
    assert (results[3]["expected_rule"], results[3]["actual_rule"]) == ("other-rule", "block-spam")
    assert results[4]["expected_rule"] == "block-spam" and "actual_rule" not in results[4]
    assert all(isinstance(r["duration_us"], int) for r in results)
    assert isinstance(summary["duration_ms"], int)
    assert result.err == ""


def test_r01_filter_spam(cli: Cli) -> None:
    r01(cli.cwd)
    result = cli("rules", "test", "fixtures.yaml", "--rules", "rules/spam.yaml", "--filter", "spam", "--format", "json")
    assert result.code == 0
    summary = result.json()
    assert (summary["total"], summary["passed"], summary["failed"]) == (1, 1, 0)
    assert summary["results"][0]["name"] == "spam is suppressed"
    # the filter is case-sensitive
    result = cli("rules", "test", "fixtures.yaml", "--rules", "rules", "--filter", "SPAM", "--format", "json")
    assert (result.code, result.json()["total"]) == (0, 0)


def test_text_report(cli: Cli) -> None:
    r01(cli.cwd)
    result = cli("rules", "test", "fixtures.yaml", "--rules", "rules")
    assert result.code == 1
    lines = result.out.splitlines()
    assert len(lines) == 6
    assert lines[0].startswith("PASS  spam is suppressed")
    assert lines[3] == ("FAIL  wrong rule name fails: expected verdict 'suppress', got 'suppress'; "
                        "expected rule 'other-rule', got 'block-spam'")
    assert lines[4] == ("FAIL  rule asserted but none matched: expected verdict 'allow', got 'allow'; "
                        "expected rule 'block-spam', got '<none>'")
    assert lines[5].startswith("5 tests: 3 passed, 2 failed")


def test_fixture_metadata_reaches_the_rules(cli: Cli) -> None:
    # Upstream drops fixture metadata; acteon passes it to the evaluation.
    write(cli.cwd, "rules.yaml", "rules:\n  - {name: vip, condition: {field: action.metadata.tier, eq: gold}, "
                                 "action: {type: reroute, target_provider: priority}}\n")
    write(cli.cwd, "fx.yaml", "tests:\n  - name: gold goes first\n    action: {namespace: n, tenant: t, provider: p, "
                              "action_type: x, metadata: {tier: gold}}\n    expect: {verdict: reroute, "
                              "matched_rule: vip}\n")
    result = cli("rules", "test", "fx.yaml", "--rules", "rules.yaml")
    assert result.code == 0, result.out


def test_time_env_and_timezone_options(cli: Cli) -> None:
    write(cli.cwd, "rules.yaml", "rules:\n  - {name: office, condition: {all: [{field: time.hour, gte: 9}, "
                                 "{field: env.region, eq: eu}]}, action: {type: deny}}\n")
    write(cli.cwd, "fx.yaml", "tests:\n  - name: morning\n    action: {namespace: n, tenant: t, provider: p, "
                              "action_type: x}\n    expect: {verdict: deny}\n")
    args = ("rules", "test", "fx.yaml", "--rules", "rules.yaml", "--env", "region=eu")
    assert cli(*args, "--at", "2026-01-15T14:00:00Z").code == 0
    assert cli(*args, "--at", "2026-01-15T14:00:00Z", "--timezone", "America/Los_Angeles").code == 1


def test_invalid_fixture_yaml_is_a_configuration_error(cli: Cli) -> None:
    write(cli.cwd, "rules.yaml", R01_RULES)
    write(cli.cwd, "bad.yaml", "tests: [\n")
    result = cli("rules", "test", "bad.yaml", "--rules", "rules.yaml")
    assert result.code == 1
    assert result.out == ""
    assert result.err.startswith("acteon: error: configuration error: invalid fixture YAML: ")
    write(cli.cwd, "bad.yaml", "tests:\n  - name: x\n    action: {namespace: n}\n    expect: {verdict: allow}\n")
    result = cli("rules", "test", "bad.yaml", "--rules", "rules.yaml")
    assert result.code == 1
    assert "invalid fixture YAML: tests[0].action: missing field `tenant`" in result.err


def test_missing_inputs_are_usage_errors(cli: Cli) -> None:
    write(cli.cwd, "rules.yaml", R01_RULES)
    result = cli("rules", "test", "nope.yaml", "--rules", "rules.yaml")
    assert (result.code, result.err) == (2, "acteon: error: fixture file nope.yaml does not exist\n")
    write(cli.cwd, "fx.yaml", R01_FIXTURE)
    result = cli("rules", "test", "fx.yaml", "--rules", "missing-dir")
    assert (result.code, result.err) == (2, "acteon: error: rules path missing-dir does not exist\n")
    result = cli("rules", "test", "fx.yaml")
    assert result.code == 2 and "--rules" in result.err


def test_broken_rules_fail_with_the_load_error(cli: Cli) -> None:
    write(cli.cwd, "rules.yaml", "rules:\n  - {name: t, condition: {all: []}, action: {type: throttle, max_count: 1}}\n")
    write(cli.cwd, "fx.yaml", R01_FIXTURE)
    result = cli("rules", "test", "fx.yaml", "--rules", "rules.yaml")
    assert result.code == 1
    assert result.err.startswith("acteon: error: parse error: ")
    assert "missing field `window_seconds`" in result.err and "rule 't'" in result.err
    assert "Traceback" not in result.err


def test_subprocess_r01(tmp_path: Path) -> None:
    r01(tmp_path)
    result = run_subprocess("rules", "test", "fixtures.yaml", "--rules", "rules", "--format", "json", cwd=tmp_path)
    assert result.code == 1, result.err
    assert (result.json()["passed"], result.json()["failed"]) == (3, 2)
    result = run_subprocess("rules", "test", "fixtures.yaml", "--rules", "rules", "--filter", "spam", cwd=tmp_path)
    assert result.code == 0, result.err
    assert result.out.splitlines()[-1].startswith("1 test: 1 passed, 0 failed")


def test_a_rule_error_is_named_in_the_result(cli: Cli) -> None:
    write(cli.cwd, "rules.yaml", "rules:\n  - {name: retry-storm, condition: {field: action.metadata.retry, gt: 2}, "
                                 "action: {type: deny}}\n")
    write(cli.cwd, "fx.yaml", "tests:\n  - name: plain\n    action: {namespace: n, tenant: t, provider: p, "
                              "action_type: x}\n    expect: {verdict: allow}\n")
    result = cli("rules", "test", "fx.yaml", "--rules", "rules.yaml", "--format", "json")
    assert result.code == 1
    (entry,) = result.json()["results"]
    assert entry["actual_verdict"] == "error"
    assert entry["error"] == "rule 'retry-storm': type error: cannot compare null and int"
    text = cli("rules", "test", "fx.yaml", "--rules", "rules.yaml").out
    assert "got 'error' (rule 'retry-storm': type error: cannot compare null and int)" in text

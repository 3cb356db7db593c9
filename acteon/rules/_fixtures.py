"""Rule-testing fixtures (rules.md §11): run ``tests:`` cases against a rule set.

Difference from upstream (documented in docs/rules.md): a fixture's
``action.metadata`` is passed to the evaluation (upstream silently drops it).
"""

from __future__ import annotations

from datetime import UTC, datetime
from time import perf_counter_ns
from typing import Any

from acteon._action import Action
from acteon._exceptions import ConfigurationError
from acteon.rules._engine import RuleSet
from acteon.rules._trace import EvaluationTrace
from acteon.rules._yaml_loader import YamlError, compose, to_value

_REQUIRED_ACTION = ("namespace", "tenant", "provider", "action_type")


class _FixtureError(ValueError):
    pass


def _parse(text: str) -> list[dict[str, Any]]:
    try:
        root = compose(text)
        doc = None if root is None else to_value(root)
    except YamlError as exc:
        raise _FixtureError(str(exc)) from None
    if not isinstance(doc, dict) or "tests" not in doc:
        raise _FixtureError("missing field `tests`")
    tests = doc["tests"]
    if not isinstance(tests, list):
        raise _FixtureError("invalid type: `tests` must be a sequence")
    out: list[dict[str, Any]] = []
    for i, test in enumerate(tests):
        where = f"tests[{i}]"
        if not isinstance(test, dict):
            raise _FixtureError(f"{where}: expected a mapping")
        for key in ("name", "action", "expect"):
            if key not in test:
                raise _FixtureError(f"{where}: missing field `{key}`")
        if not isinstance(test["name"], str):
            raise _FixtureError(f"{where}.name: expected a string")
        action, expect = test["action"], test["expect"]
        if not isinstance(action, dict):
            raise _FixtureError(f"{where}.action: expected a mapping")
        for key in _REQUIRED_ACTION:
            if not isinstance(action.get(key), str):
                raise _FixtureError(f"{where}.action: missing field `{key}`")
        metadata = action.get("metadata") or {}
        if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
            raise _FixtureError(f"{where}.action.metadata: expected a map of strings")
        if not isinstance(expect, dict) or not isinstance(expect.get("verdict"), str):
            raise _FixtureError(f"{where}.expect: missing field `verdict`")
        rule = expect.get("matched_rule")
        if rule is not None and not isinstance(rule, str):
            raise _FixtureError(f"{where}.expect.matched_rule: expected a string")
        out.append(
            {
                "name": test["name"],
                "action": {
                    **{k: action[k] for k in _REQUIRED_ACTION},
                    "payload": action.get("payload", {}) if action.get("payload") is not None else {},
                    "metadata": metadata,
                },
                "verdict": expect["verdict"],
                "matched_rule": rule,
            }
        )
    return out


def _load(fixture_text: str, filter: str | None) -> list[dict[str, Any]]:
    try:
        tests = _parse(fixture_text)
    except _FixtureError as exc:
        raise ConfigurationError(f"invalid fixture YAML: {exc}") from None
    return [t for t in tests if filter is None or filter in t["name"]]


def _result(
    test: dict[str, Any], trace: EvaluationTrace | None, error: str | None, duration: int
) -> dict[str, Any]:
    actual = "" if trace is None else trace.verdict
    actual_rule = None if trace is None else trace.matched_rule
    passed = trace is not None and actual.lower() == test["verdict"].lower()
    if passed and test["matched_rule"] is not None:
        passed = actual_rule == test["matched_rule"]
    result: dict[str, Any] = {
        "name": test["name"],
        "passed": passed,
        "expected_verdict": test["verdict"],
        "actual_verdict": actual,
    }
    if test["matched_rule"] is not None:
        result["expected_rule"] = test["matched_rule"]
    if actual_rule is not None:
        result["actual_rule"] = actual_rule
    result["duration_us"] = duration
    if error is None and trace is not None and trace.verdict == "error":
        # Say which rule failed and why (upstream leaves the reader guessing).
        failed = next((e for e in trace.trace if e.result == "error"), None)
        if failed is not None:
            error = f"rule '{failed.rule_name}': {failed.error}"
    if error is not None:
        result["error"] = error
    return result


def _summary(results: list[dict[str, Any]], started: int) -> dict[str, Any]:
    passed = sum(1 for r in results if r["passed"])
    return {
        "total": len(results),
        "passed": passed,
        "failed": len(results) - passed,
        "results": results,
        "duration_ms": (perf_counter_ns() - started) // 1_000_000,
    }


def run_fixtures(
    ruleset: RuleSet,
    fixture_text: str,
    filter: str | None = None,
    *,
    now: datetime | None = None,
    env: dict[str, str] | None = None,
    timezone: str | None = None,
) -> dict[str, Any]:
    """Run every fixture test whose name contains ``filter``; returns the summary dict.

    ``{total, passed, failed, results: [{name, passed, expected_verdict,
    actual_verdict, expected_rule?, actual_rule?, duration_us, error?}], duration_ms}``.
    Invalid fixture text raises :class:`acteon.ConfigurationError`.
    """
    started = perf_counter_ns()
    results = []
    for test in _load(fixture_text, filter):
        t0 = perf_counter_ns()
        trace: EvaluationTrace | None = None
        error: str | None = None
        try:
            action = Action.model_validate(test["action"])
            trace = ruleset.evaluate_with_trace(
                action, now=now or datetime.now(UTC), env=env, timezone=timezone
            )
        except Exception as exc:  # a failing case is reported, never raised
            error = str(exc)
        results.append(_result(test, trace, error, (perf_counter_ns() - t0) // 1000))
    return _summary(results, started)


async def arun_fixtures(
    ruleset: RuleSet,
    fixture_text: str,
    filter: str | None = None,
    *,
    now: datetime | None = None,
    state: Any = None,
    env: dict[str, str] | None = None,
    timezone: str | None = None,
) -> dict[str, Any]:
    """Async twin of :func:`run_fixtures` (can read an asynchronous state store)."""
    started = perf_counter_ns()
    results = []
    for test in _load(fixture_text, filter):
        t0 = perf_counter_ns()
        trace: EvaluationTrace | None = None
        error: str | None = None
        try:
            action = Action.model_validate(test["action"])
            trace = await ruleset.aevaluate_with_trace(
                action, now=now or datetime.now(UTC), state=state, env=env, timezone=timezone
            )
        except Exception as exc:
            error = str(exc)
        results.append(_result(test, trace, error, (perf_counter_ns() - t0) // 1000))
    return _summary(results, started)


def fixtures_exit_code(summary: dict[str, Any]) -> int:
    """``1`` when any test failed, else ``0`` (the CLI's exit status)."""
    return 1 if summary["failed"] else 0


def format_fixture_report(summary: dict[str, Any]) -> str:
    """Text mode: one PASS/FAIL line per test, then the totals."""
    lines = []
    for r in summary["results"]:
        if r["passed"]:
            lines.append(f"PASS  {r['name']} ({r['duration_us']}us)")
            continue
        detail = f"expected verdict '{r['expected_verdict']}', got '{r['actual_verdict']}'"
        if "expected_rule" in r and r.get("actual_rule") != r["expected_rule"]:
            detail += f"; expected rule '{r['expected_rule']}', got '{r.get('actual_rule') or '<none>'}'"
        if "error" in r:
            detail += f" ({r['error']})"
        lines.append(f"FAIL  {r['name']}: {detail}")
    lines.append(
        f"{summary['total']} test{'' if summary['total'] == 1 else 's'}: {summary['passed']} passed, "
        f"{summary['failed']} failed "
        f"({summary['duration_ms']} ms)"
    )
    return "\n".join(lines)

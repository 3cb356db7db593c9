"""The RuleSet API, verdicts, fail-closed errors, fixtures runner and merge patch."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from acteon import ConfigurationError, RuleEvaluationError
from acteon.rules import (
    Rule,
    RuleAction,
    RuleSet,
    RuleSource,
    Verdict,
    fixtures_exit_code,
    format_fixture_report,
    ir,
    load_rules,
    merge_patch,
    run_fixtures,
)
from acteon.rules import arun_fixtures as arun

from ._helpers import action, one_rule


def test_verdict_api() -> None:
    verdict = Verdict("throttle", "r", {"max_count": 5, "window_seconds": 60})
    assert (verdict.kind, verdict.rule, verdict.max_count, verdict.window_seconds) == ("throttle", "r", 5, 60)
    assert verdict.target_provider is None
    assert verdict.to_dict() == {"verdict": "throttle", "rule": "r", "max_count": 5, "window_seconds": 60}
    assert Verdict.allow().to_dict() == {"verdict": "allow", "rule": None}
    assert verdict == Verdict("throttle", "r", {"max_count": 5, "window_seconds": 60})
    # Kinds are open: a later feature can add its own kind and parameters.
    weighted = Verdict("weighted_route", "w", {"targets": ["a", "b"]})
    assert weighted.targets == ["a", "b"]
    with pytest.raises(AttributeError):
        _ = weighted.nothing


def test_programmatic_rules_and_custom_action() -> None:
    cond = ir.Binary(ir.BinaryOp.GT, ir.path("action.payload.amount"), ir.Int(1000))
    rules = RuleSet(
        [
            Rule("big", cond, RuleAction("deny"), priority=2, metadata={"llm_policy": "strict"}),
            Rule("custom", ir.Bool(True), RuleAction("custom", name="x", params={}), priority=3),
        ]
    )
    assert rules.evaluate(action(payload={"amount": 5000})).to_dict() == {"verdict": "deny", "rule": "big"}
    assert rules.evaluate(action(payload={"amount": 5})).to_dict() == {"verdict": "allow", "rule": "custom"}
    big = rules.rule_by_name("big")
    assert big is not None and big.metadata == {"llm_policy": "strict"}
    assert str(big.source) == "Inline"
    assert str(RuleSource.wasm("p")) == 'Wasm { plugin: Some("p") }' and str(RuleSource.api()) == "Api"


def test_action_as_dict_and_now_forms() -> None:
    rules = one_rule("{field: time.hour, eq: 13}")
    wire = {"namespace": "ns", "tenant": "t", "provider": "p", "action_type": "x", "metadata": {"labels": {}}}
    assert rules.evaluate(wire, now="2026-01-15T13:00:00Z").kind == "deny"
    assert rules.evaluate(wire, now=datetime(2026, 1, 15, 13, 0)).kind == "deny"  # naive = UTC
    plus2 = timezone(timedelta(hours=2))
    assert rules.evaluate(wire, now=datetime(2026, 1, 15, 15, 0, tzinfo=plus2)).kind == "deny"


def test_evaluation_errors_fail_closed() -> None:
    text = """
rules:
  - {name: broken, priority: 1, condition: {field: action.payload.user.email, eq: x}, action: {type: allow}}
  - {name: later, priority: 2, condition: {all: []}, action: {type: deny}}
"""
    rules = load_rules(text)
    with pytest.raises(RuleEvaluationError) as info:
        rules.evaluate(action(payload={}))
    err = info.value
    assert str(err).startswith("type error: cannot access field 'email' on null")
    assert (err.rule, err.field) == ("broken", "action.payload.user.email")
    assert str(err.__cause__) == "type error: cannot access field 'email' on null"
    assert rules.evaluate(action(payload={"user": {}})).kind == "deny"


@pytest.mark.anyio
async def test_aevaluate_matches_evaluate() -> None:
    rules = one_rule("{all: [{field: action.tenant, eq: t1}, {field: action.payload.priority, gte: 3}]}")
    assert await rules.aevaluate(action()) == rules.evaluate(action())
    with pytest.raises(RuleEvaluationError):
        await rules.aevaluate(action(payload={"priority": "high"}))


def test_semantic_topics_of_a_rule_set() -> None:
    rules = load_rules(
        "rules:\n"
        "  - {name: a, condition: {semantic_match: Billing}, action: {type: deny}}\n"
        "  - name: b\n"
        "    condition: {any: [{semantic_match: Infra}, {semantic_match: Billing}]}\n"
        "    action: {type: deny}\n"
    )
    assert rules.semantic_topics() == ["Billing", "Infra"]


# --------------------------------------------------------------------------- fixtures

FIXTURE = """
tests:
  - name: spam suppressed
    action: {namespace: n, tenant: acme, provider: email, action_type: spam}
    expect: {verdict: suppress, matched_rule: block-spam}
  - name: vip by label
    action: {namespace: n, tenant: acme, provider: email, action_type: x, metadata: {tier: vip}}
    expect: {verdict: REROUTE}
  - name: wrong
    action: {namespace: n, tenant: acme, provider: email, action_type: x, payload: {a: 1}}
    expect: {verdict: deny}
"""
FIXTURE_RULES = """
rules:
  - name: block-spam
    priority: 1
    condition: {field: action.action_type, eq: spam}
    action: {type: suppress}
  - name: vip
    priority: 2
    condition: {field: action.metadata.tier, eq: vip}
    action: {type: reroute, target_provider: sms}
"""


def test_run_fixtures() -> None:
    summary = run_fixtures(load_rules(FIXTURE_RULES), FIXTURE)
    assert (summary["total"], summary["passed"], summary["failed"]) == (3, 2, 1)
    assert fixtures_exit_code(summary) == 1
    first, second, third = summary["results"]
    assert first["actual_rule"] == "block-spam" and first["expected_rule"] == "block-spam"
    assert second["passed"] and second["actual_verdict"] == "reroute"  # metadata is passed through
    assert "expected_rule" not in third and "actual_rule" not in third and third["actual_verdict"] == "allow"
    assert isinstance(summary["duration_ms"], int) and isinstance(first["duration_us"], int)
    report = format_fixture_report(summary)
    assert "FAIL  wrong: expected verdict 'deny', got 'allow'" in report
    assert report.splitlines()[-1].startswith("3 tests: 2 passed, 1 failed")
    only = run_fixtures(load_rules(FIXTURE_RULES), FIXTURE, filter="spam")
    assert only["total"] == 1 and fixtures_exit_code(only) == 0


@pytest.mark.anyio
async def test_arun_fixtures() -> None:
    summary = await arun(load_rules(FIXTURE_RULES), FIXTURE)
    assert summary["passed"] == 2


@pytest.mark.parametrize(
    "text",
    [
        "tests: [",
        "nope: []",
        "tests:\n  - action: {namespace: n, tenant: t, provider: p, action_type: x}\n"
        "    expect: {verdict: allow}",
        "tests:\n  - {name: x, action: {namespace: n, tenant: t, provider: p}, expect: {verdict: allow}}",
        "tests:\n  - {name: x, action: {namespace: n, tenant: t, provider: p, action_type: a}, expect: {}}",
    ],
)
def test_invalid_fixture_yaml(text: str) -> None:
    with pytest.raises(ConfigurationError, match=r"^configuration error: invalid fixture YAML: "):
        run_fixtures(load_rules(FIXTURE_RULES), text)


# --------------------------------------------------------------------------- merge patch


@pytest.mark.parametrize(
    ("target", "patch", "expected"),
    [
        ({"a": "b"}, {"a": "c"}, {"a": "c"}),
        ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
        ({"a": "b"}, {"a": None}, {}),
        ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
        ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
        ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
        ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
        ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
        (["a", "b"], ["c", "d"], ["c", "d"]),
        ({"a": "b"}, ["c"], ["c"]),
        ({"a": "foo"}, None, None),
        ({"a": "foo"}, "bar", "bar"),
        ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
        ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
        ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
    ],
)
def test_merge_patch_rfc7396(target: Any, patch: Any, expected: Any) -> None:
    import copy

    before = copy.deepcopy(target)
    assert merge_patch(target, patch) == expected
    assert target == before


def test_evaluate_signatures_match_python_api() -> None:
    """python-api.md §3 names these parameters positionally, in this order."""
    import inspect

    from acteon.rules import RuleSet

    def params(fn: object) -> list[str]:
        sig = inspect.signature(fn)  # type: ignore[arg-type]
        return [p.name for p in sig.parameters.values() if p.kind is p.POSITIONAL_OR_KEYWORD][1:]

    assert params(RuleSet.evaluate) == ["action", "now", "state", "env", "timezone"]
    assert params(RuleSet.evaluate_with_trace) == [
        "action", "include_disabled", "evaluate_all", "now", "state", "env", "timezone"]

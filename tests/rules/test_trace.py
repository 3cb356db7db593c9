"""evaluate_with_trace semantics and the upstream JSON shape (rules.md §10)."""

from __future__ import annotations

import json

import pytest

from acteon.rules import load_rules

from ._helpers import NOW, action

RULES = """
rules:
  - name: bad
    priority: 1
    description: breaks
    condition: {field: action.payload.n, gt: 1}
    action: {type: deny}
  - {name: off, priority: 2, enabled: false, condition: {all: []}, action: {type: allow}}
  - name: enrich
    priority: 3
    condition: {field: action.action_type, eq: email}
    action: {type: modify, changes: {from: a@x, tmp: ~}}
  - name: tag
    priority: 4
    condition: {field: action.tenant, eq: t1}
    action: {type: modify, changes: {tags: {x: 1}}}
  - {name: last, priority: 5, condition: {all: []}, action: {type: suppress}}
"""


def test_skip_reasons_and_counts() -> None:
    rules = load_rules(RULES)
    trace = rules.evaluate_with_trace(action(action_type="email", payload={"n": 0}), include_disabled=True)
    assert [(e.rule_name, e.result, e.skip_reason) for e in trace.trace] == [
        ("bad", "not_matched", None),
        ("off", "skipped", "disabled"),
        ("enrich", "matched", None),
        ("tag", "skipped", "earlier_rule_matched"),
        ("last", "skipped", "earlier_rule_matched"),
    ]
    assert (trace.verdict, trace.matched_rule) == ("modify", "enrich")
    assert (trace.total_rules_evaluated, trace.total_rules_skipped, trace.has_errors) == (2, 3, False)
    assert trace.trace[1].enabled is False
    assert all(e.evaluation_duration_us == 0 for e in trace.trace if e.result == "skipped")
    # Without include_disabled the disabled rule is simply absent.
    trace = rules.evaluate_with_trace(action(action_type="email", payload={"n": 0}))
    assert [e.rule_name for e in trace.trace] == ["bad", "enrich", "tag", "last"]


def test_error_before_match_keeps_evaluating_and_reports_error() -> None:
    rules = load_rules(RULES)
    trace = rules.evaluate_with_trace(action(payload={"n": "x"}))
    assert trace.verdict == "error"
    assert trace.matched_rule == "tag"
    assert trace.has_errors is True
    first = trace.trace[0]
    assert first.result == "error" and first.error == "type error: cannot compare string and int"
    assert [e.result for e in trace.trace] == ["error", "not_matched", "matched", "skipped"]
    assert all(e.rule_name != "(default fallthrough)" for e in trace.trace)


def test_error_after_match_with_evaluate_all() -> None:
    text = """
rules:
  - {name: first, priority: 1, condition: {all: []}, action: {type: deny}}
  - {name: broken, priority: 2, condition: {field: action.payload.n, gt: 1}, action: {type: allow}}
"""
    trace = load_rules(text).evaluate_with_trace(action(payload={"n": "x"}), evaluate_all=True)
    assert (trace.verdict, trace.matched_rule, trace.has_errors) == ("deny", "first", True)


def test_fallthrough_entry() -> None:
    rules = load_rules("rules:\n  - {name: r, condition: {any: []}, action: {type: deny}}\n")
    out = rules.evaluate_with_trace(action()).to_dict()
    assert out["verdict"] == "allow" and "matched_rule" not in out
    assert out["trace"][-1] == {
        "rule_name": "(default fallthrough)",
        "priority": 2147483647,
        "enabled": True,
        "condition_display": "no rules matched",
        "result": "matched",
        "evaluation_duration_us": 0,
        "action": "Allow",
        "source": "System",
        "description": "No rules matched the action. The system default is to allow.",
    }


def test_error_without_match_has_no_fallthrough() -> None:
    rules = load_rules(
        "rules:\n  - {name: r, condition: {field: action.payload.n, gt: 1}, action: {type: deny}}\n"
    )
    trace = rules.evaluate_with_trace(action(payload={}))
    assert trace.verdict == "error" and trace.matched_rule is None
    assert [e.rule_name for e in trace.trace] == ["r"]


def test_modify_preview_with_evaluate_all() -> None:
    rules = load_rules(RULES)
    act = action(action_type="email", payload={"n": 0, "tmp": 1, "tags": {"y": 2}})
    trace = rules.evaluate_with_trace(act, evaluate_all=True)
    out = trace.to_dict()
    assert out["verdict"] == "modify" and out["matched_rule"] == "enrich"
    assert out["modified_payload"] == {"n": 0, "tags": {"y": 2}, "from": "a@x"}
    entries = {e["rule_name"]: e for e in out["trace"]}
    assert entries["enrich"]["modify_patch"] == {"from": "a@x", "tmp": None}
    assert entries["enrich"]["modified_payload_preview"] == {"n": 0, "tags": {"y": 2}, "from": "a@x"}
    assert entries["tag"]["modified_payload_preview"] == {"n": 0, "tags": {"y": 2, "x": 1}, "from": "a@x"}
    assert "modify_patch" not in entries["last"]
    assert act.payload == {"n": 0, "tmp": 1, "tags": {"y": 2}}  # the input is never mutated
    # Without evaluate_all only the top-level preview is present.
    out = rules.evaluate_with_trace(act).to_dict()
    assert "modified_payload" in out and all("modify_patch" not in e for e in out["trace"])


def test_to_dict_shape() -> None:
    rules = load_rules(RULES)
    trace = rules.evaluate_with_trace(
        action(action_type="email", payload={"n": 0}), now="2026-01-15T14:05:09Z", timezone="US/Eastern"
    )
    out = trace.to_dict()
    assert list(out) == [
        "verdict",
        "matched_rule",
        "has_errors",
        "total_rules_evaluated",
        "total_rules_skipped",
        "evaluation_duration_us",
        "trace",
        "context",
        "modified_payload",
    ]
    entry = out["trace"][0]
    assert list(entry) == [
        "rule_name",
        "priority",
        "enabled",
        "condition_display",
        "result",
        "evaluation_duration_us",
        "action",
        "source",
        "description",
    ]
    assert entry["source"] == "Yaml { file: None }"
    assert entry["condition_display"] == "(action.payload.n > 1)"
    ctx = out["context"]
    assert ctx["effective_timezone"] == "US/Eastern"
    assert ctx["environment_keys"] == []
    assert "accessed_state_keys" not in ctx
    assert ctx["time"]["Map"]["hour"] == {"Int": 9}
    assert ctx["time"]["Map"]["weekday"] == {"String": "Thursday"}
    assert ctx["time"]["Map"]["timestamp"] == {"Int": 1768485909}
    assert trace.context.to_dict(tagged_time=False)["time"]["minute"] == 5
    json.dumps(out)  # serialisable as is


def test_context_records_env_and_state_keys() -> None:
    text = """
rules:
  - {name: a, priority: 1, condition: {field: env.region, eq: eu}, action: {type: deny}}
  - {name: b, priority: 2, condition: {field: environment.missing, eq: x}, action: {type: deny}}
  - {name: c, priority: 3, condition: {field: tier, eq: gold}, action: {type: deny}}
  - {name: d, priority: 4, condition: {state_counter: hits, gt: 10}, action: {type: deny}}
  - {name: e, priority: 5, condition: {state_seen: last}, action: {type: deny}}
"""
    trace = load_rules(text).evaluate_with_trace(
        action(), env={"region": "us", "tier": "silver", "secret": "s"}, now=NOW
    )
    ctx = trace.to_dict()["context"]
    assert ctx["environment_keys"] == ["missing", "region", "tier"]
    assert ctx["accessed_state_keys"] == ["counter:hits", "time_since:last"]
    assert "effective_timezone" not in ctx


def test_rule_source_of_files(tmp_path: pytest.TempPathFactory) -> None:
    path = tmp_path / 'we"ird.yaml'  # type: ignore[operator]
    path.write_text("rules:\n  - {name: r, condition: {all: []}, action: {type: deny}}\n")
    rules = load_rules(path)
    assert str(rules.rules[0].source) == f"Yaml {{ file: Some({json.dumps(str(path))}) }}"
    trace = rules.evaluate_with_trace(action())
    assert trace.trace[0].source.startswith("Yaml { file: Some(")


@pytest.mark.anyio
async def test_async_trace_matches_sync_trace() -> None:
    rules = load_rules(RULES)
    act = action(action_type="email", payload={"n": 0})
    a = (await rules.aevaluate_with_trace(act, now=NOW)).to_dict()
    b = rules.evaluate_with_trace(act, now=NOW).to_dict()
    for out in (a, b):
        out.pop("evaluation_duration_us")
        for e in out["trace"]:
            e.pop("evaluation_duration_us")
    assert a == b

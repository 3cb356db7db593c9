"""The public conformance cases of rules.md §16, run through a small harness (§16.1 conventions).

Data: tests/data/rules_conformance.yaml. Each case (and each variant / sub-case)
is one parametrized test. CEL cases skip until the CEL frontend is registered.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from acteon import RuleEvaluationError, RuleLoadError
from acteon.rules import (
    MockState,
    RuleSet,
    fixtures_exit_code,
    frontend_available,
    load_rules,
    run_fixtures,
)
from acteon.rules._yaml_frontend import compile_yaml_condition
from acteon.rules._yaml_loader import compose, to_value

DATA_FILE = Path(__file__).resolve().parents[1] / "data" / "rules_conformance.yaml"
_root = compose(DATA_FILE.read_text(encoding="utf-8"))
assert _root is not None
DATA: dict[str, Any] = to_value(_root)
DEFAULTS: dict[str, Any] = DATA["defaults"]
RULE_SETS: dict[str, str] = DATA["rule_sets"]

_SOURCE_KEYS = ("rules", "rules_ref", "cel", "template", "expr")


def _expand() -> list[Any]:
    runs = []
    for case in DATA["cases"]:
        cid = case["id"]
        if "cases" in case:
            for i, sub in enumerate(case["cases"]):
                runs.append(pytest.param(dict(sub), id=f"{cid}.{i}"))
            continue
        base = {k: v for k, v in case.items() if k != "variants"}
        runs.append(pytest.param(base, id=cid))
        for i, variant in enumerate(case.get("variants") or []):
            merged = dict(base)
            if any(k in variant for k in _SOURCE_KEYS):
                for k in _SOURCE_KEYS:
                    merged.pop(k, None)
            merged.update(variant)
            runs.append(pytest.param(merged, id=f"{cid}.v{i}"))
    return runs


class _ExactStore:
    """The harness ``state:``: a real store, exact canonical keys only."""

    def __init__(self, values: dict[str, str]) -> None:
        self.values = values

    def get(self, key: str) -> str | None:
        return self.values.get(key)


class _Embedding:
    def __init__(self, similarity: float) -> None:
        self.value = similarity

    def similarity(self, text: str, topic: str) -> float:
        return self.value


def _need_cel(run: dict[str, Any]) -> None:
    if ("cel" in run or "expr" in run) and not frontend_available("cel"):
        pytest.skip("CEL frontend not built yet")


def _load(run: dict[str, Any]) -> RuleSet:
    if "cel" in run:
        return load_rules(run["cel"], format="cel")
    if "template" in run:
        return load_rules(run["template"].replace("<EXPR>", run["expr"]), format="cel")
    text = run["rules"] if "rules" in run else RULE_SETS[run["rules_ref"]]
    return load_rules(text, format="yaml")


def _action(run: dict[str, Any]) -> dict[str, Any]:
    action = dict(DEFAULTS["action"])
    action.update(run.get("action") or {})
    return action


def _eval_kwargs(run: dict[str, Any]) -> dict[str, Any]:
    get = lambda key: run.get(key, DEFAULTS.get(key))  # noqa: E731
    state: Any = _ExactStore(dict(get("state") or {}))
    if run.get("mock_state"):
        state = MockState(run["mock_state"], fallback=state)
    embedding = get("embedding")
    return {
        "now": get("now"),
        "timezone": get("default_timezone"),
        "env": dict(get("env") or {}),
        "state": state,
        "embedding": None if embedding is None else _Embedding(float(embedding["similarity"])),
    }


def _partial(actual: Any, expected: Any, where: str) -> None:
    if isinstance(expected, dict):
        assert isinstance(actual, dict), f"{where}: expected a mapping, got {actual!r}"
        for key, value in expected.items():
            assert key in actual, f"{where}.{key} missing in {actual!r}"
            _partial(actual[key], value, f"{where}.{key}")
    elif isinstance(expected, list) and expected and isinstance(expected[0], dict):
        assert isinstance(actual, list) and len(actual) == len(expected), f"{where}: {actual!r}"
        for i, (a, e) in enumerate(zip(actual, expected, strict=True)):
            _partial(a, e, f"{where}[{i}]")
    else:
        assert actual == expected, f"{where}: expected {expected!r}, got {actual!r}"


def _check_trace(rules: RuleSet, run: dict[str, Any]) -> None:
    trace = rules.evaluate_with_trace(
        _action(run),
        include_disabled=bool(run.get("include_disabled", False)),
        evaluate_all=bool(run.get("evaluate_all", False)),
        **_eval_kwargs(run),
    )
    out = trace.to_dict()
    plain_context = trace.context.to_dict(tagged_time=False)
    for key, expected in run["trace"].items():
        if key == "matched_rule" and expected == "absent":
            assert "matched_rule" not in out
        elif key == "results":
            assert [e["result"] for e in out["trace"]] == expected
        elif key == "last_entry":
            _partial(out["trace"][-1], expected, "last_entry")
        elif key.startswith("entry_"):
            name = key[len("entry_") :]
            entries = [e for e in out["trace"] if e["rule_name"] == name]
            assert entries, f"no trace entry for {name}"
            _partial(entries[0], expected, key)
        elif key == "context":
            _partial(out["context"], expected, "context")
        elif key == "context_time":
            _partial(plain_context["time"], expected, "context_time")
        else:
            _partial(out.get(key), expected, key)


def _check_verdict(rules: RuleSet, run: dict[str, Any], expect: dict[str, Any]) -> None:
    if "error" in expect:
        with pytest.raises(RuleEvaluationError) as info:
            rules.evaluate(_action(run), **_eval_kwargs(run))
        assert str(info.value).startswith(expect["error"]), str(info.value)
        return
    verdict = rules.evaluate(_action(run), **_eval_kwargs(run))
    assert verdict.kind == expect["verdict"], verdict
    for key, value in expect.items():
        if key == "verdict":
            continue
        if key == "rule":
            assert verdict.rule == value, verdict
        else:
            assert getattr(verdict, key) == value, f"{key}: {verdict!r}"


def _check_displays(run: dict[str, Any]) -> None:
    for item in run["displays"]:
        if "cel_expr" in item:
            if not frontend_available("cel"):
                continue
            condition = json.dumps(item["cel_expr"])
            text = f"rules:\n  - name: d\n    condition: {condition}\n    action: {{type: allow}}\n"
            shown = load_rules(text, format="cel").rules[0].condition.to_source()
        else:
            node = compose(item["yaml_condition"])
            assert node is not None
            shown = compile_yaml_condition(node).to_source()
        assert shown == item["display"]


def _check_fixture(rules: RuleSet, run: dict[str, Any]) -> None:
    summary = run_fixtures(rules, run["fixture"], run.get("filter"))
    expected = dict(run["summary"])
    assert fixtures_exit_code(summary) == expected.pop("exit_code")
    _partial(summary, expected, "summary")
    by_name = {r["name"]: r for r in summary["results"]}
    for result in run.get("results") or []:
        if result["name"] in by_name:  # a filtered variant runs only some of them
            _partial(by_name[result["name"]], result, result["name"])


@pytest.mark.parametrize("run", _expand())
def test_conformance(run: dict[str, Any]) -> None:
    _need_cel(run)
    if "displays" in run:
        _check_displays(run)
        return
    expect = dict(run.get("expect") or {})
    load_error = run.get("load_error", expect.get("load_error"))
    if load_error is not None:
        with pytest.raises(RuleLoadError) as info:
            _load(run)
        assert load_error in str(info.value), str(info.value)
        return
    rules = _load(run)
    if "loads" in run:
        assert len(rules) == run["loads"]
    if "fixture" in run:
        _check_fixture(rules, run)
    if "trace" in run:
        _check_trace(rules, run)
    if expect:
        _check_verdict(rules, run, expect)

"""Static lint of conditions that can only fail when evaluated (``acteon rules validate``, D9)."""

from __future__ import annotations

import pytest

from acteon.rules import load_rules
from acteon.rules._lint import lint_condition, lint_rules, static_type

from ._helpers import cond


def cel(text: str) -> list[str]:
    rules = load_rules(f"rules:\n  - name: r\n    condition: '{text}'\n    action: {{type: deny}}\n", format="cel")
    return lint_condition(rules.rules[0].condition)


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ("{field: action.metadata.retry, gt: 2}", "(action.metadata.retry > 2) orders a metadata label"),
        ("{field: action.metadata.retry, lte: 2.5}", "(action.metadata.retry <= 2.5) orders a metadata label"),
        ("{field: time.hour, contains: '1'}", "(time.hour contains \"1\") applies 'contains' to an int"),
        ("{field: time.weekday, gt: 3}", "(time.weekday > 3) orders a string against a number"),
        ("{field: action.action_type, lt: 3}", "(action.action_type < 3) orders a string against a number"),
        ("{state_counter: hits, gt: 'ten'}", 'orders a string against a number'),
        ("{field: action.payload.x, matches: '(?=a)'}", "uses a pattern that does not compile: invalid regex"),
        ("{field: time.hours, eq: 9}", "time.hours is always null"),
    ],
)
def test_yaml_conditions_that_always_fail(condition: str, expected: str) -> None:
    problems = lint_condition(cond(condition))
    assert len(problems) == 1, problems
    assert expected in problems[0]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('action.metadata["n"] > 1', '(action.metadata["n"] > 1) orders a metadata label'),
        ("action.metadata.n + 1 == 2", "does arithmetic on a metadata label"),
        ("x / 0 > 1", "(x / 0) divides by zero"),
        ("x % 0 == 1", "(x % 0) divides by zero"),
        ("foo(1)", "foo(1) calls an unknown function"),
        ("time.hour.startsWith(\"1\")", "applies 'starts_with' to an int"),
        ("action.action_type.contains(5)", "applies 'contains' with an int as the argument"),
        ("true > 1", "orders a bool against a number"),
        ("now() > \"x\"", "orders a string against a number"),
    ],
)
def test_cel_conditions_that_always_fail(text: str, expected: str) -> None:
    problems = cel(text)
    assert any(expected in p for p in problems), problems


@pytest.mark.parametrize(
    "text",
    [
        "to_int(action.metadata.n) > 1",
        'action.metadata.n > "b"',
        'action.metadata.n == "5"',
        "action.payload.amount > 1000",
        "env.limit > 3",
        "time.hour >= 9 && time.weekday_num < 6",
        'time.weekday == "Monday"',
        "now - 60 > action.payload.ts",
        '["a", "b"].contains("a")',
        'action.payload.tags.contains("x")',
        'action.action_type.matches("^send_")',
        "len(action.payload.items) > 0",
        "x / 2 > 1",
        'action.metadata.a + "x" == "bx"',
    ],
)
def test_no_false_alarms(text: str) -> None:
    assert cel(text) == []


def test_lint_rules_names_file_rule_and_key_and_checks_timezones() -> None:
    rules = load_rules(
        "rules:\n"
        "  - {name: a, timezone: us/eastern, condition: {all: []}, action: {type: deny}}\n"
        "  - {name: b, enabled: false, condition: {field: action.metadata.x, gt: 1}, action: {type: deny}}\n"
        "  - {name: c, timezone: US/Eastern, condition: {field: time.hour, gt: 1}, action: {type: deny}}\n"
    )
    warnings = lint_rules(rules.rules)
    assert len(warnings) == 2
    assert warnings[0].startswith("file <string>, rule 'a', key 'timezone': 'us/eastern' is not an IANA")
    # disabled rules are checked too: they may be switched on at run time
    assert warnings[1].startswith("file <string>, rule 'b', key 'condition': (action.metadata.x > 1)")


def test_static_types() -> None:
    assert static_type(cond("{field: time.hour, eq: 1}")) == "bool"
    from acteon.rules import ir

    assert static_type(ir.path("time.timestamp")) == "int"
    assert static_type(ir.path("action.metadata.x")) == "label"
    assert static_type(ir.path("action.payload.x")) is None
    assert static_type(ir.Binary(ir.BinaryOp.ADD, ir.Int(1), ir.Float(2.0))) == "float"
    assert static_type(ir.StateCounter("k")) == "int"

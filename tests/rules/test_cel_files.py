"""`.cel` rule files through the public API (rules.md §5.1, §16.5 conformance, D26 differences)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from acteon import Action, RuleEvaluationError, RuleLoadError
from acteon.rules import RuleSet, load_rules, load_rules_dir

NOW = "2026-01-15T12:00:00Z"  # a Thursday


def make_action(**overrides: Any) -> Action:
    fields: dict[str, Any] = {
        "namespace": "notifications",
        "tenant": "tenant-1",
        "provider": "email",
        "action_type": "send_email",
        "payload": {"to": "user@example.com", "subject": "Hello", "priority": 5},
        "metadata": {},
    }
    fields.update(overrides)
    return Action(**fields)


def cel_rules(text: str) -> RuleSet:
    return load_rules(text, format="cel")


def one_rule(condition: str, action: str = "{type: deny}", name: str = "n") -> str:
    quoted = condition.replace("'", "''")
    return f"rules:\n  - {{name: {name}, condition: '{quoted}', action: {action}}}\n"


def load_error(text: str) -> str:
    with pytest.raises(RuleLoadError) as info:
        cel_rules(text)
    return str(info.value)


# --------------------------------------------------------------------------- §16.5 E01


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            'rules:\n  - {name: high-priority-email, condition: \'action.action_type == "send_email" && '
            "action.payload.priority > 3', action: {type: reroute, target_provider: express-email}}\n",
            {"verdict": "reroute", "rule": "high-priority-email", "target_provider": "express-email"},
        ),
        (
            'rules:\n  - {name: ternary-test, condition: \'action.action_type == "send_email" ? true : '
            "false', action: {type: suppress}}\n",
            {"verdict": "suppress", "rule": "ternary-test"},
        ),
        (
            'rules:\n  - {name: in-check, condition: \'action.action_type in ["send_email", "send_sms"]\', '
            "action: {type: throttle, max_count: 100, window_seconds: 60}}\n",
            {"verdict": "throttle", "rule": "in-check", "max_count": 100, "window_seconds": 60},
        ),
        (
            "rules:\n  - {name: starts-with-check, condition: 'action.action_type.startsWith(\"send\")', "
            "action: {type: allow}}\n",
            {"verdict": "allow", "rule": "starts-with-check"},
        ),
        (
            "rules:\n  - {name: not-spam, condition: '!(action.action_type == \"spam\")', "
            "action: {type: allow}}\n",
            {"verdict": "allow", "rule": "not-spam"},
        ),
        (
            'rules:\n  - {name: dedup-email, condition: \'action.action_type == "send_email" && '
            'action.payload.to.contains("@example.com")\', action: {type: deduplicate, ttl_seconds: 300}}\n',
            {"verdict": "deduplicate", "rule": "dedup-email", "ttl_seconds": 300},
        ),
    ],
)
def test_e01_upstream_e2e(text: str, expected: dict[str, Any]) -> None:
    verdict = cel_rules(text).evaluate(make_action(), now=NOW)
    assert verdict.to_dict() == expected


# --------------------------------------------------------------------------- §16.5 E03


E03 = """rules:
  - name: business-hours-eastern
    timezone: "US/Eastern"
    condition: 'time.hour >= 9 && time.hour < 17'
    action: {type: allow}
"""


@pytest.mark.parametrize(
    ("now", "rule"),
    [("2026-01-15T14:00:00Z", "business-hours-eastern"), ("2026-01-15T12:00:00Z", None)],
)
def test_e03_time_and_timezone(now: str, rule: str | None) -> None:
    verdict = cel_rules(E03).evaluate(make_action(), now=now)
    assert verdict.kind == "allow" and verdict.rule == rule


# --------------------------------------------------------------------------- §16.5 E05


@pytest.mark.parametrize(
    ("condition", "action", "substring"),
    [
        ("1 + + + 2", "{type: deny}", "parse error"),
        ("a and b", "{type: deny}", "unexpected trailing input"),
        ("", "{type: deny}", "empty expression"),
        ("true", "{type: group, group_by: [x]}", "unknown variant `group`"),
        ("(" * 32 + "1" + ")" * 32, "{type: deny}", "parse error"),  # 32 levels [head]
    ],
)
def test_e05_load_errors(condition: str, action: str, substring: str) -> None:
    assert substring in load_error(one_rule(condition, action))


def test_e05_single_quotes_are_valid_cel_now() -> None:
    # Upstream: "action.action_type == 'spam'" is a load error; D26 (standard CEL) accepts it.
    rules = cel_rules(
        "rules:\n  - {name: n, condition: \"action.action_type == 'spam'\", action: {type: deny}}\n"
    )
    assert rules.evaluate(make_action()).rule is None
    assert rules.evaluate(make_action(action_type="spam")).to_dict() == {"verdict": "deny", "rule": "n"}


def test_e05_exponent_floats_are_valid_cel_now() -> None:
    # Upstream: '1e3 > 5' -> "unexpected trailing input"; D26 accepts exponent floats.
    rules = cel_rules(one_rule("1e3 > 5"))
    assert rules.evaluate(make_action()).to_dict() == {"verdict": "deny", "rule": "n"}
    assert rules.rules[0].condition.to_source() == "(1000 > 5)"


# --------------------------------------------------------------------------- D26 differences


def test_precedence_follows_standard_cel() -> None:
    # upstream: 2 == ((1 + 1) < 3) -> false; standard CEL: (2 == 2) < 3 -> type error (fail closed)
    rules = cel_rules(one_rule("2 == 1 + 1 < 3"))
    assert rules.rules[0].condition.to_source() == "((2 == (1 + 1)) < 3)"
    with pytest.raises(RuleEvaluationError, match="type error: cannot compare bool and int"):
        rules.evaluate(make_action())
    assert cel_rules(one_rule("2 == (1 + 1 < 3)")).evaluate(make_action()).rule is None


def test_negative_literals_and_has() -> None:
    rules = cel_rules(one_rule("has(action.payload.priority) && action.payload.priority > -1"))
    assert rules.evaluate(make_action()).rule == "n"
    assert rules.evaluate(make_action(payload={})).rule is None


# --------------------------------------------------------------------------- file format (§5.1)


def test_source_priority_order_and_fields() -> None:
    text = """rules:
  - name: second
    priority: 5
    description: later
    condition: 'true'
    action: {type: chain, chain: escalate}
  - name: first
    priority: 1
    enabled: false
    condition: action.payload.priority > 100
    action: {type: schedule, delay_seconds: 60}
    timezone: Europe/Paris
    mute_time_intervals: [nights]
    active_time_intervals: [office]
"""
    rules = cel_rules(text)
    first, second = rules.rules
    assert [first.name, second.name] == ["first", "second"]
    assert str(first.source) == "Yaml { file: None }"
    assert first.enabled is False and first.timezone == "Europe/Paris"
    assert first.mute_time_intervals == ["nights"] and first.active_time_intervals == ["office"]
    assert first.action.to_dict() == {"type": "schedule", "delay_seconds": 60}
    assert second.description == "later"
    assert rules.evaluate(make_action()).to_dict() == {
        "verdict": "chain",
        "rule": "second",
        "chain": "escalate",
    }


def test_metadata_is_not_read() -> None:
    text = "rules:\n  - {name: n, condition: 'true', metadata: {llm_policy: strict}, action: {type: deny}}\n"
    rules = cel_rules(text)
    assert rules.rules[0].metadata == {}
    assert any("metadata" in w for w in rules.warnings)


@pytest.mark.parametrize(
    "action",
    [
        "{type: allow}",
        "{type: deny}",
        "{type: deduplicate}",
        "{type: suppress}",
        "{type: reroute, target_provider: sms}",
        "{type: throttle, max_count: 1, window_seconds: 1}",
        "{type: modify, changes: {a: 1}}",
        "{type: chain, chain: c}",
        "{type: schedule, delay_seconds: 5}",
    ],
)
def test_allowed_action_types(action: str) -> None:
    assert len(cel_rules(one_rule("true", action))) == 1


@pytest.mark.parametrize(
    ("action", "tag"),
    [
        ("{type: group, group_by: [x]}", "group"),
        ("{type: state_machine, state_machine: alerts}", "state_machine"),
        ("{type: request_approval, notify_provider: slack}", "request_approval"),
        ("{type: nope}", "nope"),
    ],
)
def test_other_action_types_are_unknown_variants(action: str, tag: str) -> None:
    message = load_error(one_rule("true", action))
    assert f"unknown variant `{tag}`" in message
    assert "CEL rule file parse error" in message


@pytest.mark.parametrize(
    ("condition", "source"),
    [("true", "true"), ("1", "1"), ("x", "x"), ("1.5", "1.5"), ("null", "null")],
)
def test_any_scalar_condition_is_expression_text(condition: str, source: str) -> None:
    rules = cel_rules(f"rules:\n  - {{name: n, condition: {condition}, action: {{type: deny}}}}\n")
    assert rules.rules[0].condition.to_source() == source


def test_envelope_errors() -> None:
    assert "CEL rule file parse error: missing field `rules`" in load_error("not_rules: []\n")
    assert "missing field `condition`" in load_error("rules:\n  - {name: n, action: {type: deny}}\n")
    message = load_error("rules:\n  - {name: n, condition: {field: x, eq: 1}, action: {type: deny}}\n")
    assert "CEL rule file parse error" in message and "expected a string" in message
    assert len(cel_rules("rules: []\n")) == 0


def test_expression_error_names_rule_file_and_key(tmp_path: Path) -> None:
    path = tmp_path / "bad.cel"
    path.write_text(one_rule("items.exists(i, i > 1)", name="x"))
    with pytest.raises(RuleLoadError) as info:
        load_rules(path)
    err = info.value
    assert "parse error: CEL construct not supported: macro 'exists'" in str(err)
    assert err.rule == "x" and err.file == str(path) and err.key == "condition"
    assert str(path) in str(err)


def test_cel_files_by_extension_and_directory(tmp_path: Path) -> None:
    (tmp_path / "a.cel").write_text(one_rule('action.action_type == "spam"', "{type: suppress}", "cel-rule"))
    (tmp_path / "b.yaml").write_text(
        "rules:\n  - {name: yaml-rule, priority: 1, condition: {field: action.tenant, eq: t2}, "
        "action: {type: deny}}\n"
    )
    by_file = load_rules(tmp_path / "a.cel")
    assert str(by_file.rules[0].source) == f'Yaml {{ file: Some("{tmp_path / "a.cel"}") }}'
    both = load_rules_dir(tmp_path)
    assert both.names() == ["cel-rule", "yaml-rule"]
    assert both.evaluate(make_action(action_type="spam")).rule == "cel-rule"
    assert both.evaluate(make_action(tenant="t2")).rule == "yaml-rule"


def test_trace_displays_cel_conditions() -> None:
    rules = cel_rules(one_rule('!(action.action_type == "spam") && size(action.payload.to) > 3'))
    trace = rules.evaluate_with_trace(make_action(), now=NOW).to_dict()
    entry = trace["trace"][0]
    assert entry["condition_display"] == '(!(action.action_type == "spam") && (len(action.payload.to) > 3))'
    assert entry["result"] == "matched" and trace["verdict"] == "deny"


def test_has_active_event_from_cel_file() -> None:
    rules = cel_rules(
        one_rule('has_active_event("cluster_down", action.metadata.cluster)', "{type: suppress}")
    )
    state = {"notifications:tenant-1:active_events:cluster_down:c1": "firing"}
    assert rules.evaluate(make_action(metadata={"cluster": "c1"}), state=state).kind == "suppress"
    assert rules.evaluate(make_action(metadata={"cluster": "c2"}), state=state).rule is None


# --------------------------------------------------------------------------- CEL and YAML agree


EQUIVALENT = [
    (
        "{all: [{field: action.action_type, eq: send_email}, {field: action.payload.priority, gt: 3}]}",
        'action.action_type == "send_email" && action.payload.priority > 3',
    ),
    (
        "{field: action.payload.to, ends_with: '@example.com'}",
        'action.payload.to.endsWith("@example.com")',
    ),
    ("{field: action.tenant, in_list: [t1, t2]}", 'action.tenant in ["t1", "t2"]'),
    ("{field: action.payload.body, contains: x}", 'action.payload.body.contains("x")'),
    ("{field: action.payload.priority, gte: 2.0}", "action.payload.priority >= 2.0"),
]
ACTIONS = [
    make_action(),
    make_action(action_type="spam", tenant="t1", payload={"priority": 1, "to": "a@example.com", "body": "x"}),
    make_action(tenant="t2", payload={"priority": 2.5, "to": "b@other.org", "body": ["x", "y"]}),
    make_action(payload={"priority": "high", "to": 5, "body": None}),
    make_action(payload={}),
    make_action(payload="not-an-object"),
]


def _outcome(rules: RuleSet, action: Action) -> str:
    try:
        return rules.evaluate(action).kind
    except RuleEvaluationError as exc:
        return "error: " + str(exc).split(" (", 1)[0]


@pytest.mark.parametrize(("yaml_cond", "cel_cond"), EQUIVALENT)
def test_cel_and_yaml_conditions_agree(yaml_cond: str, cel_cond: str) -> None:
    yaml_rules = load_rules(f"rules:\n  - {{name: n, condition: {yaml_cond}, action: {{type: deny}}}}\n")
    cel = cel_rules(one_rule(cel_cond))
    for action in ACTIONS:
        assert _outcome(cel, action) == _outcome(yaml_rules, action), action


# ----------------------------------------------------------------------- CEL inside YAML rules (extension)


YAML_WITH_CEL = """rules:
  - name: top-level
    priority: 1
    condition: {cel: 'action.payload.priority > 3 && has(action.payload.to)'}
    action: {type: deny}
  - name: in-a-group
    priority: 2
    condition:
      all:
        - {field: action.action_type, eq: send_email}
        - {cel: "action.payload.to.endsWith('@x.com')"}
    action: {type: suppress}
  - name: negated
    priority: 3
    condition: {not: {cel: 'action.tenant in ["t1", "t2"]'}}
    action: {type: reroute, target_provider: backup}
"""


def test_cel_condition_inside_yaml_rules() -> None:
    rules = load_rules(YAML_WITH_CEL)
    assert [r.condition.to_source() for r in rules.rules] == [
        "((action.payload.priority > 3) && has(action.payload.to))",
        'all((action.action_type == "send_email") && (action.payload.to ends_with "@x.com"))',
        '!(action.tenant in ["t1", "t2"])',
    ]
    assert rules.warnings == []
    assert rules.evaluate(make_action()).rule == "top-level"
    assert rules.evaluate(make_action(payload={"priority": 1, "to": "a@x.com"})).rule == "in-a-group"
    assert rules.evaluate(make_action(payload={"priority": 1, "to": "a@y.com"})).rule == "negated"
    assert rules.evaluate(make_action(tenant="t1", payload={"priority": 1, "to": "a@y.com"})).rule is None


@pytest.mark.parametrize(
    ("condition", "message", "key"),
    [
        (
            '{cel: "a.exists(x, x)"}',
            "parse error: CEL construct not supported: macro 'exists'",
            "condition.cel",
        ),
        ('{all: [{cel: ""}]}', "parse error: empty expression", "condition.all[0].cel"),
        ('{cel: "a and b"}', "unexpected trailing input", "condition.cel"),
        ("{cel: 5}", "`cel` must be a string", "condition.cel"),
    ],
)
def test_cel_inside_yaml_errors(condition: str, message: str, key: str) -> None:
    with pytest.raises(RuleLoadError) as info:
        load_rules(f"rules:\n  - {{name: n, condition: {condition}, action: {{type: deny}}}}\n")
    assert message in str(info.value)
    assert info.value.rule == "n" and info.value.key == key


def test_upstream_yaml_shapes_win_over_cel_key() -> None:
    # `cel` is tried after every upstream shape, so a field check with a stray `cel` key keeps its meaning.
    rules = load_rules(
        "rules:\n  - {name: n, condition: {field: action.tenant, eq: x, cel: 'true'}, action: {type: deny}}\n"
    )
    assert rules.rules[0].condition.to_source() == '(action.tenant == "x")'
    assert any("cel" in w for w in rules.warnings)


def test_precedence_differences_are_load_warnings() -> None:
    text = one_rule("action.payload.priority == 5 < true", name="x")
    rules = cel_rules(text)
    (warning,) = rules.warnings
    assert warning.startswith(
        "file <string>, rule 'x', key 'condition': 'action.payload.priority == 5 < true'"
    )
    assert "in the Rust gateway" in warning
    with pytest.raises(RuleLoadError, match="strict mode"):
        load_rules(text, format="cel", strict=True)
    assert cel_rules(one_rule("action.payload.priority == (5 < true)")).warnings == []

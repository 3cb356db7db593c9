"""YAML 1.2 scalar typing and the location-dependent strictness of rules.md §3."""

from __future__ import annotations

import math

import pytest

from acteon import RuleLoadError
from acteon.rules import load_rules
from acteon.rules._yaml_loader import compose, resolve_plain, to_value

from ._helpers import action, one_rule


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", None),
        ("~", None),
        ("null", None),
        ("Null", None),
        ("NULL", None),
        ("true", True),
        ("True", True),
        ("TRUE", True),
        ("false", False),
        ("FALSE", False),
        ("yes", "yes"),
        ("no", "no"),
        ("on", "on"),
        ("off", "off"),
        ("y", "y"),
        ("n", "n"),
        ("0", 0),
        ("42", 42),
        ("+42", 42),
        ("-42", -42),
        ("-0", 0),
        ("0x10", 16),
        ("0o17", 15),
        ("0b101", 5),
        ("-0x10", -16),
        ("+0x10", 16),
        ("007", "007"),
        ("0123", "0123"),
        ("-007", "-007"),
        ("1.5", 1.5),
        ("-2.0", -2.0),
        ("1e3", 1000.0),
        ("1E-3", 0.001),
        (".5", 0.5),
        ("5.", 5.0),
        ("+1.5", 1.5),
        ("007.5", 7.5),
        ("1_000", "1_000"),
        ("12:30", "12:30"),
        ("2026-01-01", "2026-01-01"),
        ("inf", "inf"),
        ("nan", "nan"),
        ("infinity", "infinity"),
        ("1e400", "1e400"),
        ("0X10", "0X10"),
        ("18446744073709551615", 18446744073709551615),
        ("1" * 50, float("1" * 50)),
    ],
)
def test_plain_scalar_resolution(text: str, expected: object) -> None:
    value = resolve_plain(text)
    assert value == expected
    assert type(value) is type(expected)


def test_special_floats() -> None:
    for text in (".inf", ".Inf", ".INF", "+.inf"):
        assert resolve_plain(text) == math.inf
    for text in ("-.inf", "-.Inf", "-.INF"):
        assert resolve_plain(text) == -math.inf
    for text in (".nan", ".NaN", ".NAN"):
        assert math.isnan(resolve_plain(text))


def test_quoted_and_block_scalars_are_strings() -> None:
    node = compose("a: '5'\nb: \"true\"\nc: |\n  007\nd: 5\ne: yes\n")
    assert node is not None
    assert to_value(node) == {"a": "5", "b": "true", "c": "007\n", "d": 5, "e": "yes"}


def test_map_values_are_sorted_and_nan_becomes_null() -> None:
    node = compose("{b: 1, a: .nan}")
    assert node is not None
    value = to_value(node)
    assert list(value) == ["a", "b"]
    assert value["a"] is None


def test_multiple_documents_are_rejected() -> None:
    with pytest.raises(RuleLoadError, match=r"YAML parse error.*more than one document"):
        load_rules("rules: []\n---\nrules: []\n")


def test_syntax_error_is_a_yaml_parse_error() -> None:
    with pytest.raises(RuleLoadError, match=r"parse error: YAML parse error: .*line"):
        load_rules("rules: [\n")


def test_empty_text_misses_rules() -> None:
    with pytest.raises(RuleLoadError, match=r"missing field `rules`"):
        load_rules("")


def test_duplicate_keys_are_rejected() -> None:
    with pytest.raises(RuleLoadError, match=r"duplicate entry"):
        load_rules("rules:\n  - {name: a, name: b, condition: {all: []}, action: {type: allow}}\n")


# --------------------------------------------------------------------------- rule-level fields


def _rule(extra: str) -> str:
    return f"rules:\n  - {{condition: {{all: []}}, action: {{type: allow}}, {extra}}}\n"


@pytest.mark.parametrize(
    ("name_text", "expected"),
    [("123", "123"), ("0x10", "0x10"), ("true", "true"), ("~", "~"), ("1e3", "1e3"), ("'quoted'", "quoted")],
)
def test_rule_name_keeps_source_text(name_text: str, expected: str) -> None:
    assert load_rules(_rule(f"name: {name_text}")).rules[0].name == expected


def test_name_mapping_is_an_error() -> None:
    with pytest.raises(RuleLoadError, match=r"YAML parse error"):
        load_rules(_rule("name: {a: 1}"))


@pytest.mark.parametrize(("text", "expected"), [("5", 5), ("-3", -3), ("+2", 2), ("0x10", 16)])
def test_priority_plain_integers(text: str, expected: int) -> None:
    assert load_rules(_rule(f"name: n, priority: {text}")).rules[0].priority == expected


@pytest.mark.parametrize("text", ['"5"', "1.5", "007", "2147483648", "~", "yes"])
def test_priority_rejects_non_integers(text: str) -> None:
    with pytest.raises(RuleLoadError, match=r"YAML parse error") as info:
        load_rules(_rule(f"name: n, priority: {text}"))
    assert info.value.key == "priority"


@pytest.mark.parametrize(("text", "expected"), [("false", False), ("True", True), ("FALSE", False)])
def test_enabled_plain_bools(text: str, expected: bool) -> None:
    assert load_rules(_rule(f"name: n, enabled: {text}")).rules[0].enabled is expected


@pytest.mark.parametrize("text", ['"false"', "yes", "no", "0", "~"])
def test_enabled_rejects_non_bools(text: str) -> None:
    with pytest.raises(RuleLoadError, match=r"YAML parse error"):
        load_rules(_rule(f"name: n, enabled: {text}"))


def test_optional_text_fields() -> None:
    rule = load_rules(_rule("name: n, description: ~, timezone: ~")).rules[0]
    assert rule.description is None and rule.timezone is None
    rule = load_rules(
        _rule("name: n, description: 42, timezone: UTC, metadata: {llm_policy: 5, x: yes}")
    ).rules[0]
    assert rule.description == "42"
    assert rule.timezone == "UTC"
    assert rule.metadata == {"llm_policy": "5", "x": "yes"}


def test_time_interval_lists() -> None:
    rule = load_rules(_rule("name: n, mute_time_intervals: [nights, 5], active_time_intervals: [biz]")).rules[
        0
    ]
    assert rule.mute_time_intervals == ["nights", "5"]
    assert rule.active_time_intervals == ["biz"]


# --------------------------------------------------------------------------- inside condition / action


@pytest.mark.parametrize(
    "cond",
    [
        "{field: action.payload.x, contains: 5}",
        "{field: action.payload.x, starts_with: true}",
        "{field: action.payload.x, matches: 1.5}",
        "{field: action.payload.x, in_list: a}",
        "{field: 5, eq: 1}",
        "{field: action.payload.x, eq: 18446744073709551616}",
        "{state_seen: k, within_seconds: -1}",
        "{state_seen: k, within_seconds: 1.5}",
        "{semantic_match: t, threshold: '0.5'}",
    ],
)
def test_condition_values_are_typed_after_resolution(cond: str) -> None:
    with pytest.raises(RuleLoadError, match=r"YAML parse error"):
        one_rule(cond)


@pytest.mark.parametrize(
    "act",
    [
        "{type: reroute, target_provider: 123}",
        "{type: reroute, target_provider: ~}",
        "{type: throttle, max_count: 1.5, window_seconds: 1}",
        "{type: throttle, max_count: -1, window_seconds: 1}",
        "{type: throttle, max_count: '5', window_seconds: 1}",
        "{type: throttle, max_count: true, window_seconds: 1}",
        "{type: group, group_by: a}",
        "{type: state_machine, state_machine: m, fingerprint_fields: [1]}",
        "{type: 5}",
    ],
)
def test_action_values_are_typed_after_resolution(act: str) -> None:
    with pytest.raises(RuleLoadError, match=r"YAML parse error"):
        one_rule("{all: []}", act)


def test_operator_literal_typing() -> None:
    # `eq: 0x10` is the int 16, `eq: "5"` a string, `eq: 1e3` a float.
    assert one_rule("{field: action.payload.p, eq: 0x10}").evaluate(action(payload={"p": 16})).kind == "deny"
    assert one_rule('{field: action.payload.p, eq: "5"}').evaluate(action(payload={"p": 5})).kind == "allow"
    assert one_rule("{field: action.payload.p, eq: 1e3}").evaluate(action(payload={"p": 1000})).kind == "deny"
    assert (
        one_rule("{field: action.payload.p, eq: yes}").evaluate(action(payload={"p": "yes"})).kind == "deny"
    )


def test_u64_literal_becomes_float() -> None:
    rules = one_rule("{field: action.payload.p, eq: 18446744073709551615}")
    # Rust prints the f64 with its shortest digits, zero-padded.
    assert rules.rules[0].condition.to_source() == "(action.payload.p == 18446744073709552000)"
    assert rules.evaluate(action(payload={"p": 2**64 - 1})).kind == "deny"


def test_nan_operator_value_is_a_null_literal() -> None:
    rules = one_rule("{field: action.payload.p, eq: .nan}")
    assert rules.rules[0].condition.to_source() == "(action.payload.p == null)"
    assert rules.evaluate(action(payload={})).kind == "deny"


def test_anchors_work_and_merge_keys_are_not_expanded() -> None:
    text = """
base: &cond {field: action.action_type, eq: send_email}
rules:
  - name: a
    condition: *cond
    action: {type: deny}
  - name: b
    condition: {<<: *cond, field: action.tenant, eq: t1}
    action: {type: allow}
"""
    rules = load_rules(text)
    assert rules.rules[0].condition.to_source() == '(action.action_type == "send_email")'
    assert rules.rules[1].condition.to_source() == '(action.tenant == "t1")'
    assert any("'<<'" in w for w in rules.warnings)
    assert any("'base'" in w for w in rules.warnings)


def test_changes_keep_any_value() -> None:
    rules = one_rule("{all: []}", "{type: modify, changes: {b: 1, a: [x, ~], c: yes}}")
    assert rules.rules[0].action.params["changes"] == {"a": ["x", None], "b": 1, "c": "yes"}
    rules = one_rule("{all: []}", "{type: modify, changes: ~}")
    assert rules.evaluate(action()).changes is None

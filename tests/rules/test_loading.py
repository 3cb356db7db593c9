"""Loading: errors that name file/rule/key, warnings, strict mode, extensions, directories."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from acteon import RuleLoadError
from acteon.rules import frontend_available, load_rules, load_rules_dir

from ._helpers import action, cond, one_rule


def test_load_error_names_rule_and_key() -> None:
    text = """
rules:
  - {name: ok, condition: {all: []}, action: {type: allow}}
  - name: broken
    condition: {all: [{field: action.payload.x, regex: "^a"}]}
    action: {type: deny}
"""
    with pytest.raises(RuleLoadError) as info:
        load_rules(text)
    err = info.value
    assert str(err).startswith("parse error: field operation has no comparison operator")
    assert err.rule == "broken"
    assert err.key == "condition.all[0]"
    assert "rule 'broken'" in str(err) and "key 'condition.all[0]'" in str(err)


def test_shape_error_names_file_rule_and_key(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        "rules:\n  - {name: n1, condition: {field: action.x, contains: 5}, action: {type: deny}}\n"
    )
    with pytest.raises(RuleLoadError) as info:
        load_rules(path)
    err = info.value
    assert str(err).startswith(f"parse error: YAML parse error in {path}: ")
    assert (err.file, err.rule, err.key) == (str(path), "n1", "condition.contains")


def test_unnamed_rule_is_named_by_index() -> None:
    with pytest.raises(RuleLoadError) as info:
        load_rules("rules:\n  - {priority: 1, condition: {all: []}, action: {type: allow}}\n")
    assert "missing field `name`" in str(info.value)
    assert info.value.rule == "#0"


@pytest.mark.parametrize(
    ("act", "message"),
    [
        ("{type: require_approval}", "unknown variant `require_approval`, expected one of `allow`, `deny`"),
        ("{type: throttle, max_count: 1}", "missing field `window_seconds`"),
        ("{type: reroute}", "missing field `target_provider`"),
        ("{type: modify}", "missing field `changes`"),
        ("{type: group}", "missing field `group_by`"),
        ("{type: request_approval}", "missing field `notify_provider`"),
        ("{type: state_machine}", "missing field `state_machine`"),
        ("{target_provider: x}", "missing field `type`"),
    ],
)
def test_action_errors(act: str, message: str) -> None:
    with pytest.raises(RuleLoadError, match=r"YAML parse error") as info:
        one_rule("{all: []}", act)
    assert message in str(info.value)


def test_action_defaults_and_verdicts() -> None:
    cases = {
        "{type: deduplicate}": ("deduplicate", {"ttl_seconds": None}),
        "{type: group, group_by: [metadata.cluster]}": (
            "group",
            {
                "group_by": ["metadata.cluster"],
                "group_wait_seconds": 30,
                "group_interval_seconds": 300,
                "repeat_interval_seconds": None,
                "max_group_size": 100,
                "template": None,
            },
        ),
        "{type: request_approval, notify_provider: slack}": (
            "request_approval",
            {"notify_provider": "slack", "timeout_seconds": 3600, "message": None},
        ),
        "{type: state_machine, state_machine: alert}": (
            "state_machine",
            {"state_machine": "alert", "fingerprint_fields": []},
        ),
        "{type: chain, chain: onboarding}": ("chain", {"chain": "onboarding"}),
        "{type: schedule, delay_seconds: 0}": ("schedule", {"delay_seconds": 0}),
        "{type: suppress, reason: ignored}": ("suppress", {}),
    }
    for act, (kind, params) in cases.items():
        verdict = one_rule("{all: []}", act).evaluate(action())
        assert verdict.kind == kind
        assert verdict.rule == "r"
        assert verdict.to_dict() == {"verdict": kind, "rule": "r", **params}
        for key, value in params.items():
            assert getattr(verdict, key) == value


def test_unknown_keys_warn_everywhere(caplog: pytest.LogCaptureFixture) -> None:
    text = """
version: 2
rules:
  - name: r
    tags: [a]
    condition:
      all:
        - {field: action.action_type, eq: x, all: [], equals: y}
      any: []
    action: {type: throttle, max_count: 1, window_seconds: 1, message: hi}
"""
    with caplog.at_level(logging.WARNING, logger="acteon.rules"):
        rules = load_rules(text)
    keys = [w.split("key '")[1].split("'")[0] for w in rules.warnings]
    assert keys == [
        "version",
        "tags",
        "condition.all[0].all",
        "condition.all[0].equals",
        "condition.any",
        "action.message",
    ]
    assert all("file <string>" in w for w in rules.warnings)
    assert all("rule 'r'" in w for w in rules.warnings[1:])
    assert len([r for r in caplog.records if r.name == "acteon.rules"]) == len(rules.warnings)
    with pytest.raises(RuleLoadError, match=r"strict mode: .*'version'"):
        load_rules(text, strict=True)


def test_shape_order_top_level_vs_list_item() -> None:
    assert cond("{field: action.action_type, eq: nope, all: []}").to_source() == "all()"
    assert cond("{all: [{field: a.b, eq: 1, all: []}], any: [{all: []}]}").to_source() == "all((a.b == 1))"
    # A failing shape lets later shapes try: the bad `contains` falls through to the `all` group.
    assert cond("{all: [{field: a.b, contains: 5, all: []}]}").to_source() == "all(all())"
    assert cond("{any: [{all: []}], field: x}").to_source() == "any(all())"


@pytest.mark.parametrize(
    "condition",
    ["{call: has_active_event, args: [x]}", "{feild: action.x, eq: 1}", "{}", "{all: 5}", "{not: 5}"],
)
def test_unrecognised_conditions_are_load_errors(condition: str) -> None:
    with pytest.raises(RuleLoadError, match=r"YAML parse error"):
        one_rule(condition)


def test_not_extension() -> None:
    rules = one_rule("{not: {field: action.action_type, eq: spam}}")
    assert rules.evaluate(action()).kind == "deny"
    assert rules.evaluate(action(action_type="spam")).kind == "allow"
    nested = one_rule(
        "{any: [{not: {all: [{field: action.tenant, eq: t1}]}}, {field: action.tenant, eq: x}]}"
    )
    assert (
        nested.rules[0].condition.to_source()
        == 'any(!all((action.tenant == "t1")) || (action.tenant == "x"))'
    )
    assert nested.evaluate(action()).kind == "allow"
    # An upstream-valid shape keeps its meaning: `field` wins over `not` in the same mapping.
    assert cond("{field: a.b, eq: 1, not: {all: []}}").to_source() == "(a.b == 1)"


def _nest(depth: int) -> str:
    text = "{field: action.action_type, eq: send_email}"
    for _ in range(depth):
        text = f"{{all: [{text}]}}"
    return text


def test_nesting_limit() -> None:
    assert one_rule(f"{{all: [{_nest(16)}]}}").evaluate(action()).kind == "deny"
    with pytest.raises(RuleLoadError, match=r"parse error: condition nesting depth exceeded maximum of 16"):
        one_rule(f"{{all: [{_nest(17)}]}}")
    with pytest.raises(RuleLoadError, match=r"condition nesting depth exceeded maximum of 16"):
        one_rule(f"{{all: [{_nest(200)}]}}")


def test_first_failing_rule_stops_loading_and_shape_errors_win() -> None:
    text = """
rules:
  - {name: a, condition: {field: "action..x", eq: 1}, action: {type: deny}}
  - {name: b, condition: {field: action.x, eq: 1}, action: {type: nope}}
"""
    # Every rule is read before any is compiled, as upstream: b's shape error surfaces first.
    with pytest.raises(RuleLoadError, match=r"unknown variant `nope`") as info:
        load_rules(text)
    assert info.value.rule == "b"


def test_priority_order_and_management() -> None:
    text = """
rules:
  - {name: c, priority: 5, condition: {all: []}, action: {type: deny}}
  - {name: a, priority: -1, condition: {field: action.tenant, eq: zz}, action: {type: allow}}
  - {name: b, priority: 5, condition: {all: []}, action: {type: suppress}}
  - {name: b, priority: 9, condition: {all: []}, action: {type: allow}}
"""
    rules = load_rules(text)
    assert rules.names() == ["a", "c", "b", "b"]
    assert [r.name for r in rules] == rules.names() and len(rules) == 4
    assert rules.evaluate(action()).rule == "c"
    assert rules.disable_rule("c") is True
    assert rules.evaluate(action()).kind == "suppress"
    assert rules.disable_rule("b") is True  # the first "b" only
    assert rules.evaluate(action()).to_dict() == {"verdict": "allow", "rule": "b"}
    assert rules.enable_rule("c") and not rules.enable_rule("missing")
    assert rules.rule_by_name("b") is not None and rules.rule_by_name("b").priority == 5  # type: ignore[union-attr]
    version = rules.rules_version()
    rules.disable_rule("a")
    assert rules.rules_version() != version


def test_rule_sets_do_not_share_enabled_state() -> None:
    rules = one_rule("{all: []}")
    copy = type(rules)(rules.rules)
    copy.disable_rule("r")
    assert rules.evaluate(action()).kind == "deny"
    assert copy.evaluate(action()).kind == "allow"
    merged = type(rules).merge(rules, one_rule("{all: []}", "{type: suppress}"))
    assert merged.names() == ["r", "r"] and merged.evaluate(action()).kind == "deny"


def test_dispatch_tables_keep_first_match_order() -> None:
    text = "rules:\n" + "".join(
        f"  - {{name: r{i}, priority: {i}, condition: {c}, action: {{type: {a}}}}}\n"
        for i, (c, a) in enumerate(
            [
                ("{field: action.action_type, eq: a}", "deny"),
                ("{field: action.action_type, in_list: [b, a, c]}", "suppress"),
                ("{field: action.action_type, eq: c}", "deny"),
                ("{field: action.payload.n, gt: 1}", "allow"),
                ("{field: action.action_type, eq: d}", "suppress"),
                ("{field: action.provider, eq: sms}", "deny"),
            ]
        )
    )
    rules = load_rules(text)
    assert rules.evaluate(action(action_type="a")).rule == "r0"
    assert rules.evaluate(action(action_type="b")).rule == "r1"
    assert rules.evaluate(action(action_type="c")).rule == "r1"
    with pytest.raises(Exception, match=r"cannot compare string"):
        rules.evaluate(action(action_type="d", payload={"n": "x"}))
    assert rules.evaluate(action(action_type="d", payload={"n": 0})).rule == "r4"
    assert rules.evaluate(action(action_type="z", provider="sms", payload={"n": 0})).rule == "r5"
    rules.disable_rule("r0")
    assert rules.evaluate(action(action_type="a")).rule == "r1"


def test_load_rules_dir(tmp_path: Path) -> None:
    (tmp_path / "b.yml").write_text(
        "rules:\n  - {name: b, priority: 1, condition: {all: []}, action: {type: deny}}\n"
    )
    (tmp_path / "a.yaml").write_text(
        "rules:\n  - {name: a, priority: 1, condition: {all: []}, action: {type: allow}}\n"
    )
    (tmp_path / ".yaml").write_text("not: [valid")
    (tmp_path / "notes.txt").write_text("ignored")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "c.yaml").write_text("broken: [")
    rules = load_rules_dir(tmp_path)
    assert rules.names() == ["a", "b"]
    assert str(rules.rules[0].source) == f'Yaml {{ file: Some("{tmp_path / "a.yaml"}") }}'
    assert load_rules(str(tmp_path)).names() == ["a", "b"]


def test_load_rules_dir_is_atomic(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("rules:\n  - {name: a, condition: {all: []}, action: {type: allow}}\n")
    (tmp_path / "b.yaml").write_text("rules:\n  - {name: b, condition: {all: []}, action: {type: nope}}\n")
    with pytest.raises(RuleLoadError) as info:
        load_rules_dir(tmp_path)
    assert info.value.file == str(tmp_path / "b.yaml")
    with pytest.raises(RuleLoadError, match=r"cannot read directory"):
        load_rules_dir(tmp_path / "missing")


def test_load_rules_paths_and_formats(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text("rules:\n  - {name: a, condition: {all: []}, action: {type: allow}}\n")
    assert load_rules(str(path)).names() == ["a"]
    assert load_rules(path, format="yaml").names() == ["a"]
    with pytest.raises(RuleLoadError, match=r"cannot read"):
        load_rules(tmp_path / "missing.yaml")
    with pytest.raises(RuleLoadError, match=r"cannot read"):
        load_rules("missing/rules.yaml")
    with pytest.raises(RuleLoadError, match=r"unknown rule format"):
        load_rules("rules: []", format="toml")


def test_format_sniffing() -> None:
    if not frontend_available("cel"):
        pytest.skip("CEL frontend not built yet")
    text = "rules:\n  - {name: a, condition: 'action.tenant == \"t1\"', action: {type: deny}}\n"
    assert load_rules(text).evaluate(action()).kind == "deny"

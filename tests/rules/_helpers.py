"""Small builders shared by the rules tests."""

from __future__ import annotations

from typing import Any

from acteon import Action
from acteon.rules import RuleSet, ir, load_rules
from acteon.rules._yaml_frontend import compile_yaml_condition
from acteon.rules._yaml_loader import compose

NOW = "2026-01-15T12:00:00Z"  # a Thursday


def action(**fields: Any) -> Action:
    base: dict[str, Any] = {
        "namespace": "ns",
        "tenant": "t1",
        "provider": "email",
        "action_type": "send_email",
        "payload": {"to": "user@example.com", "priority": 5},
    }
    base.update(fields)
    return Action(**base)


def one_rule(condition: str, action_yaml: str = "{type: deny}", **rule_keys: str) -> RuleSet:
    """A rule set with one rule ``r`` whose condition is the YAML flow text ``condition``."""
    extra = "".join(f"    {k}: {v}\n" for k, v in rule_keys.items())
    return load_rules(f"rules:\n  - name: r\n    condition: {condition}\n    action: {action_yaml}\n{extra}")


def cond(text: str) -> ir.Expr:
    """Compile one YAML condition mapping (flow text) to IR."""
    node = compose(text)
    assert node is not None
    return compile_yaml_condition(node)


def expr_set(expr: ir.Expr) -> RuleSet:
    """A rule set whose single rule ``r`` has ``expr`` as its condition."""
    from acteon.rules import Rule, RuleAction

    return RuleSet([Rule("r", expr, RuleAction("deny"))])


def value_of(expr: ir.Expr, act: Action | None = None, **kwargs: Any) -> Any:
    """Evaluate an IR expression directly (its value, not a verdict)."""
    ctx = RuleSet._context(
        act or action(),
        kwargs.get("now"),
        kwargs.get("state"),
        kwargs.get("env"),
        kwargs.get("timezone"),
        kwargs.get("embedding"),
        kwargs.get("wasm"),
    )
    return expr.compile()(ctx)

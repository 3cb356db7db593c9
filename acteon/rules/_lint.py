"""Static checks for conditions that can only fail when evaluated (DECISIONS D9).

Rule evaluation fails closed: a type error in a reached rule fails the whole
dispatch. Many such errors are visible in the condition alone -- a metadata
label (always a string) ordered against a number, ``contains`` on an hour, a
regex literal that does not compile. :func:`lint_rule` walks the IR and
describes each of them; ``acteon rules validate`` prints them as warnings.

The checks only use what is certain from the tree: a value whose type is not
known statically (a payload field, an environment variable) is never flagged.
"""

from __future__ import annotations

from collections.abc import Iterable

from acteon.rules import ir
from acteon.rules._builtins import BUILTINS
from acteon.rules._errors import InvalidRegex
from acteon.rules._model import Rule
from acteon.rules._regex import compile_regex
from acteon.rules._time import is_valid_zone

B = ir.BinaryOp

# Static types: what a node is known to evaluate to. "label" is a metadata
# label: a string when present, null when absent -- never a number.
INT, FLOAT, STRING, BOOL, NULL, LIST, MAP, LABEL = "int", "float", "string", "bool", "null", "list", "map", "label"
_NUMERIC = frozenset({INT, FLOAT})

_TIME_FIELDS = {
    "hour": INT, "minute": INT, "second": INT, "day": INT, "month": INT, "year": INT,
    "weekday": STRING, "weekday_num": INT, "timestamp": INT,
}
# Action attributes that are always strings (rules.md §8.1).
_ACTION_STRINGS = frozenset({"id", "namespace", "tenant", "provider", "action_type"})
_LABEL_MAPS = frozenset({"metadata", "trace_context"})
_CALL_TYPES = {
    "len": INT, "to_int": INT, "duration": INT, "now": INT, "abs": None, "min": None, "max": None,
    "lower": STRING, "upper": STRING, "to_string": STRING, "format": STRING,
    "contains": BOOL, "starts_with": BOOL, "ends_with": BOOL, "matches": BOOL,
}
_ORDERING = {B.LT, B.LE, B.GT, B.GE}
_STRING_OPS = {B.STARTS_WITH, B.ENDS_WITH, B.MATCHES}
_ARITHMETIC = {B.ADD, B.SUB, B.MUL, B.DIV, B.MOD}
_KNOWN_FUNCTIONS = frozenset(BUILTINS) | {"now"}


def _is_action_field(node: ir.Expr, names: Iterable[str]) -> bool:
    return (
        isinstance(node, ir.Field)
        and isinstance(node.base, ir.Ident)
        and node.base.name == "action"
        and node.name in names
    )


def static_type(node: ir.Expr) -> str | None:
    """The type ``node`` always evaluates to, or ``None`` when it is not known statically."""
    if isinstance(node, ir.Bool):
        return BOOL
    if isinstance(node, ir.Int):
        return INT
    if isinstance(node, ir.Float):
        return FLOAT
    if isinstance(node, ir.String):
        return STRING
    if isinstance(node, ir.Null):
        return NULL
    if isinstance(node, ir.List):
        return LIST
    if isinstance(node, ir.Map):
        return MAP
    if isinstance(node, ir.Ident):
        return INT if node.name == "now" else None
    if isinstance(node, ir.Field):
        base = node.base
        if isinstance(base, ir.Ident) and base.name == "time":
            return _TIME_FIELDS.get(node.name, NULL)
        if _is_action_field(node, _ACTION_STRINGS):
            return STRING
        if _is_action_field(base, _LABEL_MAPS):
            return LABEL
        return None
    if isinstance(node, ir.Index):
        if _is_action_field(node.base, _LABEL_MAPS) and isinstance(node.index, ir.String):
            return LABEL
        return None
    if isinstance(node, ir.StateCounter | ir.StateTimeSince):
        return INT
    if isinstance(node, ir.StateGet):
        return None  # a string or null
    if isinstance(node, ir.Call):
        return _CALL_TYPES.get(node.name)
    if isinstance(node, ir.Unary):
        if node.op is ir.UnaryOp.NOT:
            return BOOL
        inner = static_type(node.operand)
        return inner if inner in _NUMERIC else None
    if isinstance(node, ir.Binary):
        if node.op in _ARITHMETIC:
            left, right = static_type(node.left), static_type(node.right)
            if left in _NUMERIC and right in _NUMERIC:
                return INT if left == right == INT else FLOAT
            return STRING if node.op is B.ADD and left == right == STRING else None
        return BOOL if node.op not in (B.AND, B.OR) else None
    if isinstance(node, ir.All | ir.Any | ir.SemanticMatch | ir.WasmCall | ir.EventInState | ir.HasActiveEvent):
        return BOOL
    return None


def _describe(kind: str) -> str:
    if kind == LABEL:
        return "a metadata label (always a string, or null when absent)"
    if kind == NULL:
        return "null"
    return {INT: "an int", FLOAT: "a float"}.get(kind, f"a {kind}")


def _numeric_hint(node: ir.Expr) -> str:
    return f"; convert it first, e.g. to_int({node.to_source()}) in a CEL condition"


def _check_binary(node: ir.Binary) -> str | None:
    op = node.op
    left, right = static_type(node.left), static_type(node.right)
    if op in _ORDERING:
        for side, other, other_node in ((left, right, node.right), (right, left, node.left)):
            if side in _NUMERIC and other in (LABEL, STRING, BOOL, NULL, LIST, MAP):
                hint = _numeric_hint(other_node) if other == LABEL else ""
                return f"orders {_describe(other)} against a number: always a type error{hint}"
        for kind in (left, right):
            if kind in (BOOL, NULL, LIST, MAP):
                return f"orders {_describe(kind)}: only numbers and strings can be ordered"
        return None
    if op in _ARITHMETIC:
        if (left in _NUMERIC and right in (LABEL, STRING)) or (right in _NUMERIC and left in (LABEL, STRING)):
            culprit = node.left if left in (LABEL, STRING) else node.right
            kind = left if left in (LABEL, STRING) else right
            hint = _numeric_hint(culprit) if kind == LABEL else ""
            return f"does arithmetic on {_describe(str(kind))} and a number: always a type error{hint}"
        if op in (B.DIV, B.MOD) and isinstance(node.right, ir.Int | ir.Float) and node.right.val == 0:
            return "divides by zero: always an evaluation error"
        return None
    if op is B.CONTAINS or op in _STRING_OPS:
        if left in _NUMERIC or left in (BOOL, MAP, NULL) or (left == LIST and op is not B.CONTAINS):
            return f"applies '{op.value}' to {_describe(str(left))}: always a type error"
        if left in (STRING, LABEL) and right in _NUMERIC | {BOOL, LIST, MAP}:
            return f"applies '{op.value}' with {_describe(str(right))} as the argument: always a type error"
        if op is B.MATCHES and isinstance(node.right, ir.String):
            try:
                compile_regex(node.right.val)
            except InvalidRegex as exc:
                return f"uses a pattern that does not compile: {exc}"
        return None
    return None


def lint_condition(condition: ir.Expr) -> list[str]:
    """Problems in one condition, each as ``<sub-expression> <what goes wrong>``.

    A type or evaluation error only strikes when the sub-expression is reached
    (``&&``/``||`` short-circuit), but a rule that can never be evaluated
    without failing is almost always a mistake, so each is reported.
    """
    problems: list[str] = []
    for node in condition.walk():
        problem: str | None = None
        if isinstance(node, ir.Binary):
            problem = _check_binary(node)
        elif isinstance(node, ir.Call) and node.name not in _KNOWN_FUNCTIONS:
            problem = f"calls an unknown function: always 'undefined function: {node.name}'"
        elif (
            isinstance(node, ir.Field)
            and isinstance(node.base, ir.Ident)
            and node.base.name == "time"
            and node.name not in _TIME_FIELDS
        ):
            problem = f"is always null: 'time' has only {', '.join(_TIME_FIELDS)}"
        if problem is not None:
            text = f"{node.to_source()} {problem}"
            if text not in problems:
                problems.append(text)
    return problems


def lint_rule(rule: Rule) -> list[str]:
    """Warnings for one rule, in the ``file F, rule 'R', key 'K': ...`` form of load warnings."""
    file = rule.source.file or "<string>"
    where = f"file {file}, rule '{rule.name}'"
    out = [f"{where}, key 'condition': {p}" for p in lint_condition(rule.condition)]
    if rule.timezone is not None and not is_valid_zone(rule.timezone):
        out.append(
            f"{where}, key 'timezone': '{rule.timezone}' is not an IANA timezone name (names are "
            "case-sensitive): the rule fails with 'invalid timezone' whenever it is evaluated"
        )
    return out


def lint_rules(rules: Iterable[Rule]) -> list[str]:
    """:func:`lint_rule` over every rule (disabled ones too: they may be enabled later)."""
    out: list[str] = []
    for rule in rules:
        out.extend(lint_rule(rule))
    return out

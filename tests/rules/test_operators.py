"""Operator semantics (rules.md §8.2-8.4, §8.11 cheat-sheet, §13 pitfalls)."""

from __future__ import annotations

import math
from typing import Any

import pytest

from acteon import RuleEvaluationError
from acteon.rules import ir
from acteon.rules._errors import EvaluationError, RuleTypeError

from ._helpers import action, one_rule, value_of

B = ir.BinaryOp

# payload, condition, expected: "match" / "no" / an error prefix
MISSING = {"other": 1}
CASES: list[tuple[Any, str, str]] = [
    # missing leaf / null
    (MISSING, "{field: action.payload.x, eq: 1}", "no"),
    (MISSING, "{field: action.payload.x, ne: 1}", "match"),
    ({"x": None}, "{field: action.payload.x, ne: a}", "match"),
    (MISSING, "{field: action.payload.x, gt: 1}", "type error: cannot compare null and int"),
    (MISSING, "{field: action.payload.x, lte: a}", "type error: cannot compare null and string"),
    (
        MISSING,
        "{field: action.payload.x, contains: a}",
        "type error: contains: unsupported types null and string",
    ),
    (MISSING, "{field: action.payload.x, starts_with: a}", "type error: starts_with: unsupported types null"),
    (MISSING, "{field: action.payload.x, ends_with: a}", "type error: ends_with: unsupported types null"),
    (
        MISSING,
        "{field: action.payload.x, matches: a}",
        "type error: matches: unsupported types null and string",
    ),
    (MISSING, "{field: action.payload.x, in_list: [a, ~]}", "match"),
    (MISSING, "{field: action.payload.x, in_list: [a]}", "no"),
    # missing intermediate
    (MISSING, "{field: action.payload.x.y, eq: 1}", "type error: cannot access field 'y' on null"),
    (MISSING, "{field: action.payload.x.y, in_list: [~]}", "type error: cannot access field 'y' on null"),
    ({"x": "s"}, "{field: action.payload.x.y, eq: 1}", "type error: cannot access field 'y' on string"),
    ({"x": [1]}, "{field: action.payload.x.0, eq: 1}", "type error: cannot access field '0' on list"),
    ({"x": {"0": 1}}, "{field: action.payload.x.0, eq: 1}", "match"),
    ({"user-name": "a"}, "{field: action.payload.user-name, eq: a}", "match"),
    # string
    ({"x": "abc"}, "{field: action.payload.x, eq: abc}", "match"),
    ({"x": "5"}, "{field: action.payload.x, eq: 5}", "no"),
    ({"x": "b"}, "{field: action.payload.x, gt: a}", "match"),
    ({"x": "B"}, "{field: action.payload.x, gt: a}", "no"),
    ({"x": "é"}, "{field: action.payload.x, gt: z}", "match"),
    ({"x": "3"}, "{field: action.payload.x, gt: 2}", "type error: cannot compare string and int"),
    ({"x": "abc"}, "{field: action.payload.x, contains: bc}", "match"),
    ({"x": "abc"}, '{field: action.payload.x, contains: ""}', "match"),
    ({"x": "abc"}, "{field: action.payload.x, starts_with: ab, ends_with: bc}", "match"),
    ({"x": "abc"}, "{field: action.payload.x, matches: 'b.'}", "match"),
    ({"x": "abc"}, "{field: action.payload.x, matches: '^b'}", "no"),
    ({"x": "abc"}, "{field: action.payload.x, in_list: [x, abc]}", "match"),
    # numbers
    ({"x": 5}, "{field: action.payload.x, eq: 5.0}", "match"),
    ({"x": 5.0}, "{field: action.payload.x, eq: 5}", "match"),
    ({"x": 0.1 + 0.2}, "{field: action.payload.x, eq: 0.3}", "match"),  # absolute epsilon
    ({"x": 0.3001}, "{field: action.payload.x, eq: 0.3}", "no"),
    ({"x": 1e-17}, "{field: action.payload.x, eq: 0}", "match"),
    ({"x": 5}, "{field: action.payload.x, eq: '5'}", "no"),
    ({"x": 5}, "{field: action.payload.x, gt: 4.5}", "match"),
    ({"x": 4.5}, "{field: action.payload.x, lt: 5}", "match"),
    ({"x": 5}, "{field: action.payload.x, gte: 5, lte: 5}", "match"),
    ({"x": 5}, "{field: action.payload.x, gt: a}", "type error: cannot compare int and string"),
    (
        {"x": 5},
        "{field: action.payload.x, contains: a}",
        "type error: contains: unsupported types int and string",
    ),
    ({"x": 5}, "{field: action.payload.x, starts_with: a}", "type error: starts_with: unsupported types int"),
    ({"x": 5.5}, "{field: action.payload.x, matches: a}", "type error: matches: unsupported types float"),
    ({"x": 5}, "{field: action.payload.x, in_list: [5.0]}", "match"),
    ({"x": 5.0}, "{field: action.payload.x, in_list: [1, 5]}", "match"),
    ({"x": 2**63}, "{field: action.payload.x, gt: 9000000000000000000}", "match"),
    # beyond i64 the field is a float; the int literal converts to the same f64, as upstream
    ({"x": 2**63}, "{field: action.payload.x, gt: 9223372036854775806}", "no"),
    # bool is not int
    ({"x": True}, "{field: action.payload.x, eq: true}", "match"),
    ({"x": True}, "{field: action.payload.x, eq: 1}", "no"),
    ({"x": 1}, "{field: action.payload.x, eq: true}", "no"),
    ({"x": False}, "{field: action.payload.x, eq: ~, ne: 0}", "match"),
    ({"x": True}, "{field: action.payload.x, gt: 0}", "type error: cannot compare bool and int"),
    ({"x": True}, "{field: action.payload.x, in_list: [1]}", "no"),
    ({"x": 1}, "{field: action.payload.x, in_list: [true]}", "no"),
    ({"x": True}, "{field: action.payload.x, in_list: [true]}", "match"),
    ({"x": True}, "{field: action.payload.x, contains: t}", "type error: contains: unsupported types bool"),
    # list
    ({"x": ["a", "b"]}, "{field: action.payload.x, eq: [a, b]}", "match"),
    ({"x": [1]}, "{field: action.payload.x, eq: [1.0]}", "no"),
    ({"x": [{"a": 1}]}, "{field: action.payload.x, eq: [{a: 1}]}", "match"),
    ({"x": ["a", "b"]}, "{field: action.payload.x, contains: b}", "match"),
    ({"x": [1, 2]}, "{field: action.payload.x, contains: '1'}", "no"),
    ({"x": ["a"]}, "{field: action.payload.x, gt: 1}", "type error: cannot compare list and int"),
    (
        {"x": ["a"]},
        "{field: action.payload.x, starts_with: a}",
        "type error: starts_with: unsupported types list",
    ),
    ({"x": ["a"]}, "{field: action.payload.x, in_list: [[a]]}", "match"),
    ({"x": [1]}, "{field: action.payload.x, in_list: [[1.0]]}", "no"),
    # map
    ({"x": {"a": 1}}, "{field: action.payload.x, eq: {a: 1}}", "no"),
    ({"x": {}}, "{field: action.payload.x, ne: {}}", "match"),
    ({"x": {"a": 1}}, "{field: action.payload.x, in_list: [{a: 1}]}", "no"),
    ({"x": {"a": 1}}, "{field: action.payload.x, gt: 1}", "type error: cannot compare map and int"),
    (
        {"x": {"a": 1}},
        "{field: action.payload.x, contains: a}",
        "type error: contains: unsupported types map",
    ),
    # payloads that are not objects
    ("text", "{field: action.payload.x, eq: 1}", "type error: cannot access field 'x' on string"),
    (None, "{field: action.payload.x, in_list: [~]}", "type error: cannot access field 'x' on null"),
    ([1], "{field: action.payload.x, eq: 1}", "type error: cannot access field 'x' on list"),
]


@pytest.mark.parametrize(("payload", "condition", "expected"), CASES)
def test_yaml_operator_matrix(payload: Any, condition: str, expected: str) -> None:
    rules = one_rule(condition)
    act = action(payload=payload)
    if expected in ("match", "no"):
        assert rules.evaluate(act).kind == ("deny" if expected == "match" else "allow")
    else:
        with pytest.raises(RuleEvaluationError) as info:
            rules.evaluate(act)
        assert str(info.value).startswith(expected), str(info.value)
        assert info.value.rule == "r"
        assert info.value.field is not None and info.value.field.startswith("action.payload")


def test_operators_combine_in_fixed_order() -> None:
    rules = one_rule("{field: action.payload.x, in_list: [1], gt: a, eq: 1}")
    assert rules.rules[0].condition.to_source() == (
        'all((action.payload.x == 1) && (action.payload.x > "a") && (action.payload.x in [1]))'
    )
    # eq is false first, so the erroring gt is never reached.
    assert rules.evaluate(action(payload={"x": 2})).kind == "allow"
    with pytest.raises(RuleEvaluationError, match=r"cannot compare int and string"):
        rules.evaluate(action(payload={"x": 1}))


def test_metadata_labels_are_strings() -> None:
    act = action(metadata={"count": "3"})
    assert one_rule("{field: action.metadata.count, eq: '3'}").evaluate(act).kind == "deny"
    assert one_rule("{field: action.metadata.count, eq: 3}").evaluate(act).kind == "allow"
    with pytest.raises(RuleEvaluationError, match=r"cannot compare string and int"):
        one_rule("{field: action.metadata.count, gte: 3}").evaluate(act)
    assert one_rule("{field: action.metadata.absent, in_list: [~]}").evaluate(act).kind == "deny"
    with pytest.raises(RuleEvaluationError, match=r"cannot access field 'x' on string"):
        one_rule("{field: action.metadata.count.x, eq: 1}").evaluate(act)


def test_action_fields() -> None:
    act = action(
        id="abc",
        dedup_key="dk",
        created_at="2026-01-15T12:00:00.5Z",
        trace_context={"traceparent": "00-x"},
    )
    assert one_rule("{field: action.id, eq: abc}").evaluate(act).kind == "deny"
    assert one_rule("{field: action.dedup_key, eq: dk}").evaluate(act).kind == "deny"
    assert one_rule("{field: action.status, in_list: [~]}").evaluate(act).kind == "deny"
    assert one_rule("{field: action.created_at, eq: '2026-01-15T12:00:00.500Z'}").evaluate(act).kind == "deny"
    assert one_rule("{field: action.starts_at, in_list: [~]}").evaluate(act).kind == "deny"
    assert one_rule("{field: action.trace_context.traceparent, eq: 00-x}").evaluate(act).kind == "deny"
    assert one_rule("{field: action.nonexistent, in_list: [~]}").evaluate(act).kind == "deny"
    assert one_rule("{field: action.template, in_list: [~]}").evaluate(act).kind == "deny"
    whole = value_of(ir.Ident("action"), act)
    assert whole["metadata"] == {} and whole["template"] is None and whole["id"] == "abc"


def test_bare_identifier_is_an_environment_lookup() -> None:
    rules = one_rule("{field: action_type, eq: send_email}")
    with pytest.raises(RuleEvaluationError, match=r"^undefined variable: action_type"):
        rules.evaluate(action())
    assert rules.evaluate(action(), env={"action_type": "send_email"}).kind == "deny"
    assert one_rule("{field: env.region, eq: eu}").evaluate(action(), env={"region": "eu"}).kind == "deny"
    assert one_rule("{field: environment.region, in_list: [~]}").evaluate(action()).kind == "deny"


# --------------------------------------------------------------------------- IR-only operators


def lit(v: Any) -> ir.Expr:
    return ir.literal(v)


def binop(op: ir.BinaryOp, a: Any, b: Any) -> Any:
    return value_of(ir.Binary(op, lit(a), lit(b)))


I64_MAX = 2**63 - 1
I64_MIN = -(2**63)


@pytest.mark.parametrize(
    ("op", "a", "b", "expected"),
    [
        (B.ADD, I64_MAX, 1, I64_MIN),
        (B.SUB, I64_MIN, 1, I64_MAX),
        (B.MUL, I64_MAX, 2, -2),
        (B.ADD, 1, 2.5, 3.5),
        (B.ADD, "a", "b", "ab"),
        (B.DIV, 7, 2, 3),
        (B.DIV, -7, 2, -3),
        (B.DIV, 7, -2, -3),
        (B.DIV, 7.0, 2, 3.5),
        (B.MOD, -7, 2, -1),
        (B.MOD, 7, -2, 1),
        (B.MOD, 7.5, 2, 1.5),
        (B.MOD, -7.5, 2, -1.5),
        (B.LT, 1, 1.5, True),
        (B.LE, "a", "a", True),
        (B.GT, float("nan"), 1, False),
        (B.GE, float("nan"), 1, True),
        (B.LE, 1, float("nan"), True),
        (B.EQ, 1, 1.0, True),
        (B.EQ, True, 1, False),
        (B.EQ, None, False, False),
        (B.EQ, None, None, True),
        (B.NE, {}, {}, True),
        (B.IN, "a", {"a": 1}, True),
        (B.IN, "b", "abc", True),
        (B.IN, 5, [5.0], True),
        (B.IN, {"a": 1}, [{"a": 1}], False),
        (B.CONTAINS, [5.0], 5, True),
        (B.AND, 0, 1, False),
        (B.AND, "x", [1], True),
        (B.OR, None, "", False),
        (B.OR, 1, None, True),
    ],
)
def test_ir_binary_semantics(op: ir.BinaryOp, a: Any, b: Any, expected: Any) -> None:
    result = binop(op, a, b)
    assert result == expected
    assert type(result) is type(expected)


def test_float_modulo_by_zero_is_nan() -> None:
    assert math.isnan(binop(B.MOD, 5.0, 0.0))


@pytest.mark.parametrize(
    ("op", "a", "b", "message"),
    [
        (B.DIV, 1, 0, "evaluation error: division by zero"),
        (B.DIV, 1.5, 0, "evaluation error: division by zero"),
        (B.DIV, 1, 0.0, "evaluation error: division by zero"),
        (B.MOD, 1, 0, "evaluation error: modulo by zero"),
        (B.DIV, I64_MIN, -1, "evaluation error: integer division overflow (i64::MIN / -1)"),
        (B.MOD, I64_MIN, -1, "evaluation error: integer modulo overflow (i64::MIN % -1)"),
        (B.ADD, 1, "a", "type error: cannot add int and string"),
        (B.SUB, "a", "b", "type error: cannot subtract string and string"),
        (B.MUL, None, 2, "type error: cannot multiply null and int"),
        (B.DIV, True, 2, "type error: cannot divide bool by int"),
        (B.MOD, [1], 2, "type error: cannot modulo list by int"),
        (B.LT, True, False, "type error: cannot compare bool and bool"),
        (B.IN, 1, {"a": 1}, "type error: in: map key must be string, got int"),
        (B.IN, 1, "abc", "type error: in: cannot check int membership in string"),
        (B.IN, "a", 5, "type error: in: right-hand side must be list, map, or string, got int"),
        (B.MATCHES, "a", "(", "invalid regex: "),
    ],
)
def test_ir_binary_errors(op: ir.BinaryOp, a: Any, b: Any, message: str) -> None:
    with pytest.raises((RuleTypeError, EvaluationError, Exception)) as info:
        binop(op, a, b)
    assert str(info.value).startswith(message)


def test_short_circuit_skips_errors() -> None:
    boom = ir.Binary(B.DIV, ir.Int(1), ir.Int(0))
    assert value_of(ir.Binary(B.AND, ir.Bool(False), boom)) is False
    assert value_of(ir.Binary(B.OR, ir.Bool(True), boom)) is True
    assert value_of(ir.Ternary(ir.Bool(True), ir.Int(1), boom)) == 1
    assert value_of(ir.All([ir.Bool(False), boom])) is False
    assert value_of(ir.Any([ir.Int(2), boom])) is True
    assert value_of(ir.All([])) is True and value_of(ir.Any([])) is False
    with pytest.raises(EvaluationError):
        value_of(ir.Call("to_string", [ir.Bool(False), boom]))


def test_unary() -> None:
    assert value_of(ir.Unary(ir.UnaryOp.NOT, ir.String(""))) is True
    assert value_of(ir.Unary(ir.UnaryOp.NOT, ir.Float(float("nan")))) is False
    assert value_of(ir.Unary(ir.UnaryOp.NEG, ir.Int(I64_MIN))) == I64_MIN
    assert value_of(ir.Unary(ir.UnaryOp.NEG, ir.Float(2.5))) == -2.5
    with pytest.raises(RuleTypeError, match=r"^type error: cannot negate string$"):
        value_of(ir.Unary(ir.UnaryOp.NEG, ir.String("x")))


def test_index() -> None:
    items = ir.literal([1, 2, 3])
    assert value_of(ir.Index(items, ir.Int(-1))) == 3
    assert value_of(ir.Index(items, ir.Int(3))) is None
    assert value_of(ir.Index(ir.literal({"a": 1}), ir.String("a"))) == 1
    assert value_of(ir.Index(ir.literal({"a": 1}), ir.String("b"))) is None
    with pytest.raises(RuleTypeError, match=r"^type error: cannot index list with string$"):
        value_of(ir.Index(items, ir.String("a")))
    with pytest.raises(RuleTypeError, match=r"^type error: cannot index map with int$"):
        value_of(ir.Index(ir.literal({"a": 1}), ir.Int(0)))


def test_field_on_non_map_values() -> None:
    with pytest.raises(RuleTypeError, match=r"^type error: cannot access field 'x' on int$"):
        value_of(ir.path("now.x"))
    with pytest.raises(RuleTypeError, match=r"^type error: cannot access field 'x' on int$"):
        value_of(ir.path("time.hour.x"))
    assert value_of(ir.Field(ir.literal({"a": {"b": 2}}), "a")) == {"b": 2}


def test_list_and_map_literals_with_expressions() -> None:
    expr = ir.List([ir.path("action.action_type"), ir.Int(1)])
    assert value_of(expr) == ["send_email", 1]
    expr2 = ir.Map([("t", ir.path("action.tenant"))])
    assert value_of(expr2) == {"t": "t1"}


def test_regex_dialect() -> None:
    def m(pattern: str, text: str) -> bool:
        return bool(binop(B.MATCHES, text, pattern))

    assert m(r"git\s+push", "git push origin")
    assert m(r"(?i)HELLO", "well hello")
    assert m(r"^\d+$", "123")
    assert not m(r"^a$", "a\n")  # `$` is end of text, not before a final newline
    assert m(r"[[:alpha:]]+\z", "abc")
    assert m(r"(?P<n>a)b", "ab") and m(r"(?<n>a)b", "ab")
    assert m(r"\p{Greek}", "λ")
    for bad in (r"(?=a)", r"(?!a)", r"(?<=a)b", r"(a)\1", r"a++", r"("):
        with pytest.raises(Exception, match=r"^invalid regex: "):
            m(bad, "a")

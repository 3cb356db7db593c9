"""Built-in functions (rules.md §8.5), value display and ``to_source()`` rendering (§6.2, §7)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from acteon.rules import ir
from acteon.rules._errors import EvalError, UndefinedFunction
from acteon.rules._values import display, format_float

from ._helpers import cond, value_of


def call(name: str, *args: Any) -> Any:
    return value_of(ir.Call(name, [ir.literal(a) for a in args]))


@pytest.mark.parametrize(
    ("name", "args", "expected"),
    [
        ("len", ("é",), 2),
        ("len", ("abc",), 3),
        ("len", ([1, 2],), 2),
        ("len", ({"a": 1},), 1),
        ("lower", ("ÀB",), "àb"),
        ("upper", ("àb",), "ÀB"),
        ("contains", ("abc", "b"), True),
        ("contains", ([1, 2], 2), True),
        ("contains", ([5], 5.0), False),  # the builtin stays strict
        ("contains", ([{"a": 1}], {"a": 1}), True),
        ("starts_with", ("abc", "ab"), True),
        ("ends_with", ("abc", "c"), True),
        ("matches", ("abc", "^a.c$"), True),
        ("duration", (5,), 5),
        ("duration", (-2.9,), -2),
        ("duration", (float("nan"),), 0),
        ("duration", (1e30,), 2**63 - 1),
        ("format", ("{} and {}", "a", 1), "a and 1"),
        ("format", ("{}", "{}", "x"), "x"),
        ("format", ("{} {}", 1.0), "1 {}"),
        ("format", ("none", 1, 2), "none"),
        ("abs", (-(2**63),), -(2**63)),
        ("abs", (-2.5,), 2.5),
        ("min", (1, 2), 1),
        ("max", (1, 2.5), 2.5),
        ("min", (3, 2.0), 2.0),
        ("to_string", (None,), "null"),
        ("to_string", (True,), "true"),
        ("to_string", (2.0,), "2"),
        ("to_string", ("x",), "x"),
        ("to_int", ("-42",), -42),
        ("to_int", ("+7",), 7),
        ("to_int", (3.9,), 3),
        ("to_int", (True,), 1),
        ("to_int", (7,), 7),
    ],
)
def test_builtin_results(name: str, args: tuple[Any, ...], expected: Any) -> None:
    result = call(name, *args)
    assert result == expected
    assert type(result) is type(expected)


@pytest.mark.parametrize(
    ("name", "args", "message"),
    [
        ("len", (), "type error: len() expects 1 argument, got 0"),
        ("min", (1,), "type error: min() expects 2 arguments, got 1"),
        ("len", (5,), "type error: len() expects string, list, or map, got int"),
        ("lower", (5,), "type error: lower() expects string, got int"),
        (
            "contains",
            (5, 5),
            "type error: contains() expects (string, string) or (list, value), got (int, int)",
        ),
        ("starts_with", ("a", 1), "type error: starts_with() expects (string, string), got (string, int)"),
        ("matches", ("a", "("), "invalid regex: "),
        ("matches", (1, "a"), "type error: matches() expects (string, string), got (int, string)"),
        ("duration", ("1h",), "type error: duration() expects number, got string"),
        ("format", (), "type error: format() requires at least 1 argument"),
        ("format", (1,), "type error: format() first argument must be string, got int"),
        ("abs", ("x",), "type error: abs() expects number, got string"),
        ("max", ("a", 1), "type error: max() expects numbers, got (string, int)"),
        ("to_int", (" 1",), "type error: to_int() cannot parse ' 1': invalid digit found in string"),
        ("to_int", ("1_0",), "type error: to_int() cannot parse '1_0': invalid digit found in string"),
        ("to_int", ("",), "type error: to_int() cannot parse '': cannot parse integer from empty string"),
        (
            "to_int",
            ("99999999999999999999",),
            "type error: to_int() cannot parse '99999999999999999999': number too large",
        ),
        ("to_int", ([1],), "type error: to_int() cannot convert list to int"),
        ("to_int", (None,), "type error: to_int() cannot convert null to int"),
        ("nope", (1,), "undefined function: nope"),
    ],
)
def test_builtin_errors(name: str, args: tuple[Any, ...], message: str) -> None:
    with pytest.raises(EvalError) as info:
        call(name, *args)
    assert message in str(info.value)
    assert str(info.value).startswith(message.split(":")[0])


def test_now_builtin_reads_the_evaluation_clock() -> None:
    # Upstream's now() reads the wall clock; acteon's follows the context clock like `now`.
    assert value_of(ir.Call("now", []), now="2000-01-01T00:00:00Z") == 946684800
    assert value_of(ir.Ident("now"), now="2000-01-01T00:00:00Z") == 946684800
    assert value_of(ir.Call("now", []), now="2000-01-01T00:00:00.999Z") == 946684800


def test_now_builtin_without_a_clock_uses_the_current_time() -> None:
    assert abs(value_of(ir.Call("now", [])) - time.time()) < 5


def test_now_builtin_arity() -> None:
    with pytest.raises(EvalError, match=r"^type error: now\(\) expects 0 arguments, got 1"):
        value_of(ir.Call("now", [ir.Int(1)]))
    with pytest.raises(EvalError, match=r"division by zero"):
        value_of(ir.Call("now", [ir.Binary(ir.BinaryOp.DIV, ir.Int(1), ir.Int(0))]))


def test_undefined_function_evaluates_arguments_first() -> None:
    with pytest.raises(EvalError, match=r"^division by zero|^evaluation error: division by zero"):
        value_of(ir.Call("nope", [ir.Binary(ir.BinaryOp.DIV, ir.Int(1), ir.Int(0))]))
    with pytest.raises(UndefinedFunction, match=r"^undefined function: nope$"):
        value_of(ir.Call("nope", []))


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (2.0, "2"),
        (0.75, "0.75"),
        (1e21, "1000000000000000000000"),
        (1e-7, "0.0000001"),
        (float("nan"), "NaN"),
        (float("inf"), "inf"),
        (float("-inf"), "-inf"),
        (-0.0, "-0"),
        (0.1 + 0.2, "0.30000000000000004"),
    ],
)
def test_rust_float_display(value: float, text: str) -> None:
    assert format_float(value) == text


def test_display_of_containers() -> None:
    assert display([1, "a", 2.0, None, True]) == '[Int(1), String("a"), Float(2.0), Null, Bool(true)]'
    assert display({"k": 1.5}) == '{"k": Float(1.5)}'


@pytest.mark.parametrize(
    ("node", "text"),
    [
        (ir.Null(), "null"),
        (ir.Bool(True), "true"),
        (ir.Int(-3), "-3"),
        (ir.Float(2.0), "2"),
        (ir.String('say "hi" \\d'), '"say \\"hi\\" \\d"'),
        (ir.List([ir.Int(1), ir.String("a")]), '[1, "a"]'),
        (ir.Map([("k", ir.Int(1)), ('q"', ir.Null())]), '{"k": 1, "q\\"": null}'),
        (ir.Index(ir.Ident("items"), ir.Int(0)), "items[0]"),
        (ir.Unary(ir.UnaryOp.NOT, ir.Ident("x")), "!x"),
        (ir.Unary(ir.UnaryOp.NEG, ir.Int(5)), "-5"),
        (ir.Binary(ir.BinaryOp.MOD, ir.Ident("a"), ir.Int(2)), "(a % 2)"),
        (ir.Binary(ir.BinaryOp.OR, ir.Ident("a"), ir.Ident("b")), "(a || b)"),
        (ir.Ternary(ir.Ident("c"), ir.Int(1), ir.Int(2)), "(c ? 1 : 2)"),
        (ir.Call("len", [ir.Ident("x")]), "len(x)"),
        (ir.All([ir.Ident("a"), ir.Ident("b")]), "all(a && b)"),
        (ir.Any([]), "any()"),
        (ir.StateGet("k"), 'StateGet("k")'),
        (ir.StateCounter('a"b'), 'StateCounter("a"b")'),
        (ir.StateTimeSince("k"), 'StateTimeSince("k")'),
        (ir.HasActiveEvent("outage"), 'HasActiveEvent("outage")'),
        (
            ir.HasActiveEvent("outage", ir.path("action.payload.c")),
            'HasActiveEvent("outage", action.payload.c)',
        ),
        (ir.GetEventState(ir.path("action.fingerprint")), "GetEventState(action.fingerprint)"),
        (ir.EventInState(ir.path("action.fingerprint"), "open"), 'EventInState(action.fingerprint, "open")'),
        (ir.SemanticMatch("t", 0.5), 'SemanticMatch("t", threshold=0.5)'),
        (ir.SemanticMatch("t", 1, ir.path("a.b")), 'SemanticMatch("t", threshold=1, text=a.b)'),
        (ir.WasmCall("p", "f"), 'wasm("p", "f")'),
    ],
)
def test_to_source(node: ir.Expr, text: str) -> None:
    assert node.to_source() == text


def test_yaml_extensions_render() -> None:
    assert (
        cond("{not: {field: action.action_type, eq: spam}}").to_source() == '!(action.action_type == "spam")'
    )
    assert cond("{has_active_event: outage}").to_source() == 'HasActiveEvent("outage")'
    assert (
        cond("{inhibit_if_active: outage, label_field: action.metadata.cluster}").to_source()
        == 'HasActiveEvent("outage", action.metadata.cluster)'
    )
    assert cond("{wasm_plugin: p, wasm_function: f}").to_source() == 'wasm("p", "f")'
    assert cond("{state_counter: c, eq: 1}").to_source() == '(StateCounter("c") == 1)'


def test_path_errors() -> None:
    with pytest.raises(ir.PathError, match=r"^empty field path: ''$"):
        ir.path("")
    with pytest.raises(ir.PathError, match=r"^empty field path: '.a'$"):
        ir.path(".a")
    with pytest.raises(ir.PathError, match=r"^empty segment in field path: 'a.'$"):
        ir.path("a.")
    assert ir.path("a.b.c") == ir.Field(ir.Field(ir.Ident("a"), "b"), "c")


def test_semantic_topics() -> None:
    expr = ir.All([ir.SemanticMatch("a"), ir.Any([ir.SemanticMatch("b", 0.1)])])
    assert ir.semantic_topics(expr) == ["a", "b"]

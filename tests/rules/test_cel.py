"""CEL frontend: CEL text -> rule IR (rules.md §5, DECISIONS.md D26, D17)."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import pytest

from acteon import Action, RuleLoadError
from acteon.rules import ir
from acteon.rules._cel import MAX_DEPTH, Has, cel_precedence_warnings, cel_to_ir
from acteon.rules._context import EvalContext
from acteon.rules._errors import EvalError

NOW = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)


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


def evaluate(expr: str, action: Action | None = None, **ctx: Any) -> Any:
    fn = cel_to_ir(expr).compile()
    return fn(EvalContext(action or make_action(), now=NOW, **ctx))


def src(expr: str) -> str:
    return cel_to_ir(expr).to_source()


def load_error(expr: str) -> str:
    with pytest.raises(RuleLoadError) as info:
        cel_to_ir(expr)
    return str(info.value)


# --------------------------------------------------------------------------- operators and precedence


@pytest.mark.parametrize(
    ("expr", "display"),
    [
        ("a || b", "(a || b)"),
        ("a && b", "(a && b)"),
        ("a == b", "(a == b)"),
        ("a != b", "(a != b)"),
        ("a < b", "(a < b)"),
        ("a <= b", "(a <= b)"),
        ("a > b", "(a > b)"),
        ("a >= b", "(a >= b)"),
        ("a in b", "(a in b)"),
        ("a + b", "(a + b)"),
        ("a - b", "(a - b)"),
        ("a * b", "(a * b)"),
        ("a / b", "(a / b)"),
        ("a % b", "(a % b)"),
        ("!a", "!a"),
        ("-a", "-a"),
        ("!!a", "!!a"),
        ("- -a", "--a"),
        ("c ? a : b", "(c ? a : b)"),
    ],
)
def test_every_operator(expr: str, display: str) -> None:
    assert src(expr) == display


@pytest.mark.parametrize(
    ("expr", "display"),
    [
        # || < && < relational (one level, incl. == != in) < + - < * / % < unary < postfix
        ("a || b && c", "(a || (b && c))"),
        ("a && b || c", "((a && b) || c)"),
        ("a && b == c", "(a && (b == c))"),
        ("a == b + c", "(a == (b + c))"),
        ("a + b * c", "(a + (b * c))"),
        ("a * b + c", "((a * b) + c)"),
        ("-a * b", "(-a * b)"),
        ("!a && b", "(!a && b)"),
        ("!a.b", "!a.b"),
        ("-a.b[0]", "-a.b[0]"),
        ("a + b < c * d", "((a + b) < (c * d))"),
        # left associativity
        ("a - b - c", "((a - b) - c)"),
        ("a / b % c", "((a / b) % c)"),
        ("a || b || c", "((a || b) || c)"),
        ("a && b && c", "((a && b) && c)"),
        # D26: == != < <= > >= in share one left-associative level
        ("x == y < z", "((x == y) < z)"),
        ("a < b == c", "((a < b) == c)"),
        ("a < 5 == true", "((a < 5) == true)"),
        ("a == b != c", "((a == b) != c)"),
        ("x in y == z", "((x in y) == z)"),
        ("1 < 2 < 3", "((1 < 2) < 3)"),
        # the ternary is the loosest level and right-associative
        ("a ? b : c ? d : e", "(a ? b : (c ? d : e))"),
        ("a || b ? c : d", "((a || b) ? c : d)"),
        ("a ? b || c : d && e", "(a ? (b || c) : (d && e))"),
        ("(a ? b : c) ? d : e", "((a ? b : c) ? d : e)"),
        # parentheses
        ("(a || b) && c", "((a || b) && c)"),
        ("x == (y < z)", "(x == (y < z))"),
        ("(((a)))", "a"),
    ],
)
def test_precedence_and_associativity(expr: str, display: str) -> None:
    assert src(expr) == display


def test_operator_nodes() -> None:
    tree = cel_to_ir("a.b + 1 in [2]")
    assert tree == ir.Binary(
        ir.BinaryOp.IN,
        ir.Binary(ir.BinaryOp.ADD, ir.Field(ir.Ident("a"), "b"), ir.Int(1)),
        ir.List([ir.Int(2)]),
    )
    assert cel_to_ir("!x") == ir.Unary(ir.UnaryOp.NOT, ir.Ident("x"))
    assert cel_to_ir("-x") == ir.Unary(ir.UnaryOp.NEG, ir.Ident("x"))
    assert cel_to_ir("c ? 1 : 2") == ir.Ternary(ir.Ident("c"), ir.Int(1), ir.Int(2))


def test_long_chains_do_not_recurse() -> None:
    # Left-associative chains are walked iteratively; 200 terms load fine.
    expr = " || ".join(f"x == {i}" for i in range(200))
    tree = cel_to_ir(expr)
    assert isinstance(tree, ir.Binary) and tree.op is ir.BinaryOp.OR
    assert evaluate(expr, env={"x": "nope"}) is False


def test_overlong_chain_is_a_load_error() -> None:
    expr = " + ".join("1" for _ in range(400))
    assert "too deeply nested" in load_error(expr)


# --------------------------------------------------------------------------- access


@pytest.mark.parametrize(
    ("expr", "node"),
    [
        ("a", ir.Ident("a")),
        ("a.b.c", ir.Field(ir.Field(ir.Ident("a"), "b"), "c")),
        ("a[0]", ir.Index(ir.Ident("a"), ir.Int(0))),
        ('a["k"].b', ir.Field(ir.Index(ir.Ident("a"), ir.String("k")), "b")),
        ("a[i + 1]", ir.Index(ir.Ident("a"), ir.Binary(ir.BinaryOp.ADD, ir.Ident("i"), ir.Int(1)))),
        ("[1, 2][0]", ir.Index(ir.List([ir.Int(1), ir.Int(2)]), ir.Int(0))),
        ("nullable", ir.Ident("nullable")),
        ("trueval", ir.Ident("trueval")),
        ("false_", ir.Ident("false_")),
        ("_x1", ir.Ident("_x1")),
    ],
)
def test_access(expr: str, node: ir.Expr) -> None:
    assert cel_to_ir(expr) == node


# --------------------------------------------------------------------------- literals


@pytest.mark.parametrize(
    ("expr", "node"),
    [
        ("null", ir.Null()),
        ("true", ir.Bool(True)),
        ("false", ir.Bool(False)),
        ("0", ir.Int(0)),
        ("42", ir.Int(42)),
        ("-5", ir.Int(-5)),  # D26: negative number literal
        ("9223372036854775807", ir.Int(2**63 - 1)),
        ("-9223372036854775808", ir.Int(-(2**63))),
        ("0x1F", ir.Int(31)),
        ("-0x10", ir.Int(-16)),
        ("1.5", ir.Float(1.5)),
        ("-2.25", ir.Float(-2.25)),
        ("1e3", ir.Float(1000.0)),  # D26: exponent floats
        ("1E-3", ir.Float(0.001)),
        ("2.5e+2", ir.Float(250.0)),
        (".5", ir.Float(0.5)),
        ('"double"', ir.String("double")),
        ("'single'", ir.String("single")),  # D26: single quotes
        ("''", ir.String("")),
        ('"it\'s"', ir.String("it's")),
        ("'say \"hi\"'", ir.String('say "hi"')),
        ('"""triple "quoted" text"""', ir.String('triple "quoted" text')),
        ("'''also'''", ir.String("also")),
        ("[]", ir.List([])),
        ("[1, 'a', null]", ir.List([ir.Int(1), ir.String("a"), ir.Null()])),
        ("{}", ir.Map([])),
        ('{"a": 1, b: [true]}', ir.Map([("a", ir.Int(1)), ("b", ir.List([ir.Bool(True)]))])),
        ("{'k': x}", ir.Map([("k", ir.Ident("x"))])),
    ],
)
def test_literals(expr: str, node: ir.Expr) -> None:
    assert cel_to_ir(expr) == node


@pytest.mark.parametrize(
    ("expr", "value"),
    [
        (r'"a\nb"', "a\nb"),
        (r'"a\tb"', "a\tb"),
        (r'"a\\b"', "a\\b"),
        (r'"a\"b"', 'a"b'),
        (r"'a\'b'", "a'b"),
        (r'"\r\a\f\v"', "\r\a\f\v"),
        (r'"\x41\u00e9\U0001F600\101"', "A\u00e9\U0001f600A"),
        # Unknown escapes keep their backslash (as in the Rust gateway), so regexes work.
        (r'"^\d+$"', "^\\d+$"),
        (r'"\s\w\.\("', "\\s\\w\\.\\("),
        # \b and \? stay regex escapes (word boundary, literal ?), not backspace / ?.
        (r'"\bword\b"', "\\bword\\b"),
        (r'"a\?"', "a\\?"),
    ],
)
def test_string_escapes(expr: str, value: str) -> None:
    assert cel_to_ir(expr) == ir.String(value)


def test_float_literal_display() -> None:
    assert src("1e3 > 5") == "(1000 > 5)"
    assert src("2.0") == "2"
    assert src("0.75") == "0.75"


def test_negative_literal_versus_subtraction() -> None:
    assert cel_to_ir("a-1") == ir.Binary(ir.BinaryOp.SUB, ir.Ident("a"), ir.Int(1))
    assert cel_to_ir("1 -1") == ir.Binary(ir.BinaryOp.SUB, ir.Int(1), ir.Int(1))
    assert cel_to_ir("a - -1") == ir.Binary(ir.BinaryOp.SUB, ir.Ident("a"), ir.Int(-1))
    assert cel_to_ir("- 5") == ir.Unary(ir.UnaryOp.NEG, ir.Int(5))
    assert cel_to_ir("-(5)") == ir.Unary(ir.UnaryOp.NEG, ir.Int(5))


# --------------------------------------------------------------------------- functions and methods


@pytest.mark.parametrize(
    ("expr", "node"),
    [
        ("size(x)", ir.Call("len", [ir.Ident("x")])),
        ("size(x, y)", ir.Call("len", [ir.Ident("x"), ir.Ident("y")])),
        ("int(x)", ir.Call("to_int", [ir.Ident("x")])),
        ("string(x)", ir.Call("to_string", [ir.Ident("x")])),
        ("lower(x)", ir.Call("lower", [ir.Ident("x")])),
        ("format('{} {}', a, 1)", ir.Call("format", [ir.String("{} {}"), ir.Ident("a"), ir.Int(1)])),
        ("now()", ir.Call("now", [])),
        ("duration(3600)", ir.Call("duration", [ir.Int(3600)])),
        ("nope(1)", ir.Call("nope", [ir.Int(1)])),
        ('r.contains("x")', ir.Binary(ir.BinaryOp.CONTAINS, ir.Ident("r"), ir.String("x"))),
        ('r.startsWith("x")', ir.Binary(ir.BinaryOp.STARTS_WITH, ir.Ident("r"), ir.String("x"))),
        ('r.endsWith("x")', ir.Binary(ir.BinaryOp.ENDS_WITH, ir.Ident("r"), ir.String("x"))),
        ('r.matches("^a")', ir.Binary(ir.BinaryOp.MATCHES, ir.Ident("r"), ir.String("^a"))),
        ("r.size()", ir.Call("len", [ir.Ident("r")])),
        ("a.b.size()", ir.Call("len", [ir.Field(ir.Ident("a"), "b")])),
        # unknown methods and wrong arities -> Call(m, [receiver, args...])
        ("s.lower()", ir.Call("lower", [ir.Ident("s")])),
        ('s.starts_with("a")', ir.Call("starts_with", [ir.Ident("s"), ir.String("a")])),
        ("s.contains()", ir.Call("contains", [ir.Ident("s")])),
        ('s.contains("a", "b")', ir.Call("contains", [ir.Ident("s"), ir.String("a"), ir.String("b")])),
        ("s.size(1)", ir.Call("size", [ir.Ident("s"), ir.Int(1)])),
        ("x.all()", ir.Call("all", [ir.Ident("x")])),
    ],
)
def test_function_and_method_mapping(expr: str, node: ir.Expr) -> None:
    assert cel_to_ir(expr) == node


def test_semantic_match_mapping() -> None:
    text = ir.Field(ir.Field(ir.Ident("action"), "payload"), "message")
    assert cel_to_ir('semantic_match("Billing", 0.75)') == ir.SemanticMatch("Billing", 0.75, None)
    assert cel_to_ir('semantic_match("Billing", 1)') == ir.SemanticMatch("Billing", 1.0, None)
    assert cel_to_ir('semantic_match("Billing", 0.7, action.payload.message)') == ir.SemanticMatch(
        "Billing", 0.7, text
    )
    assert cel_to_ir('action.payload.message.semanticMatch("Billing")') == ir.SemanticMatch(
        "Billing", 0.8, text
    )
    assert cel_to_ir('action.payload.message.semanticMatch("Billing", 0.9)') == ir.SemanticMatch(
        "Billing", 0.9, text
    )
    # non-literal topic / threshold -> plain calls (undefined function at runtime)
    assert cel_to_ir("semantic_match(t, 0.7)") == ir.Call("semantic_match", [ir.Ident("t"), ir.Float(0.7)])
    assert cel_to_ir('semantic_match("t", x)') == ir.Call("semantic_match", [ir.String("t"), ir.Ident("x")])
    assert cel_to_ir('semantic_match("t")') == ir.Call("semantic_match", [ir.String("t")])
    assert cel_to_ir("m.semanticMatch(t)") == ir.Call("semanticMatch", [ir.Ident("m"), ir.Ident("t")])
    assert src('semantic_match("Billing", 0.75, action.payload.message)') == (
        'SemanticMatch("Billing", threshold=0.75, text=action.payload.message)'
    )


def test_wasm_mapping() -> None:
    assert cel_to_ir('wasm("filter")') == ir.WasmCall("filter", "evaluate")
    assert cel_to_ir('wasm("filter", "check")') == ir.WasmCall("filter", "check")
    assert cel_to_ir('wasm("filter", 1)') == ir.WasmCall("filter", "evaluate")
    assert cel_to_ir("wasm(p)") == ir.Call("wasm", [ir.Ident("p")])
    assert src('wasm("content-filter")') == 'wasm("content-filter", "evaluate")'


def test_has_active_event_mapping() -> None:
    assert cel_to_ir('has_active_event("cluster_down")') == ir.HasActiveEvent("cluster_down", None)
    assert cel_to_ir('has_active_event("cluster_down", action.metadata.cluster)') == ir.HasActiveEvent(
        "cluster_down", ir.Field(ir.Field(ir.Ident("action"), "metadata"), "cluster")
    )
    assert "event type must be a string literal" in load_error("has_active_event(t)")
    assert "expects 1 or 2 arguments" in load_error("has_active_event()")


def test_has_mapping() -> None:
    assert cel_to_ir("has(a.b.c)") == Has(ir.Field(ir.Ident("a"), "b"), "c")
    assert src("has(action.payload.to)") == "has(action.payload.to)"
    assert src("!has(a.b) || a.b > 1") == "(!has(a.b) || (a.b > 1))"
    assert "has() argument must be a field selection" in load_error("has(a)")
    assert "has() argument must be a field selection" in load_error('has(a["b"])')
    assert "has() expects 1 argument, got 2" in load_error("has(a.b, c.d)")


# --------------------------------------------------------------------------- to_source displays (§16.6 T10)


@pytest.mark.parametrize(
    ("expr", "display"),
    [
        ('!(action.action_type == "spam")', '!(action.action_type == "spam")'),
        ("x > 0 ? x : 0", "((x > 0) ? x : 0)"),
        ("size(items)", "len(items)"),
        ("-5", "-5"),
        ('a.b.contains("c")', '(a.b contains "c")'),
        (
            'action.action_type in ["send_email", "send_sms"]',
            '(action.action_type in ["send_email", "send_sms"])',
        ),
        ("'say \"hi\"' == x", '("say \\"hi\\"" == x)'),
    ],
)
def test_t10_displays(expr: str, display: str) -> None:
    assert src(expr) == display


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("expr", "construct"),
    [
        ("items.exists(i, i > 1)", "macro 'exists'"),
        ("items.all(i, i > 1)", "macro 'all'"),
        ("items.exists_one(i, i > 1)", "macro 'exists_one'"),
        ("items.map(i, i * 2)", "macro 'map'"),
        ("items.map(i, i > 0, i * 2)", "macro 'map'"),
        ("items.filter(i, i > 1)", "macro 'filter'"),
        ("a.?b", "optional syntax"),
        ("a[?0]", "optional syntax"),
        ("Msg{field: 1}", "message construction"),
        ('b"bytes"', "bytes literal"),
        ('r"\\d+"', "raw string literal"),
        ("1u", "unsigned integer literal '1u'"),
        ("0x10U", "unsigned integer literal"),
        ('timestamp("2026-01-01T00:00:00Z")', "timestamp()"),
        ('duration("1h")', "duration() with a string argument"),
        ("double(x)", "double()"),
        ("uint(x)", "uint()"),
        ("bytes(x)", "bytes()"),
        ("dyn(x)", "dyn()"),
        ("type(x)", "type()"),
        (".a.b", "leading-dot"),
        ("{1: 2}", "map literal key"),
    ],
)
def test_unsupported_constructs(expr: str, construct: str) -> None:
    message = load_error(expr)
    assert message.startswith("parse error: CEL construct not supported: ")
    assert construct in message


def test_unsupported_construct_names_rule_and_file() -> None:
    with pytest.raises(RuleLoadError) as info:
        cel_to_ir("x.exists(y, y)", file="f.cel", rule="x", key="condition")
    text = str(info.value)
    assert "CEL construct not supported: macro 'exists'" in text
    assert "f.cel" in text and "'x'" in text
    assert info.value.rule == "x" and info.value.file == "f.cel"


@pytest.mark.parametrize(
    ("expr", "detail"),
    [
        ("1 + + + 2", "unexpected token '+' at line 1, column 5"),
        ("a and b", 'unexpected trailing input: "and b"'),
        ("a or b", 'unexpected trailing input: "or b"'),
        ("a = b", 'unexpected trailing input: "= b"'),
        ("a === b", "unexpected character '='"),
        ("f(1,)", "unexpected token ')'"),
        ("[1, 2,]", "unexpected token ']'"),
        ('"abc', "unterminated string"),
        ("a ? b", "unexpected end of input"),
        ("(a", "unexpected end of input"),
        ("a.", "unexpected end of input"),
        ("9223372036854775808", "integer literal out of range: 9223372036854775808"),
        ("-9223372036854775809", "integer literal out of range"),
        (r'"\ud800"', "invalid unicode escape"),
    ],
)
def test_parse_errors(expr: str, detail: str) -> None:
    message = load_error(expr)
    assert message.startswith("parse error: CEL parse error: ")
    assert detail in message


def test_parse_error_positions_of_boolean_tokens() -> None:
    # celpy re-creates true/false tokens without positions; acteon recovers them.
    message = load_error("x == 1  false")
    assert 'unexpected trailing input: "false" at line 1, column 9' in message
    assert message.endswith("x == 1  false\n            ^")
    assert "at line 2, column 3" in load_error("a\n  true")


def test_parse_error_contains_celpy_context() -> None:
    message = load_error("1 + + + 2")
    assert "1 + + + 2\n" in message
    assert "    ^" in message


@pytest.mark.parametrize("expr", ["", "   ", "\n\t"])
def test_empty_expression(expr: str) -> None:
    assert load_error(expr) == "parse error: empty expression"


def test_nesting_depth_guard() -> None:
    # Measured as upstream: 31 nested parentheses load, 32 do not.
    assert MAX_DEPTH == 64
    assert cel_to_ir("(" * 31 + "1" + ")" * 31) == ir.Int(1)
    message = load_error("(" * 32 + "1" + ")" * 32)
    assert "nesting depth exceeded maximum of 64" in message
    assert "nesting depth" in load_error("[" * 40 + "]" * 40)
    assert "nesting depth" in load_error("!" * 70 + "x")
    assert "nesting depth" in load_error("f(" * 40 + ")" * 40)
    # deep input never crashes the interpreter
    assert "nesting depth" in load_error("(" * 5000 + "1" + ")" * 5000)


# ------------------------------------------------------------------- evaluation (same closures as YAML)


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ('action.action_type == "send_email" && action.payload.priority > 3', True),
        ('action.action_type == "send_email" ? true : false', True),
        ('action.action_type in ["send_email", "send_sms"]', True),
        ('action.action_type.startsWith("send")', True),
        ('action.action_type.endsWith("email")', True),
        ('!(action.action_type == "spam")', True),
        ('action.payload.to.contains("@example.com")', True),
        ('action.payload.to.matches("^[a-z]+@")', True),
        ("action.action_type == 'send_email'", True),
        ("action.payload.priority * 2 - 1", 9),
        ("action.payload.priority / 2", 2),
        ("action.payload.priority % 3", 2),
        ("-action.payload.priority", -5),
        ("action.payload.priority > -1", True),
        ("action.payload.priority == 5.0", True),
        ("1e3 > 5", True),
        ("size(action.payload.subject)", 5),
        ("action.payload.subject.size()", 5),
        ("size([1, 2, 3])", 3),
        ('int("42") + 1', 43),
        ("string(5) + 'x'", "5x"),
        ("action.payload.subject.lower()", "hello"),
        ('"to" in action.payload', True),
        ('"cc" in action.payload', False),
        ("action.payload.missing == null", True),
        ("[1, 2][1]", 2),
        ('{"a": 1}["a"]', 1),
        ("action.payload.priority > 3 ? 'high' : 'low'", "high"),
        ('"say \\"hi\\"" == \'say "hi"\'', True),
    ],
)
def test_evaluation(expr: str, expected: Any) -> None:
    result = evaluate(expr)
    assert result == expected and type(result) is type(expected)


def test_relational_chain_reads_left_to_right() -> None:
    # D26: (1 == 1) < true compares two bools -> type error (upstream: 1 == (1 < true) -> error too)
    with pytest.raises(EvalError, match="cannot compare bool and bool"):
        evaluate("1 == 1 < true")
    # upstream reads 2 == 1 + 1 < 3 as 2 == ((1 + 1) < 3) -> 2 == true -> false;
    # standard CEL reads (2 == 2) < 3 -> type error
    with pytest.raises(EvalError, match="cannot compare bool and int"):
        evaluate("2 == 1 + 1 < 3")


def test_evaluation_errors_are_engine_errors() -> None:
    with pytest.raises(EvalError, match="undefined variable: action_type"):
        evaluate('action_type == "x"')
    with pytest.raises(EvalError, match="undefined function: nope"):
        evaluate("nope(1)")
    with pytest.raises(EvalError, match="cannot access field 'email' on null"):
        evaluate("action.payload.user.email == 'x'")


def test_env_and_time_identifiers() -> None:
    assert evaluate('env.region == "eu"', env={"region": "eu"}) is True
    assert evaluate('region == "eu"', env={"region": "eu"}) is True
    assert evaluate("time.hour == 12 && time.weekday == 'Thursday'") is True
    assert evaluate("now > 0") is True


def test_has_semantics() -> None:
    action = make_action(payload={"a": {"b": None, "c": 1}, "s": "text", "n": 3})
    assert evaluate("has(action.payload.a)", action) is True
    assert evaluate("has(action.payload.zzz)", action) is False
    assert evaluate("has(action.payload.a.b)", action) is True  # present, value null
    assert evaluate("has(action.payload.a.c)", action) is True
    assert evaluate("has(action.payload.a.d)", action) is False
    assert evaluate("has(action.metadata.x)", action) is False
    assert evaluate('has({"k": 1}.k)', action) is True
    assert evaluate("has(env.region)", action, env={"region": "eu"}) is True
    assert evaluate("has(env.zone)", action, env={"region": "eu"}) is False
    # on a non-map, has() fails exactly like the field access would
    with pytest.raises(EvalError, match="cannot access field 'x' on null"):
        evaluate("has(action.payload.zzz.x)", action)
    with pytest.raises(EvalError, match="cannot access field 'x' on string"):
        evaluate("has(action.payload.s.x)", action)
    # guard idiom
    assert evaluate("has(action.payload.n) && action.payload.n > 2", action) is True
    assert evaluate("has(action.payload.q) && action.payload.q > 2", action) is False


def test_has_active_event_evaluates_against_state() -> None:
    action = make_action(metadata={"cluster": "c1"})
    state = {"notifications:tenant-1:active_events:cluster_down:c1": '{"state": "firing"}'}
    assert evaluate('has_active_event("cluster_down", action.metadata.cluster)', action, state=state) is True
    assert evaluate('has_active_event("cluster_down")', action, state=state) is False
    resolved = {"notifications:tenant-1:active_events:cluster_down": '{"state": "resolved"}'}
    assert evaluate('has_active_event("cluster_down")', action, state=resolved) is False


class _Embedding:
    def __init__(self, value: float) -> None:
        self.value = value

    def similarity(self, text: str, topic: str) -> float:
        return self.value


def test_semantic_match_evaluates() -> None:
    action = make_action(payload={"message": "database server is down"})
    expr = 'semantic_match("Infrastructure issues", 0.75, action.payload.message)'
    assert evaluate(expr, action, embedding=_Embedding(0.9)) is True
    assert evaluate(expr, action, embedding=_Embedding(0.5)) is False
    with pytest.raises(EvalError, match="semantic_match requires embedding support"):
        evaluate(expr, action)


def test_wasm_without_runtime() -> None:
    with pytest.raises(EvalError, match="WASM plugin 'f' called but no WASM runtime configured"):
        evaluate('wasm("f")')


def test_nan_and_infinity_literals() -> None:
    assert evaluate("1e999 > 1.0") is True
    assert math.isinf(evaluate("1e999"))


# --------------------------------------------------------------------------- precedence warnings


def test_precedence_warning_when_readings_differ() -> None:
    (warning,) = cel_precedence_warnings("x == y < z")
    assert "'x == y < z'" in warning
    assert "((x == y) < z) in acteon" in warning
    assert "(x == (y < z)) in the Rust gateway" in warning


@pytest.mark.parametrize(
    "expr",
    [
        "a != 1 in b",
        "(a) == b >= (c)",
        "f(x == y in z)",
        "a == b == c < d",
        "true && (p != q <= r)",
    ],
)
def test_precedence_warnings_flag_mixed_chains(expr: str) -> None:
    (warning,) = cel_precedence_warnings(expr)
    assert "Rust gateway" in warning and "parentheses" in warning


def test_precedence_warning_same_meaning_is_softer() -> None:
    (warning,) = cel_precedence_warnings("a < 5 == true")
    assert "mixes equality and relational operators" in warning
    assert "((a < 5) == true)" in warning


@pytest.mark.parametrize(
    "expr",
    [
        "x == (y < z)",
        "(x == y) < z",
        "a < b && c == d",
        "1 < 2 < 3",
        "a == b != c",
        "a in b",
        'action.action_type == "x" && action.payload.priority > 3',
        "",
        "a and b",  # does not parse: loading reports it
    ],
)
def test_no_precedence_warning(expr: str) -> None:
    assert cel_precedence_warnings(expr) == []


def test_several_precedence_warnings() -> None:
    warnings = cel_precedence_warnings("(a == b < c) && (d != e > f)")
    assert len(warnings) == 2
    assert "'a == b < c'" in warnings[0] and "'d != e > f'" in warnings[1]


@pytest.mark.parametrize("n", [2, 3, 4, 6])
def test_logic_chains_short_circuit_left_to_right(n: int) -> None:
    # `a && b && c` compiles flat (one closure per chain); results and evaluation order are unchanged.
    env = {"yes": "y", "empty": ""}
    truthy = " && ".join(["yes"] * n)
    assert evaluate(truthy, env=env) is True
    assert evaluate(" || ".join(["empty"] * n), env=env) is False
    # the first falsy (resp. truthy) operand stops the chain before the failing one
    assert evaluate(" && ".join(["yes"] * (n - 1) + ["empty", "missing"]), env=env) is False
    assert evaluate(" || ".join(["empty"] * (n - 1) + ["yes", "missing"]), env=env) is True
    with pytest.raises(EvalError, match="undefined variable: missing"):
        evaluate(" && ".join(["yes"] * (n - 1) + ["missing", "empty"]), env=env)
    with pytest.raises(EvalError, match="undefined variable: missing"):
        evaluate(" || ".join(["empty"] * (n - 1) + ["missing", "yes"]), env=env)
    # a chain keeps its upstream display
    assert src(" && ".join(["a"] * 3)) == "((a && a) && a)"
    # mixed and right-nested chains
    assert evaluate("yes && (yes && (empty || yes)) && yes", env=env) is True
    assert evaluate("(empty || (empty || empty)) || (yes && empty)", env=env) is False

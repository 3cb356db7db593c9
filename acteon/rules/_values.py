"""Runtime values and the operator semantics of rules.md §7-§8.3.

Values are plain Python objects: ``None``, ``bool``, ``int`` (kept inside the
i64 range), ``float``, ``str``, ``list`` and ``dict`` (string keys). Every
helper dispatches on the *exact* type because ``bool`` is a subclass of
``int`` in Python but a separate type for the engine (``true == 1`` is false).

Python truthiness already matches the engine's (``None``/``0``/``0.0``/``-0.0``
/empty are false, NaN is true), so compiled code uses ``bool(v)`` / ``if v``.
"""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

from acteon.rules._errors import EvaluationError, RuleTypeError

I64_MIN = -(2**63)
I64_MAX = 2**63 - 1
U64_MAX = 2**64 - 1
FLOAT_EPSILON = 2.220446049250313e-16

_TYPE_NAMES: dict[type, str] = {
    type(None): "null",
    bool: "bool",
    int: "int",
    float: "float",
    str: "string",
    list: "list",
    dict: "map",
}


def type_name(value: Any) -> str:
    """The engine's name for a value's type (used verbatim in error messages)."""
    name = _TYPE_NAMES.get(type(value))
    if name is not None:
        return name
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "list"
    if isinstance(value, dict):
        return "map"
    return "null"


# --------------------------------------------------------------------------- conversion


def wrap_i64(value: int) -> int:
    """Two's-complement wrap of an arbitrary Python int into i64."""
    if I64_MIN <= value <= I64_MAX:
        return value
    return ((value - I64_MIN) % 2**64) + I64_MIN


def normalize(value: Any) -> Any:
    """JSON-ish Python value -> runtime value (ints outside i64 become floats).

    Returns the same object when nothing needs converting, so reading a large
    payload that is already clean allocates nothing.
    """
    t = type(value)
    if t is str or t is bool or t is float or value is None:
        return value
    if t is int:
        return value if I64_MIN <= value <= I64_MAX else float(value)
    if t is dict:
        changed = None
        for k, v in value.items():
            nv = normalize(v)
            if nv is not v or type(k) is not str:
                changed = True
                break
        if changed is None:
            return value
        return {str(k): normalize(v) for k, v in value.items()}
    if t is list:
        for v in value:
            if normalize(v) is not v:
                return [normalize(v) for v in value]
        return value
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return normalize(int(value))
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, list | tuple):
        return [normalize(v) for v in value]
    if isinstance(value, dict):
        return {str(k): normalize(v) for k, v in value.items()}
    # Anything else (datetime, Decimal, ...) is shown by its text, as JSON encoders would.
    return str(value)


def from_json_number(value: int) -> int | float:
    """An integer coming from JSON/YAML: Int if it fits i64, else Float."""
    return value if I64_MIN <= value <= I64_MAX else float(value)


# --------------------------------------------------------------------------- display


def format_float(value: float) -> str:
    """Rust's ``Display`` for f64: shortest round-trip digits, never an exponent."""
    if value != value:
        return "NaN"
    if value == math.inf:
        return "inf"
    if value == -math.inf:
        return "-inf"
    if value == 0.0:
        return "-0" if math.copysign(1.0, value) < 0 else "0"
    text = repr(value)
    if "e" in text or "E" in text:
        text = format(Decimal(text), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def _debug(value: Any) -> str:
    """Approximation of the Rust ``Debug`` rendering of a runtime value."""
    t = type(value)
    if value is None:
        return "Null"
    if t is bool:
        return f"Bool({'true' if value else 'false'})"
    if t is int:
        return f"Int({value})"
    if t is float:
        text = format_float(value)
        if text.lstrip("-").isdigit():
            text += ".0"
        return f"Float({text})"
    if t is str:
        return f"String({debug_str(value)})"
    if t is list:
        return "List([" + ", ".join(_debug(v) for v in value) + "])"
    if t is dict:
        return "Map({" + ", ".join(f"{debug_str(k)}: {_debug(v)}" for k, v in value.items()) + "})"
    return str(value)


def display(value: Any) -> str:
    """Display string (``to_string``, ``format``, label coercion, semantic text)."""
    t = type(value)
    if t is str:
        return value  # type: ignore[no-any-return]
    if value is None:
        return "null"
    if t is bool:
        return "true" if value else "false"
    if t is int:
        return str(value)
    if t is float:
        return format_float(value)
    if t is list:
        return "[" + ", ".join(_debug(v) for v in value) + "]"
    if t is dict:
        return "{" + ", ".join(f"{debug_str(k)}: {_debug(v)}" for k, v in value.items()) + "}"
    return str(value)


def debug_str(text: str) -> str:
    """Rust ``{:?}`` of a string: double quotes, escapes for quotes, backslashes, controls."""
    out = ['"']
    for ch in text:
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\0":
            out.append("\\0")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{{{ord(ch):x}}}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


# --------------------------------------------------------------------------- equality


def values_equal(a: Any, b: Any) -> bool:
    """``==``: typed equality with an absolute epsilon for numbers; maps never equal."""
    ta = type(a)
    tb = type(b)
    if ta is str:
        return tb is str and bool(a == b)
    if ta is int:
        if tb is int:
            return bool(a == b)
        if tb is float:
            return bool(abs(float(a) - b) < FLOAT_EPSILON)
        return False
    if ta is float:
        if tb is float or tb is int:
            return bool(abs(a - float(b)) < FLOAT_EPSILON)
        return False
    if a is None:
        return b is None
    if ta is bool:
        return tb is bool and a is b
    if ta is list:
        return tb is list and strict_equal(a, b)
    return False


def strict_equal(a: Any, b: Any) -> bool:
    """Structural equality used for lists: same types elementwise, exact floats, maps by content."""
    ta = type(a)
    if ta is not type(b):
        return False
    if ta is list:
        return len(a) == len(b) and all(strict_equal(x, y) for x, y in zip(a, b, strict=True))
    if ta is dict:
        return a.keys() == b.keys() and all(strict_equal(v, b[k]) for k, v in a.items())
    if ta is float:
        return a == b  # type: ignore[no-any-return]
    return a == b  # type: ignore[no-any-return]


def list_contains(items: list[Any], value: Any) -> bool:
    """List membership with ``==`` semantics (head behaviour of ``in``/``contains``)."""
    return any(values_equal(value, item) for item in items)


def list_contains_strict(items: list[Any], value: Any) -> bool:
    """List membership with strict structural equality (the ``contains()`` builtin)."""
    return any(strict_equal(value, item) for item in items)


# --------------------------------------------------------------------------- ordering

_ORDER_OPS = {
    "<": lambda c: c < 0,
    "<=": lambda c: c <= 0,
    ">": lambda c: c > 0,
    ">=": lambda c: c >= 0,
}


def compare(a: Any, b: Any) -> int:
    """-1/0/1 ordering for ``< <= > >=``; NaN compares as equal; others raise."""
    ta = type(a)
    tb = type(b)
    if ta is int and tb is int:
        return (a > b) - (a < b)  # type: ignore[no-any-return]
    if (ta is int or ta is float) and (tb is int or tb is float):
        x = float(a)
        y = float(b)
        if x != x or y != y:
            return 0
        return (x > y) - (x < y)
    if ta is str and tb is str:
        return (a > b) - (a < b)  # type: ignore[no-any-return]
    raise RuleTypeError(f"cannot compare {type_name(a)} and {type_name(b)}")


def ordered(op: str, a: Any, b: Any) -> bool:
    """Apply one of ``< <= > >=``."""
    return bool(_ORDER_OPS[op](compare(a, b)))


# --------------------------------------------------------------------------- arithmetic

_ARITH_WORDS = {"+": "add", "-": "subtract", "*": "multiply"}


def _is_num(t: type) -> bool:
    return t is int or t is float


def arith(op: str, a: Any, b: Any) -> Any:
    """``+ - * / %`` with i64 wrapping, truncating division and C-style remainder."""
    ta = type(a)
    tb = type(b)
    if op == "+" and ta is str and tb is str:
        return a + b
    if not (_is_num(ta) and _is_num(tb)):
        if op in _ARITH_WORDS:
            raise RuleTypeError(f"cannot {_ARITH_WORDS[op]} {type_name(a)} and {type_name(b)}")
        word = "divide" if op == "/" else "modulo"
        raise RuleTypeError(f"cannot {word} {type_name(a)} by {type_name(b)}")
    both_int = ta is int and tb is int
    if op == "+":
        return wrap_i64(a + b) if both_int else float(a) + float(b)
    if op == "-":
        return wrap_i64(a - b) if both_int else float(a) - float(b)
    if op == "*":
        if both_int:
            return wrap_i64(a * b)
        return float(a) * float(b)
    if op == "/":
        if (tb is int and b == 0) or (tb is float and b == 0.0):
            raise EvaluationError("division by zero")
        if both_int:
            if a == I64_MIN and b == -1:
                raise EvaluationError("integer division overflow (i64::MIN / -1)")
            q = abs(a) // abs(b)
            return q if (a < 0) == (b < 0) else -q
        return float(a) / float(b)
    # "%"
    if both_int:
        if b == 0:
            raise EvaluationError("modulo by zero")
        if a == I64_MIN and b == -1:
            raise EvaluationError("integer modulo overflow (i64::MIN % -1)")
        r = abs(a) % abs(b)
        return -r if a < 0 else r
    x = float(a)
    y = float(b)
    if y == 0.0 or math.isinf(x) or x != x or y != y:
        return math.nan
    return math.fmod(x, y)


def negate(value: Any) -> Any:
    """Unary ``-``: wrapping for Int, plain for Float."""
    t = type(value)
    if t is int:
        return wrap_i64(-value)
    if t is float:
        return -value
    raise RuleTypeError(f"cannot negate {type_name(value)}")


def truncate_to_i64(value: float) -> int:
    """Float -> i64 the Rust ``as`` way: toward zero, saturating, NaN -> 0."""
    if value != value:
        return 0
    if value >= 9.223372036854775807e18:
        return I64_MAX
    if value <= -9.223372036854775808e18:
        return I64_MIN
    return int(value)


# --------------------------------------------------------------------------- string / membership ops


def op_contains(a: Any, b: Any) -> bool:
    ta = type(a)
    if ta is str and type(b) is str:
        return b in a
    if ta is list:
        return list_contains(a, b)
    raise RuleTypeError(f"contains: unsupported types {type_name(a)} and {type_name(b)}")


def op_starts_with(a: Any, b: Any) -> bool:
    if type(a) is str and type(b) is str:
        return bool(a.startswith(b))
    raise RuleTypeError(f"starts_with: unsupported types {type_name(a)} and {type_name(b)}")


def op_ends_with(a: Any, b: Any) -> bool:
    if type(a) is str and type(b) is str:
        return bool(a.endswith(b))
    raise RuleTypeError(f"ends_with: unsupported types {type_name(a)} and {type_name(b)}")


def op_in(a: Any, c: Any) -> bool:
    tc = type(c)
    if tc is list:
        return list_contains(c, a)
    if tc is dict:
        if type(a) is not str:
            raise RuleTypeError(f"in: map key must be string, got {type_name(a)}")
        return a in c
    if tc is str:
        if type(a) is not str:
            raise RuleTypeError(f"in: cannot check {type_name(a)} membership in string")
        return a in c
    raise RuleTypeError(f"in: right-hand side must be list, map, or string, got {type_name(c)}")

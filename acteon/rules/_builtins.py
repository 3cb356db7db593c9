"""Built-in functions callable from conditions (rules.md §8.5).

Each takes the already-evaluated argument list and returns a runtime value or
raises an :class:`EvalError` with the upstream message. ``now()`` is not here:
it reads the evaluation clock, so the compiler builds it from the context
(``_compile._compile_now_call``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from acteon.rules._errors import RuleTypeError
from acteon.rules._regex import regex_search
from acteon.rules._values import (
    I64_MAX,
    I64_MIN,
    display,
    list_contains_strict,
    truncate_to_i64,
    type_name,
    wrap_i64,
)

Builtin = Callable[[list[Any]], Any]


def _arity(name: str, args: list[Any], n: int) -> None:
    if len(args) != n:
        plural = "argument" if n == 1 else "arguments"
        raise RuleTypeError(f"{name}() expects {n} {plural}, got {len(args)}")


def _len(args: list[Any]) -> Any:
    _arity("len", args, 1)
    (v,) = args
    t = type(v)
    if t is str:
        return len(v.encode("utf-8"))
    if t is list or t is dict:
        return len(v)
    raise RuleTypeError(f"len() expects string, list, or map, got {type_name(v)}")


def _case(name: str, fn: Callable[[str], str]) -> Builtin:
    def impl(args: list[Any]) -> Any:
        _arity(name, args, 1)
        (v,) = args
        if type(v) is not str:
            raise RuleTypeError(f"{name}() expects string, got {type_name(v)}")
        return fn(v)

    return impl


def _contains(args: list[Any]) -> Any:
    _arity("contains", args, 2)
    a, b = args
    if type(a) is str and type(b) is str:
        return b in a
    if type(a) is list:
        return list_contains_strict(a, b)
    raise RuleTypeError(
        f"contains() expects (string, string) or (list, value), got ({type_name(a)}, {type_name(b)})"
    )


def _affix(name: str, method: str) -> Builtin:
    def impl(args: list[Any]) -> Any:
        _arity(name, args, 2)
        a, b = args
        if type(a) is str and type(b) is str:
            return getattr(a, method)(b)
        raise RuleTypeError(f"{name}() expects (string, string), got ({type_name(a)}, {type_name(b)})")

    return impl


def _matches(args: list[Any]) -> Any:
    _arity("matches", args, 2)
    a, b = args
    if type(a) is str and type(b) is str:
        return regex_search(b, a)
    raise RuleTypeError(f"matches() expects (string, string), got ({type_name(a)}, {type_name(b)})")


def _duration(args: list[Any]) -> Any:
    _arity("duration", args, 1)
    (v,) = args
    if type(v) is int:
        return v
    if type(v) is float:
        return truncate_to_i64(v)
    raise RuleTypeError(f"duration() expects number, got {type_name(v)}")


def _format(args: list[Any]) -> Any:
    if not args:
        raise RuleTypeError("format() requires at least 1 argument")
    template = args[0]
    if type(template) is not str:
        raise RuleTypeError(f"format() first argument must be string, got {type_name(template)}")
    text: str = template
    for arg in args[1:]:
        pos = text.find("{}")
        if pos < 0:
            break
        text = text[:pos] + display(arg) + text[pos + 2 :]
    return text


def _abs(args: list[Any]) -> Any:
    _arity("abs", args, 1)
    (v,) = args
    if type(v) is int:
        return wrap_i64(abs(v))
    if type(v) is float:
        return abs(v)
    raise RuleTypeError(f"abs() expects number, got {type_name(v)}")


def _extreme(name: str, pick: Callable[[Any, Any], Any]) -> Builtin:
    def impl(args: list[Any]) -> Any:
        _arity(name, args, 2)
        a, b = args
        ta, tb = type(a), type(b)
        if ta is int and tb is int:
            return pick(a, b)
        if (ta is int or ta is float) and (tb is int or tb is float):
            x, y = float(a), float(b)
            # f64::min/max ignore a NaN operand.
            if x != x:
                return y
            if y != y:
                return x
            return pick(x, y)
        raise RuleTypeError(f"{name}() expects numbers, got ({type_name(a)}, {type_name(b)})")

    return impl


def _to_string(args: list[Any]) -> Any:
    _arity("to_string", args, 1)
    return display(args[0])


_INT_TEXT = re.compile(r"[+-]?[0-9]+")


def parse_i64(text: str) -> int:
    """Rust ``str::parse::<i64>``: optional sign, ASCII digits, in range; ValueError(reason)."""
    if text == "":
        raise ValueError("cannot parse integer from empty string")
    if not _INT_TEXT.fullmatch(text):
        raise ValueError("invalid digit found in string")
    value = int(text)
    if value > I64_MAX:
        raise ValueError("number too large to fit in target type")
    if value < I64_MIN:
        raise ValueError("number too small to fit in target type")
    return value


def _to_int(args: list[Any]) -> Any:
    _arity("to_int", args, 1)
    (v,) = args
    t = type(v)
    if t is int:
        return v
    if t is float:
        return truncate_to_i64(v)
    if t is bool:
        return 1 if v else 0
    if t is str:
        try:
            return parse_i64(v)
        except ValueError as exc:
            raise RuleTypeError(f"to_int() cannot parse '{v}': {exc}") from None
    raise RuleTypeError(f"to_int() cannot convert {type_name(v)} to int")


BUILTINS: dict[str, Builtin] = {
    "len": _len,
    "lower": _case("lower", str.lower),
    "upper": _case("upper", str.upper),
    "contains": _contains,
    "starts_with": _affix("starts_with", "startswith"),
    "ends_with": _affix("ends_with", "endswith"),
    "matches": _matches,
    "duration": _duration,
    "format": _format,
    "abs": _abs,
    "min": _extreme("min", min),
    "max": _extreme("max", max),
    "to_string": _to_string,
    "to_int": _to_int,
}

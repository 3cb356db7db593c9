"""Stringifying JSON values the way the upstream gateway does (workflows.md §1.1).

Python's ``repr``/``json.dumps`` write ``1e+21`` and ``1e-05`` where the
upstream writes ``1e21`` and ``0.00001``; templates and error texts need the
upstream form so that rendered payloads are byte-for-byte the same.
"""

from __future__ import annotations

import json
import math
from decimal import Decimal
from typing import Any


def format_float(value: float) -> str:
    """Shortest round-trip digits; plain decimal in [1e-5, 1e16), else ``1e21`` / ``1.5e-7``."""
    if math.isnan(value) or math.isinf(value):
        return "null"  # JSON has no NaN/inf; upstream serialises them as null
    if value == 0.0:
        return "-0.0" if math.copysign(1.0, value) < 0 else "0.0"
    magnitude = abs(value)
    sign, digits, exponent = Decimal(repr(value)).as_tuple()
    text_digits = "".join(str(d) for d in digits).rstrip("0") or "0"
    # Position of the decimal point relative to the first digit.
    point = len(digits) + int(exponent)
    prefix = "-" if sign else ""
    if 1e-5 <= magnitude < 1e16:
        if point <= 0:
            return f"{prefix}0.{'0' * -point}{text_digits}"
        if point >= len(text_digits):
            return f"{prefix}{text_digits}{'0' * (point - len(text_digits))}.0"
        return f"{prefix}{text_digits[:point]}.{text_digits[point:]}"
    mantissa = text_digits[0] + ("." + text_digits[1:] if len(text_digits) > 1 else "")
    return f"{prefix}{mantissa}e{point - 1}"


def compact_json(value: Any) -> str:
    """Compact JSON with sorted object keys and upstream float rendering."""
    parts: list[str] = []
    _encode(value, parts)
    return "".join(parts)


def _encode(value: Any, out: list[str]) -> None:
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, int):
        out.append(str(value))
    elif isinstance(value, float):
        out.append(format_float(value))
    elif isinstance(value, str):
        out.append(json.dumps(value, ensure_ascii=False))
    elif isinstance(value, dict):
        out.append("{")
        for i, key in enumerate(sorted(value, key=str)):
            if i:
                out.append(",")
            out.append(json.dumps(str(key), ensure_ascii=False))
            out.append(":")
            _encode(value[key], out)
        out.append("}")
    elif isinstance(value, list | tuple):
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            _encode(item, out)
        out.append("]")
    else:
        out.append(json.dumps(str(value), ensure_ascii=False))


def render_inline(value: Any) -> str:
    """How a value reads inside a string: null/true/false, numbers, raw strings, compact JSON."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return format_float(value)
    return compact_json(value)


def strict_equal(a: Any, b: Any) -> bool:
    """JSON equality without Python's coercions: ``1 != 1.0`` and ``True != 1``."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, int) and isinstance(b, int):
        return a == b
    if isinstance(a, float) and isinstance(b, float):
        return a == b
    if isinstance(a, int | float) or isinstance(b, int | float):
        return False
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, str) or isinstance(b, str):
        return isinstance(a, str) and isinstance(b, str) and a == b
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(strict_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(strict_equal(a[k], b[k]) for k in a)
    return False

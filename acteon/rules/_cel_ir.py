"""IR node added by the CEL frontend: ``has(e.f)`` (field presence).

The node lives here, next to the frontend that builds it, and registers its
compiler with :mod:`acteon.rules._compile` like every built-in node, so the
engine compiles it to a closure the same way.

Semantics: ``has(e.f)`` evaluates ``e`` exactly as ``e.f`` would. If ``e`` is a
map the result is whether key ``f`` is present (a present key whose value is
null counts as present); otherwise it is the same type error ``e.f`` raises
(``type error: cannot access field 'f' on null``). Standard CEL also errors on
non-map operands.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from acteon.rules import _compile, ir
from acteon.rules._errors import RuleTypeError
from acteon.rules._values import type_name


@dataclass(frozen=True, slots=True)
class Has(ir.Expr):
    """``has(base.field)``: true iff the map ``base`` has the key ``field``."""

    base: ir.Expr
    field: str

    def children(self) -> tuple[ir.Expr, ...]:
        return (self.base,)

    def to_source(self) -> str:
        return f"has({self.base.to_source()}.{self.field})"


def _compile_has(node: Has) -> ir.Evaluator:
    base = _compile.compile_expr(node.base)
    key = node.field

    def fn(ctx: Any) -> Any:
        value = base(ctx)
        if type(value) is dict:
            return key in value
        raise RuleTypeError(f"cannot access field '{key}' on {type_name(value)}", field=node.base.to_source())

    return fn


_compile._register(Has)(_compile_has)

__all__ = ["Has"]

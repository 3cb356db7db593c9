"""celpy parse tree -> rule IR: the CEL operators, functions and methods the engine implements.

Constructs the engine has no IR for (macros, message construction, root-scope
names, ...) fail with ``CEL construct not supported: <construct>``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from lark import Token, Tree

from acteon.rules import ir
from acteon.rules._cel_ir import Has
from acteon.rules._cel_parse import MAX_DEPTH, _decode_string, _fail, _literal, _parse_tree, _unsupported

MAX_IR_DEPTH = 256
"""Longest operator chain accepted (``a || b || ...``); compiling and rendering recurse on it."""

_B = ir.BinaryOp

_RELATION_OPS: dict[str, ir.BinaryOp] = {
    "relation_lt": _B.LT,
    "relation_le": _B.LE,
    "relation_gt": _B.GT,
    "relation_ge": _B.GE,
    "relation_eq": _B.EQ,
    "relation_ne": _B.NE,
    "relation_in": _B.IN,
}
_ADDITION_OPS: dict[str, ir.BinaryOp] = {"addition_add": _B.ADD, "addition_sub": _B.SUB}
_MULTIPLICATION_OPS: dict[str, ir.BinaryOp] = {
    "multiplication_mul": _B.MUL,
    "multiplication_div": _B.DIV,
    "multiplication_mod": _B.MOD,
}

# Receiver-style CEL macros and the argument counts that make them macros.
_MACROS: dict[str, tuple[int, ...]] = {
    "all": (2,),
    "exists": (2,),
    "exists_one": (2,),
    "existsOne": (2,),
    "map": (2, 3),
    "filter": (2,),
    "transformList": (3, 4),
    "transformMap": (3, 4),
}

# Standard CEL functions the engine has no value type or builtin for.
_UNSUPPORTED_FUNCTIONS: dict[str, str] = {
    "double": "function 'double()' (numbers convert implicitly; use int() to truncate)",
    "uint": "function 'uint()' (unsigned integers)",
    "bytes": "function 'bytes()' (bytes values)",
    "dyn": "function 'dyn()'",
    "type": "function 'type()'",
    "timestamp": "function 'timestamp()' (use the 'now' and 'time' identifiers)",
}


# --------------------------------------------------------------------------- translation


# The grammar levels between ``expr`` and ``member``; each has one child when no operator is used.
_PASS_THROUGH = ("expr", "conditionalor", "conditionaland", "relation", "addition", "multiplication", "unary")


def _simple_primary(expr: Tree[Token]) -> Tree[Token] | None:
    """The ``primary`` of an ``expr`` that is nothing but that primary, else None."""
    node: Any = expr
    for rule in _PASS_THROUGH:
        if not isinstance(node, Tree) or node.data != rule or len(node.children) != 1:
            return None
        node = node.children[0]
    if not isinstance(node, Tree) or node.data != "member" or len(node.children) != 1:
        return None
    node = node.children[0]
    if isinstance(node, Tree) and node.data == "primary":
        return node
    return None


class _Translator:
    """Walks a celpy parse tree and builds IR; counts nesting as upstream does."""

    __slots__ = ("depth",)

    def __init__(self) -> None:
        self.depth = 0

    def _enter(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            _fail(f"CEL parse error: expression nesting depth exceeded maximum of {MAX_DEPTH}")

    # ------------------------------------------------------------------ expression levels

    def expr(self, tree: Any) -> ir.Expr:
        """``expr : conditionalor ["?" conditionalor ":" expr]`` (one sub-expression)."""
        self._enter()
        try:
            children = tree.children
            cond = self.conditionalor(children[0])
            if len(children) == 1:
                return cond
            self._enter()
            try:
                then = self.conditionalor(children[1])
            finally:
                self.depth -= 1
            otherwise = self.expr(children[2])
            return ir.Ternary(cond, then, otherwise)
        finally:
            self.depth -= 1

    def _left_chain(
        self,
        tree: Tree[Token],
        ops: dict[str, ir.BinaryOp] | ir.BinaryOp,
        operand: Callable[[Any], ir.Expr],
    ) -> ir.Expr:
        """A left-associative chain (``a op b op c``), walked without recursion."""
        rule = tree.data
        rights: list[tuple[ir.BinaryOp, Any]] = []
        node: Any = tree
        while len(node.children) == 2:
            left, right = node.children
            if isinstance(ops, ir.BinaryOp):
                op, node = ops, left
            else:
                op, node = ops[left.data], left.children[0]
            rights.append((op, right))
            if node.data != rule:  # pragma: no cover - grammar guarantees the shape
                _fail(f"CEL parse error: unexpected tree shape {node.data}")
        result = operand(node.children[0])
        for op, right in reversed(rights):
            result = ir.Binary(op, result, operand(right))
        return result

    def conditionalor(self, tree: Tree[Token]) -> ir.Expr:
        return self._left_chain(tree, _B.OR, self.conditionaland)

    def conditionaland(self, tree: Tree[Token]) -> ir.Expr:
        return self._left_chain(tree, _B.AND, self.relation)

    def relation(self, tree: Tree[Token]) -> ir.Expr:
        return self._left_chain(tree, _RELATION_OPS, self.addition)

    def addition(self, tree: Tree[Token]) -> ir.Expr:
        return self._left_chain(tree, _ADDITION_OPS, self.multiplication)

    def multiplication(self, tree: Tree[Token]) -> ir.Expr:
        return self._left_chain(tree, _MULTIPLICATION_OPS, self.unary)

    def unary(self, tree: Tree[Token]) -> ir.Expr:
        """``unary : member | unary_not unary | unary_neg unary`` (each level counts once)."""
        ops: list[ir.UnaryOp] = []
        node: Any = tree
        saved = self.depth
        try:
            while True:
                self._enter()
                children = node.children
                if len(children) == 1:
                    break
                ops.append(ir.UnaryOp.NOT if children[0].data == "unary_not" else ir.UnaryOp.NEG)
                node = children[1]
            result = self.member(children[0])
        finally:
            self.depth = saved
        for op in reversed(ops):
            result = ir.Unary(op, result)
        return result

    # ------------------------------------------------------------------ postfix and primaries

    def member(self, tree: Tree[Token]) -> ir.Expr:
        """Postfix chain: ``.field``, ``.method(args)``, ``[index]``, ``{fields}``."""
        steps: list[Tree[Token]] = []
        node: Any = tree
        while True:
            inner = node.children[0]
            if inner.data == "primary":
                break
            steps.append(inner)
            node = inner.children[0]
        result = self.primary(inner)
        for step in reversed(steps):
            kind = step.data
            if kind == "member_dot":
                result = ir.Field(result, str(step.children[1]))
            elif kind == "member_index":
                result = ir.Index(result, self.expr(step.children[1]))
            elif kind == "member_dot_arg":
                name = str(step.children[1])
                args = self.exprlist(step.children[2] if len(step.children) > 2 else None)
                result = self.method(result, name, args)
            else:  # member_object
                _unsupported("message construction (Type{field: value})")
        return result

    def exprlist(self, tree: Any) -> list[ir.Expr]:
        if tree is None:
            return []
        return [self.expr(child) for child in tree.children]

    def primary(self, tree: Tree[Token]) -> ir.Expr:
        inner: Any = tree.children[0]
        kind = inner.data
        if kind == "ident":
            return ir.Ident(str(inner.children[0]))
        if kind == "literal":
            return _literal(inner.children[0])
        if kind == "paren_expr":
            return self.expr(inner.children[0])
        if kind == "ident_arg":
            name = str(inner.children[0])
            arg_tree = inner.children[1] if len(inner.children) > 1 else None
            if name == "has":
                return self.has(arg_tree)
            return self.function(name, self.exprlist(arg_tree))
        if kind == "list_lit":
            return ir.List(self.exprlist(inner.children[0] if inner.children else None))
        if kind == "map_lit":
            return self.map_literal(inner.children[0] if inner.children else None)
        if kind in ("dot_ident", "dot_ident_arg"):
            _unsupported(f"leading-dot (root scope) name '.{inner.children[0]}'")
        _unsupported(kind)  # pragma: no cover - grammar has no other primaries

    def map_literal(self, tree: Any) -> ir.Expr:
        if tree is None:
            return ir.Map([])
        entries: list[tuple[str, ir.Expr]] = []
        children = tree.children
        for i in range(0, len(children), 2):
            key_primary = _simple_primary(children[i])
            key: str | None = None
            if key_primary is not None:
                inner: Any = key_primary.children[0]
                if inner.data == "ident":
                    # As in the Rust gateway, a bare identifier key is the key's name.
                    key = str(inner.children[0])
                elif inner.data == "literal" and inner.children[0].type in ("STRING_LIT", "MLSTRING_LIT"):
                    key = _decode_string(str(inner.children[0]))
            if key is None:
                _unsupported("map literal key that is not a string literal or a name")
            entries.append((key, self.expr(children[i + 1])))
        return ir.Map(entries)

    # ------------------------------------------------------------------ functions and methods

    def has(self, arg_tree: Any) -> ir.Expr:
        args = arg_tree.children if arg_tree is not None else []
        if len(args) != 1:
            _fail(f"CEL parse error: has() expects 1 argument, got {len(args)}")
        target = self.expr(args[0])
        if not isinstance(target, ir.Field):
            _fail("CEL parse error: has() argument must be a field selection such as has(a.b)")
        return Has(target.base, target.name)

    def function(self, name: str, args: list[ir.Expr]) -> ir.Expr:
        if name == "size":
            return ir.Call("len", args)
        if name == "int":
            return ir.Call("to_int", args)
        if name == "string":
            return ir.Call("to_string", args)
        if name == "semantic_match":
            return _semantic_match(args)
        if name == "wasm":
            return _wasm(args)
        if name == "has_active_event":
            return _has_active_event(args)
        if name == "duration" and len(args) == 1 and isinstance(args[0], ir.String):
            _unsupported("duration() with a string argument (give the duration in seconds, e.g. 3600)")
        unsupported = _UNSUPPORTED_FUNCTIONS.get(name)
        if unsupported is not None:
            _unsupported(unsupported)
        if name in _MACROS:
            _unsupported(f"macro '{name}'")
        return ir.Call(name, args)

    def method(self, receiver: ir.Expr, name: str, args: list[ir.Expr]) -> ir.Expr:
        n = len(args)
        if n == 1:
            op = _METHOD_OPS.get(name)
            if op is not None:
                return ir.Binary(op, receiver, args[0])
        if name == "size" and n == 0:
            return ir.Call("len", [receiver])
        if name == "semanticMatch" and n in (1, 2):
            topic, threshold = args[0], args[1] if n == 2 else ir.Float(0.8)
            if isinstance(topic, ir.String) and isinstance(threshold, ir.Int | ir.Float):
                return ir.SemanticMatch(topic.val, float(threshold.val), receiver)
        if n in _MACROS.get(name, ()):
            _unsupported(f"macro '{name}'")
        return ir.Call(name, [receiver, *args])


_METHOD_OPS: dict[str, ir.BinaryOp] = {
    "contains": _B.CONTAINS,
    "startsWith": _B.STARTS_WITH,
    "endsWith": _B.ENDS_WITH,
    "matches": _B.MATCHES,
}


def _semantic_match(args: list[ir.Expr]) -> ir.Expr:
    if len(args) in (2, 3):
        topic, threshold = args[0], args[1]
        if isinstance(topic, ir.String) and isinstance(threshold, ir.Int | ir.Float):
            text = args[2] if len(args) == 3 else None
            return ir.SemanticMatch(topic.val, float(threshold.val), text)
    return ir.Call("semantic_match", args)


def _wasm(args: list[ir.Expr]) -> ir.Expr:
    if len(args) in (1, 2) and isinstance(args[0], ir.String):
        function = "evaluate"
        if len(args) == 2 and isinstance(args[1], ir.String):
            function = args[1].val
        return ir.WasmCall(args[0].val, function)
    return ir.Call("wasm", args)


def _has_active_event(args: list[ir.Expr]) -> ir.Expr:
    if len(args) not in (1, 2):
        _fail(f"CEL parse error: has_active_event() expects 1 or 2 arguments, got {len(args)}")
    event_type = args[0]
    if not isinstance(event_type, ir.String):
        _fail("CEL parse error: has_active_event() event type must be a string literal")
    return ir.HasActiveEvent(event_type.val, args[1] if len(args) == 2 else None)


def _ir_depth(expr: ir.Expr) -> int:
    """Depth of an IR tree, computed without recursion."""
    deepest = 0
    stack: list[tuple[ir.Expr, int]] = [(expr, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > deepest:
            deepest = depth
        for child in node.children():
            stack.append((child, depth + 1))
    return deepest


def _translate(text: str) -> ir.Expr:
    if not text.strip():
        _fail("empty expression")
    tree = _parse_tree(text)
    result = _Translator().expr(tree)
    if _ir_depth(result) > MAX_IR_DEPTH:
        _fail(f"CEL parse error: expression too deeply nested (more than {MAX_IR_DEPTH} levels of operators)")
    return result


"""CEL frontend: CEL text -> rule IR (rules.md §5, DECISIONS.md D26).

The text is parsed with cel-python's Lark grammar (``celpy.celparser``), so
acteon reads *standard* CEL: one precedence level for ``== != < <= > >= in``,
negative number literals, single- and double-quoted strings, exponent floats
and ``has()``. The parse tree is then translated into the engine's own IR
(:mod:`acteon.rules.ir`), so CEL conditions compile to exactly the same
closures as YAML conditions; cel-python's evaluator is never used.

On top of standard CEL the functions and methods of the Rust gateway are kept
(rules.md §5.4: ``size``/``int``/``string``, ``semantic_match``, ``wasm``,
``.contains()`` ...), and ``has_active_event`` is reachable (D17). CEL
features the engine has no IR for (macros, ``?.``, message construction,
bytes, unsigned ints, timestamps ...) are load errors naming the construct.

Public entry points:

* :func:`cel_to_ir` -- one expression -> IR (raises :class:`RuleLoadError`);
* :func:`cel_precedence_warnings` -- where standard CEL and the Rust gateway
  read an expression differently (for ``acteon rules validate``).
"""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Callable
from typing import Any, NoReturn

from celpy.celparser import CELParseError, CELParser
from lark import Token, Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from acteon._exceptions import RuleLoadError
from acteon.rules import ir
from acteon.rules._cel_ir import Has
from acteon.rules._frontends import Frontend, register_frontend
from acteon.rules._rulefile import CompileError, Dialect, FileResult, parse_rule_file, read_text
from acteon.rules._values import I64_MAX, I64_MIN
from acteon.rules._yaml_loader import Node

MAX_DEPTH = 64
"""Nesting limit, measured as upstream does (rules.md §5.3): 31 nested parentheses load, 32 do not."""

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

_ESCAPE = re.compile(r"\\(?:[0-3][0-7]{2}|x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|.)", re.S)
_SIMPLE_ESCAPES = {
    "a": "\a",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
    '"': '"',
    "'": "'",
    "\\": "\\",
    "`": "`",
}

_parser_lock = threading.Lock()
_parser: CELParser | None = None


class _CelError(Exception):
    """A translation failure; ``str()`` is the text after ``parse error: ``."""


def _fail(message: str) -> NoReturn:
    raise _CelError(message)


def _unsupported(construct: str) -> NoReturn:
    raise _CelError(f"CEL construct not supported: {construct}")


# --------------------------------------------------------------------------- parsing


def _get_parser() -> CELParser:
    global _parser
    parser = _parser
    if parser is None:
        with _parser_lock:
            parser = _parser
            if parser is None:
                parser = _parser = CELParser()
    return parser


def _quote_rest(text: str) -> str:
    # Rust debug quoting, as upstream's "unexpected trailing input" message.
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _prefix_parses(text: str, pos: int) -> bool:
    """Whether ``text[:pos]`` alone is a complete expression."""
    prefix = text[:pos]
    if not prefix.strip() or pos >= len(text):
        return False
    try:
        _get_parser().parse(prefix)
    except (CELParseError, RecursionError):
        return False
    return True


def _optional_syntax(text: str, pos: int) -> bool:
    """Whether the ``?`` at ``pos`` is CEL's optional syntax (``a.?b``, ``a[?i]``, ``{?k: v}``)."""
    if not 0 <= pos < len(text) or text[pos] != "?":
        return False
    before = text[:pos].rstrip()
    return bool(before) and before[-1] in ".[{,"


def _token_position(exc: UnexpectedToken) -> tuple[int | None, int | None, int | None]:
    """``(offset, line, column)`` of the unexpected token.

    celpy re-creates ``true``/``false`` tokens without positions; for those the
    lexer's counter (which stands just past the token) gives them back.
    """
    token = exc.token
    if token.start_pos is not None:
        return token.start_pos, exc.line, exc.column
    parser: Any = exc.interactive_parser
    try:
        counter = parser.lexer_thread.state.line_ctr
    except AttributeError:  # pragma: no cover - depends on Lark internals
        return None, None, None
    width = len(str(token))
    return counter.char_pos - width, counter.line, counter.column - width


def _context(text: str, pos: int) -> str:
    """The source line holding ``pos`` and a caret under it (as Lark's context)."""
    line_start = text.rfind("\n", 0, pos) + 1
    line_end = text.find("\n", pos)
    line = text[line_start : None if line_end < 0 else line_end]
    return f"{line}\n{' ' * (pos - line_start)}^"


def _describe(exc: BaseException | None, text: str) -> tuple[str, int | None]:
    """A one-line description of a Lark parse failure (what was found where), and its offset."""
    if isinstance(exc, UnexpectedToken):
        token = exc.token
        pos, line, column = _token_position(exc)
        where = f"line {line}, column {column}"
        if pos is not None and _optional_syntax(text, pos):
            raise _CelError("CEL construct not supported: optional syntax '.?' / '[?' (optional values)")
        if token.type == "$END":
            return f"unexpected end of input at {where}", pos
        if pos is not None and _prefix_parses(text, pos):
            return f"unexpected trailing input: {_quote_rest(text[pos:].strip())} at {where}", pos
        return f"unexpected token {str(token)!r} at {where}", pos
    if isinstance(exc, UnexpectedCharacters):
        where = f"line {exc.line}, column {exc.column}"
        pos = exc.pos_in_stream or 0
        if _optional_syntax(text, pos):
            raise _CelError("CEL construct not supported: optional syntax '.?' / '[?' (optional values)")
        char = text[pos] if 0 <= pos < len(text) else ""
        if char in ("'", '"'):
            return f"unterminated string at {where}", pos
        if _prefix_parses(text, pos):
            return f"unexpected trailing input: {_quote_rest(text[pos:].strip())} at {where}", pos
        return f"unexpected character {char!r} at {where}", pos
    if isinstance(exc, UnexpectedEOF):
        return "unexpected end of input", None
    if isinstance(exc, UnexpectedInput):
        return f"unexpected input at line {exc.line}, column {exc.column}", None
    return "invalid expression", None


@functools.lru_cache(maxsize=256)
def _cached_parse(text: str) -> Tree[Token]:
    # Loading a .cel file parses each condition twice (warnings, then IR); trees are never mutated.
    tree: Tree[Token] = _get_parser().parse(text)
    return tree


def _parse_tree(text: str) -> Tree[Token]:
    try:
        tree = _cached_parse(text)
    except CELParseError as exc:
        detail, pos = _describe(exc.__context__, text)
        context = str(exc.args[0]).rstrip("\n") if exc.args else ""
        if pos is not None and getattr(exc.__context__, "pos_in_stream", None) is None:
            context = _context(text, pos)  # celpy's context has no position for this token
        message = f"CEL parse error: {detail}"
        if context:
            message += "\n" + "\n".join("    " + line for line in context.splitlines())
        _fail(message)
    except RecursionError:
        _fail(f"CEL parse error: expression nesting depth exceeded maximum of {MAX_DEPTH}")
    return tree


# --------------------------------------------------------------------------- literals


def _decode_string(raw: str) -> str:
    prefix = raw[0]
    if prefix in "rR":
        _unsupported("raw string literal " + _short(raw) + " (use a normal string and escape backslashes)")
    quote = raw[:3] if raw[:3] in ('"""', "'''") else raw[0]
    body = raw[len(quote) : -len(quote)]
    if "\\" not in body:
        return body

    def expand(match: re.Match[str]) -> str:
        esc = match.group()
        c = esc[1]
        simple = _SIMPLE_ESCAPES.get(c)
        if simple is not None and len(esc) == 2:
            return simple
        if c in "xuU" and len(esc) > 2:
            code = int(esc[2:], 16)
        elif c in "0123" and len(esc) == 4:
            code = int(esc[1:], 8)
        else:
            # Unknown escapes (and ``\b``, ``\?``) keep their backslash, as in the Rust
            # gateway, so regexes such as "^\d+$" or "\bword\b" keep their meaning.
            return esc
        if 0xD800 <= code <= 0xDFFF or code > 0x10FFFF:
            _fail(f"CEL parse error: invalid unicode escape {esc!r} in string literal")
        return chr(code)

    return _ESCAPE.sub(expand, body)


def _short(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _int_literal(text: str) -> ir.Expr:
    negative = text.startswith("-")
    digits = text[1:] if negative else text
    value = int(digits[2:], 16) if digits[:2] in ("0x", "0X") else int(digits)
    if negative:
        value = -value
    if not I64_MIN <= value <= I64_MAX:
        _fail(f"CEL parse error: integer literal out of range: {text}")
    return ir.Int(value)


def _literal(token: Token) -> ir.Expr:
    kind = token.type
    text = str(token)
    if kind == "INT_LIT":
        return _int_literal(text)
    if kind == "FLOAT_LIT":
        return ir.Float(float(text))
    if kind in ("STRING_LIT", "MLSTRING_LIT"):
        return ir.String(_decode_string(text))
    if kind == "BOOL_LIT":
        return ir.Bool(text == "true")
    if kind == "NULL_LIT":
        return ir.Null()
    if kind == "UINT_LIT":
        _unsupported(f"unsigned integer literal '{text}' (drop the 'u' suffix)")
    if kind == "BYTES_LIT":
        _unsupported(f"bytes literal {_short(text)}")
    _unsupported(f"literal {_short(text)}")  # pragma: no cover - grammar has no other kinds


# --------------------------------------------------------------------------- translation


def _only_child(tree: Tree[Token]) -> Any:
    return tree.children[0]


_PASS_THROUGH = ("expr", "conditionalor", "conditionaland", "relation", "addition", "multiplication", "unary")


def _simple_primary(expr: Tree[Token]) -> Tree[Token] | None:
    """The ``primary`` of an ``expr`` that is nothing but that primary, else None."""
    node: Any = expr
    for rule in (
        "expr",
        "conditionalor",
        "conditionaland",
        "relation",
        "addition",
        "multiplication",
        "unary",
    ):
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


# --------------------------------------------------------------------------- public API


def _translate(text: str) -> ir.Expr:
    if not text.strip():
        _fail("empty expression")
    tree = _parse_tree(text)
    result = _Translator().expr(tree)
    if _ir_depth(result) > MAX_IR_DEPTH:
        _fail(f"CEL parse error: expression too deeply nested (more than {MAX_IR_DEPTH} levels of operators)")
    return result


def cel_to_ir(
    text: str,
    *,
    file: str | None = None,
    rule: str | None = None,
    key: str | None = None,
) -> ir.Expr:
    """Translate one CEL expression into a rule IR tree.

    Raises :class:`acteon.RuleLoadError` (``parse error: ...``) naming
    ``file``/``rule``/``key`` when given: ``parse error: empty expression``,
    ``parse error: CEL parse error: <detail>`` for syntax errors and
    ``parse error: CEL construct not supported: <construct>`` for CEL
    features the engine does not implement.
    """
    try:
        return _translate(text)
    except _CelError as exc:
        raise RuleLoadError(f"parse error: {exc}", file=file, rule=rule, key=key) from None


# --------------------------------------------------------------------------- rule files

CEL_ACTION_TYPES = (
    "allow",
    "deny",
    "deduplicate",
    "suppress",
    "reroute",
    "throttle",
    "modify",
    "chain",
    "schedule",
    "weighted_route",  # acteon extension: acteon.resilience.routing
)
"""Action types a ``.cel`` rule file accepts (rules.md §5.1); others are ``unknown variant`` errors."""


def _read_cel_condition(node: Node, key: str, warnings: list[tuple[str, str]]) -> str:
    # Any scalar is the expression's text (``condition: 1`` -> "1"); maps and lists are errors.
    text = read_text(node, key, optional=False)
    assert text is not None
    # Expressions the Rust gateway reads differently are reported with the load warnings.
    warnings.extend((key, warning) for warning in cel_precedence_warnings(text))
    return text


def compile_cel_condition(text: str, key: str) -> ir.Expr:
    """A CEL condition for a rule-file frontend: IR, or :class:`CompileError` (``key`` = where).

    Used by ``.cel`` files and by YAML's ``condition: {cel: "<expr>"}`` extension.
    """
    try:
        return _translate(text)
    except _CelError as exc:
        raise CompileError(str(exc), key) from None


CEL_DIALECT = Dialect(
    label="CEL rule file",
    read_condition=_read_cel_condition,
    compile_condition=compile_cel_condition,
    action_types=CEL_ACTION_TYPES,
    read_metadata=False,
)
"""The ``.cel`` rule file: the YAML envelope with string conditions (rules.md §5.1)."""


def parse_cel_file(text: str, file: str | None = None) -> FileResult:
    """Read and compile a ``.cel`` rule file (rules and load warnings).

    Raises :class:`acteon.RuleLoadError`: ``parse error: CEL rule file parse
    error[ in <file>]: ...`` for the envelope, ``parse error: <expression
    error>`` for a condition.
    """
    return parse_rule_file(text, file, CEL_DIALECT)


def cel_precedence_warnings(expr_text: str) -> list[str]:
    """Where the Rust gateway reads ``expr_text`` differently from standard CEL.

    Upstream binds ``==``/``!=`` looser than ``< <= > >= in``; standard CEL
    (acteon) puts them on one left-associative level. An unparenthesised chain
    mixing the two kinds (``x == y < z``) is reported; when a relational
    operator follows an equality operator the two readings differ. An
    expression that does not parse gives no warnings (loading reports it).
    """
    if not expr_text.strip():
        return []
    try:
        tree = _cached_parse(expr_text)
    except (CELParseError, RecursionError):
        return []
    # A relation node that is the left operand of another relation operator is inside
    # a longer chain; only the outermost relation of each chain is examined.
    inner = {id(op.children[0]) for op in tree.iter_subtrees() if op.data in _RELATION_OPS and op.children}
    warnings: list[str] = []
    for node in tree.iter_subtrees_topdown():  # type: ignore[no-untyped-call]
        if node.data != "relation" or len(node.children) != 2 or id(node) in inner:
            continue
        ops: list[str] = []
        operands: list[str] = []
        cur: Any = node
        while isinstance(cur, Tree) and cur.data == "relation" and len(cur.children) == 2:
            op_tree, right = cur.children
            ops.append(_RELATION_OPS[op_tree.data].value)
            operands.append(_source_of(expr_text, right))
            cur = op_tree.children[0]
        operands.append(_source_of(expr_text, cur))
        ops.reverse()
        operands.reverse()
        if len({op in _EQUALITY for op in ops}) < 2:
            continue
        source = _source_of(expr_text, node)
        cel_reading = _fold(operands, ops)
        # Upstream: '<' '<=' '>' '>=' 'in' bind tighter, then '==' / '!=' left to right.
        segments: list[str] = []
        eq_ops: list[str] = []
        seg_operands: list[str] = [operands[0]]
        seg_ops: list[str] = []
        for op, operand in zip(ops, operands[1:], strict=True):
            if op in _EQUALITY:
                segments.append(_fold(seg_operands, seg_ops))
                eq_ops.append(op)
                seg_operands = [operand]
                seg_ops = []
            else:
                seg_operands.append(operand)
                seg_ops.append(op)
        segments.append(_fold(seg_operands, seg_ops))
        rust_reading = _fold(segments, eq_ops)
        if cel_reading != rust_reading:
            warnings.append(
                f"{source!r} means {cel_reading} in acteon (standard CEL: '==', '!=', '<', '<=', '>', '>=' "
                f"and 'in' share one precedence level) but {rust_reading} in the Rust gateway; "
                "add parentheses"
            )
        else:
            warnings.append(
                f"{source!r} mixes equality and relational operators without parentheses; it means "
                f"{cel_reading} in acteon and in the Rust gateway, but parentheses make that explicit"
            )
    return warnings


_EQUALITY = frozenset({"==", "!="})


def _fold(operands: list[str], ops: list[str]) -> str:
    result = operands[0]
    for op, operand in zip(ops, operands[1:], strict=True):
        result = f"({result} {op} {operand})"
    return result


def _source_of(text: str, node: Tree[Token]) -> str:
    """The source text of ``node`` (positions recovered from its tokens, in order)."""
    start: int | None = None
    end: int | None = None
    stack: list[Any] = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, Tree):
            stack.extend(reversed(item.children))
            continue
        pos = item.start_pos
        if pos is None:
            # celpy re-creates true/false tokens without positions: find them in the text.
            pos = text.find(str(item), end if end is not None else 0)
            if pos < 0:
                continue
        if start is None:
            start = pos
        end = pos + len(str(item))
    meta = node.meta
    if not meta.empty:
        meta_start = getattr(meta, "start_pos", None)
        meta_end = getattr(meta, "end_pos", None)
        if meta_start is not None and (start is None or meta_start < start):
            start = meta_start
        if meta_end is not None and (end is None or meta_end > end):
            end = meta_end
    if start is None or end is None:
        return text.strip()
    return text[start:end]


register_frontend(Frontend("cel", ("cel",), parse_cel_file))


__all__ = [
    "CEL_ACTION_TYPES",
    "CEL_DIALECT",
    "MAX_DEPTH",
    "Has",
    "cel_precedence_warnings",
    "cel_to_ir",
    "parse_cel_file",
]

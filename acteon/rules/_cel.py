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

This module holds those and the ``.cel`` rule-file frontend; parsing and
literals live in ``_cel_parse``, the tree -> IR translation in ``_cel_translate``.
"""

from __future__ import annotations

from typing import Any

from celpy.celparser import CELParseError
from lark import Token, Tree

from acteon._exceptions import RuleLoadError
from acteon.rules import ir
from acteon.rules._cel_ir import Has
from acteon.rules._cel_parse import MAX_DEPTH, _cached_parse, _CelError
from acteon.rules._cel_translate import _RELATION_OPS, _translate
from acteon.rules._frontends import Frontend, register_frontend
from acteon.rules._rulefile import CompileError, Dialect, FileResult, parse_rule_file, read_text
from acteon.rules._yaml_loader import Node

# --------------------------------------------------------------------------- public API


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

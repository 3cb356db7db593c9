"""CEL text -> celpy parse tree, and CEL literals -> IR values (the lexical layer of the CEL frontend).

Everything here fails with :class:`_CelError`, whose text becomes the
``parse error: ...`` message of :func:`acteon.rules._cel.cel_to_ir`. Syntax
errors are re-described from Lark's exceptions into one line naming what was
found where, plus the offending source line with a caret.
"""

from __future__ import annotations

import functools
import re
import threading
from typing import Any, NoReturn

from celpy.celparser import CELParseError, CELParser
from lark import Token, Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from acteon.rules import ir
from acteon.rules._values import I64_MAX, I64_MIN

MAX_DEPTH = 64
"""Nesting limit, measured as upstream does (rules.md §5.3): 31 nested parentheses load, 32 do not."""

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


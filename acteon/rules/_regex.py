"""Regexes in the upstream (Rust ``regex`` crate) dialect.

The Rust dialect is RE2's: no look-around, no back-references, no possessive
quantifiers or atomic groups. When ``google-re2`` is importable (cel-python,
a core dependency, pulls it in) it is the judge of what is valid. Matching
itself runs on Python's ``re`` after a small translation, because the re2
binding costs microseconds per call; patterns the translation cannot express
faithfully fall back to matching with re2.

Compiled matchers are cached per pattern text.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from acteon.rules._errors import InvalidRegex

try:  # pragma: no branch - depends on the environment
    import re2 as _re2  # type: ignore[import-untyped]

    _RE2_OPTIONS: Any = _re2.Options()
    _RE2_OPTIONS.log_errors = False
except ImportError:  # pragma: no cover - re2 ships with cel-python
    _re2 = None
    _RE2_OPTIONS = None

Matcher = Callable[[str], Any]

_CACHE: dict[str, Matcher | InvalidRegex] = {}
_CACHE_LIMIT = 2048

_POSIX = {
    "alnum": "0-9A-Za-z",
    "alpha": "A-Za-z",
    "ascii": "\\x00-\\x7F",
    "blank": "\\t ",
    "cntrl": "\\x00-\\x1F\\x7F",
    "digit": "0-9",
    "graph": "!-~",
    "lower": "a-z",
    "print": " -~",
    "punct": "!-/:-@\\[-`{-~",
    "space": "\\t\\n\\x0B\\f\\r ",
    "upper": "A-Z",
    "word": "0-9A-Za-z_",
    "xdigit": "0-9A-Fa-f",
}

_REPETITION = re.compile(r"\{\d+(,\d*)?\}")
_FORBIDDEN = re.compile(r"\(\?(?:[=!>#(]|<[=!]|P=)|\\[1-9gk]|[*+?}]\+")


class _Untranslatable(Exception):
    """The pattern is valid but needs the re2 engine to match faithfully."""


def _translate(pattern: str) -> str:
    """Rust syntax -> Python ``re`` syntax, or :class:`_Untranslatable`."""
    out: list[str] = []
    i = 0
    n = len(pattern)
    in_class = False
    multiline = False
    while i < n:
        ch = pattern[i]
        if ch == "\\":
            if i + 1 >= n:
                raise _Untranslatable
            nxt = pattern[i + 1]
            if nxt == "z" and not in_class:
                out.append("\\Z")
                i += 2
                continue
            if nxt in "pPQEC":
                raise _Untranslatable
            if nxt in "xuU" and i + 2 < n and pattern[i + 2] == "{":
                end = pattern.find("}", i + 3)
                if end < 0:
                    raise _Untranslatable
                code = int(pattern[i + 3 : end], 16)
                out.append(f"\\U{code:08x}")
                i = end + 1
                continue
            out.append(pattern[i : i + 2])
            i += 2
            continue
        if in_class:
            if ch == "[":
                if pattern.startswith("[:", i):
                    end = pattern.find(":]", i + 2)
                    name = pattern[i + 2 : end] if end > 0 else ""
                    if name in _POSIX:
                        out.append(_POSIX[name])
                        i = end + 2
                        continue
                raise _Untranslatable  # nested classes / set operations
            if pattern.startswith(("&&", "--", "~~"), i):
                raise _Untranslatable
            if ch == "]" and not (out and out[-1] in ("[", "[^")):
                in_class = False
            out.append(ch)
            i += 1
            continue
        if ch == "[":
            in_class = True
            if pattern.startswith("[^", i):
                out.append("[^")
                i += 2
            else:
                out.append("[")
                i += 1
            if i < n and pattern[i] == "]":  # a leading ']' is a literal
                out.append("\\]")
                i += 1
            continue
        if ch == "(" and pattern.startswith("(?", i):
            if pattern.startswith("(?<", i) and not pattern.startswith(("(?<=", "(?<!"), i):
                out.append("(?P<")
                i += 3
                continue
            if pattern.startswith("(?P<", i):
                out.append("(?P<")
                i += 4
                continue
            if pattern.startswith("(?:", i):
                out.append("(?:")
                i += 3
                continue
            end = pattern.find(")", i)
            colon = pattern.find(":", i)
            flags_end = end if colon < 0 or colon > end else colon
            flags = pattern[i + 2 : flags_end]
            if "U" in flags or "x" in flags or "R" in flags:
                raise _Untranslatable
            if flags_end == end:  # a bare flag group, e.g. "(?i)": Python needs it first
                if i != 0:
                    raise _Untranslatable
                if "m" in flags.split("-")[0]:
                    multiline = True
            out.append(pattern[i : flags_end + 1])
            i = flags_end + 1
            continue
        if ch == "$" and not multiline:
            out.append("\\Z")
            i += 1
            continue
        if ch == "{" and not _REPETITION.match(pattern, i):
            out.append("\\{")
            i += 1
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def _build(pattern: str) -> Matcher:
    if _re2 is not None:
        try:
            compiled2 = _re2.compile(pattern, _RE2_OPTIONS)
        except Exception as exc:  # re2 raises its own error type with a bytes message
            detail = exc.args[0] if exc.args else exc
            if isinstance(detail, bytes):
                detail = detail.decode("utf-8", "replace")
            raise InvalidRegex(str(detail)) from None
    elif _FORBIDDEN.search(pattern):  # pragma: no cover - only without re2
        raise InvalidRegex(f"unsupported construct in {pattern!r} (look-around and back-references)")
    try:
        translated = _translate(pattern)
        return re.compile(translated).search
    except (_Untranslatable, re.error, ValueError, OverflowError):
        if _re2 is None:  # pragma: no cover
            raise InvalidRegex(f"cannot compile {pattern!r}") from None
        return compiled2.search  # type: ignore[no-any-return]


def compile_regex(pattern: str) -> Matcher:
    """A ``search`` callable for ``pattern``; raises :class:`InvalidRegex` (cached too)."""
    cached = _CACHE.get(pattern)
    if cached is None:
        try:
            cached = _build(pattern)
        except InvalidRegex as exc:
            cached = exc
        if len(_CACHE) >= _CACHE_LIMIT:
            _CACHE.clear()
        _CACHE[pattern] = cached
    if isinstance(cached, InvalidRegex):
        raise InvalidRegex(cached.detail)
    return cached


def regex_search(pattern: str, text: str) -> bool:
    """Unanchored search, the semantics of ``matches``."""
    return compile_regex(pattern)(text) is not None

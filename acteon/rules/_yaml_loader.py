"""YAML composition with YAML-1.2 scalar typing (rules.md §3).

PyYAML resolves scalars the YAML 1.1 way (``yes`` is a bool, ``007`` an octal
int, ``2026-01-01`` a date). Upstream follows YAML 1.2 core rules, and which
*location* a scalar sits at decides how strictly it is typed. So this module
only composes the node tree (plain scalars are tagged ``!plain``, nothing is
constructed) and offers the typing helpers the frontends apply per location.
Merge keys (``<<``) are not expanded: they stay ordinary (unknown) keys.
"""

from __future__ import annotations

import math
import re
from typing import Any

import yaml
from yaml.composer import Composer
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.parser import Parser
from yaml.reader import Reader
from yaml.resolver import BaseResolver
from yaml.scanner import Scanner

PLAIN = "!plain"
_STR = "tag:yaml.org,2002:str"

__all__ = [
    "PLAIN",
    "MappingNode",
    "Node",
    "ScalarNode",
    "SequenceNode",
    "YamlError",
    "compose",
    "describe",
    "is_null",
    "mapping_items",
    "resolve_plain",
    "scalar_value",
    "to_value",
]


class YamlError(ValueError):
    """Syntax or shape problem; the message is the detail after ``YAML parse error:``."""


class _Resolver(BaseResolver):
    def resolve(self, kind: Any, value: Any, implicit: Any) -> Any:
        if kind is ScalarNode and implicit[0]:
            return PLAIN
        return super().resolve(kind, value, implicit)  # type: ignore[no-untyped-call]


class _Loader(Reader, Scanner, Parser, Composer, _Resolver):
    def __init__(self, stream: str) -> None:
        Reader.__init__(self, stream)
        Scanner.__init__(self)
        Parser.__init__(self)
        Composer.__init__(self)
        _Resolver.__init__(self)


def where(node: Node) -> str:
    mark = node.start_mark
    return f"line {mark.line + 1} column {mark.column + 1}"


def compose(text: str) -> Node | None:
    """The single document's node tree (``None`` for an empty stream)."""
    loader = _Loader(text)
    try:
        docs: list[Node] = []
        while loader.check_node():
            node = loader.get_node()
            assert node is not None
            docs.append(node)
            if len(docs) > 1:
                raise YamlError("deserializing from YAML containing more than one document is not supported")
        return docs[0] if docs else None
    except yaml.YAMLError as exc:
        raise YamlError(_yaml_error_text(exc)) from None
    except RecursionError:
        raise YamlError("recursion limit exceeded (the document is nested too deeply)") from None
    finally:
        loader.dispose()


def _yaml_error_text(exc: yaml.YAMLError) -> str:
    if isinstance(exc, yaml.MarkedYAMLError):
        parts = [p for p in (exc.context, exc.problem) if p]
        mark = exc.problem_mark or exc.context_mark
        text = ", ".join(parts) if parts else "invalid YAML"
        if mark is not None:
            text += f" at line {mark.line + 1} column {mark.column + 1}"
        return text
    return str(exc)


# --------------------------------------------------------------------------- scalar typing

_NULLS = frozenset({"", "~", "null", "Null", "NULL"})
_TRUES = frozenset({"true", "True", "TRUE"})
_FALSES = frozenset({"false", "False", "FALSE"})
_DECIMAL = re.compile(r"[+-]?[0-9]+")
_RADIX = re.compile(r"([+-]?)0([xob])([0-9a-fA-F]+)")
_FLOAT = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_SPECIAL_FLOATS = {
    ".inf": math.inf,
    ".Inf": math.inf,
    ".INF": math.inf,
    "+.inf": math.inf,
    "+.Inf": math.inf,
    "+.INF": math.inf,
    "-.inf": -math.inf,
    "-.Inf": -math.inf,
    "-.INF": -math.inf,
    ".nan": math.nan,
    ".NaN": math.nan,
    ".NAN": math.nan,
}
_I128 = (-(2**127), 2**128 - 1)


def resolve_plain(text: str) -> Any:
    """Type of a plain scalar under YAML 1.2 core rules as upstream applies them."""
    if text in _NULLS:
        return None
    if text in _TRUES:
        return True
    if text in _FALSES:
        return False
    if _DECIMAL.fullmatch(text):
        digits = text.lstrip("+-")
        if len(digits) > 1 and digits[0] == "0":
            return text  # leading zeros: a string in YAML 1.2
        value = int(text)
        if _I128[0] <= value <= _I128[1]:
            return value
        return float(text)  # longer digit strings parse as floats
    m = _RADIX.fullmatch(text)
    if m:
        sign, kind, digits = m.groups()
        base = {"x": 16, "o": 8, "b": 2}[kind]
        try:
            value = int(digits, base)
        except ValueError:
            return text
        value = -value if sign == "-" else value
        if _I128[0] <= value <= _I128[1]:
            return value
        return text
    special = _SPECIAL_FLOATS.get(text)
    if special is not None:
        return special
    if _FLOAT.fullmatch(text):
        value_f = float(text)
        if math.isfinite(value_f):
            return value_f
    return text


_TAGGED: dict[str, str] = {
    "tag:yaml.org,2002:int": "int",
    "tag:yaml.org,2002:float": "float",
    "tag:yaml.org,2002:bool": "bool",
    "tag:yaml.org,2002:null": "null",
}


def scalar_value(node: ScalarNode) -> Any:
    """Resolved value of a scalar node (quoted and block scalars are strings)."""
    tag = node.tag
    if tag == PLAIN:
        return resolve_plain(node.value)
    if tag == _STR:
        return node.value
    kind = _TAGGED.get(tag)
    if kind is None:
        raise YamlError(f"unsupported tag {tag} at {where(node)}")
    value = resolve_plain(node.value)
    ok = {
        "int": isinstance(value, int) and not isinstance(value, bool),
        "float": isinstance(value, float | int) and not isinstance(value, bool),
        "bool": isinstance(value, bool),
        "null": value is None,
    }[kind]
    if not ok:
        raise YamlError(f"invalid value for tag {tag}: {node.value!r} at {where(node)}")
    return float(value) if kind == "float" else value


def is_null(node: Node) -> bool:
    return isinstance(node, ScalarNode) and node.tag == PLAIN and node.value in _NULLS


def describe(value: Any) -> str:
    """serde's wording for an unexpected value (``integer `5```, ``string "x"``)."""
    if value is None:
        return "unit value"
    if isinstance(value, bool):
        return f"boolean `{'true' if value else 'false'}`"
    if isinstance(value, int):
        return f"integer `{value}`"
    if isinstance(value, float):
        return f"floating point `{value}`"
    if isinstance(value, str):
        return f'string "{value}"'
    if isinstance(value, list):
        return "sequence"
    return "map"


def describe_node(node: Node) -> str:
    if isinstance(node, MappingNode):
        return "map"
    if isinstance(node, SequenceNode):
        return "sequence"
    assert isinstance(node, ScalarNode)
    return describe(scalar_value(node))


def mapping_items(node: MappingNode) -> list[tuple[str, Node, Node]]:
    """``(key text, key node, value node)`` in document order; duplicate keys are an error."""
    seen: set[str] = set()
    items: list[tuple[str, Node, Node]] = []
    for key_node, value_node in node.value:
        if isinstance(key_node, ScalarNode):
            key = key_node.value
        else:
            key = f"<{describe_node(key_node)} key>"
        if key in seen:
            raise YamlError(f'duplicate entry with key "{key}" at {where(key_node)}')
        seen.add(key)
        items.append((key, key_node, value_node))
    return items


_U64_MAX = 2**64 - 1
_I64_MIN = -(2**63)


def to_value(node: Node, _depth: int = 0) -> Any:
    """A node as a JSON-compatible value (condition literals, ``changes``).

    Integers must fit ``i64``/``u64``; non-finite floats become ``None`` (JSON
    cannot hold them); mapping keys must be strings; maps come out with
    their keys sorted, as upstream's ordered JSON maps do.
    """
    if _depth > 256:
        raise YamlError("value nested too deeply")
    if isinstance(node, ScalarNode):
        value = scalar_value(node)
        if isinstance(value, int) and not isinstance(value, bool):
            if not (_I64_MIN <= value <= _U64_MAX):
                raise YamlError(f"integer `{value}` out of range at {where(node)}")
        elif isinstance(value, float) and not math.isfinite(value):
            return None
        return value
    if isinstance(node, SequenceNode):
        return [to_value(item, _depth + 1) for item in node.value]
    assert isinstance(node, MappingNode)
    out: dict[str, Any] = {}
    for key, key_node, value_node in mapping_items(node):
        if not isinstance(key_node, ScalarNode) or not isinstance(scalar_value(key_node), str):
            raise YamlError(
                f"invalid type: {describe_node(key_node)}, expected a string key at {where(key_node)}"
            )
        out[key] = to_value(value_node, _depth + 1)
    return dict(sorted(out.items()))

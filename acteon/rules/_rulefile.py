"""The rule-file envelope shared by the YAML and CEL frontends (rules.md §4.1-4.2, §4.8-4.9, §5.1).

A rule file is ``rules: [ {name, priority, condition, action, ...}, ... ]``.
Loading happens in two passes, as upstream does: first every rule of the file
is *read* (shapes and types; failures are ``<label> parse error`` messages),
then every rule is *compiled* to IR (``parse error: <message>``). A
:class:`Dialect` supplies what differs between frontends: how a ``condition``
is read and compiled, which action types exist, whether ``metadata`` is read.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from acteon._exceptions import RuleLoadError
from acteon.rules._model import Rule, RuleAction, RuleSource
from acteon.rules._yaml_loader import (
    PLAIN,
    MappingNode,
    Node,
    ScalarNode,
    SequenceNode,
    YamlError,
    compose,
    describe,
    describe_node,
    is_null,
    mapping_items,
    resolve_plain,
    scalar_value,
    to_value,
)

ACTION_TYPES = (
    "allow",
    "deny",
    "deduplicate",
    "suppress",
    "reroute",
    "throttle",
    "modify",
    "state_machine",
    "group",
    "request_approval",
    "chain",
    "schedule",
    "weighted_route",  # acteon extension: acteon.resilience.routing
)
_RULE_KEYS = frozenset(
    {
        "name",
        "priority",
        "description",
        "enabled",
        "condition",
        "action",
        "metadata",
        "timezone",
        "mute_time_intervals",
        "active_time_intervals",
    }
)
_U64_MAX = 2**64 - 1


class ShapeError(Exception):
    """Pass 1 failure: becomes ``parse error: <label> parse error[ in <file>]: <detail>``."""

    def __init__(self, detail: str, key: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.key = key


class CompileError(Exception):
    """Pass 2 failure: becomes ``parse error: <detail>``."""

    def __init__(self, detail: str, key: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.key = key


@dataclass
class Dialect:
    """What a frontend plugs into the shared envelope."""

    label: str  # "YAML" -> "YAML parse error"; CEL uses "CEL rule file"
    read_condition: Callable[[Node, str, list[tuple[str, str]]], Any]
    compile_condition: Callable[[Any, str], Any]
    action_types: tuple[str, ...] = ACTION_TYPES
    read_metadata: bool = True


@dataclass
class _RawRule:
    index: int
    name: str | None
    fields: dict[str, Any] = field(default_factory=dict)
    condition: Any = None
    action: RuleAction | None = None
    warnings: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class FileResult:
    rules: list[Rule]
    warnings: list[str]


# --------------------------------------------------------------------------- typed readers


def read_text(node: Node, what: str, *, optional: bool) -> str | None:
    """A rule-level string field: any scalar keeps its source text (null -> None if optional)."""
    if not isinstance(node, ScalarNode):
        raise ShapeError(f"invalid type: {describe_node(node)}, expected a string", what)
    if optional and is_null(node):
        return None
    return str(node.value)


def read_string(node: Node, what: str) -> str:
    """A string inside ``condition``/``action``: resolved first, then must be a string."""
    value = scalar_value(node) if isinstance(node, ScalarNode) else None
    if not isinstance(node, ScalarNode) or not isinstance(value, str):
        raise ShapeError(f"invalid type: {describe_node(node)}, expected a string", what)
    return value


def read_u64(node: Node, what: str, expected: str = "u64") -> int:
    value = scalar_value(node) if isinstance(node, ScalarNode) else None
    if not isinstance(node, ScalarNode) or isinstance(value, bool) or not isinstance(value, int):
        raise ShapeError(f"invalid type: {describe_node(node)}, expected {expected}", what)
    if not 0 <= value <= _U64_MAX:
        raise ShapeError(f"invalid value: integer `{value}`, expected {expected}", what)
    return value


def read_string_list(node: Node, what: str) -> list[str]:
    if not isinstance(node, SequenceNode):
        raise ShapeError(f"invalid type: {describe_node(node)}, expected a sequence", what)
    return [read_string(item, f"{what}[{i}]") for i, item in enumerate(node.value)]


# --------------------------------------------------------------------------- actions


def _unknown_variant(tag: str, allowed: tuple[str, ...]) -> str:
    expected = ", ".join(f"`{t}`" for t in allowed)
    return f"unknown variant `{tag}`, expected one of {expected}"


def read_action(node: Node, key: str, allowed: tuple[str, ...], warn: list[tuple[str, str]]) -> RuleAction:
    if not isinstance(node, MappingNode):
        raise ShapeError(
            f"invalid type: {describe_node(node)}, expected internally tagged enum RuleAction", key
        )
    items = {k: v for k, _, v in mapping_items(node)}
    if "type" not in items:
        raise ShapeError("missing field `type`", key)
    tag = read_string(items["type"], f"{key}.type")
    if tag not in allowed:
        raise ShapeError(_unknown_variant(tag, allowed), f"{key}.type")
    params: dict[str, Any] = {}
    known: set[str] = {"type"}

    def take(
        name: str, reader: Callable[[Node, str], Any], default: Any = ..., nullable: bool = False
    ) -> None:
        known.add(name)
        node = items.get(name)
        if node is None or (nullable and is_null(node)):
            if default is ...:
                raise ShapeError(f"missing field `{name}`", key)
            params[name] = default
            return
        params[name] = reader(node, f"{key}.{name}")

    if tag == "deduplicate":
        take("ttl_seconds", read_u64, None, nullable=True)
    elif tag == "reroute":
        take("target_provider", read_string)
    elif tag == "throttle":
        take("max_count", read_u64)
        take("window_seconds", read_u64)
    elif tag == "modify":
        known.add("changes")
        if "changes" not in items:
            raise ShapeError("missing field `changes`", key)
        try:
            params["changes"] = to_value(items["changes"])
        except YamlError as exc:
            raise ShapeError(str(exc), f"{key}.changes") from None
    elif tag == "state_machine":
        take("state_machine", read_string)
        take("fingerprint_fields", read_string_list, [])
    elif tag == "group":
        take("group_by", read_string_list)
        take("group_wait_seconds", read_u64, 30)
        take("group_interval_seconds", read_u64, 300)
        take("repeat_interval_seconds", read_u64, None, nullable=True)
        take("max_group_size", lambda n, w: read_u64(n, w, "usize"), 100)
        take("template", read_string, None, nullable=True)
        # acteon (DECISIONS D16): where the group notification goes. Kept out of the
        # params when absent so verdicts keep upstream's shape.
        known.add("notify_provider")
        if "notify_provider" in items and not is_null(items["notify_provider"]):
            params["notify_provider"] = read_string(items["notify_provider"], f"{key}.notify_provider")
    elif tag == "request_approval":
        take("notify_provider", read_string)
        take("timeout_seconds", read_u64, 3600)
        take("message", read_string, None, nullable=True)
    elif tag == "chain":
        take("chain", read_string)
    elif tag == "schedule":
        take("delay_seconds", read_u64)
    elif tag == "weighted_route":
        from acteon.resilience.routing import RouteConfigError, parse_weighted_route

        known.update(("targets", "strategy"))
        try:
            raw: dict[str, Any] = {k: to_value(items[k]) for k in ("targets", "strategy") if k in items}
            route_warnings: list[tuple[str, str]] = []
            params.update(parse_weighted_route(raw, route_warnings))
            warn.extend((f"{key}.{k}", t) for k, t in route_warnings)
        except RouteConfigError as exc:
            raise ShapeError(exc.detail, f"{key}.{exc.key}") from None
        except YamlError as exc:
            raise ShapeError(str(exc), key) from None
    for name in items:
        if name not in known:
            warn.append((f"{key}.{name}", f"unknown key '{name}' in a '{tag}' action (ignored)"))
    return RuleAction(tag, params)


# --------------------------------------------------------------------------- rules


def _rule_label(raw: _RawRule) -> str:
    return raw.name if raw.name is not None else f"#{raw.index}"


def _read_rule(node: Node, index: int, dialect: Dialect) -> _RawRule:
    raw = _RawRule(index=index, name=None)
    if not isinstance(node, MappingNode):
        raise ShapeError(f"invalid type: {describe_node(node)}, expected struct Rule", f"rules[{index}]")
    items = {k: v for k, _, v in mapping_items(node)}
    if "name" in items:
        raw.name = read_text(items["name"], "name", optional=False)
    for key in items:
        if key not in _RULE_KEYS or (key == "metadata" and not dialect.read_metadata):
            raw.warnings.append((key, f"unknown key '{key}' (ignored)"))
    if "priority" in items:
        raw.fields["priority"] = _read_priority(items["priority"])
    if "description" in items:
        raw.fields["description"] = read_text(items["description"], "description", optional=True)
    if "enabled" in items:
        raw.fields["enabled"] = _read_enabled(items["enabled"])
    if "condition" in items:
        raw.condition = dialect.read_condition(items["condition"], "condition", raw.warnings)
    if "action" in items:
        raw.action = read_action(items["action"], "action", dialect.action_types, raw.warnings)
    if "metadata" in items and dialect.read_metadata:
        raw.fields["metadata"] = _read_metadata(items["metadata"])
    if "timezone" in items:
        raw.fields["timezone"] = read_text(items["timezone"], "timezone", optional=True)
    for key in ("mute_time_intervals", "active_time_intervals"):
        if key in items:
            raw.fields[key] = _read_text_list(items[key], key)
    for required in ("name", "condition", "action"):
        if required not in items:
            raise ShapeError(f"missing field `{required}`")
    return raw


def _read_priority(node: Node) -> int:
    if not isinstance(node, ScalarNode):
        raise ShapeError(f"invalid type: {describe_node(node)}, expected i32", "priority")
    value = resolve_plain(node.value) if node.tag == PLAIN else node.value
    if isinstance(value, bool) or not isinstance(value, int):
        raise ShapeError(f"invalid type: {describe(value)}, expected i32", "priority")
    if not -(2**31) <= value <= 2**31 - 1:
        raise ShapeError(f"invalid value: integer `{value}`, expected i32", "priority")
    return value


def _read_enabled(node: Node) -> bool:
    if not isinstance(node, ScalarNode):
        raise ShapeError(f"invalid type: {describe_node(node)}, expected a boolean", "enabled")
    value = resolve_plain(node.value) if node.tag == PLAIN else node.value
    if not isinstance(value, bool):
        raise ShapeError(f"invalid type: {describe(value)}, expected a boolean", "enabled")
    return value


def _read_metadata(node: Node) -> dict[str, str]:
    if is_null(node):
        return {}
    if not isinstance(node, MappingNode):
        raise ShapeError(f"invalid type: {describe_node(node)}, expected a map", "metadata")
    out: dict[str, str] = {}
    for key, _, value in mapping_items(node):
        text = read_text(value, f"metadata.{key}", optional=False)
        assert text is not None
        out[key] = text
    return out


def _read_text_list(node: Node, key: str) -> list[str]:
    if is_null(node):
        return []
    if not isinstance(node, SequenceNode):
        raise ShapeError(f"invalid type: {describe_node(node)}, expected a sequence", key)
    out = []
    for i, item in enumerate(node.value):
        text = read_text(item, f"{key}[{i}]", optional=False)
        assert text is not None
        out.append(text)
    return out


# --------------------------------------------------------------------------- file


def _where(file: str | None) -> str:
    return "<string>" if file is None else file


def _warning(file: str | None, rule: str | None, key: str, text: str) -> str:
    parts = [f"file {_where(file)}"]
    if rule is not None:
        parts.append(f"rule '{rule}'")
    parts.append(f"key '{key}'")
    return f"{', '.join(parts)}: {text}"


def parse_rule_file(text: str, file: str | None, dialect: Dialect) -> FileResult:
    """Read and compile one rule file; raises :class:`RuleLoadError` at the first failure."""
    prefix = f"parse error: {dialect.label} parse error" + ("" if file is None else f" in {file}")
    warnings: list[str] = []
    raws: list[_RawRule] = []
    current: _RawRule | None = None
    try:
        root = compose(text)
        if root is None:
            raise ShapeError("missing field `rules`")
        if not isinstance(root, MappingNode):
            raise ShapeError(f"invalid type: {describe_node(root)}, expected struct RuleFile")
        top = {k: v for k, _, v in mapping_items(root)}
        for key in top:
            if key != "rules":
                warnings.append(_warning(file, None, key, f"unknown top-level key '{key}' (ignored)"))
        if "rules" not in top:
            raise ShapeError("missing field `rules`")
        rules_node = top["rules"]
        if not isinstance(rules_node, SequenceNode):
            raise ShapeError(f"invalid type: {describe_node(rules_node)}, expected a sequence", "rules")
        for index, item in enumerate(rules_node.value):
            current = _RawRule(index=index, name=None)
            if isinstance(item, MappingNode):
                for k, _, v in mapping_items(item):
                    if k == "name" and isinstance(v, ScalarNode):
                        current.name = str(v.value)
            current = _read_rule(item, index, dialect)
            raws.append(current)
        current = None
    except (ShapeError, YamlError) as exc:
        detail = exc.detail if isinstance(exc, ShapeError) else str(exc)
        where_key = exc.key if isinstance(exc, ShapeError) else None
        rule = None if current is None else _rule_label(current)
        raise RuleLoadError(f"{prefix}: {detail}", file=file, rule=rule, key=where_key) from None

    rules: list[Rule] = []
    source = RuleSource.yaml(file)
    for raw in raws:
        for key, text_ in raw.warnings:
            warnings.append(_warning(file, _rule_label(raw), key, text_))
        try:
            condition = dialect.compile_condition(raw.condition, "condition")
        except CompileError as exc:
            raise RuleLoadError(
                f"parse error: {exc.detail}", file=file, rule=_rule_label(raw), key=exc.key
            ) from None
        assert raw.name is not None and raw.action is not None
        rules.append(
            Rule(
                raw.name,
                condition,
                raw.action,
                source=source,
                **raw.fields,
            )
        )
    return FileResult(rules, warnings)

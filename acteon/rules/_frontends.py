"""Frontend registry and the loading entry points.

A *frontend* turns the text of one rule file into rules. The YAML frontend is
built in; others register themselves with :func:`register_frontend` (the CEL
frontend lives in ``acteon/rules/_cel.py`` and is imported on first use)::

    register_frontend(Frontend("cel", ("cel",), parse_cel_file))

``parse(text, file)`` returns a :class:`FileResult` (rules + warnings) or
raises :class:`acteon.RuleLoadError`.
"""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from acteon._exceptions import RuleLoadError
from acteon.rules._engine import RuleSet
from acteon.rules._model import Rule
from acteon.rules._rulefile import FileResult, parse_rule_file
from acteon.rules._yaml_frontend import YAML_DIALECT
from acteon.rules._yaml_loader import MappingNode, ScalarNode, SequenceNode, YamlError, compose, mapping_items

logger = logging.getLogger("acteon.rules")

ParseFn = Callable[[str, "str | None"], FileResult]


@dataclass(frozen=True)
class Frontend:
    """A rule-file language: its name, the file extensions it claims, its parser."""

    name: str
    extensions: tuple[str, ...]
    parse: ParseFn


_FRONTENDS: dict[str, Frontend] = {}
# Frontends that live in optional modules, imported the first time they are asked for.
_LAZY: dict[str, str] = {"cel": "acteon.rules._cel"}


def register_frontend(frontend: Frontend) -> None:
    """Make a frontend available by name and by its extensions (replaces one of the same name)."""
    _FRONTENDS[frontend.name] = frontend


def get_frontend(name: str) -> Frontend | None:
    """The frontend called ``name``, importing a lazily registered one if needed."""
    frontend = _FRONTENDS.get(name)
    if frontend is None and name in _LAZY:
        try:
            importlib.import_module(_LAZY[name])
        except ModuleNotFoundError as exc:
            if exc.name != _LAZY[name]:
                raise
        frontend = _FRONTENDS.get(name)
    return frontend


def frontend_available(name: str) -> bool:
    return get_frontend(name) is not None


def frontend_for_extension(ext: str) -> Frontend | None:
    for frontend in list(_FRONTENDS.values()):
        if ext in frontend.extensions:
            return frontend
    for name in _LAZY:
        if ext == name:
            return get_frontend(name)
    return None


def _parse_yaml(text: str, file: str | None) -> FileResult:
    return parse_rule_file(text, file, YAML_DIALECT)


register_frontend(Frontend("yaml", ("yaml", "yml"), _parse_yaml))


# --------------------------------------------------------------------------- helpers


def _extension(name: str) -> str | None:
    """Text after the last dot; a name whose only dot leads it (``.yaml``) has none."""
    idx = name.rfind(".")
    return None if idx <= 0 else name[idx + 1 :]


def sniff_format(text: str) -> str:
    """``cel`` when the rules' conditions are strings, else ``yaml``."""
    try:
        root = compose(text)
    except YamlError:
        return "yaml"
    if not isinstance(root, MappingNode):
        return "yaml"
    try:
        rules = {k: v for k, _, v in mapping_items(root)}.get("rules")
    except YamlError:
        return "yaml"
    if not isinstance(rules, SequenceNode):
        return "yaml"
    for item in rules.value:
        if not isinstance(item, MappingNode):
            continue
        try:
            fields = {k: v for k, _, v in mapping_items(item)}
        except YamlError:
            return "yaml"
        if "condition" in fields:
            return "cel" if isinstance(fields["condition"], ScalarNode) else "yaml"
    return "yaml"


def _require(name: str, file: str | None) -> Frontend:
    frontend = get_frontend(name)
    if frontend is None:
        if name == "cel":
            raise RuleLoadError(
                "parse error: the CEL frontend is not available in this version of acteon", file=file
            )
        raise RuleLoadError(f"parse error: unknown rule format '{name}'", file=file)
    return frontend


def _read_file(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read()
    except (OSError, UnicodeDecodeError) as exc:
        detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise RuleLoadError(f"parse error: cannot read {path}: {detail}", file=path) from None


def _finish(rules: list[Rule], warnings: list[str], strict: bool) -> RuleSet:
    for warning in warnings:
        logger.warning("rules: %s", warning)
    if strict and warnings:
        raise RuleLoadError(
            f"parse error: strict mode: {warnings[0]}"
            + (f" (and {len(warnings) - 1} more warning(s))" if len(warnings) > 1 else "")
        )
    return RuleSet(rules, warnings=warnings)


def _is_path_string(source: str) -> bool:
    if "\n" in source or len(source) > 4096 or not source.strip():
        return False
    try:
        return os.path.exists(source)
    except (OSError, ValueError):
        return False


def parse_file(path: str, format: str | None = None) -> FileResult:
    """Parse one rule file with the frontend chosen by ``format`` or its extension."""
    text = _read_file(path)
    name = format
    if name is None:
        ext = _extension(os.path.basename(path))
        by_ext = frontend_for_extension(ext) if ext else None
        name = by_ext.name if by_ext is not None else ("cel" if ext == "cel" else sniff_format(text))
    return _require(name, path).parse(text, path)


# --------------------------------------------------------------------------- public entry points


def load_rules(source: str | os.PathLike[str], format: str | None = None, *, strict: bool = False) -> RuleSet:
    """Load rules from YAML/CEL text or a file path into a new :class:`RuleSet`.

    A :class:`pathlib.Path` (or a string naming an existing file) is read as a
    file and its rules get ``source = Yaml { file: "<path>" }``; a directory is
    handed to :func:`load_rules_dir`. Any other string is rule-file text.
    ``format`` is ``"yaml"`` or ``"cel"``; ``None`` picks by extension, or by
    looking at the conditions. Unknown keys are accepted and reported in
    ``RuleSet.warnings`` (and logged); ``strict=True`` makes them errors.
    """
    if isinstance(source, os.PathLike) or (isinstance(source, str) and _is_path_string(source)):
        path = os.fspath(source)
        if os.path.isdir(path):
            return load_rules_dir(path, strict=strict)
        result = parse_file(path, format)
    else:
        text = str(source)
        if "\n" not in text and text.strip().endswith((".yaml", ".yml", ".cel")) and ":" not in text:
            # Looks like a file name, not rule text: say the file is missing instead of
            # reporting a confusing YAML shape error.
            _read_file(text.strip())
        name = format if format is not None else sniff_format(text)
        result = _require(name, None).parse(text, None)
    return _finish(result.rules, result.warnings, strict)


def load_rules_dir(path: str | os.PathLike[str], *, strict: bool = False) -> RuleSet:
    """Load every ``*.yaml``, ``*.yml`` and ``*.cel`` file directly inside ``path``.

    Files are read in sorted filename order (sub-directories are ignored) into
    a fresh rule set, which is returned only when every file loaded: a failing
    file raises :class:`acteon.RuleLoadError` and nothing is half-loaded.
    """
    directory = os.fspath(path)
    try:
        names = sorted(os.listdir(directory))
    except OSError as exc:
        detail = exc.strerror or str(exc)
        raise RuleLoadError(
            f"parse error: cannot read directory {directory}: {detail}", file=directory
        ) from None
    rules: list[Rule] = []
    warnings: list[str] = []
    for name in names:
        full = os.path.join(directory, name)
        ext = _extension(name)
        if ext not in ("yaml", "yml", "cel") or not Path(full).is_file():
            continue
        result = parse_file(full, "cel" if ext == "cel" else "yaml")
        rules.extend(result.rules)
        warnings.extend(result.warnings)
    return _finish(rules, warnings, strict)

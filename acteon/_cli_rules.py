"""``acteon rules validate | test | eval`` (python-api.md §7, rules.md §10-§11)."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from acteon._cli_common import (
    EXIT_FAILED,
    EXIT_OK,
    CliError,
    check_timezone,
    parse_at,
    parse_pairs,
    print_json,
    print_text,
    read_action,
    read_input,
    require_paths,
)
from acteon._exceptions import ActeonError, ConfigurationError, RuleLoadError
from acteon.rules._engine import RuleSet
from acteon.rules._frontends import load_rules
from acteon.rules._lint import lint_rules
from acteon.rules._sources import load_source, rule_files
from acteon.rules._trace import EvaluationTrace

# --------------------------------------------------------------------------- shared


@contextmanager
def _quiet_load_warnings() -> Iterator[None]:
    """Loading logs each warning; ``validate`` reports them itself, so mute the log meanwhile."""
    logger = logging.getLogger("acteon.rules")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def load_cli_rules(paths: Sequence[str]) -> RuleSet:
    """``--rules`` arguments (directories and files, merged in order) into one set."""
    checked = require_paths(paths, "rules path")
    try:
        return load_source(checked)
    except RuleLoadError as exc:
        raise CliError(str(exc)) from None


# --------------------------------------------------------------------------- validate


def _warning_kind(text: str) -> str:
    # Loader warnings are unknown keys ("... (ignored)") or CEL precedence notes.
    return "unknown_key" if text.endswith("(ignored)") else "cel_precedence"


def _files_of(paths: Sequence[Path]) -> tuple[list[Path], list[dict[str, Any]]]:
    files: list[Path] = []
    notes: list[dict[str, Any]] = []
    for path in paths:
        if path.is_dir():
            found = rule_files(path)
            if not found:
                notes.append({"path": str(path), "rules": 0, "errors": [], "warnings": [
                    {"kind": "empty_directory",
                     "message": f"directory {path}: no rule files (*.yaml, *.yml, *.cel) directly inside"}]})
            files.extend(found)
        else:
            files.append(path)
    return files, notes


def validate(paths: Sequence[str], strict: bool) -> dict[str, Any]:
    """The validation report of ``acteon rules validate`` (also its ``--format json`` output)."""
    files, reports = _files_of(require_paths(paths, "path"))
    seen: dict[str, list[tuple[dict[str, Any], Path]]] = {}
    with _quiet_load_warnings():
        for file in files:
            report: dict[str, Any] = {"path": str(file), "rules": 0, "errors": [], "warnings": []}
            reports.append(report)
            try:
                rules = load_rules(file)
            except RuleLoadError as exc:
                report["errors"].append(
                    {"message": str(exc), "file": exc.file or str(file), "rule": exc.rule, "key": exc.key})
                continue
            report["rules"] = len(rules)
            warnings = report["warnings"]
            warnings.extend({"kind": _warning_kind(w), "message": w} for w in rules.warnings)
            warnings.extend({"kind": "runtime_error", "message": w} for w in lint_rules(rules.rules))
            for rule in rules.rules:
                seen.setdefault(rule.name, []).append((report, file))
    # Duplicate names are legal, but enable/disable and the playground act on the first only.
    for name, places in seen.items():
        first = places[0][1]
        for report, file in places[1:]:
            report["warnings"].append({"kind": "duplicate_name", "message": (
                f"file {file}, rule '{name}': another rule has this name (also in {first}); "
                "enable_rule/disable_rule act only on the first of a name in priority order")})
    errors = sum(len(r["errors"]) for r in reports)
    warning_count = sum(len(r["warnings"]) for r in reports)
    return {
        "valid": errors == 0 and not (strict and warning_count),
        "strict": strict,
        "files": reports,
        "total_files": len(files),
        "total_rules": sum(r["rules"] for r in reports),
        "errors": errors,
        "warnings": warning_count,
    }


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def format_validation(report: dict[str, Any]) -> str:
    lines: list[str] = []
    for file in report["files"]:
        if file["errors"]:
            lines.append(f"{file['path']}: FAILED")
        else:
            status = "ok" if not file["warnings"] else _plural(len(file["warnings"]), "warning")
            lines.append(f"{file['path']}: {_plural(file['rules'], 'rule')}, {status}")
        lines.extend(f"  error: {e['message']}" for e in file["errors"])
        lines.extend(f"  warning: {w['message']}" for w in file["warnings"])
    verdict = "valid" if report["valid"] else "INVALID"
    if report["strict"] and report["warnings"] and not report["errors"]:
        verdict += " (--strict: warnings count as errors)"
    lines.append(
        f"{verdict}: {_plural(report['total_files'], 'file')}, {_plural(report['total_rules'], 'rule')}, "
        f"{_plural(report['errors'], 'error')}, {_plural(report['warnings'], 'warning')}"
    )
    return "\n".join(lines)


def cmd_validate(args: argparse.Namespace) -> int:
    report = validate(args.paths, args.strict)
    if args.format == "json":
        print_json(report)
    else:
        print_text(format_validation(report))
    return EXIT_OK if report["valid"] else EXIT_FAILED


# --------------------------------------------------------------------------- test


def cmd_test(args: argparse.Namespace) -> int:
    from acteon.rules._fixtures import fixtures_exit_code, format_fixture_report, run_fixtures

    check_timezone(args.timezone)
    at = parse_at(args.at)
    env = parse_pairs(args.env, "--env")
    rules = load_cli_rules(args.rules)
    text = read_input(args.fixtures, "fixture file")
    try:
        summary = run_fixtures(rules, text, args.filter, now=at, env=env, timezone=args.timezone)
    except ConfigurationError as exc:
        raise CliError(str(exc)) from None
    if args.format == "json":
        print_json(summary)
    else:
        print_text(format_fixture_report(summary))
    return fixtures_exit_code(summary)


# --------------------------------------------------------------------------- eval


def _table(rows: list[list[str]], right: frozenset[int] = frozenset()) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    out = []
    for row in rows:
        cells = [c.rjust(widths[i]) if i in right else c.ljust(widths[i]) for i, c in enumerate(row)]
        out.append("  ".join(cells).rstrip())
    return out


def format_trace(trace: EvaluationTrace) -> str:
    """A readable text form of a trace: the verdict, one row per rule, then the context."""
    import json

    head = f"verdict: {trace.verdict}"
    if trace.matched_rule is not None:
        head += f" (rule '{trace.matched_rule}')"
    lines = [
        head,
        f"{_plural(trace.total_rules_evaluated, 'rule')} evaluated, {trace.total_rules_skipped} skipped, "
        f"{trace.evaluation_duration_us} us",
        "",
    ]
    rows = [["#", "RESULT", "RULE", "PRIORITY", "ACTION", "CONDITION"]]
    notes: dict[int, list[str]] = {}
    for index, entry in enumerate(trace.trace, 1):
        result = entry.result + (f" ({entry.skip_reason})" if entry.skip_reason else "")
        rows.append([str(index), result, entry.rule_name, str(entry.priority), entry.action,
                     entry.condition_display])
        extra = []
        if entry.error is not None:
            extra.append(f"error: {entry.error}")
        if entry.semantic_details is not None:
            extra.append(f"semantic: {json.dumps(entry.semantic_details, sort_keys=True)}")
        if entry.has_modify_preview:
            extra.append(f"patch: {json.dumps(entry.modify_patch, sort_keys=True)}")
            extra.append(f"payload after: {json.dumps(entry.modified_payload_preview, sort_keys=True)}")
        if extra:
            notes[index] = extra
    table = _table(rows, right=frozenset({0, 3}))
    lines.append(table[0])
    for index, line in enumerate(table[1:], 1):
        lines.append(line)
        lines.extend(f"     -> {note}" for note in notes.get(index, []))
    ctx = trace.context
    t = ctx.time
    zone = ctx.effective_timezone or "UTC"
    lines.append("")
    lines.append(
        f"time: {t['year']:04d}-{t['month']:02d}-{t['day']:02d} {t['hour']:02d}:{t['minute']:02d}:"
        f"{t['second']:02d} {t['weekday']} ({zone}; unix {t['timestamp']})"
    )
    lines.append("environment keys read: " + (", ".join(ctx.environment_keys) or "none"))
    lines.append("state keys read: " + (", ".join(ctx.accessed_state_keys) or "none"))
    if trace.has_modified_payload:
        lines.append(f"modified payload: {json.dumps(trace.modified_payload, sort_keys=True)}")
    return "\n".join(lines)


def cmd_eval(args: argparse.Namespace) -> int:
    check_timezone(args.timezone)
    at = parse_at(args.at)
    env = parse_pairs(args.env, "--env")
    state = parse_pairs(args.state, "--state")
    rules = load_cli_rules(args.rules)
    action = read_action(args.action)
    try:
        trace = rules.evaluate_with_trace(
            action,
            include_disabled=args.include_disabled,
            evaluate_all=args.all,
            now=at,
            state=state,
            env=env,
            timezone=args.timezone,
        )
    except ActeonError as exc:
        raise CliError(str(exc)) from None
    if args.format == "json":
        print_json(trace.to_dict())
    else:
        print_text(format_trace(trace))
    # A dispatch of this action would fail closed (D9): say so in the exit status too.
    return EXIT_FAILED if trace.verdict == "error" else EXIT_OK


# --------------------------------------------------------------------------- parser


def add_parsers(sub: Any) -> None:
    rules = sub.add_parser("rules", help="validate, test and try out rule files")
    verbs = rules.add_subparsers(dest="rules_command", metavar="COMMAND", required=True)

    p = verbs.add_parser("validate", help="load rule files and report errors and warnings",
                         description="Load each rule file (directories: every *.yaml, *.yml and *.cel directly "
                                     "inside) and report load errors, unknown keys, CEL precedence differences "
                                     "and conditions that fail when evaluated.")
    p.add_argument("paths", nargs="+", metavar="PATH", help="a rule file or a directory of rule files")
    p.add_argument("--strict", action="store_true", help="fail (exit 1) on warnings too")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.set_defaults(handler=cmd_validate)

    p = verbs.add_parser("test", help="run a rule-test fixture file (rules.md §11)")
    p.add_argument("fixtures", metavar="FIXTURES", help="the fixture YAML file ('-' reads standard input)")
    p.add_argument("--rules", action="append", required=True, metavar="PATH",
                   help="a rule file or directory (repeat to merge several)")
    p.add_argument("--filter", metavar="TEXT", help="run only tests whose name contains TEXT (case-sensitive)")
    p.add_argument("--format", choices=("text", "json"), default="text")
    _add_context_options(p)
    p.set_defaults(handler=cmd_test)

    p = verbs.add_parser("eval", help="evaluate one action and print the trace (the rule playground)")
    p.add_argument("--rules", action="append", required=True, metavar="PATH",
                   help="a rule file or directory (repeat to merge several)")
    p.add_argument("--action", required=True, metavar="FILE", help="the action as JSON ('-' reads standard input)")
    p.add_argument("--all", action="store_true", help="evaluate every rule, not just up to the first match")
    p.add_argument("--include-disabled", action="store_true", help="list disabled rules as skipped")
    p.add_argument("--state", action="append", metavar="KEY=VALUE",
                   help="a mock state value; KEY is the full key or just its id part (repeatable)")
    p.add_argument("--format", choices=("text", "json"), default="text")
    _add_context_options(p)
    p.set_defaults(handler=cmd_eval)


def _add_context_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--at", metavar="RFC3339", help="evaluate as of this time (default: now)")
    p.add_argument("--env", action="append", metavar="KEY=VALUE", help="an environment value (repeatable)")
    p.add_argument("--timezone", metavar="TZ", help="default IANA timezone for time.* (rules may set their own)")

"""The ``acteon`` command line (python-api.md §7).

::

    acteon rules validate rules/ [--strict] [--format json]
    acteon rules test fixtures.yaml --rules rules/ [--filter spam] [--format json]
    acteon rules eval --rules rules/ --action action.json [--at 2026-01-15T14:00:00Z] [--all]
    acteon dispatch --config acteon.toml action.json [--dry-run]
    acteon serve [--config acteon.toml] [--host 127.0.0.1] [--port 8080]

``main(argv)`` returns the exit status (0 success, 1 failed, 2 usage error)
instead of exiting, so it can be called from tests and scripts. User mistakes
print ``acteon: error: ...`` on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from acteon._cli_common import EXIT_USAGE, CliError


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("acteon")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    from acteon import _cli_dispatch, _cli_rules, _cli_serve

    parser = argparse.ArgumentParser(
        prog="acteon",
        description="acteon: validate, test and try out rules; dispatch actions through a configured gateway; "
                    "serve the HTTP API.",
    )
    parser.add_argument("--version", action="version", version=f"acteon {_version()}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level on stderr")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _cli_rules.add_parsers(sub)
    _cli_dispatch.add_parser(sub)
    _cli_serve.add_parser(sub)
    return parser


class _LevelFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return f"acteon: {record.levelname.lower()}: {record.getMessage()}"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version and usage errors (argparse already printed)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_LevelFormatter())
    logger = logging.getLogger("acteon")
    previous_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO if args.verbose else logging.WARNING)
    try:
        code: int = args.handler(args)
        return code
    except CliError as exc:
        sys.stderr.write(f"acteon: error: {exc.message}\n")
        return exc.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("acteon: interrupted\n")
        return 130
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous_level)


if __name__ == "__main__":
    sys.exit(main())

"""``acteon dispatch --config acteon.toml action.json [--dry-run]``: one action through a configured gateway."""

from __future__ import annotations

import argparse
from typing import Any

from acteon._cli_common import EXIT_FAILED, EXIT_OK, CliError, print_json, read_action, require_paths


def _dispatch(config: str, action: Any, dry_run: bool) -> Any:
    import anyio

    from acteon._gateway import AsyncGateway

    async def run() -> Any:
        # No background loop: one dispatch, then close (flushing the audit trail).
        gateway = AsyncGateway.from_config(config, background=False)
        async with gateway:
            return await gateway.dispatch(action, dry_run=dry_run)

    return anyio.run(run)


def cmd_dispatch(args: argparse.Namespace) -> int:
    from acteon._exceptions import ActeonError

    require_paths([args.config], "config file")
    action = read_action(args.action)
    try:
        outcome = _dispatch(args.config, action, args.dry_run)
    except ActeonError as exc:
        raise CliError(str(exc)) from None
    print_json(outcome.to_wire())
    # The outcome is printed either way; a failed execution is a failed command.
    return EXIT_FAILED if outcome.kind == "failed" else EXIT_OK


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "dispatch",
        help="dispatch one action through a gateway built from a config file",
        description="Build the gateway of a TOML/YAML config file, dispatch one action (JSON wire form) "
                    "and print the outcome's wire JSON.",
    )
    p.add_argument("action", metavar="ACTION", help="the action as JSON ('-' reads standard input)")
    p.add_argument("--config", default="acteon.toml", metavar="FILE",
                   help="the gateway config file (default: acteon.toml)")
    p.add_argument("--dry-run", action="store_true",
                   help="evaluate the rules only: no provider call, state change or audit record")
    p.set_defaults(handler=cmd_dispatch)

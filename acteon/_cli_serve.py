"""``acteon serve [--config acteon.toml] [--host 127.0.0.1] [--port 8080]``: the HTTP API.

Without ``--config`` the gateway is an embedded default: SQLite state and
audit files (``acteon-state.db``, ``acteon-audit.db``) in the working
directory, no rules and no providers. Host and port come from the command
line, else from the config's ``[server]`` section, else 127.0.0.1:8080 —
loopback by default because this first server has no authentication.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from acteon._cli_common import EXIT_OK, EXIT_USAGE, CliError, require_paths

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080


def _server_section(config: str | None) -> dict[str, Any]:
    if config is None:
        return {}
    from acteon._config import read_config_file

    section = read_config_file(config).get("server") or {}
    if not isinstance(section, dict):
        raise CliError(f"[server] in {config} must be a table", EXIT_USAGE)
    return section


def _bind(args: argparse.Namespace, section: dict[str, Any]) -> tuple[str, int]:
    host = args.host or section.get("host") or DEFAULT_HOST
    port = args.port if args.port is not None else section.get("port", DEFAULT_PORT)
    if not isinstance(host, str):
        raise CliError(f"[server] host must be a string, got {host!r}", EXIT_USAGE)
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise CliError(f"[server] port must be an integer 0-65535, got {port!r}", EXIT_USAGE)
    return host, port


def _build_gateway(config: str | None) -> Any:
    from acteon._gateway import AsyncGateway

    if config is not None:
        return AsyncGateway.from_config(config)
    cwd = Path.cwd()
    return AsyncGateway(
        state=f"sqlite:///{cwd / 'acteon-state.db'}",
        audit=f"sqlite:///{cwd / 'acteon-audit.db'}",
    )


def cmd_serve(args: argparse.Namespace) -> int:
    from acteon._exceptions import ActeonError, MissingDependencyError

    try:
        import uvicorn

        from acteon.server import create_app
    except ImportError:
        raise CliError(str(MissingDependencyError("server", "acteon serve"))) from None
    except MissingDependencyError as exc:
        raise CliError(str(exc)) from None

    if args.config is not None:
        require_paths([args.config], "config file")
    try:
        section = _server_section(args.config)
        host, port = _bind(args, section)
        # Open event streams never end by themselves: without a bound, shutdown would wait for them.
        grace = section.get("shutdown_timeout_seconds", 30)
        if isinstance(grace, bool) or not isinstance(grace, int | float) or grace < 0:
            raise CliError(f"[server] shutdown_timeout_seconds must be a non-negative number, got {grace!r}",
                           EXIT_USAGE)
        gateway = _build_gateway(args.config)
    except ActeonError as exc:
        raise CliError(str(exc)) from None

    import anyio

    async def run() -> None:
        server = uvicorn.Server(
            uvicorn.Config(create_app(gateway), host=host, port=port, log_level="info", lifespan="off",
                           timeout_graceful_shutdown=int(grace))
        )
        # The gateway (and its background loop) lives exactly as long as the server.
        async with gateway:
            await server.serve()

    anyio.run(run)
    return EXIT_OK


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "serve",
        help="run the HTTP API over a gateway (needs the 'server' extra)",
        description="Serve the HTTP API over a gateway built from a config file, or over an embedded "
                    "default (SQLite files acteon-state.db / acteon-audit.db in the working directory). "
                    "No authentication yet: every route is open, so the default bind is loopback.",
    )
    p.add_argument("--config", default=None, metavar="FILE",
                   help="the gateway config file (TOML or YAML); omitted = embedded default")
    p.add_argument("--host", default=None, help=f"bind address (default: [server] host, else {DEFAULT_HOST})")
    p.add_argument("--port", type=int, default=None,
                   help=f"TCP port (default: [server] port, else {DEFAULT_PORT})")
    p.set_defaults(handler=cmd_serve)

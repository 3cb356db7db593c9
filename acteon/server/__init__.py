"""The HTTP API (``acteon serve``; needs the ``server`` extra).

``create_app(gateway)`` returns a Starlette application over an
``AsyncGateway``; ``ROUTE_TABLE`` lists the ``(method, path)`` pairs it serves.
"""

from __future__ import annotations

try:
    import starlette  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    from acteon._exceptions import MissingDependencyError

    raise MissingDependencyError("server", "the HTTP server (acteon.server)") from exc

from acteon.server._app import ROUTE_TABLE, create_app

__all__ = ["ROUTE_TABLE", "create_app"]

"""Request decoding and JSON error bodies shared by every route (DECISIONS D5).

Every failure, including the ones Starlette raises itself (unknown route,
wrong method), leaves the server as ``{"error", "code", "message"}`` so the
upstream client SDKs, which call ``.json()`` on error bodies, never meet a
plain-text page.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from acteon._caller import Caller
from acteon._timefmt import coerce_datetime

# No authentication in this first cut: every request runs as the anonymous
# identity of an auth-disabled upstream server (server-api.md §0).
ANONYMOUS = Caller(id="", auth_method="anonymous")

# axum's default body limit, which the upstream server never raises.
MAX_BODY_BYTES = 2 * 1024 * 1024

STATUS_CODES: dict[int, str] = {
    400: "BAD_REQUEST",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    409: "CONFLICT",
    410: "GONE",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    422: "VALIDATION_ERROR",
    429: "RATE_LIMITED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}


class ApiError(Exception):
    """An HTTP failure a handler answers with: status plus the D5 body."""

    def __init__(self, status: int, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code or STATUS_CODES.get(status, "INTERNAL")


def error_body(message: str, code: str) -> dict[str, str]:
    return {"error": message, "code": code, "message": message}


def error_response(
    status: int, message: str, code: str | None = None, headers: dict[str, str] | None = None
) -> Response:
    return JSONResponse(error_body(message, code or STATUS_CODES.get(status, "INTERNAL")), status, headers=headers)


_DEFAULT_MESSAGES = {
    404: "not found",
    405: "method not allowed",
}


async def http_exception_handler(request: Request, exc: Exception) -> Response:
    """Starlette's own 404 (no route) and 405 (wrong method) as D5 bodies."""
    assert isinstance(exc, HTTPException)
    status = exc.status_code
    if status in _DEFAULT_MESSAGES:
        message = f"{_DEFAULT_MESSAGES[status]}: {request.method} {request.url.path}"
    else:
        message = str(exc.detail)
    return error_response(status, message, headers=dict(exc.headers) if exc.headers else None)


async def read_json(request: Request, *, required: bool = True) -> Any:
    """The request body as JSON; 415 without a JSON content type, 413 over 2 MiB, 400 if malformed.

    With ``required=False`` a request without any body or content type gives ``None``.
    """
    content_type = request.headers.get("content-type")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise ApiError(413, f"request body is larger than the {MAX_BODY_BYTES} byte limit")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise ApiError(413, f"request body is larger than the {MAX_BODY_BYTES} byte limit")
        chunks.append(chunk)
    body = b"".join(chunks)
    if content_type is None:
        if not required and not body:
            return None
        raise ApiError(415, "expected request with `Content-Type: application/json`")
    media = content_type.split(";", 1)[0].strip().lower()
    if media != "application/json" and not (media.startswith("application/") and media.endswith("+json")):
        raise ApiError(415, f"expected request with `Content-Type: application/json`, got {media!r}")
    if not body.strip():
        raise ApiError(400, "failed to parse the request body as JSON: the body is empty")
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, f"failed to parse the request body as JSON: {exc}") from None


def query_bool(request: Request, name: str) -> bool:
    """A strict boolean query parameter: only ``true``/``false`` (as upstream; ``1``/``yes`` are 400)."""
    raw = request.query_params.get(name)
    if raw is None:
        return False
    if raw == "true":
        return True
    if raw == "false":
        return False
    raise ApiError(400, f"invalid query parameter {name}={raw!r}: expected true or false")


def query_int(request: Request, name: str) -> int | None:
    raw = request.query_params.get(name)
    if raw is None:
        return None
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, f"invalid query parameter {name}={raw!r}: expected an integer") from None
    if value < 0:
        raise ApiError(400, f"invalid query parameter {name}={raw!r}: must not be negative")
    return value


def query_time(request: Request, name: str) -> datetime | None:
    raw = request.query_params.get(name)
    if raw is None:
        return None
    try:
        return coerce_datetime(raw)
    except (ValueError, TypeError):
        raise ApiError(
            400, f"invalid query parameter {name}={raw!r}: expected an RFC 3339 timestamp "
                 "(percent-encode '+' as %2B)",
        ) from None


def require_object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ApiError(422, f"{what} must be a JSON object, got {_json_type(value)}")
    return value


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def json_type(value: Any) -> str:
    return _json_type(value)

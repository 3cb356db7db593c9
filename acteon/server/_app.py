"""The Starlette application: thin handlers over an :class:`AsyncGateway`.

Each handler decodes the request, calls one gateway method and encodes the
answer in the upstream wire shape (server-api.md §2). Nothing here keeps
state of its own; the gateway owns stores, rules and providers.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from acteon._action import Action
from acteon._exceptions import (
    ActeonError,
    AuditSerializationError,
    RuleLoadError,
    StateConnectionError,
    UsageError,
)
from acteon._gateway import AsyncGateway
from acteon._replay import ReplayError
from acteon._timefmt import coerce_datetime
from acteon.audit._model import AuditQuery
from acteon.resilience.breaker import CircuitBreakerNotFound
from acteon.server import _approvals, _stream
from acteon.server._http import (
    ANONYMOUS,
    ApiError,
    error_body,
    error_response,
    http_exception_handler,
    json_type,
    query_bool,
    query_int,
    query_time,
    read_json,
    require_object,
)

logger = logging.getLogger("acteon.server")

# Key order of the upstream Metrics object (§2.1); the port's extra counters follow.
_METRIC_ORDER = (
    "dispatched", "executed", "deduplicated", "suppressed", "rerouted", "throttled", "failed",
    "llm_guardrail_allowed", "llm_guardrail_denied", "llm_guardrail_errors", "chains_started",
    "chains_completed", "chains_failed", "chains_cancelled", "pending_approval", "circuit_open",
    "scheduled", "quota_exceeded", "quota_warned", "quota_degraded", "quota_notified",
)

_AUDIT_FILTERS = ("namespace", "tenant", "provider", "action_type", "outcome", "verdict", "matched_rule",
                  "caller_id", "chain_id")
_REPLAY_FILTERS = ("namespace", "tenant", "provider", "action_type", "outcome", "verdict", "matched_rule")

Handler = Callable[[Request], Awaitable[Response]]


def _gateway_failure(exc: ActeonError) -> ApiError:
    """An infrastructure error of the gateway: 503 when a backend is unreachable, else 500."""
    if isinstance(exc, StateConnectionError):
        return ApiError(503, str(exc))
    return ApiError(500, str(exc))


def _guard(fn: Callable[[Request, AsyncGateway], Awaitable[Any]]) -> Callable[[AsyncGateway], Handler]:
    """Wrap a handler: its return value becomes a 200 JSON body, failures become D5 bodies."""

    def bind(gateway: AsyncGateway) -> Handler:
        async def endpoint(request: Request) -> Response:
            try:
                result = await fn(request, gateway)
            except ApiError as exc:
                return error_response(exc.status, exc.message, exc.code)
            except ActeonError as exc:
                failure = _gateway_failure(exc)
                return error_response(failure.status, failure.message, failure.code)
            except Exception:
                logger.exception("unhandled error in %s %s", request.method, request.url.path)
                return error_response(500, "internal server error")
            if isinstance(result, Response):
                return result
            return JSONResponse(result)

        return endpoint

    return bind


def _metrics(gateway: AsyncGateway) -> dict[str, int]:
    snapshot = gateway.metrics.snapshot()
    ordered = {name: snapshot.get(name, 0) for name in _METRIC_ORDER}
    ordered.update((name, value) for name, value in snapshot.items() if name not in ordered)
    return ordered


# ---------------------------------------------------------------------- health


@_guard
async def health(request: Request, gateway: AsyncGateway) -> Any:
    return {"status": "ok", "metrics": _metrics(gateway)}


@_guard
async def metrics(request: Request, gateway: AsyncGateway) -> Any:
    return _metrics(gateway)


# ---------------------------------------------------------------------- dispatch


def _parse_action(value: Any, what: str) -> Action:
    obj = require_object(value, what)
    try:
        return Action.from_wire(obj)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or what}: {err['msg']}" for err in exc.errors()
        )
        raise ApiError(422, f"invalid {what}: {problems}") from None


@_guard
async def dispatch(request: Request, gateway: AsyncGateway) -> Any:
    dry_run = query_bool(request, "dry_run")
    action = _parse_action(await read_json(request), "action")
    outcome = await gateway.dispatch(action, dry_run=dry_run, caller=ANONYMOUS)
    return outcome.to_wire()


def _item_error(code: str, message: str) -> dict[str, Any]:
    # D4: an object (not the Rust server's bare string) so both client SDKs can parse it.
    return {"error": {"code": code, "message": message, "retryable": False}}


@_guard
async def dispatch_batch(request: Request, gateway: AsyncGateway) -> Any:
    dry_run = query_bool(request, "dry_run")
    body = await read_json(request)
    if not isinstance(body, list):
        raise ApiError(422, f"batch body must be a JSON array of actions, got {json_type(body)}")
    results: list[Any] = [None] * len(body)
    valid: list[tuple[int, Action]] = []
    for index, item in enumerate(body):
        try:
            valid.append((index, _parse_action(item, f"action [{index}]")))
        except ApiError as exc:
            # D4: one malformed item answers for itself; the rest of the batch still runs.
            results[index] = _item_error("VALIDATION_ERROR", exc.message)
    outcomes = await gateway.dispatch_batch([a for _, a in valid], dry_run=dry_run, caller=ANONYMOUS)
    for (index, _), outcome in zip(valid, outcomes, strict=True):
        if isinstance(outcome, ActeonError):
            failure = _gateway_failure(outcome)
            results[index] = _item_error(failure.code, failure.message)
        else:
            results[index] = outcome.to_wire()
    return results


# ---------------------------------------------------------------------- rules


@_guard
async def list_rules(request: Request, gateway: AsyncGateway) -> Any:
    return [
        {"name": r.name, "priority": r.priority, "enabled": r.enabled, "description": r.description}
        for r in gateway.rules
    ]


@_guard
async def reload_rules(request: Request, gateway: AsyncGateway) -> Any:
    body = await read_json(request, required=False)
    directory = body.get("directory") if isinstance(body, dict) else None
    if directory is None:
        raise ApiError(400, "missing 'directory' field in request body")
    if not isinstance(directory, str):
        raise ApiError(422, f"'directory' must be a string, got {json_type(directory)}")
    import os

    if not os.path.isdir(directory):
        raise ApiError(400, f"directory not found: {directory}")
    try:
        count = gateway.reload_rules(directory)
    except RuleLoadError as exc:
        # D10: the previous rule set stays active; the status code is upstream's 500.
        raise ApiError(500, f"failed to reload rules from {directory}: {exc}") from None
    return {"reloaded": count, "directory": directory}


@_guard
async def set_rule_enabled(request: Request, gateway: AsyncGateway) -> Any:
    name = request.path_params["name"]
    body = require_object(await read_json(request), "request body")
    enabled = body.get("enabled")
    if not isinstance(enabled, bool):
        raise ApiError(422, f"'enabled' must be a boolean, got {json_type(enabled)}")
    found = gateway.enable_rule(name) if enabled else gateway.disable_rule(name)
    if not found:
        raise ApiError(404, f"rule not found: {name}")
    return {"name": name, "enabled": enabled, "status": "enabled" if enabled else "disabled"}


def _string_map(value: Any, field: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise ApiError(422, f"'{field}' must be an object of string values")
    return dict(value)


def _bool_field(body: dict[str, Any], field: str) -> bool:
    value = body.get(field, False)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise ApiError(422, f"'{field}' must be a boolean, got {json_type(value)}")
    return value


@_guard
async def evaluate_rules(request: Request, gateway: AsyncGateway) -> Any:
    body = require_object(await read_json(request), "request body")
    fields: dict[str, Any] = {}
    for name in ("namespace", "tenant", "provider", "action_type"):
        value = body.get(name)
        if not isinstance(value, str):
            raise ApiError(422, f"'{name}' is required and must be a string, got {json_type(value)}")
        fields[name] = value
    if "payload" not in body:
        raise ApiError(422, "'payload' is required")
    fields["payload"] = body["payload"]
    fields["metadata"] = _string_map(body.get("metadata"), "metadata")
    evaluate_at = None
    if body.get("evaluate_at") is not None:
        try:
            evaluate_at = coerce_datetime(body["evaluate_at"])
        except (ValueError, TypeError):
            raise ApiError(422, f"'evaluate_at' must be an RFC 3339 timestamp, got {body['evaluate_at']!r}") from None
    trace = await gateway.evaluate_rules(
        Action(**fields),  # a fresh action with a new id, as upstream
        include_disabled=_bool_field(body, "include_disabled"),
        evaluate_all=_bool_field(body, "evaluate_all"),
        evaluate_at=evaluate_at,
        mock_state=_string_map(body.get("mock_state"), "mock_state"),
    )
    return trace.to_dict()


# ---------------------------------------------------------------------- audit


def _audit_query(request: Request, names: tuple[str, ...], *, paging: bool) -> AuditQuery:
    q = AuditQuery()
    for name in names:
        value = request.query_params.get(name)
        if value is not None:
            setattr(q, name, value)
    q.from_ = query_time(request, "from")
    q.to = query_time(request, "to")
    q.limit = query_int(request, "limit")
    if paging:
        q.offset = query_int(request, "offset")
        q.cursor = request.query_params.get("cursor") or None
    return q


def _require_audit(gateway: AsyncGateway) -> None:
    if gateway.audit is None:
        raise ApiError(404, "audit is not enabled")


@_guard
async def audit_query(request: Request, gateway: AsyncGateway) -> Any:
    _require_audit(gateway)
    query = _audit_query(request, _AUDIT_FILTERS, paging=True)
    try:
        page = await gateway.audit_query(query)
    except AuditSerializationError as exc:  # an undecodable cursor is the client's mistake
        raise ApiError(400, f"invalid query parameter cursor: {exc}") from None
    return page.to_dict()


@_guard
async def audit_get(request: Request, gateway: AsyncGateway) -> Any:
    _require_audit(gateway)
    action_id = request.path_params["action_id"]
    record = await gateway.audit_get(action_id)
    if record is None:
        raise ApiError(404, f"no audit record found for action: {action_id}")
    return record.to_dict()


def _replay_failure(exc: ReplayError) -> ApiError:
    return ApiError(422 if exc.code == "VALIDATION_ERROR" else 404, str(exc))


@_guard
async def replay_one(request: Request, gateway: AsyncGateway) -> Any:
    try:
        result = await gateway.replay_action(request.path_params["action_id"], caller=ANONYMOUS)
    except ReplayError as exc:
        raise _replay_failure(exc) from None
    return result.to_dict()


@_guard
async def replay_many(request: Request, gateway: AsyncGateway) -> Any:
    query = _audit_query(request, _REPLAY_FILTERS, paging=False)
    try:
        summary = await gateway.replay_audit(query, caller=ANONYMOUS)
    except ReplayError as exc:
        raise _replay_failure(exc) from None
    return summary.to_dict()


# ---------------------------------------------------------------------- dead-letter queue


@_guard
async def dlq_stats(request: Request, gateway: AsyncGateway) -> Any:
    enabled = gateway.dlq_enabled()
    return {"enabled": enabled, "count": len(gateway.dlq_list()) if enabled else 0}


@_guard
async def dlq_drain(request: Request, gateway: AsyncGateway) -> Any:
    if not gateway.dlq_enabled():
        raise ApiError(404, "dead-letter queue is not enabled")
    entries = [
        {
            "action_id": d.action.id,
            "namespace": d.action.namespace,
            "tenant": d.action.tenant,
            "provider": d.action.provider,
            "action_type": d.action.action_type,
            "error": d.error,
            "attempts": d.attempts,
            "timestamp": int(d.timestamp.timestamp()),
        }
        for d in gateway.dlq_drain()
    ]
    return {"entries": entries, "count": len(entries)}


# ---------------------------------------------------------------------- circuit breakers


@_guard
async def list_breakers(request: Request, gateway: AsyncGateway) -> Any:
    breakers = await gateway.circuit_breakers()
    if breakers is None:
        raise ApiError(404, "circuit breakers are not enabled")
    return {"circuit_breakers": breakers}


async def _breaker_call(gateway: AsyncGateway, provider: str, trip: bool) -> Any:
    try:
        return await (gateway.trip_circuit(provider) if trip else gateway.reset_circuit(provider))
    except CircuitBreakerNotFound as exc:
        raise ApiError(404, str(exc)) from None
    except UsageError as exc:  # breakers are off on this gateway
        raise ApiError(404, str(exc)) from None


@_guard
async def trip_breaker(request: Request, gateway: AsyncGateway) -> Any:
    return await _breaker_call(gateway, request.path_params["provider"], trip=True)


@_guard
async def reset_breaker(request: Request, gateway: AsyncGateway) -> Any:
    return await _breaker_call(gateway, request.path_params["provider"], trip=False)


# ---------------------------------------------------------------------- application


_ROUTES: tuple[tuple[str, Callable[[AsyncGateway], Handler], list[str]], ...] = (
    ("/health", health, ["GET"]),
    ("/metrics", metrics, ["GET"]),
    ("/v1/dispatch", dispatch, ["POST"]),
    ("/v1/dispatch/batch", dispatch_batch, ["POST"]),
    ("/v1/rules", list_rules, ["GET"]),
    ("/v1/rules/reload", reload_rules, ["POST"]),
    ("/v1/rules/evaluate", evaluate_rules, ["POST"]),
    ("/v1/rules/{name}/enabled", set_rule_enabled, ["PUT"]),
    ("/v1/audit", audit_query, ["GET"]),
    ("/v1/audit/replay", replay_many, ["POST"]),
    ("/v1/audit/{action_id}", audit_get, ["GET"]),
    ("/v1/audit/{action_id}/replay", replay_one, ["POST"]),
    ("/v1/dlq/stats", dlq_stats, ["GET"]),
    ("/v1/dlq/drain", dlq_drain, ["POST"]),
    ("/admin/circuit-breakers", list_breakers, ["GET"]),
    ("/admin/circuit-breakers/{provider}/trip", trip_breaker, ["POST"]),
    ("/admin/circuit-breakers/{provider}/reset", reset_breaker, ["POST"]),
    ("/v1/stream", _guard(_stream.stream), ["GET"]),
    ("/v1/approvals", _guard(_approvals.list_approvals), ["GET"]),
    ("/v1/approvals/{namespace}/{tenant}/{id}", _guard(_approvals.approval_status), ["GET"]),
    ("/v1/approvals/{namespace}/{tenant}/{id}/approve", _guard(_approvals.confirmation_page), ["GET"]),
    ("/v1/approvals/{namespace}/{tenant}/{id}/approve", _guard(_approvals.approve), ["POST"]),
    ("/v1/approvals/{namespace}/{tenant}/{id}/reject", _guard(_approvals.confirmation_page), ["GET"]),
    ("/v1/approvals/{namespace}/{tenant}/{id}/reject", _guard(_approvals.reject), ["POST"]),
)

ROUTE_TABLE: tuple[tuple[str, str], ...] = tuple(
    (method, path) for path, _, methods in _ROUTES for method in methods
)
"""Every ``(method, path)`` the server answers (GET routes also answer HEAD); anything else is a JSON 404/405."""


async def _unhandled(request: Request, exc: Exception) -> Response:
    logger.error("unhandled error in %s %s", request.method, request.url.path, exc_info=exc)
    return JSONResponse(error_body("internal server error", "INTERNAL"), 500)


def create_app(gateway: AsyncGateway) -> Starlette:
    """The HTTP API of ``gateway`` as an ASGI application.

    The caller owns the gateway's lifecycle (``async with gateway`` around the
    server); requests made before ``start()`` start it on first dispatch.
    """
    routes = [Route(path, bind(gateway), methods=methods) for path, bind, methods in _ROUTES]
    return Starlette(
        routes=routes,
        exception_handlers={HTTPException: http_exception_handler, Exception: _unhandled},
    )

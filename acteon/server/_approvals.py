"""Approval routes (server-api.md §2.6 with DECISIONS D15).

The decision links e-mailed to approvers are signed per decision, so the
handlers pass ``sig``/``expires_at``/``kid`` straight to the gateway, which
verifies them. A GET on a decision link only shows a confirmation page (mail
scanners and link previews follow GETs); the page's button POSTs the decision.
"""

from __future__ import annotations

import html
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse

from acteon._exceptions import ApprovalAlreadyDecided, ApprovalNotFound
from acteon._gateway import AsyncGateway
from acteon.server._http import ANONYMOUS, ApiError

NOT_FOUND = "approval not found or expired"
_STATUSES = ("pending", "approved", "rejected", "expired")


def _scope(request: Request) -> tuple[str, str, str]:
    p = request.path_params
    return p["namespace"], p["tenant"], p["id"]


def _link(request: Request) -> tuple[str, str, str | None]:
    """``sig``, ``expires_at`` and ``kid`` of a decision link; both of the first are required."""
    q = request.query_params
    for name in ("sig", "expires_at"):
        if not q.get(name):
            raise ApiError(400, f"missing query parameter: {name}")
    return q["sig"], q["expires_at"], q.get("kid")


async def list_approvals(request: Request, gateway: AsyncGateway) -> Any:
    namespace = request.query_params.get("namespace")
    tenant = request.query_params.get("tenant")
    if not namespace or not tenant:
        raise ApiError(400, "query parameters namespace and tenant are required")
    status = request.query_params.get("status")
    if status is not None and status not in _STATUSES:
        raise ApiError(400, f"invalid query parameter status={status!r}: expected one of {', '.join(_STATUSES)}")
    approvals = await gateway.list_approvals(namespace, tenant, status)
    return {"approvals": [a.to_dict() for a in approvals], "count": len(approvals)}


async def approval_status(request: Request, gateway: AsyncGateway) -> Any:
    namespace, tenant, ident = _scope(request)
    sig, expires_at, kid = _link(request)
    approval = await gateway.get_approval(namespace, tenant, ident, sig=sig, expires_at=expires_at, kid=kid)
    if approval is None:
        raise ApiError(404, NOT_FOUND)
    return approval.to_dict()


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title></head>
<body>
<h1>{title}</h1>
<p>Action <code>{action_type}</code> in <code>{namespace}/{tenant}</code> (rule <code>{rule}</code>).</p>
<p>{message}</p>
<p>Status: <strong>{status}</strong>. Link valid until {expires_at}.</p>
{form}
</body></html>
"""


async def confirmation_page(request: Request, gateway: AsyncGateway) -> Any:
    """GET on a decision link: a page whose button POSTs the same URL (D15)."""
    namespace, tenant, ident = _scope(request)
    sig, expires_at, kid = _link(request)
    decision = "approve" if request.url.path.endswith("/approve") else "reject"
    approval = await gateway.get_approval(namespace, tenant, ident, sig=sig, expires_at=expires_at, kid=kid)
    if approval is None:
        raise ApiError(404, NOT_FOUND)
    e = html.escape
    form = ""
    if approval.status == "pending":
        form = (f'<form method="post" action="{e(str(request.url))}">'
                f'<button type="submit">{e(decision.capitalize())}</button></form>')
    page = _PAGE.format(
        title=e(f"{decision.capitalize()} this action?"),
        action_type=e(approval.action.action_type),
        namespace=e(namespace),
        tenant=e(tenant),
        rule=e(approval.rule),
        message=e(approval.message or "Approval required"),
        status=e(approval.status),
        expires_at=e(approval.to_dict()["expires_at"] or ""),
        form=form,
    )
    return HTMLResponse(page)


async def _decide(request: Request, gateway: AsyncGateway, approve: bool) -> Any:
    namespace, tenant, ident = _scope(request)
    sig, expires_at, kid = _link(request)
    try:
        if approve:
            outcome = await gateway.approve(namespace, tenant, ident, sig=sig, expires_at=expires_at, kid=kid,
                                            caller=ANONYMOUS)
            return {"id": ident, "status": "approved", "outcome": outcome.to_wire()}
        await gateway.reject(namespace, tenant, ident, sig=sig, expires_at=expires_at, kid=kid, caller=ANONYMOUS)
        return {"id": ident, "status": "rejected", "outcome": None}
    except ApprovalAlreadyDecided as exc:
        raise ApiError(410, str(exc)) from None
    except ApprovalNotFound:
        # A forged or expired link reads like a missing approval (nothing to learn from it).
        raise ApiError(404, NOT_FOUND) from None


async def approve(request: Request, gateway: AsyncGateway) -> Any:
    return await _decide(request, gateway, approve=True)


async def reject(request: Request, gateway: AsyncGateway) -> Any:
    return await _decide(request, gateway, approve=False)

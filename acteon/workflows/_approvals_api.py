"""Approval methods of the gateway (mixed into ``AsyncGateway``; blocking twins in ``Gateway``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from acteon._caller import Caller
from acteon.outcomes import Outcome
from acteon.workflows._approval_model import Approval, ApprovalLinks

if TYPE_CHECKING:
    from acteon.workflows.approvals import ApprovalManager


class ApprovalsMixin:
    """Human approvals (workflows.md §5, DECISIONS D15).

    Links carry ``sig``, ``expires_at`` (Unix seconds) and ``kid`` as query
    parameters; pass them through unchanged. A signature that does not verify
    raises :class:`~acteon.ApprovalSignatureError`, a link used at or after its
    expiry :class:`~acteon.ApprovalExpired` -- both are ``ApprovalNotFound``
    (``str()`` is ``approval not found``) -- and a second decision
    :class:`~acteon.ApprovalAlreadyDecided`.
    """

    _approvals: ApprovalManager

    async def approve(
        self,
        namespace: str,
        tenant: str,
        id: str,
        *,
        sig: str,
        expires_at: int | str,
        kid: str | None = None,
        caller: Caller | None = None,
    ) -> Outcome:
        """Approve with the link's signature: the original action then goes through the
        pipeline (rules, lock, audit, event) and its outcome is returned. The approval
        rule does not ask again; a rule added since (suppress, reroute, ...) applies."""
        return await self._approvals.approve(namespace, tenant, id, sig, expires_at, kid, caller)

    async def reject(
        self,
        namespace: str,
        tenant: str,
        id: str,
        *,
        sig: str,
        expires_at: int | str,
        kid: str | None = None,
        caller: Caller | None = None,
    ) -> Approval:
        """Reject with the link's signature; returns the rejected approval. Nothing runs."""
        return await self._approvals.reject(namespace, tenant, id, sig, expires_at, kid, caller)

    async def list_approvals(self, namespace: str, tenant: str, status: str | None = None) -> list[Approval]:
        """Approvals of one namespace/tenant, oldest first, of every status unless
        ``status`` (``pending``, ``approved``, ``rejected``, ``expired``) is given."""
        return await self._approvals.list(namespace, tenant, status)

    async def get_approval(
        self,
        namespace: str,
        tenant: str,
        id: str,
        *,
        sig: str | None = None,
        expires_at: int | str | None = None,
        kid: str | None = None,
    ) -> Approval | None:
        """One approval, or ``None``. Trusted callers omit ``sig``; with ``sig`` (and
        ``expires_at``) a link that does not verify also reads as ``None``."""
        return await self._approvals.get(namespace, tenant, id, sig, expires_at, kid)

    async def approval_links(self, namespace: str, tenant: str, id: str) -> ApprovalLinks:
        """Fresh approve/reject links for a stored approval, signed with the current key
        (for trusted callers: resend a notification, build a custom one). Raises
        ``ApprovalNotFound`` when the record does not exist."""
        return await self._approvals.links(namespace, tenant, id)
